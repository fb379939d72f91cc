"""Topic 19: the LSTM layer — BPTT through the gates, PyTorch's layout, stacked layers."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.nn.layers import Layer
from dlfs.rnn import lstm as rl
from dlfs.testing import assert_close, check_layer
from torch_oracle import to_numpy, to_torch, torch_or_skip

N, T, D, H = 3, 7, 5, 6          # batch > 1, several steps, odd sizes


def randn(*shape, seed=0, scale=1.0):
    return scale * np.random.default_rng(seed).standard_normal(shape)


def lstm(seed=0, **kwargs):
    return rl.LSTM(D, H, rng=seed, dtype=np.float64, **kwargs)


class Flat(Layer):
    """The LSTM with its state as separate arrays: forward(x, h0, c0) -> (out, h_n, c_n) and
    backward(dout, dh_n, dc_n) -> (dx, dh0, dc0), the form the shared layer check takes."""

    def __init__(self, inner):
        self.inner = inner

    def __repr__(self):
        return repr(self.inner)

    def named_parameters(self, prefix=""):
        return self.inner.named_parameters(prefix)

    def forward(self, x, h0=None, c0=None):
        out, (h, c) = self.inner.forward(x, (h0, c0))
        return out, h, c

    def backward(self, dout, dh, dc):
        dx, (dh0, dc0) = self.inner.backward(dout, (dh, dc))
        return dx, dh0, dc0


def torch_forward(module, x, h0, c0):
    """torch's state is (num_layers, N, H); a single layer here uses (N, H)."""
    single = h0.dim() == 2
    out, (h, c) = module(x, (h0[None], c0[None]) if single else (h0, c0))
    return (out, h[0], c[0]) if single else (out, h, c)


# Finite-difference step: the gradient of the first inputs is small (it fades over the steps), and
# with h = 1e-6 the rounding error of the differences is a visible part of it (measured relative
# error 5.5e-6 on one entry of dx); h = 1e-5 keeps every error below 4e-7.
FD_STEP = 1e-5


def state_inputs(layers=1, seed=1, steps=T):
    shape = (N, H) if layers == 1 else (layers, N, H)
    return randn(N, steps, D, seed=seed), randn(*shape, seed=seed + 1), randn(*shape, seed=seed + 2)


T2 = 4       # steps in the two-layer checks (twice the parameters: fewer steps keep them fast)


