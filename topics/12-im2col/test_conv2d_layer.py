"""Topic 12 — the Conv2d layer: parameters and initialisation, forward, gradients, accumulation."""

import numpy as np
import pytest

from dlfs.conv import im2col as ic
from dlfs.conv import sliding_window as naive
from dlfs.nn.layers import Layer, Parameter
from dlfs.testing import assert_close, check_gradients
from torch_oracle import to_numpy, to_torch, torch_or_skip


def make_conv(c_in=2, c_out=3, k=3, seed=0, dtype=np.float64, **kwargs):
    return ic.Conv2d(c_in, c_out, k, rng=np.random.default_rng(seed), dtype=dtype, **kwargs)


def randn(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


# ----------------------------------------------------------------- construction

def test_conv2d_parameters_shapes_names_and_dtype():
    layer = ic.Conv2d(3, 8, (3, 2), rng=0)
    assert isinstance(layer, Layer)
    assert isinstance(layer.W, Parameter) and isinstance(layer.b, Parameter), "W and b must be Parameters"
    assert layer.W.shape == (8, 3, 3, 2), f"W is (out, in, kh, kw): expected (8, 3, 3, 2), got {layer.W.shape}"
    assert layer.b.shape == (8,), f"expected b of shape (8,), got {layer.b.shape}"
    assert layer.W.data.dtype == np.float32 and layer.b.data.dtype == np.float32, \
        f"the default dtype is float32, got W {layer.W.data.dtype}, b {layer.b.data.dtype}"
    assert [name for name, _ in layer.named_parameters()] == ["W", "b"]
    assert layer.W.grad is not None and not layer.W.grad.any(), "gradients must start at zero"

    assert make_conv(dtype=np.float64).W.data.dtype == np.float64
    no_bias = ic.Conv2d(3, 8, 3, bias=False, rng=0)
    assert no_bias.b is None and no_bias.parameters() == [no_bias.W], "bias=False must leave b = None"


def test_conv2d_he_initialisation_is_reproducible():
    c_in, c_out, k = 32, 64, 3
    layer = ic.Conv2d(c_in, c_out, k, rng=np.random.default_rng(0), dtype=np.float64)
    fan_in = c_in * k * k
    std = np.sqrt(2.0 / fan_in)
    W = layer.W.data
    assert abs(W.std() - std) < 0.03 * std, f"He init: std sqrt(2 / fan_in) = {std:.4g}, got {W.std():.4g}"
    assert abs(W.mean()) < 0.03 * std, f"W should have mean 0, got {W.mean():.3g}"
    assert np.abs(W).max() > 3 * std, "W should be normal (a uniform never exceeds 1.73 std)"
    assert not layer.b.data.any(), "b starts at zero"
    again = ic.Conv2d(c_in, c_out, k, rng=np.random.default_rng(0), dtype=np.float64)
    assert_close(again.W.data, W, rtol=0, atol=0, what="W from the same seed")
    other = ic.Conv2d(c_in, c_out, k, rng=np.random.default_rng(1), dtype=np.float64)
    assert not np.allclose(other.W.data, W), "different seeds must give different weights"


# ----------------------------------------------------------------- forward and backward

@pytest.mark.parametrize("kwargs", [dict(), dict(padding=1), dict(stride=2, padding=1),
                                    dict(dilation=2, padding=(2, 1)), dict(stride=(1, 2), bias=False)], ids=str)
def test_conv2d_forward_is_the_convolution(kwargs):
    layer = make_conv(**kwargs)
    x = randn(2, 2, 7, 6)
    y = layer.forward(x)
    b = None if layer.b is None else layer.b.data
    expected = naive.conv2d_forward_naive(x, layer.W.data, b, kwargs.get("stride", 1),
                                          kwargs.get("padding", 0), kwargs.get("dilation", 1))
    assert_close(y, expected, rtol=1e-10, atol=1e-12, what=f"Conv2d(2, 3, 3, {kwargs}).forward")
    assert_close(layer(x), expected, rtol=1e-10, atol=1e-12, what="calling the layer")


@pytest.mark.parametrize("kwargs", [dict(), dict(padding=1), dict(stride=2, padding=1),
                                    dict(dilation=2, padding=(2, 1)), dict(stride=(1, 2), bias=False)], ids=str)
def test_conv2d_layer_gradients_match_finite_differences(kwargs):
    layer = make_conv(**kwargs)
    x = randn(2, 2, 6, 5, seed=2)
    y = layer.forward(x)
    dy = randn(*y.shape, seed=3)
    dx = layer.backward(dy)
    inputs, analytic = {"x": x, "W": layer.W.data}, {"x": dx, "W": layer.W.grad}
    if layer.b is not None:
        inputs["b"], analytic["b"] = layer.b.data, layer.b.grad
    check_gradients(lambda: layer.forward(x), inputs, analytic, dout=dy)


def test_conv2d_gradients_accumulate_in_place():
    layer = make_conv(padding=1)
    W_grad, b_grad = layer.W.grad, layer.b.grad
    x1, x2 = randn(2, 2, 5, 5, seed=4), randn(3, 2, 5, 5, seed=5)
    dy1, dy2 = randn(2, 3, 5, 5, seed=6), randn(3, 3, 5, 5, seed=7)
    layer.forward(x1)
    layer.backward(dy1)
    layer.forward(x2)
    dx2 = layer.backward(dy2)
    _, dw1, db1 = naive.conv2d_backward_naive(dy1, x1, layer.W.data, 1, 1, 1)
    ex2, dw2, db2 = naive.conv2d_backward_naive(dy2, x2, layer.W.data, 1, 1, 1)
    assert_close(layer.W.grad, dw1 + dw2, rtol=1e-10, atol=1e-12, what="W.grad after two backward calls (+=)")
    assert_close(layer.b.grad, db1 + db2, rtol=1e-10, atol=1e-12, what="b.grad after two backward calls (+=)")
    assert_close(dx2, ex2, rtol=1e-10, atol=1e-12, what="dx of the second backward (uses the second input)")
    assert layer.W.grad is W_grad and layer.b.grad is b_grad, \
        "accumulate into the existing .grad arrays in place (an optimiser may hold references to them)"
    layer.zero_grad()
    layer.forward(x2)
    layer.backward(dy2)
    assert_close(layer.W.grad, dw2, rtol=1e-10, atol=1e-12, what="W.grad after zero_grad and one backward")


def test_conv2d_layer_matches_torch():
    torch = torch_or_skip()
    layer = make_conv(3, 4, 3, stride=2, padding=1)
    x = randn(2, 3, 9, 8, seed=8)
    y = layer.forward(x)
    dy = randn(*y.shape, seed=9)
    dx = layer.backward(dy)
    conv = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1).double()
    with torch.no_grad():
        conv.weight.copy_(to_torch(layer.W.data))
        conv.bias.copy_(to_torch(layer.b.data))
    tx = to_torch(x, requires_grad=True)
    ty = conv(tx)
    ty.backward(to_torch(dy))
    assert_close(y, to_numpy(ty), rtol=1e-10, atol=1e-12, what="forward vs torch.nn.Conv2d")
    assert_close(dx, to_numpy(tx.grad), rtol=1e-10, atol=1e-12, what="dx vs torch")
    assert_close(layer.W.grad, to_numpy(conv.weight.grad), rtol=1e-10, atol=1e-12, what="dW vs torch")
    assert_close(layer.b.grad, to_numpy(conv.bias.grad), rtol=1e-10, atol=1e-12, what="db vs torch")


def test_conv2d_float32_training_step_stays_float32():
    layer = ic.Conv2d(4, 6, 3, padding=1, rng=0)
    x = randn(2, 4, 8, 8, seed=10).astype(np.float32)
    y = layer.forward(x)
    dy = randn(*y.shape, seed=11).astype(np.float32)
    dx = layer.backward(dy)
    assert y.dtype == dx.dtype == layer.W.grad.dtype == layer.b.grad.dtype == np.float32, \
        f"float32 layer and input must stay float32: y {y.dtype}, dx {dx.dtype}, dW {layer.W.grad.dtype}"
    W64 = layer.W.data.astype(np.float64)
    _, dw, db = naive.conv2d_backward_naive(dy.astype(np.float64), x.astype(np.float64), W64, 1, 1, 1)
    assert_close(layer.W.grad, dw, rtol=1e-4, atol=1e-3, what="float32 dW")
    assert_close(y, naive.conv2d_forward_naive(x.astype(np.float64), W64, layer.b.data.astype(np.float64), 1, 1, 1),
                 rtol=1e-4, atol=1e-4, what="float32 forward")
