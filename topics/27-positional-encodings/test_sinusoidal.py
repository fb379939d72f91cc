"""Topic 27: the sinusoidal encoding — the formula, the shared frequencies, the shift property
(PE(p + k) is a fixed rotation of PE(p)), float32 at large positions, and the layer."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.transformer import positional as pe
from dlfs.testing import assert_close, check_layer


def formula(T, D, base=10000.0, offset=0):
    """PE[p, 2i] = sin(p / base^(2i/D)), PE[p, 2i+1] = cos(p / base^(2i/D)), one entry at a time."""
    out = np.zeros((T, D))
    for row, p in enumerate(range(offset, offset + T)):
        for i in range(D // 2):
            angle = p / base ** (2 * i / D)
            out[row, 2 * i], out[row, 2 * i + 1] = math.sin(angle), math.cos(angle)
    return out


def shift_matrix(k, D, base=10000.0):
    """The (D, D) map M_k with PE(p + k) = PE(p) @ M_k: for each pair (sin pω, cos pω) the 2×2
    rotation [[cos kω, −sin kω], [sin kω, cos kω]], the same for every p."""
    M = np.zeros((D, D))
    for i in range(D // 2):
        w = base ** (-2 * i / D)
        c, s = math.cos(k * w), math.sin(k * w)
        M[2 * i:2 * i + 2, 2 * i:2 * i + 2] = [[c, -s], [s, c]]
    return M


def test_inverse_frequencies_are_a_geometric_sequence_from_1_to_almost_1_over_base():
    w = pe.inverse_frequencies(8, base=10000.0)
    assert_close(w, [1.0, 10.0 ** -1, 10.0 ** -2, 10.0 ** -3], rtol=1e-14,
                 what="ω_i = 10000^(−2i/8), i = 0 … 3")
    assert w.dtype == np.float64, f"the frequencies should be float64, got {w.dtype}"
    assert_close(pe.inverse_frequencies(6, base=100.0), [100.0 ** (-2 * i / 6) for i in range(3)], rtol=1e-14,
                 what="ω_i = 100^(−2i/6)")


@pytest.mark.parametrize("T, D, base, offset", [(7, 10, 10000.0, 0), (5, 4, 10000.0, 3), (4, 12, 50.0, 11)])
def test_encoding_matches_the_formula_written_out(T, D, base, offset):
    got = pe.sinusoidal_encoding(T, D, base=base, offset=offset, dtype=np.float64)
    assert got.shape == (T, D) and got.dtype == np.float64, f"expected (T, D) = {(T, D)} float64, got {got.shape} {got.dtype}"
    assert_close(got, formula(T, D, base, offset), rtol=1e-12, atol=1e-14,
                 what=f"sinusoidal encoding T={T}, D={D}, base={base:g}, offset={offset} (sin in even columns)")


def test_position_zero_and_the_norm_of_every_row():
    table = pe.sinusoidal_encoding(50, 16, dtype=np.float64)
    assert_close(table[0], np.tile([0.0, 1.0], 8), atol=0, what="PE[0] = (sin 0, cos 0, …) = (0, 1, 0, 1, …)")
    assert_close(np.sum(table ** 2, axis=1), np.full(50, 8.0), rtol=1e-12,
                 what="‖PE[p]‖² = Σ_i sin² + cos² = D/2 for every p")


@settings(deadline=None, max_examples=40)
@given(st.integers(-30, 200), st.integers(0, 300), st.sampled_from([2, 6, 16, 32]))
def test_shifting_the_position_by_k_is_one_fixed_rotation_per_frequency_pair(k, p0, D):
    """PE(p + k) = PE(p) @ M_k for every p with the same M_k: attention can read offsets
    through a linear map."""
    p0 = max(p0, -k)                                          # positions p and p + k stay ≥ 0
    rows = pe.sinusoidal_encoding(8, D, offset=p0, dtype=np.float64)
    shifted = pe.sinusoidal_encoding(8, D, offset=p0 + k, dtype=np.float64)
    assert_close(shifted, rows @ shift_matrix(k, D), rtol=1e-9, atol=1e-9,
                 what=f"PE(p + {k}) vs PE(p) @ M_{k} for p = {p0} … {p0 + 7}, D = {D}")
    dots = np.sum(rows * shifted, axis=1)
    expected = sum(math.cos(k * 10000.0 ** (-2 * i / D)) for i in range(D // 2))
    assert_close(dots, np.full(8, expected), rtol=1e-9, atol=1e-9,
                 what=f"PE(p)·PE(p + {k}) = Σ_i cos(k ω_i), the same for every p")


def test_float32_tables_are_computed_in_float64_first():
    """At position 100,000 a float32 angle p·ω is off by up to 0.004 rad; the table must be the
    float64 value rounded to float32."""
    got = pe.sinusoidal_encoding(3, 8, offset=100_000)
    assert got.dtype == np.float32, f"the default dtype is float32, got {got.dtype}"
    assert_close(got, formula(3, 8, offset=100_000), rtol=0, atol=1e-7,
                 what="float32 table at positions 100000 … 100002 (vs float64 formula)")


def test_layer_adds_the_table_at_the_offset_and_keeps_the_dtype():
    layer = pe.SinusoidalPositionalEncoding(6)
    x = np.random.default_rng(0).standard_normal((2, 5, 6)).astype(np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32, f"float32 input should give float32 output, got {y.dtype}"
    assert_close(y, x + formula(5, 6), rtol=1e-6, atol=1e-6, what="x + PE[0 … 4]")
    assert_close(layer.forward(x, offset=7), x + formula(5, 6, offset=7), rtol=1e-6, atol=1e-6,
                 what="x + PE[7 … 11] (offset 7)")
    assert_close(layer.forward(x[:, :2], offset=300), x[:, :2] + formula(2, 6, offset=300), rtol=1e-6, atol=1e-6,
                 what="x + PE[300, 301], beyond the first cached table")
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    assert_close(layer.backward(dy), dy, rtol=0, atol=0, what="dx = dy (the encoding is a constant)")


def test_layer_backward_matches_finite_differences():
    layer = pe.SinusoidalPositionalEncoding(8, base=100.0)
    result = check_layer(layer, np.random.default_rng(2).standard_normal((3, 4, 8)))
    assert_close(result.outputs[0, 0], formula(1, 8, base=100.0)[0] + np.random.default_rng(2).standard_normal(
        (3, 4, 8))[0, 0], rtol=1e-12, what="forward of the checked layer, position 0")


def test_bad_sizes_are_refused():
    assert pe.sinusoidal_encoding(2, 4).shape == (2, 4), "a (2, 4) table"
    with pytest.raises(ValueError):
        pe.sinusoidal_encoding(3, 5)                    # odd D: the features come in (sin, cos) pairs
    with pytest.raises(ValueError):
        pe.SinusoidalPositionalEncoding(4).forward(np.ones((2, 3, 6)))       # D = 6, not 4
