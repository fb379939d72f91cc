"""Topic 09: inverted dropout — scaling in training, identity in evaluation, the same mask in
backward. Statistical checks use fixed seeds and tolerances of several standard deviations."""

import numpy as np
import pytest

from dlfs.nn import regularization as reg
from dlfs.testing import assert_close


def test_training_zeroes_a_fraction_p_and_scales_survivors_by_one_over_keep():
    p = 0.3
    x = np.random.default_rng(0).uniform(0.5, 2.0, size=(400, 250))
    y = reg.Dropout(p, rng=np.random.default_rng(1)).forward(x)
    dropped = y == 0
    frac = dropped.mean()
    # 100 000 Bernoulli(0.3) draws: standard deviation of the fraction ≈ 0.0014
    assert abs(frac - p) < 0.01, f"expected a fraction ≈ {p} of zeros, got {frac:.4f}"
    assert_close(y[~dropped], x[~dropped] / (1 - p), rtol=1e-12,
                 what="kept activations (must be x / (1 - p))")


def test_training_preserves_the_expectation():
    p = 0.5
    x = np.array([[1.0, -2.0, 3.0], [0.5, 4.0, -1.5]])
    many = np.broadcast_to(x, (20000, 2, 3))
    y = reg.Dropout(p, rng=np.random.default_rng(2)).forward(many)
    mean = y.mean(axis=0)
    # per element: std of y is |x| √(p / (1 - p)) = |x|; of the mean, |x| / √20000 ≈ 0.007 |x|
    assert_close(mean, x, rtol=0.04, atol=0.0, what="mean of dropout(x) over 20000 draws (E[y] = x)")


def test_eval_mode_is_the_identity_forward_and_backward():
    layer = reg.Dropout(0.5, rng=np.random.default_rng(0))
    x = np.random.default_rng(3).normal(size=(8, 6))
    dy = np.random.default_rng(4).normal(size=(8, 6))
    layer.forward(x)                         # a training pass first: eval must not reuse its mask
    layer.eval()
    assert_close(layer.forward(x), x, rtol=0, atol=0, what="dropout output in eval mode")
    assert_close(layer.backward(dy), dy, rtol=0, atol=0, what="dropout backward in eval mode")


def test_backward_uses_the_forward_mask():
    p = 0.4
    layer = reg.Dropout(p, rng=np.random.default_rng(5))
    x = np.random.default_rng(6).uniform(1.0, 2.0, size=(50, 40))   # never 0, so y == 0 means dropped
    y = layer.forward(x)
    dy = np.random.default_rng(7).normal(size=x.shape)
    dx = layer.backward(dy)
    assert_close(dx, dy * (y / x), rtol=1e-12, what="dropout backward (dy times the scaled mask)")
    # dropout is linear for a fixed mask, so dx is exactly d(sum(y * dy))/dx
    assert np.all(dx[y == 0] == 0), "dropped units must get zero gradient"


def test_same_seed_same_mask_and_fresh_masks_each_call():
    x = np.ones((30, 30))
    a = reg.Dropout(0.5, rng=np.random.default_rng(11))
    b = reg.Dropout(0.5, rng=np.random.default_rng(11))
    ya1, yb1 = a.forward(x), b.forward(x)
    assert_close(ya1, yb1, rtol=0, atol=0, what="outputs of two dropouts with the same seed")
    ya2 = a.forward(x)
    assert not np.array_equal(ya1, ya2), "every training forward must draw a new mask"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_keeps_dtype_and_p_zero_is_identity_in_training(dtype):
    x = np.random.default_rng(8).normal(size=(16, 8)).astype(dtype)
    y = reg.Dropout(0.25, rng=np.random.default_rng(9)).forward(x)
    assert y.dtype == dtype, f"expected output dtype {np.dtype(dtype)}, got {y.dtype}"
    kept = y != 0
    assert_close(y[kept], (x[kept] / dtype(0.75)), rtol=1e-6, what="kept activations")
    assert 0 < kept.mean() < 1, "with p = 0.25 some but not all units are dropped"
    ident = reg.Dropout(0.0, rng=np.random.default_rng(9))
    assert_close(ident.forward(x), x, rtol=0, atol=0, what="dropout with p = 0")


def test_p_one_drops_everything():
    x = np.random.default_rng(10).normal(size=(5, 5))
    layer = reg.Dropout(1.0, rng=np.random.default_rng(0))
    y = layer.forward(x)
    assert np.all(np.isfinite(y)) and np.all(y == 0), "p = 1 must give zeros (no division by zero)"
    assert np.all(layer.backward(np.ones_like(x)) == 0), "p = 1: no gradient flows"
