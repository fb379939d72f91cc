"""Topic 07 — activations and initialisation together: the gain of an initialiser compensates for
what the activation does to the signal's second moment, forward and backward."""

import numpy as np
import pytest

from dlfs.nn import activations as A
from dlfs.nn import init
from dlfs.nn.forward import mlp_forward

DEPTH, WIDTH = 20, 128


def deep_stack(act, act_backward, make_weight, seed=1):
    """Forward and backward through DEPTH square layers (no biases), activation after each.

    Returns (rms of the last activations, rms of the gradient reaching the input) for a
    unit-variance input and a unit-variance upstream gradient."""
    rng = np.random.default_rng(seed)
    weights = [make_weight((WIDTH, WIDTH), rng) for _ in range(DEPTH)]
    x = np.random.default_rng(0).standard_normal((64, WIDTH))
    out, hs = mlp_forward(x, weights, None, act, final_activation=True)
    g = np.random.default_rng(2).standard_normal(out.shape)
    inputs = [x, *hs[:-1]]
    for W, h_in, h_out in zip(reversed(weights), reversed(inputs), reversed(hs)):
        g = act_backward(g, h_in @ W, h_out) @ W.T
    return float(np.sqrt(np.mean(out ** 2))), float(np.sqrt(np.mean(g ** 2)))


def relu_bwd(dy, z, y):
    return A.relu_backward(dy, z)


def tanh_bwd(dy, z, y):
    return A.tanh_backward(dy, y)


def test_kaiming_keeps_a_deep_relu_network_alive_where_xavier_fades_and_a_big_gain_explodes():
    kaiming = deep_stack(A.relu, relu_bwd, lambda s, r: init.kaiming_normal(s, rng=r, dtype=np.float64))
    xavier = deep_stack(A.relu, relu_bwd, lambda s, r: init.xavier_normal(s, rng=r, dtype=np.float64))
    big = deep_stack(A.relu, relu_bwd, lambda s, r: init.kaiming_normal(s, rng=r, dtype=np.float64) * 1.5)
    assert 0.25 < kaiming[0] < 4 and 0.25 < kaiming[1] < 4, \
        f"Kaiming (gain sqrt 2): forward and backward scale should stay O(1) over {DEPTH} layers, got {kaiming}"
    assert xavier[0] < 1e-2 and xavier[1] < 1e-2, \
        f"Xavier (gain 1) halves the second moment at every ReLU: expected both < 1e-2, got {xavier}"
    assert big[0] > 100 and big[1] > 100, f"1.5 x Kaiming should explode (1.5^{DEPTH}), got {big}"


def test_tanh_needs_a_gain_above_one():
    gain1 = deep_stack(A.tanh, tanh_bwd, lambda s, r: init.xavier_normal(s, gain=1.0, rng=r, dtype=np.float64))
    gain53 = deep_stack(A.tanh, tanh_bwd, lambda s, r: init.xavier_normal(s, gain=5 / 3, rng=r, dtype=np.float64))
    assert gain1[0] < 0.25 and gain1[1] < 0.3, \
        f"tanh with gain 1 shrinks the signal layer after layer (forward and backward), got {gain1}"
    assert gain53[0] > 0.5 and gain53[1] > 1.0, f"tanh with gain 5/3 keeps the signal, got {gain53}"


@pytest.mark.parametrize("name, f, f_backward, gain", [
    ("relu", A.relu, A.relu_backward, init.calculate_gain("relu")),
    ("leaky_relu(0.2)", lambda z: A.leaky_relu(z, 0.2), lambda dy, z: A.leaky_relu_backward(dy, z, 0.2),
     init.calculate_gain("leaky_relu", 0.2)),
    ("leaky_relu(1), the identity", lambda z: A.leaky_relu(z, 1.0), lambda dy, z: A.leaky_relu_backward(dy, z, 1.0),
     init.calculate_gain("linear")),
], ids=["relu", "leaky_relu(0.2)", "identity"])
def test_the_gain_undoes_the_activations_second_moment(name, f, f_backward, gain):
    """For z ~ N(0, 1): E[relu(z)²] = 1/2 and E[leaky(z)²] = (1 + a²)/2, so gain² · E[f(z)²] = 1;
    the derivatives have the same second moment, so the backward pass is preserved as well."""
    z = np.random.default_rng(0).standard_normal(200_000)
    second_moment = float(np.mean(f(z) ** 2))
    assert abs(gain ** 2 * second_moment - 1) < 0.02, \
        f"{name}: gain² · E[f(z)²] should be 1, got {gain ** 2 * second_moment:.4f}"
    grad_moment = float(np.mean(f_backward(np.ones_like(z), z) ** 2))
    assert abs(gain ** 2 * grad_moment - 1) < 0.02, \
        f"{name}: gain² · E[f'(z)²] should be 1 too, got {gain ** 2 * grad_moment:.4f}"
