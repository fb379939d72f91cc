"""Topic 04 — Single layer perceptron: Rosenblatt's mistake-driven rule and the logistic unit.

Both models score a point with one linear function, ``s = x · w + b``, and differ in how they
learn ``w`` and ``b``:

* :class:`Perceptron` (Rosenblatt, 1958) visits the points one at a time and changes the
  weights only when it gets a point wrong: ``w += lr · y · x``, ``b += lr · y``. Labels are
  ``-1`` / ``+1``. On linearly separable data it stops after at most ``(R / γ)²`` updates.
* :class:`LogisticUnit` turns the score into a probability ``p = sigmoid(s)``, measures the
  binary cross-entropy between ``p`` and labels in ``{0, 1}``, and follows its gradient with
  full-batch gradient descent: ``dL/ds = (p - y) / N``.

Shapes: ``X: (N, D)`` (N points with D features), ``y: (N,)``, ``w: (D,)``, ``b`` a scalar.
Parameters take the floating dtype of ``X`` (float64 stays float64; anything else becomes
float32).
"""

from __future__ import annotations

import numpy as np

from dlfs.nn.activations import sigmoid


# -- helpers (given) --------------------------------------------------------------------------

def _float_array(X) -> np.ndarray:
    """X as a 2-D float array: float32 and float64 are kept, anything else becomes float32."""
    X = np.asarray(X)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float32)
    if X.ndim != 2:
        raise ValueError(f"X must have shape (N, D), got shape {X.shape}")
    return X


def _signed_labels(y, dtype) -> np.ndarray:
    """y in {-1, +1} or {0, 1} -> (N,) array of -1.0 / +1.0 in ``dtype`` (0 becomes -1)."""
    y = np.asarray(y).reshape(-1)
    values = set(np.unique(y).tolist())
    if not (values <= {-1, 1} or values <= {0, 1}):
        raise ValueError(f"perceptron labels must be -1/+1 (or 0/1), got values {sorted(values)}")
    return np.where(y > 0, 1, -1).astype(dtype)


def _binary_labels(y, dtype) -> np.ndarray:
    """y in {0, 1} or {-1, +1} -> (N,) array of 0.0 / 1.0 in ``dtype`` (-1 becomes 0)."""
    y = np.asarray(y).reshape(-1)
    values = set(np.unique(y).tolist())
    if not (values <= {0, 1} or values <= {-1, 1}):
        raise ValueError(f"binary labels must be 0/1 (or -1/+1), got values {sorted(values)}")
    return (y > 0).astype(dtype)


def _check_rows(X: np.ndarray, y: np.ndarray) -> None:
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)} labels")


# -- the perceptron --------------------------------------------------------------------------

class Perceptron:
    """Rosenblatt's perceptron: predict ``+1`` if ``x · w + b > 0`` else ``-1``.

    Labels are ``-1`` / ``+1``; ``fit`` also accepts ``0`` / ``1`` and treats ``0`` as ``-1``.
    ``predict`` always returns ``-1`` / ``+1``.

    lr: step size of an update (with zero initial weights it rescales ``w`` and ``b`` but
        never changes which points are mistakes);
    max_epochs: ``fit`` stops after this many passes even if mistakes remain.

    After ``fit``: ``w (D,)``, ``b`` (scalar), ``n_updates_`` (total number of updates),
    ``mistakes_per_epoch_`` (one count per pass) and ``converged_`` (the last pass made no
    mistakes).
    """

    def __init__(self, lr: float = 1.0, max_epochs: int = 100):
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        self.lr = float(lr)
        self.max_epochs = int(max_epochs)
        self.w: np.ndarray | None = None
        self.b = None
        self.n_updates_ = 0
        self.mistakes_per_epoch_: list[int] = []
        self.converged_ = False

    def init_params(self, n_features: int, dtype=np.float32) -> None:
        """Zero weights ``w: (n_features,)`` and bias ``b`` in ``dtype``; reset the counters."""
        dtype = np.dtype(dtype)
        self.w = np.zeros(n_features, dtype=dtype)
        self.b = dtype.type(0)
        self.n_updates_ = 0
        self.mistakes_per_epoch_ = []
        self.converged_ = False

    def decision_function(self, X) -> np.ndarray:
        """The scores ``s = X @ w + b``. X: (N, D) -> (N,), in the parameters' dtype."""
        X = _float_array(X)
        # BEGIN SOLUTION compute the scores X @ w + b, shape (N,)
        return X @ self.w + self.b
        # END SOLUTION

    def predict(self, X) -> np.ndarray:
        """Labels ``+1`` where the score is > 0, ``-1`` elsewhere. X: (N, D) -> (N,) int."""
        # BEGIN SOLUTION +1 where the score is positive, -1 elsewhere (an integer array)
        return np.where(self.decision_function(X) > 0, 1, -1)
        # END SOLUTION

    def epoch(self, X, y) -> int:
        """One pass over the points in order, updating on every mistake. Returns the number of
        mistakes (= updates) of this pass and adds it to ``n_updates_``.

        X: (N, D); y: (N,) in {-1, +1} (or {0, 1}). A point is a mistake when
        ``y · (x · w + b) <= 0``: a point exactly on the boundary counts as wrong, so the first
        point of the first pass (all weights zero) is always an update.
        Update on a mistake: ``w += lr · y · x`` and ``b += lr · y``, before the next point.
        """
        X = _float_array(X)
        y = _signed_labels(y, X.dtype)
        _check_rows(X, y)
        if self.w is None:
            self.init_params(X.shape[1], X.dtype)
        # TODO: loop over the rows in order; the weights change inside the loop, so each
        #       point must see the updates made by the points before it.
        # BEGIN SOLUTION visit the points in order; on each mistake update w and b; count the mistakes
        mistakes = 0
        for xi, yi in zip(X, y):
            if yi * (xi @ self.w + self.b) <= 0:
                self.w += (self.lr * yi) * xi
                self.b += self.lr * yi
                mistakes += 1
        self.n_updates_ += mistakes
        return mistakes
        # END SOLUTION

    def fit(self, X, y) -> "Perceptron":
        """Start from zero weights and run passes until one makes no mistake (then set
        ``converged_ = True``) or ``max_epochs`` passes are done. Record every pass's mistakes
        in ``mistakes_per_epoch_``. X: (N, D); y: (N,). Returns ``self``.
        """
        X = _float_array(X)
        y = _signed_labels(y, X.dtype)
        _check_rows(X, y)
        self.init_params(X.shape[1], X.dtype)
        # BEGIN SOLUTION call self.epoch until a pass makes no mistake or max_epochs passes are done
        for _ in range(self.max_epochs):
            mistakes = self.epoch(X, y)
            self.mistakes_per_epoch_.append(mistakes)
            if mistakes == 0:
                self.converged_ = True
                break
        return self
        # END SOLUTION


