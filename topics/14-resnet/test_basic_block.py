"""Topic 14 — the basic block: shortcut choice, forward values, gradients, the skip's gradient path."""

import numpy as np
import pytest

from dlfs.conv import resnet
from dlfs.conv.im2col import Conv2d, conv2d_forward
from dlfs.nn.layers import Sequential
from dlfs.nn.batchnorm import BatchNorm2d
from dlfs.testing import assert_close, check_layer_gradients, randomize_batchnorm
from torch_oracle import to_numpy, to_torch



# (in_channels, out_channels, stride, residual, H): identity; projection for a channel change,
# for stride 2 alone, for both (odd size: 5 -> 3); plain (no shortcut), also with stride 2
CASES = {
    "identity": (3, 3, 1, True, 4),
    "projection-channels": (2, 3, 1, True, 4),
    "projection-stride2-only": (3, 3, 2, True, 4),
    "projection-stride2": (2, 4, 2, True, 5),
    "plain": (3, 3, 1, False, 4),
    "plain-stride2": (2, 3, 2, False, 5),
}


def make_block(case, seed=0, dtype=np.float64):
    cin, cout, stride, residual, _ = CASES[case]
    block = resnet.BasicBlock(cin, cout, stride, residual=residual, rng=np.random.default_rng(seed), dtype=dtype)
    randomize_batchnorm(block, seed + 100)
    return block


def make_input(case, n=2, seed=1, dtype=np.float64):
    cin, _, _, _, h = CASES[case]
    return np.random.default_rng(seed).standard_normal((n, cin, h, h)).astype(dtype)


def bn_train(z, bn):
    """Batch normalisation in training mode, written out."""
    mean = z.mean(axis=(0, 2, 3), keepdims=True)
    var = z.var(axis=(0, 2, 3), keepdims=True)
    return (z - mean) / np.sqrt(var + bn.eps) * bn.gamma.data[None, :, None, None] + bn.beta.data[None, :, None, None]


def bn_eval(z, bn):
    """Batch normalisation in evaluation mode: the running statistics instead of the batch's."""
    c = (None, slice(None), None, None)
    return (z - bn.running_mean[c]) / np.sqrt(bn.running_var[c] + bn.eps) * bn.gamma.data[c] + bn.beta.data[c]


def bn_inputs(block, x):
    """The input of every BatchNorm2d of the block in training mode, by name: bn1, bn2 and
    (with a projection) the shortcut's."""
    c1, c2 = block.conv1, block.conv2
    z = {"bn1": conv2d_forward(x, c1.W.data, None, c1.stride, 1)}
    z["bn2"] = conv2d_forward(np.maximum(bn_train(z["bn1"], block.bn1), 0), c2.W.data, None, 1, 1)
    if block.shortcut is not None:
        conv = block.shortcut.layers[0]
        z["shortcut"] = conv2d_forward(x, conv.W.data, None, conv.stride, 0)
    return z


def expected_output(block, x, bn=bn_train):
    """relu(BN(conv(relu(BN(conv(x))))) + S(x)), with the block's own weights; ``bn`` is
    :func:`bn_train` (batch statistics) or :func:`bn_eval` (running statistics)."""
    c1, c2 = block.conv1, block.conv2
    h = np.maximum(bn(conv2d_forward(x, c1.W.data, None, c1.stride, 1), block.bn1), 0)
    f = bn(conv2d_forward(h, c2.W.data, None, 1, 1), block.bn2)
    if not block.residual:
        return np.maximum(f, 0)
    if block.shortcut is None:
        return np.maximum(f + x, 0)
    conv, sbn = block.shortcut.layers
    return np.maximum(f + bn(conv2d_forward(x, conv.W.data, None, conv.stride, 0), sbn), 0)


# ----------------------------------------------------------------- structure

@pytest.mark.parametrize("case", list(CASES))
def test_block_layers_and_shortcut_choice(case):
    cin, cout, stride, residual, _ = CASES[case]
    block = make_block(case)
    assert isinstance(block.conv1, Conv2d) and isinstance(block.conv2, Conv2d)
    assert (block.conv1.in_channels, block.conv1.out_channels, block.conv1.stride) == (cin, cout, (stride, stride))
    assert block.conv1.b is None and block.conv2.b is None, "the convolutions before a BatchNorm have no bias"
    assert isinstance(block.bn1, BatchNorm2d) and isinstance(block.bn2, BatchNorm2d)
    wants_projection = residual and (stride != 1 or cin != cout)
    if not wants_projection:
        kind = "identity" if residual else "plain (no shortcut)"
        assert block.shortcut is None, f"{case}: expected shortcut None ({kind}), got {block.shortcut!r}"
        return
    assert isinstance(block.shortcut, Sequential), \
        f"{case}: in={cin}, out={cout}, stride={stride} needs a projection shortcut, got {block.shortcut!r}"
    conv, bn = block.shortcut.layers
    assert isinstance(conv, Conv2d) and isinstance(bn, BatchNorm2d), \
        f"the projection is Sequential(Conv2d, BatchNorm2d), got {block.shortcut!r}"
    assert conv.W.shape == (cout, cin, 1, 1) and conv.stride == (stride, stride) and conv.b is None, \
        f"the projection's convolution is 1x1, stride {stride}, no bias: got W {conv.W.shape}, stride {conv.stride}"
    assert conv.padding == (0, 0), f"a 1x1 projection has no padding, got {conv.padding}"
    assert bn.num_features == cout


