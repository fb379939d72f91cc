"""Topic 20: one GRU step — PyTorch's equations, the backward of a step, and the GRUCell layer."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.rnn import gru
from dlfs.testing import assert_close, check_layer, check_op
from torch_oracle import torch_or_skip


def weights(D=3, H=4, seed=0, scale=0.7):
    rng = np.random.default_rng(seed)
    return (scale * rng.standard_normal((3 * H, D)), scale * rng.standard_normal((3 * H, H)),
            scale * rng.standard_normal(3 * H), scale * rng.standard_normal(3 * H))


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def test_step_matches_the_gate_equations(gru_equations):
    W_ih, W_hh, b_ih, b_hh = weights(seed=1)
    x, h = randn(5, 3, seed=2), np.tanh(randn(5, 4, seed=3))
    got, cache = gru.gru_cell_forward(x @ W_ih.T + b_ih, h, W_hh, b_hh)
    expected, r, z, n = gru_equations(x, h, W_ih, W_hh, b_ih, b_hh)
    assert_close(got, expected, rtol=1e-12, atol=1e-14, what="h' = (1 − z) ⊙ n + z ⊙ h")
    for name, value, want in (("r", cache.r, r), ("z", cache.z, z), ("n", cache.n, n), ("h_prev", cache.h_prev, h)):
        assert_close(value, want, rtol=1e-12, atol=1e-14, what=f"cache.{name}")
    assert_close(cache.gh_n, h @ W_hh[8:].T + b_hh[8:], rtol=1e-12, atol=1e-14, what="cache.gh_n = h W_hnᵀ + b_hn")


def test_the_reset_gate_multiplies_the_hidden_bias_too():
    """PyTorch's n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)): with r ≈ 0 the hidden side,
    *its bias b_hn included*, vanishes (the original GRU paper adds b_hn outside the reset)."""
    H = 3
    W_hh = np.zeros((3 * H, H))
    b_hh = np.concatenate([np.full(H, -60.0), np.zeros(H), np.full(H, 5.0)])   # r ≈ 1e-26; b_hn = 5
    gx = randn(2, 3 * H, seed=4)
    h = np.tanh(randn(2, H, seed=5))
    _, cache = gru.gru_cell_forward(gx, h, W_hh, b_hh)
    assert_close(cache.n, np.tanh(gx[:, 2 * H:]), rtol=1e-12, atol=1e-14,
                 what="n with the reset gate closed: tanh(gx_n), b_hn is multiplied by r ≈ 0")


def test_step_without_hidden_bias_equals_a_zero_bias():
    W_ih, W_hh, _, _ = weights(seed=6)
    gx, h = randn(4, 12, seed=7), np.tanh(randn(4, 4, seed=8))
    got, _ = gru.gru_cell_forward(gx, h, W_hh, None)
    want, _ = gru.gru_cell_forward(gx, h, W_hh, np.zeros(12))
    assert_close(got, want, rtol=0, atol=0, what="b_hh=None behaves as zeros")


def step_forward(gx, h_prev, W_hh, b_hh):
    return gru.gru_cell_forward(gx, h_prev, W_hh, b_hh)[0]


def step_backward(dh, gx, h_prev, W_hh, b_hh):
    dgx, dgh, dh_prev = gru.gru_cell_backward(dh, gru.gru_cell_forward(gx, h_prev, W_hh, b_hh)[1], W_hh)
    return dgx, dh_prev, dgh.T @ h_prev, dgh.sum(axis=0)


def test_step_backward_matches_finite_differences():
    """dgx, dh_prev and (through dgh) dW_hh, db_hh against central differences."""
    _, W_hh, _, b_hh = weights(H=4, seed=9)
    check_op(step_forward, step_backward, (randn(3, 12, seed=10), np.tanh(randn(3, 4, seed=11))),
             {"W_hh": W_hh, "b_hh": b_hh}, input_names=("gx", "h_prev"), what="gru_cell")


def test_dgh_is_dgx_with_the_n_block_times_r():
    _, W_hh, _, b_hh = weights(H=4, seed=12)
    gx, h = randn(3, 12, seed=13), np.tanh(randn(3, 4, seed=14))
    _, cache = gru.gru_cell_forward(gx, h, W_hh, b_hh)
    dgx, dgh, _ = gru.gru_cell_backward(randn(3, 4, seed=15), cache, W_hh)
    assert_close(dgh[:, :8], dgx[:, :8], rtol=0, atol=1e-15, what="the r and z blocks of dgh and dgx")
    assert_close(dgh[:, 8:], dgx[:, 8:] * cache.r, rtol=1e-12, atol=1e-15, what="the n block: dgh_n = dgx_n ⊙ r")


def test_an_open_update_gate_copies_the_state_and_its_gradient():
    """z ≈ 1: h' = h and dh_prev = dh — the path that lets gradients cross many steps."""
    H = 4
    _, W_hh, _, _ = weights(H=H, seed=16, scale=0.3)
    b_hh = np.zeros(3 * H)
    b_hh[H:2 * H] = 40.0
    gx, h, dh = randn(2, 3 * H, seed=17), np.tanh(randn(2, H, seed=18)), randn(2, H, seed=19)
    h_new, cache = gru.gru_cell_forward(gx, h, W_hh, b_hh)
    _, _, dh_prev = gru.gru_cell_backward(dh, cache, W_hh)
    assert_close(h_new, h, rtol=1e-12, atol=1e-14, what="h' with z ≈ 1")
    assert_close(dh_prev, dh, rtol=1e-12, atol=1e-14, what="dh_prev with z ≈ 1")


