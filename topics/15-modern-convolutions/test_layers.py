"""Topic 15 — the layers: GroupedConv2d, DepthwiseConv2d, PointwiseConv2d, DepthwiseSeparableConv2d."""

import numpy as np
import pytest

from dlfs.conv import modern as mc
from dlfs.nn.layers import Layer, Parameter
from dlfs.testing import assert_close, check_gradients
from torch_oracle import to_numpy, to_torch, torch_or_skip

# A convolution is linear in each of its inputs, so central differences are exact up to rounding
# for any step: a step of 1e-3 (instead of 1e-6) keeps the rounding error far below the tolerance.


def randn(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


def layer_gradcheck(layer, x):
    y = layer.forward(x)
    dy = randn(*y.shape, seed=99)
    layer.zero_grad()
    dx = layer.backward(dy)
    inputs, analytic = {"x": x}, {"x": dx}
    for name, p in layer.named_parameters():
        inputs[name], analytic[name] = p.data, p.grad
    check_gradients(lambda: layer.forward(x), inputs, analytic, dout=dy, h=1e-3)


# ----------------------------------------------------------------- construction

def test_parameter_shapes_names_and_dtypes():
    g = mc.GroupedConv2d(6, 9, 3, groups=3, rng=0)
    assert isinstance(g, Layer) and isinstance(g.W, Parameter) and isinstance(g.b, Parameter)
    assert g.W.shape == (9, 2, 3, 3), f"GroupedConv2d(6, 9, 3, groups=3): W is (9, 6/3, 3, 3), got {g.W.shape}"
    assert g.b.shape == (9,) and g.W.data.dtype == np.float32, "b is (C_out,); float32 by default"
    d = mc.DepthwiseConv2d(4, (3, 5), multiplier=2, rng=0)
    assert d.W.shape == (8, 1, 3, 5) and d.b.shape == (8,), f"DepthwiseConv2d(4, (3, 5), multiplier=2): W {d.W.shape}"
    p = mc.PointwiseConv2d(4, 7, bias=False, rng=0, dtype=np.float64)
    assert p.W.shape == (7, 4, 1, 1) and p.b is None and p.W.data.dtype == np.float64
    s = mc.DepthwiseSeparableConv2d(4, 8, 3, padding=1, rng=0)
    names = [name for name, _ in s.named_parameters()]
    assert names == ["depthwise.W", "depthwise.b", "pointwise.W", "pointwise.b"], f"got {names}"
    assert s.depthwise.W.shape == (4, 1, 3, 3) and s.pointwise.W.shape == (8, 4, 1, 1)
    assert not any(q.grad.any() for q in s.parameters()), "gradients start at zero"


def test_grouped_layer_rejects_groups_that_do_not_divide_the_channels():
    with pytest.raises(ValueError, match="divisible"):
        mc.GroupedConv2d(6, 8, 3, groups=4)
    with pytest.raises(ValueError, match="divisible"):
        mc.GroupedConv2d(8, 6, 3, groups=4)
    assert mc.GroupedConv2d(8, 4, 3, groups=4, rng=0).W.shape == (4, 2, 3, 3)


@pytest.mark.parametrize("make, fan_in", [
    (lambda rng: mc.GroupedConv2d(64, 128, 3, groups=4, rng=rng, dtype=np.float64), 16 * 9),
    (lambda rng: mc.DepthwiseConv2d(512, 3, multiplier=2, rng=rng, dtype=np.float64), 9),
    (lambda rng: mc.PointwiseConv2d(96, 192, rng=rng, dtype=np.float64), 96),
], ids=["grouped", "depthwise", "pointwise"])
def test_he_initialisation_uses_the_inputs_one_output_sees(make, fan_in):
    layer = make(np.random.default_rng(0))
    W, std = layer.W.data, np.sqrt(2.0 / fan_in)
    assert abs(W.std() - std) < 0.05 * std, f"He init: std sqrt(2 / {fan_in}) = {std:.4g}, got {W.std():.4g}"
    assert abs(W.mean()) < 0.05 * std and not layer.b.data.any()
    again = make(np.random.default_rng(0))
    assert_close(again.W.data, W, rtol=0, atol=0, what="W from the same seed")


def test_num_parameters_match_the_counting_functions():
    assert mc.GroupedConv2d(64, 128, 3, groups=4).num_parameters() == mc.conv2d_params(64, 128, 3, groups=4)
    assert mc.DepthwiseSeparableConv2d(64, 128, 3).num_parameters() == mc.depthwise_separable_params(64, 128, 3)
    no_bias = mc.DepthwiseSeparableConv2d(32, 64, 5, multiplier=2, bias=False)
    assert no_bias.num_parameters() == mc.depthwise_separable_params(32, 64, 5, multiplier=2, bias=False) == 1600 + 4096


# ----------------------------------------------------------------- forward, gradients, torch

@pytest.mark.parametrize("kwargs", [dict(groups=2, padding=1), dict(groups=3, stride=2, dilation=(1, 2)),
                                    dict(groups=1, bias=False), dict(groups=6, padding=2, dilation=2)], ids=str)
def test_grouped_layer_forward_and_gradients(kwargs):
    layer = mc.GroupedConv2d(6, 6, 3, rng=0, dtype=np.float64, **kwargs)
    x = randn(2, 6, 7, 6)
    b = None if layer.b is None else layer.b.data
    expected = mc.grouped_conv2d_forward(x, layer.W.data, b, kwargs.get("stride", 1), kwargs.get("padding", 0),
                                         kwargs.get("dilation", 1), kwargs["groups"])
    assert_close(layer(x), expected, rtol=1e-12, atol=1e-12, what=f"GroupedConv2d(6, 6, 3, {kwargs})")
    layer_gradcheck(layer, randn(1, 6, 6, 5, seed=2))


@pytest.mark.parametrize("method", ["gemm", "einsum"])
@pytest.mark.parametrize("kwargs", [dict(padding=1), dict(stride=2, padding=1, multiplier=2),
                                    dict(dilation=2, padding=2, bias=False)], ids=str)
def test_depthwise_layer_forward_and_gradients(kwargs, method):
    layer = mc.DepthwiseConv2d(3, 3, rng=0, dtype=np.float64, method=method, **kwargs)
    x = randn(2, 3, 7, 6)
    b = None if layer.b is None else layer.b.data
    expected = mc.grouped_conv2d_forward(x, layer.W.data, b, kwargs.get("stride", 1), kwargs.get("padding", 0),
                                         kwargs.get("dilation", 1), groups=3)
    assert_close(layer(x), expected, rtol=1e-12, atol=1e-12, what=f"DepthwiseConv2d(3, 3, {kwargs}, method={method})")
    layer_gradcheck(layer, randn(1, 3, 6, 5, seed=3))


def test_pointwise_and_separable_layers_forward_and_gradients():
    p = mc.PointwiseConv2d(3, 4, stride=2, rng=0, dtype=np.float64)
    x = randn(2, 3, 7, 6)
    assert_close(p(x), mc.pointwise_conv2d_forward(x, p.W.data, p.b.data, 2), rtol=1e-12, atol=1e-12,
                 what="PointwiseConv2d(3, 4, stride=2)")
    layer_gradcheck(p, randn(1, 3, 5, 4, seed=4))
    s = mc.DepthwiseSeparableConv2d(3, 5, 3, stride=2, padding=1, multiplier=2, rng=0, dtype=np.float64)
    mid = mc.grouped_conv2d_forward(x, s.depthwise.W.data, s.depthwise.b.data, 2, 1, 1, groups=3)
    expected = mc.pointwise_conv2d_forward(mid, s.pointwise.W.data, s.pointwise.b.data)
    assert_close(s(x), expected, rtol=1e-12, atol=1e-12, what="DepthwiseSeparableConv2d = pointwise(depthwise(x))")
    layer_gradcheck(s, randn(1, 3, 6, 5, seed=5))


def test_separable_block_matches_torch():
    torch = torch_or_skip()
    s = mc.DepthwiseSeparableConv2d(4, 6, 3, stride=2, padding=1, rng=0, dtype=np.float64)
    x = randn(2, 4, 9, 8, seed=6)
    y = s.forward(x)
    dy = randn(*y.shape, seed=7)
    dx = s.backward(dy)
    dw_conv = torch.nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=4).double()
    pw_conv = torch.nn.Conv2d(4, 6, 1).double()
    with torch.no_grad():
        for conv, layer in ((dw_conv, s.depthwise), (pw_conv, s.pointwise)):
            conv.weight.copy_(to_torch(layer.W.data))
            conv.bias.copy_(to_torch(layer.b.data))
    tx = to_torch(x, requires_grad=True)
    ty = pw_conv(dw_conv(tx))
    ty.backward(to_torch(dy))
    assert_close(y, to_numpy(ty), rtol=1e-10, atol=1e-12, what="separable block forward vs torch")
    assert_close(dx, to_numpy(tx.grad), rtol=1e-10, atol=1e-12, what="dx vs torch")
    for name, conv, layer in (("depthwise", dw_conv, s.depthwise), ("pointwise", pw_conv, s.pointwise)):
        assert_close(layer.W.grad, to_numpy(conv.weight.grad), rtol=1e-10, atol=1e-12, what=f"{name} dW vs torch")
        assert_close(layer.b.grad, to_numpy(conv.bias.grad), rtol=1e-10, atol=1e-12, what=f"{name} db vs torch")


