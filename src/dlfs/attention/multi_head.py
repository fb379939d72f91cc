"""Topic 26 — multi-head self-attention: H attentions of width D/H side by side, then a projection.

    x: (B, T, D)
    q, k, v = QKVProjection(x)                      each (B, T, D)      one (D, 3D) matmul
    q, k, v = split_heads(·, H)                     each (B, H, T, D/H) reshape + transpose
    o = attention(q, k, v, mask)                    (B, H, T, D/H)      every head at once
    y = merge_heads(o) @ Wo + bo                    (B, T, D)

Head h reads the features ``h·D/H … (h+1)·D/H − 1`` of q, k and v: ``split_heads`` is a
reshape of the last axis to (H, D/H) and a transpose that brings H next to B. Nothing loops
over heads: the leading (B, H) axes are batch axes of the matrix products.

The weights load from PyTorch's ``nn.MultiheadAttention`` layout with
:meth:`MultiHeadAttention.load_torch_state_dict`: torch packs Wq, Wk, Wv as the rows of
``in_proj_weight`` (3D, D), which is the transpose of our (D, 3D) ``qkv.W``.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from dlfs.attention.qkv import QKVProjection
from dlfs.attention.scaled_dot_product import attention_backward, attention_forward, attention_mask
from dlfs.nn.layers import Layer, Linear


def split_heads(x: np.ndarray, num_heads: int) -> np.ndarray:
    """(B, T, D) -> (B, H, T, D/H): head h gets features h·D/H … (h+1)·D/H − 1. A view of x."""
    if x.ndim != 3 or x.shape[-1] % num_heads:
        raise ValueError(f"split_heads expects (B, T, D) with D divisible by {num_heads} heads, got {x.shape}")
    # TODO: reshape the last axis to (H, D/H), then swap the T and H axes. No copy, no loop.
    # BEGIN SOLUTION reshape to (B, T, H, D/H) and transpose to (B, H, T, D/H)
    B, T, D = x.shape
    return x.reshape(B, T, num_heads, D // num_heads).transpose(0, 2, 1, 3)
    # END SOLUTION


def merge_heads(x: np.ndarray) -> np.ndarray:
    """(B, H, T, d_h) -> (B, T, H·d_h): the inverse of :func:`split_heads` (a copy: the heads
    of one position become contiguous)."""
    if x.ndim != 4:
        raise ValueError(f"merge_heads expects (B, H, T, d_h), got {x.shape}")
    # BEGIN SOLUTION transpose back to (B, T, H, d_h), then reshape to (B, T, H·d_h)
    B, H, T, dh = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, H * dh)
    # END SOLUTION


class MultiHeadAttention(Layer):
    """Multi-head self-attention, as ``torch.nn.MultiheadAttention(D, H, batch_first=True)``
    called with ``(x, x, x)``.

    x: (B, T, D) -> y: (B, T, D). Sublayers ``qkv`` (:class:`QKVProjection`, W: (D, 3D))
    and ``out_proj`` (``Linear(D, D)``, its bias zero at initialisation, like torch's).
    ``forward(x, key_padding_mask=None, causal=False)``: key_padding_mask (B, T), True = padding;
    causal: position t attends to positions ≤ t. A query with every key masked outputs
    ``out_proj``'s bias (its attention output is 0; torch gives NaN there).
    """

    def __init__(self, d_model: int, num_heads: int, bias: bool = True,
                 rng: np.random.Generator | int | None = None, dtype=np.float32):
        if num_heads < 1 or d_model < 1 or d_model % num_heads:
            raise ValueError(f"MultiHeadAttention: d_model ({d_model}) must be a positive multiple of "
                             f"num_heads ({num_heads})")
        self.d_model = int(d_model)
        self.num_heads = int(num_heads)
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.qkv = QKVProjection(d_model, bias=bias, rng=rng, dtype=dtype)
        self.out_proj = Linear(d_model, d_model, bias=bias, rng=rng, dtype=dtype)
        if self.out_proj.b is not None:
            self.out_proj.b.data[...] = 0
        self.cache = None

    def extra_repr(self) -> str:
        return f"{self.d_model}, num_heads={self.num_heads}, bias={self.qkv.b is not None}"

    def forward(self, x: np.ndarray, key_padding_mask: np.ndarray | None = None,
                causal: bool = False) -> np.ndarray:
        """x: (B, T, D) -> (B, T, D). key_padding_mask: (B, T) bool, True = padding; causal: each
        position attends only to itself and earlier positions. Caches the attention's cache."""
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"{self!r} expects input (B, T, {self.d_model}), got {x.shape}")
        mask = attention_mask(x.shape[1], x.shape[1], causal=causal, key_padding_mask=key_padding_mask)
        # TODO: project, split the heads, attend (Topic 25's attention_forward), merge, project.
        # BEGIN SOLUTION qkv projection, split_heads, attention_forward with the mask, merge_heads, out_proj; cache
        q, k, v = (split_heads(a, self.num_heads) for a in self.qkv.forward(x))
        o, attn_cache = attention_forward(q, k, v, mask)
        self.cache = attn_cache
        return self.out_proj.forward(merge_heads(o))
        # END SOLUTION

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy: (B, T, D) -> dx: (B, T, D); accumulates the gradients of qkv.W, qkv.b,
        out_proj.W and out_proj.b."""
        if self.cache is None:
            raise RuntimeError("MultiHeadAttention.backward called before forward")
        # TODO: the backward of split_heads is merge_heads (and the other way round).
        # BEGIN SOLUTION out_proj backward, split_heads, attention_backward, merge_heads of dq, dk, dv, qkv backward
        do = split_heads(self.out_proj.backward(dy), self.num_heads)
        dq, dk, dv = attention_backward(do, self.cache)
        return self.qkv.backward(merge_heads(dq), merge_heads(dk), merge_heads(dv))
        # END SOLUTION

    def load_torch_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Load ``torch.nn.MultiheadAttention``'s weights, given as NumPy arrays under torch's names:
        ``in_proj_weight`` (3D, D), ``in_proj_bias`` (3D,), ``out_proj.weight`` (D, D) (out, in),
        ``out_proj.bias`` (D,). Biases are required exactly when this layer has them.
        Raises ValueError, changing nothing, when a name is missing or unexpected or a shape is wrong.
        """
        D = self.d_model
        expected = {"in_proj_weight": (3 * D, D), "out_proj.weight": (D, D)}
        if self.qkv.b is not None:
            expected.update({"in_proj_bias": (3 * D,), "out_proj.bias": (D,)})
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise ValueError(f"torch MultiheadAttention state: missing {missing}, unexpected {unexpected}")
        for name, shape in expected.items():
            if np.shape(state[name]) != shape:
                raise ValueError(f"torch MultiheadAttention state: {name} should be {shape}, "
                                 f"got {np.shape(state[name])}")
        # TODO: torch stores every weight (out, in): transpose both into our (in, out) layout.
        # BEGIN SOLUTION qkv.W = in_proj_weightᵀ, out_proj.W = out_proj.weightᵀ, the biases as they are
        self.qkv.W.data[...] = np.asarray(state["in_proj_weight"]).T
        self.out_proj.W.data[...] = np.asarray(state["out_proj.weight"]).T
        if self.qkv.b is not None:
            self.qkv.b.data[...] = state["in_proj_bias"]
            self.out_proj.b.data[...] = state["out_proj.bias"]
        # END SOLUTION
