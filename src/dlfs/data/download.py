"""Downloads that never leave a file that could be mistaken for valid data.

Each file is streamed to ``<name>.part`` next to its destination while its MD5 and SHA-256 are
computed, checked against the published checksums and the announced length, flushed to disk and
only then renamed into place (``os.replace`` is atomic). Any failure deletes the ``.part`` file.
URLs are tried in order (canonical first, then mirrors).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from dlfs.data.checksums import file_digests, matches_checksums  # noqa: F401  (re-exported)
from dlfs.data.sources import RemoteFile
from dlfs.errors import DataError

CHUNK = 1 << 16
USER_AGENT = "dlfs-data/0.1 (python-urllib)"


class DownloadError(DataError):
    """Every URL of one file failed. ``attempts`` holds (url, reason) pairs; ``offline`` is True
    when no server could be reached at all."""

    def __init__(self, message: str, attempts: list[tuple[str, str]], offline: bool):
        super().__init__(message)
        self.attempts = attempts
        self.offline = offline


@dataclass
class _Failure(Exception):
    reason: str
    unreachable: bool = False


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _fetch_one(url: str, part: Path, remote: RemoteFile, *, timeout: float, progress) -> None:
    """Stream ``url`` into ``part`` and verify it; raise _Failure (``part`` deleted) if not."""
    from tqdm.auto import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise _Failure(f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, socket.timeout, ConnectionError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Failure(f"could not connect ({reason})", unreachable=True) from None
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    received = 0
    try:
        with response:
            header = response.headers.get("Content-Length")
            expected_len = int(header) if header and header.isdigit() else None
            with open(part, "wb") as out, tqdm(
                total=expected_len or remote.size, unit="B", unit_scale=True, unit_divisor=1024,
                desc=remote.name, disable=(None if progress is None else not progress),
                leave=False, dynamic_ncols=True,
            ) as bar:
                while True:
                    try:
                        chunk = response.read(CHUNK)
                    except (http.client.IncompleteRead, OSError) as exc:
                        raise _Failure(
                            f"transfer interrupted after {received:,} bytes"
                            + (f" of {expected_len:,}" if expected_len else "")
                            + f" ({type(exc).__name__})") from None
                    if not chunk:
                        break
                    out.write(chunk)
                    md5.update(chunk)
                    sha.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
                out.flush()
                os.fsync(out.fileno())
        if expected_len is not None and received != expected_len:
            raise _Failure(f"transfer interrupted: received {received:,} of {expected_len:,} bytes")
        if remote.sha256 is not None and sha.hexdigest() != remote.sha256:
            raise _Failure(f"checksum mismatch: expected SHA-256 {remote.sha256}, "
                           f"got {sha.hexdigest()} ({received:,} bytes)")
        if remote.md5 is not None and md5.hexdigest() != remote.md5:
            raise _Failure(f"checksum mismatch: expected MD5 {remote.md5}, "
                           f"got {md5.hexdigest()} ({received:,} bytes)")
        if remote.size is not None and received != remote.size:
            raise _Failure(f"wrong size: expected {remote.size:,} bytes, got {received:,}")
    except BaseException:
        _unlink(part)
        raise


def download_file(remote: RemoteFile, dest: str | os.PathLike, *, timeout: float = 30.0,
                  progress: bool | None = None) -> Path:
    """Download ``remote`` to ``dest``, trying its URLs in order.

    The data goes to ``dest + '.part'`` first and is renamed to ``dest`` only once its length
    and checksums are right. On failure no ``.part`` file is left and DownloadError says, per
    URL, what went wrong. ``progress``: True shows a tqdm bar, False hides it, None shows it
    only on a terminal.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    attempts: list[tuple[str, str]] = []
    unreachable = 0
    for url in remote.urls:
        try:
            _fetch_one(url, part, remote, timeout=timeout, progress=progress)
        except _Failure as failure:
            attempts.append((url, failure.reason))
            unreachable += failure.unreachable
            continue
        os.replace(part, dest)
        return dest
    _unlink(part)                # e.g. one left by a process killed mid-transfer
    offline = unreachable == len(remote.urls)
    lines = "\n".join(f"  - {u}: {r}" for u, r in attempts)
    note = ("No file was kept: partial or unverified downloads are deleted."
            if not offline else "No server could be reached: are you offline?")
    raise DownloadError(f"Could not download {remote.name}.\n{lines}\n{note}", attempts, offline)