def unrolled(layer, x, h0, c0):
    """A single-layer LSTM written out from its definition (gate order i, f, g, o)."""
    W_ih, W_hh = layer.weight_ih_l0.data, layer.weight_hh_l0.data
    b = layer.bias_ih_l0.data + layer.bias_hh_l0.data
    s = lambda a: 1 / (1 + np.exp(-a))      # noqa: E731
    h, c, outs = h0, c0, []
    for t in range(x.shape[1]):
        z = x[:, t] @ W_ih.T + h @ W_hh.T + b
        i, f, g, o = s(z[:, :H]), s(z[:, H:2 * H]), np.tanh(z[:, 2 * H:3 * H]), s(z[:, 3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
        outs.append(h)
    return np.stack(outs, axis=1), h, c


def test_parameters_follow_torch_and_forward_matches_the_definition():
    layer = lstm()
    shapes = {n: p.data.shape for n, p in layer.named_parameters()}
    assert shapes == {"weight_ih_l0": (4 * H, D), "weight_hh_l0": (4 * H, H), "bias_ih_l0": (4 * H,),
                      "bias_hh_l0": (4 * H,)}, shapes
    x, h0, c0 = state_inputs()
    out, (h_n, c_n) = layer.forward(x, (h0, c0))
    exp_out, exp_h, exp_c = unrolled(layer, x, h0, c0)
    assert out.shape == (N, T, H), f"expected out {(N, T, H)}, got {out.shape}"
    assert_close(out, exp_out, rtol=1e-12, atol=1e-14, what="out")
    assert_close(h_n, exp_h, rtol=1e-12, atol=1e-14, what="h_n")
    assert_close(c_n, exp_c, rtol=1e-12, atol=1e-14, what="c_n")
    out0, _ = layer.forward(x)
    assert_close(out0, unrolled(layer, x, np.zeros((N, H)), np.zeros((N, H)))[0], rtol=1e-12, atol=1e-14,
                 what="out with state=None (zeros)")


def test_bptt_matches_finite_differences():
    """dx, dh0, dc0 and all four weights, with gradients arriving on out, h_n and c_n."""
    check_layer(Flat(lstm()), state_inputs(), input_names=("x", "h0", "c0"), h=FD_STEP)


def test_bptt_matches_torch():
    check_layer(Flat(lstm()), state_inputs(), input_names=("x", "h0", "c0"), h=FD_STEP,
                torch_layer=lambda torch: torch.nn.LSTM(D, H, batch_first=True), torch_forward=torch_forward,
                oracle=torch_or_skip)


def test_two_layers_match_finite_differences():
    check_layer(Flat(lstm(num_layers=2)), state_inputs(layers=2, steps=T2), input_names=("x", "h0", "c0"), h=FD_STEP)


def test_two_layers_match_torch_in_values_and_gradients():
    """Parameter names weight_ih_l0 … bias_hh_l1 and states (2, N, H), as torch.nn.LSTM(num_layers=2)."""
    layer = lstm(num_layers=2)
    assert [n for n, _ in layer.named_parameters()] == [
        f"{w}_l{k}" for k in (0, 1) for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    assert layer.weight_ih_l1.data.shape == (4 * H, H), "layer 1 reads layer 0's hidden states: (4H, H)"
    check_layer(Flat(layer), state_inputs(layers=2, steps=T2), input_names=("x", "h0", "c0"), h=FD_STEP,
                torch_layer=lambda torch: torch.nn.LSTM(D, H, num_layers=2, batch_first=True),
                torch_forward=torch_forward, oracle=torch_or_skip)


def test_a_stack_is_its_layers_one_after_the_other():
    stack = lstm(num_layers=2)
    x, h0, c0 = state_inputs(layers=2)
    out, (h_n, c_n) = stack.forward(x, (h0, c0))
    bottom, top = lstm(), rl.LSTM(H, H, rng=1, dtype=np.float64)
    state = stack.state_dict()
    bottom.load_state_dict({k: v for k, v in state.items() if k.endswith("_l0")})
    top.load_state_dict({k.replace("_l1", "_l0"): v for k, v in state.items() if k.endswith("_l1")})
    mid, (h0_, c0_) = bottom.forward(x, (h0[0], c0[0]))
    exp_out, (h1_, c1_) = top.forward(np.array(mid), (h0[1], c0[1]))
    assert_close(out, exp_out, rtol=1e-12, atol=1e-14, what="stack output vs layer 1 after layer 0")
    assert_close(h_n, np.stack([h0_, h1_]), rtol=1e-12, atol=1e-14, what="h_n of the stack (layer 0 first)")
    assert_close(c_n, np.stack([c0_, c1_]), rtol=1e-12, atol=1e-14, what="c_n of the stack (layer 0 first)")


def test_backward_with_gradients_on_part_of_the_outputs():
    """dout=None and dstate=(dh_n, None) equal zeros in their place."""
    layer = lstm()
    x, h0, c0 = state_inputs()
    dh_n = randn(N, H, seed=9)
    layer.forward(x, (h0, c0))
    dx, (dh0, dc0) = layer.backward(None, (dh_n, None))
    grads = {n: p.grad.copy() for n, p in layer.named_parameters()}
    layer.zero_grad()
    layer.forward(x, (h0, c0))
    dx2, (dh02, dc02) = layer.backward(np.zeros((N, T, H)), (dh_n, np.zeros((N, H))))
    assert np.abs(dx).max() > 0, "dx is zero: the gradient of h_n must reach the inputs"
    for name, a, b in (("dx", dx, dx2), ("dh0", dh0, dh02), ("dc0", dc0, dc02),
                       *((n, grads[n], p.grad) for n, p in layer.named_parameters())):
        assert_close(a, b, rtol=1e-12, atol=1e-14, what=f"{name} with None vs zeros")


def test_float32_in_float32_out_and_gradients_accumulate():
    layer = rl.LSTM(D, H, rng=0)
    x, dout = randn(N, T, D, seed=1).astype(np.float32), randn(N, T, H, seed=2).astype(np.float32)
    out, (h_n, c_n) = layer.forward(x)
    dx, (dh0, dc0) = layer.backward(dout)
    once = {n: p.grad.copy() for n, p in layer.named_parameters()}
    for name, a in (("out", out), ("h_n", h_n), ("c_n", c_n), ("dx", dx), ("dh0", dh0), ("dc0", dc0),
                    *once.items()):
        assert a.dtype == np.float32, f"{name}: expected float32, got {a.dtype}"
    exp_out = unrolled(layer, x.astype(np.float64), np.zeros((N, H)), np.zeros((N, H)))[0]
    assert_close(out, exp_out, rtol=1e-5, atol=1e-6, what="float32 out")
    layer.forward(x)
    layer.backward(dout)
    for n, p in layer.named_parameters():
        assert_close(p.grad, 2 * once[n], rtol=1e-6, atol=1e-7, what=f"{n}.grad after two backward passes")


def test_the_batch_blocks_run_in_parallel_give_the_same_result(monkeypatch):
    monkeypatch.setattr(rl, "MIN_ROWS_PER_BLOCK", 1)
    x = randn(8, T, D, seed=3)
    dout = randn(8, T, H, seed=4)
    results = []
    for threads in ("1", "3"):
        monkeypatch.setenv("DLFS_NUM_THREADS", threads)
        layer = lstm()
        out, (h_n, c_n) = layer.forward(x)
        dx, (dh0, dc0) = layer.backward(dout, (h_n, c_n))
        results.append([np.array(a) for a in (out, h_n, c_n, dx, dh0, dc0, layer.weight_hh_l0.grad)])
    for name, a, b in zip(("out", "h_n", "c_n", "dx", "dh0", "dc0", "weight_hh_l0.grad"), *results):
        assert_close(b, a, rtol=1e-12, atol=1e-14, what=f"{name} with 3 worker threads vs 1")


def test_state_dict_round_trip_with_torch():
    torch = torch_or_skip()
    module = torch.nn.LSTM(D, H, num_layers=2, batch_first=True).float()
    layer = rl.LSTM.from_torch_state(module.state_dict())
    assert (layer.input_size, layer.hidden_size, layer.num_layers, layer.dtype) == (D, H, 2, np.float32)
    x = randn(N, T, D, seed=1).astype(np.float32)
    out, (h_n, c_n) = layer.forward(x)
    t_out, (t_h, t_c) = module(torch.from_numpy(x))
    assert_close(out, to_numpy(t_out), rtol=1e-5, atol=1e-6, what="out of a layer built from torch's state")
    assert_close(c_n, to_numpy(t_c), rtol=1e-5, atol=1e-6, what="c_n of a layer built from torch's state")
    module2 = torch.nn.LSTM(D, H, batch_first=True).float()
    ours = rl.LSTM(D, H, rng=3)
    module2.load_state_dict({k: to_torch(v) for k, v in ours.state_dict().items()})
    t_out2, _ = module2(torch.from_numpy(x))
    assert_close(ours.forward(x)[0], to_numpy(t_out2), rtol=1e-5, atol=1e-6,
                 what="torch.nn.LSTM loaded with our state dict vs our layer")


def test_bad_inputs_are_refused_with_clear_errors():
    layer = lstm()
    with pytest.raises(ValueError, match=r"\(N, T, 5\)"):
        layer.forward(randn(N, T, D + 1))
    with pytest.raises(ValueError, match="c0 must have shape"):
        layer.forward(randn(N, T, D), (randn(N, H), randn(N, H + 1)))
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 3, 6\)"):
        lstm(num_layers=2).forward(randn(N, T, D), (randn(N, H), None))
    with pytest.raises(RuntimeError, match="before forward"):
        lstm().backward(randn(N, T, H))
    with pytest.raises(ValueError, match="forget_bias needs bias=True"):
        rl.LSTM(D, H, bias=False, forget_bias=1.0)
    layer.forward(randn(N, T, D))
    with pytest.raises(ValueError, match="dc_n must have shape"):
        layer.backward(None, (None, randn(N + 1, H)))


# -- the forget gate -------------------------------------------------------------------------

def test_forget_bias_initialisation():
    layer = rl.LSTM(D, H, num_layers=2, rng=0, dtype=np.float64, forget_bias=1.0)
    plain = rl.LSTM(D, H, num_layers=2, rng=0, dtype=np.float64)
    for k in (0, 1):
        b_ih, b_hh = getattr(layer, f"bias_ih_l{k}").data, getattr(layer, f"bias_hh_l{k}").data
        assert np.all(b_ih[H:2 * H] == 1.0) and np.all(b_hh[H:2 * H] == 0.0), \
            f"layer {k}: the forget blocks of bias_ih / bias_hh should be 1 / 0, got {b_ih[H:2 * H]} / {b_hh[H:2 * H]}"
        for name in ("weight_ih", "weight_hh"):
            assert_close(getattr(layer, f"{name}_l{k}").data, getattr(plain, f"{name}_l{k}").data, rtol=0, atol=0,
                         what=f"{name}_l{k} (forget_bias changes only the biases)")
    # at the start the forget gate is σ(1 + small): the cell state decays by about 0.73 per step
    layer.weight_ih_l0.data[...] = 0
    layer.weight_hh_l0.data[...] = 0
    _, (_, c_n) = layer.forward(np.zeros((1, 1, D)), (np.zeros((2, 1, H)), np.ones((2, 1, H))))
    f = 1 / (1 + np.exp(-1.0))
    i = 1 / (1 + np.exp(-layer.bias_ih_l0.data[:H] - layer.bias_hh_l0.data[:H]))
    g = np.tanh(layer.bias_ih_l0.data[2 * H:3 * H] + layer.bias_hh_l0.data[2 * H:3 * H])
    assert_close(c_n[0, 0], f * 1.0 + i * g, rtol=1e-12, atol=1e-14, what="c after one step with zero weights")


sizes = st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 4), st.integers(1, 4))