@settings(max_examples=25)
@given(scale=st.floats(0.1, 20.0), seed=st.integers(0, 10_000))
def test_the_state_stays_inside_minus_one_one(gru_equations, scale, seed):
    """h' is a convex combination of n ∈ (−1, 1) and h: a state inside (−1, 1) stays inside."""
    W_ih, W_hh, b_ih, b_hh = weights(seed=seed, scale=scale)
    h = np.tanh(randn(6, 4, seed=seed + 1))
    got, _ = gru.gru_cell_forward(randn(6, 3, seed=seed + 2) @ W_ih.T + b_ih, h, W_hh, b_hh)
    expected, _, _, _ = gru_equations(randn(6, 3, seed=seed + 2), h, W_ih, W_hh, b_ih, b_hh)
    assert_close(got, expected, rtol=1e-10, atol=1e-12, what="h'")
    assert np.all(np.abs(got) <= 1.0), f"|h'| should stay ≤ 1, got max {np.abs(got).max()}"


def cell(bias=True, seed=20):
    c = gru.GRUCell(3, 4, bias=bias, rng=seed, dtype=np.float64)
    return c


def test_cell_layer_forward_and_initialisation(gru_equations):
    c = cell()
    x, h = randn(5, 3, seed=21), np.tanh(randn(5, 4, seed=22))
    expected, _, _, _ = gru_equations(x, h, c.weight_ih.data, c.weight_hh.data, c.bias_ih.data, c.bias_hh.data)
    assert_close(c.forward(x, h), expected, rtol=1e-12, atol=1e-14, what="GRUCell(x, h)")
    assert_close(c.forward(x), gru_equations(x, np.zeros((5, 4)), c.weight_ih.data, c.weight_hh.data,
                                             c.bias_ih.data, c.bias_hh.data)[0],
                 rtol=1e-12, atol=1e-14, what="GRUCell(x) with h=None (zeros)")
    bound = 1 / np.sqrt(4)
    assert c.weight_ih.shape == (12, 3) and c.weight_hh.shape == (12, 4) and c.bias_hh.shape == (12,), \
        "GRUCell parameters: weight_ih (3H, D), weight_hh (3H, H), biases (3H,)"
    assert max(np.abs(p.data).max() for p in c.parameters()) <= bound, f"initialisation ~ U(−{bound}, {bound})"


@pytest.mark.parametrize("bias", [True, False])
def test_cell_layer_backward_matches_finite_differences(bias):
    check_layer(cell(bias), (randn(4, 3, seed=23), np.tanh(randn(4, 4, seed=24))), input_names=("x", "h"))


@pytest.mark.parametrize("bias", [True, False])
def test_cell_layer_matches_torch_gru_cell(bias):
    check_layer(cell(bias, seed=25), (randn(4, 3, seed=26), np.tanh(randn(4, 4, seed=27))), input_names=("x", "h"),
                torch_layer=lambda torch: torch.nn.GRUCell(3, 4, bias=bias), oracle=torch_or_skip)
