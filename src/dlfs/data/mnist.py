"""MNIST: the IDX file format, validation, and a loader with a decoded ``.npy`` cache.

IDX files (http://yann.lecun.com/exdb/mnist/): a big-endian header
``0x00 0x00 <type> <ndim>`` (so images have magic 2051 = 0x0803: unsigned bytes, 3 dims;
labels 2049 = 0x0801: unsigned bytes, 1 dim), then one big-endian uint32 per dimension, then
the data, row-major. The canonical files are gzip-compressed; uncompressed copies work too.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from dlfs.data.common import ImageDataset, build
from dlfs.data.paths import decoded_cache_dir, is_writable_dir, resolve_data_dir
from dlfs.errors import DataError

IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049
ROWS = COLS = 28
NUM_CLASSES = 10
CLASSES = tuple(str(d) for d in range(10))

# split -> (images base name, labels base name); files are looked for as NAME.gz, then NAME
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SPLIT_SIZES = {"train": 60000, "test": 10000}

_CACHE_VERSION = 1


def find_file(folder: Path, base: str) -> Path:
    """``folder/base.gz`` or, failing that, an uncompressed ``folder/base``."""
    for candidate in (folder / f"{base}.gz", folder / base):
        if candidate.is_file():
            return candidate
    raise DataError(f"{folder}: missing {base}.gz (the MNIST file; an uncompressed {base} "
                    "is accepted too).")


def read_raw(path: str | os.PathLike) -> bytes:
    """The file's bytes, gunzipped if it starts with the gzip magic. Corrupt or truncated
    gzip data raises DataError naming the file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror or exc}).") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise DataError(f"{path}: the gzip stream is truncated (the file ends before the "
                        "end-of-stream marker); download it again.") from None
    except (OSError, zlib.error) as exc:       # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: corrupt gzip data ({exc}); download it again.") from None


def parse_idx(data: bytes, *, source: str, expected_magic: int,
              expected_shape: tuple[int | None, ...]) -> np.ndarray:
    """Parse IDX bytes into a uint8 array, checking the magic number, each dimension against
    ``expected_shape`` (None = any) and that the payload has exactly the announced size."""
    if len(data) < 4:
        raise DataError(f"{source}: too short for an IDX file ({len(data)} bytes).")
    magic = struct.unpack(">i", data[:4])[0]
    if magic != expected_magic:
        raise DataError(f"{source}: bad IDX magic number {magic} (expected {expected_magic}: "
                        f"{'images' if expected_magic == IMAGE_MAGIC else 'labels'}, unsigned "
                        "bytes). Is it the right file, or was it damaged?")
    ndim = magic & 0xFF
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(f"{source}: truncated IDX header ({len(data)} bytes, need {header_len}).")
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    for axis, (got, want) in enumerate(zip(dims, expected_shape)):
        if want is not None and got != want:
            what = "record count" if axis == 0 else f"dimension {axis}"
            raise DataError(f"{source}: {what} is {got}, expected {want} (header says "
                            f"shape {tuple(dims)}).")
    expected_bytes = int(np.prod(dims, dtype=np.int64))
    payload = len(data) - header_len
    if payload < expected_bytes:
        raise DataError(f"{source}: truncated: the header announces shape {tuple(dims)} = "
                        f"{expected_bytes:,} bytes of data but only {payload:,} are present.")
    if payload > expected_bytes:
        raise DataError(f"{source}: {payload - expected_bytes:,} unexpected bytes after the "
                        f"{expected_bytes:,} bytes announced by the header.")
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims)


def read_images(path: str | os.PathLike, count: int | None = None) -> np.ndarray:
    """IDX image file -> uint8 (N, 28, 28)."""
    return parse_idx(read_raw(path), source=str(path), expected_magic=IMAGE_MAGIC,
                     expected_shape=(count, ROWS, COLS))


def read_labels(path: str | os.PathLike, count: int | None = None) -> np.ndarray:
    """IDX label file -> uint8 (N,), every value checked to be a digit 0..9."""
    labels = parse_idx(read_raw(path), source=str(path), expected_magic=LABEL_MAGIC,
                       expected_shape=(count,))
    if labels.size and labels.max() >= NUM_CLASSES:
        bad = int(np.argmax(labels >= NUM_CLASSES))
        raise DataError(f"{path}: label {int(labels[bad])} at index {bad} is not a digit 0-9.")
    return labels


