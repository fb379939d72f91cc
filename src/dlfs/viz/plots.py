"""PNG plots for training runs. Uses matplotlib's Agg backend: no screen needed."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    tmp.replace(path)
    _pyplot().close(fig)
    return path


def learning_curves(history: Mapping[str, Sequence[float]], path: str | Path, title: str = "") -> Path:
    """history: {"train_loss", "val_loss", "train_acc", "val_acc"} lists, one value per epoch."""
    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, ax in (("loss", ax_loss), ("acc", ax_acc)):
        for split in ("train", "val", "test"):
            values = history.get(f"{split}_{key}")
            if values:
                ax.plot(np.arange(1, len(values) + 1), values, marker="o", ms=3, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss" if key == "loss" else "accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def confusion_matrix_plot(cm: np.ndarray, class_names: Sequence[str], path: str | Path,
                          title: str = "Confusion matrix") -> Path:
    """cm: (K, K) counts, rows = true class, columns = predicted class."""
    plt = _pyplot()
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * k, 0.8 + 0.6 * k))
    ax.imshow(np.log1p(cm), cmap="Blues")
    thresh = np.log1p(cm).max() / 2
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=7,
                    color="white" if np.log1p(cm[i, j]) > thresh else "black")
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return _save(fig, path)


def image_grid(images: np.ndarray, captions: Sequence[str], path: str | Path, title: str = "",
               cols: int = 8) -> Path:
    """images: (N, C, H, W) in [0, 1] (C = 1 or 3); one caption per image."""
    plt = _pyplot()
    n = len(images)
    rows = max(1, int(np.ceil(n / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.5 * rows))
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, img, cap in zip(np.ravel(axes), images, captions):
        img = np.clip(np.transpose(img, (1, 2, 0)), 0, 1)
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None)
        ax.set_title(cap, fontsize=7)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def per_class_accuracy_plot(accuracy: Sequence[float], class_names: Sequence[str], path: str | Path,
                            title: str = "Per-class accuracy") -> Path:
    """accuracy: (K,) fractions in [0, 1], one per class, drawn as horizontal bars."""
    plt = _pyplot()
    acc = np.asarray(accuracy, dtype=float)
    fig, ax = plt.subplots(figsize=(6, 0.9 + 0.35 * len(acc)))
    y = np.arange(len(acc))
    ax.barh(y, acc * 100, color="tab:blue")
    for i, a in enumerate(acc):
        ax.text(a * 100 + 0.5, i, f"{a * 100:.1f}%", va="center", fontsize=8)
    ax.set_yticks(y, class_names)
    ax.invert_yaxis()
    ax.set_xlim(0, 105)
    ax.set_xlabel("test accuracy (%)")
    ax.set_title(title)
    return _save(fig, path)
