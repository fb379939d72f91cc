"""Topic 18: the unrolled RNN layer — forward over T steps and backpropagation through time."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.rnn import vanilla as rv
from dlfs.testing import assert_close, check_layer
from torch_oracle import to_numpy, to_torch, torch_or_skip

N, T, D, H = 3, 7, 5, 6          # batch > 1, several steps, odd sizes


def randn(*shape, seed=0, scale=1.0):
    return scale * np.random.default_rng(seed).standard_normal(shape)


def rnn(seed=0, **kwargs):
    return rv.RNN(D, H, rng=seed, dtype=np.float64, **kwargs)


def unrolled(layer, x, h0):
    """The RNN written out step by step from the definition: h_t = tanh(x_t W_ihᵀ + b_ih + h W_hhᵀ + b_hh)."""
    W_ih, W_hh = layer.weight_ih_l0.data, layer.weight_hh_l0.data
    b = layer.bias_ih_l0.data + layer.bias_hh_l0.data if layer.bias else 0.0
    h, outs = h0, []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ W_ih.T + h @ W_hh.T + b)
        outs.append(h)
    return np.stack(outs, axis=1), h


def torch_rnn(torch, bias=True):
    return torch.nn.RNN(D, H, bias=bias, batch_first=True)


def torch_forward(module, x, h0):
    """torch takes and returns the state as (num_layers, N, H); ours is (N, H)."""
    out, h_n = module(x, h0[None])
    return out, h_n[0]


def test_parameters_have_torch_names_shapes_and_initialisation():
    layer = rv.RNN(D, H, rng=0)
    shapes = {n: p.data.shape for n, p in layer.named_parameters()}
    assert shapes == {"weight_ih_l0": (H, D), "weight_hh_l0": (H, H), "bias_ih_l0": (H,), "bias_hh_l0": (H,)}, shapes
    bound = 1 / np.sqrt(H)
    for name, p in layer.named_parameters():
        assert p.data.dtype == np.float32, f"{name}: expected float32 by default, got {p.data.dtype}"
        assert np.all(np.abs(p.data) <= bound) and p.data.std() > bound / 4, \
            f"{name}: expected U(-1/√H, 1/√H) = U(-{bound:.3f}, {bound:.3f}), got range [{p.data.min()}, {p.data.max()}]"
    assert set(dict(rv.RNN(D, H, bias=False).named_parameters())) == {"weight_ih_l0", "weight_hh_l0"}
    x = randn(N, T, D, seed=1).astype(np.float32)
    out, _ = layer.forward(x)
    assert_close(out, unrolled(layer, x.astype(np.float64), np.zeros((N, H)))[0], rtol=1e-5, atol=1e-6,
                 what="out of the default float32 layer")


@pytest.mark.parametrize("bias", [True, False])
def test_forward_matches_the_unrolled_definition(bias):
    layer = rnn(bias=bias)
    x, h0 = randn(N, T, D, seed=1), randn(N, H, seed=2)
    out, h_n = layer.forward(x, h0)
    exp_out, exp_h = unrolled(layer, x, h0)
    assert out.shape == (N, T, H) and h_n.shape == (N, H), f"got out {out.shape}, h_n {h_n.shape}"
    assert_close(out, exp_out, rtol=1e-12, atol=1e-14, what="out")
    assert_close(h_n, exp_h, rtol=1e-12, atol=1e-14, what="h_n")
    out0, _ = layer.forward(x)
    assert_close(out0, unrolled(layer, x, np.zeros((N, H)))[0], rtol=1e-12, atol=1e-14, what="out with h0=None (zeros)")


def test_float32_in_float32_out():
    layer = rv.RNN(D, H, rng=0)
    x = randn(N, T, D, seed=1).astype(np.float32)
    out, h_n = layer.forward(x)
    dx, dh0 = layer.backward(np.ones_like(out))
    for name, a in (("out", out), ("h_n", h_n), ("dx", dx), ("dh0", dh0),
                    *((n, p.grad) for n, p in layer.named_parameters())):
        assert a.dtype == np.float32, f"{name}: expected float32, got {a.dtype}"


@pytest.mark.parametrize("bias", [True, False])
def test_bptt_matches_finite_differences(bias):
    """dx, dh0 and the gradients of all four weights, output and final state both receiving a gradient."""
    check_layer(rnn(bias=bias), (randn(N, T, D, seed=1), randn(N, H, seed=2)), input_names=("x", "h0"))


def test_bptt_matches_finite_differences_without_h0():
    """h0=None (zeros): only x is differentiated; backward still returns (dx, dh0)."""
    check_layer(rnn(), (randn(N, T, D, seed=1), None), input_names=("x", "h0"))


def test_bptt_matches_torch():
    """torch.nn.RNN(batch_first=True) loaded with the same state dict: outputs and every gradient."""
    check_layer(rnn(), (randn(N, T, D, seed=1), randn(N, H, seed=2)), input_names=("x", "h0"),
                torch_layer=torch_rnn, torch_forward=torch_forward, oracle=torch_or_skip)


def test_backward_with_gradient_on_the_last_state_only():
    """dout=None (a loss on h_n only, e.g. a sequence classifier) equals dout = zeros."""
    layer = rnn()
    x, dh_n = randn(N, T, D, seed=1), randn(N, H, seed=3)
    layer.forward(x)
    dx, dh0 = layer.backward(None, dh_n)
    grads = {n: p.grad.copy() for n, p in layer.named_parameters()}
    layer.zero_grad()
    layer.forward(x)
    dx2, dh02 = layer.backward(np.zeros((N, T, H)), dh_n)
    assert np.abs(dx).max() > 0, "dx is zero: the gradient of h_n must reach the inputs"
    assert_close(dx, dx2, rtol=1e-12, atol=1e-14, what="dx with dout=None vs dout=zeros")
    assert_close(dh0, dh02, rtol=1e-12, atol=1e-14, what="dh0 with dout=None vs dout=zeros")
    for n, p in layer.named_parameters():
        assert_close(grads[n], p.grad, rtol=1e-12, atol=1e-14, what=f"{n}.grad with dout=None vs zeros")


def test_parameter_gradients_accumulate():
    layer = rnn()
    x, dout = randn(N, T, D, seed=1), randn(N, T, H, seed=3)
    layer.forward(x)
    layer.backward(dout)
    once = {n: p.grad.copy() for n, p in layer.named_parameters()}
    layer.forward(x)
    layer.backward(dout)
    for n, p in layer.named_parameters():
        assert_close(p.grad, 2 * once[n], rtol=1e-12, atol=1e-14, what=f"{n}.grad after two backward passes")


def test_state_dict_round_trip_with_torch():
    """Our state dict loads into torch.nn.RNN; torch's loads back with from_torch_state (float32)."""
    torch = torch_or_skip()
    module = torch.nn.RNN(D, H, batch_first=True).float()
    layer = rv.RNN.from_torch_state(module.state_dict())
    assert layer.dtype == np.float32 and (layer.input_size, layer.hidden_size) == (D, H)
    x, h0 = randn(N, T, D, seed=1).astype(np.float32), randn(N, H, seed=2).astype(np.float32)
    out, h_n = layer.forward(x, h0)
    t_out, t_h = module(torch.from_numpy(x), torch.from_numpy(h0)[None])
    assert_close(out, to_numpy(t_out), rtol=1e-5, atol=1e-6, what="out of a layer built from torch's state")
    assert_close(h_n, to_numpy(t_h)[0], rtol=1e-5, atol=1e-6, what="h_n of a layer built from torch's state")
    module2 = torch.nn.RNN(D, H, batch_first=True).float()
    module2.load_state_dict({k: to_torch(v) for k, v in rv.RNN(D, H, rng=5).state_dict().items()})
    assert_close(to_numpy(module2.weight_hh_l0), rv.RNN(D, H, rng=5).weight_hh_l0.data, rtol=0, atol=0,
                 what="weight_hh_l0 after loading our state dict into torch")


