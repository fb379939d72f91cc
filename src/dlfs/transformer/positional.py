"""Topic 27 — positional encodings: how a transformer knows where each token is.

Self-attention alone is blind to order: permute the positions of its input and its outputs
are permuted the same way (Topic 26). The order has to be put in, and there are two places
to put it:

**At the input**, added once to the token embeddings ``x: (B, T, D)`` before the first block:

- *sinusoidal* (Vaswani et al., 2017), fixed: with ω_i = base^(−2i/D), i = 0 … D/2 − 1,

      PE[p, 2i] = sin(p·ω_i)        PE[p, 2i+1] = cos(p·ω_i)          PE: (T, D)

- *learned* (BERT, GPT-2): a trained table ``W: (max_len, D)``, one row per position; there
  is no row for a position ≥ max_len.

**Inside every attention layer**, acting on the queries, keys and scores of each head:

- *RoPE*, rotary position embedding (Su et al., 2021): the features (2j, 2j+1) of a query
  or key at position m are a point in the plane, rotated by the angle m·θ_j with
  θ_j = base^(−2j/d) (d the head size). In complex numbers, z_j = x_2j + i·x_2j+1 becomes
  z_j·e^(i·m·θ_j). Then ⟨R_m q, R_n k⟩ = ⟨q, R_(n−m) k⟩: the score depends on the offset only.
- *ALiBi*, attention with linear biases (Press et al., 2022): no embedding at all; head h adds
  ``−m_h·|i − j|`` to the score of query i and key j, slopes m_h a geometric sequence.

Shapes: q, k, v: (B, H, T, d) as in ``dlfs.attention``; a RoPE cos/sin table: (T, d/2); an
ALiBi bias: (H, T, S), added to the scores by ``attention_forward(..., bias=)``.
:func:`attend` and :func:`attend_backward` run Topic 25's attention with RoPE and/or ALiBi;
:class:`PositionalSelfAttention` is Topic 26's multi-head layer with that attention inside.

Tables are computed in float64 and returned in the caller's dtype (float32 for training,
float64 for gradient checks); the classes keep a cache of them (given code).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from dlfs.attention.multi_head import MultiHeadAttention, merge_heads, split_heads
from dlfs.attention.scaled_dot_product import (AttentionCache, attention_backward, attention_forward,
                                               attention_mask)
from dlfs.nn.layers import Layer, Parameter

DEFAULT_BASE = 10000.0


def _check_even(dim: int, what: str) -> int:
    if int(dim) != dim or dim < 2 or dim % 2:
        raise ValueError(f"{what} needs an even size ≥ 2 (features come in pairs), got {dim}")
    return int(dim)


def _check_positions(T: int, offset: int) -> None:
    if T < 0 or offset < 0:
        raise ValueError(f"positions start at offset ≥ 0 and number T ≥ 0, got T={T}, offset={offset}")


# -- the shared frequencies ------------------------------------------------------------------

def inverse_frequencies(dim: int, base: float = DEFAULT_BASE) -> np.ndarray:
    """ω_i = base^(−2i/dim) for i = 0 … dim/2 − 1: (dim/2,) float64, from 1 down to ≈ 1/base.

    Pair i of a sinusoidal encoding of width dim, and pair j of a RoPE head of size dim,
    turn by these angles per position: wavelengths 2π … ≈ 2π·base positions.
    """
    dim = _check_even(dim, "inverse_frequencies")
    # BEGIN SOLUTION base to the power −2i/dim for i = 0 … dim/2 − 1, in float64
    return base ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)
    # END SOLUTION


# -- sinusoidal ---------------------------------------------------------------------------------

def sinusoidal_encoding(T: int, d_model: int, base: float = DEFAULT_BASE, offset: int = 0,
                        dtype=np.float32) -> np.ndarray:
    """PE: (T, d_model) for the positions p = offset … offset + T − 1:
    PE[p, 2i] = sin(p·ω_i), PE[p, 2i+1] = cos(p·ω_i), ω = :func:`inverse_frequencies`.
    Computed in float64, returned in ``dtype``."""
    d_model = _check_even(d_model, "sinusoidal_encoding")
    _check_positions(T, offset)
    # TODO: one (T, D/2) table of angles p·ω_i (an outer product), its sines into the even
    #       columns and its cosines into the odd ones.
    # BEGIN SOLUTION angles = positions ⊗ ω (float64); sin to columns 0, 2, 4 …, cos to 1, 3, 5 …
    angles = np.arange(offset, offset + T, dtype=np.float64)[:, None] * inverse_frequencies(d_model, base)
    pe = np.empty((T, d_model), dtype=dtype)
    pe[:, 0::2] = np.sin(angles)
    pe[:, 1::2] = np.cos(angles)
    return pe
    # END SOLUTION


class _TableCache:
    """Rows 0 … n − 1 of a position table, extended (doubling) when a longer one is asked for,
    one copy per dtype. ``make(n)`` builds rows 0 … n − 1 as a tuple of float64 arrays."""

    def __init__(self, make):
        self.make = make
        self.tables: dict[np.dtype, tuple[np.ndarray, ...]] = {}
        self.length = 0

    def rows(self, T: int, offset: int, dtype) -> tuple[np.ndarray, ...]:
        _check_positions(T, offset)
        dtype = np.dtype(dtype)
        if offset + T > self.length:
            n = max(offset + T, 2 * self.length, 64)
            self.tables = {np.dtype(np.float64): self.make(n)}    # built first: a failure changes nothing
            self.length = n
        if dtype not in self.tables:
            self.tables[dtype] = tuple(t.astype(dtype) for t in self.tables[np.dtype(np.float64)])
        return tuple(t[offset:offset + T] for t in self.tables[dtype])


def _input_dtype(x: np.ndarray):
    return x.dtype if x.dtype.kind == "f" else np.float64


class SinusoidalPositionalEncoding(Layer):
    """x: (..., T, D) -> x + PE[offset … offset + T − 1], PE = :func:`sinusoidal_encoding`.

    No parameters; any length. The table is cached (given code) and added in x's dtype.
    ``backward(dy)`` returns dx: the encoding is a constant, so dx = dy.
    """

    def __init__(self, d_model: int, base: float = DEFAULT_BASE):
        self.d_model = _check_even(d_model, "SinusoidalPositionalEncoding")
        self.base = float(base)
        self._cache = _TableCache(lambda n: (sinusoidal_encoding(n, self.d_model, self.base, dtype=np.float64),))

    def extra_repr(self) -> str:
        return f"{self.d_model}, base={self.base:g}"

    def table(self, T: int, offset: int = 0, dtype=np.float32) -> np.ndarray:
        """PE rows offset … offset + T − 1: (T, D) in ``dtype`` (from the cache)."""
        return self._cache.rows(T, offset, dtype)[0]

    def forward(self, x: np.ndarray, offset: int = 0) -> np.ndarray:
        """x: (..., T, D) -> (..., T, D); positions offset … offset + T − 1."""
        if x.ndim < 2 or x.shape[-1] != self.d_model:
            raise ValueError(f"{self!r} expects input (..., T, {self.d_model}), got {x.shape}")
        # BEGIN SOLUTION x plus the table's rows for positions offset … offset + T − 1, in x's dtype
        return x + self.table(x.shape[-2], offset, _input_dtype(x))
        # END SOLUTION

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy: (..., T, D) -> dx = dy."""
        # BEGIN SOLUTION the encoding is a constant added to x: the gradient passes through unchanged
        return dy
        # END SOLUTION


