"""Topic 25 — scaled dot-product attention, forward and backward, with causal and padding masks.

For one query row ``q_t`` (d,) and the keys and values ``k_s`` (d,), ``v_s`` (d_v,) of a
sequence of length S:

    score_ts = (q_t · k_s) · scale               scale = 1/√d by default
    p_ts     = softmax over s of score_ts        only over the keys that t may attend to
    out_t    = Σ_s p_ts v_s                      (d_v,)

Batched, with any leading axes (usually batch and heads):

    q: (B, H, T, d)   k: (B, H, S, d)   v: (B, H, S, d_v)
    scores = q @ kᵀ · scale:   (B, H, T, S)      ← the O(T·S) matrix
    p      = softmax(scores):  (B, H, T, S)
    out    = p @ v:            (B, H, T, d_v)

Masks are boolean and say **which keys a query may attend to** (True = attend, False =
masked out), broadcastable to (B, H, T, S): the convention of the boolean ``attn_mask`` of
``torch.nn.functional.scaled_dot_product_attention``. :func:`attention_mask` builds one
from a causal flag and a key-padding mask (``(B, S)``, True = padding, the convention of
``torch.nn.MultiheadAttention``'s ``key_padding_mask``).

A query row whose keys are all masked out has no distribution to average with: its output
is defined here as **0** (and it passes no gradient), instead of the NaN that 0/0 would give.

The softmax is the library's single stable one (``dlfs.numerics.softmax``); its
backward is written out in :func:`attention_backward`. Outputs keep the inputs' floating
dtype (float32 for training, float64 for gradient checks).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from dlfs.numerics import softmax


class AttentionCache(NamedTuple):
    """What :func:`attention_forward` keeps for the backward pass.

    q: (..., T, d); k: (..., S, d); v: (..., S, d_v); p: (..., T, S) the attention weights
    (0 on masked entries; each row sums to 1, or is all 0 when fully masked); scale: float.
    """
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    p: np.ndarray
    scale: float


def check_qkv(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None) -> None:
    """Raise ValueError unless q: (..., T, d), k: (..., S, d), v: (..., S, d_v) share their
    leading axes and the mask is boolean and broadcastable to (..., T, S)."""
    if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim:
        raise ValueError(f"attention expects q (..., T, d), k (..., S, d), v (..., S, d_v) with the same "
                         f"number of axes, got q {q.shape}, k {k.shape}, v {v.shape}")
    if q.shape[:-2] != k.shape[:-2] or q.shape[:-2] != v.shape[:-2]:
        raise ValueError(f"q, k, v must share their leading axes, got q {q.shape}, k {k.shape}, v {v.shape}")
    if k.shape[-1] != q.shape[-1]:
        raise ValueError(f"q and k need the same feature size d, got q {q.shape} and k {k.shape}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v need the same length S, got k {k.shape} and v {v.shape}")
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != np.bool_:
            raise ValueError(f"the attention mask must be boolean (True = attend), got dtype {mask.dtype}")
        target = q.shape[:-1] + (k.shape[-2],)
        try:
            if np.broadcast_shapes(mask.shape, target) != target:
                raise ValueError
        except ValueError:
            raise ValueError(f"the attention mask {mask.shape} does not broadcast to (..., T, S) = {target}") \
                from None


def default_scale(q: np.ndarray, scale: float | None) -> float:
    """1/√d for q: (..., T, d) unless ``scale`` is given."""
    return 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)


def attention_mask(T: int, S: int, *, causal: bool = False,
                   key_padding_mask: np.ndarray | None = None) -> np.ndarray | None:
    """The boolean mask "query t may attend to key s" (True = attend), or None for no mask.

    causal: query t sees the keys s ≤ t + (S − T): for T == S, itself and the past. (For
    T ≠ S the last query is aligned with the last key, as when new queries follow S − T
    cached keys.) key_padding_mask: (B, S), True where key s of sample b is padding.

    Returns None (nothing masked), (T, S) (causal only), or (B, 1, T, S) (with padding):
    shapes that broadcast against scores (B, H, T, S).
    """
    if key_padding_mask is not None:
        key_padding_mask = np.asarray(key_padding_mask)
        if key_padding_mask.dtype != np.bool_ or key_padding_mask.ndim != 2 or key_padding_mask.shape[1] != S:
            raise ValueError(f"key_padding_mask must be boolean (B, S) = (B, {S}) with True = padding, "
                             f"got {key_padding_mask.dtype} {key_padding_mask.shape}")
    # TODO: np.tril with an offset gives the causal pattern; a padded key is masked for every
    #       query, so the padding mask becomes (B, 1, 1, S) and combines with `&`.
    # BEGIN SOLUTION the causal (T, S) pattern and/or the negated padding mask as (B, 1, 1, S), combined with &
    allowed = None
    if causal:
        allowed = np.tril(np.ones((T, S), dtype=bool), k=S - T)
    if key_padding_mask is not None:
        keep = ~key_padding_mask[:, None, None, :]
        allowed = keep if allowed is None else keep & allowed
        allowed = np.broadcast_to(allowed, (key_padding_mask.shape[0], 1, T, S))
    return allowed
    # END SOLUTION


def attention_loop(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None,
                   scale: float | None = None) -> np.ndarray:
    """Attention by its definition, one query and one key at a time (for teaching and testing).

    q: (..., T, d); k: (..., S, d); v: (..., S, d_v); mask: boolean, broadcastable to
    (..., T, S), True = attend (None: attend to every key). Returns out: (..., T, d_v) in
    the inputs' dtype; a query whose keys are all masked gets 0.
    """
    check_qkv(q, k, v, mask)
    scale = default_scale(q, scale)
    T, S = q.shape[-2], k.shape[-2]
    allowed = np.ones(q.shape[:-1] + (S,), dtype=bool) if mask is None else \
        np.broadcast_to(mask, q.shape[:-1] + (S,))
    # TODO: for every leading index and every query t: a score per allowed key s (−inf for the
    #       others), the shared softmax over them, and the weighted sum of the value rows.
    # BEGIN SOLUTION loop over the leading indices, queries t and keys s: scores, softmax, weighted sum of v
    out = np.zeros(q.shape[:-1] + (v.shape[-1],), dtype=np.result_type(q, k, v))
    for idx in np.ndindex(*q.shape[:-2]):
        for t in range(T):
            if not allowed[idx + (t,)].any():
                continue                                  # fully masked: output stays 0
            scores = np.full(S, -np.inf, dtype=out.dtype)
            for s in range(S):
                if allowed[idx + (t, s)]:
                    scores[s] = np.dot(q[idx + (t,)], k[idx + (s,)]) * scale
            p = softmax(scores)
            for s in range(S):
                out[idx + (t,)] += p[s] * v[idx + (s,)]
    return out
    # END SOLUTION


def check_bias(bias: np.ndarray | None, q: np.ndarray, k: np.ndarray) -> None:
    """Raise ValueError unless ``bias`` is None or a floating array broadcastable to the scores
    (..., T, S) of q: (..., T, d) and k: (..., S, d) without enlarging them."""
    if bias is None:
        return
    bias = np.asarray(bias)
    target = q.shape[:-1] + (k.shape[-2],)
    if bias.dtype.kind != "f":
        raise ValueError(f"the score bias must be a floating array, got dtype {bias.dtype}")
    try:
        if np.broadcast_shapes(bias.shape, target) != target:
            raise ValueError
    except ValueError:
        raise ValueError(f"the score bias {bias.shape} does not broadcast to (..., T, S) = {target}") from None


def attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None,
                      scale: float | None = None, bias: np.ndarray | None = None
                      ) -> tuple[np.ndarray, AttentionCache]:
    """Batched scaled dot-product attention: two matrix products and one softmax.

    q: (..., T, d), usually (B, H, T, d); k: (..., S, d); v: (..., S, d_v); mask: boolean,
    broadcastable to (..., T, S), True = attend (None: no mask); scale: 1/√d by default;
    bias: an additive score bias, float, broadcastable to (..., T, S) (e.g. ALiBi's (H, T, S),
    Topic 27), added to the scaled scores before the mask and the softmax (None: no bias).
    Returns ``(out, cache)``: out: (..., T, d_v) in the inputs' dtype, and the
    :class:`AttentionCache` for :func:`attention_backward` (its ``p`` is (..., T, S)).
    A constant bias changes nothing in the backward pass (no gradient flows into it).
    """
    check_qkv(q, k, v, mask)
    check_bias(bias, q, k)
    scale = default_scale(q, scale)
    # TODO: scores = (q·scale) @ kᵀ, called `scores` (the given lines below add the bias to it);
    #       masked entries set to −inf before the softmax; then set the weights of masked
    #       entries to 0 (a fully masked row comes out of softmax as 0/0 = NaN). No Python
    #       loops: matmul runs every (batch, head) pair through BLAS.
    # BEGIN SOLUTION scores = (q·scale) @ kᵀ by matmul
    scores = (q * scale) @ k.swapaxes(-1, -2)
    # END SOLUTION
    if bias is not None:
        scores += bias                                    # in place: keeps the scores' dtype
    # BEGIN SOLUTION −inf on masked entries, the shared softmax, masked weights to 0, p @ v
    if mask is not None:
        blocked = ~mask
        np.copyto(scores, -np.inf, where=blocked)
    p = softmax(scores, axis=-1)
    if mask is not None:
        np.copyto(p, 0, where=blocked)                    # fully masked rows: NaN -> 0
    out = p @ v
    return out, AttentionCache(q, k, v, p, scale)
    # END SOLUTION


def attention_backward(dout: np.ndarray, cache: AttentionCache
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The gradients of :func:`attention_forward` given dout = dL/dout: (..., T, d_v).

    With scores = q kᵀ·scale, p = softmax(scores) row by row and out = p v:

        dv = pᵀ @ dout                          (..., S, d_v)
        dp = dout @ vᵀ                          (..., T, S)
        ds = p ⊙ (dp − Σ_s dp ⊙ p)              the softmax backward, per row
        dq = ds @ k · scale                     (..., T, d)
        dk = dsᵀ @ q · scale                    (..., S, d)

    Masked entries have p = 0, so they get ds = 0: no gradient flows through them.
    Returns ``(dq, dk, dv)`` shaped like q, k, v.
    """
    # TODO: the softmax backward is one line: p times (dp minus its p-weighted row mean).
    #       Never build the (S, S) Jacobian of a row.
    # BEGIN SOLUTION dv = pᵀ dout; dp = dout vᵀ; ds = p ⊙ (dp − rowsum(dp ⊙ p)); dq = ds k·scale; dk = dsᵀ q·scale
    q, k, v, p, scale = cache
    dv = p.swapaxes(-1, -2) @ dout
    ds = dout @ v.swapaxes(-1, -2)                        # dp
    ds -= np.einsum("...ts,...ts->...t", ds, p)[..., None]
    ds *= p
    dq = ds @ k
    dq *= scale
    dk = ds.swapaxes(-1, -2) @ q
    dk *= scale
    return dq, dk, dv
    # END SOLUTION
