"""Topic 14 — the CIFAR ResNet: layout and parameter count, forward/backward against PyTorch and
finite differences, train/eval propagation, state dict."""

import numpy as np
import pytest

from dlfs.conv import resnet
from dlfs.conv.im2col import Conv2d
from dlfs.nn.layers import Linear
from dlfs.nn.batchnorm import BatchNorm2d
from dlfs.testing import assert_close, check_layer_gradients, randomize_batchnorm
from torch_oracle import to_numpy, to_torch


def small_resnet(residual=True, seed=0, n=1, widths=(3, 4, 5), num_classes=4, in_channels=2):
    model = resnet.ResNet(n, widths, num_classes=num_classes, in_channels=in_channels, residual=residual,
                          rng=np.random.default_rng(seed), dtype=np.float64)
    randomize_batchnorm(model, seed + 100)
    return model


def expected_parameters(n, widths, num_classes, in_channels, residual=True):
    """Count by hand: stem conv + BN, the blocks (two 3×3 convs + two BNs, plus a 1×1 conv + BN
    where the shape changes), the linear head."""
    total = 9 * in_channels * widths[0] + 2 * widths[0]
    c = widths[0]
    for stage, w in enumerate(widths):
        for b in range(n):
            stride = 2 if stage > 0 and b == 0 else 1
            total += 9 * c * w + 2 * w + 9 * w * w + 2 * w
            if residual and (stride != 1 or c != w):
                total += c * w + 2 * w
            c = w
    return total + c * num_classes + num_classes


# ----------------------------------------------------------------- layout

def test_resnet20_parameter_count_and_layout():
    model = resnet.resnet20(rng=0)
    assert model.num_parameters() == 272_474, f"ResNet-20 has 272,474 parameters, got {model.num_parameters():,}"
    assert model.depth == 20
    layers = model.net.layers
    kinds = [type(l).__name__ for l in layers]
    expected = ["Conv2d", "BatchNorm2d", "ReLU"] + ["BasicBlock"] * 9 + ["GlobalAvgPool2d", "Linear"]
    assert kinds == expected, f"expected the layers {expected}, got {kinds}"
    blocks = layers[3:12]
    got = [(b.conv1.in_channels, b.conv1.out_channels, b.conv1.stride[0], b.shortcut is not None) for b in blocks]
    want = ([(16, 16, 1, False)] * 3 + [(16, 32, 2, True)] + [(32, 32, 1, False)] * 2
            + [(32, 64, 2, True)] + [(64, 64, 1, False)] * 2)
    assert got == want, f"blocks as (in, out, stride, projection?): expected {want}, got {got}"
    assert isinstance(layers[0], Conv2d) and layers[0].W.shape == (16, 3, 3, 3) and layers[0].b is None
    assert isinstance(layers[-1], Linear) and layers[-1].W.shape == (64, 10)


@pytest.mark.parametrize("n, widths, num_classes, in_channels", [
    (1, (16, 32, 64), 10, 3), (2, (16, 32, 64), 10, 3), (5, (16, 32, 64), 100, 3), (2, (4, 8, 8), 7, 1)])
@pytest.mark.parametrize("residual", [True, False], ids=["residual", "plain"])
def test_parameter_count_and_depth(n, widths, num_classes, in_channels, residual):
    model = resnet.ResNet(n, widths, num_classes, in_channels, residual=residual, rng=0)
    want = expected_parameters(n, widths, num_classes, in_channels, residual)
    assert model.num_parameters() == want, \
        f"ResNet(n={n}, widths={widths}, residual={residual}): expected {want:,} parameters, " \
        f"got {model.num_parameters():,}"
    blocks = [l for l in model.net.layers if isinstance(l, resnet.BasicBlock)]
    assert len(blocks) == 3 * n, f"expected 3·{n} blocks, got {len(blocks)}"
    weighted = 1 + 2 * len(blocks) + 1                  # stem, two convs per block, the classifier
    assert weighted == model.depth == 6 * n + 2
    assert all(b.residual == residual for b in blocks), "every block gets the network's residual flag"