# -- the logistic unit -----------------------------------------------------------------------

class LogisticUnit:
    """One sigmoid neuron trained by full-batch gradient descent on binary cross-entropy.

    ``p(y = 1 | x) = sigmoid(x · w + b)``. Labels are ``0`` / ``1`` (``-1`` / ``+1`` are
    accepted and ``-1`` is treated as ``0``); ``predict`` returns ``0`` / ``1``.

    lr: gradient-descent step size; epochs: number of full-batch steps ``fit`` takes.
    After ``fit``: ``w (D,)``, ``b`` (scalar) and ``loss_history_`` (the loss before each step).
    """

    def __init__(self, lr: float = 0.5, epochs: int = 200):
        self.lr = float(lr)
        self.epochs = int(epochs)
        self.w: np.ndarray | None = None
        self.b = None
        self.loss_history_: list[float] = []

    def init_params(self, n_features: int, dtype=np.float32) -> None:
        """Zero weights ``w: (n_features,)`` and bias ``b`` in ``dtype``."""
        dtype = np.dtype(dtype)
        self.w = np.zeros(n_features, dtype=dtype)
        self.b = dtype.type(0)

    def decision_function(self, X) -> np.ndarray:
        """The logits ``z = X @ w + b``. X: (N, D) -> (N,)."""
        X = _float_array(X)
        # BEGIN SOLUTION compute the logits X @ w + b, shape (N,)
        return X @ self.w + self.b
        # END SOLUTION

    def predict_proba(self, X) -> np.ndarray:
        """``p(y = 1 | x) = sigmoid(z)``. X: (N, D) -> (N,) in (0, 1)."""
        # BEGIN SOLUTION apply sigmoid (imported from dlfs.nn.activations) to the logits
        return sigmoid(self.decision_function(X))
        # END SOLUTION

    def predict(self, X) -> np.ndarray:
        """``1`` where ``p > 0.5`` (equivalently ``z > 0``), else ``0``. X: (N, D) -> (N,) int."""
        # BEGIN SOLUTION 1 where the logit is positive, 0 elsewhere (an integer array)
        return (self.decision_function(X) > 0).astype(np.int64)
        # END SOLUTION

    def loss_and_grad(self, X, y) -> tuple[float, np.ndarray, float]:
        """Mean binary cross-entropy at the current ``w, b`` and its gradient.

        X: (N, D); y: (N,) in {0, 1}. With ``z = X @ w + b`` and ``p = sigmoid(z)``::

            loss = mean(-y log p - (1 - y) log(1 - p))  =  mean(log(1 + e^z) - y z)
            dL/dz = (p - y) / N,   dw = X.T @ dL/dz  (D,),   db = sum(dL/dz)

        Compute the loss from ``z`` (``np.logaddexp(0, z)`` is ``log(1 + e^z)`` without
        overflow), never as ``log(p)``: ``p`` rounds to exactly 0 or 1 for large ``|z|``.
        Returns ``(loss: float, dw: (D,) in w's dtype, db: scalar)``.
        """
        X = _float_array(X)
        y = _binary_labels(y, X.dtype)
        _check_rows(X, y)
        # BEGIN SOLUTION compute the mean BCE from the logits, then dz = (p - y) / N, dw = X.T @ dz, db = sum(dz)
        z = X @ self.w + self.b
        loss = float(np.mean(np.logaddexp(0, z) - y * z))
        dz = (sigmoid(z) - y) / len(y)
        dw = X.T @ dz
        db = dz.sum()
        return loss, dw, db
        # END SOLUTION

    def fit(self, X, y) -> "LogisticUnit":
        """Start from zero weights and take ``epochs`` full-batch gradient steps
        ``w -= lr · dw``, ``b -= lr · db``, appending the loss *before* each step to
        ``loss_history_``. X: (N, D); y: (N,). Returns ``self``.
        """
        X = _float_array(X)
        y = _binary_labels(y, X.dtype)
        _check_rows(X, y)
        self.init_params(X.shape[1], X.dtype)
        self.loss_history_ = []
        # BEGIN SOLUTION repeat `epochs` times: loss_and_grad, record the loss, step w and b against the gradient
        for _ in range(self.epochs):
            loss, dw, db = self.loss_and_grad(X, y)
            self.loss_history_.append(loss)
            self.w -= self.lr * dw
            self.b -= self.lr * db
        return self
        # END SOLUTION
