"""Topic 19: the LSTM cell — gates i, f, g, o, forward and backward of one step."""

import numpy as np

from dlfs.rnn import lstm as rl
from dlfs.testing import assert_close, check_op

N, H = 3, 5


def randn(*shape, seed=0, scale=1.0):
    return scale * np.random.default_rng(seed).standard_normal(shape)


def inputs(seed=0):
    return (randn(N, 4 * H, seed=seed + 1), randn(N, H, seed=seed + 2), randn(N, H, seed=seed + 3),
            randn(4 * H, H, seed=seed + 4, scale=0.5), randn(4 * H, seed=seed + 5))


def by_definition(xp, h_prev, c_prev, W, b):
    z = xp + h_prev @ W.T + b
    s = lambda a: 1 / (1 + np.exp(-a))      # noqa: E731
    i, f, g, o = s(z[:, :H]), s(z[:, H:2 * H]), np.tanh(z[:, 2 * H:3 * H]), s(z[:, 3 * H:])
    c = f * c_prev + i * g
    return o * np.tanh(c), c, np.concatenate([i, f, g, o], axis=1)


def test_cell_forward_matches_the_definition_in_torch_gate_order():
    xp, h_prev, c_prev, W, b = inputs()
    h, c, (gates, c_cached, tanh_c) = rl.lstm_cell_forward(xp, h_prev, c_prev, W, b)
    exp_h, exp_c, exp_gates = by_definition(xp, h_prev, c_prev, W, b)
    assert_close(h, exp_h, rtol=1e-12, atol=1e-14, what="h = o tanh(c)")
    assert_close(c, exp_c, rtol=1e-12, atol=1e-14, what="c = f c_prev + i g")
    assert_close(gates, exp_gates, rtol=1e-12, atol=1e-14, what="cached gates [i | f | g | o] (activated)")
    assert_close(tanh_c, np.tanh(exp_c), rtol=1e-12, atol=1e-14, what="cached tanh(c)")
    assert_close(c_cached, c_prev, rtol=0, atol=0, what="cached c_prev")
    h2, c2, _ = rl.lstm_cell_forward(xp + b, h_prev, c_prev, W)
    assert_close(h2, exp_h, rtol=1e-12, atol=1e-14, what="h with bias_hh folded into xp (bias_hh=None)")


def test_cell_forward_writes_into_given_buffers():
    xp, h_prev, c_prev, W, b = inputs()
    bufs = (np.full((N, H), np.nan), np.full((N, H), np.nan), np.full((N, 4 * H), np.nan), np.full((N, H), np.nan))
    h, c, (gates, _, tanh_c) = rl.lstm_cell_forward(xp, h_prev, c_prev, W, b, out=bufs)
    exp_h, exp_c, exp_gates = by_definition(xp, h_prev, c_prev, W, b)
    for name, got, buf, exp in (("h", h, bufs[0], exp_h), ("c", c, bufs[1], exp_c),
                                ("gates", gates, bufs[2], exp_gates), ("tanh_c", tanh_c, bufs[3], np.tanh(exp_c))):
        assert np.shares_memory(got, buf), f"{name}: expected the given out= buffer to be used and returned"
        assert_close(buf, exp, rtol=1e-12, atol=1e-14, what=f"{name} written into its out= buffer")


def test_saturated_sigmoid_stays_finite_in_float32():
    """Pre-activations of ±200 (exp(200) overflows float32): gates are exactly 0 or 1, no NaN."""
    xp = np.tile(np.array([200.0, -200.0], np.float32), (N, 2 * H))
    h_prev, c_prev = np.zeros((N, H), np.float32), np.ones((N, H), np.float32)
    with np.errstate(over="raise", invalid="raise"):
        h, c, (gates, _, _) = rl.lstm_cell_forward(xp, h_prev, c_prev, np.zeros((4 * H, H), np.float32))
    assert h.dtype == np.float32 and c.dtype == np.float32 and gates.dtype == np.float32
    assert np.all(np.isfinite(h)) and np.all(np.isfinite(c)), "saturated gates gave inf or NaN"
    _, exp_c, exp_gates = by_definition(xp.astype(np.float64), h_prev, c_prev, np.zeros((4 * H, H)), 0.0)
    assert_close(gates, exp_gates, rtol=1e-6, atol=1e-7, what="saturated gates")
    assert_close(c, exp_c, rtol=1e-6, atol=1e-7, what="c with saturated gates")


def test_cell_backward_matches_finite_differences():
    """dxp, dh_prev, dc_prev, and the hidden weights' gradients the layer forms from dxp."""
    xp, h_prev, c_prev, W, b = inputs()

    def forward(xp, h_prev, c_prev, weight_hh, bias_hh):
        return rl.lstm_cell_forward(xp, h_prev, c_prev, weight_hh, bias_hh)[:2]

    def backward(douts, xp, h_prev, c_prev, weight_hh, bias_hh):
        dh, dc = douts
        _, _, cache = rl.lstm_cell_forward(xp, h_prev, c_prev, weight_hh, bias_hh)
        dh_copy, dc_copy = dh.copy(), dc.copy()
        dxp, dh_prev, dc_prev = rl.lstm_cell_backward(dh, dc, cache, weight_hh)
        assert_close(dh, dh_copy, rtol=0, atol=0, what="dh after lstm_cell_backward (must be unchanged)")
        assert_close(dc, dc_copy, rtol=0, atol=0, what="dc after lstm_cell_backward (must be unchanged)")
        return dxp, dh_prev, dc_prev, dxp.T @ h_prev, dxp.sum(axis=0)

    check_op(forward, backward, (xp, h_prev, c_prev), {"weight_hh": W, "bias_hh": b},
             input_names=("xp", "h_prev", "c_prev"), what="lstm_cell")


def test_cell_backward_writes_into_the_given_buffer():
    xp, h_prev, c_prev, W, b = inputs(seed=7)
    _, _, cache = rl.lstm_cell_forward(xp, h_prev, c_prev, W, b)
    dh, dc = randn(N, H, seed=20), randn(N, H, seed=21)
    expected = rl.lstm_cell_backward(dh, dc, cache, W)
    buf = np.full((N, 4 * H), np.nan)
    got = rl.lstm_cell_backward(dh, dc, cache, W, out=buf)
    assert np.shares_memory(got[0], buf), "dxp: expected the out= buffer to be used and returned"
    for name, a, e in zip(("dxp", "dh_prev", "dc_prev"), got, expected):
        assert_close(a, e, rtol=1e-12, atol=1e-14, what=f"{name} with out= vs without")
