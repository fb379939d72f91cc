"""Shared by Topic 20's tests: one GRU step written out gate by gate from PyTorch's equations,
independent of the code under test (the fixture ``gru_equations``)."""

from __future__ import annotations

import numpy as np
import pytest


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def step_by_the_equations(x, h, W_ih, W_hh, b_ih, b_hh):
    """x: (N, D), h: (N, H), W_ih: (3H, D), W_hh: (3H, H), b_ih, b_hh: (3H,) ->
    (h', r, z, n), as the documentation of torch.nn.GRU states them."""
    H = h.shape[1]
    W_ir, W_iz, W_in = W_ih[:H], W_ih[H:2 * H], W_ih[2 * H:]
    W_hr, W_hz, W_hn = W_hh[:H], W_hh[H:2 * H], W_hh[2 * H:]
    b_ir, b_iz, b_in = b_ih[:H], b_ih[H:2 * H], b_ih[2 * H:]
    b_hr, b_hz, b_hn = b_hh[:H], b_hh[H:2 * H], b_hh[2 * H:]
    r = sigmoid(x @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
    z = sigmoid(x @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
    n = np.tanh(x @ W_in.T + b_in + r * (h @ W_hn.T + b_hn))
    return (1 - z) * n + z * h, r, z, n


@pytest.fixture(scope="session")
def gru_equations():
    return step_by_the_equations
