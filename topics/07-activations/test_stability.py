"""Topic 07 — numerical stability: inputs as large as ±1e4 give the right limits, with no nan,
no inf and no RuntimeWarning, in float64 and float32."""

import warnings

import numpy as np
import pytest

from dlfs.nn import activations as A
from dlfs.testing import assert_close

BIG = np.array([-1e4, -1e3, -100.0, -30.0, -1.0, 0.0, 1.0, 30.0, 100.0, 1e3, 1e4])
NEG, POS = BIG < 0, BIG > 0
FAR = np.abs(BIG) >= 100                     # far enough out that every function is at its limit

# name -> (forward, backward(dy, x, y), expected forward where |x| >= 100, expected derivative there)
CASES = {
    "relu": (A.relu, lambda dy, x, y: A.relu_backward(dy, x),
             lambda x: np.where(x > 0, x, 0.0), lambda x: np.where(x > 0, 1.0, 0.0)),
    "leaky_relu": (lambda x: A.leaky_relu(x, 0.1), lambda dy, x, y: A.leaky_relu_backward(dy, x, 0.1),
                   lambda x: np.where(x > 0, x, 0.1 * x), lambda x: np.where(x > 0, 1.0, 0.1)),
    "elu": (lambda x: A.elu(x, 2.0), lambda dy, x, y: A.elu_backward(dy, x, 2.0),
            lambda x: np.where(x > 0, x, -2.0), lambda x: np.where(x > 0, 1.0, 0.0)),
    "gelu": (A.gelu, lambda dy, x, y: A.gelu_backward(dy, x),
             lambda x: np.where(x > 0, x, 0.0), lambda x: np.where(x > 0, 1.0, 0.0)),
    "gelu_tanh": (lambda x: A.gelu(x, "tanh"), lambda dy, x, y: A.gelu_backward(dy, x, "tanh"),
                  lambda x: np.where(x > 0, x, 0.0), lambda x: np.where(x > 0, 1.0, 0.0)),
    "silu": (A.silu, lambda dy, x, y: A.silu_backward(dy, x),
             lambda x: np.where(x > 0, x, 0.0), lambda x: np.where(x > 0, 1.0, 0.0)),
    "sigmoid": (A.sigmoid, lambda dy, x, y: A.sigmoid_backward(dy, y),
                lambda x: np.where(x > 0, 1.0, 0.0), lambda x: np.zeros_like(x)),
    "tanh": (A.tanh, lambda dy, x, y: A.tanh_backward(dy, y),
             lambda x: np.sign(x), lambda x: np.zeros_like(x)),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(CASES))
def test_elementwise_activations_are_stable_at_1e4(name, dtype):
    fwd, bwd, limit, limit_prime = CASES[name]
    x = BIG.astype(dtype)
    dy = np.ones_like(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")             # any overflow / invalid-value warning fails the test
        y = fwd(x)
        dx = bwd(dy, x, y)
    assert y.dtype == dtype and dx.dtype == dtype, f"{name}: expected {np.dtype(dtype)}, got y {y.dtype}, dx {dx.dtype}"
    assert np.isfinite(y).all(), f"{name}(x) has nan/inf: {y}"
    assert np.isfinite(dx).all(), f"{name} backward has nan/inf: {dx}"
    assert_close(y[FAR], limit(BIG[FAR]).astype(dtype), rtol=1e-6, atol=1e-30, what=f"{name}(x) for |x| >= 100")
    assert_close(dx[FAR], limit_prime(BIG[FAR]).astype(dtype), rtol=1e-6, atol=1e-30,
                 what=f"{name}'(x) for |x| >= 100")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_keeps_tiny_values_instead_of_rounding_them_to_zero(dtype):
    x = np.array([-30.0, -80.0], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = A.sigmoid(x)
    assert_close(y, np.exp(x.astype(np.float64)) / (1 + np.exp(x.astype(np.float64))), rtol=1e-5, atol=0,
                 what="sigmoid(x) for very negative x (≈ exp(x), not 0)")


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-9), (np.float32, 2e-3)])
def test_softmax_family_backward_is_stable_at_1e4(dtype, tol):
    """(float32 resolves 1e4 only to ~1e-3, hence its tolerance.)"""
    x = np.array([[1e4, -1e4, 0.0, 1e4 - 1.0], [-1e4, -1e4, -1e4, -1e4], [5.0, 1e3, -1e3, 0.0]], dtype=dtype)
    dy = np.array([[1.0, -2.0, 0.5, 3.0]] * 3, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = A.softmax(x)
        dx = A.softmax_backward(dy, y)
        logy = A.log_softmax(x)
        dlx = A.log_softmax_backward(dy, logy)
    assert np.isfinite(dx).all() and np.isfinite(dlx).all(), f"nan/inf in the backward: {dx}, {dlx}"
    for got, what in ((dx, "softmax_backward"), (dlx, "log_softmax_backward")):
        assert got.dtype == dtype, f"{what}: expected {np.dtype(dtype)}, got {got.dtype}"
    p = np.exp(np.float64(-1.0))
    s0, s3 = 1 / (1 + p), p / (1 + p)                 # row 0: softmax over (1e4, 1e4 - 1), the rest 0
    dot = s0 * 1.0 + s3 * 3.0
    assert_close(dx[0], [s0 * (1.0 - dot), 0.0, 0.0, s3 * (3.0 - dot)], rtol=tol, atol=tol,
                 what="softmax_backward on a row with ±1e4")
    assert_close(dx[1], np.array([0.25, 0.25, 0.25, 0.25]) * (dy[1] - dy[1].mean()), rtol=tol, atol=tol,
                 what="softmax_backward on a constant row of -1e4 (uniform softmax)")
    assert_close(dlx[0], dy[0] - np.array([s0, 0.0, 0.0, s3]) * dy[0].sum(), rtol=tol, atol=tol,
                 what="log_softmax_backward on a row with ±1e4")
