"""Mini-batches, image augmentation and text block sampling, all vectorised.

Randomness always comes from a ``numpy.random.Generator`` (pass one, or a seed), so runs are
reproducible.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def as_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A Generator from a seed (or None for fresh entropy); a Generator is returned as is."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


class BatchIterator:
    """Iterate over aligned arrays in mini-batches; each ``iter()`` is one epoch.

    arrays: arrays with the same first dimension N, e.g. ``x (N, C, H, W)`` and ``y (N,)``
    batch_size: rows per batch; the last batch is smaller unless ``drop_last``
    shuffle: a new permutation every epoch, drawn from ``seed`` (same seed, same epochs)
    transform: optional ``f(x_batch, rng) -> x_batch`` applied to the first array (augmentation)

    Yields tuples of batches, one per array (a single array yields the batch itself).
    """

    def __init__(self, *arrays: np.ndarray, batch_size: int, shuffle: bool = False,
                 seed: int | np.random.Generator | None = None, drop_last: bool = False,
                 transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None):
        if not arrays:
            raise ValueError("give at least one array")
        n = len(arrays[0])
        if any(len(a) != n for a in arrays):
            raise ValueError(f"arrays differ in length: {[len(a) for a in arrays]}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.arrays = arrays
        self.n = n
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.transform = transform
        self.rng = as_rng(seed)

    def __len__(self) -> int:
        if self.drop_last:
            return self.n // self.batch_size
        return -(-self.n // self.batch_size)

    def __iter__(self) -> Iterator:
        order = self.rng.permutation(self.n) if self.shuffle else None
        for b in range(len(self)):
            lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, self.n)
            if order is None:
                batch = [a[lo:hi] for a in self.arrays]
            else:
                idx = order[lo:hi]
                batch = [a[idx] for a in self.arrays]
            if self.transform is not None:
                batch[0] = self.transform(batch[0], self.rng)
            yield batch[0] if len(batch) == 1 else tuple(batch)


def random_crop(x: np.ndarray, padding: int = 4, rng: int | np.random.Generator | None = None,
                *, size: tuple[int, int] | None = None, pad_mode: str = "constant") -> np.ndarray:
    """Pad each image by ``padding`` pixels and take a random ``size`` crop (default: the
    original H x W), independently per image, with no Python loop over images. ``pad_mode``
    is ``np.pad``'s: "constant" (zeros) or "reflect" (mirror the border, as airbench's
    2-pixel translations).

    x: (N, C, H, W) -> (N, C, h, w); dtype kept.
    """
    rng = as_rng(rng)
    n, c, h, w = x.shape
    ch, cw = size if size is not None else (h, w)
    if pad_mode not in ("constant", "reflect"):
        raise ValueError(f"pad_mode must be 'constant' or 'reflect', got {pad_mode!r}")
    if pad_mode == "reflect" and padding >= min(h, w):
        raise ValueError(f"reflect padding of {padding} needs images larger than {padding} pixels, got {h}x{w}")
    pad = ((0, 0), (0, 0), (padding, padding), (padding, padding))
    padded = np.pad(x, pad, mode=pad_mode) if padding else x
    max_y, max_x = padded.shape[2] - ch, padded.shape[3] - cw
    if max_y < 0 or max_x < 0:
        raise ValueError(f"crop {ch}x{cw} is larger than the padded image {padded.shape[2:]}")
    dy = rng.integers(0, max_y + 1, size=n)
    dx = rng.integers(0, max_x + 1, size=n)
    # windows[n, c, i, j] is the (ch, cw) crop starting at (i, j): a strided view, no copy
    windows = sliding_window_view(padded, (ch, cw), axis=(2, 3))
    return windows[np.arange(n), :, dy, dx]          # gathers one window per image: (N, C, h, w)


def random_flip(x: np.ndarray, p: float = 0.5, rng: int | np.random.Generator | None = None
                ) -> np.ndarray:
    """Mirror each image left-right with probability ``p``. x: (N, C, H, W) -> same shape."""
    rng = as_rng(rng)
    flip = rng.random(x.shape[0]) < p
    return np.where(flip[:, None, None, None], x[..., ::-1], x)


def alternating_flip(x: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """airbench's derandomised flips (Jordan 2024): epoch 1 mirrors a random half of the images,
    chosen by ``seed`` alone; every later epoch mirrors exactly the images the epoch before did
    not. So every image is seen both ways in any two consecutive epochs, where independent coin
    flips show a quarter of the images the same way twice.

    x: (N, C, H, W), epoch: 1-based -> a new (N, C, H, W) array, dtype kept.
    """
    if int(epoch) < 1:
        raise ValueError(f"epochs are counted from 1, got {epoch}")
    first = np.random.default_rng([int(seed), 0xF11B]).random(len(x)) < 0.5
    mirror = first if int(epoch) % 2 == 1 else ~first
    return np.where(mirror[:, None, None, None], x[..., ::-1], x)


def cutout(x: np.ndarray, size: int, rng: int | np.random.Generator | None = None) -> np.ndarray:
    """Cutout (DeVries & Taylor, 2017): set a random ``size`` x ``size`` square of each image
    to 0 in every channel (the mean, for standardised images). The square lies wholly inside
    the image, its top-left corner uniform over the positions that allow it.

    x: (N, C, H, W) -> a new (N, C, H, W) array, dtype kept.
    """
    rng = as_rng(rng)
    n, _, h, w = x.shape
    if not 0 < size <= min(h, w):
        raise ValueError(f"cutout size must be between 1 and the image size {min(h, w)}, got {size}")
    top = rng.integers(0, h - size + 1, size=n)
    left = rng.integers(0, w - size + 1, size=n)
    rows = (np.arange(h) >= top[:, None]) & (np.arange(h) < top[:, None] + size)      # (N, H)
    cols = (np.arange(w) >= left[:, None]) & (np.arange(w) < left[:, None] + size)    # (N, W)
    square = rows[:, None, :, None] & cols[:, None, None, :]                          # (N, 1, H, W)
    return np.where(square, np.zeros((), dtype=x.dtype), x)


def augment(x: np.ndarray, rng: int | np.random.Generator | None = None, *, padding: int = 4,
            flip: bool = True, pad_mode: str = "constant", cutout_size: int = 0) -> np.ndarray:
    """The standard CIFAR augmentation: random crop with ``padding`` (``pad_mode`` as in
    :func:`random_crop`), then a random horizontal flip, then (``cutout_size`` > 0)
    :func:`cutout`. x: (N, C, H, W) -> (N, C, H, W). Usable as ``BatchIterator(transform=augment)``."""
    rng = as_rng(rng)
    out = random_crop(x, padding, rng, pad_mode=pad_mode)
    out = random_flip(out, 0.5, rng) if flip else out
    return cutout(out, cutout_size, rng) if cutout_size else out


def sample_blocks(ids: np.ndarray, block_size: int, batch_size: int,
                  rng: int | np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Random contiguous blocks of a token sequence for next-token prediction.

    ids: (T,) -> x, y: (batch_size, block_size) int64 with ``y[b, t] == x[b, t + 1]``
    (y is x shifted left by one, continuing into the text).
    """
    rng = as_rng(rng)
    ids = np.asarray(ids)
    if ids.ndim != 1 or len(ids) <= block_size:
        raise ValueError(f"need a 1-D sequence longer than block_size={block_size}, "
                         f"got shape {ids.shape}")
    starts = rng.integers(0, len(ids) - block_size, size=batch_size)
    index = starts[:, None] + np.arange(block_size)
    return ids[index].astype(np.int64, copy=False), ids[index + 1].astype(np.int64, copy=False)
