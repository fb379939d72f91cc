"""Topic 16: BatchNorm2d — per-channel statistics over (N, H, W), running statistics for evaluation,
and the backward pass through the batch statistics."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.nn.batchnorm import BatchNorm2d
from dlfs.testing import assert_close, check_gradients
from torch_oracle import to_numpy, to_torch, torch_or_skip

C = 3


def make_bn(seed=0, c=C, **kwargs):
    rng = np.random.default_rng(seed)
    bn = BatchNorm2d(c, dtype=np.float64, **kwargs)
    bn.gamma.data[...] = rng.uniform(0.5, 2.0, size=c)
    bn.beta.data[...] = rng.normal(size=c)
    return bn


def batch(seed=1, n=4, h=3, w=2, c=C):
    """(n, c, h, w) with a different mean and scale in every channel."""
    rng = np.random.default_rng(seed)
    loc = np.array([1.0, -2.0, 5.0, 0.0, 3.0])[:c].reshape(1, c, 1, 1)
    scale = np.array([1.0, 0.5, 3.0, 2.0, 0.2])[:c].reshape(1, c, 1, 1)
    return loc + scale * rng.standard_normal((n, c, h, w))


def per_channel(a):
    """(N, C, H, W) -> (C, N·H·W): each row holds the values that share one mean and variance."""
    return a.transpose(1, 0, 2, 3).reshape(a.shape[1], -1)


def test_training_forward_formula_and_output_statistics():
    bn = make_bn()
    x = batch()
    mu = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    g, b = bn.gamma.data.reshape(1, C, 1, 1), bn.beta.data.reshape(1, C, 1, 1)
    y = bn.forward(x)
    assert_close(y, g * (x - mu) / np.sqrt(var + 1e-5) + b, rtol=1e-12, atol=1e-12,
                 what="BatchNorm2d training output")
    assert_close(per_channel(y).mean(axis=1), bn.beta.data, atol=1e-12, what="per-channel output mean (= beta)")
    expected_std = bn.gamma.data * np.sqrt(var.ravel() / (var.ravel() + 1e-5))
    assert_close(per_channel(y).std(axis=1), expected_std, rtol=1e-10, what="per-channel output std (= gamma)")


def test_running_statistics_after_several_steps():
    bn = make_bn(momentum=0.25)
    rm, rv = np.zeros(C), np.ones(C)
    for step in range(3):
        x = batch(10 + step, n=2 + step)
        bn.forward(x)
        m = x.shape[0] * x.shape[2] * x.shape[3]
        rm = 0.75 * rm + 0.25 * x.mean(axis=(0, 2, 3))
        rv = 0.75 * rv + 0.25 * x.var(axis=(0, 2, 3)) * m / (m - 1)     # the unbiased variance
    assert_close(bn.running_mean, rm, rtol=1e-12, what="running_mean after three batches")
    assert_close(bn.running_var, rv, rtol=1e-12, what="running_var after three batches (unbiased batch var)")


def test_eval_uses_running_statistics_per_sample_and_does_not_update_them():
    bn = make_bn()
    for s in range(4):
        bn.forward(batch(s))
    bn.eval()
    rm, rv = bn.running_mean.copy(), bn.running_var.copy()
    x = batch(20)
    y = bn.forward(x)
    expected = (bn.gamma.data.reshape(1, C, 1, 1) * (x - rm.reshape(1, C, 1, 1))
                / np.sqrt(rv.reshape(1, C, 1, 1) + bn.eps) + bn.beta.data.reshape(1, C, 1, 1))
    assert_close(y, expected, rtol=1e-12, atol=1e-12, what="BatchNorm2d eval output")
    assert_close(bn.forward(x[1:2]), y[1:2], rtol=1e-12, atol=1e-12,
                 what="eval output of one sample alone (must not depend on the batch)")
    assert_close(bn.running_mean, rm, rtol=0, atol=0, what="running_mean (eval must not update it)")
    assert_close(bn.running_var, rv, rtol=0, atol=0, what="running_var (eval must not update it)")


def test_training_output_depends_on_the_batch_mates():
    """The price of batch statistics: in training a sample's output changes with its batch."""
    bn = make_bn()
    x = batch(3)
    y_full = bn.forward(x)
    y_half = bn.forward(x[:2])
    assert not np.allclose(y_half, y_full[:2]), "training BN normalises with the statistics of the batch"
    assert_close(per_channel(y_half).mean(axis=1), bn.beta.data, atol=1e-12,
                 what="per-channel output mean of the smaller batch (= beta)")


