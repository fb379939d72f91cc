"""Topic 33: the integer product with int32 accumulation — exact, and never overflowing within
the proved bound."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dlfs.quant import int_matmul as IM
from dlfs.quant import quantize as Q
from dlfs.quant.quantize import QScheme
from dlfs.testing import assert_close


def test_bounds_and_the_largest_safe_inner_dimension():
    assert (IM.code_bound(QScheme(8)), IM.code_bound(QScheme(8, False)), IM.code_bound(QScheme(4))) == (127, 255, 7)
    assert IM.max_safe_k(127, 127) == 133144 and IM.max_safe_k(255, 255) == 33025
    a = np.full((1, 4), 127, dtype=np.int8)
    assert IM.int_matmul(a, a.T, 127, 127).tolist() == [[4 * 127 * 127]]


def test_the_worst_case_at_the_bound_does_not_overflow():
    K = IM.max_safe_k(255, 255)
    a = np.full((2, K), 255, dtype=np.int32)
    a[1] = -255
    b = np.full((K, 1), 255, dtype=np.int32)
    got = IM.int_matmul(a, b, 255, 255)
    assert got.dtype == np.int32, f"the accumulator must be int32, got {got.dtype}"
    assert got.ravel().tolist() == [K * 255 * 255, -K * 255 * 255], f"exact ±K·255², got {got.ravel()}"
    assert K * 255 * 255 <= 2 ** 31 - 1 < (K + 1) * 255 * 255
    with pytest.raises(OverflowError, match="overflow"):
        IM.int_matmul(np.ones((1, K + 1), np.int32), np.ones((K + 1, 1), np.int32), 255, 255)
    with pytest.raises(ValueError, match="bound"):
        IM.int_matmul(np.array([[128]], np.int32), np.array([[1]], np.int32), 127, 127)
    with pytest.raises(ValueError, match="integer"):
        IM.int_matmul(np.ones((1, 1)), np.ones((1, 1)), 127, 127)


@settings(deadline=None, max_examples=30)
@given(M=st.integers(1, 6), K=st.integers(1, 40), N=st.integers(1, 6), seed=st.integers(0, 10 ** 6),
       sym_a=st.booleans(), sym_w=st.booleans(), per_channel=st.booleans())
def test_quantized_matmul_equals_the_float_product_of_the_dequantised_operands(M, K, N, seed, sym_a, sym_w,
                                                                                 per_channel):
    rng = np.random.default_rng(seed)
    sa, sw = QScheme(8, sym_a), QScheme(8, sym_w, axis=1 if per_channel else None)
    qa = rng.integers(sa.qmin, sa.qmax + 1, (M, K)).astype(sa.storage_dtype)
    qw = rng.integers(sw.qmin, sw.qmax + 1, (K, N)).astype(sw.storage_dtype)
    # powers-of-two scales: every product and partial sum is exact in float64
    pa = Q.QParams(np.array([[2.0 ** -int(rng.integers(0, 8))]]), np.array([[0 if sym_a else rng.integers(0, 256)]],
                   dtype=np.int32), sa)
    n_scales = N if per_channel else 1
    zw = np.zeros(n_scales) if sym_w else rng.integers(0, 256, n_scales)
    pw = Q.QParams((2.0 ** -rng.integers(0, 8, n_scales)).reshape(1, -1), zw.reshape(1, -1).astype(np.int32), sw)
    got = IM.quantized_matmul(qa, pa, qw, pw)
    expected = Q.dequantize(qa, pa) @ Q.dequantize(qw, pw)
    assert_close(got, expected, rtol=0, atol=0, what="integer product rescaled vs float product of dequantised")


def test_quantized_linear_is_close_to_the_float_one():
    rng = np.random.default_rng(3)
    x, W = rng.standard_normal((5, 64)), rng.standard_normal((64, 7)) * 0.1
    pa, pw = Q.compute_qparams(x, QScheme(8, False)), Q.compute_qparams(W, QScheme(8, axis=1))
    got = IM.quantized_matmul(Q.quantize(x, pa), pa, Q.quantize(W, pw), pw)
    assert_close(got, Q.dequantize(Q.quantize(x, pa), pa) @ Q.dequantize(Q.quantize(W, pw), pw), rtol=1e-12,
                 atol=1e-12, what="int path vs dequantised float path")
    assert np.abs(got - x @ W).max() < 0.05, f"int8 product far from the float one: {np.abs(got - x @ W).max()}"

