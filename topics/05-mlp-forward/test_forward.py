"""Topic 05: the fully connected layer and the MLP forward pass, checked against values
worked out by hand, against plain NumPy loops and against torch.nn.functional."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.nn import forward
from dlfs.testing import assert_close
from torch_oracle import to_numpy, to_torch, torch_or_skip

# x: (3, 2), W: (2, 3), b: (3,)
X_HAND = np.array([[1.0, 2.0],
                   [3.0, 4.0],
                   [-1.0, 0.0]])
W_HAND = np.array([[1.0, 0.0, 2.0],
                   [0.0, 1.0, -1.0]])
B_HAND = np.array([0.5, -1.0, 0.0])
# row 0: [1·1 + 2·0, 1·0 + 2·1, 1·2 + 2·(-1)] + b = [1, 2, 0] + b = [1.5, 1, 0]
# row 1: [3, 4, 6 - 4] + b = [3.5, 3, 2]
# row 2: [-1, 0, -2] + b = [-0.5, -1, -2]
Y_HAND = np.array([[1.5, 1.0, 0.0],
                   [3.5, 3.0, 2.0],
                   [-0.5, -1.0, -2.0]])


def test_linear_forward_hand_worked():
    got = forward.linear_forward(X_HAND, W_HAND, B_HAND)
    assert_close(got, Y_HAND, what="linear_forward(x, W, b)")


def test_linear_forward_without_bias():
    got = forward.linear_forward(X_HAND, W_HAND, None)
    assert_close(got, Y_HAND - B_HAND, what="linear_forward(x, W, None)")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_forward_keeps_the_dtype(dtype):
    rng = np.random.default_rng(0)
    x, W, b = (rng.normal(size=s).astype(dtype) for s in [(4, 3), (3, 2), (2,)])
    got = forward.linear_forward(x, W, b)
    assert got.dtype == dtype, f"linear_forward of {np.dtype(dtype).name} inputs returned {got.dtype}"
    assert_close(got, x.astype(np.float64) @ W.astype(np.float64) + b, rtol=1e-5, atol=1e-6,
                 what=f"linear_forward in {np.dtype(dtype).name}")


@settings(deadline=None, max_examples=30)
@given(n=st.integers(1, 6), d_in=st.integers(1, 5), d_out=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_linear_forward_matches_a_loop(n, d_in, d_out, seed):
    rng = np.random.default_rng(seed)
    x, W, b = rng.normal(size=(n, d_in)), rng.normal(size=(d_in, d_out)), rng.normal(size=d_out)
    expected = np.empty((n, d_out))
    for i in range(n):
        for j in range(d_out):
            expected[i, j] = sum(x[i, k] * W[k, j] for k in range(d_in)) + b[j]
    assert_close(forward.linear_forward(x, W, b), expected, rtol=1e-10, atol=1e-12,
                 what=f"linear_forward, x {x.shape}, W {W.shape}")


def test_linear_forward_matches_torch():
    torch = torch_or_skip()
    rng = np.random.default_rng(1)
    x, W, b = rng.normal(size=(7, 5)), rng.normal(size=(5, 4)), rng.normal(size=4)
    # torch's F.linear takes the weight as (out, in): ours is its transpose
    expected = to_numpy(torch.nn.functional.linear(to_torch(x), to_torch(W.T), to_torch(b)))
    assert_close(forward.linear_forward(x, W, b), expected, rtol=1e-12, atol=1e-12,
                 what="linear_forward vs torch.nn.functional.linear(x, W.T, b)")


# ---------------------------------------------------------------------------------------
# mlp_forward
# ---------------------------------------------------------------------------------------

def _net(sizes, seed=0):
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=(a, b)) / np.sqrt(a) for a, b in zip(sizes[:-1], sizes[1:])]
    biases = [rng.normal(size=b) * 0.1 for b in sizes[1:]]
    return weights, biases


def test_mlp_forward_hand_worked():
    # layer 1 = the hand-worked layer above, then ReLU; layer 2: (3, 1), linear
    relu = lambda z: np.maximum(z, 0.0)
    W2, b2 = np.array([[1.0], [-1.0], [2.0]]), np.array([0.25])
    out, acts = forward.mlp_forward(X_HAND, [W_HAND, W2], [B_HAND, b2], relu)
    h1 = np.array([[1.5, 1.0, 0.0], [3.5, 3.0, 2.0], [0.0, 0.0, 0.0]])
    # h1 @ W2 + b2: [1.5 - 1 + 0, 3.5 - 3 + 4, 0] + 0.25
    expected = np.array([[0.75], [4.75], [0.25]])
    assert isinstance(acts, list) and len(acts) == 2, f"expected a list of 2 activations, got {type(acts)} of {len(acts)}"
    assert_close(acts[0], h1, what="activations[0] (layer 1 after ReLU)")
    assert_close(out, expected, what="output (layer 2 is linear)")
    assert_close(acts[1], expected, what="activations[-1] (must be the output)")


def test_mlp_forward_matches_a_manual_loop():
    sizes = [6, 8, 8, 5, 3]
    weights, biases = _net(sizes)
    x = np.random.default_rng(9).normal(size=(10, 6))
    out, acts = forward.mlp_forward(x, weights, biases, np.tanh)
    h, expected = x, []
    for l, (W, b) in enumerate(zip(weights, biases)):
        h = h @ W + b
        if l < len(weights) - 1:
            h = np.tanh(h)
        expected.append(h)
    assert len(acts) == len(weights), f"expected {len(weights)} activations, got {len(acts)}"
    for l, (got, exp) in enumerate(zip(acts, expected)):
        assert_close(got, exp, rtol=1e-10, atol=1e-12, what=f"activations[{l}]")
    assert_close(out, expected[-1], rtol=1e-10, atol=1e-12, what="output")


def test_mlp_forward_final_activation_and_no_biases():
    sizes = [4, 6, 2]
    weights, _ = _net(sizes, seed=2)
    x = np.random.default_rng(3).normal(size=(5, 4))
    out, acts = forward.mlp_forward(x, weights, None, np.tanh, final_activation=True)
    h1 = np.tanh(x @ weights[0])
    assert_close(acts[0], h1, rtol=1e-10, what="activations[0] without biases")
    assert_close(out, np.tanh(h1 @ weights[1]), rtol=1e-10,
                 what="output with final_activation=True (tanh after the last layer too)")


def test_mlp_forward_calls_the_activation_between_layers_only():
    calls = []

    def spy(z):
        calls.append(z.shape)
        return 2.0 * z

    weights, biases = _net([3, 4, 5, 2], seed=4)
    x = np.ones((2, 3))
    out, _ = forward.mlp_forward(x, weights, biases, spy)
    assert calls == [(2, 4), (2, 5)], \
        f"the activation should run after layers 1 and 2 (not the last), on shapes [(2, 4), (2, 5)]; got {calls}"
    expected = (2 * ((2 * (x @ weights[0] + biases[0])) @ weights[1] + biases[1])) @ weights[2] + biases[2]
    assert_close(out, expected, rtol=1e-10, what="output with a doubling activation")


def test_mlp_forward_identity_activation_is_one_linear_map():
    weights, biases = _net([5, 7, 7, 3], seed=6)
    x = np.random.default_rng(7).normal(size=(4, 5))
    out, _ = forward.mlp_forward(x, weights, biases, None, final_activation=True)
    # without nonlinearities the network collapses to x @ (W1 W2 W3) + (b1 W2 W3 + b2 W3 + b3)
    W = weights[0] @ weights[1] @ weights[2]
    b = (biases[0] @ weights[1] + biases[1]) @ weights[2] + biases[2]
    assert_close(out, x @ W + b, rtol=1e-10, atol=1e-12, what="a purely linear MLP")


def test_mlp_forward_matches_torch():
    torch = torch_or_skip()
    sizes = [6, 16, 16, 4]
    weights, biases = _net(sizes, seed=8)
    x = np.random.default_rng(10).normal(size=(12, 6))
    h = to_torch(x)
    for l, (W, b) in enumerate(zip(weights, biases)):
        h = torch.nn.functional.linear(h, to_torch(W.T), to_torch(b))
        if l < len(weights) - 1:
            h = torch.relu(h)
    out, _ = forward.mlp_forward(x, weights, biases, lambda z: np.maximum(z, 0.0))
    assert_close(out, to_numpy(h), rtol=1e-10, atol=1e-12, what="mlp_forward vs torch (ReLU MLP)")
