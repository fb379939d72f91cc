"""Checksums of local dataset files, computed once per file version, and whether a copy is
canonical.

``file_digests(path)`` remembers each file's MD5 and SHA-256 by absolute path, size and
modification time: in memory, and in ``<cache>/checksums.json`` (written atomically; a cache
that cannot be read or written only costs time), so a 30 MB CIFAR batch is hashed once, not on
every run. A file rewritten with the same size and modification time would keep its old entry;
tools that change a file update its modification time.

``describe_copy(name, folder)`` says in one line whether a dataset folder holds the canonical
files (every published checksum matches) or which files differ.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from dlfs.data.paths import cache_root
from dlfs.data.sources import RemoteFile, get_dataset, published_files

_CACHE_VERSION = 1
_lock = threading.Lock()
_memory: dict[str, dict] = {}
_loaded_from: Path | None = None          # the cache file already merged into _memory


def _cache_file() -> Path:
    return cache_root() / "checksums.json"


def _hash_file(path: Path) -> tuple[str, str]:
    """(md5, sha256) hex digests of a file, read in chunks."""
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            md5.update(chunk)
            sha.update(chunk)
    return md5.hexdigest(), sha.hexdigest()


def _load_disk() -> None:
    global _loaded_from
    if _loaded_from == _cache_file():
        return
    _loaded_from = _cache_file()
    try:
        raw = json.loads(_loaded_from.read_text(encoding="utf-8"))
        if raw.get("version") == _CACHE_VERSION and isinstance(raw.get("files"), dict):
            for key, entry in raw["files"].items():
                _memory.setdefault(key, entry)
    except (OSError, ValueError, AttributeError):
        pass


def _save_disk() -> None:
    from dlfs.io import atomic_write_json

    try:
        atomic_write_json(_cache_file(), {"version": _CACHE_VERSION, "files": _memory})
    except OSError:
        pass


def forget() -> None:
    """Drop what this process remembers (the file under the cache dir stays)."""
    global _loaded_from
    with _lock:
        _memory.clear()
        _loaded_from = None


def file_digests(path: str | os.PathLike) -> tuple[str, str]:
    """(md5, sha256) hex digests of a file, computed once per (path, size, mtime)."""
    path = Path(path).absolute()
    st = path.stat()
    key = str(path)
    with _lock:
        _load_disk()
        entry = _memory.get(key)
        if entry and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
            return entry["md5"], entry["sha256"]
    md5, sha = _hash_file(path)
    with _lock:
        _memory[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "md5": md5, "sha256": sha}
        _save_disk()
    return md5, sha


def matches_checksums(path: str | os.PathLike, remote: RemoteFile) -> bool:
    """True if ``path`` exists and every published checksum of ``remote`` matches it."""
    path = Path(path)
    if not path.is_file() or (remote.md5 is None and remote.sha256 is None):
        return False
    if remote.size is not None and path.stat().st_size != remote.size:
        return False
    md5, sha = file_digests(path)
    return (remote.md5 in (None, md5)) and (remote.sha256 in (None, sha))


def _names(names: list[str]) -> str:
    return ", ".join(names)


def describe_copy(name: str, folder: str | os.PathLike) -> str:
    """One line on whether the copy of dataset ``name`` in ``folder`` is canonical.

    ``folder`` is the dataset's folder (``.../cifar-10-batches-py``) or a data dir holding it.
    Canonical means every file whose checksum is published matches it; otherwise the line says
    which files differ, which are missing and which match. Checksums are remembered per file
    version (see ``file_digests``).
    """
    from dlfs.data.store import locate

    ds = get_dataset(name)
    folder = Path(folder)
    if folder.name not in ds.folders:
        folder = locate(ds, folder) or folder
    published = published_files(ds.name, folder.name)
    if not published:
        return (f"no checksums are published for the files of {folder.name}/, so whether this "
                f"{ds.title} copy is canonical cannot be told (its format is checked)")
    same, differ, missing = [], [], []
    for remote in published:
        path = folder / remote.name
        if path.is_file():
            (same if matches_checksums(path, remote) else differ).append(remote.name)
        elif remote.name.endswith(".gz") and (folder / remote.name[:-3]).is_file():
            differ.append(f"{remote.name[:-3]} (uncompressed; the checksum is of the .gz)")
        else:
            missing.append(remote.name)
    if not differ and not missing:
        return (f"canonical files: the checksums of all {len(same)} ({_names(same)}) match "
                "the published ones")
    parts = []
    if differ:
        parts.append(f"{_names(differ)} {'differs' if len(differ) == 1 else 'differ'} from the "
                     "published checksums")
    if missing:
        parts.append(f"{_names(missing)} {'is' if len(missing) == 1 else 'are'} missing")
    if same:
        parts.append(f"{_names(same)} {'matches' if len(same) == 1 else 'match'}")
    return "not the canonical files: " + "; ".join(parts)
