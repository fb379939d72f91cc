"""Where datasets live: ``--data-dir`` flag > ``$DLFS_DATA_DIR`` > the user's cache dir.

The cache dir is ``$XDG_CACHE_HOME/dlfs`` (default ``~/.cache/dlfs``). Everything derived from
the data (decoded ``.npy`` arrays, remembered checksums) goes under the cache dir, never into the
data folder, which may be read-only or shared.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from dlfs.io import is_writable_dir  # noqa: F401  (re-exported: one definition, in dlfs.io)

ENV_VAR = "DLFS_DATA_DIR"


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/dlfs``, or ``~/.cache/dlfs`` when XDG_CACHE_HOME is unset or relative."""
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "dlfs"


def resolve_data_dir(override: str | os.PathLike | None = None) -> Path:
    """The folder holding the datasets: ``override`` (the ``--data-dir`` flag) if given, else
    ``$DLFS_DATA_DIR`` if set and non-empty, else :func:`cache_root`. The folder need not exist."""
    if override is not None and str(override).strip():
        chosen = Path(override)
    elif os.environ.get(ENV_VAR, "").strip():
        chosen = Path(os.environ[ENV_VAR].strip())
    else:
        chosen = cache_root()
    return chosen.expanduser().absolute()


def source_of_dir(override: str | os.PathLike | None = None) -> str:
    """Which rule chose the data dir, for messages: 'the --data-dir flag', '$DLFS_DATA_DIR' or
    'the default cache dir'."""
    if override is not None and str(override).strip():
        return "--data-dir"
    if os.environ.get(ENV_VAR, "").strip():
        return f"${ENV_VAR}"
    return "the default cache dir"


def decoded_cache_dir(source_dir: Path, name: str) -> Path:
    """Where decoded arrays for the data in ``source_dir`` go: a folder under the cache dir
    keyed by the source folder's absolute path (``<cache>/decoded/<name>-<key>``)."""
    source_dir = Path(source_dir).absolute()
    key = hashlib.sha256(str(source_dir).encode("utf-8")).hexdigest()[:16]
    return cache_root() / "decoded" / f"{name}-{key}"
