"""Topic 08: every analytic gradient against central finite differences (float64,
relative error < 1e-6). MAE and Huber are checked away from their kinks."""

import numpy as np
import pytest

from dlfs.nn import losses
from dlfs.testing import check_gradients

def grad_check(fn, x, *args, **kwargs):
    loss, grad = fn(x, *args, **kwargs)
    # h = 1e-5: the loss is a sum of O(1) terms, so round-off in the difference quotient
    # (≈ 1e-16 · |loss| / h) stays far below the smallest gradient entries
    check_gradients(lambda: np.asarray(fn(x, *args, **kwargs)[0]), {"pred": x}, {"pred": grad}, h=1e-5)


def away_from(rng, target, kinks, size, margin=0.05):
    """Predictions whose difference to ``target`` stays ``margin`` away from each kink."""
    while True:
        pred = target + rng.normal(scale=2.0, size=size)
        d = pred - target
        if all(np.abs(np.abs(d) - k).min() > margin for k in kinks):
            return pred


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse_gradient(reduction):
    rng = np.random.default_rng(10)
    target = rng.normal(size=(5, 3))
    grad_check(losses.mse_loss, rng.normal(size=(5, 3)), target, reduction=reduction)


def test_l1_gradient():
    rng = np.random.default_rng(11)
    target = rng.normal(size=(5, 3))
    grad_check(losses.l1_loss, away_from(rng, target, [0.0], (5, 3)), target)


@pytest.mark.parametrize("delta", [0.5, 1.5])
def test_huber_gradient(delta):
    rng = np.random.default_rng(12)
    target = rng.normal(size=(6, 4))
    pred = away_from(rng, target, [0.0, delta], (6, 4))
    assert (np.abs(pred - target) < delta).any() and (np.abs(pred - target) > delta).any()
    grad_check(losses.huber_loss, pred, target, delta=delta)


def test_binary_cross_entropy_gradient():
    rng = np.random.default_rng(13)
    grad_check(losses.binary_cross_entropy, rng.uniform(0.05, 0.95, size=(4, 5)), rng.uniform(size=(4, 5)))


def test_binary_cross_entropy_with_logits_gradient():
    rng = np.random.default_rng(14)
    grad_check(losses.binary_cross_entropy_with_logits, rng.normal(scale=3.0, size=(4, 5)),
               rng.integers(0, 2, size=(4, 5)).astype(np.float64))


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_gradient_labels(label_smoothing, reduction):
    rng = np.random.default_rng(15)
    grad_check(losses.cross_entropy, rng.normal(scale=2.0, size=(6, 4)), rng.integers(0, 4, size=6),
               label_smoothing=label_smoothing, reduction=reduction)


def test_cross_entropy_gradient_with_ignored_samples():
    rng = np.random.default_rng(16)
    labels = np.array([0, 3, -1, 2, -1, 1])
    logits = rng.normal(size=(6, 4))
    loss, grad = losses.cross_entropy(logits, labels, label_smoothing=0.05, ignore_index=-1)
    assert np.all(grad[labels == -1] == 0), "ignored samples must get exactly zero gradient"
    grad_check(losses.cross_entropy, logits, labels, label_smoothing=0.05, ignore_index=-1)


def test_cross_entropy_gradient_probability_targets():
    rng = np.random.default_rng(17)
    grad_check(losses.cross_entropy, rng.normal(size=(5, 3)), rng.dirichlet(np.ones(3), size=5),
               label_smoothing=0.2)


def test_cross_entropy_gradient_sequence_shape():
    rng = np.random.default_rng(18)
    """(B, T, V) logits with (B, T) labels, as a language model produces them."""
    grad_check(losses.cross_entropy, rng.normal(size=(2, 3, 5)), rng.integers(0, 5, size=(2, 3)))


def test_nll_gradient():
    rng = np.random.default_rng(19)
    logits = rng.normal(size=(5, 4))
    log_probs = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    grad_check(losses.nll_loss, log_probs, np.array([0, 3, 1, 1, 2]), ignore_index=1)
