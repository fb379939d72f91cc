"""Topic 10 — the end-to-end training loop: batches → model → loss → optimiser → metrics.

The pieces every milestone reuses:

* ``accuracy`` and ``confusion_matrix`` (metrics);
* ``train_epoch``: one pass over the batches with forward, backward and an optimiser step;
* ``evaluate``: loss, accuracy and predictions in eval mode, batch by batch.

A model is a :class:`dlfs.nn.layers.Layer`; a loss is an object with
``forward(logits, y) -> float`` and ``backward() -> dlogits``; an optimiser has
``zero_grad()`` and ``step()``; a schedule (optional) has ``step()``.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows whose arg-max equals the label. logits: (N, K); y: (N,) int."""
    # BEGIN SOLUTION compute the fraction of correct arg-max predictions
    return float(np.mean(np.argmax(logits, axis=1) == y))
    # END SOLUTION


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts of (true, predicted) pairs. y_true, y_pred: (N,) int -> (K, K) int64.

    Row i, column j counts examples of class i predicted as class j.
    """
    # TODO: one vectorised bincount, no Python loop over examples.
    # BEGIN SOLUTION count (true, predicted) pairs with one bincount
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    for name, v in (("y_true", y_true), ("y_pred", y_pred)):
        if v.size and (v.min() < 0 or v.max() >= num_classes):
            raise ValueError(f"{name} has labels outside 0..{num_classes - 1}")
    counts = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)
    # END SOLUTION


def train_epoch(model, loss_fn, optimizer, batches: Iterable[tuple[np.ndarray, np.ndarray]], *,
                scheduler=None, on_batch: Callable[[float, float], None] | None = None) -> tuple[float, float]:
    """Train for one pass over ``batches``; returns (mean loss, accuracy) over the pass.

    batches: iterable of (x: (B, ...), y: (B,)) pairs. For each batch: zero the
    gradients, forward, loss, backward through the loss and the model, optimiser step,
    then the schedule step (per batch). ``on_batch(loss, acc)`` is called after each
    batch (for a progress bar). The mean is weighted by batch size.
    """
    # BEGIN SOLUTION zero_grad → forward → loss → backward → step → schedule, and track loss/accuracy
    model.train()
    total_loss, total_correct, total = 0.0, 0, 0
    for x, y in batches:
        optimizer.zero_grad()
        logits = model.forward(x)
        loss = loss_fn.forward(logits, y)
        model.backward(loss_fn.backward())
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        n = len(y)
        correct = int(np.sum(np.argmax(logits, axis=1) == y))
        total_loss += float(loss) * n
        total_correct += correct
        total += n
        if on_batch is not None:
            on_batch(float(loss), correct / n)
    if total == 0:
        raise ValueError("train_epoch got no batches")
    return total_loss / total, total_correct / total
    # END SOLUTION


def predict_logits(model, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Logits for every row of x, in eval mode, ``batch_size`` rows at a time. -> (N, K)"""
    model.eval()
    return np.concatenate([model.forward(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def evaluate(model, loss_fn, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> tuple[float, float, np.ndarray]:
    """Mean loss, accuracy and predicted labels on (x, y), in eval mode. -> (loss, acc, (N,) int)"""
    # BEGIN SOLUTION evaluate in eval mode, batch by batch, weighting the loss by batch size
    model.eval()
    total_loss, preds = 0.0, []
    for i in range(0, len(x), batch_size):
        logits = model.forward(x[i:i + batch_size])
        total_loss += float(loss_fn.forward(logits, y[i:i + batch_size])) * len(logits)
        preds.append(np.argmax(logits, axis=1))
    pred = np.concatenate(preds)
    return total_loss / len(x), float(np.mean(pred == y)), pred
    # END SOLUTION