def test_grouped_layer_matches_torch():
    torch = torch_or_skip()
    layer = mc.GroupedConv2d(6, 4, 3, stride=2, padding=1, dilation=2, groups=2, rng=0, dtype=np.float64)
    x = randn(2, 6, 9, 8, seed=8)
    y = layer.forward(x)
    dy = randn(*y.shape, seed=9)
    dx = layer.backward(dy)
    conv = torch.nn.Conv2d(6, 4, 3, stride=2, padding=1, dilation=2, groups=2).double()
    with torch.no_grad():
        conv.weight.copy_(to_torch(layer.W.data))
        conv.bias.copy_(to_torch(layer.b.data))
    tx = to_torch(x, requires_grad=True)
    ty = conv(tx)
    ty.backward(to_torch(dy))
    assert_close(y, to_numpy(ty), rtol=1e-10, atol=1e-12, what="GroupedConv2d forward vs torch")
    assert_close(dx, to_numpy(tx.grad), rtol=1e-10, atol=1e-12, what="dx vs torch")
    assert_close(layer.W.grad, to_numpy(conv.weight.grad), rtol=1e-10, atol=1e-12, what="dW vs torch")
    assert_close(layer.b.grad, to_numpy(conv.bias.grad), rtol=1e-10, atol=1e-12, what="db vs torch")