def test_training_backward_matches_finite_differences():
    bn = make_bn()
    x = batch(5, n=3, h=2, w=2)
    dy = np.random.default_rng(6).standard_normal(x.shape)
    bn.zero_grad()
    bn.forward(x)
    dx = bn.backward(dy)
    check_gradients(lambda: bn.forward(x),
                    {"x": x, "gamma": bn.gamma.data, "beta": bn.beta.data},
                    {"x": dx, "gamma": bn.gamma.grad.copy(), "beta": bn.beta.grad.copy()}, dout=dy)


def test_eval_backward_matches_finite_differences():
    bn = make_bn()
    for s in range(3):
        bn.forward(batch(s))
    bn.eval()
    x = batch(7, n=3, h=2, w=2)
    dy = np.random.default_rng(8).standard_normal(x.shape)
    bn.zero_grad()
    bn.forward(x)
    dx = bn.backward(dy)
    check_gradients(lambda: bn.forward(x),
                    {"x": x, "gamma": bn.gamma.data, "beta": bn.beta.data},
                    {"x": dx, "gamma": bn.gamma.grad.copy(), "beta": bn.beta.grad.copy()}, dout=dy)


def test_matches_torch_over_several_training_steps_then_eval():
    torch = torch_or_skip()
    bn = make_bn(momentum=0.2, eps=1e-3)
    tbn = torch.nn.BatchNorm2d(C, eps=1e-3, momentum=0.2).double()
    with torch.no_grad():
        tbn.weight.copy_(to_torch(bn.gamma.data))
        tbn.bias.copy_(to_torch(bn.beta.data))
    for step in range(4):
        x = batch(30 + step, n=2 + step, h=3, w=4)
        dy = np.random.default_rng(40 + step).standard_normal(x.shape)
        bn.zero_grad()
        tbn.zero_grad()
        y = bn.forward(x)
        dx = bn.backward(dy)
        tx = to_torch(x, requires_grad=True)
        ty = tbn(tx)
        ty.backward(to_torch(dy))
        assert_close(y, to_numpy(ty), rtol=1e-10, atol=1e-12, what=f"step {step}: output vs torch")
        assert_close(dx, to_numpy(tx.grad), rtol=1e-8, atol=1e-12, what=f"step {step}: dx vs torch")
        assert_close(bn.gamma.grad, to_numpy(tbn.weight.grad), rtol=1e-10, what=f"step {step}: dgamma vs torch")
        assert_close(bn.beta.grad, to_numpy(tbn.bias.grad), rtol=1e-10, what=f"step {step}: dbeta vs torch")
        assert_close(bn.running_mean, to_numpy(tbn.running_mean), rtol=1e-10,
                     what=f"step {step}: running_mean vs torch")
        assert_close(bn.running_var, to_numpy(tbn.running_var), rtol=1e-10,
                     what=f"step {step}: running_var vs torch")
    bn.eval()
    tbn.eval()
    x = batch(99)
    dy = np.random.default_rng(98).standard_normal(x.shape)
    bn.zero_grad()
    tbn.zero_grad()
    tx = to_torch(x, requires_grad=True)
    ty = tbn(tx)
    ty.backward(to_torch(dy))
    assert_close(bn.forward(x), to_numpy(ty), rtol=1e-10, atol=1e-12, what="eval output vs torch")
    assert_close(bn.backward(dy), to_numpy(tx.grad), rtol=1e-10, atol=1e-12, what="eval dx vs torch")
    assert_close(bn.gamma.grad, to_numpy(tbn.weight.grad), rtol=1e-10, what="eval dgamma vs torch")


