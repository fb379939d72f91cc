"""Topic 09: BatchNorm1d — batch statistics in training, running statistics in evaluation,
and a backward pass through the batch mean and variance."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.nn.batchnorm import BatchNorm1d
from dlfs.testing import assert_close, check_gradients
from torch_oracle import to_numpy, to_torch, torch_or_skip

N, D = 6, 4


def make_bn(seed=0, **kwargs):
    rng = np.random.default_rng(seed)
    bn = BatchNorm1d(D, dtype=np.float64, **kwargs)
    bn.gamma.data[...] = rng.uniform(0.5, 2.0, size=D)
    bn.beta.data[...] = rng.normal(size=D)
    return bn


def batch(seed=1, n=N):
    rng = np.random.default_rng(seed)
    return rng.normal(loc=[1.0, -2.0, 0.0, 5.0], scale=[1.0, 0.5, 3.0, 2.0], size=(n, D))


def test_training_output_has_batch_mean_beta_and_std_gamma():
    bn = make_bn()
    x = batch()
    y = bn.forward(x)
    assert_close(y.mean(axis=0), bn.beta.data, atol=1e-12, what="per-feature mean of the output (= beta)")
    expected_std = bn.gamma.data * np.sqrt(x.var(axis=0) / (x.var(axis=0) + bn.eps))
    assert_close(y.std(axis=0), expected_std, rtol=1e-10,
                 what="per-feature (biased) std of the output (= gamma, up to eps)")


def test_training_forward_formula():
    bn = make_bn()
    x = batch()
    mu, var = x.mean(axis=0), x.var(axis=0)
    expected = bn.gamma.data * (x - mu) / np.sqrt(var + 1e-5) + bn.beta.data
    assert_close(bn.forward(x), expected, rtol=1e-12, what="BatchNorm1d training output")


def test_running_statistics_use_momentum_and_the_unbiased_variance():
    bn = make_bn(momentum=0.25)
    x1, x2 = batch(1, n=4), batch(2, n=4)
    bn.forward(x1)
    bn.forward(x2)
    rm, rv = np.zeros(D), np.ones(D)
    for x in (x1, x2):
        rm = 0.75 * rm + 0.25 * x.mean(axis=0)
        rv = 0.75 * rv + 0.25 * x.var(axis=0, ddof=1)      # N/(N-1) = 4/3 here: easy to see
    assert_close(bn.running_mean, rm, rtol=1e-12, what="running_mean after two batches")
    assert_close(bn.running_var, rv, rtol=1e-12, what="running_var after two batches (unbiased batch var)")


def test_eval_uses_running_statistics_and_is_per_sample():
    bn = make_bn()
    for s in range(5):
        bn.forward(batch(s))
    bn.eval()
    x = batch(10)
    rm, rv = bn.running_mean.copy(), bn.running_var.copy()
    y = bn.forward(x)
    expected = bn.gamma.data * (x - rm) / np.sqrt(rv + bn.eps) + bn.beta.data
    assert_close(y, expected, rtol=1e-12, what="BatchNorm1d eval output")
    assert_close(bn.forward(x[2:3]), y[2:3], rtol=1e-12,
                 what="eval output of one sample alone (must not depend on the batch)")
    assert_close(bn.running_mean, rm, rtol=0, atol=0, what="running_mean (eval must not update it)")
    assert_close(bn.running_var, rv, rtol=0, atol=0, what="running_var (eval must not update it)")


def test_training_backward_matches_finite_differences():
    bn = make_bn()
    x = batch()
    dy = np.random.default_rng(3).normal(size=(N, D))
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
    x = batch(4)
    dy = np.random.default_rng(5).normal(size=(N, D))
    bn.zero_grad()
    bn.forward(x)
    dx = bn.backward(dy)
    check_gradients(lambda: bn.forward(x),
                    {"x": x, "gamma": bn.gamma.data, "beta": bn.beta.data},
                    {"x": dx, "gamma": bn.gamma.grad.copy(), "beta": bn.beta.grad.copy()}, dout=dy)


@settings(deadline=None, max_examples=30)
@given(st.integers(2, 12), st.integers(1, 5), st.integers(0, 2**32 - 1),
       st.floats(-100, 100), st.floats(0.1, 10))
def test_training_output_ignores_shift_and_scale_and_dx_sums_to_zero(n, d, seed, shift, scale):
    """Training BN removes each feature's batch mean and scale, so y(a x + b) = y(x) (a > 0),
    and the gradient cannot move the batch mean: Σ_n dx = 0 for every feature.
    eps = 0 makes the invariance exact: with eps > 0 a feature whose batch variance is not much
    larger than eps (two close samples) changes by eps/σ² when rescaled."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    dy = rng.normal(size=(n, d))
    bn = BatchNorm1d(d, eps=0.0, dtype=np.float64)
    bn.gamma.data[...] = rng.uniform(0.5, 2.0, size=d)
    y = bn.forward(x)
    dx = bn.backward(dy)
    assert_close(dx.sum(axis=0), np.zeros(d), atol=1e-9 * (1 + np.abs(dx).max()),
                 what="Σ_n dx per feature")
    y2 = bn.forward(scale * x + shift)
    assert_close(y2, y, rtol=1e-6, atol=1e-6, what="output for a shifted and scaled batch")


