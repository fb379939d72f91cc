"""ResNet-9 (dlfs.conv.resnet9): layers, parameter counts, gradients against central
differences in float64, and the whole network against the same network in PyTorch."""

import numpy as np
import pytest

from benchmarks.bench_resnet import torch_resnet9
from dlfs.conv.resnet9 import Residual, ResNet9, Scale
from dlfs.nn.layers import Linear
from dlfs.nn.batchnorm import BatchNorm2d
from dlfs.testing import assert_close, check_layer_gradients, randomize_batchnorm
from torch_oracle import to_numpy, to_torch, torch_or_skip


def test_residual_adds_its_input_and_passes_the_gradient_both_ways():
    body = Linear(3, 3, rng=np.random.default_rng(0), dtype=np.float64)
    block = Residual(body)
    x = np.random.default_rng(1).standard_normal((4, 3))
    assert_close(block.forward(x), x + x @ body.W.data + body.b.data, rtol=1e-12,
                 what="Residual(x) = x + body(x)")
    check_layer_gradients(block, x, seed=2)


def test_residual_refuses_a_body_that_changes_the_shape():
    with pytest.raises(ValueError, match=r"keep the shape \(4, 3\)"):
        Residual(Linear(3, 5, rng=0)).forward(np.zeros((4, 3), dtype=np.float32))


def test_scale_multiplies_forward_and_backward():
    s = Scale(0.125)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert_close(s.forward(x), x / 8, what="Scale(0.125) forward")
    assert s.forward(x).dtype == np.float32, "Scale keeps float32"
    assert_close(s.backward(np.ones_like(x)), np.full_like(x, 0.125), what="Scale(0.125) backward")


@pytest.mark.parametrize("width, expected", [(32, 1_646_122), (64, 6_573_130)])
def test_parameter_counts(width, expected):
    got = ResNet9(width, rng=0).num_parameters()
    assert got == expected, f"ResNet9(width={width}): expected {expected:,} parameters, got {got:,}"


def test_forward_shapes_dtype_and_input_checks():
    model = ResNet9(4, num_classes=7, rng=0)
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    logits = model.forward(x)
    assert logits.shape == (3, 7) and logits.dtype == np.float32, (logits.shape, logits.dtype)
    assert model.backward(np.ones_like(logits)).shape == x.shape
    with pytest.raises(ValueError, match=r"\(N, C, 32, 32\)"):
        model.forward(x[..., :16, :16])
    with pytest.raises(ValueError, match="multiple of 8"):
        ResNet9(4, image_size=20)


def test_gradients_match_finite_differences():
    """In eval mode the network is piecewise linear in x and in each parameter (convolutions,
    affine BatchNorm, ReLU, max pooling, Linear, Scale), so central differences are exact
    between kinks and a large step keeps the rounding error of the quotient far below 1e-6
    even for the smallest gradient entries (no ReLU input or pooling tie lies within h here).
    Training-mode BatchNorm is checked against PyTorch below and against finite differences
    in Topics 09 and 16."""
    model = ResNet9(1, num_classes=3, rng=np.random.default_rng(3), dtype=np.float64, image_size=16)
    randomize_batchnorm(model, 4)
    model.eval()
    check_layer_gradients(model, np.random.default_rng(5).standard_normal((2, 3, 16, 16)), seed=6, h=1e-3)


def load_into_torch(torch, tnet, model):
    """Copy our parameters into ``tnet`` in order (Linear weights transposed) and the BN buffers."""
    ours = [p for _, p in model.named_parameters()]
    theirs = list(tnet.parameters())
    assert len(ours) == len(theirs), f"{len(ours)} parameters here, {len(theirs)} in the torch network"
    with torch.no_grad():
        for p, t in zip(ours, theirs):
            data = p.data.T if p.data.ndim == 2 else p.data
            assert data.shape == tuple(t.shape), f"parameter shapes differ: {data.shape} vs {tuple(t.shape)}"
            t.copy_(to_torch(data))
        tbns = [m for m in tnet.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        bns = [l for l in model.sublayers() if isinstance(l, BatchNorm2d)]
        for bn, tbn in zip(bns, tbns, strict=True):
            tbn.running_mean.copy_(to_torch(bn.running_mean))
            tbn.running_var.copy_(to_torch(bn.running_var))
    return list(zip(ours, theirs))


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_matches_torch(mode):
    torch = torch_or_skip()
    model = ResNet9(2, num_classes=5, rng=np.random.default_rng(7), dtype=np.float64, image_size=16)
    randomize_batchnorm(model, 8)
    tnet = torch_resnet9(torch, 2, 5, 16).double()
    pairs = load_into_torch(torch, tnet, model)
    if mode == "eval":
        model.eval()
        tnet.eval()
    x = np.random.default_rng(9).standard_normal((4, 3, 16, 16))
    logits = model.forward(x)
    dy = np.random.default_rng(10).standard_normal(logits.shape)
    dx = model.backward(dy)
    tx = to_torch(x, requires_grad=True)
    ty = tnet(tx)
    ty.backward(to_torch(dy))
    assert_close(logits, to_numpy(ty), rtol=1e-9, atol=1e-11, what=f"{mode}-mode logits vs torch")
    assert_close(dx, to_numpy(tx.grad), rtol=1e-8, atol=1e-10, what=f"{mode}-mode dx vs torch")
    for i, (p, t) in enumerate(pairs):
        g = to_numpy(t.grad)
        assert_close(p.grad, g.T if g.ndim == 2 else g, rtol=1e-8, atol=1e-10,
                     what=f"gradient of parameter {i} vs torch ({mode} mode)")
