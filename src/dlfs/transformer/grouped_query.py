"""Topic 31 — grouped-query attention (GQA) and multi-query attention (MQA, one key/value head).

H query heads share H_kv key/value heads (H_kv divides H; G = H / H_kv queries per group):

    x: (B, T, D), d = D / H
    q = x Wq + bq                         (B, T, D)          -> (B, H, T, d)
    k, v = blocks of x Wkv + bkv          (B, T, 2·H_kv·d)   -> each (B, H_kv, T, d)
    o = attention of query head h with key/value head h // G          (B, H, T, d)
    y = merge_heads(o) Wo + bo            (B, T, D)

H_kv = H is ordinary multi-head attention (Topic 26) with its q, k, v projection split in two;
H_kv = 1 is multi-query attention. What it buys is at generation time: the key/value cache of
Topic 31 stores H_kv heads instead of H, G times fewer bytes, and each decoding step reads G
times less of it. The grouping itself is :func:`dlfs.transformer.kv_cache.grouped_attention`
(the key/value heads are broadcast, not copied); the backward sums the G query heads'
gradients into their shared key/value head.

Parameter names: ``q_proj.W (D, D)``, ``q_proj.b``, ``kv_proj.W (D, 2·H_kv·d)`` (the columns
of k, then of v, head by head), ``kv_proj.b``, ``out_proj.W (D, D)``, ``out_proj.b``.
"""

from __future__ import annotations

import numpy as np

from dlfs.attention.multi_head import merge_heads, split_heads
from dlfs.attention.scaled_dot_product import attention_backward, attention_mask
from dlfs.nn.layers import Layer, Linear
from dlfs.transformer.kv_cache import grouped_attention