# -- learned --------------------------------------------------------------------------------------

class LearnedPositionalEmbedding(Layer):
    """x: (..., T, D) -> x + W[offset … offset + T − 1], with a trained table W: (max_len, D).

    Initialised N(0, std²) with std = 0.02 by default (GPT-2's and nanoGPT's choice; torch's
    ``nn.Embedding`` draws N(0, 1)). A position ≥ max_len has no row: forward raises
    ValueError. ``backward(dy)`` accumulates W.grad (rows offset … offset + T − 1 receive dy
    summed over the leading axes; the other rows nothing) and returns dx = dy.
    """

    def __init__(self, max_len: int, d_model: int, std: float = 0.02,
                 rng: np.random.Generator | int | None = None, dtype=np.float32):
        if max_len < 1 or d_model < 1:
            raise ValueError(f"LearnedPositionalEmbedding needs positive sizes, got ({max_len}, {d_model})")
        self.max_len, self.d_model = int(max_len), int(d_model)
        rng = np.random.default_rng(rng)
        self.W = Parameter((rng.standard_normal((self.max_len, self.d_model)) * std).astype(dtype), name="W")
        self.span: tuple[int, int] | None = None       # (offset, T) of the last forward

    def extra_repr(self) -> str:
        return f"{self.max_len}, {self.d_model}"

    def forward(self, x: np.ndarray, offset: int = 0) -> np.ndarray:
        """x: (..., T, D) -> (..., T, D); positions offset … offset + T − 1 must be < max_len."""
        if x.ndim < 2 or x.shape[-1] != self.d_model:
            raise ValueError(f"{self!r} expects input (..., T, {self.d_model}), got {x.shape}")
        T = x.shape[-2]
        _check_positions(T, offset)
        if offset + T > self.max_len:
            raise ValueError(
                f"{self!r} has learned positions 0 … {self.max_len - 1} only; positions {offset} … "
                f"{offset + T - 1} were asked for. A learned table does not extend beyond the length it "
                f"was built for: use a longer max_len, or windows of at most {self.max_len} positions.")
        # BEGIN SOLUTION remember (offset, T) for backward; x plus the rows offset … offset + T − 1 of W
        self.span = (offset, T)
        return x + self.W.data[offset:offset + T]
        # END SOLUTION

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy: (..., T, D) -> dx = dy; W.grad[offset:offset + T] += dy summed over the leading axes."""
        if self.span is None:
            raise RuntimeError("LearnedPositionalEmbedding.backward called before forward")
        # TODO: row p of W was added to every sequence of the batch at position p.
        # BEGIN SOLUTION sum dy over every leading axis into rows offset … offset + T − 1 of W.grad; return dy
        offset, T = self.span
        if self.W.grad is None:
            self.W.zero_grad()
        self.W.grad[offset:offset + T] += dy.reshape(-1, T, self.d_model).sum(axis=0)
        return dy
        # END SOLUTION


# -- RoPE -------------------------------------------------------------------------------------------

def rope_cos_sin(T: int, head_dim: int, base: float = DEFAULT_BASE, offset: int = 0,
                 dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of the rotation angles m·θ_j: each (T, head_dim/2), for the positions
    m = offset … offset + T − 1 and θ = :func:`inverse_frequencies` (head_dim, base).
    Computed in float64, returned in ``dtype``."""
    head_dim = _check_even(head_dim, "rope_cos_sin")
    _check_positions(T, offset)
    # BEGIN SOLUTION angles = positions ⊗ θ in float64; their cos and sin in dtype
    angles = np.arange(offset, offset + T, dtype=np.float64)[:, None] * inverse_frequencies(head_dim, base)
    return np.cos(angles).astype(dtype), np.sin(angles).astype(dtype)
    # END SOLUTION


