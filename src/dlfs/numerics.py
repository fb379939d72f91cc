"""Numerically stable ``logsumexp``, ``softmax`` and ``log_softmax`` on plain arrays.

Topic 02 writes them (they are part of its exercise, next to the ``Tensor`` methods that
call them); later topics import them from here (the softmax layers of Topic 07, the
cross-entropy of Topic 08). They are the library's only implementations.

Each one subtracts the maximum along ``axis`` before exponentiating, so that no exponent is
positive and nothing overflows, even for inputs of ±1e4. ``x``: any shape, float32 or
float64; the result keeps x's floating dtype.
"""

from __future__ import annotations

import numpy as np

__all__ = ["logsumexp", "softmax", "log_softmax"]


def logsumexp(x: np.ndarray, axis=-1, keepdims: bool = False) -> np.ndarray:
    """log(sum(exp(x), axis)) without overflow or underflow.

    x: any shape; axis: an int, a tuple of ints or None (all axes). Returns x's shape with
    ``axis`` removed (kept with size 1 if ``keepdims``), in x's floating dtype.
    Uses logsumexp(x) = m + log(sum(exp(x - m))) with m = max(x): every exponent is <= 0.
    A slice that is all -inf gives -inf (exp of nothing sums to 0); +inf gives +inf.
    """
    # TODO: subtract the max (with keepdims=True), exponentiate, sum, log, add the max back.
    # BEGIN SOLUTION subtract the max along axis before exp, add it back after the log
    x = np.asarray(x)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)       # all -inf (or some +inf): no shift needed
    with np.errstate(divide="ignore"):
        s = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=keepdims))
    return s + (m if keepdims else np.squeeze(m, axis=axis))
    # END SOLUTION


def softmax(x: np.ndarray, axis=-1) -> np.ndarray:
    """exp(x) / sum(exp(x), axis), computed as exp(x - max) / sum(exp(x - max)) so that
    nothing overflows. x: any shape; returns x's shape and dtype; sums to 1 along ``axis``.
    Entries equal to -inf (masked) get probability 0."""
    # BEGIN SOLUTION softmax along axis, shifted by the max for stability
    x = np.asarray(x)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.exp(x - m)
    with np.errstate(invalid="ignore", divide="ignore"):
        return e / np.sum(e, axis=axis, keepdims=True)
    # END SOLUTION


def log_softmax(x: np.ndarray, axis=-1) -> np.ndarray:
    """log(softmax(x, axis)) = (x - m) - log(sum(exp(x - m))) with m = max(x): accurate even
    where softmax underflows to 0 (np.log(softmax(x)) would give -inf there). x: any shape.

    Subtracting m first matters in float32: x - logsumexp(x) at x ~ 1e4 cancels two large
    numbers and keeps only ~1e-3 of absolute precision."""
    # BEGIN SOLUTION log-softmax: shift by the max, then subtract the log of the summed exps
    x = np.asarray(x)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    shifted = x - m
    with np.errstate(divide="ignore"):
        return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
    # END SOLUTION
