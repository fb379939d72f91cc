"""Topic 27: rotary position embedding — the complex-number form, torch (the complex form of
Meta's LLaMA code), the backward as the inverse rotation, and the properties that make it a
relative encoding: norms are kept and a score depends only on the offset of q and k."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.transformer import positional as pe
from dlfs.testing import assert_close, check_op
from torch_oracle import torch_or_skip


def complex_rope(x, offset=0, base=10000.0):
    """The definition: z_j = x_2j + i·x_2j+1 at position m becomes z_j·e^(i·m·θ_j), θ_j = base^(−2j/d)."""
    T, d = x.shape[-2], x.shape[-1]
    theta = base ** (-np.arange(d // 2) * 2.0 / d)
    m = np.arange(offset, offset + T)[:, None]
    z = (x[..., 0::2] + 1j * x[..., 1::2]) * np.exp(1j * m * theta)
    out = np.empty(x.shape)
    out[..., 0::2], out[..., 1::2] = z.real, z.imag
    return out


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def rotate(x, offset=0, base=10000.0):
    return pe.apply_rope(x, *pe.rope_cos_sin(x.shape[-2], x.shape[-1], base, offset, dtype=x.dtype))


def test_cos_sin_tables_match_the_angles_written_out():
    cos, sin = pe.rope_cos_sin(3, 6, base=100.0, offset=2, dtype=np.float64)
    assert cos.shape == sin.shape == (3, 3), f"expected (T, d/2) = (3, 3), got {cos.shape}, {sin.shape}"
    for t in range(3):
        for j in range(3):
            angle = (t + 2) * 100.0 ** (-2 * j / 6)
            assert_close(cos[t, j], math.cos(angle), rtol=1e-13, atol=1e-15, what=f"cos at position {t + 2}, pair {j}")
            assert_close(sin[t, j], math.sin(angle), rtol=1e-13, atol=1e-15, what=f"sin at position {t + 2}, pair {j}")
    c32, s32 = pe.rope_cos_sin(2, 8, offset=50_000)
    assert c32.dtype == s32.dtype == np.float32, f"default dtype float32, got {c32.dtype}, {s32.dtype}"
    c64, s64 = pe.rope_cos_sin(2, 8, offset=50_000, dtype=np.float64)
    assert_close(c32, c64, rtol=0, atol=1e-7, what="float32 cos at position 50000 (angles in float64 first)")


@pytest.mark.parametrize("shape, offset, base", [((5, 4), 0, 10000.0), ((2, 3, 6, 8), 0, 10000.0),
                                                 ((2, 4, 10), 13, 500.0)])
def test_rotation_matches_the_complex_number_form(shape, offset, base):
    x = rand(*shape, seed=1)
    assert_close(rotate(x, offset, base), complex_rope(x, offset, base), rtol=1e-12, atol=1e-13,
                 what=f"apply_rope vs z·e^(i·m·θ) for x {shape}, positions from {offset}, base {base:g}")


def test_position_zero_is_the_identity_and_the_first_pair_turns_by_one_radian_per_position():
    x = rand(1, 4, seed=2)
    assert_close(rotate(x), x, rtol=0, atol=0, what="RoPE at position 0 (angle 0)")
    e0 = np.zeros((3, 4))
    e0[:, 0] = 1.0                                           # the unit vector of pair 0's first axis
    y = rotate(e0)
    assert_close(y[:, :2], [[1, 0], [math.cos(1), math.sin(1)], [math.cos(2), math.sin(2)]], rtol=1e-13, atol=1e-15,
                 what="pair 0 (θ_0 = 1) of e_0 at positions 0, 1, 2")


def test_backward_matches_finite_differences_and_is_the_inverse_rotation():
    x = rand(2, 3, 5, 6, seed=3)
    cos, sin = pe.rope_cos_sin(5, 6, offset=4, dtype=np.float64)
    check_op(lambda x: pe.apply_rope(x, cos, sin), lambda dy, x: pe.apply_rope_backward(dy, cos, sin), x,
             what="apply_rope")
    assert_close(pe.apply_rope_backward(pe.apply_rope(x, cos, sin), cos, sin), x, rtol=1e-12, atol=1e-13,
                 what="apply_rope_backward(apply_rope(x)) = x (Rᵀ R = I)")
    y = rand(2, 3, 5, 6, seed=4)
    assert_close(np.sum(pe.apply_rope(x, cos, sin) * y), np.sum(x * pe.apply_rope_backward(y, cos, sin)),
                 rtol=1e-12, what="⟨R x, y⟩ = ⟨x, Rᵀ y⟩")


def test_values_and_gradients_match_torch_complex_form():
    """torch has no RoPE op; this is the complex-number code of Meta's LLaMA reference
    (view_as_complex, polar), differentiated by torch's autograd."""
    T, d = 6, 8
    cos, sin = pe.rope_cos_sin(T, d, offset=3, dtype=np.float64)

    def torch_rope(torch, x):
        theta = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
        freqs = torch.polar(torch.ones(T, d // 2, dtype=torch.float64), torch.outer(torch.arange(3, 3 + T).double(), theta))
        z = torch.view_as_complex(x.reshape(*x.shape[:-1], d // 2, 2).contiguous())
        return torch.view_as_real(z * freqs).flatten(-2)

    check_op(lambda x: pe.apply_rope(x, cos, sin), lambda dy, x: pe.apply_rope_backward(dy, cos, sin),
             rand(2, 2, T, d, seed=5), torch_fn=torch_rope, oracle=torch_or_skip, what="apply_rope vs torch")


@settings(deadline=None, max_examples=40)
@given(st.integers(0, 3000), st.sampled_from([2, 4, 8, 16]), st.integers(0, 2**32 - 1))
def test_rotation_keeps_the_norm_of_every_pair(offset, d, seed):
    x = np.random.default_rng(seed).standard_normal((3, d))
    y = rotate(x, offset)
    assert_close(y[:, 0::2] ** 2 + y[:, 1::2] ** 2, x[:, 0::2] ** 2 + x[:, 1::2] ** 2, rtol=1e-10, atol=1e-12,
                 what=f"squared norm of every pair after rotating positions {offset} … {offset + 2}")


@settings(deadline=None, max_examples=50)
@given(st.integers(0, 500), st.integers(0, 500), st.integers(0, 2000), st.sampled_from([2, 8, 16]),
       st.integers(0, 2**32 - 1))
def test_a_score_depends_only_on_the_offset_of_query_and_key(m, n, s, d, seed):
    """⟨R_m q, R_n k⟩ = ⟨R_(m+s) q, R_(n+s) k⟩ = ⟨q, R_(n−m) k⟩."""
    rng = np.random.default_rng(seed)
    q, k = rng.standard_normal((1, d)), rng.standard_normal((1, d))
    rope = pe.RotaryEmbedding(d)
    score = float(np.sum(rope.rotate(q, m) * rope.rotate(k, n)))
    shifted = float(np.sum(rope.rotate(q, m + s) * rope.rotate(k, n + s)))
    assert_close(shifted, score, rtol=1e-8, atol=1e-9, what=f"score of q at {m}, k at {n}, both shifted by {s}")
    if n >= m:
        assert_close(float(np.sum(q * rope.rotate(k, n - m))), score, rtol=1e-8, atol=1e-9,
                     what=f"⟨q, R_(n−m) k⟩ for n − m = {n - m}")


def test_rotary_embedding_caches_tables_and_keeps_the_dtype():
    rope = pe.RotaryEmbedding(6, base=1000.0)
    x = rand(2, 3, 6, seed=6)
    assert_close(rope.rotate(x), complex_rope(x, 0, 1000.0), rtol=1e-12, atol=1e-13, what="rotate, positions 0 … 2")
    assert_close(rope.rotate(x, offset=500), complex_rope(x, 500, 1000.0), rtol=1e-10, atol=1e-12,
                 what="rotate, positions 500 … 502 (beyond the first cached table)")
    dy = rand(2, 3, 6, seed=7)
    assert_close(rope.rotate_backward(rope.rotate(dy, 9), 9), dy, rtol=1e-12, atol=1e-13,
                 what="rotate_backward undoes rotate at the same offset")
    y32 = rope.rotate(x.astype(np.float32), 4)
    assert y32.dtype == np.float32, f"float32 in, float32 out; got {y32.dtype}"
    assert_close(y32, complex_rope(x, 4, 1000.0), rtol=1e-5, atol=1e-6, what="float32 rotation")


def test_bad_sizes_are_refused():
    cos, sin = pe.rope_cos_sin(3, 4)
    assert cos.shape == (3, 2), f"expected cos (3, 2), got {cos.shape}"
    with pytest.raises(ValueError):
        pe.rope_cos_sin(3, 5)                                 # odd head size: features come in pairs
    with pytest.raises(ValueError):
        pe.apply_rope(np.ones((4, 4)), cos, sin)             # T = 4 positions, tables for 3
