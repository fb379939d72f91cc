"""Topic 33 — uniform quantisation: quantise, dequantise, fake quantisation and its
straight-through backward, per tensor, per channel and per group, symmetric and asymmetric.

A real value x is represented by an integer q and a (scale s, zero point z):

    q = clamp(round(x / s) + z, qmin, qmax)          x̂ = (q − z) · s          (dequantised)

**Rounding**: half to even (``np.rint``: 0.5 → 0, 1.5 → 2, −2.5 → −2), as
``torch.fake_quantize_per_tensor_affine`` and ``torch.quantize_per_channel`` (C's nearbyint).

**Ranges** (b bits):

* symmetric:  z = 0, q ∈ [−(2^(b−1) − 1), 2^(b−1) − 1]  (int8: [−127, 127], int4: [−7, 7]; the
  restricted range, so that +max and −max both exist), s = max|x| / qmax;
* asymmetric: q ∈ [0, 2^b − 1] (uint8: [0, 255], uint4: [0, 15]), the range [lo, hi] is first
  widened to contain 0 (so that 0 is exact: padding, ReLU zeros), s = (hi − lo) / (qmax − qmin),
  z = clamp(qmin − round(lo / s), qmin, qmax).

A range of zero width (an all-zero tensor or block) gets s = 1 (any scale represents 0
exactly). Inside the range the error is at most s/2 per element; outside it, values clamp.

**Granularity** (:class:`QScheme`): ``axis=None`` one (s, z) for the whole tensor; ``axis=a``
one per index along axis a (per channel: for a ``Linear`` weight W (in, out), ``axis=1``
gives one per output); ``axis=a, group_size=g`` one per g consecutive elements along axis a,
for each index of the other axes (group-wise: W (in, out) with ``axis=0, g=32`` gives
(in/32, out) scales). Scales and zero points are stored in the *blocked* shape: the tensor
seen with axis a split into (n/g, g) for groups, so that they broadcast against it.

**Calibration** (:func:`compute_qparams`): ``"minmax"`` takes the range from the smallest and
largest value; ``"percentile"`` from the p-th and (100 − p)-th percentiles (p = 99.99 by
default), which clips rare outliers to spend the levels on the bulk of the values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


@dataclass(frozen=True)
class QScheme:
    """How to quantise: bits (2–8), symmetric or not, axis (None: per tensor), group_size."""

    bits: int = 8
    symmetric: bool = True
    axis: int | None = None
    group_size: int | None = None

    def __post_init__(self):
        if not 2 <= int(self.bits) <= 8:
            raise ValueError(f"bits must be between 2 and 8, got {self.bits}")
        if self.group_size is not None and (self.axis is None or int(self.group_size) < 1):
            raise ValueError(f"group-wise quantisation needs an axis and a positive group_size, got {self}")

    @property
    def qmin(self) -> int:
        return -(2 ** (self.bits - 1) - 1) if self.symmetric else 0

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1 if self.symmetric else 2 ** self.bits - 1

    @property
    def storage_dtype(self) -> np.dtype:
        """int8 for symmetric codes, uint8 for asymmetric ones (4-bit codes use one byte each
        here; packed two to a byte they take half: see ``dlfs.quant.ptq.weight_bytes``)."""
        return np.dtype(np.int8 if self.symmetric else np.uint8)


class QParams(NamedTuple):
    """scale: float array, zero_point: int32 array, both in the blocked shape (see the module
    docstring); scheme: the :class:`QScheme`."""
    scale: np.ndarray
    zero_point: np.ndarray
    scheme: QScheme


def blocked(x: np.ndarray, scheme: QScheme) -> tuple[np.ndarray, tuple[int, ...]]:
    """(x viewed in the blocked shape, the axes one (scale, zero point) is computed over)."""
    x = np.asarray(x)
    if scheme.axis is None:
        return x, tuple(range(x.ndim))
    if not -x.ndim <= scheme.axis < x.ndim:
        raise ValueError(f"axis {scheme.axis} is out of range for an array of shape {x.shape}")
    a = scheme.axis % x.ndim
    if scheme.group_size is None:
        return x, tuple(i for i in range(x.ndim) if i != a)
    n, g = x.shape[a], int(scheme.group_size)
    if n % g:
        raise ValueError(f"axis {a} of {x.shape} has {n} elements, not a multiple of group_size {g}")
    return x.reshape(x.shape[:a] + (n // g, g) + x.shape[a + 1:]), (a + 1,)


def compute_qparams(x: np.ndarray, scheme: QScheme, method: str = "minmax",
                    percentile: float = 99.99) -> QParams:
    """The scale and zero point of each block of ``x`` under ``scheme``, from its range.

    method: "minmax" (the smallest and largest value) or "percentile" (the ``percentile``-th and
    (100 − percentile)-th). Scales keep x's floating dtype; zero points are int32.
    """
    if method not in ("minmax", "percentile"):
        raise ValueError(f"method must be 'minmax' or 'percentile', got {method!r}")
    xb, axes = blocked(x, scheme)
    if xb.size == 0:
        raise ValueError("cannot calibrate on an empty array")
    if method == "minmax":
        lo, hi = xb.min(axis=axes, keepdims=True), xb.max(axis=axes, keepdims=True)
    else:
        lo = np.percentile(xb, 100.0 - percentile, axis=axes, keepdims=True).astype(xb.dtype)
        hi = np.percentile(xb, percentile, axis=axes, keepdims=True).astype(xb.dtype)
    return qparams_from_range(lo, hi, scheme)


def qparams_from_range(lo: np.ndarray, hi: np.ndarray, scheme: QScheme) -> QParams:
    """The (scale, zero point) that cover [lo, hi] (arrays of the same shape) under ``scheme``."""
    lo, hi = np.asarray(lo), np.asarray(hi)
    # TODO: symmetric: s = max(|lo|, |hi|) / qmax and z = 0. Asymmetric: widen [lo, hi] to
    #       contain 0, s = (hi − lo) / (qmax − qmin), z = qmin − round(lo / s) clamped to the
    #       range. A zero-width range gets s = 1.
    # BEGIN SOLUTION the scale and zero point of each block, symmetric or asymmetric; zero range -> scale 1
    qmin, qmax = scheme.qmin, scheme.qmax
    if scheme.symmetric:
        scale = np.maximum(np.abs(lo), np.abs(hi)) / qmax
        zero_point = np.zeros(scale.shape, dtype=np.int32)
        scale = np.where(scale > 0, scale, 1).astype(scale.dtype)
    else:
        lo, hi = np.minimum(lo, 0), np.maximum(hi, 0)
        scale = (hi - lo) / (qmax - qmin)
        scale = np.where(scale > 0, scale, 1).astype(scale.dtype)
        zero_point = np.clip(qmin - np.rint(lo / scale), qmin, qmax).astype(np.int32)
    return QParams(scale, zero_point, scheme)
    # END SOLUTION


def quantize(x: np.ndarray, params: QParams) -> np.ndarray:
    """q = clamp(rint(x / s) + z, qmin, qmax): x's shape, the scheme's storage dtype."""
    scheme = params.scheme
    xb, _ = blocked(x, scheme)
    # BEGIN SOLUTION divide by the scale, round half to even, add the zero point, clamp, store as integers
    q = np.clip(np.rint(xb / params.scale) + params.zero_point, scheme.qmin, scheme.qmax)
    return q.astype(scheme.storage_dtype).reshape(np.shape(x))
    # END SOLUTION


def dequantize(q: np.ndarray, params: QParams) -> np.ndarray:
    """x̂ = (q − z) · s: q's shape, the scale's dtype."""
    qb, _ = blocked(q, params.scheme)
    # BEGIN SOLUTION subtract the zero point in a wide integer type, multiply by the scale
    return ((qb.astype(np.int32) - params.zero_point) * params.scale).reshape(np.shape(q))
    # END SOLUTION


def fake_quantize(x: np.ndarray, params: QParams) -> tuple[np.ndarray, np.ndarray]:
    """Quantise and dequantise in one go (the forward of quantisation-aware training).

    Returns ``(x̂, inside)``: x̂ shaped like x in the scale's dtype, and ``inside``: bool, x's
    shape, True where rint(x / s) + z fell inside [qmin, qmax] (not clamped): the mask of the
    straight-through backward, the same as torch's ``fake_quantize_per_tensor_affine``.
    """
    scheme = params.scheme
    xb, _ = blocked(x, scheme)
    # TODO: round and shift once; the mask is taken *before* the clamp.
    # BEGIN SOLUTION unclamped codes, the inside mask, clamp, dequantise
    codes = np.rint(xb / params.scale) + params.zero_point
    inside = (codes >= scheme.qmin) & (codes <= scheme.qmax)
    xhat = (np.clip(codes, scheme.qmin, scheme.qmax) - params.zero_point) * params.scale
    return xhat.reshape(np.shape(x)).astype(params.scale.dtype, copy=False), inside.reshape(np.shape(x))
    # END SOLUTION


def fake_quantize_backward(dy: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """The straight-through estimator: rounding is treated as the identity, so the gradient
    passes unchanged where x was inside the range and is 0 where it was clamped. dy, inside:
    x's shape; returns dx."""
    # BEGIN SOLUTION dy where inside, 0 elsewhere
    return np.where(inside, dy, 0).astype(dy.dtype, copy=False)
    # END SOLUTION
