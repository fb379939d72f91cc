"""What every image loader returns, and the per-channel statistics used to normalise."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class ImageDataset:
    """A train/test image dataset.

    x_train: (N, C, H, W) float32, in [0, 1] (or normalised, see ``normalized``)
    y_train: (N,) int64 class indices
    x_test, y_test: the same for the test split
    mean, std: (C,) float32 per-channel statistics of the *training* images in [0, 1] scale,
        computed from the data (never hard-coded)
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    classes: tuple[str, ...]
    normalized: bool = False
    source: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def train(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x_train, self.y_train

    @property
    def test(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x_test, self.y_test

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __repr__(self) -> str:
        return (f"ImageDataset({self.name!r}, train={self.x_train.shape}, test={self.x_test.shape}, "
                f"normalized={self.normalized}, source={str(self.source)!r})")


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-channel mean and std of uint8 images (N, C, H, W), in [0, 1] scale.

    Uses a 256-bin histogram per channel, so it is exact (float64) and needs no float copy of
    the data. Returns two float32 arrays of shape (C,).
    """
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"expected uint8 images (N, C, H, W), got {images.dtype} {images.shape}")
    n, c = images.shape[:2]
    per_image = int(np.prod(images.shape[2:], dtype=np.int64)) or 1
    step = max(1, (1 << 18) // per_image)           # bincount in chunks: small int64 temporaries
    counts = np.zeros((c, 256), dtype=np.int64)
    for lo in range(0, n, step):
        block = images[lo:lo + step]
        for ch in range(c):
            counts[ch] += np.bincount(block[:, ch].reshape(-1), minlength=256)
    values = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for ch in range(c):
        total = counts[ch].sum()
        mean = (counts[ch] @ values) / total
        var = (counts[ch] @ (values - mean) ** 2) / total
        means.append(mean)
        stds.append(np.sqrt(var))
    return np.asarray(means, np.float32), np.asarray(stds, np.float32)


def to_unit_float(images: np.ndarray) -> np.ndarray:
    """uint8 (N, C, H, W) -> float32 in [0, 1] (x / 255)."""
    return np.divide(images, np.float32(255.0), dtype=np.float32)


def normalize(x: np.ndarray, mean: np.ndarray, std: np.ndarray, *, out: np.ndarray | None = None
              ) -> np.ndarray:
    """(x - mean) / std per channel. x: (N, C, H, W); mean, std: (C,). Keeps x's float dtype."""
    mean = np.asarray(mean, dtype=x.dtype).reshape(1, -1, 1, 1)
    std = np.asarray(std, dtype=x.dtype).reshape(1, -1, 1, 1)
    if x.ndim != 4 or x.shape[1] != mean.shape[1]:
        raise ValueError(f"x: expected (N, {mean.shape[1]}, H, W), got {x.shape}")
    out = np.subtract(x, mean, out=out)
    out /= std
    return out


def build(name: str, train_u8: np.ndarray, y_train: np.ndarray, test_u8: np.ndarray,
          y_test: np.ndarray, classes, *, normalize_: bool, source: Path | None) -> ImageDataset:
    """uint8 arrays -> ImageDataset with float32 images and statistics from the training set."""
    mean, std = channel_stats(train_u8)
    x_train, x_test = to_unit_float(train_u8), to_unit_float(test_u8)
    if normalize_:
        normalize(x_train, mean, std, out=x_train)
        normalize(x_test, mean, std, out=x_test)
    return ImageDataset(name, x_train, y_train.astype(np.int64, copy=False), x_test,
                        y_test.astype(np.int64, copy=False), mean, std, tuple(classes),
                        normalized=normalize_, source=source)
