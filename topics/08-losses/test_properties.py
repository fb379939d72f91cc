"""Topic 08: properties that hold for every input (hypothesis)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dlfs.nn import losses
from dlfs.testing import assert_close

finite = st.floats(-30, 30, allow_nan=False, width=64)


@st.composite
def logits_and_labels(draw, max_n=8, max_c=6):
    n = draw(st.integers(1, max_n))
    c = draw(st.integers(2, max_c))
    logits = draw(arrays(np.float64, (n, c), elements=finite))
    labels = draw(arrays(np.int64, (n,), elements=st.integers(0, c - 1)))
    return logits, labels


smoothing = st.sampled_from([0.0, 0.05, 0.3, 1.0])


@settings(deadline=None, max_examples=30)
@given(logits_and_labels(), smoothing)
def test_cross_entropy_is_nonnegative_and_gradient_rows_sum_to_zero(case, eps):
    logits, labels = case
    loss, grad = losses.cross_entropy(logits, labels, label_smoothing=eps)
    assert loss >= 0.0, f"cross-entropy must be >= 0, got {loss}"
    assert_close(grad.sum(axis=1), np.zeros(len(labels)), atol=1e-12,
                 what="row sums of dlogits (softmax and target both sum to 1)")


@settings(deadline=None, max_examples=30)
@given(logits_and_labels(), smoothing)
def test_one_hot_probability_targets_equal_integer_labels(case, eps):
    logits, labels = case
    c = logits.shape[1]
    l1, g1 = losses.cross_entropy(logits, labels, label_smoothing=eps)
    l2, g2 = losses.cross_entropy(logits, np.eye(c)[labels], label_smoothing=eps)
    assert l1 == pytest.approx(l2, rel=1e-12, abs=1e-12), f"labels give {l1}, one-hot targets give {l2}"
    assert_close(g1, g2, rtol=1e-10, atol=1e-14, what="dlogits: labels vs one-hot targets")


@settings(deadline=None, max_examples=30)
@given(logits_and_labels(), st.floats(-1e3, 1e3, allow_nan=False))
def test_cross_entropy_is_shift_invariant(case, shift):
    logits, labels = case
    l1, g1 = losses.cross_entropy(logits, labels)
    l2, g2 = losses.cross_entropy(logits + shift, labels)
    assert l1 == pytest.approx(l2, rel=1e-9, abs=1e-9), "adding a constant to every logit must not change the loss"
    assert_close(g1, g2, rtol=1e-6, atol=1e-10, what="dlogits after shifting the logits")


@settings(deadline=None, max_examples=30)
@given(logits_and_labels())
def test_cross_entropy_is_nll_of_log_softmax(case):
    logits, labels = case
    log_probs = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    ce, _ = losses.cross_entropy(logits, labels)
    nll, _ = losses.nll_loss(log_probs, labels)
    assert ce == pytest.approx(nll, rel=1e-12, abs=1e-12)


@settings(deadline=None, max_examples=30)
@given(logits_and_labels())
def test_ignored_samples_do_not_count(case):
    """Ignoring some samples = computing the loss on the others only."""
    logits, labels = case
    keep = np.arange(len(labels)) % 2 == 0
    masked = np.where(keep, labels, -100)
    l1, g1 = losses.cross_entropy(logits, masked, ignore_index=-100)
    l2, g2 = losses.cross_entropy(logits[keep], labels[keep])
    assert l1 == pytest.approx(l2, rel=1e-12, abs=1e-12)
    assert_close(g1[keep], g2, rtol=1e-12, atol=1e-15, what="dlogits of the kept samples")
    assert_close(g1[~keep], np.zeros_like(g1[~keep]), atol=0, what="dlogits of the ignored samples")


@settings(deadline=None, max_examples=30)
@given(arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 4)), elements=st.floats(-20, 20)),
       st.data())
def test_bce_with_logits_equals_bce_of_sigmoid(x, data):
    y = data.draw(arrays(np.float64, x.shape, elements=st.floats(0, 1)))
    l1, g1 = losses.binary_cross_entropy_with_logits(x, y)
    p = 1 / (1 + np.exp(-x))
    l2, _ = losses.binary_cross_entropy(p, y)
    assert l1 == pytest.approx(l2, rel=1e-7, abs=1e-9)
    assert_close(g1, (p - y) / x.size, rtol=1e-9, atol=1e-15, what="dlogits = (sigmoid(x) - y) / n")


@settings(deadline=None, max_examples=30)
@given(arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 4)), elements=finite), st.data())
def test_regression_losses_relations(pred, data):
    target = data.draw(arrays(np.float64, pred.shape, elements=finite))
    mse, gm = losses.mse_loss(pred, target)
    mse_sum, gms = losses.mse_loss(pred, target, reduction="sum")
    assert mse_sum == pytest.approx(pred.size * mse, rel=1e-12, abs=1e-12)
    assert_close(gms, pred.size * gm, rtol=1e-12, atol=1e-15, what="sum-reduction gradient = n × mean-reduction gradient")
    big = 1e3          # |d| <= 60 < delta: Huber is d²/2 everywhere
    hub, gh = losses.huber_loss(pred, target, delta=big)
    assert hub == pytest.approx(0.5 * mse, rel=1e-12, abs=1e-12)
    assert_close(gh, 0.5 * gm, rtol=1e-12, atol=1e-15, what="Huber gradient with a huge delta")
    mae, _ = losses.l1_loss(pred, target)
    assert mae == pytest.approx(np.abs(pred - target).mean(), rel=1e-12, abs=1e-12)
    assert mae <= np.sqrt(mse) + 1e-12, "mean |d| <= sqrt(mean d²)"
