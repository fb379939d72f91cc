"""Topic 31 — the key/value cache: a GPT's forward pass over new tokens only.

Generating token t+1 with Topic 30's ``generate`` runs the whole model over the last
``block_size`` tokens, although the keys and values of tokens ≤ t are the same as one step
earlier: in a causal model a token's k and v depend only on that token and its past.
The cache keeps them, per layer, in arrays **preallocated to the maximum length**:

    k, v: (L, B, H_kv, T_max, d_head)        written in place at positions length … length+t−1

    prefill:  idx (B, T0)  -> logits (B, T0, V),  fills positions 0 … T0−1
    step:     idx (B, 1)   -> logits (B, 1, V),   writes one position, attends to all ≤ it

For one layer, with x: (B, t, D) the new positions' inputs:

    q, k, v  = heads of the layer's own projections        q: (B, H, t, d)   k, v: (B, H_kv, t, d)
    cache[l] ← k, v at positions length … length+t−1       no concatenation, no copy of the past
    K, V     = cache[l][..., :length+t, :]                  (B, H_kv, S, d), S = length + t (views)
    out      = attention(q, K, V, causal mask aligned to the last query)

The incremental forward reuses the GPT's layers — its embeddings, each block's LayerNorms and
residual connections (:class:`~dlfs.transformer.encoder.SublayerConnection`), the attention's
projections and the FeedForward — as functions over those layers: there is no second model,
and the logits equal a full recomputation up to rounding.

Grouped-query attention (``H_kv`` dividing ``H``; multi-query for ``H_kv = 1``) keeps only
``H_kv`` heads of keys and values: query head h reads key/value head ``h // (H / H_kv)``, and
the cache is ``H / H_kv`` times smaller. Its size in bytes is

    2 · L · B · T_max · H_kv · d_head · itemsize          (:func:`cache_bytes`)

Padding: ``key_padding_mask`` (B, S) marks cached positions that are padding (True), as in
Topic 25; :mod:`dlfs.transformer.decoding` left-pads prompts of different lengths.
"""

from __future__ import annotations

import numpy as np

from dlfs.attention.multi_head import merge_heads, split_heads
from dlfs.attention.scaled_dot_product import AttentionCache, attention_forward, attention_mask


def cache_bytes(n_layer: int, batch: int, max_len: int, n_kv_head: int, d_head: int, itemsize: int) -> int:
    """The bytes of a key/value cache: 2 (k and v) · L · B · T_max · H_kv · d_head · itemsize."""
    # BEGIN SOLUTION keys and values: two arrays of L · B · T_max · H_kv · d_head numbers
    return 2 * n_layer * batch * max_len * n_kv_head * d_head * itemsize
    # END SOLUTION