def test_block_draws_weights_in_order():
    """conv1, conv2 and then the projection draw from the same generator, in that order."""
    block = resnet.BasicBlock(2, 4, 2, rng=np.random.default_rng(7), dtype=np.float64)
    rng = np.random.default_rng(7)
    c1 = Conv2d(2, 4, 3, stride=2, padding=1, bias=False, rng=rng, dtype=np.float64)
    c2 = Conv2d(4, 4, 3, padding=1, bias=False, rng=rng, dtype=np.float64)
    cs = Conv2d(2, 4, 1, stride=2, bias=False, rng=rng, dtype=np.float64)
    assert_close(block.conv1.W.data, c1.W.data, rtol=0, atol=0, what="conv1.W (drawn first)")
    assert_close(block.conv2.W.data, c2.W.data, rtol=0, atol=0, what="conv2.W (drawn second)")
    assert_close(block.shortcut.layers[0].W.data, cs.W.data, rtol=0, atol=0,
                 what="the projection's W (drawn third, from the same generator)")


# ----------------------------------------------------------------- forward

@pytest.mark.parametrize("case", list(CASES))
def test_block_forward_values_and_shape(case):
    cin, cout, stride, residual, h = CASES[case]
    block = make_block(case)
    x = make_input(case)
    y = block.forward(x)
    h_out = (h - 1) // stride + 1
    assert y.shape == (2, cout, h_out, h_out), f"{case}: expected output shape {(2, cout, h_out, h_out)}, got {y.shape}"
    assert_close(y, expected_output(block, x), rtol=1e-10, atol=1e-12,
                 what=f"{case} block output relu(F(x) + S(x))")
    assert (y >= 0).all() and (y == 0).any() and (y > 0).any(), "the output goes through a final ReLU"


@pytest.mark.parametrize("case", list(CASES))
def test_block_training_forward_updates_each_running_statistic_once(case):
    block = make_block(case)
    x = make_input(case)
    bns = {"bn1": block.bn1, "bn2": block.bn2}
    if block.shortcut is not None:
        bns["shortcut"] = block.shortcut.layers[1]
    before = {name: (bn.running_mean.copy(), bn.running_var.copy()) for name, bn in bns.items()}
    z = bn_inputs(block, x)
    block.forward(x)
    for name, bn in bns.items():
        m, (rm, rv) = bn.momentum, before[name]
        count = z[name].size // z[name].shape[1]
        mean, var = z[name].mean(axis=(0, 2, 3)), z[name].var(axis=(0, 2, 3)) * count / (count - 1)
        assert_close(bn.running_mean, (1 - m) * rm + m * mean, rtol=1e-10, atol=1e-12,
                     what=f"{case}: {name}.running_mean after one training forward (each BN runs once)")
        assert_close(bn.running_var, (1 - m) * rv + m * var, rtol=1e-10, atol=1e-12,
                     what=f"{case}: {name}.running_var after one training forward (unbiased batch variance)")


@pytest.mark.parametrize("case", list(CASES))
def test_block_forward_and_backward_match_torch(case, mirror):
    cin, cout, stride, residual, _ = CASES[case]
    block = make_block(case)
    x = make_input(case)
    tblock = mirror.block(cin, cout, stride, residual)
    pairs = mirror.load(tblock, block)
    y = block.forward(x)
    dy = np.random.default_rng(2).standard_normal(y.shape)
    dx = block.backward(dy)
    tx = to_torch(x, requires_grad=True)
    ty = tblock(tx)
    ty.backward(to_torch(dy))
    assert_close(y, to_numpy(ty), rtol=1e-10, atol=1e-12, what=f"{case} forward vs torch")
    assert_close(dx, to_numpy(tx.grad), rtol=1e-9, atol=1e-11, what=f"{case} dx vs torch")
    for name, p, t, _ in pairs:
        assert_close(p.grad, to_numpy(t.grad), rtol=1e-9, atol=1e-11, what=f"{case} gradient of {name} vs torch")
    for name, bn in [("bn1", block.bn1), ("bn2", block.bn2)]:
        tbn = getattr(tblock, name)
        assert_close(bn.running_mean, to_numpy(tbn.running_mean), rtol=1e-10, atol=1e-12,
                     what=f"{name}.running_mean after one training forward (each BN runs once)")


@pytest.mark.parametrize("case", ["identity", "projection-stride2", "plain"])
def test_block_gradients_match_finite_differences(case):
    # h = 1e-5 rather than 1e-6: the rounding error of the difference quotient (~1e-16·|output| / h)
    # matters for the smallest gradient entries; no ReLU input is within 1e-5 of its kink here
    check_layer_gradients(make_block(case), make_input(case), seed=3, h=1e-5)


# ----------------------------------------------------------------- the gradient path of the skip