@settings(deadline=None, max_examples=20)
@given(sizes, st.integers(0, 2 ** 16))
def test_an_open_forget_gate_and_a_closed_input_gate_keep_the_cell_state(size, seed):
    """f = σ(+40) = 1, i = σ(−40) = 0: c_t = c_0 at every step, whatever the input."""
    n, t, d, h = size
    layer = rl.LSTM(d, h, rng=seed, dtype=np.float64)
    layer.bias_ih_l0.data[h:2 * h] = 40.0
    layer.bias_ih_l0.data[:h] = -40.0
    layer.weight_ih_l0.data[:2 * h] = 0
    layer.weight_hh_l0.data[:2 * h] = 0
    c0 = randn(n, h, seed=seed)
    out, (_, c_n) = layer.forward(randn(n, t, d, seed=seed + 1), (randn(n, h, seed=seed + 2), c0))
    assert_close(c_n, c0, rtol=1e-12, atol=1e-14, what="c_n with the forget gate open and the input gate shut")
    o = layer.forward(randn(n, t, d, seed=seed + 1), (randn(n, h, seed=seed + 2), c0))[0]
    assert np.all(np.abs(o) <= np.abs(np.tanh(c0))[:, None, :] + 1e-12), "|h| must be at most |tanh(c)|"


