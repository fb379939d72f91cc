"""Topic 07 — every backward pass against central finite differences in float64 (relative error < 1e-6)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dlfs.nn import activations as A
from dlfs.nn.layers import Layer
from dlfs.testing import assert_close, check_gradients


def away_from_zero(shape, seed, low=0.05, high=3.0):
    """Random values with |x| in [low, high]: no finite difference straddles the kink at 0."""
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape)


# name -> (forward f(x), backward(dy, x, y)); the backward takes x or the output y as documented.
FUNCTIONS = {
    "relu": (A.relu, lambda dy, x, y: A.relu_backward(dy, x)),
    "leaky_relu": (lambda x: A.leaky_relu(x, 0.15), lambda dy, x, y: A.leaky_relu_backward(dy, x, 0.15)),
    "elu": (lambda x: A.elu(x, 0.7), lambda dy, x, y: A.elu_backward(dy, x, 0.7)),
    "gelu": (A.gelu, lambda dy, x, y: A.gelu_backward(dy, x)),
    "gelu_tanh": (lambda x: A.gelu(x, "tanh"), lambda dy, x, y: A.gelu_backward(dy, x, "tanh")),
    "silu": (A.silu, lambda dy, x, y: A.silu_backward(dy, x)),
    "sigmoid": (A.sigmoid, lambda dy, x, y: A.sigmoid_backward(dy, y)),
    "tanh": (A.tanh, lambda dy, x, y: A.tanh_backward(dy, y)),
    "softmax": (A.softmax, lambda dy, x, y: A.softmax_backward(dy, y)),
    "softmax_axis0": (lambda x: A.softmax(x, axis=0), lambda dy, x, y: A.softmax_backward(dy, y, axis=0)),
    "log_softmax": (A.log_softmax, lambda dy, x, y: A.log_softmax_backward(dy, y)),
    "log_softmax_axis1": (lambda x: A.log_softmax(x, axis=1),
                          lambda dy, x, y: A.log_softmax_backward(dy, y, axis=1)),
}


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_backward_function_matches_finite_differences(name):
    fwd, bwd = FUNCTIONS[name]
    x = away_from_zero((3, 4, 5), seed=0)
    dy = np.random.default_rng(1).standard_normal(x.shape)
    dx = bwd(dy, x, fwd(x))
    check_gradients(lambda: fwd(x), {"x": x}, {"x": dx}, dout=dy)


def test_exact_gelu_gradient_across_the_erf_regions():
    """The exact GELU evaluates erf(x/√2) with three formulas (|x/√2| up to 0.46875, up to 4, beyond);
    the gradient check must hold on both sides of every switch and far out in the tails."""
    edges = np.array([0.46875, 4.0]) * np.sqrt(2.0)
    pts = np.concatenate([edges - 1e-3, edges + 1e-3, [0.01, 1.0, 3.0, 7.0, 9.0, 12.0]])
    x = np.concatenate([pts, -pts])
    dy = np.linspace(-1.5, 2.0, x.size)
    dx = A.gelu_backward(dy, x)
    check_gradients(lambda: A.gelu(x), {"x": x}, {"x": dx}, dout=dy)


LAYERS = {
    "ReLU": lambda: A.ReLU(),
    "LeakyReLU": lambda: A.LeakyReLU(0.2),
    "ELU": lambda: A.ELU(1.3),
    "GELU": lambda: A.GELU(),
    "GELU_tanh": lambda: A.GELU(approximate="tanh"),
    "SiLU": lambda: A.SiLU(),
    "Sigmoid": lambda: A.Sigmoid(),
    "Tanh": lambda: A.Tanh(),
    "Softmax": lambda: A.Softmax(),
    "Softmax_axis1": lambda: A.Softmax(axis=1),
    "LogSoftmax": lambda: A.LogSoftmax(),
    "LogSoftmax_axis0": lambda: A.LogSoftmax(axis=0),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_backward_matches_finite_differences(name):
    layer = LAYERS[name]()
    assert isinstance(layer, Layer), f"{name} must subclass dlfs.nn.layers.Layer"
    assert layer.parameters() == [], f"{name} has no parameters"
    x = away_from_zero((2, 3, 4), seed=2)
    dy = np.random.default_rng(3).standard_normal(x.shape)
    y = layer.forward(x)
    assert y.shape == x.shape, f"{name}: expected output shape {x.shape}, got {y.shape}"
    dx = layer.backward(dy)
    check_gradients(lambda: layer.forward(x), {"x": x}, {"x": dx}, dout=dy)


# ------------------------------------------------------------------------------ properties

rows = hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5),
                  elements=st.floats(-50, 50))


@settings(deadline=None, max_examples=60)
@given(x=rows, seed=st.integers(0, 2**16), shift=st.floats(-10, 10))
def test_softmax_family_gradients_sum_to_zero_and_ignore_a_constant_dy(x, seed, shift):
    """softmax is invariant to adding a constant to x, so Σ_j dx_j = 0 along the axis; and since
    the outputs sum to 1 (softmax) a constant added to dy changes nothing."""
    dy = np.random.default_rng(seed).standard_normal(x.shape)
    y = A.softmax(x)
    dx = A.softmax_backward(dy, y)
    assert_close(dx.sum(axis=-1), np.zeros(x.shape[:-1]), atol=1e-9, what="softmax_backward summed over the axis")
    assert_close(A.softmax_backward(dy + shift, y), dx, rtol=1e-7, atol=1e-8,
                 what="softmax_backward(dy + c) (must equal softmax_backward(dy))")
    dlx = A.log_softmax_backward(dy, A.log_softmax(x))
    assert_close(dlx.sum(axis=-1), np.zeros(x.shape[:-1]), atol=1e-8, what="log_softmax_backward summed over the axis")


@settings(deadline=None, max_examples=60)
@given(x=hnp.arrays(np.float64, hnp.array_shapes(max_dims=2, max_side=6), elements=st.floats(-30, 30)))
def test_relu_identities(x):
    """relu(x) - relu(-x) = x, and leaky_relu with slope 1 is the identity (forward and backward)."""
    assert_close(A.relu(x) - A.relu(-x), x, rtol=0, atol=0, what="relu(x) - relu(-x)")
    dy = np.ones_like(x)
    assert_close(A.relu_backward(dy, x) + A.relu_backward(dy, -x), (x != 0).astype(float), rtol=0, atol=0,
                 what="relu'(x) + relu'(-x) (1 except at 0)")
    assert_close(A.leaky_relu(x, 1.0), x, rtol=0, atol=0, what="leaky_relu(x, 1)")
    assert_close(A.leaky_relu_backward(dy, x, 1.0), dy, rtol=0, atol=0, what="leaky_relu_backward(dy, x, 1)")