class GroupedQueryAttention(Layer):
    """Self-attention with ``num_heads`` query heads and ``num_kv_heads`` key/value heads.

    x: (B, T, D) -> y: (B, T, D); ``forward(x, key_padding_mask=None, causal=False)`` and
    ``backward(dy)`` as :class:`~dlfs.attention.multi_head.MultiHeadAttention`, so it can take
    that layer's place in an ``EncoderBlock``. ``project_heads(x)`` gives q (B, H, T, d) and
    k, v (B, H_kv, T, d) (used by the key/value cache). Sublayers ``q_proj``, ``kv_proj``,
    ``out_proj`` (``Linear``; out_proj's bias starts at 0).
    """

    def __init__(self, d_model: int, num_heads: int, num_kv_heads: int, bias: bool = True,
                 rng: np.random.Generator | int | None = None, dtype=np.float32):
        if num_heads < 1 or d_model % num_heads:
            raise ValueError(f"GroupedQueryAttention: d_model ({d_model}) must be a positive multiple of "
                             f"num_heads ({num_heads})")
        if num_kv_heads < 1 or num_heads % num_kv_heads:
            raise ValueError(f"GroupedQueryAttention: num_kv_heads ({num_kv_heads}) must divide "
                             f"num_heads ({num_heads})")
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.d_model, self.num_heads, self.num_kv_heads = int(d_model), int(num_heads), int(num_kv_heads)
        self.d_head = self.d_model // self.num_heads
        self.q_proj = Linear(d_model, d_model, bias=bias, rng=rng, dtype=dtype)
        self.kv_proj = Linear(d_model, 2 * self.num_kv_heads * self.d_head, bias=bias, rng=rng, dtype=dtype)
        self.out_proj = Linear(d_model, d_model, bias=bias, rng=rng, dtype=dtype)
        if self.out_proj.b is not None:
            self.out_proj.b.data[...] = 0
        self.cache = None

    def extra_repr(self) -> str:
        return f"{self.d_model}, num_heads={self.num_heads}, num_kv_heads={self.num_kv_heads}"

    def project_heads(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x: (B, T, D) -> q: (B, H, T, d), k, v: (B, H_kv, T, d)."""
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"{self!r} expects input (B, T, {self.d_model}), got {x.shape}")
        # BEGIN SOLUTION q_proj split into H heads; kv_proj's two column blocks split into H_kv heads each
        kv = self.kv_proj.forward(x)
        w = self.num_kv_heads * self.d_head
        return (split_heads(self.q_proj.forward(x), self.num_heads),
                split_heads(kv[..., :w], self.num_kv_heads), split_heads(kv[..., w:], self.num_kv_heads))
        # END SOLUTION

    def forward(self, x: np.ndarray, key_padding_mask: np.ndarray | None = None,
                causal: bool = False) -> np.ndarray:
        """x: (B, T, D) -> (B, T, D). key_padding_mask: (B, T) bool, True = padding; causal:
        position t attends to positions ≤ t. Caches what the backward needs."""
        q, k, v = self.project_heads(x)
        mask = attention_mask(x.shape[1], x.shape[1], causal=causal, key_padding_mask=key_padding_mask)
        out, self.cache = grouped_attention(q, k, v, mask)
        return self.out_proj.forward(merge_heads(out))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy: (B, T, D) -> dx: (B, T, D); accumulates the gradients of the three projections."""
        if self.cache is None:
            raise RuntimeError("GroupedQueryAttention.backward called before forward")
        # TODO: the attention's cache has the grouped shapes (B, H_kv, G, ·, d); a broadcast
        #       key/value head gets the sum of its G query heads' gradients.
        # BEGIN SOLUTION out_proj backward; split into (B, H_kv, G, T, d); attention_backward; sum dk, dv over G; merge; both projections' backward
        B, T, _ = dy.shape
        Hkv, G = self.num_kv_heads, self.num_heads // self.num_kv_heads
        do = split_heads(self.out_proj.backward(dy), self.num_heads).reshape(B, Hkv, G, T, self.d_head)
        dq, dk, dv = attention_backward(do, self.cache)
        dq = merge_heads(dq.reshape(B, self.num_heads, T, self.d_head))
        dkv = np.concatenate([merge_heads(dk.sum(axis=2)), merge_heads(dv.sum(axis=2))], axis=-1)
        return self.q_proj.backward(dq) + self.kv_proj.backward(dkv)
        # END SOLUTION

    @classmethod
    def from_multi_head(cls, mha) -> "GroupedQueryAttention":
        """The same layer as a :class:`~dlfs.attention.multi_head.MultiHeadAttention` (H_kv = H),
        holding copies of its weights: q_proj from the first D columns of ``qkv``, kv_proj from
        the other 2D."""
        D = mha.d_model
        layer = cls(D, mha.num_heads, mha.num_heads, bias=mha.qkv.b is not None, rng=0, dtype=mha.qkv.W.dtype)
        state = {"q_proj.W": mha.qkv.W.data[:, :D], "kv_proj.W": mha.qkv.W.data[:, D:],
                 "out_proj.W": mha.out_proj.W.data}
        if mha.qkv.b is not None:
            state.update({"q_proj.b": mha.qkv.b.data[:D], "kv_proj.b": mha.qkv.b.data[D:],
                          "out_proj.b": mha.out_proj.b.data})
        layer.load_state_dict(state)
        return layer


def use_grouped_query(model, num_kv_heads: int, rng: np.random.Generator | int | None = None):
    """Replace every block's attention of a GPT by a new :class:`GroupedQueryAttention` with
    ``num_kv_heads`` key/value heads (weights drawn from ``rng`` as GPT-2's: N(0, 0.02²),
    out_proj scaled by 1/√(2L), biases 0); returns the model."""
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    c = model.config
    dtype = model.wte.W.dtype
    for block in model.blocks:
        attn = GroupedQueryAttention(c.n_embd, c.n_head, num_kv_heads, rng=rng, dtype=dtype)
        for name, p in attn.named_parameters():
            std = 0.02 / np.sqrt(2 * c.n_layer) if name == "out_proj.W" else 0.02
            p.data[...] = rng.normal(0.0, std, p.shape) if name.endswith(".W") else 0
        block.self_attn = attn
    return model