def test_backward_accumulates_parameter_gradients():
    bn = make_bn()
    x = batch(9)
    dy = np.random.default_rng(10).standard_normal(x.shape)
    bn.zero_grad()
    bn.forward(x)
    dx = bn.backward(dy)
    g1, b1 = bn.gamma.grad.copy(), bn.beta.grad.copy()
    x_hat = (x - x.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(x.var(axis=(0, 2, 3), keepdims=True) + bn.eps)
    assert_close(b1, dy.sum(axis=(0, 2, 3)), rtol=1e-12, what="beta.grad (= Σ dy over N, H, W)")
    assert_close(g1, (dy * x_hat).sum(axis=(0, 2, 3)), rtol=1e-10, what="gamma.grad (= Σ dy·x̂ over N, H, W)")
    assert_close(per_channel(dx).sum(axis=1), np.zeros(C), atol=1e-10,
                 what="Σ dx per channel (training BN cannot move the batch mean)")
    bn.backward(dy)
    assert_close(bn.gamma.grad, 2 * g1, rtol=1e-12, what="gamma.grad after two backward calls (+=)")
    assert_close(bn.beta.grad, 2 * b1, rtol=1e-12, what="beta.grad after two backward calls (+=)")
    bn.gamma.grad = bn.beta.grad = None          # an optimiser's zero_grad(set_to_none=True)
    bn.backward(dy)
    assert_close(bn.gamma.grad, g1, rtol=1e-12, what="gamma.grad after backward when it was None")


def test_state_dict_round_trip_of_running_statistics():
    bn = make_bn(momentum=0.3)
    for s in range(3):
        bn.forward(batch(s))
    state = bn.state_dict()
    assert set(state) == {"gamma", "beta", "running_mean", "running_var"}, f"state_dict keys: {sorted(state)}"
    assert_close(state["running_mean"], bn.running_mean, rtol=0, atol=0, what="saved running_mean")
    assert not np.allclose(state["running_var"], 1.0), "three training batches must have moved running_var"
    fresh = BatchNorm2d(C, dtype=np.float64)
    fresh.load_state_dict(state)
    assert_close(fresh.running_var, bn.running_var, rtol=0, atol=0, what="running_var after load_state_dict")
    bn.eval()
    fresh.eval()
    x = batch(12)
    assert_close(fresh.forward(x), bn.forward(x), rtol=1e-12, atol=1e-12, what="eval output after load_state_dict")


def test_float32_stays_float32():
    bn = BatchNorm2d(C)
    x = batch(13, n=8, h=4, w=4).astype(np.float32)
    y = bn.forward(x)
    assert y.dtype == np.float32, f"expected float32 output, got {y.dtype}"
    assert_close(per_channel(y).mean(axis=1), np.zeros(C), atol=1e-5, what="float32 per-channel output mean")
    assert_close(per_channel(y).std(axis=1), np.ones(C), rtol=1e-3, what="float32 per-channel output std")
    dx = bn.backward(np.ones_like(y))
    assert dx.dtype == np.float32 and bn.gamma.grad.dtype == np.float32, \
        f"gradients must stay float32, got dx {dx.dtype}, gamma.grad {bn.gamma.grad.dtype}"
    assert bn.running_mean.dtype == np.float32 and bn.running_var.dtype == np.float32, "buffers must stay float32"
    assert_close(dx, np.zeros_like(x), atol=1e-5, what="dx for a constant upstream gradient")


def test_wrong_shapes_are_rejected():
    bn = make_bn()
    x = batch(14)
    assert_close(bn.forward(x).mean(axis=(0, 2, 3)), bn.beta.data, atol=1e-12, what="output mean for a valid input")
    with pytest.raises(ValueError):
        bn.forward(batch(14, c=C + 1))             # wrong number of channels
    with pytest.raises(ValueError):
        bn.forward(x[:, :, 0, :])                  # (N, C, W): not an image batch
    with pytest.raises(ValueError):
        bn.forward(x[:1, :, :1, :1])               # one value per channel: no variance to train with


@settings(deadline=None, max_examples=30)
@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(0, 2**32 - 1),
       st.floats(-100, 100), st.floats(0.1, 10))
def test_training_output_ignores_per_channel_shift_and_scale(n, c, h, w, seed, shift, scale):
    """y(a x + b) = y(x) in training (a > 0, up to eps), and Σ dx = 0 over each channel's (N, H, W)."""
    if n * h * w < 2:
        n = 2
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    dy = rng.standard_normal(x.shape)
    bn = BatchNorm2d(c, eps=1e-12, dtype=np.float64)
    bn.gamma.data[...] = rng.uniform(0.5, 2.0, size=c)
    y = bn.forward(x)
    dx = bn.backward(dy)
    assert_close(per_channel(dx).sum(axis=1), np.zeros(c), atol=1e-9 * (1 + np.abs(dx).max()),
                 what="Σ dx per channel")
    assert_close(bn.forward(scale * x + shift), y, rtol=1e-6, atol=1e-6, what="output for a shifted, scaled batch")
