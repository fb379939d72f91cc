"""Topic 09: early stopping on scripted validation curves, then on a real overfitting model."""

import numpy as np
import pytest

from dlfs.nn import regularization as reg
from dlfs.nn.losses import binary_cross_entropy_with_logits


def run(stopper, values):
    """Feed ``values`` until ``step`` says stop; return the index of that epoch (or None)."""
    for i, v in enumerate(values):
        if stopper.step(v):
            return i
    return None


def test_stops_after_patience_epochs_without_improvement():
    losses = [1.0, 0.8, 0.7, 0.72, 0.71, 0.69, 0.75, 0.74, 0.76, 0.5]
    es = reg.EarlyStopping(patience=3)
    stopped = run(es, losses)
    # best 0.69 at epoch 5; epochs 6, 7, 8 do not improve -> stop at epoch 8
    assert stopped == 8, f"expected to stop at epoch 8, stopped at {stopped}"
    assert es.best == pytest.approx(0.69) and es.best_epoch == 5, (
        f"expected best 0.69 at epoch 5, got {es.best} at epoch {es.best_epoch}")
    assert es.num_bad_epochs == 3


def test_an_improvement_resets_the_count():
    es = reg.EarlyStopping(patience=2)
    decisions = [es.step(v) for v in [5.0, 6.0, 4.0, 4.5, 4.2, 3.0]]
    assert decisions == [False, False, False, False, True, False], f"got {decisions}"
    assert (es.best, es.best_epoch, es.num_bad_epochs) == (3.0, 5, 0)


def test_min_delta_ignores_tiny_improvements():
    es = reg.EarlyStopping(patience=2, min_delta=0.05)
    stopped = run(es, [1.0, 0.98, 0.96, 0.9])
    assert stopped == 2, f"improvements of 0.02 are below min_delta=0.05: expected stop at 2, got {stopped}"
    assert es.best == 1.0 and es.best_epoch == 0, f"best should stay 1.0 at epoch 0, got {es.best} at {es.best_epoch}"


def test_max_mode_for_accuracy_and_nan_never_improves():
    es = reg.EarlyStopping(patience=2, mode="max")
    stopped = run(es, [0.5, 0.7, 0.9, float("nan"), 0.85, 0.95])
    assert stopped == 4, f"expected stop at epoch 4, got {stopped}"
    assert es.best == 0.9 and es.best_epoch == 2


def test_picks_the_best_epoch_of_an_overfitting_logistic_regression():
    """More features than training samples and noisy labels: the training loss keeps falling
    while the validation loss turns up. Early stopping keeps the best epoch's weights."""
    rng = np.random.default_rng(0)
    d, n_train, n_val = 80, 40, 400
    w_true = np.zeros(d)
    w_true[:5] = 2.0
    x = rng.normal(size=(n_train + n_val, d))
    y = (x @ w_true + rng.normal(scale=2.0, size=len(x)) > 0).astype(np.float64)
    x_tr, y_tr, x_va, y_va = x[:n_train], y[:n_train], x[n_train:], y[n_train:]

    w = np.zeros(d)
    es = reg.EarlyStopping(patience=15)
    train_losses, val_losses, best_w, stopped_at = [], [], None, None
    max_epochs = 400
    for epoch in range(max_epochs):
        train_loss, grad = binary_cross_entropy_with_logits(x_tr @ w, y_tr)
        train_losses.append(train_loss)
        w -= 0.2 * (x_tr.T @ grad)
        val_loss, _ = binary_cross_entropy_with_logits(x_va @ w, y_va)
        val_losses.append(val_loss)
        stop = es.step(val_loss)
        if es.best_epoch == epoch:
            best_w = w.copy()
        if stop:
            stopped_at = epoch
            break

    assert stopped_at is not None and stopped_at < max_epochs - 1, "the validation loss rises: training must stop early"
    best = int(np.argmin(val_losses))
    assert es.best_epoch == best, f"best epoch should be {best} (lowest validation loss), got {es.best_epoch}"
    assert best > 0 and train_losses[-1] < train_losses[best] - 0.05, "training loss keeps falling after the best epoch"
    assert stopped_at == best + 15, f"expected to stop 15 epochs after the best one ({best + 15}), got {stopped_at}"
    restored, _ = binary_cross_entropy_with_logits(x_va @ best_w, y_va)
    assert restored == pytest.approx(es.best) and restored < val_losses[-1] - 1e-3, (
        f"restored weights: val loss {restored:.4f}; at the stop: {val_losses[-1]:.4f}")
