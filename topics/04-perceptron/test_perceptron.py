"""Topic 04: Rosenblatt's perceptron, checked against an update sequence worked out by hand,
the perceptron convergence theorem, and its invariances."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.nn.perceptron import Perceptron
from dlfs.testing import assert_close

# ---------------------------------------------------------------------------------------
# A hand-worked run (lr = 1, start from w = (0, 0), b = 0; a point is a mistake when
# y · (x · w + b) <= 0, and each update is w += y x, b += y).
#
#  epoch 1  x=( 1, 1) y=-1  s= 0 -> mistake  w=(-1,-1) b=-1
#           x=( 2, 0) y=-1  s=-3    ok
#           x=(-3,-1) y=-1  s= 3 -> mistake  w=( 2, 0) b=-2
#           x=( 2,-1) y=+1  s= 2    ok                        2 mistakes
#  epoch 2  x=( 1, 1) y=-1  s= 0 -> mistake  w=( 1,-1) b=-3
#           x=( 2, 0) y=-1  s=-1    ok
#           x=(-3,-1) y=-1  s=-5    ok
#           x=( 2,-1) y=+1  s= 0 -> mistake  w=( 3,-2) b=-2   2 mistakes
#  epoch 3  x=( 1, 1) y=-1  s=-1    ok
#           x=( 2, 0) y=-1  s= 4 -> mistake  w=( 1,-2) b=-3
#           x=(-3,-1) y=-1  s=-4    ok
#           x=( 2,-1) y=+1  s= 1    ok                        1 mistake
#  epoch 4  scores -4, -1, -4, 1: no mistakes -> converged after 5 updates
# ---------------------------------------------------------------------------------------
X_HAND = np.array([[1.0, 1.0], [2.0, 0.0], [-3.0, -1.0], [2.0, -1.0]])
Y_HAND = np.array([-1, -1, -1, 1])
EPOCHS_HAND = [  # (mistakes, w, b) after each pass
    (2, [2.0, 0.0], -2.0),
    (2, [3.0, -2.0], -2.0),
    (1, [1.0, -2.0], -3.0),
    (0, [1.0, -2.0], -3.0),
]


def test_hand_worked_updates_epoch_by_epoch():
    p = Perceptron()
    p.init_params(2, np.float64)
    total = 0
    for k, (mistakes, w, b) in enumerate(EPOCHS_HAND, start=1):
        got = p.epoch(X_HAND, Y_HAND)
        total += mistakes
        assert got == mistakes, f"epoch {k}: expected {mistakes} mistakes, got {got}"
        assert_close(p.w, np.array(w), what=f"w after epoch {k}")
        assert float(p.b) == b, f"b after epoch {k}: expected {b}, got {p.b}"
        assert p.n_updates_ == total, f"n_updates_ after epoch {k}: expected {total}, got {p.n_updates_}"


@pytest.mark.parametrize("labels", ["-1/+1", "0/1"])
def test_fit_hand_worked(labels):
    y = Y_HAND if labels == "-1/+1" else (Y_HAND > 0).astype(int)
    p = Perceptron(max_epochs=50)
    for _ in range(2):                       # fit starts from zero every time
        p.fit(X_HAND, y)
        assert p.mistakes_per_epoch_ == [2, 2, 1, 0], \
            f"mistakes per epoch: expected [2, 2, 1, 0], got {p.mistakes_per_epoch_}"
        assert p.converged_, "fit should report converged_ = True"
        assert p.n_updates_ == 5, f"expected 5 updates in total, got {p.n_updates_}"
        assert_close(p.w, np.array([1.0, -2.0]), what="w after fit")
        assert float(p.b) == -3.0, f"b after fit: expected -3.0, got {p.b}"
    assert_close(p.predict(X_HAND), Y_HAND, what="predict on the training points (labels -1/+1)")


def test_decision_function_and_predict():
    p = Perceptron()
    p.w, p.b = np.array([1.0, -2.0]), np.float64(0.5)
    X = np.array([[0.0, 0.0], [1.0, 1.0], [-0.5, 0.0], [3.0, 1.0], [0.5, 0.5]])
    assert_close(p.decision_function(X), np.array([0.5, -0.5, 0.0, 1.5, 0.0]), what="decision_function")
    # a score of exactly 0 is not > 0: label -1
    assert_close(p.predict(X), np.array([1, -1, -1, 1, -1]), what="predict (+1 only where the score is > 0)")


def separable_data(seed, n=40, d=2, margin=0.1):
    """Points in [-1, 1]^d at distance >= margin from a random hyperplane (in the augmented
    space of (x, 1)). Returns X, y in {-1, +1}, R = max ||(x, 1)||, gamma = the separator's margin."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d)
    X = rng.uniform(-1, 1, size=(50 * n, d))
    b = -np.median(X @ w)                        # both classes present
    u = np.append(w, b) / np.linalg.norm(np.append(w, b))
    s = X @ u[:-1] + u[-1]
    keep = np.abs(s) >= margin
    X, s = X[keep][:n], s[keep][:n]
    y = np.where(s > 0, 1, -1)
    R = np.linalg.norm(np.column_stack([X, np.ones(len(X))]), axis=1).max()
    gamma = np.abs(s).min()
    return X, y, R, gamma