def test_bad_inputs_are_refused_with_clear_errors():
    layer = rnn()
    with pytest.raises(ValueError, match=r"\(N, T, 5\)"):
        layer.forward(randn(N, T, D + 1))
    with pytest.raises(ValueError, match=r"\(N, T, 5\)"):
        layer.forward(randn(T, D))
    with pytest.raises(ValueError, match="h0 must have shape"):
        layer.forward(randn(N, T, D), randn(N + 1, H))
    with pytest.raises(RuntimeError, match="before forward"):
        rnn().backward(randn(N, T, H))
    layer.forward(randn(N, T, D))
    with pytest.raises(ValueError, match="dout must have shape"):
        layer.backward(randn(N, T + 1, H))
    with pytest.raises(ValueError, match="weight_hh_l0"):
        rv.RNN.from_torch_state({"weight_ih_l0": np.zeros((4, 3)), "weight_hh_l0": np.zeros((4, 3))})
    with pytest.raises(ValueError, match="unexpected entry 'weight'"):
        rv.RNN.from_torch_state({"weight": np.zeros((3, 3))})


# -- properties -------------------------------------------------------------------------------

sizes = st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 5), st.integers(1, 5))


@settings(deadline=None, max_examples=25)
@given(sizes, st.integers(0, 2 ** 16))
def test_zero_weights_give_tanh_of_the_bias_at_every_step(size, seed):
    n, t, d, h = size
    layer = rv.RNN(d, h, rng=seed, dtype=np.float64)
    layer.weight_ih_l0.data[...] = 0
    layer.weight_hh_l0.data[...] = 0
    out, h_n = layer.forward(randn(n, t, d, seed=seed), randn(n, h, seed=seed + 1))
    expected = np.tanh(layer.bias_ih_l0.data + layer.bias_hh_l0.data)
    assert_close(out, np.broadcast_to(expected, (n, t, h)), rtol=1e-12, atol=1e-14, what="out with zero weights")
    assert_close(h_n, np.broadcast_to(expected, (n, h)), rtol=1e-12, atol=1e-14, what="h_n with zero weights")


