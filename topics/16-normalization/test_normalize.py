"""Topic 16: the shared statistics — normalize over any axes, and the one backward identity."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.nn import normalization as nm
from dlfs.testing import assert_close, check_gradients

AXES = [(0, 2, 3), (1, 2, 3), (2, 3), (3,), (1,)]      # BN, LN over (C,H,W), IN, LN over W, per channel


def cube(seed=0, shape=(3, 4, 2, 5)):
    """An (N, C, H, W) array whose values are far from mean 0, variance 1 along every axis."""
    rng = np.random.default_rng(seed)
    return 3.0 + 2.0 * rng.standard_normal(shape) * rng.uniform(0.5, 2.0, size=shape[1:])


@pytest.mark.parametrize("axes", AXES, ids=str)
def test_normalize_matches_the_formula_over_the_given_axes(axes):
    x = cube()
    eps = 1e-3
    x_hat, inv_std = nm.normalize(x, axes, eps)
    mu = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    assert_close(inv_std, 1.0 / np.sqrt(var + eps), rtol=1e-12,
                 what=f"inv_std over axes {axes} (shape: the axes kept as length 1)")
    assert_close(x_hat, (x - mu) / np.sqrt(var + eps), rtol=1e-12, atol=1e-14, what=f"x̂ over axes {axes}")


@pytest.mark.parametrize("axes", AXES, ids=str)
def test_normalized_values_have_mean_zero_and_variance_one_over_the_axes(axes):
    x = cube(1)
    x_hat, _ = nm.normalize(x, axes, 1e-12)
    stat_shape = x.mean(axis=axes).shape
    assert_close(x_hat.mean(axis=axes), np.zeros(stat_shape), atol=1e-12, what=f"mean of x̂ over {axes}")
    assert_close(x_hat.var(axis=axes), np.ones(stat_shape), rtol=1e-9, what=f"variance of x̂ over {axes}")


def test_normalize_without_centring_divides_by_the_root_mean_square():
    x = cube(2)
    eps = 1e-4
    x_hat, inv_rms = nm.normalize(x, (3,), eps, center=False)
    rms = np.sqrt(np.mean(x * x, axis=3, keepdims=True) + eps)
    assert_close(inv_rms, 1.0 / rms, rtol=1e-12, what="inv_rms = 1/√(mean(x²) + eps) over the last axis")
    assert_close(x_hat, x / rms, rtol=1e-12, what="x / √(mean(x²) + eps): no mean is removed")
    assert abs(x_hat.mean()) > 0.5, "x has mean ≈ 3: without centring x̂ keeps a large mean"


@pytest.mark.parametrize("center", [True, False], ids=["centred", "rms"])
@pytest.mark.parametrize("axes", AXES, ids=str)
def test_normalize_backward_matches_finite_differences(axes, center):
    x = cube(3, shape=(2, 3, 2, 3))
    dx_hat = np.random.default_rng(4).standard_normal(x.shape)
    x_hat, inv_std = nm.normalize(x, axes, 1e-5, center=center)
    dx = nm.normalize_backward(dx_hat, x_hat, inv_std, axes, center=center)
    check_gradients(lambda: nm.normalize(x, axes, 1e-5, center=center)[0], {"x": x}, {"x": dx}, dout=dx_hat)


def test_normalize_keeps_float32_and_does_not_modify_its_inputs():
    x = cube(5).astype(np.float32)
    x0 = x.copy()
    x_hat, inv_std = nm.normalize(x, (1, 2, 3), 1e-5)
    assert x_hat.dtype == np.float32 and inv_std.dtype == np.float32, \
        f"expected float32 x̂ and inv_std, got {x_hat.dtype}, {inv_std.dtype}"
    assert_close(x_hat.mean(axis=(1, 2, 3)), np.zeros(3), atol=1e-5, what="float32 per-sample mean of x̂")
    dy = np.ones_like(x)
    dx = nm.normalize_backward(dy, x_hat, inv_std, (1, 2, 3))
    assert dx.dtype == np.float32, f"dx must stay float32, got {dx.dtype}"
    assert_close(dx, np.zeros_like(x), atol=1e-5, what="dx for a constant upstream gradient (shift invariance)")
    assert_close(x, x0, rtol=0, atol=0, what="x after normalize (must not be modified)")


@settings(deadline=None, max_examples=40)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.data(), st.integers(0, 2**32 - 1),
       st.floats(-50, 50), st.floats(0.1, 10), st.booleans())
def test_output_ignores_shift_and_scale_and_gradient_is_orthogonal_to_them(shape, data, seed, shift, scale,
                                                                           center):
    """Over the shared axes, x̂(a x + b) = x̂(x) (a > 0; b only when centring), and so the gradient has
    no component along those directions: Σ dx = 0 (centring) and Σ dx·x = 0, up to eps."""
    axes = tuple(sorted(data.draw(st.sets(st.integers(0, len(shape) - 1), min_size=1))))
    if np.prod([shape[a] for a in axes]) < 2:
        shape[axes[0]] = 2
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    dx_hat = rng.standard_normal(shape)
    eps = 1e-14
    x_hat, inv_std = nm.normalize(x, axes, eps, center=center)
    moved = scale * x + (shift if center else 0.0)
    assert_close(nm.normalize(moved, axes, eps, center=center)[0], x_hat, rtol=1e-6, atol=1e-6,
                 what=f"x̂ of a shifted and scaled input (axes {axes}, center={center})")
    dx = nm.normalize_backward(dx_hat, x_hat, inv_std, axes, center=center)
    tol = 1e-8 * (1 + np.abs(dx).max() * np.abs(x).max())
    if center:
        assert_close(dx.sum(axis=axes), np.zeros(x.sum(axis=axes).shape), atol=tol, what="Σ dx over the axes")
    assert_close((dx * x).sum(axis=axes), np.zeros(x.sum(axis=axes).shape), atol=tol,
                 what="Σ dx·x over the axes")