def test_backward_accumulates_parameter_gradients():
    bn = make_bn()
    x, dy = batch(), np.random.default_rng(6).normal(size=(N, D))
    bn.zero_grad()
    bn.forward(x)
    bn.backward(dy)
    g1, b1 = bn.gamma.grad.copy(), bn.beta.grad.copy()
    assert_close(b1, dy.sum(axis=0), rtol=1e-12, what="beta.grad (= Σ_n dy)")
    bn.backward(dy)
    assert_close(bn.gamma.grad, 2 * g1, rtol=1e-12, what="gamma.grad after two backward calls (+=)")
    assert_close(bn.beta.grad, 2 * b1, rtol=1e-12, what="beta.grad after two backward calls (+=)")
    bn.gamma.grad = bn.beta.grad = None          # an optimiser's zero_grad(set_to_none=True)
    bn.backward(dy)
    assert_close(bn.gamma.grad, g1, rtol=1e-12, what="gamma.grad after backward when it was None")
    assert_close(bn.beta.grad, b1, rtol=1e-12, what="beta.grad after backward when it was None")


def test_matches_torch_over_several_training_steps_then_eval():
    torch = torch_or_skip()
    bn = make_bn(momentum=0.2, eps=1e-3)
    tbn = torch.nn.BatchNorm1d(D, eps=1e-3, momentum=0.2).double()
    with torch.no_grad():
        tbn.weight.copy_(to_torch(bn.gamma.data))
        tbn.bias.copy_(to_torch(bn.beta.data))
    for step in range(4):
        x = batch(20 + step, n=5 + step)
        dy = np.random.default_rng(40 + step).normal(size=x.shape)
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
    assert_close(bn.running_mean, to_numpy(tbn.running_mean), rtol=1e-10, what="running_mean vs torch")
    assert_close(bn.running_var, to_numpy(tbn.running_var), rtol=1e-10, what="running_var vs torch")
    bn.eval()
    tbn.eval()
    x = batch(99)
    assert_close(bn.forward(x), to_numpy(tbn(to_torch(x))), rtol=1e-10, atol=1e-12, what="eval output vs torch")


def test_state_dict_holds_parameters_and_running_statistics():
    bn = make_bn()
    bn.forward(batch())
    state = bn.state_dict()
    assert set(state) == {"gamma", "beta", "running_mean", "running_var"}, f"state_dict keys: {sorted(state)}"
    assert_close(state["running_mean"], 0.1 * batch().mean(axis=0), rtol=1e-12, what="saved running_mean")
    fresh = BatchNorm1d(D, dtype=np.float64)
    fresh.load_state_dict(state)
    bn.eval()
    fresh.eval()
    x = batch(7)
    assert_close(fresh.forward(x), bn.forward(x), rtol=1e-12, what="eval output after load_state_dict")


def test_float32_stays_float32_and_one_sample_training_batch_is_rejected():
    bn = BatchNorm1d(D)
    x = batch().astype(np.float32)
    y = bn.forward(x)
    assert y.dtype == np.float32, f"expected float32 output, got {y.dtype}"
    assert bn.backward(np.ones_like(y)).dtype == np.float32, "dx must stay float32"
    assert_close(y.mean(axis=0), np.zeros(D), atol=1e-5, what="float32 per-feature output mean")
    with pytest.raises(ValueError):
        bn.forward(x[:1])         # one sample has no variance: training cannot normalise it