@pytest.mark.parametrize("size, maps", [(32, (32, 16, 8)), (9, (9, 5, 3))])
def test_feature_map_sizes_per_stage(size, maps):
    model = resnet.ResNet(2, (2, 3, 4), num_classes=3, in_channels=3, rng=0, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((2, 3, size, size))
    shapes = []
    h = x
    for layer in model.net.layers:
        h = layer.forward(h)
        if isinstance(layer, resnet.BasicBlock):
            shapes.append(h.shape)
    want = [(2, c, s, s) for c, s in zip((2, 3, 4), maps) for _ in range(2)]
    assert shapes == want, f"block output shapes for a {size}x{size} input: expected {want}, got {shapes}"
    assert h.shape == (2, 3)
    assert_close(model.forward(x), h, rtol=1e-12, atol=1e-12, what="ResNet.forward = the layers in order")


# ----------------------------------------------------------------- forward and backward

@pytest.mark.parametrize("residual", [True, False], ids=["residual", "plain"])
def test_small_resnet_matches_torch(residual, mirror):
    model = small_resnet(residual)
    tnet = mirror.resnet(1, (3, 4, 5), 4, 2, residual)
    pairs = mirror.load(tnet, model, prefix="net.")
    x = np.random.default_rng(1).standard_normal((3, 2, 8, 8))
    logits = model.forward(x)
    dy = np.random.default_rng(2).standard_normal(logits.shape)
    dx = model.backward(dy)
    tx = to_torch(x, requires_grad=True)
    ty = tnet(tx)
    ty.backward(to_torch(dy))
    assert_close(logits, to_numpy(ty), rtol=1e-9, atol=1e-11, what="logits vs torch")
    assert_close(dx, to_numpy(tx.grad), rtol=1e-8, atol=1e-10, what="dx vs torch")
    for name, p, t, transposed in pairs:
        g = to_numpy(t.grad)
        assert_close(p.grad, g.T if transposed else g, rtol=1e-8, atol=1e-10, what=f"gradient of {name} vs torch")


def test_small_resnet_gradients_match_finite_differences():
    model = resnet.ResNet(1, (2, 3, 3), num_classes=3, in_channels=1, rng=np.random.default_rng(3),
                          dtype=np.float64)
    randomize_batchnorm(model, 4)
    x = np.random.default_rng(5).standard_normal((2, 1, 6, 6))
    # h = 1e-5 rather than 1e-6: the rounding error of the difference quotient (~1e-16·|output| / h)
    # matters for the smallest gradient entries; no ReLU input is within 1e-5 of its kink here
    check_layer_gradients(model, x, seed=6, h=1e-5)


# ----------------------------------------------------------------- modes and state

def _resnet_after_one_training_step():
    model = small_resnet(True)
    x = np.random.default_rng(7).standard_normal((4, 2, 8, 8))
    model.forward(x)                                   # one training step's statistics
    return model, x


def test_train_and_eval_reach_every_batchnorm():
    model, x = _resnet_after_one_training_step()
    bns = [l for l in model.sublayers() if isinstance(l, BatchNorm2d)]
    assert len(bns) == 1 + 2 * 3 + 2, \
        f"expected 9 BatchNorm2d layers (stem, 2 per block, 2 projections), got {len(bns)}"
    model.eval()
    assert not model.training and all(not bn.training for bn in bns), \
        "eval() must reach every BatchNorm2d, inside the blocks and their shortcuts"
    y = model.forward(x)
    assert_close(model.forward(x[2:3]), y[2:3], rtol=1e-10, atol=1e-12,
                 what="in eval mode a sample's logits do not depend on the batch")
    model.train()
    assert model.training and all(bn.training for bn in bns), "train() must switch every BatchNorm2d back"
    assert not np.allclose(model.forward(x), y), "training mode normalises with the batch's own statistics"


def test_eval_mode_matches_torch(mirror):
    model, x = _resnet_after_one_training_step()
    model.eval()
    tnet = mirror.resnet(1, (3, 4, 5), 4, 2, True)
    mirror.load(tnet, model, prefix="net.")
    tnet.eval()
    assert_close(model.forward(x), to_numpy(tnet(to_torch(x))), rtol=1e-9, atol=1e-11,
                 what="eval-mode logits vs torch")


def test_state_dict_round_trip():
    model = small_resnet(True, seed=0)
    x = np.random.default_rng(8).standard_normal((4, 2, 8, 8))
    model.forward(x)
    state = model.state_dict()
    for key in ("net.layers.0.W", "net.layers.1.running_mean", "net.layers.3.conv1.W", "net.layers.3.bn2.gamma",
                "net.layers.4.shortcut.layers.0.W", "net.layers.4.shortcut.layers.1.running_var",
                "net.layers.7.W", "net.layers.7.b"):
        assert key in state, f"expected '{key}' in the state dict; got {sorted(state)}"
    model.eval()
    y = model.forward(x)

    other = small_resnet(True, seed=1)
    other.eval()
    assert not np.allclose(other.forward(x), y), "a different seed gives a different model"
    other.load_state_dict(state)
    assert_close(other.forward(x), y, rtol=1e-12, atol=1e-12, what="eval logits after load_state_dict")

    model.net.layers[3].bn1.gamma.data[...] += 1.0     # the saved state is a copy
    assert_close(other.forward(x), y, rtol=1e-12, atol=1e-12, what="logits of the loaded model after "
                 "changing the original (state_dict must copy)")
    plain = small_resnet(False)
    with pytest.raises(ValueError):
        plain.load_state_dict(state)                   # no projection shortcuts in the plain network