def dead_branch_pair(seed=0):
    """The same identity block twice, residual and plain, with the branch switched off:
    bn2's γ = β = 0, so F(x) = 0."""
    blocks = []
    for residual in (True, False):
        b = resnet.BasicBlock(3, 3, 1, residual=residual, rng=np.random.default_rng(seed), dtype=np.float64)
        randomize_batchnorm(b, 5)
        b.bn2.gamma.data[...] = 0.0
        b.bn2.beta.data[...] = 0.0
        blocks.append(b)
    return blocks


def test_gradient_flows_through_the_skip_when_the_branch_is_off():
    res, plain = dead_branch_pair()
    x = make_input("identity", seed=4)
    dy = np.random.default_rng(5).standard_normal(x.shape)

    y = res.forward(x)
    assert_close(y, np.maximum(x, 0), rtol=1e-12, atol=1e-12, what="residual block with F = 0: y = relu(x)")
    dx = res.backward(dy)
    assert_close(dx, dy * (x > 0), rtol=1e-12, atol=1e-12,
                 what="residual block with F = 0: dx = dy masked by the final ReLU (the identity path)")
    assert np.abs(dx).sum() > 0.1 * np.abs(dy).sum(), "the gradient must reach the input through the skip"
    assert np.abs(res.bn2.gamma.grad).max() > 1e-3, \
        "bn2.gamma still receives a gradient, so the branch can switch itself on"

    yp = plain.forward(x)
    assert_close(yp, np.zeros_like(yp), what="plain block with F = 0: y = relu(0) = 0")
    dxp = plain.backward(dy)
    assert_close(dxp, np.zeros_like(dxp), rtol=0, atol=0, what="plain block with F = 0: no gradient reaches x")
    assert not plain.bn2.gamma.grad.any(), "with no path around it, the dead branch receives no gradient either"


def test_block_gradient_is_identity_plus_branch():
    """dL/dx = dL/ds · (1 + ∂F/∂x): the residual block's dx is the plain block's dx plus the
    ReLU-masked upstream gradient (same weights; s is the input of the final ReLU)."""
    res = make_block("identity", seed=3)
    plain = make_block("plain", seed=3)
    for p, q in zip(plain.parameters(), res.parameters()):
        p.data[...] = q.data
    x = make_input("identity", seed=6)
    dy = np.random.default_rng(7).standard_normal(x.shape)
    res.forward(x)
    dx = res.backward(dy)
    s = res.relu_out.x                    # F(x) + x, the final ReLU's input
    d = dy * (s > 0)
    plain.forward(x)                      # the branch caches the same values as in the residual block
    branch = plain.conv1.backward(plain.bn1.backward(plain.relu1.backward(
        plain.conv2.backward(plain.bn2.backward(d)))))
    assert_close(dx, branch + d, rtol=1e-10, atol=1e-12, what="dx = (branch's dx) + (masked dy through the skip)")


# ----------------------------------------------------------------- modes and dtypes

def _block_after_one_training_step():
    block = make_block("projection-stride2")
    x = make_input("projection-stride2", n=3)
    block.forward(x)                                   # updates every running statistic once
    return block, x


def test_block_eval_mode_uses_running_statistics():
    block, x = _block_after_one_training_step()
    block.eval()
    bns = [block.bn1, block.bn2, block.shortcut.layers[1]]
    assert all(not bn.training for bn in bns), "eval() must reach every BatchNorm2d, including the shortcut's"
    y = block.forward(x)
    assert_close(y, expected_output(block, x, bn=bn_eval), rtol=1e-10, atol=1e-12,
                 what="eval-mode output relu(F(x) + S(x)) with every BN using its running statistics")
    assert_close(block.forward(x[:1]), y[:1], rtol=1e-10, atol=1e-12,
                 what="in eval mode a sample's output does not depend on the rest of the batch")
    block.train()
    assert all(bn.training for bn in bns), "train() must switch every BatchNorm2d back"


def test_block_eval_mode_matches_torch(mirror):
    block, x = _block_after_one_training_step()
    block.eval()
    tblock = mirror.block(2, 4, 2, True)
    mirror.load(tblock, block)
    tblock.eval()
    assert_close(block.forward(x), to_numpy(tblock(to_torch(x))), rtol=1e-10, atol=1e-12,
                 what="eval-mode forward vs torch")


def test_block_float32_stays_float32():
    block = resnet.BasicBlock(2, 4, 2, rng=0)
    x = np.random.default_rng(0).standard_normal((2, 2, 6, 6)).astype(np.float32)
    y = block.forward(x)
    dx = block.backward(np.ones_like(y))
    grads = {name: p.grad.dtype for name, p in block.named_parameters()}
    assert y.dtype == np.float32 and dx.dtype == np.float32, f"float32 in, float32 out: y {y.dtype}, dx {dx.dtype}"
    assert set(grads.values()) == {np.dtype(np.float32)}, f"parameter gradients must stay float32: {grads}"
    y64 = expected_output(block, x.astype(np.float64))
    assert_close(y, y64, rtol=1e-4, atol=1e-4, what="float32 forward")
