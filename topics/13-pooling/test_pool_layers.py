"""Topic 13 — the pooling layers: MaxPool2d, AvgPool2d, GlobalAvgPool2d against PyTorch and
finite differences, their caches, their geometry errors, and a small conv-pool stack."""

import numpy as np
import pytest

from dlfs.conv import pooling as pl
from dlfs.conv.im2col import Conv2d
from dlfs.nn.layers import Flatten, Layer, Sequential
from dlfs.testing import assert_close, check_gradients
from torch_oracle import to_numpy, to_torch, torch_or_skip


def distinct(shape, seed=0):
    n = int(np.prod(shape))
    return np.random.default_rng(seed).permutation(n).reshape(shape) / n - 0.5


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


LAYER_CASES = [
    # (kernel_size, stride, padding)
    (2, None, 0),
    (3, 2, 1),            # overlapping windows
    (3, 1, 1),            # overlapping, 'same' size
    ((2, 3), (1, 2), (1, 1)),
]


@pytest.mark.parametrize("geometry", LAYER_CASES, ids=str)
def test_max_pool_layer_matches_torch(geometry):
    torch = torch_or_skip()
    k, s, p = geometry
    layer = pl.MaxPool2d(k, s, p)
    x = distinct((2, 3, 7, 6), seed=1)
    y = layer.forward(x)
    dy = randn(*y.shape, seed=2)
    dx = layer.backward(dy)
    tx = to_torch(x, requires_grad=True)
    ty = torch.nn.MaxPool2d(k, s, p)(tx)
    ty.backward(to_torch(dy))
    assert_close(y, to_numpy(ty), rtol=0, atol=0, what=f"MaxPool2d{geometry}.forward vs torch.nn.MaxPool2d")
    assert_close(dx, to_numpy(tx.grad), rtol=1e-12, atol=1e-12, what=f"MaxPool2d{geometry}.backward vs torch")


@pytest.mark.parametrize("geometry", LAYER_CASES, ids=str)
def test_avg_pool_layer_matches_torch(geometry):
    torch = torch_or_skip()
    k, s, p = geometry
    layer = pl.AvgPool2d(k, s, p)
    x = randn(2, 3, 7, 6, seed=3)
    y = layer(x)
    dy = randn(*y.shape, seed=4)
    dx = layer.backward(dy)
    tx = to_torch(x, requires_grad=True)
    ty = torch.nn.AvgPool2d(k, s, p)(tx)
    ty.backward(to_torch(dy))
    assert_close(y, to_numpy(ty), rtol=1e-12, atol=1e-12, what=f"AvgPool2d{geometry}.forward vs torch.nn.AvgPool2d")
    assert_close(dx, to_numpy(tx.grad), rtol=1e-12, atol=1e-12, what=f"AvgPool2d{geometry}.backward vs torch")


def test_global_avg_pool_layer_matches_torch():
    torch = torch_or_skip()
    layer = pl.GlobalAvgPool2d()
    x = randn(2, 4, 5, 3, seed=5)
    y = layer.forward(x)
    dy = randn(2, 4, seed=6)
    dx = layer.backward(dy)
    tx = to_torch(x, requires_grad=True)
    ty = torch.nn.AdaptiveAvgPool2d(1)(tx).flatten(1)
    ty.backward(to_torch(dy))
    assert_close(y, to_numpy(ty), rtol=1e-12, atol=1e-12, what="GlobalAvgPool2d.forward vs torch AdaptiveAvgPool2d(1)")
    assert_close(dx, to_numpy(tx.grad), rtol=1e-12, atol=1e-12, what="GlobalAvgPool2d.backward vs torch")


@pytest.mark.parametrize("make", [lambda: pl.MaxPool2d(3, 2, 1), lambda: pl.AvgPool2d(3, 2, 1),
                                  lambda: pl.MaxPool2d(2), lambda: pl.AvgPool2d((2, 3), 1),
                                  lambda: pl.GlobalAvgPool2d()],
                         ids=["max3s2p1", "avg3s2p1", "max2", "avg2x3s1", "global"])
def test_layer_gradients_match_finite_differences(make):
    layer = make()
    x = distinct((2, 2, 5, 6), seed=7)          # distinct values: every maximum is unique
    y = layer.forward(x)
    dy = randn(*y.shape, seed=8)
    dx = layer.backward(dy)
    check_gradients(lambda: layer.forward(x), {"x": x}, {"x": dx}, dout=dy)


