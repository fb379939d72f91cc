"""The Module 2 stack on MNIST: a small CNN to ≥ 99.0% test accuracy.

Its own entry, ``dlfs milestone mnist-cnn`` (``dlfs milestone 17 --preset mnist-cnn`` stays as
an alias); its runs are recorded with Milestone 17's, under the preset ``mnist-cnn``.

Three stages of conv3x3–max-pool–BatchNorm2d–ReLU (32, 64, 128 channels; 28 → 14 → 7 → 3;
pooling before the normalisation, as in ResNet-9, a quarter of its work), then a linear
classifier on the 128·3·3 features; two epochs in batches of 256. The convolutions and
poolings run on ``dlfs.conv.fast``'s kernels. Trained on the 60,000 real training images with the Topic 17 recipe
without crops or flips (digits are not mirror-symmetric), and evaluated on the 10,000 real
test images; the final epoch's model is the one reported.
"""

from __future__ import annotations

import numpy as np

from dlfs.course.milestones import Measurement, MilestoneSpec, PresetInfo, RunOptions, Target
from dlfs.train.recipe import TrainConfig

FULL = TrainConfig(epochs=2, batch_size=256, lr=0.1, weight_decay=5e-4, warmup_epochs=0.3,
                   label_smoothing=0.0, augment=False)
SMOKE = TrainConfig(epochs=1, batch_size=128, lr=0.05, weight_decay=5e-4, warmup_epochs=0.2,
                    label_smoothing=0.0, augment=False)
POOL_FIRST = True
NAME = "mnist-cnn"

SPEC = MilestoneSpec(
    milestone=17,
    title="the Module 2 stack (a CNN) on MNIST",
    dataset="mnist",
    presets={NAME: PresetInfo("CNN 32-64-128 (conv3x3-max-pool-BatchNorm-ReLU) + linear, "
                              "2 epochs on the 60,000 training images, in at most 3 minutes",
                              Target("test_accuracy", 0.990, max_seconds=180))},
    default_preset=NAME,
    full_target=Target("test_accuracy", 0.990, max_seconds=180),
    smoke_description="CNN 32-64-128, 1 epoch on the first 10,000 training images",
    smoke_target=Target("test_accuracy", 0.95),
)


def build_cnn(widths=(32, 64, 128), rng=None, dtype=np.float32, pool_first: bool = False):
    """x: (N, 1, 28, 28) -> logits (N, 10). ``pool_first``: each stage is conv, max-pool,
    BatchNorm, ReLU (a quarter of the normalisation work, as in ResNet-9) instead of conv,
    BatchNorm, ReLU, max-pool. The convolutions and poolings use ``dlfs.conv.fast``."""
    from dlfs.conv.fast import FastConv2d as Conv2d
    from dlfs.conv.fast import FastMaxPool2d as MaxPool2d
    from dlfs.nn.activations import ReLU
    from dlfs.nn.layers import Flatten, Linear, Sequential
    from dlfs.nn.batchnorm import BatchNorm2d

    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    layers, c, size = [], 1, 28
    for w in widths:
        conv = Conv2d(c, w, 3, padding=1, bias=False, rng=rng, dtype=dtype)
        if pool_first:
            layers += [conv, MaxPool2d(2), BatchNorm2d(w, dtype=dtype), ReLU()]
        else:
            layers += [conv, BatchNorm2d(w, dtype=dtype), ReLU(), MaxPool2d(2)]
        c, size = w, size // 2
    layers += [Flatten(), Linear(c * size * size, 10, rng=rng, dtype=dtype)]
    return Sequential(*layers)


def run(opts: RunOptions) -> Measurement:
    from dlfs.data.mnist import load_mnist
    from dlfs.nn.losses import CrossEntropyLoss
    from dlfs.train.loop import confusion_matrix, evaluate
    from dlfs.train.recipe import fit

    cfg = SMOKE if opts.smoke else FULL
    ds = load_mnist(opts.data_dir, normalize=True)
    limit = 10000 if opts.smoke else None
    x_train, y_train = ds.x_train[:limit], ds.y_train[:limit]
    x_test, y_test = ds.x_test, ds.y_test
    model = build_cnn(rng=np.random.default_rng(opts.seed), pool_first=POOL_FIRST)
    opts.log(f"model: CNN 32-64-128, {model.num_parameters():,} parameters; {len(x_train):,} training "
             f"images, {len(x_test):,} test images; {cfg.epochs} epochs")
    history = fit(model, x_train, y_train, x_test, y_test, cfg, seed=opts.seed, progress=opts.progress,
                  log=opts.log)
    _, test_acc, pred = evaluate(model, CrossEntropyLoss(), x_test, y_test, cfg.eval_batch_size)
    cm = confusion_matrix(y_test, pred, 10)
    artifacts = []
    if opts.output_dir is not None:
        from dlfs.viz.plots import confusion_matrix_plot, learning_curves

        out = opts.output_dir
        artifacts = [str(learning_curves(history.as_dict(), out / "learning_curves.png", title="MNIST CNN")),
                     str(confusion_matrix_plot(cm, [str(i) for i in range(10)], out / "confusion_matrix.png",
                                               title="MNIST CNN test confusion matrix"))]
    return Measurement(
        value=float(test_acc),
        details={
            "model": "CNN conv3x3-maxpool-BN-ReLU x3 (32, 64, 128) + linear",
            "batch_size": cfg.batch_size,
            "parameters": model.num_parameters(),
            "train_images": int(len(x_train)), "test_images": int(len(x_test)),
            "epochs_trained": len(history.test_acc),
            "total_train_time_s": round(float(sum(history.epoch_time_s)), 1),
            "history": history.as_dict(),
            "confusion_matrix": cm.tolist(),
        },
        artifacts=artifacts,
    )
