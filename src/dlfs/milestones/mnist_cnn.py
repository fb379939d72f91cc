"""The Module 2 stack on MNIST: a small CNN to ≥ 99.0% test accuracy.

Run as ``dlfs milestone 17 --preset mnist-cnn``. Three stages of conv3x3–BatchNorm2d–ReLU–
max-pool (32, 64, 128 channels; 28 → 14 → 7 → 3), then a linear classifier on the
128·3·3 features. Trained on the 60,000 real training images with the Topic 17 recipe
without crops or flips (digits are not mirror-symmetric), and evaluated on the 10,000 real
test images; the final epoch's model is the one reported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlfs.course.milestones import RESULTS_DIR, MilestoneResult
from dlfs.train.recipe import TrainConfig

FULL = TrainConfig(epochs=4, batch_size=128, lr=0.05, weight_decay=5e-4, warmup_epochs=0.3,
                   label_smoothing=0.0, augment=False)
SMOKE = TrainConfig(epochs=1, batch_size=128, lr=0.05, weight_decay=5e-4, warmup_epochs=0.2,
                    label_smoothing=0.0, augment=False)
TARGET, SMOKE_TARGET = 0.990, 0.95


def build_cnn(widths=(32, 64, 128), rng=None, dtype=np.float32):
    """x: (N, 1, 28, 28) -> logits (N, 10)."""
    from dlfs.conv.im2col import Conv2d
    from dlfs.conv.pooling import MaxPool2d
    from dlfs.nn.activations import ReLU
    from dlfs.nn.layers import Flatten, Linear, Sequential
    from dlfs.nn.normalization import BatchNorm2d

    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    layers, c, size = [], 1, 28
    for w in widths:
        layers += [Conv2d(c, w, 3, padding=1, bias=False, rng=rng, dtype=dtype),
                   BatchNorm2d(w, dtype=dtype), ReLU(), MaxPool2d(2)]
        c, size = w, size // 2
    layers += [Flatten(), Linear(c * size * size, 10, rng=rng, dtype=dtype)]
    return Sequential(*layers)


def run(*, smoke: bool = False, data_dir: str | None = None, seed: int = 0, progress: bool = True,
        out_dir: str | Path | None = None, log=print) -> MilestoneResult:
    from dlfs.data.mnist import load_mnist
    from dlfs.nn.losses import CrossEntropyLoss
    from dlfs.train.loop import confusion_matrix, evaluate
    from dlfs.train.recipe import fit

    cfg = SMOKE if smoke else FULL
    ds = load_mnist(data_dir, normalize=True)
    limit = 10000 if smoke else None
    x_train, y_train = ds.x_train[:limit], ds.y_train[:limit]
    x_test, y_test = ds.x_test, ds.y_test
    model = build_cnn(rng=np.random.default_rng(seed))
    log(f"model: CNN 32-64-128, {model.num_parameters():,} parameters; {len(x_train):,} training "
        f"images, {len(x_test):,} test images; {cfg.epochs} epochs")
    history = fit(model, x_train, y_train, x_test, y_test, cfg, seed=seed, progress=progress, log=log)
    _, test_acc, pred = evaluate(model, CrossEntropyLoss(), x_test, y_test, cfg.eval_batch_size)
    cm = confusion_matrix(y_test, pred, 10)
    artifacts = []
    if not smoke or out_dir is not None:
        from dlfs.viz.plots import confusion_matrix_plot, learning_curves

        out = Path(out_dir or RESULTS_DIR / "milestone-17" / "mnist-cnn")
        artifacts = [str(learning_curves(history.as_dict(), out / "learning_curves.png", title="MNIST CNN")),
                     str(confusion_matrix_plot(cm, [str(i) for i in range(10)], out / "confusion_matrix.png",
                                               title="MNIST CNN test confusion matrix"))]
    return MilestoneResult(
        metric="test_accuracy", value=float(test_acc), target=SMOKE_TARGET if smoke else TARGET,
        details={
            "preset": "mnist-cnn",
            "model": "CNN conv3x3-BN-ReLU-maxpool x3 (32, 64, 128) + linear",
            "parameters": model.num_parameters(),
            "train_images": int(len(x_train)), "test_images": int(len(x_test)),
            "epochs_trained": len(history.test_acc),
            "total_train_time_s": round(float(sum(history.epoch_time_s)), 1),
            "history": history.as_dict(),
            "confusion_matrix": cm.tolist(),
        },
        artifacts=artifacts,
    )