@settings(deadline=None, max_examples=25)
@given(sizes, st.integers(0, 2 ** 16))
def test_one_step_is_one_cell_step(size, seed):
    n, _, d, h = size
    layer = rv.RNN(d, h, rng=seed, dtype=np.float64)
    x, h0 = randn(n, 1, d, seed=seed), randn(n, h, seed=seed + 1)
    out, h_n = layer.forward(x, h0)
    xp = x[:, 0] @ layer.weight_ih_l0.data.T + layer.bias_ih_l0.data
    expected = rv.rnn_cell_forward(xp, h0, layer.weight_hh_l0.data, layer.bias_hh_l0.data)
    assert_close(out[:, 0], expected, rtol=1e-12, atol=1e-14, what="out of T=1 vs one cell step")
    assert_close(h_n, expected, rtol=1e-12, atol=1e-14, what="h_n of T=1 vs one cell step")


@settings(deadline=None, max_examples=25)
@given(sizes, st.integers(0, 2 ** 16), st.data())
def test_outputs_do_not_depend_on_later_inputs(size, seed, data):
    n, t, d, h = size
    cut = data.draw(st.integers(0, t - 1))
    layer = rv.RNN(d, h, rng=seed, dtype=np.float64)
    x = randn(n, t, d, seed=seed)
    out = layer.forward(x)[0].copy()
    x2 = x.copy()
    x2[:, cut + 1:] += 1.0
    out2 = layer.forward(x2)[0]
    assert_close(out2[:, :cut + 1], out[:, :cut + 1], rtol=1e-12, atol=1e-14,
                 what=f"out[:, :{cut + 1}] after changing the inputs from step {cut + 1} on")