@pytest.mark.parametrize("make", [
    lambda: mc.GroupedConv2d(4, 4, 3, padding=1, groups=2, rng=0, dtype=np.float64),
    lambda: mc.DepthwiseConv2d(4, 3, padding=1, rng=0, dtype=np.float64),
    lambda: mc.DepthwiseConv2d(4, 3, padding=1, rng=0, dtype=np.float64, method="einsum"),
    lambda: mc.PointwiseConv2d(4, 4, rng=0, dtype=np.float64),
    lambda: mc.DepthwiseSeparableConv2d(4, 4, 3, padding=1, rng=0, dtype=np.float64),
], ids=["grouped", "depthwise", "depthwise-einsum", "pointwise", "separable"])
def test_gradients_accumulate_in_place(make):
    layer = make()
    grads = [p.grad for p in layer.parameters()]
    x1, x2 = randn(2, 4, 5, 5, seed=10), randn(1, 4, 5, 5, seed=11)
    dy1, dy2 = randn(2, 4, 5, 5, seed=12), randn(1, 4, 5, 5, seed=13)
    layer.forward(x1)
    layer.backward(dy1)
    first = [g.copy() for g in grads]
    layer.zero_grad()
    layer.forward(x2)
    layer.backward(dy2)
    second = [g.copy() for g in grads]
    layer.zero_grad()
    layer.forward(x1)
    layer.backward(dy1)
    layer.forward(x2)
    layer.backward(dy2)
    for p, g, a, b in zip(layer.parameters(), grads, first, second):
        assert p.grad is g, f"{p.name}: accumulate into the existing .grad array (an optimiser may hold it)"
        assert_close(p.grad, a + b, rtol=1e-10, atol=1e-12, what=f"{p.name}.grad after two backward calls (+=)")
    assert any(np.abs(a).sum() > 0 for a in first), "the first backward must produce non-zero gradients"


def test_float32_training_step_stays_float32():
    s = mc.DepthwiseSeparableConv2d(4, 6, 3, padding=1, rng=0)
    g = mc.GroupedConv2d(6, 6, 3, padding=1, groups=3, rng=0)
    x = randn(2, 4, 8, 8, seed=14).astype(np.float32)
    y = g.forward(s.forward(x))
    dx = s.backward(g.backward(np.ones_like(y)))
    dtypes = {y.dtype, dx.dtype} | {p.grad.dtype for p in s.parameters() + g.parameters()}
    assert dtypes == {np.dtype(np.float32)}, f"float32 layers and input must stay float32, got {dtypes}"
    assert np.abs(s.pointwise.W.grad).sum() > 0
