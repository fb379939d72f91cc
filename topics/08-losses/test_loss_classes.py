"""Topic 08: the loss classes the training loops use — forward(pred, target) -> float caches,
backward() -> dpred."""

import numpy as np
import pytest

from dlfs.nn import losses
from dlfs.testing import assert_close

rng = np.random.default_rng(2)
X = rng.normal(size=(6, 4))
T = rng.normal(size=(6, 4))
P = rng.uniform(0.05, 0.95, size=(6, 4))
B = rng.integers(0, 2, size=(6, 4)).astype(np.float64)
LABELS = rng.integers(0, 4, size=6)
LOG_PROBS = X - np.logaddexp.reduce(X, axis=1, keepdims=True)

CASES = [
    (losses.MSELoss(), losses.mse_loss, (X, T), {}),
    (losses.MSELoss(reduction="sum"), losses.mse_loss, (X, T), {"reduction": "sum"}),
    (losses.L1Loss(), losses.l1_loss, (X, T), {}),
    (losses.HuberLoss(delta=0.5), losses.huber_loss, (X, T), {"delta": 0.5}),
    (losses.BCELoss(), losses.binary_cross_entropy, (P, B), {}),
    (losses.BCEWithLogitsLoss(), losses.binary_cross_entropy_with_logits, (X, B), {}),
    (losses.CrossEntropyLoss(), losses.cross_entropy, (X, LABELS), {}),
    (losses.CrossEntropyLoss(label_smoothing=0.1, ignore_index=2, reduction="sum"), losses.cross_entropy,
     (X, LABELS), {"label_smoothing": 0.1, "ignore_index": 2, "reduction": "sum"}),
    (losses.NLLLoss(ignore_index=1), losses.nll_loss, (LOG_PROBS, LABELS), {"ignore_index": 1}),
]


@pytest.mark.parametrize("crit, fn, args, kwargs", CASES, ids=lambda c: type(c).__name__ if isinstance(c, losses.Loss) else None)
def test_class_matches_function(crit, fn, args, kwargs):
    expected_loss, expected_grad = fn(*args, **kwargs)
    loss = crit.forward(*args)
    assert isinstance(loss, float), f"forward must return a Python float, got {type(loss).__name__}"
    assert loss == pytest.approx(expected_loss, rel=1e-12), f"forward: expected {expected_loss}, got {loss}"
    assert_close(crit.backward(), expected_grad, rtol=1e-12, what=f"{type(crit).__name__}.backward()")


def test_backward_refers_to_the_latest_forward():
    crit = losses.CrossEntropyLoss()
    crit.forward(X, LABELS)
    other = np.random.default_rng(4).normal(size=(3, 4))
    labels = np.array([0, 1, 2])
    crit(other, labels)
    _, expected = losses.cross_entropy(other, labels)
    assert_close(crit.backward(), expected, rtol=1e-12, what="backward() after a second forward")


def test_backward_before_forward_is_an_error():
    with pytest.raises(RuntimeError) as info:
        losses.MSELoss().backward()
    assert not isinstance(info.value, NotImplementedError), "backward() is not written yet"
    assert "forward" in str(info.value), f"the message should say to call forward first: {info.value}"


def test_softmax_regression_trains_with_the_class_api():
    """The loop of Topics 10 and 17: loss = crit.forward(logits, y); dlogits = crit.backward()."""
    data = np.random.default_rng(3)
    centers = np.array([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    y = data.integers(0, 3, size=300)
    x = centers[y] + data.normal(size=(300, 2))
    w, b = np.zeros((2, 3)), np.zeros(3)
    crit = losses.CrossEntropyLoss(label_smoothing=0.05)
    first = crit.forward(x @ w + b, y)
    assert first == pytest.approx(np.log(3)), f"all-zero logits: expected log 3, got {first}"
    for _ in range(100):
        loss = crit.forward(x @ w + b, y)
        dlogits = crit.backward()
        w -= 0.5 * x.T @ dlogits
        b -= 0.5 * dlogits.sum(axis=0)
    acc = ((x @ w + b).argmax(axis=1) == y).mean()
    assert loss < 0.35 and acc > 0.95, f"after 100 steps: loss {loss:.3f}, accuracy {acc:.3f}"
