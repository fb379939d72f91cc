"""Topic 20: the GRU layer — one input projection, the loop over time, BPTT; PyTorch's layout."""

import numpy as np
import pytest

from dlfs.rnn.gru import GRU
from dlfs.testing import assert_close, check_layer
from torch_oracle import to_numpy, to_torch, torch_or_skip


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def layer(D=3, H=4, num_layers=1, bias=True, seed=0):
    return GRU(D, H, num_layers=num_layers, bias=bias, rng=seed, dtype=np.float64)


def state(num_layers, N, H, seed):
    return 0.5 * randn(*((N, H) if num_layers == 1 else (num_layers, N, H)), seed=seed)


def test_forward_equals_the_equations_step_by_step(gru_equations):
    g = layer(seed=1)
    x, h0 = randn(2, 6, 3, seed=2), state(1, 2, 4, seed=3)
    out, h_n = g.forward(x, h0)
    h, W = h0, [p.data for p in g.parameters()]
    for t in range(6):
        h = gru_equations(x[:, t], h, *W)[0]
        assert_close(out[:, t], h, rtol=1e-12, atol=1e-14, what=f"out[:, {t}]")
    assert_close(h_n, out[:, -1], rtol=0, atol=0, what="h_n = out[:, -1]")


def test_two_layers_feed_the_first_layers_outputs_to_the_second(gru_equations):
    g = layer(num_layers=2, seed=4)
    x, h0 = randn(3, 5, 3, seed=5), state(2, 3, 4, seed=6)
    out, h_n = g.forward(x, h0)
    h1, h2 = h0[0], h0[1]
    W0 = [g.weight_ih_l0.data, g.weight_hh_l0.data, g.bias_ih_l0.data, g.bias_hh_l0.data]
    W1 = [g.weight_ih_l1.data, g.weight_hh_l1.data, g.bias_ih_l1.data, g.bias_hh_l1.data]
    for t in range(5):
        h1 = gru_equations(x[:, t], h1, *W0)[0]
        h2 = gru_equations(h1, h2, *W1)[0]
        assert_close(out[:, t], h2, rtol=1e-12, atol=1e-14, what=f"out[:, {t}] (layer 1)")
    assert_close(h_n, np.stack([h1, h2]), rtol=1e-12, atol=1e-14, what="h_n: (L, N, H), layer 0 first")


CASES = [dict(num_layers=1, bias=True), dict(num_layers=1, bias=False), dict(num_layers=2, bias=True)]


@pytest.mark.parametrize("kw", CASES, ids=str)
def test_backward_matches_finite_differences(kw):
    """dx, dh0 and the gradient of every weight and bias, through time (and through the layers)."""
    check_layer(layer(seed=7, **kw), (randn(2, 5, 3, seed=8), state(kw["num_layers"], 2, 4, seed=9)),
                input_names=("x", "h0"), h=1e-5)


def torch_forward(num_layers):
    def run(module, x, h0):
        out, h_n = module(x, h0[None] if num_layers == 1 else h0)
        return out, h_n[0] if num_layers == 1 else h_n
    return run


@pytest.mark.parametrize("kw", CASES, ids=str)
def test_matches_torch_gru_with_the_same_weights(kw):
    """The state dict loads into torch.nn.GRU(batch_first=True) as it is: no name or layout map."""
    check_layer(layer(seed=10, **kw), (randn(3, 6, 3, seed=11), state(kw["num_layers"], 3, 4, seed=12)),
                input_names=("x", "h0"), h=1e-5,
                torch_layer=lambda torch: torch.nn.GRU(3, 4, batch_first=True, **kw),
                torch_forward=torch_forward(kw["num_layers"]), oracle=torch_or_skip)


def test_state_dict_round_trip_with_torch():
    torch = torch_or_skip()
    g = layer(num_layers=2, seed=13)
    module = torch.nn.GRU(3, 4, num_layers=2, batch_first=True)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in g.state_dict().items()})
    x = randn(2, 4, 3, seed=14)
    out, h_n = g.forward(x)
    tout, th_n = module(to_torch(x))
    assert_close(out, to_numpy(tout), rtol=1e-10, atol=1e-12, what="our GRU vs torch.nn.GRU with our state dict")
    back = GRU.from_torch_state(module.state_dict())
    assert_close(back.forward(x)[1], to_numpy(th_n), rtol=1e-10, atol=1e-12,
                 what="GRU.from_torch_state(torch's state dict): h_n")


def test_zero_initial_state_and_the_encoder_backward():
    """h0=None is zeros; backward(None, dh_n) — only the final state is used — equals a zero dout."""
    g = layer(seed=15)
    x = randn(2, 5, 3, seed=16)
    out, h_n = g.forward(x)
    out0, _ = g.forward(x, np.zeros((2, 4)))
    assert_close(out, out0, rtol=0, atol=0, what="h0=None vs explicit zeros")
    dh_n = randn(2, 4, seed=17)
    g.zero_grad()
    dx, dh0 = g.backward(None, dh_n)
    grads = {n: p.grad.copy() for n, p in g.named_parameters()}
    g.zero_grad()
    dx2, dh02 = g.backward(np.zeros((2, 5, 4)), dh_n)
    assert_close(dx, dx2, rtol=0, atol=0, what="dx with dout=None vs zeros")
    assert_close(dh0, dh02, rtol=0, atol=0, what="dh0 with dout=None vs zeros")
    for name, p in g.named_parameters():
        assert_close(grads[name], p.grad, rtol=0, atol=0, what=f"{name}.grad with dout=None")
    assert np.abs(dh0).max() > 0, "dh0 should carry the gradient of h_n back to the initial state"


def test_float32_is_kept_and_gradients_accumulate():
    g = GRU(3, 5, rng=18)
    assert g.weight_ih_l0.dtype == np.float32 and g.weight_ih_l0.shape == (15, 3) and g.weight_hh_l0.shape == (15, 5), \
        "weight_ih_l0 (3H, D) and weight_hh_l0 (3H, H), float32 by default"
    x = randn(2, 4, 3, seed=19).astype(np.float32)
    out, h_n = g.forward(x)
    assert out.dtype == np.float32 and h_n.dtype == np.float32, f"expected float32, got {out.dtype}, {h_n.dtype}"
    dout = np.ones_like(out)
    g.zero_grad()
    dx, dh0 = g.backward(dout)
    assert dx.dtype == np.float32 and dh0.dtype == np.float32, f"expected float32 gradients, got {dx.dtype}"
    first = g.weight_hh_l0.grad.copy()
    g.backward(dout)
    assert_close(g.weight_hh_l0.grad, 2 * first, rtol=1e-6, atol=1e-7, what="weight_hh_l0.grad after two backward calls")


def test_bad_input_is_refused():
    g = layer(seed=20)
    out, _ = g.forward(randn(1, 2, 3, seed=21))
    assert out.shape == (1, 2, 4) and np.abs(out).max() > 0, f"expected a nonzero (1, 2, 4) output, got {out.shape}"
    with pytest.raises(ValueError):
        g.forward(randn(1, 2, 5))                  # D = 5, the layer expects 3
    with pytest.raises(ValueError):
        g.forward(randn(1, 2, 3), np.zeros((2, 4)))   # h0 for N = 2, x has N = 1
