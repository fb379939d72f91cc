"""Topic 35: the NF4 code book, block-wise NF4 quantisation, double quantisation of the scales and
the memory of the quantised weights (measured and by formula)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.lora import nf4
from dlfs.testing import assert_close


def normal_weights(shape, seed=0, std=0.02):
    return (np.random.default_rng(seed).normal(size=shape) * std).astype(np.float32)


def test_code_book_matches_the_published_values():
    code = nf4.nf4_code_book()
    assert code.shape == (16,), f"expected 16 levels, got shape {code.shape}"
    assert_close(code, np.array(nf4.NF4_PUBLISHED), atol=1e-6, rtol=0, what="NF4 levels vs QLoRA's published ones")


def test_code_book_is_asymmetric_with_an_exact_zero():
    code = nf4.nf4_code_book()
    assert np.all(np.diff(code) > 0), f"levels must ascend, got {code}"
    assert code[0] == -1.0 and code[-1] == 1.0, f"ends must be exactly -1 and 1, got {code[0]}, {code[-1]}"
    assert code[7] == 0.0, f"0 must be exactly the eighth level, got {code[7]}"
    assert (code < 0).sum() == 7 and (code > 0).sum() == 8, f"7 negative and 8 positive levels, got {code}"
    # the positive half is not the mirror of the negative one
    assert not np.allclose(-code[1:7], code[9:15][::-1][:6]), "the halves should differ (8 vs 7 quantiles)"


def test_each_weight_gets_the_nearest_level_times_its_block_absmax():
    w = normal_weights((8, 40), seed=1)                     # 320 weights = 5 blocks of 64
    t = nf4.quantize_nf4(w, double_quant=False)
    got = nf4.dequantize_nf4(t)
    assert got.shape == w.shape and got.dtype == w.dtype, f"expected {w.shape} {w.dtype}, got {got.shape} {got.dtype}"
    code = nf4.nf4_code_book()
    blocks = w.reshape(-1, 64).astype(np.float64)
    absmax = np.abs(blocks).max(axis=1, keepdims=True)
    nearest = code[np.abs(blocks[..., None] / absmax[..., None] - code).argmin(axis=-1)] * absmax
    assert_close(got.reshape(-1, 64), nearest, rtol=1e-6, atol=1e-9, what="dequantised NF4 vs nearest level · absmax")
    assert_close(t.absmax, absmax[:, 0], rtol=0, atol=0, what="the absmax scale of each block")


@settings(deadline=None, max_examples=30)
@given(n=st.integers(1, 300), seed=st.integers(0, 2**31 - 1), scale=st.floats(1e-4, 1e3))
def test_error_is_at_most_half_the_widest_gap_times_the_block_absmax(n, seed, scale):
    w = np.random.default_rng(seed).standard_t(3, n) * scale          # heavy tails too
    got = nf4.dequantize_nf4(nf4.quantize_nf4(w, double_quant=False))
    code = nf4.nf4_code_book()
    half_gap = np.diff(code).max() / 2
    padded = np.concatenate([w, np.zeros(-n % 64)]).reshape(-1, 64)
    bound = np.repeat(np.abs(padded).max(axis=1), 64)[:n] * half_gap * (1 + 1e-12)
    worst = (np.abs(got - w) - bound).max()
    assert worst <= 0, f"an error exceeds half the widest gap times the block absmax by {worst:.3e}"


def test_zeros_and_each_blocks_extreme_are_exact():
    w = normal_weights((4, 64), seed=2)
    w[1] = 0.0                                              # a whole block of zeros
    w[2, 5] = 0.0
    got = nf4.dequantize_nf4(nf4.quantize_nf4(w, double_quant=False))
    assert np.all(got[1] == 0) and got[2, 5] == 0, "zeros must dequantise to exactly 0"
    for row in (0, 2, 3):
        j = np.abs(w[row]).argmax()
        assert got[row, j] == w[row, j], f"block {row}: its absmax element {w[row, j]} came back as {got[row, j]}"


def test_padding_and_packing_round_trip_for_odd_sizes():
    w = normal_weights((7, 13), seed=3)                     # 91 weights: padded to 128
    t = nf4.quantize_nf4(w, double_quant=False)
    assert t.packed.dtype == np.uint8 and t.packed.size == 64, f"expected 64 packed bytes, got {t.packed.size}"
    got = nf4.dequantize_nf4(t)
    assert got.shape == (7, 13), f"expected the original shape (7, 13), got {got.shape}"
    err = np.abs(got - w).max() / np.abs(w).max()
    assert err < 0.2, f"dequantised weights are off by {err:.3f} of the absmax (half the widest gap is 0.14)"


def test_double_quantisation_of_the_scales_subtracts_the_mean_and_is_int8_in_blocks_of_256():
    absmax = np.abs(np.random.default_rng(4).normal(0.05, 0.01, 600)).astype(np.float32)
    codes, params, mean = nf4.double_quantize(absmax)
    assert codes.dtype == np.int8 and codes.shape == (600,), f"expected (600,) int8 codes, got {codes.shape} {codes.dtype}"
    assert params.scale.size == 3, f"600 scales in blocks of 256 need 3 second-level scales, got {params.scale.size}"
    assert_close(mean, absmax.mean(), rtol=1e-6, what="the subtracted mean")
    back = nf4.double_dequantize(codes, params, mean)
    step = np.repeat(params.scale.reshape(-1), 256)[:600]
    assert np.all(np.abs(back - absmax) <= step / 2 + 1e-7), "each scale must come back within half a step"
    # centred, the int8 range is used on both sides
    assert codes.min() < -60 and codes.max() > 60, f"codes span {codes.min()}..{codes.max()}: was the mean subtracted?"


def test_double_quantised_weights_stay_close_to_the_plain_nf4_ones():
    w = normal_weights((256, 128), seed=5)
    plain = nf4.dequantize_nf4(nf4.quantize_nf4(w, double_quant=False))
    dq = nf4.dequantize_nf4(nf4.quantize_nf4(w))
    assert 0 < np.abs(dq - plain).max() < 0.01 * np.abs(w).max(), \
        f"double quantisation moved weights by {np.abs(dq - plain).max():.2e} (expected small but nonzero)"


@pytest.mark.parametrize("double_quant, bits", [(False, 4.5), (True, 4 + 8 / 64 + 32 / (64 * 256))])
def test_memory_measured_and_by_formula(double_quant, bits):
    assert_close(nf4.nf4_bits_per_param(double_quant=double_quant), bits, rtol=1e-12, what="bits per weight formula")
    w = normal_weights((1024, 256), seed=6)
    t = nf4.quantize_nf4(w, double_quant=double_quant)
    measured = 8 * t.nbytes / w.size
    extra = 32 / w.size if double_quant else 0.0            # the one float32 mean
    assert_close(measured, bits + extra, rtol=1e-12, what="measured bits per weight")
    assert round(nf4.nf4_bits_per_param(), 3) == 4.127
