"""Atomic file writes: write a temporary file in the same folder, then rename.

A crash or a full disk can leave a stray temporary file, but never a half-written
target: readers see either the old content or the new one. A replaced file keeps its
permission bits; a new one gets the usual ``0o666`` minus the umask.

Also here: whether a place can be written (``is_writable_dir``, ``why_not_writable``) and
a free name for a backup (``unused_path``).
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (temp file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        mode = 0o666 & ~_UMASK
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _nearest_existing(path: Path) -> Path | None:
    p = Path(path)
    while not p.exists():
        if p.parent == p:
            return None
        p = p.parent
    return p


def _has_write_bits(path: Path) -> bool:
    try:
        return bool(stat.S_IMODE(path.stat().st_mode) & 0o222)
    except OSError:
        return False


def is_writable_dir(path: str | os.PathLike) -> bool:
    """True if we may create files in ``path`` (or, if it does not exist yet, in the nearest
    existing parent). A folder without write permission bits counts as read-only even for root,
    who could write there anyway: a shared read-only copy must stay untouched."""
    p = _nearest_existing(Path(path))
    if p is None or not p.is_dir():
        return False
    return _has_write_bits(p) and os.access(p, os.W_OK | os.X_OK)


def why_not_writable(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be (re)written atomically, in words, or None if it can.

    A file or folder without write permission bits counts as read-only, even for root.
    """
    path = Path(path)
    if path.exists():
        if not path.is_file():
            return f"{path} is not a regular file"
        if not _has_write_bits(path):
            return f"{path} is read-only"
    folder = _nearest_existing(path.parent)
    if folder is None:
        return f"none of the folders above {path} exists"
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    if not is_writable_dir(folder):
        return f"the folder {folder} is read-only"
    return None


def unused_path(path: str | os.PathLike, *, before_suffix: bool = True) -> Path:
    """``path`` if nothing is there yet, else the first free name with ``-1``, ``-2``, ...
    added before the last suffix (``a.2024.py`` -> ``a.2024-1.py``) or, with
    ``before_suffix=False``, at the end (``p.json.corrupt-2024`` -> ``p.json.corrupt-2024-1``)."""
    path = Path(path)
    candidate, n = path, 1
    while candidate.exists() or candidate.is_symlink():
        name = (f"{path.stem}-{n}{path.suffix}" if before_suffix else f"{path.name}-{n}")
        candidate = path.with_name(name)
        n += 1
    return candidate


def move_aside(path: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Move ``path`` to ``target``, or to the first free ``target-1``, ``target-2``, ... when
    that name is taken: an existing file is never overwritten, even by a concurrent move.
    Returns where the file went."""
    path, target = Path(path), Path(target)
    while True:
        candidate = unused_path(target, before_suffix=False)
        try:
            os.link(path, candidate)          # fails if candidate appeared meanwhile
        except FileExistsError:
            continue
        except OSError:                       # no hard links here (some network filesystems)
            os.replace(path, candidate)
            return candidate
        os.unlink(path)
        return candidate
