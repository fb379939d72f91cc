"""Topic 33 — the integer matrix product with int32 accumulation, and the quantised linear product.

With a: (M, K) quantised per tensor (s_a, z_a) and W: (K, N) quantised per tensor or per output
channel (s_w (1, N), z_w (1, N)):

    x̂ W_hat = ((q_a − z_a) s_a) @ ((q_w − z_w) s_w) = s_a · s_w ⊙ [ (q_a − z_a) @ (q_w − z_w) ]

The bracket is a product of integers: it is computed in int32, and one float multiply per
output rescales it.

**No overflow, proved.** Each factor is bounded: |q − z| ≤ A for the operand a and ≤ B for
W, where A, B come from the scheme (:func:`code_bound`): symmetric b-bit codes have
|q| ≤ 2^(b−1) − 1 (127 for int8, 7 for int4); asymmetric ones have q, z ∈ [0, 2^b − 1], so
|q − z| ≤ 2^b − 1 (255). Every partial sum of K products is then at most K·A·B in absolute
value, and int32 holds up to 2^31 − 1. So the accumulation cannot overflow when

    K ≤ ⌊(2^31 − 1) / (A·B)⌋  (:func:`max_safe_k`):  133,144 for int8 × int8 symmetric,
                                                     33,025 for uint8 × uint8 asymmetric.

:func:`int_matmul` refuses a larger K. **Exactness**: the integer result is exact; the float
product of the dequantised operands equals it times s_a s_w exactly when the scales are
powers of two and K·A·B < 2^53 (every product and partial sum is then an integer multiple of
s_a s_w, representable in float64), which the tests use.
"""

from __future__ import annotations

import numpy as np

from dlfs.quant.quantize import QParams, QScheme

INT32_MAX = 2 ** 31 - 1


def code_bound(scheme: QScheme) -> int:
    """The largest |q − z| of the scheme's codes: 2^(b−1) − 1 symmetric, 2^b − 1 asymmetric."""
    return scheme.qmax if scheme.symmetric else scheme.qmax - scheme.qmin


def max_safe_k(a_bound: int, b_bound: int) -> int:
    """The longest inner dimension K whose int32 accumulation of products |a·b| ≤ a_bound·b_bound
    cannot overflow: ⌊(2^31 − 1) / (a_bound · b_bound)⌋."""
    return INT32_MAX // (int(a_bound) * int(b_bound))


def int_matmul(a: np.ndarray, b: np.ndarray, a_bound: int, b_bound: int) -> np.ndarray:
    """a: (M, K) integers with |a| ≤ a_bound; b: (K, N) integers with |b| ≤ b_bound.
    Returns a @ b: (M, N) int32, accumulated in int32. Raises OverflowError when K is larger
    than :func:`max_safe_k` (the result could overflow) and ValueError when an operand is
    not an integer array or breaks its bound."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind not in "iu" or b.dtype.kind not in "iu":
        raise ValueError(f"int_matmul needs integer arrays, got {a.dtype} and {b.dtype}")
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"int_matmul expects a (M, K) and b (K, N), got {a.shape} and {b.shape}")
    K = a.shape[1]
    if K > max_safe_k(a_bound, b_bound):
        raise OverflowError(f"K = {K} products of |a| ≤ {a_bound} and |b| ≤ {b_bound} may overflow int32 "
                            f"(safe up to K = {max_safe_k(a_bound, b_bound)})")
    if np.abs(a.astype(np.int64)).max(initial=0) > a_bound or np.abs(b.astype(np.int64)).max(initial=0) > b_bound:
        raise ValueError(f"an operand exceeds its declared bound (|a| ≤ {a_bound}, |b| ≤ {b_bound})")
    # BEGIN SOLUTION widen both to int32 and multiply: every product and partial sum stays in int32
    return a.astype(np.int32) @ b.astype(np.int32)
    # END SOLUTION


def quantized_matmul(qa: np.ndarray, pa: QParams, qw: np.ndarray, pw: QParams) -> np.ndarray:
    """x̂ @ Ŵ from the codes: qa (M, K) per tensor, qw (K, N) per tensor or per output channel
    (``axis=1``, no groups). Returns (M, N) in the scales' dtype:
    s_a · s_w ⊙ int_matmul(qa − z_a, qw − z_w)."""
    if pa.scheme.axis is not None:
        raise ValueError("the activation must be quantised per tensor")
    if not (pw.scheme.axis is None or (pw.scheme.axis % 2 == 1 and pw.scheme.group_size is None)):
        raise ValueError("the weight must be quantised per tensor or per output channel (axis=1)")
    # TODO: subtract the zero points in int32 first, then the integer product, then one rescale.
    # BEGIN SOLUTION shift by the zero points, int_matmul with the schemes' bounds, multiply by s_a · s_w
    a = qa.astype(np.int32) - pa.zero_point.reshape(-1)[0]
    w = qw.astype(np.int32) - pw.zero_point.reshape(1, -1)
    acc = int_matmul(a, w, code_bound(pa.scheme), code_bound(pw.scheme))
    return acc * (pa.scale.reshape(-1)[0] * pw.scale.reshape(1, -1))
    # END SOLUTION
