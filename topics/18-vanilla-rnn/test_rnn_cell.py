"""Topic 18: the tanh cell, one step, forward and backward."""

import numpy as np

from dlfs.rnn import vanilla as rv
from dlfs.testing import assert_close, check_op


def randn(*shape, seed=0, scale=1.0):
    return scale * np.random.default_rng(seed).standard_normal(shape)


N, H = 3, 6


def test_cell_forward_is_tanh_of_the_sum():
    xp, h_prev, W, b = randn(N, H, seed=1), randn(N, H, seed=2), randn(H, H, seed=3, scale=0.4), randn(H, seed=4)
    expected = np.tanh(xp + h_prev @ W.T + b)
    assert_close(rv.rnn_cell_forward(xp, h_prev, W, b), expected, rtol=1e-12, atol=1e-14, what="h with bias_hh")
    assert_close(rv.rnn_cell_forward(xp + b, h_prev, W), expected, rtol=1e-12, atol=1e-14,
                 what="h with bias_hh folded into xp (bias_hh=None)")


def test_cell_forward_does_not_modify_its_inputs_and_keeps_float32():
    xp, h_prev, W = (a.astype(np.float32) for a in (randn(N, H, seed=1), randn(N, H, seed=2), randn(H, H, seed=3)))
    copies = [a.copy() for a in (xp, h_prev, W)]
    h = rv.rnn_cell_forward(xp, h_prev, W)
    assert h.dtype == np.float32, f"expected float32 output for float32 inputs, got {h.dtype}"
    for a, c in zip((xp, h_prev, W), copies):
        assert_close(a, c, rtol=0, atol=0, what="an input of rnn_cell_forward after the call (must be unchanged)")
    assert_close(h, np.tanh(xp.astype(np.float64) + h_prev.astype(np.float64) @ W.T.astype(np.float64)),
                 rtol=1e-5, atol=1e-6, what="float32 h")


def test_cell_backward_matches_its_formula():
    xp, h_prev, W = randn(N, H, seed=1), randn(N, H, seed=2), randn(H, H, seed=3, scale=0.4)
    h = rv.rnn_cell_forward(xp, h_prev, W)
    dh = randn(N, H, seed=5)
    dxp, dh_prev = rv.rnn_cell_backward(dh, h, W)
    assert_close(dxp, dh * (1 - h ** 2), rtol=1e-12, atol=1e-14, what="dxp = dh (1 - h²)")
    assert_close(dh_prev, (dh * (1 - h ** 2)) @ W, rtol=1e-12, atol=1e-14, what="dh_prev = dxp @ W_hh")


def test_cell_backward_matches_finite_differences():
    """dxp, dh_prev, and the weight gradients the layer forms from dxp (dxpᵀ h_prev, Σ dxp)."""
    def backward(dh, xp, h_prev, weight_hh, bias_hh):
        h = rv.rnn_cell_forward(xp, h_prev, weight_hh, bias_hh)
        dxp, dh_prev = rv.rnn_cell_backward(dh, h, weight_hh)
        return dxp, dh_prev, dxp.T @ h_prev, dxp.sum(axis=0)

    check_op(rv.rnn_cell_forward, backward, (randn(N, H, seed=1), randn(N, H, seed=2)),
             {"weight_hh": randn(H, H, seed=3, scale=0.4), "bias_hh": randn(H, seed=4)},
             input_names=("xp", "h_prev"), what="rnn_cell")
