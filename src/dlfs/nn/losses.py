"""Topic 08 — Loss functions: the number training minimises, and its gradient.

Every loss comes twice:

* a **function** ``loss_fn(pred, target, ...) -> (loss, dpred)`` returning the scalar loss
  (a Python ``float``) and its gradient with respect to ``pred`` (same shape and dtype as
  ``pred``) — the gradient is where backpropagation starts;
* a **class** with the layer-like API the training loops use::

      crit = CrossEntropyLoss(label_smoothing=0.1)
      loss = crit.forward(logits, y)      # float; caches the gradient
      dlogits = crit.backward()           # (N, C), fed to the last layer's backward

``reduction="mean"`` (the default) averages the per-element (or per-sample) losses,
``reduction="sum"`` adds them; the gradient is scaled the same way.

Regression: :func:`mse_loss`, :func:`l1_loss`, :func:`huber_loss`.
Binary classification: :func:`binary_cross_entropy` (on probabilities),
:func:`binary_cross_entropy_with_logits` (on logits, stable).
Multi-class: :func:`cross_entropy` (on logits; integer labels or probability targets,
label smoothing, ``ignore_index``), :func:`nll_loss` (on log-probabilities).

The values follow ``torch.nn.functional`` exactly (same formulas, same clamping).
"""

from __future__ import annotations

import numpy as np

from dlfs.nn.activations import sigmoid
from dlfs.numerics import log_softmax

REDUCTIONS = ("mean", "sum")


# -- helpers you are given ------------------------------------------------------------------

def _as_float(x) -> np.ndarray:
    """``x`` as a floating array: float32/float64 are kept, anything else becomes float32."""
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(np.float32)


def _pair(pred, target) -> tuple[np.ndarray, np.ndarray]:
    """``pred`` as a float array and ``target`` in ``pred``'s dtype, with equal shapes.

    A (N, 1) prediction against a (N,) target would silently broadcast to (N, N): refuse it.
    """
    pred = _as_float(pred)
    target = np.asarray(target, dtype=pred.dtype)
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {pred.shape} and target shape {target.shape} differ "
                         "(reshape one of them; broadcasting here is almost always a bug)")
    return pred, target


