"""Topic 04: the logistic unit — binary cross-entropy, its gradient (finite differences and
torch's BCE-with-logits), numerical stability, and full-batch gradient descent."""

import math

import numpy as np
import pytest

from dlfs.nn.perceptron import LogisticUnit
from dlfs.testing import assert_close, check_gradients
from torch_oracle import to_numpy, to_torch, torch_or_skip


def reference_loss_and_grad(X, y, w, b):
    """The textbook formulas, written independently of the code under test."""
    z = X @ w + b
    p = 1.0 / (1.0 + np.exp(-z))
    loss = np.mean(-y * np.log(p) - (1 - y) * np.log(1 - p))
    dz = (p - y) / len(y)
    return loss, X.T @ dz, dz.sum()


def random_problem(seed, n=12, d=4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (rng.random(n) < 0.5).astype(float)
    return X, y, rng.normal(size=d), rng.normal()


def unit_at(w, b):
    u = LogisticUnit()
    u.w, u.b = w, b
    return u


def test_loss_and_grad_at_zero_weights_hand_worked():
    # w = 0, b = 0: every p = 1/2, the loss is ln 2, and dL/dz = (1/2 - y) / 4
    X = np.array([[1.0, 2.0], [3.0, -1.0], [0.0, 1.0], [-2.0, 0.0]])
    y = np.array([1, 0, 1, 1])
    # dz = [-1/8, 1/8, -1/8, -1/8]
    # dw = X.T @ dz = [-1/8 + 3/8 + 0 + 2/8, -2/8 - 1/8 - 1/8 + 0] = [1/2, -1/2];  db = -1/4
    loss, dw, db = unit_at(np.zeros(2), np.float64(0.0)).loss_and_grad(X, y)
    assert loss == pytest.approx(math.log(2), rel=1e-12), f"loss at w = 0: expected ln 2 = {math.log(2)}, got {loss}"
    assert_close(dw, np.array([0.5, -0.5]), what="dw at w = 0")
    assert float(db) == pytest.approx(-0.25, rel=1e-12), f"db at w = 0: expected -0.25, got {db}"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_and_grad_match_the_formulas(seed):
    X, y, w, b = random_problem(seed)
    loss, dw, db = unit_at(w, np.float64(b)).loss_and_grad(X, y)
    exp_loss, exp_dw, exp_db = reference_loss_and_grad(X, y, w, b)
    assert loss == pytest.approx(exp_loss, rel=1e-10), f"loss: expected {exp_loss}, got {loss}"
    assert_close(dw, exp_dw, rtol=1e-10, atol=1e-14, what="dw")
    assert float(db) == pytest.approx(exp_db, rel=1e-10, abs=1e-14), f"db: expected {exp_db}, got {db}"


@pytest.mark.parametrize("seed", [3, 4])
def test_gradients_match_finite_differences(seed):
    X, y, w, b0 = random_problem(seed, n=9, d=3)
    b = np.array([b0])
    unit = unit_at(w, b[0])

    def loss():
        unit.w, unit.b = w, b[0]          # read the (perturbed) arrays on every call
        return np.array(unit.loss_and_grad(X, y)[0])

    _, dw, db = unit.loss_and_grad(X, y)
    errors = check_gradients(loss, {"w": w, "b": b}, {"w": np.asarray(dw), "b": np.array([float(db)])})
    assert max(errors.values()) < 1e-6, f"relative errors {errors}"


def test_matches_torch_bce_with_logits():
    torch = torch_or_skip()
    X, y, w, b = random_problem(5, n=20, d=6)
    tw, tb = to_torch(w, requires_grad=True), torch.tensor(b, requires_grad=True)
    tloss = torch.nn.functional.binary_cross_entropy_with_logits(to_torch(X) @ tw + tb, to_torch(y))
    tloss.backward()
    loss, dw, db = unit_at(w, np.float64(b)).loss_and_grad(X, y)
    assert loss == pytest.approx(tloss.item(), rel=1e-10), f"loss: torch gives {tloss.item()}, got {loss}"
    assert_close(dw, to_numpy(tw.grad), rtol=1e-10, atol=1e-14, what="dw vs torch")
    assert float(db) == pytest.approx(tb.grad.item(), rel=1e-10), f"db: torch gives {tb.grad.item()}, got {db}"


def test_large_logits_do_not_overflow():
    # z = (1000, -1000) with labels (0, 1): both points are confidently wrong.
    # loss = mean(log(1 + e^1000) - 0, log(1 + e^-1000) + 1000) = 1000 (to double precision)
    # dz = (p - y) / 2 = (1/2, -1/2): dw = 1000/2 + 1000/2 = 1000, db = 0
    X = np.array([[1000.0], [-1000.0]])
    y = np.array([0, 1])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss, dw, db = unit_at(np.array([1.0]), np.float64(0.0)).loss_and_grad(X, y)
    assert loss == pytest.approx(1000.0, rel=1e-12), \
        f"loss at logits ±1000: expected 1000, got {loss} (compute it from z, not from log(p))"
    assert_close(dw, np.array([1000.0]), what="dw at logits ±1000")
    assert float(db) == pytest.approx(0.0, abs=1e-12), f"db at logits ±1000: expected 0, got {db}"


def test_predict_proba_and_predict():
    u = unit_at(np.array([2.0, -1.0]), np.float64(-0.5))
    X = np.array([[0.0, 0.0], [1.0, 1.0], [0.25, 0.0], [-1.0, 3.0], [3.0, 0.0]])
    z = np.array([-0.5, 0.5, 0.0, -5.5, 5.5])
    assert_close(u.decision_function(X), z, what="decision_function (logits)")
    assert_close(u.predict_proba(X), 1 / (1 + np.exp(-z)), rtol=1e-12, what="predict_proba")
    assert_close(u.predict(X), np.array([0, 1, 0, 0, 1]), what="predict (1 where p > 0.5)")


def test_fit_takes_exact_gradient_steps():
    X, y, _, _ = random_problem(6, n=15, d=3)
    lr, epochs = 0.3, 12
    unit = LogisticUnit(lr=lr, epochs=epochs).fit(X, y)
    w, b, losses = np.zeros(3), 0.0, []
    for _ in range(epochs):
        loss, dw, db = reference_loss_and_grad(X, y, w, b)
        losses.append(loss)
        w, b = w - lr * dw, b - lr * db
    assert len(unit.loss_history_) == epochs, f"expected {epochs} recorded losses, got {len(unit.loss_history_)}"
    assert unit.loss_history_[0] == pytest.approx(math.log(2), rel=1e-12), \
        "the first recorded loss is the loss at w = 0, b = 0: ln 2"
    assert_close(np.array(unit.loss_history_), np.array(losses), rtol=1e-10, what="loss_history_")
    assert_close(unit.w, w, rtol=1e-10, atol=1e-14, what=f"w after {epochs} steps of gradient descent")
    assert float(unit.b) == pytest.approx(b, rel=1e-10, abs=1e-14), f"b after {epochs} steps: expected {b}, got {unit.b}"


def test_fit_separates_separable_data():
    rng = np.random.default_rng(7)
    X = np.concatenate([rng.normal(size=(60, 2)) - [2.5, 1.0], rng.normal(size=(60, 2)) + [2.5, 1.0]])
    y = np.repeat([0, 1], 60)
    assert np.all((X @ np.array([2.5, 1.0]) > 0) == (y == 1)), "test data must be separable"
    unit = LogisticUnit(lr=0.5, epochs=300).fit(X, y)
    acc = np.mean(unit.predict(X) == y)
    assert acc == 1.0, f"training accuracy on a separable set should be 100%, got {acc:.1%}"
    losses = np.array(unit.loss_history_)
    assert np.all(np.diff(losses) <= 1e-12), "with a small enough step, every gradient step must lower the loss"
    assert losses[-1] < 0.05, f"the loss should approach 0 on separable data; got {losses[-1]:.4f}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_keeps_the_float_dtype(dtype):
    X, y, _, _ = random_problem(8)
    unit = LogisticUnit(lr=0.1, epochs=3).fit(X.astype(dtype), y)
    assert unit.w.dtype == dtype, f"fit on {np.dtype(dtype).name} X should give {np.dtype(dtype).name} w, got {unit.w.dtype}"
    _, dw, _ = unit.loss_and_grad(X.astype(dtype), y)
    assert np.asarray(dw).dtype == dtype, f"dw should be {np.dtype(dtype).name}, got {np.asarray(dw).dtype}"
    expected = reference_loss_and_grad(X, y, np.zeros(X.shape[1]), 0.0)[0]
    assert unit.loss_history_[0] == pytest.approx(expected, rel=1e-6), "first loss (at w = 0) should be ln 2"
