"""Topic 29 — the Transformer decoder block: causal self-attention, cross-attention over the
encoder's output (the *memory*), and an MLP, each inside a residual connection with a LayerNorm.

    x: (B, T, D) the target sequence so far      memory: (B, S, D) the encoded source

    post-LN (norm_first=False, 2017):              pre-LN (norm_first=True):
      h1 = norm1(x  + self_attn(x, causal))          h1 = x  + self_attn(norm1(x), causal)
      h2 = norm2(h1 + cross_attn(h1, memory))        h2 = h1 + cross_attn(norm2(h1), memory)
      y  = norm3(h2 + ff(h2))                        y  = h2 + ff(norm3(h2))

In cross-attention the queries come from the decoder and the keys and values from the memory:

    q = x Wq + bq: (B, T, D)      k = memory Wk + bk, v = memory Wv + bv: (B, S, D)
    out = softmax(q kᵀ/√d_h + mask) v, per head;   scores (B, H, T, S), T ≠ S in general

so target position t reads the whole source; the memory's padded positions are masked out
(``memory_key_padding_mask``: (B, S), True = padding), and no causal mask applies there: the
source is known in full. The memory gets a gradient from every decoder block that reads it
(in a full model, from every layer: its gradients add up).

Everything is reused: :class:`CrossAttention` *is* Topic 26's ``MultiHeadAttention`` (the same
parameters ``qkv.W: (D, 3D)``, ``qkv.b``, ``out_proj``, the same initialisation and torch loader),
with q projected from x by the first D columns of ``qkv.W`` and k, v from the memory by the
other 2D; the residual connections and the MLP are Topic 28's ``SublayerConnection`` and
``FeedForward``. The block computes what ``torch.nn.TransformerDecoderLayer(D, H, F, dropout,
activation="gelu", batch_first=True, norm_first=...)`` computes, with the differences of
Topic 28's encoder block (dropout on sublayer outputs and in the MLP only; a query whose keys
are all masked gets 0 from attention instead of NaN).

Parameter names: ``self_attn.*`` and ``cross_attn.*`` (each ``qkv.W``, ``qkv.b``,
``out_proj.W``, ``out_proj.b``; torch's ``self_attn`` and ``multihead_attn``), ``ff.linear1.*``,
``ff.linear2.*``, ``sublayer1.norm.*``, ``sublayer2.norm.*``, ``sublayer3.norm.*`` (torch's
``norm1``, ``norm2``, ``norm3``).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from dlfs.attention.multi_head import MultiHeadAttention, merge_heads, split_heads
from dlfs.attention.scaled_dot_product import attention_backward, attention_forward, attention_mask
from dlfs.nn.forward import linear_forward
from dlfs.nn.layers import Layer, linear_backward
from dlfs.transformer.encoder import FeedForward, SublayerConnection


class CrossAttention(MultiHeadAttention):
    """Multi-head attention of a sequence over a memory, as ``torch.nn.MultiheadAttention(D, H,
    batch_first=True)`` called with ``(x, memory, memory)``.

    ``forward(x, memory, key_padding_mask=None)``: x: (B, T, D), memory: (B, S, D),
    key_padding_mask: (B, S) bool, True = padded memory position -> (B, T, D).
    ``backward(dy)`` -> ``(dx, dmemory)``; accumulates qkv.W, qkv.b, out_proj.W, out_proj.b.
    Parameters, initialisation and ``load_torch_state_dict`` are MultiHeadAttention's: columns
    0 … D−1 of ``qkv.W`` project the queries, D … 3D−1 the keys and values.
    """

    def forward(self, x: np.ndarray, memory: np.ndarray,
                key_padding_mask: np.ndarray | None = None) -> np.ndarray:
        """x: (B, T, D), memory: (B, S, D) -> (B, T, D). Caches the inputs and the attention's cache."""
        D = self.d_model
        if x.ndim != 3 or x.shape[-1] != D or memory.ndim != 3 or memory.shape[-1] != D \
                or memory.shape[0] != x.shape[0]:
            raise ValueError(f"{self!r} expects x (B, T, {D}) and memory (B, S, {D}), got {x.shape} and {memory.shape}")
        mask = attention_mask(x.shape[1], memory.shape[1], key_padding_mask=key_padding_mask)
        W = self.qkv.W.data
        b = self.qkv.b.data if self.qkv.b is not None else None
        # TODO: q from x with the first D columns of W (and b); k and v from the memory with the
        #       other 2D columns, in one product; then heads, attention with the padding mask,
        #       merge, out_proj — as in MultiHeadAttention.forward.
        # BEGIN SOLUTION q from x, [k | v] from memory; heads; attention_forward; merge_heads; out_proj; cache
        q = linear_forward(x, W[:, :D], None if b is None else b[:D])
        kv = linear_forward(memory, W[:, D:], None if b is None else b[D:])
        H = self.num_heads
        o, attn_cache = attention_forward(split_heads(q, H), split_heads(kv[..., :D], H),
                                          split_heads(kv[..., D:], H), mask)
        self.cache = attn_cache
        self.inputs = (x, memory)
        return self.out_proj.forward(merge_heads(o))
        # END SOLUTION

    def backward(self, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """dy: (B, T, D) -> (dx: (B, T, D), dmemory: (B, S, D)); accumulates the parameter gradients."""
        if self.cache is None:
            raise RuntimeError("CrossAttention.backward called before forward")
        D = self.d_model
        W = self.qkv.W.data
        # TODO: two linear backwards: the query part with x, the key-value part (dk, dv side by
        #       side) with the memory; their weight gradients are the two column blocks of qkv.W's.
        # BEGIN SOLUTION out_proj, attention backward; linear_backward of dq (x) and [dk | dv] (memory); accumulate
        x, memory = self.inputs
        do = split_heads(self.out_proj.backward(dy), self.num_heads)
        dq, dk, dv = attention_backward(do, self.cache)
        dx, dWq, dbq = linear_backward(merge_heads(dq), x, W[:, :D])
        dmemory, dWkv, dbkv = linear_backward(np.concatenate([merge_heads(dk), merge_heads(dv)], axis=-1),
                                              memory, W[:, D:])
        self.qkv.W.accumulate_grad(np.concatenate([dWq, dWkv], axis=1))
        if self.qkv.b is not None:
            self.qkv.b.accumulate_grad(np.concatenate([dbq, dbkv]))
        return dx, dmemory
        # END SOLUTION


class DecoderBlock(Layer):
    """One Transformer decoder layer, as ``torch.nn.TransformerDecoderLayer(batch_first=True)``.

    ``forward(x, memory, causal=True, tgt_key_padding_mask=None, memory_key_padding_mask=None)``:
    x: (B, T, D), memory: (B, S, D) -> (B, T, D) (see the module docstring for both
    arrangements); ``backward(dy)`` -> ``(dx, dmemory)``. Sublayers ``self_attn``
    (``MultiHeadAttention``), ``cross_attn`` (:class:`CrossAttention`), ``ff``
    (``FeedForward(D, F)``, F = 4·D by default) and the residual connections ``sublayer1``,
    ``sublayer2``, ``sublayer3`` (Topic 28's ``SublayerConnection``: norm1/dropout1 … norm3/dropout3).
    """

    def __init__(self, d_model: int, num_heads: int, dim_feedforward: int | None = None,
                 dropout: float = 0.1, activation: str = "gelu", norm_first: bool = False,
                 layer_norm_eps: float = 1e-5, bias: bool = True,
                 rng: np.random.Generator | int | None = None, dtype=np.float32):
        rng = np.random.default_rng(rng)
        self.d_model = int(d_model)
        self.norm_first = bool(norm_first)
        dim_feedforward = 4 * self.d_model if dim_feedforward is None else int(dim_feedforward)
        self.self_attn = MultiHeadAttention(d_model, num_heads, bias=bias, rng=rng, dtype=dtype)
        self.cross_attn = CrossAttention(d_model, num_heads, bias=bias, rng=rng, dtype=dtype)
        self.ff = FeedForward(d_model, dim_feedforward, dropout, activation, bias=bias, rng=rng, dtype=dtype)
        self.sublayer1, self.sublayer2, self.sublayer3 = (
            SublayerConnection(d_model, dropout, norm_first, layer_norm_eps, rng=rng, dtype=dtype) for _ in range(3))
        self._masks: tuple = (True, None, None)
        self._memory: np.ndarray | None = None
        self._dmemory: np.ndarray | None = None

    def extra_repr(self) -> str:
        return (f"{self.d_model}, num_heads={self.self_attn.num_heads}, "
                f"dim_feedforward={self.ff.linear1.out_features}, p={self.ff.dropout.p}, "
                f"norm_first={self.norm_first}")

    # The sublayers as functions of the decoder stream h alone, for SublayerConnection
    # (given code: they read the masks and the memory that forward stored).
    def _self_attend(self, h: np.ndarray) -> np.ndarray:
        causal, tgt_key_padding_mask, _ = self._masks
        return self.self_attn.forward(h, key_padding_mask=tgt_key_padding_mask, causal=causal)

    def _cross_attend(self, h: np.ndarray) -> np.ndarray:
        return self.cross_attn.forward(h, self._memory, key_padding_mask=self._masks[2])

    def _cross_backward(self, dy: np.ndarray) -> np.ndarray:
        """dh of the cross-attention sublayer; keeps dmemory for :meth:`backward` to return."""
        dh, self._dmemory = self.cross_attn.backward(dy)
        return dh

    def forward(self, x: np.ndarray, memory: np.ndarray, causal: bool = True,
                tgt_key_padding_mask: np.ndarray | None = None,
                memory_key_padding_mask: np.ndarray | None = None) -> np.ndarray:
        """x: (B, T, D), memory: (B, S, D) -> (B, T, D). causal: target position t attends to
        target positions ≤ t; the key padding masks are (B, T) and (B, S) bool, True = padding."""
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"{self!r} expects x (B, T, {self.d_model}), got {x.shape}")
        self._masks = (causal, tgt_key_padding_mask, memory_key_padding_mask)
        self._memory = memory
        # TODO: three residual sublayers in order: masked self-attention, cross-attention over
        #       the memory, the MLP.
        # BEGIN SOLUTION sublayer1 around the self-attention, sublayer2 around the cross-attention, sublayer3 around ff
        h = self.sublayer1.forward(x, self._self_attend)
        h = self.sublayer2.forward(h, self._cross_attend)
        return self.sublayer3.forward(h, self.ff.forward)
        # END SOLUTION

    def backward(self, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """dy: (B, T, D) -> (dx: (B, T, D), dmemory: (B, S, D)); accumulates every parameter's gradient."""
        if self._memory is None:
            raise RuntimeError("DecoderBlock.backward called before forward")
        # TODO: the three sublayers in reverse order; the memory's gradient comes out of the
        #       cross-attention only.
        # BEGIN SOLUTION sublayer3 (ff), sublayer2 (cross-attention, keeps dmemory), sublayer1 (self-attention)
        dh = self.sublayer3.backward(dy, self.ff.backward)
        dh = self.sublayer2.backward(dh, self._cross_backward)
        dx = self.sublayer1.backward(dh, self.self_attn.backward)
        return dx, self._dmemory
        # END SOLUTION

    def load_torch_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Load ``torch.nn.TransformerDecoderLayer``'s weights, given as NumPy arrays under torch's
        names (``self_attn.*``, ``multihead_attn.*``, ``linear1.*``, ``linear2.*``, ``norm1.*`` …
        ``norm3.*``; Linear weights in torch's (out, in) layout). Raises ValueError, changing
        nothing, when a name is missing or unexpected or a shape is wrong."""
        names = torch_names(self)
        missing = sorted(set(names.values()) - set(state))
        unexpected = sorted(set(state) - set(names.values()))
        if missing or unexpected:
            raise ValueError(f"torch TransformerDecoderLayer state: missing {missing}, unexpected {unexpected}")
        params = dict(self.named_parameters())
        for name, torch_name in names.items():
            shape = params[name].shape[::-1]                    # torch's layout: (out, in)
            if np.shape(state[torch_name]) != shape:
                raise ValueError(f"torch TransformerDecoderLayer state: {torch_name} should be {shape}, "
                                 f"got {np.shape(state[torch_name])}")
        self.load_state_dict({name: np.asarray(state[torch_name]).T for name, torch_name in names.items()})


_ATTENTION_NAMES = {"qkv.W": "in_proj_weight", "qkv.b": "in_proj_bias",
                    "out_proj.W": "out_proj.weight", "out_proj.b": "out_proj.bias"}
_TORCH_NAMES = {
    **{f"self_attn.{ours}": f"self_attn.{theirs}" for ours, theirs in _ATTENTION_NAMES.items()},
    **{f"cross_attn.{ours}": f"multihead_attn.{theirs}" for ours, theirs in _ATTENTION_NAMES.items()},
    "ff.linear1.W": "linear1.weight", "ff.linear1.b": "linear1.bias",
    "ff.linear2.W": "linear2.weight", "ff.linear2.b": "linear2.bias",
    **{f"sublayer{i}.norm.{ours}": f"norm{i}.{theirs}" for i in (1, 2, 3)
       for ours, theirs in (("gamma", "weight"), ("beta", "bias"))},
}


def torch_names(block: DecoderBlock) -> dict[str, str]:
    """Our parameter name -> torch.nn.TransformerDecoderLayer's (2-D weights are transposed)."""
    return {name: _TORCH_NAMES[name] for name, _ in block.named_parameters()}