def test_layers_have_no_parameters_and_cache_only_what_backward_needs():
    x = distinct((2, 3, 6, 6), seed=9)
    for layer in (pl.MaxPool2d(2), pl.AvgPool2d(2), pl.GlobalAvgPool2d()):
        assert isinstance(layer, Layer)
        assert layer.parameters() == [], f"{type(layer).__name__} has no parameters"
        y = layer.forward(x)
        assert layer.x_shape == x.shape, f"{type(layer).__name__} must cache the input shape"
        expected = x.mean(axis=(2, 3)) if isinstance(layer, pl.GlobalAvgPool2d) else (
            x.reshape(2, 3, 3, 2, 3, 2).max(axis=(3, 5)) if isinstance(layer, pl.MaxPool2d)
            else x.reshape(2, 3, 3, 2, 3, 2).mean(axis=(3, 5)))
        assert_close(y, expected, rtol=1e-12, what=f"{type(layer).__name__} forward")
    layer = pl.MaxPool2d(2)
    layer.forward(x)
    assert layer.arg is not None and layer.arg.shape == (2, 3, 3, 3), \
        "MaxPool2d caches the argmax offsets, one per output value"
    assert not any(isinstance(v, np.ndarray) and v.shape == x.shape for v in vars(layer).values()), \
        "MaxPool2d should not keep the whole input: the argmax offsets are enough for backward"


def test_the_layer_backward_uses_the_last_forward():
    layer = pl.MaxPool2d(2, 1)
    x1, x2 = distinct((1, 2, 4, 4), seed=10), distinct((3, 2, 5, 5), seed=11)
    layer.forward(x1)
    y2 = layer.forward(x2)
    dy = randn(*y2.shape, seed=12)
    dx = layer.backward(dy)
    _, arg = pl.max_pool2d_forward_naive(x2, 2, 1)
    assert_close(dx, pl.max_pool2d_backward_naive(dy, arg, x2.shape, 2, 1), what="dx after two forward calls")
    with pytest.raises(RuntimeError):
        pl.AvgPool2d(2).backward(np.ones((1, 1, 1, 1)))


def test_layers_refuse_bad_geometry_with_a_clear_message():
    x = randn(1, 2, 4, 4, seed=13)
    with pytest.raises(ValueError, match="half"):
        pl.MaxPool2d(3, 1, 2).forward(x)
    with pytest.raises(ValueError, match="half"):
        pl.AvgPool2d(2, 2, 2).forward(x)
    with pytest.raises(ValueError, match="larger"):
        pl.MaxPool2d(5).forward(x)
    assert_close(pl.MaxPool2d(4).forward(x), x.max(axis=(2, 3), keepdims=True), what="a 4x4 window on a 4x4 input")


def test_layer_repr_and_default_stride():
    layer = pl.MaxPool2d(3)
    assert layer.stride == (3, 3), f"the stride defaults to the kernel size, got {layer.stride}"
    assert "kernel_size=(3, 3)" in repr(layer) and "stride=(3, 3)" in repr(layer), repr(layer)
    x = distinct((1, 1, 7, 7), seed=14)
    assert_close(layer.forward(x), x[:, :, :6, :6].reshape(1, 1, 2, 3, 2, 3).max(axis=(3, 5)),
                 what="MaxPool2d(3) on a 7x7 input (stride 3: the last row and column are not read)")


def test_float32_stack_conv_pool_flatten_stays_float32():
    model = Sequential(Conv2d(1, 4, 3, padding=1, rng=0), pl.MaxPool2d(2), Conv2d(4, 4, 3, padding=1, rng=1),
                       pl.AvgPool2d(3, 2, 1), pl.GlobalAvgPool2d())
    x = randn(2, 1, 8, 8, seed=15).astype(np.float32)
    y = model.forward(x)
    assert y.shape == (2, 4), f"(2, 1, 8, 8) -> conv -> max 2 -> conv -> avg 3/2/1 -> global: expected (2, 4), got {y.shape}"
    dx = model.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == np.float32, f"float32 in, float32 out: y {y.dtype}, dx {dx.dtype}"
    assert dx.shape == x.shape
    flat = Sequential(pl.MaxPool2d(2), Flatten())
    assert_close(flat.forward(x), x.reshape(2, 1, 4, 2, 4, 2).max(axis=(3, 5)).reshape(2, 16),
                 what="MaxPool2d(2) then Flatten")
