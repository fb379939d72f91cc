"""Topic 22: the sparse SGD step — repeated rows add up, untouched rows stay, and the step equals
dense gradient descent on the summed loss; the learning-rate decay."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.embeddings import word2vec as w2v
from dlfs.testing import assert_close


def loop_scatter(W, rows, grads, scale):
    W = W.copy()
    for r, g in zip(rows, grads):
        W[r] += scale * g
    return W


def test_repeated_rows_receive_the_sum_of_their_gradients():
    W = np.arange(12, dtype=np.float64).reshape(4, 3)
    before = W.copy()
    rows = np.array([2, 0, 2, 2])
    grads = np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]])
    w2v.scatter_add_rows(W, rows, grads, -0.5)
    expected = before.copy()
    expected[0] += [0, -0.5, 0]
    expected[2] += [-1.0, -0.5, -1.0]                  # three gradients for row 2, all of them
    assert_close(W, expected, rtol=0, atol=0, what="W after a scatter with row 2 three times")
    assert np.array_equal(W[[1, 3]], before[[1, 3]]), "rows 1 and 3 were not listed and must not change"


@settings(deadline=None, max_examples=60)
@given(st.integers(1, 40), st.integers(1, 6), st.integers(0, 2**16), st.sampled_from([1.0, -0.025, 3.0]))
def test_scatter_matches_a_loop(M, V, seed, scale):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((V, 5))
    rows = rng.integers(0, V, M)
    grads = rng.standard_normal((M, 5))
    expected = loop_scatter(W, rows, grads, scale)
    w2v.scatter_add_rows(W, rows, grads, scale)
    assert_close(W, expected, rtol=1e-12, atol=1e-12, what=f"scatter of {M} rows into {V}")


def test_scatter_keeps_float32():
    W = np.zeros((3, 2), dtype=np.float32)
    w2v.scatter_add_rows(W, np.array([1, 1]), np.ones((2, 2), dtype=np.float32), 0.25)
    assert W.dtype == np.float32 and W[1].tolist() == [0.5, 0.5] and not W[[0, 2]].any()


def dense_loss(W_in, W_out, centers, targets):
    v, u = W_in[centers], W_out[targets]
    return w2v.sgns_forward(v, u)[0].sum()


def test_a_step_is_dense_gradient_descent_on_the_touched_rows():
    rng = np.random.default_rng(0)
    V, d = 6, 4
    W_in, W_out = rng.standard_normal((V, d)) * 0.5, rng.standard_normal((V, d)) * 0.5
    centers = np.array([1, 1, 3, 1])                    # repeated centers
    targets = np.array([[2, 0, 2], [3, 2, 0], [1, 2, 2], [2, 3, 3]])   # repeated targets, even within a row
    lr = 0.1
    # the gradient of the summed loss by central differences, over every entry of both matrices
    grads = []
    for W in (W_in, W_out):
        G = np.zeros_like(W)
        for idx in np.ndindex(*W.shape):
            old = W[idx]
            W[idx] = old + 1e-6
            up = dense_loss(W_in, W_out, centers, targets)
            W[idx] = old - 1e-6
            down = dense_loss(W_in, W_out, centers, targets)
            W[idx] = old
            G[idx] = (up - down) / 2e-6
        grads.append(G)
    expected_in, expected_out = W_in - lr * grads[0], W_out - lr * grads[1]
    before = dense_loss(W_in, W_out, centers, targets)
    loss = w2v.sgns_step(W_in, W_out, centers, targets, lr)
    assert abs(loss - before) < 1e-12, f"sgns_step returns the summed loss before the step: {before}, got {loss}"
    assert_close(W_in, expected_in, rtol=1e-7, atol=1e-8, what="W_in after one step (rows 0, 2, 4, 5 untouched)")
    assert_close(W_out, expected_out, rtol=1e-7, atol=1e-8, what="W_out after one step (rows 4, 5 untouched)")
    assert not grads[0][[0, 2, 4, 5]].any() and not grads[1][[4, 5]].any()


@pytest.mark.parametrize("progress, expected", [(0.0, 0.025), (0.5, 0.01255), (1.0, 0.0001), (1.2, 0.0001),
                                                (0.25, 0.018775)])
def test_learning_rate_decays_linearly_to_min_alpha(progress, expected):
    got = w2v.learning_rate(0.025, 0.0001, progress)
    assert abs(got - expected) < 1e-12, f"learning_rate(0.025, 0.0001, {progress}): expected {expected}, got {got}"
