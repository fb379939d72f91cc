"""Milestone 10 — an MLP built from this course's parts reaches ≥ 98% MNIST test accuracy.

784 → 512 → 512 → 10 with ReLU, Kaiming-initialised Linear layers, softmax cross-entropy,
Adam with linear warm-up and cosine decay, batch 128, inputs standardised with the
training set's statistics. Trains on the 60,000 real training images and reports
accuracy on the 10,000 real test images (no model selection on the test set: the final
epoch's model is the one reported).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlfs.course.milestones import DEFAULT, Measurement, MilestoneSpec, PresetInfo, RunOptions, Target


@dataclass(frozen=True)
class Config:
    hidden: tuple[int, ...] = (512, 512)
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    warmup_steps: int = 200
    train_limit: int | None = None      # use the first N training images (smoke runs)
    test_limit: int | None = None


FULL = Config()
SMOKE = Config(hidden=(256,), epochs=3, lr=2e-3, warmup_steps=20, train_limit=20000)

SPEC = MilestoneSpec(
    milestone=10,
    title="an MLP on MNIST",
    dataset="mnist",
    presets={DEFAULT: PresetInfo("MLP 784-512-512-10, Adam with warm-up and cosine decay, "
                                 "10 epochs on the 60,000 training images")},
    default_preset=DEFAULT,
    full_target=Target("test_accuracy", 0.98, max_seconds=60),
    smoke_description="MLP 784-256-10, 3 epochs on the first 20,000 training images",
    smoke_target=Target("test_accuracy", 0.95),
)


def build_mlp(sizes: tuple[int, ...], rng: np.random.Generator):
    """sizes: (784, h1, ..., 10) -> Sequential of Linear/ReLU layers."""
    from dlfs.nn.activations import ReLU
    from dlfs.nn.layers import Linear, Sequential

    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Linear(a, b, rng=rng))
        if i < len(sizes) - 2:
            layers.append(ReLU())
    return Sequential(*layers)


def run(opts: RunOptions) -> Measurement:
    from tqdm import tqdm

    from dlfs.data.batching import BatchIterator
    from dlfs.data.mnist import load_mnist
    from dlfs.nn.losses import CrossEntropyLoss
    from dlfs.optim.optimizers import Adam
    from dlfs.optim.schedules import CosineWithWarmup
    from dlfs.train.loop import confusion_matrix, evaluate, train_epoch

    cfg = SMOKE if opts.smoke else FULL
    ds = load_mnist(opts.data_dir, normalize=True)
    x_train = ds.x_train.reshape(len(ds.x_train), -1)[:cfg.train_limit]
    y_train = ds.y_train[:cfg.train_limit]
    x_test = ds.x_test.reshape(len(ds.x_test), -1)[:cfg.test_limit]
    y_test = ds.y_test[:cfg.test_limit]

    rng = np.random.default_rng(opts.seed)
    model = build_mlp((x_train.shape[1], *cfg.hidden, 10), rng)
    loss_fn = CrossEntropyLoss()
    optimizer = Adam(model.parameters(), lr=cfg.lr)
    batches = BatchIterator(x_train, y_train, batch_size=cfg.batch_size, shuffle=True, seed=rng)
    schedule = CosineWithWarmup(optimizer, warmup_steps=cfg.warmup_steps,
                                total_steps=cfg.epochs * len(batches))

    history = {k: [] for k in ("train_loss", "train_acc", "test_loss", "test_acc")}
    for epoch in range(1, cfg.epochs + 1):
        bar = tqdm(total=len(batches), desc=f"epoch {epoch}/{cfg.epochs}", unit="batch",
                   leave=False, disable=not opts.progress or None)

        def on_batch(loss, acc, bar=bar):
            bar.update(1)
            if bar.n % 25 == 0:
                bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.3f}")

        train_loss, train_acc = train_epoch(model, loss_fn, optimizer, batches,
                                            scheduler=schedule, on_batch=on_batch)
        bar.close()
        test_loss, test_acc, pred = evaluate(model, loss_fn, x_test, y_test)
        for k, v in zip(history, (train_loss, train_acc, test_loss, test_acc)):
            history[k].append(float(v))
        opts.log(f"epoch {epoch:2d}/{cfg.epochs}  train loss {train_loss:.4f} acc {train_acc:.4f}  "
            f"test loss {test_loss:.4f} acc {test_acc:.4f}")

    cm = confusion_matrix(y_test, pred, 10)
    artifacts = []
    if opts.output_dir is not None:
        artifacts = write_plots(opts.output_dir, history, cm, ds, x_test, y_test, pred)
    return Measurement(
        value=float(history["test_acc"][-1]),
        details={
            "model": f"MLP {'-'.join(map(str, (x_train.shape[1], *cfg.hidden, 10)))} ReLU",
            "parameters": int(sum(p.data.size for p in model.parameters())),
            "train_images": int(len(x_train)), "test_images": int(len(x_test)),
            "epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr": cfg.lr,
            "optimizer": "Adam + linear warm-up + cosine decay",
            "history": history, "confusion_matrix": cm.tolist(),
        },
        artifacts=artifacts,
    )


def write_plots(out: Path, history, cm, ds, x_test, y_test, pred) -> list[str]:
    from dlfs.viz.plots import confusion_matrix_plot, image_grid, learning_curves

    wrong = np.flatnonzero(pred != y_test)[:32]
    images = ds.x_test[:len(y_test)][wrong] * ds.std.reshape(1, -1, 1, 1) + ds.mean.reshape(1, -1, 1, 1)
    paths = [
        learning_curves(history, out / "learning_curves.png", title="MNIST MLP"),
        confusion_matrix_plot(cm, [str(i) for i in range(10)], out / "confusion_matrix.png",
                              title="MNIST test confusion matrix"),
        image_grid(images, [f"true {y_test[i]} → {pred[i]}" for i in wrong], out / "misclassified.png",
                   title="Misclassified test digits"),
    ]
    return [str(p) for p in paths]