def read_split(folder: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode one split from the IDX files: (images uint8 (N, 28, 28), labels uint8 (N,))."""
    folder = Path(folder)
    img_base, lbl_base = SPLIT_FILES[split]
    count = SPLIT_SIZES[split]
    images = read_images(find_file(folder, img_base), count)
    labels = read_labels(find_file(folder, lbl_base), count)
    return images, labels


# ----------------------------------------------------------------- decoded .npy cache

def _stamp(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path.absolute()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _cache_paths(folder: Path, split: str) -> tuple[Path, Path, Path]:
    d = decoded_cache_dir(folder, "mnist")
    return d / f"mnist-{split}-images.npy", d / f"mnist-{split}-labels.npy", d / f"mnist-{split}.json"


def _read_cache(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    img_npy, lbl_npy, manifest = _cache_paths(folder, split)
    try:
        meta = json.loads(manifest.read_text(encoding="utf-8"))
        sources = [_stamp(find_file(folder, b)) for b in SPLIT_FILES[split]]
        if meta.get("version") != _CACHE_VERSION or meta.get("sources") != sources:
            return None
        images = np.load(img_npy, allow_pickle=False)
        labels = np.load(lbl_npy, allow_pickle=False)
    except (OSError, ValueError, DataError):
        return None
    n = SPLIT_SIZES[split]
    if (images.dtype != np.uint8 or images.shape != (n, ROWS, COLS) or labels.dtype != np.uint8
            or labels.shape != (n,)):
        return None
    return images, labels


def _write_cache(folder: Path, split: str, images: np.ndarray, labels: np.ndarray) -> Path | None:
    from dlfs.io import atomic_write_bytes, atomic_write_json

    img_npy, lbl_npy, manifest = _cache_paths(folder, split)
    if not is_writable_dir(manifest.parent):
        return None
    try:
        for path, arr in ((img_npy, images), (lbl_npy, labels)):
            buf = io.BytesIO()
            np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
            atomic_write_bytes(path, buf.getvalue())
        sources = [_stamp(find_file(folder, b)) for b in SPLIT_FILES[split]]
        atomic_write_json(manifest, {"version": _CACHE_VERSION, "sources": sources})
    except OSError:
        return None          # a cache we cannot write only costs time
    return manifest.parent


def load_split(folder: str | os.PathLike, split: str, *, cache: bool = True
               ) -> tuple[np.ndarray, np.ndarray]:
    """One split as uint8 (images (N, 28, 28), labels (N,)), from the decoded cache when it is
    up to date with the IDX files, else decoded (and cached if ``cache``)."""
    folder = Path(folder)
    if cache:
        hit = _read_cache(folder, split)
        if hit is not None:
            return hit
    images, labels = read_split(folder, split)
    if cache:
        _write_cache(folder, split, images, labels)
    return images, labels


def load_mnist(data_dir: str | os.PathLike | None = None, *, normalize: bool = False,
               cache: bool = True) -> ImageDataset:
    """MNIST, standard split: 60,000 training and 10,000 test images.

    data_dir: the data dir (default: $DLFS_DATA_DIR, then the cache dir); files are read from
        ``<data_dir>/mnist/``.
    normalize: subtract the training-set mean and divide by its std (computed, ~0.1307/0.3081).
    cache: keep decoded ``.npy`` copies under the cache dir (never in the data folder) so later
        loads skip the decompression.

    Returns an ImageDataset: x_* (N, 1, 28, 28) float32 in [0, 1] (or normalised), y_* (N,)
    int64.
    """
    from dlfs.data.store import locate_or_raise

    folder = locate_or_raise("mnist", resolve_data_dir(data_dir))
    x_tr, y_tr = load_split(folder, "train", cache=cache)
    x_te, y_te = load_split(folder, "test", cache=cache)
    return build("mnist", x_tr[:, None], y_tr, x_te[:, None], y_te, CLASSES,
                 normalize_=normalize, source=folder)


def validate_folder(folder: str | os.PathLike) -> None:
    """Decode every split and check it (raises DataError naming the file and the problem)."""
    for split in SPLIT_FILES:
        read_split(Path(folder), split)
