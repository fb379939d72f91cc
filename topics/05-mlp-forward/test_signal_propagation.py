"""Topic 05: what the initialisation does to a deep network's signal.

Twenty fully connected layers of width 256, zero biases, inputs ~ N(0, 1). We compare the
variance of the activations after layer 20 with the variance after layer 1.

* Kaiming (He) init for ReLU and Xavier init with tanh's gain 5/3 keep it within 2× either way.
* A fixed std that ignores the width collapses it (std 0.01: ×0.0128 per layer) or blows it
  up (std 1: ×128 per layer); forgetting ReLU's gain of sqrt(2) halves it at every layer.

A single finite-width ReLU network drifts noticeably (the log of the variance ratio after 20
layers of width 256 has a spread of about 0.45 from one draw of the weights to the next), so
the ReLU check averages the log-ratio over 8 independent networks; its spread is then
about 0.16, and the 0.5–2× window is more than 4 such spreads wide.
"""

import math

import numpy as np
import pytest

from dlfs.nn import forward, init

DEPTH, WIDTH, BATCH = 20, 256, 256


def relu(z):
    return np.maximum(z, 0)


def _variances(acts):
    return np.array([a.astype(np.float64).var() for a in acts])


def _run(make_weight, activation, rng, batch=BATCH):
    x = rng.standard_normal((batch, WIDTH)).astype(np.float32)
    weights = [make_weight((WIDTH, WIDTH), rng) for _ in range(DEPTH)]
    out, acts = forward.mlp_forward(x, weights, None, activation, final_activation=True)
    assert len(acts) == DEPTH, f"expected {DEPTH} activations, got {len(acts)}"
    return _variances(acts), acts


def test_kaiming_keeps_the_relu_signal_alive():
    rng = np.random.default_rng(2024)
    log_ratios = []
    for _ in range(8):
        var, _ = _run(lambda s, r: init.kaiming_normal(s, rng=r), relu, rng)
        log_ratios.append(np.log(var / var[0]))
    per_layer = np.exp(np.mean(log_ratios, axis=0))      # geometric mean over the 8 networks
    assert 0.5 <= per_layer[-1] <= 2.0, \
        f"with Kaiming init, var(layer 20) / var(layer 1) should stay within 0.5–2 for ReLU; got {per_layer[-1]:.3g}"
    assert per_layer.min() >= 0.5 and per_layer.max() <= 2.0, \
        f"with Kaiming init every layer's variance should stay within 0.5–2× of layer 1's; got {np.round(per_layer, 3)}"


@pytest.mark.parametrize("initialiser", ["xavier_normal", "xavier_uniform"])
def test_xavier_with_the_tanh_gain_keeps_the_tanh_signal_alive(initialiser):
    gain = init.calculate_gain("tanh")
    var, _ = _run(lambda s, r: getattr(init, initialiser)(s, gain=gain, rng=r), np.tanh,
                  np.random.default_rng(5))
    ratio = var[-1] / var[0]
    assert 0.5 <= ratio <= 2.0, \
        f"{initialiser}(gain=5/3) with tanh: var(layer 20) / var(layer 1) should be within 0.5–2; got {ratio:.3g}"


def test_xavier_with_gain_1_lets_tanh_fade_slowly():
    # tanh squashes, so gain 1 loses a little variance per layer: a slow (power-law) decay,
    # not the exponential collapse of a badly scaled init
    var, _ = _run(lambda s, r: init.xavier_normal(s, rng=r), np.tanh, np.random.default_rng(6))
    ratio = var[-1] / var[0]
    assert 1e-3 < ratio < 0.2, \
        f"xavier_normal (gain 1) with tanh: var(layer 20) / var(layer 1) should be between 1e-3 and 0.2; got {ratio:.3g}"


WRONG_INITS = [
    # (what, activation, weight std, "collapse" or "explode")
    ("relu, std 0.01", relu, lambda fan_in: 0.01, "collapse"),
    ("relu, std 1", relu, lambda fan_in: 1.0, "explode"),
    ("relu, LeCun std 1/sqrt(fan_in) (no ReLU gain)", relu, lambda fan_in: 1 / math.sqrt(fan_in), "collapse"),
    ("tanh, std 0.01", np.tanh, lambda fan_in: 0.01, "collapse"),
]


@pytest.mark.parametrize("what, activation, std, fate", WRONG_INITS, ids=[w[0] for w in WRONG_INITS])
def test_a_wrong_scale_collapses_or_explodes(what, activation, std, fate):
    rng = np.random.default_rng(11)
    var, _ = _run(lambda s, r: (r.standard_normal(s) * std(s[0])).astype(np.float32), activation, rng)
    ratio = var[-1] / var[0]
    if fate == "collapse":
        assert ratio < 1e-3, f"{what}: the signal should collapse (ratio < 1e-3) after {DEPTH} layers; got {ratio:.3g}"
    else:
        assert ratio > 1e3, f"{what}: the signal should explode (ratio > 1e3) after {DEPTH} layers; got {ratio:.3g}"


def test_tanh_saturates_with_std_1():
    rng = np.random.default_rng(12)
    _, acts = _run(lambda s, r: r.standard_normal(s).astype(np.float32), np.tanh, rng)
    saturated = float(np.mean(np.abs(acts[-1]) > 0.99))
    assert saturated > 0.8, \
        f"tanh with std-1 weights: most units should sit at ±1 (|h| > 0.99); only {saturated:.1%} do"