@settings(deadline=None, max_examples=20)
@given(seed=st.integers(0, 10_000), d=st.sampled_from([2, 3, 5]))
def test_converges_on_separable_data_within_the_bound(seed, d):
    X, y, R, gamma = separable_data(seed, d=d)
    bound = (R / gamma) ** 2
    p = Perceptron(max_epochs=int(bound) + 2).fit(X, y)
    assert p.converged_, f"the perceptron must converge on separable data (mistakes: {p.mistakes_per_epoch_[-5:]})"
    assert p.mistakes_per_epoch_[-1] == 0, "the last pass of a converged fit makes no mistakes"
    assert np.array_equal(p.predict(X), y), "after convergence every training point is classified correctly"
    assert sum(p.mistakes_per_epoch_) == p.n_updates_, \
        f"n_updates_ ({p.n_updates_}) should equal the sum of mistakes_per_epoch_ ({sum(p.mistakes_per_epoch_)})"
    assert 1 <= p.n_updates_ <= bound, \
        f"the convergence theorem allows at most (R/γ)² = {bound:.1f} updates; got {p.n_updates_}"


def test_learning_rate_only_rescales_the_weights():
    X, y, _, _ = separable_data(7, d=3)
    a = Perceptron(lr=1.0, max_epochs=500).fit(X, y)
    b = Perceptron(lr=0.25, max_epochs=500).fit(X, y)
    assert a.mistakes_per_epoch_ == b.mistakes_per_epoch_, \
        "starting from zero, the learning rate must not change which points are mistakes"
    assert_close(b.w, 0.25 * a.w, rtol=1e-12, what="w with lr=0.25 (should be 0.25 × w with lr=1)")
    assert_close(np.float64(b.b), 0.25 * np.float64(a.b), rtol=1e-12, what="b with lr=0.25")


def test_xor_is_not_linearly_separable():
    X = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    y = np.array([-1, -1, 1, 1])
    p = Perceptron(max_epochs=25).fit(X, y)
    assert not p.converged_, "XOR is not linearly separable: fit must not report convergence"
    assert len(p.mistakes_per_epoch_) == 25, \
        f"fit should stop after max_epochs=25 passes, ran {len(p.mistakes_per_epoch_)}"
    assert min(p.mistakes_per_epoch_) >= 1, "every pass over XOR makes at least one mistake"
    assert np.mean(p.predict(X) == y) <= 0.75, "no line classifies all four XOR points"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_keeps_the_float_dtype(dtype):
    X, y, _, _ = separable_data(3)
    p = Perceptron(max_epochs=500).fit(X.astype(dtype), y)
    assert p.w.dtype == dtype, f"fit on {np.dtype(dtype).name} X should give {np.dtype(dtype).name} w, got {p.w.dtype}"
    assert p.decision_function(X.astype(dtype)).dtype == dtype, "decision_function should keep the dtype"
    assert np.array_equal(p.predict(X), y), "the fitted perceptron should classify its training points"