@settings(deadline=None, max_examples=20)
@given(sizes, st.integers(0, 2 ** 16))
def test_zero_weights_give_constant_gates(size, seed):
    """With zero weights every gate is a constant of the biases: c_t = f c_{t−1} + i g."""
    n, t, d, h = size
    layer = rl.LSTM(d, h, rng=seed, dtype=np.float64)
    layer.weight_ih_l0.data[...] = 0
    layer.weight_hh_l0.data[...] = 0
    b = layer.bias_ih_l0.data + layer.bias_hh_l0.data
    s = lambda a: 1 / (1 + np.exp(-a))      # noqa: E731
    i, f, g, o = s(b[:h]), s(b[h:2 * h]), np.tanh(b[2 * h:3 * h]), s(b[3 * h:])
    c0 = randn(n, h, seed=seed)
    out, (h_n, c_n) = layer.forward(randn(n, t, d, seed=seed + 1), (randn(n, h, seed=seed + 2), c0))
    c = c0
    for step in range(t):
        c = f * c + i * g
        assert_close(out[:, step], o * np.tanh(c), rtol=1e-12, atol=1e-14, what=f"out[:, {step}] with zero weights")
    assert_close(c_n, c, rtol=1e-12, atol=1e-14, what="c_n with zero weights")


@settings(deadline=None, max_examples=20)
@given(sizes, st.integers(0, 2 ** 16))
def test_one_step_is_one_cell_step(size, seed):
    n, _, d, h = size
    layer = rl.LSTM(d, h, rng=seed, dtype=np.float64)
    x, h0, c0 = randn(n, 1, d, seed=seed), randn(n, h, seed=seed + 1), randn(n, h, seed=seed + 2)
    out, (h_n, c_n) = layer.forward(x, (h0, c0))
    xp = x[:, 0] @ layer.weight_ih_l0.data.T + layer.bias_ih_l0.data
    h1, c1, _ = rl.lstm_cell_forward(xp, h0, c0, layer.weight_hh_l0.data, layer.bias_hh_l0.data)
    assert_close(out[:, 0], h1, rtol=1e-12, atol=1e-14, what="out of T=1 vs one cell step")
    assert_close(c_n, c1, rtol=1e-12, atol=1e-14, what="c_n of T=1 vs one cell step")