def _scale(reduction: str, count: int) -> float:
    """The factor applied to the summed loss: 1/count for "mean", 1 for "sum"."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return 1.0 / max(count, 1) if reduction == "mean" else 1.0


# -- regression -----------------------------------------------------------------------------

def mse_loss(pred, target, reduction: str = "mean") -> tuple[float, np.ndarray]:
    """Mean squared error: L = mean((pred - target)²).

    pred, target: any shape, equal shapes. Returns (loss, dpred) with dpred shaped like pred:
    dL/dpred = 2 (pred - target) / n for "mean" (n = pred.size), 2 (pred - target) for "sum".
    """
    pred, target = _pair(pred, target)
    s = _scale(reduction, pred.size)
    # BEGIN SOLUTION compute the squared-error loss and its gradient 2 * diff * scale
    diff = pred - target
    loss = float(np.sum(diff * diff, dtype=np.float64)) * s
    return loss, (2.0 * s) * diff
    # END SOLUTION


def l1_loss(pred, target, reduction: str = "mean") -> tuple[float, np.ndarray]:
    """Mean absolute error: L = mean(|pred - target|).

    pred, target: any shape, equal shapes. Returns (loss, dpred); the gradient is
    sign(pred - target) scaled like the loss (0 where pred == target, as in PyTorch).
    """
    pred, target = _pair(pred, target)
    s = _scale(reduction, pred.size)
    # BEGIN SOLUTION compute the absolute-error loss and its gradient sign(diff) * scale
    diff = pred - target
    loss = float(np.sum(np.abs(diff), dtype=np.float64)) * s
    return loss, np.sign(diff) * s
    # END SOLUTION


def huber_loss(pred, target, delta: float = 1.0, reduction: str = "mean") -> tuple[float, np.ndarray]:
    """Huber loss (``torch.nn.functional.huber_loss``), with d = pred - target:

        ℓ(d) = d² / 2                 if |d| < delta
        ℓ(d) = delta (|d| - delta/2)  otherwise

    Quadratic near zero, linear in the tails: the gradient is d, clipped to [-delta, delta].
    pred, target: any shape, equal shapes. Returns (loss, dpred).
    """
    if delta <= 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    pred, target = _pair(pred, target)
    s = _scale(reduction, pred.size)
    # BEGIN SOLUTION pick the quadratic or the linear branch per element; the gradient is clip(d, -delta, delta)
    diff = pred - target
    absd = np.abs(diff)
    small = absd < delta
    per = np.where(small, 0.5 * diff * diff, delta * (absd - 0.5 * delta))
    loss = float(np.sum(per, dtype=np.float64)) * s
    return loss, np.clip(diff, -delta, delta) * s
    # END SOLUTION


# -- binary classification ------------------------------------------------------------------

LOG_CLAMP = -100.0       # PyTorch clamps log(p) and log(1 - p) at -100 in binary_cross_entropy
GRAD_EPS = 1e-12         # ... and divides by max(p (1 - p), 1e-12) in its gradient


def binary_cross_entropy(prob, target, reduction: str = "mean") -> tuple[float, np.ndarray]:
    """Binary cross-entropy on probabilities, as ``torch.nn.functional.binary_cross_entropy``:

        ℓ = -( y log p + (1 - y) log(1 - p) ),   each log clamped below at -100

    so p = 0 or p = 1 give a large finite loss (at most 100), never inf or nan, and no
    RuntimeWarning. The gradient is (p - y) / max(p (1 - p), 1e-12).
    prob: any shape, values in [0, 1]; target: same shape, values in [0, 1].
    Prefer :func:`binary_cross_entropy_with_logits`: it is exact where this one clamps.
    """
    prob, target = _pair(prob, target)
    s = _scale(reduction, prob.size)
    # TODO: np.log(0) is -inf and warns; compute the logs under np.errstate(divide="ignore")
    # and clamp them with np.maximum(..., LOG_CLAMP).
    # BEGIN SOLUTION compute the clamped logs, the loss, and the gradient (p - y) / max(p (1 - p), eps)
    with np.errstate(divide="ignore"):
        log_p = np.maximum(np.log(prob), LOG_CLAMP)
        log_1mp = np.maximum(np.log1p(-prob), LOG_CLAMP)
    per = -(target * log_p + (1.0 - target) * log_1mp)
    loss = float(np.sum(per, dtype=np.float64)) * s
    return loss, (prob - target) / np.maximum(prob * (1.0 - prob), GRAD_EPS) * s
    # END SOLUTION


def binary_cross_entropy_with_logits(logits, target, reduction: str = "mean") -> tuple[float, np.ndarray]:
    """Binary cross-entropy on logits x (p = sigmoid(x)), stable for any x:

        ℓ = max(x, 0) - x y + log(1 + exp(-|x|))

    (equal to -(y log σ(x) + (1 - y) log(1 - σ(x))) but exp never overflows).
    dℓ/dx = σ(x) - y. logits: any shape; target: same shape, values in [0, 1].
    Returns (loss, dlogits).
    """
    logits, target = _pair(logits, target)
    s = _scale(reduction, logits.size)
    # BEGIN SOLUTION compute the stable per-element loss and the gradient (sigmoid(x) - y) * scale
    per = np.maximum(logits, 0) - logits * target + np.log1p(np.exp(-np.abs(logits)))
    loss = float(np.sum(per, dtype=np.float64)) * s
    return loss, (sigmoid(logits) - target) * s
    # END SOLUTION


# -- multi-class classification -------------------------------------------------------------

def cross_entropy(logits, target, *, label_smoothing: float = 0.0, ignore_index: int | None = None,
                  reduction: str = "mean") -> tuple[float, np.ndarray]:
    """Softmax cross-entropy from logits, as ``torch.nn.functional.cross_entropy``.

    logits: (N, C) (or (*, C): every leading position is a sample — a language model's
    (B, T, V) logits with (B, T) labels work as they are);
    target: either integer class labels, shape (N,) (or (*)), values in [0, C) — or
    probabilities, a float array shaped like ``logits`` (each row a distribution).

    With q the target distribution (one-hot for labels) and log p = log_softmax(logits):

        q ← (1 - ε) q + ε / C          label smoothing ε = ``label_smoothing``
        ℓ_i = -Σ_c q_ic log p_ic       dℓ_i/dlogits_i = p_i Σ_c q_ic - q_i   (= p_i - q_i)

    ignore_index (integer labels only): samples whose label equals it contribute neither
    loss nor gradient, and "mean" divides by the number of the *other* samples (a batch
    where every sample is ignored has loss 0 and a zero gradient; PyTorch returns nan).
    "mean" divides by N for probability targets.
    Returns (loss, dlogits) with dlogits shaped and typed like ``logits``.
    """
    logits = _as_float(logits)
    target = np.asarray(target)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    if logits.ndim == 0:
        raise ValueError("logits must have a class axis: shape (N, C)")
    C = logits.shape[-1]
    eps = float(label_smoothing)
    # TODO: never build log(softmax(x)) — use log_softmax; never build a one-hot matrix for
    # integer labels — index the (N, C) arrays with (np.arange(N), labels).
    # BEGIN SOLUTION compute log_softmax once, then the loss and dlogits for labels or probability targets
    logp = log_softmax(logits, axis=-1)
    grad = np.exp(logp)                                      # softmax probabilities p
    if target.dtype.kind in "iu":                            # integer class labels
        if target.shape != logits.shape[:-1]:
            raise ValueError(f"labels of shape {target.shape} do not match logits of shape "
                             f"{logits.shape}: expected {logits.shape[:-1]}")
        labels = target.reshape(-1)
        lp = logp.reshape(-1, C)
        g = grad.reshape(-1, C)
        valid = np.ones(labels.shape, dtype=bool) if ignore_index is None else labels != ignore_index
        bad = valid & ((labels < 0) | (labels >= C))
        if bad.any():
            raise ValueError(f"label {labels[bad][0]} is out of range for {C} classes")
        safe = np.where(valid, labels, 0)
        rows = np.arange(labels.size)
        per = -(1.0 - eps) * lp[rows, safe]
        if eps:
            per -= (eps / C) * lp.sum(axis=1)
        weight = valid * _scale(reduction, int(valid.sum()))   # per-sample factor, 0 if ignored
        loss = float(np.sum(per * weight, dtype=np.float64))
        g[rows, safe] -= 1.0 - eps                           # p - q, q = (1 - eps) onehot + eps / C
        if eps:
            g -= eps / C
        g *= weight[:, None]
        return loss, g.reshape(logits.shape)
    if ignore_index is not None:
        raise ValueError("ignore_index applies to integer labels, not to probability targets")
    if target.shape != logits.shape:
        raise ValueError(f"probability targets of shape {target.shape} do not match logits "
                         f"of shape {logits.shape}")
    q = target.astype(logits.dtype, copy=False)
    if eps:
        q = (1.0 - eps) * q + eps / C
    s = _scale(reduction, logp.size // C)
    loss = float(-np.sum(q * logp, dtype=np.float64)) * s
    grad = (grad * q.sum(axis=-1, keepdims=True) - q) * s
    return loss, grad
    # END SOLUTION


def nll_loss(log_probs, target, *, ignore_index: int | None = None,
             reduction: str = "mean") -> tuple[float, np.ndarray]:
    """Negative log-likelihood on log-probabilities, as ``torch.nn.functional.nll_loss``:

        ℓ_i = -log_probs[i, target_i]

    log_probs: (N, C) (or (*, C)), e.g. the output of ``log_softmax``; target: integer labels
    (N,) (or (*)) in [0, C). ``ignore_index`` as in :func:`cross_entropy`.
    The gradient is -1 (times the reduction factor) at [i, target_i] and 0 elsewhere —
    ``cross_entropy`` is ``nll_loss`` after ``log_softmax``, with the softmax's Jacobian folded in.
    Returns (loss, dlog_probs).
    """
    log_probs = _as_float(log_probs)
    target = np.asarray(target)
    if target.dtype.kind not in "iu":
        raise ValueError(f"nll_loss needs integer labels, got dtype {target.dtype}")
    if log_probs.ndim == 0 or target.shape != log_probs.shape[:-1]:
        raise ValueError(f"labels of shape {target.shape} do not match log-probabilities of "
                         f"shape {log_probs.shape}: expected {log_probs.shape[:-1]}")
    C = log_probs.shape[-1]
    # BEGIN SOLUTION pick -log_probs at the labels of the non-ignored samples; the gradient is -scale there
    labels = target.reshape(-1)
    lp = log_probs.reshape(-1, C)
    valid = np.ones(labels.shape, dtype=bool) if ignore_index is None else labels != ignore_index
    bad = valid & ((labels < 0) | (labels >= C))
    if bad.any():
        raise ValueError(f"label {labels[bad][0]} is out of range for {C} classes")
    rows = np.flatnonzero(valid)
    cols = labels[valid]
    s = _scale(reduction, rows.size)
    loss = float(-np.sum(lp[rows, cols], dtype=np.float64)) * s
    grad = np.zeros_like(lp)
    grad[rows, cols] = -s
    return loss, grad.reshape(log_probs.shape)
    # END SOLUTION


# -- the classes the training loops use -----------------------------------------------------

class Loss:
    """Base class: ``forward(pred, target) -> float`` caches the gradient that
    ``backward() -> dpred`` returns. Subclasses define ``compute`` (one of the functions above).
    """

    def __init__(self, reduction: str = "mean"):
        _scale(reduction, 1)                     # validates the name
        self.reduction = reduction
        self._grad: np.ndarray | None = None

    def compute(self, pred, target) -> tuple[float, np.ndarray]:
        raise NotImplementedError

    def forward(self, pred, target) -> float:
        """pred: the model's output; target: as the loss function expects. Returns the loss."""
        # BEGIN SOLUTION call self.compute, cache the gradient, return the loss
        loss, self._grad = self.compute(pred, target)
        return loss
        # END SOLUTION

    def backward(self) -> np.ndarray:
        """dloss/dpred for the last ``forward`` (same shape and dtype as its ``pred``).
        Raises RuntimeError if ``forward`` has not been called."""
        # BEGIN SOLUTION return the cached gradient (RuntimeError if there is none)
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before forward()")
        return self._grad
        # END SOLUTION

    def __call__(self, pred, target) -> float:
        return self.forward(pred, target)