class KVCache:
    """Per-layer keys and values, preallocated: ``k``, ``v``: (L, B, H_kv, T_max, d_head).

    ``length`` positions are filled (the same for every layer). A forward over t new positions
    calls :meth:`append` once per layer, then :meth:`advance` (t) once.
    """

    def __init__(self, n_layer: int, batch: int, max_len: int, n_kv_head: int, d_head: int, dtype=np.float32):
        if min(n_layer, batch, max_len, n_kv_head, d_head) < 1:
            raise ValueError(f"KVCache sizes must be positive, got n_layer={n_layer}, batch={batch}, "
                             f"max_len={max_len}, n_kv_head={n_kv_head}, d_head={d_head}")
        shape = (n_layer, batch, n_kv_head, max_len, d_head)
        self.k = np.zeros(shape, dtype=dtype)
        self.v = np.zeros(shape, dtype=dtype)
        self.length = 0

    def __repr__(self) -> str:
        L, B, H, T, d = self.k.shape
        return (f"KVCache(n_layer={L}, batch={B}, n_kv_head={H}, max_len={T}, d_head={d}, "
                f"length={self.length}, {self.k.dtype}, {self.nbytes:,} bytes)")

    @property
    def max_len(self) -> int:
        return self.k.shape[3]

    @property
    def nbytes(self) -> int:
        """Bytes held by the keys and the values."""
        return self.k.nbytes + self.v.nbytes

    def reset(self) -> None:
        """Forget every position (the arrays are kept and overwritten)."""
        self.length = 0

    def append(self, layer: int, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """k, v: (B, H_kv, t, d_head), the new positions length … length+t−1 of ``layer`` ->
        (K, V): views (B, H_kv, length+t, d_head) of everything cached in that layer so far.
        Raises ValueError, writing nothing, when the new positions do not fit."""
        t = k.shape[2]
        if k.shape != v.shape or k.shape[:2] != self.k.shape[1:3] or k.shape[3] != self.k.shape[4]:
            raise ValueError(f"KVCache.append expects k and v of shape (B, H_kv, t, d_head) = "
                             f"{self.k.shape[1:3] + ('t',) + self.k.shape[4:]}, got {k.shape} and {v.shape}")
        if self.length + t > self.max_len:
            raise ValueError(f"KVCache is full: {self.length} of {self.max_len} positions used, "
                             f"{t} more do not fit")
        # TODO: write into the preallocated arrays (slice assignment), return views: no concatenate.
        # BEGIN SOLUTION write k, v at positions length … length+t−1 of the layer; return the filled prefix as views
        end = self.length + t
        self.k[layer, :, :, self.length:end] = k
        self.v[layer, :, :, self.length:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]
        # END SOLUTION

    def advance(self, t: int) -> None:
        """Mark t more positions as filled (after every layer has appended them)."""
        if self.length + t > self.max_len:
            raise ValueError(f"KVCache.advance({t}) past max_len {self.max_len} (length {self.length})")
        self.length += t


def num_kv_heads(attn) -> int:
    """The number of key/value heads of an attention layer (``num_kv_heads``, else ``num_heads``)."""
    return getattr(attn, "num_kv_heads", attn.num_heads)


def cache_for(model, batch: int, max_len: int | None = None) -> KVCache:
    """An empty cache for a GPT (its blocks' attentions may be grouped-query), in its dtype;
    max_len defaults to ``config.block_size``."""
    attn = model.blocks[0].self_attn
    d_head = model.config.n_embd // model.config.n_head
    return KVCache(len(model.blocks), batch, model.config.block_size if max_len is None else max_len,
                   num_kv_heads(attn), d_head, dtype=model.wte.W.dtype)


def project_heads(attn, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x: (B, t, D) -> q: (B, H, t, d), k, v: (B, H_kv, t, d) with the layer's own projections:
    ``attn.project_heads`` for a grouped-query layer, else the ``qkv`` of a MultiHeadAttention."""
    if hasattr(attn, "project_heads"):
        return attn.project_heads(x)
    # BEGIN SOLUTION the MultiHeadAttention's qkv projection, each of q, k, v split into its heads
    H = attn.num_heads
    q, k, v = attn.qkv.forward(x)
    return split_heads(q, H), split_heads(k, H), split_heads(v, H)
    # END SOLUTION


def grouped_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None
                      ) -> tuple[np.ndarray, AttentionCache]:
    """Attention where H query heads share H_kv key/value heads (H_kv divides H).

    q: (B, H, T, d); k, v: (B, H_kv, S, d); mask: boolean, broadcastable to (T, S) or
    (B, 1, T, S), True = attend. Query head h reads key/value head h // (H / H_kv).
    Returns out: (B, H, T, d) and the :class:`AttentionCache` of Topic 25's
    ``attention_forward`` over the grouped shapes (B, H_kv, G, ·, d), G = H / H_kv (its k
    and v are broadcast views: the shared heads are not copied).
    """
    B, H, T, d = q.shape
    Hkv, S = k.shape[1], k.shape[2]
    if H % Hkv:
        raise ValueError(f"the number of key/value heads ({Hkv}) must divide the number of query heads ({H})")
    if mask is not None and np.ndim(mask) == 4:
        mask = mask[:, :, None]                           # (B, 1, T, S) -> (B, 1, 1, T, S)
    # TODO: give q a group axis (B, H_kv, G, T, d) and broadcast k, v along it (np.broadcast_to:
    #       views); then it is Topic 25's attention.
    # BEGIN SOLUTION reshape q to (B, H_kv, G, T, d), broadcast k and v to (B, H_kv, G, S, d), attention_forward, reshape back
    G = H // Hkv
    qg = q.reshape(B, Hkv, G, T, d)
    kg = np.broadcast_to(k[:, :, None], (B, Hkv, G, S, d))
    vg = np.broadcast_to(v[:, :, None], (B, Hkv, G, S, v.shape[-1]))
    out, cache = attention_forward(qg, kg, vg, mask)
    return out.reshape(B, H, T, v.shape[-1]), cache
    # END SOLUTION


def attention_step(attn, x: np.ndarray, cache: KVCache, layer: int,
                   key_padding_mask: np.ndarray | None = None) -> np.ndarray:
    """Causal self-attention of new positions against everything cached, through ``attn``'s
    own weights (a MultiHeadAttention or a grouped-query layer).

    x: (B, t, D), the inputs of positions cache.length … cache.length+t−1 -> (B, t, D).
    key_padding_mask: (B, ≥ cache.length+t) bool, True = padding (None: no padding).
    Writes the new keys and values into ``cache`` (layer ``layer``); does not advance it.
    """
    t = x.shape[1]
    # TODO: project, cache the new k and v, attend to all S = length + t cached positions with
    #       the causal mask aligned to the last query (attention_mask(t, S, causal=True, ...)).
    # BEGIN SOLUTION project_heads, cache.append, the causal (+ padding) mask, grouped_attention, merge_heads, out_proj
    q, k, v = project_heads(attn, x)
    K, V = cache.append(layer, k, v)
    S = K.shape[2]
    padding = None if key_padding_mask is None else key_padding_mask[:, :S]
    mask = None if t == 1 and padding is None else attention_mask(t, S, causal=True, key_padding_mask=padding)
    out, _ = grouped_attention(q, K, V, mask)
    return attn.out_proj.forward(merge_heads(out))
    # END SOLUTION


def block_step(block, x: np.ndarray, cache: KVCache, layer: int,
               key_padding_mask: np.ndarray | None = None) -> np.ndarray:
    """One Topic 28 ``EncoderBlock`` (pre- or post-LN) over new positions only, its attention
    through the cache. x: (B, t, D) -> (B, t, D)."""
    # TODO: the block's own two SublayerConnections; only the attention function changes.
    # BEGIN SOLUTION sublayer1 around attention_step, sublayer2 around the block's feed-forward
    h = block.sublayer1.forward(x, lambda a: attention_step(block.self_attn, a, cache, layer, key_padding_mask))
    return block.sublayer2.forward(h, block.ff.forward)
    # END SOLUTION


def gpt_step(model, idx: np.ndarray, cache: KVCache, positions: np.ndarray | None = None,
             key_padding_mask: np.ndarray | None = None) -> np.ndarray:
    """The GPT's forward over new tokens only, with its own weights and layers (eval mode).

    idx: (B, t) ids of cache positions cache.length … cache.length+t−1; positions: their
    position-embedding rows, (t,) or (B, t) (default: cache.length + arange(t));
    key_padding_mask: (B, ≥ cache.length+t) bool, True = padding.
    Returns logits (B, t, V) and advances the cache by t.
    """
    idx = np.asarray(idx)
    if idx.ndim != 2 or idx.shape[0] != cache.k.shape[1]:
        raise ValueError(f"gpt_step expects ids (B, t) with B = {cache.k.shape[1]}, got shape {idx.shape}")
    t = idx.shape[1]
    if positions is None:
        positions = cache.length + np.arange(t)
    positions = np.asarray(positions)
    if positions.size and (positions.min() < 0 or positions.max() >= model.config.block_size):
        raise ValueError(f"positions must lie in [0, block_size = {model.config.block_size}), "
                         f"got {positions.min()} … {positions.max()}")
    if cache.length + t > cache.max_len:
        raise ValueError(f"KVCache is full: {cache.length} of {cache.max_len} positions used, {t} more do not fit")
    # TODO: as GPT.forward, with the position rows given and each block through block_step.
    # BEGIN SOLUTION token + position embeddings, dropout, block_step per layer, advance the cache, ln_f, tied head
    x = model.wte.forward(idx) + model.wpe.data[positions]
    x = model.drop.forward(x)
    for layer, block in enumerate(model.blocks):
        x = block_step(block, x, cache, layer, key_padding_mask)
    cache.advance(t)
    return model.ln_f.forward(x) @ model.wte.W.data.T
    # END SOLUTION