def _check_rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> None:
    if x.ndim < 2 or x.shape[-1] % 2 or cos.shape != (x.shape[-2], x.shape[-1] // 2) or sin.shape != cos.shape:
        raise ValueError(f"RoPE expects x (..., T, d) with d even and cos, sin (T, d/2); got x {x.shape}, "
                         f"cos {cos.shape}, sin {sin.shape}")


def apply_rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotate each feature pair (2j, 2j+1) of each position t by the angle whose cos and sin
    are cos[t, j], sin[t, j]:

        y_2j   = x_2j·cos − x_2j+1·sin
        y_2j+1 = x_2j·sin + x_2j+1·cos          (z_j = x_2j + i·x_2j+1 times e^(i·angle))

    x: (..., T, d); cos, sin: (T, d/2). Returns y shaped like x, a new array.
    """
    _check_rope(x, cos, sin)
    # TODO: x[..., 0::2] and x[..., 1::2] are the two coordinates of every pair; write the
    #       results into the same interleaved columns of a new array.
    # BEGIN SOLUTION the even and odd features as the pair's coordinates; the 2×2 rotation; interleave back
    x1, x2 = x[..., 0::2], x[..., 1::2]
    y = np.empty(x.shape, dtype=np.result_type(x, cos))
    y[..., 0::2] = x1 * cos - x2 * sin
    y[..., 1::2] = x1 * sin + x2 * cos
    return y
    # END SOLUTION


def apply_rope_backward(dy: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """dx for y = apply_rope(x, cos, sin), given dy: (..., T, d). The rotation is linear and
    orthogonal, so dx = Rᵀ dy: the inverse rotation, by the opposite angle."""
    _check_rope(dy, cos, sin)
    # BEGIN SOLUTION the transpose of a rotation is the rotation by minus the angle: cos stays, sin flips sign
    return apply_rope(dy, cos, -sin)
    # END SOLUTION


class RotaryEmbedding:
    """RoPE for heads of size ``head_dim``: rotates queries or keys (..., T, head_dim) by their
    positions offset … offset + T − 1. No parameters; the cos/sin tables are cached (given code).

    ``rotate(x, offset)`` and ``rotate_backward(dy, offset)`` (the inverse rotation) are
    :func:`apply_rope` and :func:`apply_rope_backward` with the cached tables.
    """

    def __init__(self, head_dim: int, base: float = DEFAULT_BASE):
        self.head_dim = _check_even(head_dim, "RotaryEmbedding")
        self.base = float(base)
        self._cache = _TableCache(lambda n: rope_cos_sin(n, self.head_dim, self.base, dtype=np.float64))

    def __repr__(self) -> str:
        return f"RotaryEmbedding({self.head_dim}, base={self.base:g})"

    def tables(self, T: int, offset: int = 0, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
        """(cos, sin), each (T, head_dim/2), for positions offset … offset + T − 1, in dtype."""
        return self._cache.rows(T, offset, dtype)

    def rotate(self, x: np.ndarray, offset: int = 0) -> np.ndarray:
        """x: (..., T, head_dim) -> the rotated copy."""
        return apply_rope(x, *self.tables(x.shape[-2], offset, _input_dtype(x)))

    def rotate_backward(self, dy: np.ndarray, offset: int = 0) -> np.ndarray:
        """dy: (..., T, head_dim) -> dx, the gradient through :meth:`rotate` at the same offset."""
        return apply_rope_backward(dy, *self.tables(dy.shape[-2], offset, _input_dtype(dy)))


# -- ALiBi -------------------------------------------------------------------------------------------

def alibi_slopes(num_heads: int) -> np.ndarray:
    """The head slopes m_h of ALiBi: (num_heads,) float64, as in Press et al. (2022).

    For H a power of two: the geometric sequence m_h = 2^(−8h/H), h = 1 … H (H = 8:
    1/2, 1/4, …, 1/256). Otherwise, with n the largest power of two below H: the n slopes of
    n heads, followed by the first H − n of every other slope of 2n heads (those at odd h),
    which fall between them.
    """
    if int(num_heads) != num_heads or num_heads < 1:
        raise ValueError(f"alibi_slopes needs a positive number of heads, got {num_heads}")
    H = int(num_heads)
    # BEGIN SOLUTION the geometric sequence for the largest power of two n ≤ H; then every other slope of 2n heads
    def power_of_two(n: int) -> np.ndarray:
        return 2.0 ** (-8.0 * np.arange(1, n + 1) / n)

    n = 1 << (H.bit_length() - 1)                  # the largest power of two ≤ H
    slopes = power_of_two(n)
    if n < H:
        slopes = np.concatenate([slopes, power_of_two(2 * n)[0::2][:H - n]])
    return slopes
    # END SOLUTION


def alibi_bias(slopes: np.ndarray, T: int, S: int | None = None, dtype=np.float32) -> np.ndarray:
    """The ALiBi score bias: (H, T, S), bias[h, t, s] = −slopes[h]·|i − s| with i = t + S − T.

    The T queries are the last T of the S key positions (the alignment of Topic 25's causal
    mask), so for S = T, i = t. Under a causal mask only s ≤ i matters, where the bias is
    −m·(i − s): the paper's. S defaults to T.
    """
    slopes = np.asarray(slopes, dtype=np.float64)
    S = T if S is None else S
    if slopes.ndim != 1 or T < 0 or S < T:
        raise ValueError(f"alibi_bias expects slopes (H,) and 0 ≤ T ≤ S, got slopes {slopes.shape}, T={T}, S={S}")
    # BEGIN SOLUTION query positions S−T … S−1 against key positions 0 … S−1; −slope·|distance|, (H, T, S) in dtype
    distance = np.abs(np.arange(S - T, S)[:, None] - np.arange(S)[None, :])
    return (-slopes[:, None, None] * distance).astype(dtype)
    # END SOLUTION


class ALiBi:
    """ALiBi for ``num_heads`` heads: ``slopes`` (H,) and ``bias(T, S, dtype)``: (H, T, S).
    No parameters: the bias is a constant added to the scores."""

    def __init__(self, num_heads: int):
        self.slopes = alibi_slopes(num_heads)

    @property
    def num_heads(self) -> int:
        return self.slopes.size

    def __repr__(self) -> str:
        return f"ALiBi({self.num_heads})"

    def bias(self, T: int, S: int | None = None, dtype=np.float32) -> np.ndarray:
        """(H, T, S): see :func:`alibi_bias`."""
        return alibi_bias(self.slopes, T, S, dtype)


# -- attention with positions --------------------------------------------------------------------

class PositionalAttentionCache(NamedTuple):
    """What :func:`attend` keeps: the attention's cache (of the rotated q and k), the RoPE
    used (or None) and the position of the first query."""
    attention: AttentionCache
    rope: RotaryEmbedding | None
    q_offset: int


def attend(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None, *,
           rope: RotaryEmbedding | None = None, alibi: ALiBi | None = None,
           scale: float | None = None) -> tuple[np.ndarray, PositionalAttentionCache]:
    """Topic 25's scaled dot-product attention with RoPE and/or ALiBi.

    q: (B, H, T, d); k: (B, H, S, d); v: (B, H, S, d_v); mask as for ``attention_forward``.
    The keys are at positions 0 … S − 1 and the queries at S − T … S − 1 (the last T; for
    S = T the same positions). rope: rotate q and k (not v) by their positions; alibi: add
    its (H, T, S) bias to the scores. Returns ``(out, cache)``, out: (B, H, T, d_v).
    """
    if alibi is not None and (q.ndim < 3 or q.shape[-3] != alibi.num_heads):
        raise ValueError(f"{alibi!r} needs q (..., {alibi.num_heads}, T, d) with one head per slope, got {q.shape}")
    T, S = q.shape[-2], k.shape[-2]
    if S < T:
        raise ValueError(f"attend expects at least as many keys as queries (the queries are the last T "
                         f"positions), got T={T}, S={S}")
    # TODO: RoPE acts on q and k before the scores (each at its own positions); ALiBi's bias goes
    #       into attention_forward's `bias`. Keep what the backward needs.
    # BEGIN SOLUTION rotate q (offset S − T) and k (offset 0); the ALiBi bias in q's dtype; attention_forward; cache
    if rope is not None:
        q = rope.rotate(q, S - T)
        k = rope.rotate(k, 0)
    bias = None if alibi is None else alibi.bias(T, S, q.dtype)
    out, cache = attention_forward(q, k, v, mask, scale, bias)
    return out, PositionalAttentionCache(cache, rope, S - T)
    # END SOLUTION


def attend_backward(dout: np.ndarray, cache: PositionalAttentionCache
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dq, dk, dv of :func:`attend` given dout: (B, H, T, d_v). ALiBi's constant bias adds
    nothing; RoPE's rotations are undone on dq and dk (the inverse rotation)."""
    # BEGIN SOLUTION attention_backward; then the inverse rotation of dq (offset q_offset) and dk (offset 0)
    dq, dk, dv = attention_backward(dout, cache.attention)
    if cache.rope is not None:
        dq = cache.rope.rotate_backward(dq, cache.q_offset)
        dk = cache.rope.rotate_backward(dk, 0)
    return dq, dk, dv
    # END SOLUTION


class PositionalSelfAttention(MultiHeadAttention):
    """Multi-head self-attention (Topic 26) whose attention is :func:`attend`: RoPE on each
    head's queries and keys (``rope=True``) and/or ALiBi on its scores (``alibi=True``).

    The same parameters, names, initialisation and torch loader as
    :class:`~dlfs.attention.multi_head.MultiHeadAttention`, and the same call:
    ``forward(x, key_padding_mask=None, causal=False)``: (B, T, D) -> (B, T, D), positions
    0 … T − 1; ``backward(dy)`` -> dx. With neither option it computes what MultiHeadAttention does.
    It drops into a Topic 28 block in place of its ``self_attn``.
    """

    def __init__(self, d_model: int, num_heads: int, rope: bool = False, alibi: bool = False,
                 rope_base: float = DEFAULT_BASE, bias: bool = True,
                 rng: np.random.Generator | int | None = None, dtype=np.float32):
        super().__init__(d_model, num_heads, bias=bias, rng=rng, dtype=dtype)
        self.rope = RotaryEmbedding(d_model // num_heads, rope_base) if rope else None
        self.alibi = ALiBi(num_heads) if alibi else None

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rope={self.rope is not None}, alibi={self.alibi is not None}"

    def forward(self, x: np.ndarray, key_padding_mask: np.ndarray | None = None,
                causal: bool = False) -> np.ndarray:
        """x: (B, T, D) -> (B, T, D); masks as in MultiHeadAttention.forward."""
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"{self!r} expects input (B, T, {self.d_model}), got {x.shape}")
        mask = attention_mask(x.shape[1], x.shape[1], causal=causal, key_padding_mask=key_padding_mask)
        # TODO: MultiHeadAttention.forward with attend (and this layer's rope and alibi) in place
        #       of attention_forward.
        # BEGIN SOLUTION qkv, split_heads, attend with rope and alibi, cache, merge_heads, out_proj
        q, k, v = (split_heads(a, self.num_heads) for a in self.qkv.forward(x))
        o, self.cache = attend(q, k, v, mask, rope=self.rope, alibi=self.alibi)
        return self.out_proj.forward(merge_heads(o))
        # END SOLUTION

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy: (B, T, D) -> dx: (B, T, D); accumulates qkv's and out_proj's gradients."""
        if self.cache is None:
            raise RuntimeError("PositionalSelfAttention.backward called before forward")
        # BEGIN SOLUTION out_proj backward, split_heads, attend_backward, merge_heads of dq, dk, dv, qkv backward
        do = split_heads(self.out_proj.backward(dy), self.num_heads)
        dq, dk, dv = attend_backward(do, self.cache)
        return self.qkv.backward(merge_heads(dq), merge_heads(dk), merge_heads(dv))
        # END SOLUTION
