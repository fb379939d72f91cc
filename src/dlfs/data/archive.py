"""Safe extraction of downloaded tar archives.

Every member is checked before anything is written: only regular files and folders, no
absolute paths, no ``..`` components, no links or device files, and every target must resolve
inside the destination. The checks run on every Python version; where ``tarfile`` has
extraction filters (3.12, and 3.10.12+/3.11.4+) the ``"data"`` filter is applied as well.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path, PurePosixPath

from dlfs.errors import DataError


def _check_member(member: tarfile.TarInfo, dest: Path, archive: Path) -> None:
    name = member.name
    what = f"{archive.name}: refusing member {name!r}"
    if not (member.isfile() or member.isdir()):
        kind = ("a symbolic link" if member.issym() else "a hard link" if member.islnk()
                else "a device or special file")
        raise DataError(f"{what}: it is {kind}; only regular files and folders are extracted.")
    if not name or "\x00" in name:
        raise DataError(f"{what}: empty or invalid name.")
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise DataError(f"{what}: absolute path.")
    if ".." in posix.parts:
        raise DataError(f"{what}: path contains '..' (it would escape the destination).")
    target = (dest / Path(*posix.parts)).resolve()
    if target != dest and dest not in target.parents:
        raise DataError(f"{what}: path resolves outside the destination folder.")


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike) -> list[str]:
    """Extract the tar archive ``archive`` (any compression) into ``dest`` after checking every
    member; returns the member names. Raises DataError, before writing anything, if any member
    is unsafe, and DataError if the archive is corrupt or truncated."""
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    dest = dest.resolve()
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            members = tar.getmembers()
            for m in members:
                _check_member(m, dest, archive)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, members=members, filter="data")
            else:                                        # pragma: no cover - old Python 3.10
                tar.extractall(dest, members=members)
    except DataError:
        raise
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{archive}: cannot extract the archive, it is corrupt or truncated "
                        f"({type(exc).__name__}: {exc}).") from None
    return [m.name for m in members]
