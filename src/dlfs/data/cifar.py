"""CIFAR-10 (https://www.cs.toronto.edu/~kriz/cifar.html): both published layouts.

binary version, ``cifar-10-batches-bin/``
    ``data_batch_1.bin`` .. ``data_batch_5.bin`` and ``test_batch.bin``; each holds 10,000
    records of 3,073 bytes: 1 label byte (0-9), then 3,072 pixel bytes (1,024 red, 1,024 green,
    1,024 blue, each a 32x32 image in row-major order).
python version, ``cifar-10-batches-py/``
    ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``: pickled dicts whose ``data`` is a
    uint8 (10000, 3072) array in the same pixel order and ``labels`` a list of 10,000 ints.
    They are read with a restricted unpickler (:mod:`dlfs.data.safe_pickle`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dlfs.data.common import ImageDataset, build
from dlfs.data.paths import resolve_data_dir
from dlfs.data.safe_pickle import restricted_loads
from dlfs.data.sources import CIFAR10_BIN_FILES, CIFAR10_PY_FILES
from dlfs.errors import DataError

CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck")
NUM_CLASSES = 10
CHANNELS, HEIGHT, WIDTH = 3, 32, 32
PIXELS = CHANNELS * HEIGHT * WIDTH            # 3072
RECORD_BYTES = 1 + PIXELS                     # 3073
RECORDS_PER_BATCH = 10000
CANONICAL = -1                                # "records": the canonical RECORDS_PER_BATCH
BIN_FOLDER = "cifar-10-batches-bin"
PY_FOLDER = "cifar-10-batches-py"


def _check_labels(labels: np.ndarray, source: str) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        bad = int(np.argmax((labels < 0) | (labels >= NUM_CLASSES)))
        raise DataError(f"{source}: label {int(labels[bad])} of record {bad} is outside 0-9.")


def read_binary_batch(path: str | os.PathLike, records: int | None = CANONICAL
                      ) -> tuple[np.ndarray, np.ndarray]:
    """One binary batch -> (images uint8 (N, 3, 32, 32), labels uint8 (N,)).
    ``records``: the number of records required (default 10,000; None accepts any)."""
    records = RECORDS_PER_BATCH if records == CANONICAL else records
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror or exc}).") from None
    if len(raw) % RECORD_BYTES:
        raise DataError(f"{path}: size {len(raw):,} bytes is not a whole number of "
                        f"{RECORD_BYTES}-byte records (1 label + 3,072 pixels): the file is "
                        "truncated or not a CIFAR-10 binary batch.")
    n = len(raw) // RECORD_BYTES
    if records is not None and n != records:
        raise DataError(f"{path}: holds {n:,} records, expected {records:,} "
                        f"({records * RECORD_BYTES:,} bytes); the file is truncated or wrong.")
    table = np.frombuffer(raw, dtype=np.uint8).reshape(n, RECORD_BYTES)
    labels = table[:, 0].copy()
    _check_labels(labels, str(path))
    images = table[:, 1:].reshape(n, CHANNELS, HEIGHT, WIDTH)
    return images, labels


def _get(d: dict, key: str):
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    raise KeyError(key)


def read_python_batch(path: str | os.PathLike, records: int | None = CANONICAL
                      ) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch -> (images uint8 (N, 3, 32, 32), labels uint8 (N,)), unpickled with
    the restricted unpickler (only NumPy's array reconstruction is admitted).
    ``records``: the number of images required (default 10,000; None accepts any)."""
    records = RECORDS_PER_BATCH if records == CANONICAL else records
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror or exc}).") from None
    obj = restricted_loads(raw, source=str(path))
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a pickled dict, found {type(obj).__name__}.")
    try:
        data, labels = _get(obj, "data"), _get(obj, "labels")
    except KeyError as exc:
        raise DataError(f"{path}: the batch has no {exc.args[0]!r} entry "
                        f"(keys: {sorted(map(str, obj))}).") from None
    if isinstance(data, (bytes, bytearray)):
        data = np.frombuffer(data, dtype=np.uint8).reshape(-1, PIXELS) if len(data) % PIXELS == 0 \
            else None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != PIXELS:
        what = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: 'data' must be a uint8 array of shape (N, {PIXELS}), got {what}.")
    if not isinstance(labels, (list, tuple, np.ndarray)) or not all(
            isinstance(v, (int, np.integer)) for v in labels):
        raise DataError(f"{path}: 'labels' must be a list of ints.")
    labels = np.asarray(labels, dtype=np.int64)
    n = data.shape[0]
    if labels.shape != (n,):
        raise DataError(f"{path}: {n:,} images but {labels.size:,} labels.")
    if records is not None and n != records:
        raise DataError(f"{path}: holds {n:,} images, expected {records:,}; the file is "
                        "truncated or wrong.")
    _check_labels(labels, str(path))
    return data.reshape(n, CHANNELS, HEIGHT, WIDTH), labels.astype(np.uint8)


def _layout(folder: Path) -> tuple[str, tuple[str, ...], callable]:
    if folder.name == BIN_FOLDER or (folder / CIFAR10_BIN_FILES[0]).exists():
        return "binary", CIFAR10_BIN_FILES, read_binary_batch
    return "python", CIFAR10_PY_FILES, read_python_batch


def read_folder(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read and validate a ``cifar-10-batches-bin`` or ``cifar-10-batches-py`` folder:
    (x_train uint8 (50000, 3, 32, 32), y_train, x_test uint8 (10000, 3, 32, 32), y_test)."""
    folder = Path(folder)
    kind, names, reader = _layout(folder)
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataError(f"{folder}: missing {', '.join(missing)} (CIFAR-10 {kind} version).")
    parts = [reader(folder / n) for n in names]
    x_train = np.concatenate([p[0] for p in parts[:5]])
    y_train = np.concatenate([p[1] for p in parts[:5]])
    x_test, y_test = parts[5]
    return x_train, y_train, np.ascontiguousarray(x_test), y_test


def load_cifar10(data_dir: str | os.PathLike | None = None, *, normalize: bool = False
                 ) -> ImageDataset:
    """CIFAR-10, standard split: 50,000 training and 10,000 test images.

    Reads ``<data_dir>/cifar-10-batches-bin/`` (binary version) or, failing that,
    ``<data_dir>/cifar-10-batches-py/`` (python version). normalize: per-channel
    (x - mean) / std with the statistics of the training set (computed).

    Returns an ImageDataset: x_* (N, 3, 32, 32) float32 in [0, 1] (or normalised), y_* (N,)
    int64.
    """
    from dlfs.data.store import locate_or_raise

    folder = locate_or_raise("cifar10", resolve_data_dir(data_dir))
    x_tr, y_tr, x_te, y_te = read_folder(folder)
    return build("cifar10", x_tr, y_tr, x_te, y_te, CLASSES, normalize_=normalize, source=folder)


def validate_folder(folder: str | os.PathLike) -> str:
    """Read every batch and check it (raises DataError naming the file and the problem);
    returns a one-line summary."""
    x_train, _, x_test, _ = read_folder(folder)
    kind = _layout(Path(folder))[0]
    return f"{kind} version, {len(x_train):,} + {len(x_test):,} images"