class MSELoss(Loss):
    """:func:`mse_loss` as a class."""

    def compute(self, pred, target):
        return mse_loss(pred, target, reduction=self.reduction)


class L1Loss(Loss):
    """:func:`l1_loss` as a class."""

    def compute(self, pred, target):
        return l1_loss(pred, target, reduction=self.reduction)


class HuberLoss(Loss):
    """:func:`huber_loss` as a class."""

    def __init__(self, delta: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        self.delta = float(delta)

    def compute(self, pred, target):
        return huber_loss(pred, target, delta=self.delta, reduction=self.reduction)


class BCELoss(Loss):
    """:func:`binary_cross_entropy` (on probabilities) as a class."""

    def compute(self, pred, target):
        return binary_cross_entropy(pred, target, reduction=self.reduction)


class BCEWithLogitsLoss(Loss):
    """:func:`binary_cross_entropy_with_logits` as a class."""

    def compute(self, pred, target):
        return binary_cross_entropy_with_logits(pred, target, reduction=self.reduction)


class CrossEntropyLoss(Loss):
    """:func:`cross_entropy` as a class: ``forward(logits (N, C), target) -> float``,
    ``backward() -> dlogits (N, C)``."""

    def __init__(self, label_smoothing: float = 0.0, ignore_index: int | None = None,
                 reduction: str = "mean"):
        super().__init__(reduction)
        self.label_smoothing = float(label_smoothing)
        self.ignore_index = ignore_index

    def compute(self, pred, target):
        return cross_entropy(pred, target, label_smoothing=self.label_smoothing,
                             ignore_index=self.ignore_index, reduction=self.reduction)


class NLLLoss(Loss):
    """:func:`nll_loss` as a class: ``forward(log_probs (N, C), labels (N,)) -> float``."""

    def __init__(self, ignore_index: int | None = None, reduction: str = "mean"):
        super().__init__(reduction)
        self.ignore_index = ignore_index

    def compute(self, pred, target):
        return nll_loss(pred, target, ignore_index=self.ignore_index, reduction=self.reduction)
