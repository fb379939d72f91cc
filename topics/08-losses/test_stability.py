"""Topic 08: extreme inputs (no nan, no inf, no RuntimeWarning, exact values), dtypes, and
the batch sizes of the training loops."""

import time

import numpy as np
import pytest

from dlfs.nn import losses
from dlfs.testing import assert_close

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")   # overflow / log(0) warnings fail

EXTREME = np.array([[1e4, -1e4, 0.0],
                    [-1e4, -1e4, 1e4],
                    [1e4, 1e4 - 2.0, -1e4],
                    [-1e4, 3.0, -1e4]])
LABELS = np.array([1, 2, 1, 0])


def log_softmax_reference(x):
    """float64, shifted by the row max: (x - m) - log Σ exp(x - m)."""
    z = np.asarray(x, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def ce_reference(x, labels, eps=0.0):
    """Per-sample cross-entropy in float64 log space."""
    lp = log_softmax_reference(x)
    c = x.shape[1]
    return -(1 - eps) * lp[np.arange(len(labels)), labels] - eps / c * lp.sum(axis=1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_cross_entropy_at_extreme_logits(dtype, eps):
    x = EXTREME.astype(dtype)
    loss, grad = losses.cross_entropy(x, LABELS, label_smoothing=eps)
    expected = ce_reference(EXTREME, LABELS, eps)             # e.g. row 0: exactly 20000
    assert np.isfinite(loss) and np.all(np.isfinite(grad)), f"loss {loss}, gradient {grad}"
    assert loss == pytest.approx(expected.mean(), rel=1e-6), f"expected {expected.mean()!r}, got {loss!r}"
    p = np.exp(log_softmax_reference(EXTREME))
    q = (1 - eps) * np.eye(3)[LABELS] + eps / 3
    # log_softmax shifts by the max first, so float32 keeps full relative precision here
    tol = dict(rtol=1e-10, atol=1e-15) if dtype == np.float64 else dict(rtol=1e-6, atol=1e-7)
    assert_close(grad, (p - q) / 4, **tol, what="dlogits at extreme logits")
    assert grad.dtype == dtype, f"dlogits dtype: expected {np.dtype(dtype)}, got {grad.dtype}"


def test_cross_entropy_probability_targets_at_extreme_logits():
    soft = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0], [0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    loss, grad = losses.cross_entropy(EXTREME, soft)
    expected = -(soft * log_softmax_reference(EXTREME)).sum(axis=1).mean()
    assert loss == pytest.approx(expected, rel=1e-12), f"expected {expected!r}, got {loss!r}"
    assert np.all(np.isfinite(grad))


def test_nll_on_extreme_log_probabilities():
    lp = log_softmax_reference(EXTREME)          # contains -20000: still finite
    loss, grad = losses.nll_loss(lp, LABELS)
    assert loss == pytest.approx(ce_reference(EXTREME, LABELS).mean(), rel=1e-12)
    assert_close(grad, -np.eye(3)[LABELS] / 4, rtol=0, atol=0, what="NLL gradient")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bce_with_logits_at_extreme_logits(dtype):
    x = np.array([1e4, -1e4, 1e4, -1e4, 0.0, 50.0], dtype=dtype)
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.0], dtype=dtype)
    loss, grad = losses.binary_cross_entropy_with_logits(x, y, reduction="sum")
    # -log σ(x) for y = 1 and -log(1 - σ(x)) for y = 0, written with logaddexp in float64
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    expected = np.sum(y64 * np.logaddexp(0, -x64) + (1 - y64) * np.logaddexp(0, x64))
    assert loss == pytest.approx(expected, rel=1e-6), f"expected {expected!r}, got {loss!r}"
    assert_close(grad, [1.0, -1.0, 0.0, 0.0, -0.5, 1.0], atol=1e-7, what="dlogits = sigmoid(x) - y")
    assert grad.dtype == dtype


def test_bce_on_probabilities_zero_and_one_is_clamped_like_torch():
    p = np.array([0.0, 1.0, 0.0, 1.0, 0.5])
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0])
    loss, grad = losses.binary_cross_entropy(p, y, reduction="sum")
    # log(0) is clamped to -100: a wrong certain prediction costs 100, a right one 0
    assert loss == pytest.approx(200.0 + np.log(2.0), rel=1e-12), f"expected 200 + log 2, got {loss!r}"
    assert np.all(np.isfinite(grad)), f"gradient must be finite, got {grad}"
    assert_close(grad, [-1e12, 1e12, 0.0, 0.0, -2.0], rtol=1e-12, what="(p - y) / max(p (1 - p), 1e-12)")


@pytest.mark.parametrize("fn", [losses.mse_loss, losses.l1_loss, losses.huber_loss,
                                losses.binary_cross_entropy_with_logits])
def test_float32_predictions_give_float32_gradients(fn):
    x = np.random.default_rng(2).uniform(0.1, 0.9, size=(8, 3)).astype(np.float32)
    t = np.random.default_rng(3).uniform(0.0, 1.0, size=(8, 3))            # float64 target
    loss, grad = fn(x, t)
    ref_loss, ref_grad = fn(x.astype(np.float64), t)
    assert grad.dtype == np.float32, f"{fn.__name__}: expected float32 gradient, got {grad.dtype}"
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    assert_close(grad, ref_grad, rtol=1e-5, atol=1e-7, what=f"{fn.__name__} float32 gradient")


def test_cross_entropy_on_a_language_model_batch_is_fast_and_exact():
    """(128·T, V) logits in float32, as a character-level model's training step produces."""
    rng = np.random.default_rng(4)
    n, v = 128 * 32, 512
    logits = rng.normal(scale=4.0, size=(n, v)).astype(np.float32)
    labels = rng.integers(0, v, size=n)
    losses.cross_entropy(logits[:8], labels[:8])          # warm-up
    start = time.perf_counter()
    loss, grad = losses.cross_entropy(logits, labels, label_smoothing=0.1)
    elapsed = time.perf_counter() - start
    expected = ce_reference(logits, labels, 0.1).mean()
    assert loss == pytest.approx(expected, rel=1e-5), f"expected {expected!r}, got {loss!r}"
    assert grad.dtype == np.float32 and grad.shape == (n, v)
    assert_close(grad.sum(axis=1), np.zeros(n), atol=1e-6, what="row sums of dlogits (p - q sums to 0)")
    assert elapsed < 2.0, (f"cross_entropy on ({n}, {v}) took {elapsed:.2f} s: vectorise it "
                           "(no Python loop over samples, no (N, C) one-hot for labels)")


def test_cross_entropy_mnist_batch_matches_reference():
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(128, 10)).astype(np.float32)
    labels = rng.integers(0, 10, size=128)
    loss, grad = losses.cross_entropy(logits, labels)
    p = np.exp(log_softmax_reference(logits))
    assert loss == pytest.approx(ce_reference(logits, labels).mean(), rel=1e-5)
    assert_close(grad, (p - np.eye(10)[labels]) / 128, rtol=1e-4, atol=1e-7, what="dlogits (128, 10)")
