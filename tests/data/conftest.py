"""Fixtures for the data-layer tests: an isolated environment, tiny files in the canonical
formats, and a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import gzip
import http.server
import io
import pickle
import struct
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = (REPO_ROOT / ".." / "shared" / "data").resolve()


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No data dir from the environment, a private cache dir, and no proxy for 127.0.0.1."""
    monkeypatch.delenv("DLFS_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


# ------------------------------------------------------------------ canonical-format writers

def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = magic if magic is not None else (0x0800 | array.ndim)
    header = struct.pack(">i", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_mnist(folder: Path, n_train: int = 12, n_test: int = 5, seed: int = 0, *,
                compress: bool = True) -> dict:
    """Tiny MNIST files in the canonical IDX (gzip) format; returns the arrays written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        rng.shuffle(labels)
        for kind, arr in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
            raw = idx_bytes(arr)
            name = f"{prefix}-{kind}"
            if compress:
                (folder / f"{name}.gz").write_bytes(gzip.compress(raw, mtime=0))
            else:
                (folder / name).write_bytes(raw)
        out[split] = (images, labels)
    return out


def cifar_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    return images, labels


def cifar_binary_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    records = np.concatenate([labels[:, None].astype(np.uint8), images.reshape(len(images), -1)],
                             axis=1)
    return records.tobytes()


class Py2StylePickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` opcodes, as the canonical CIFAR batches are written."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_bytes_py2(self, obj):
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_bytes_py2


def py2_pickle(obj, *, old_numpy_name: bool = True) -> bytes:
    buf = io.BytesIO()
    Py2StylePickler(buf, protocol=2).dump(obj)
    data = buf.getvalue()
    if old_numpy_name:   # what NumPy 1.x (and the canonical files) call the function
        data = data.replace(b"cnumpy._core.multiarray\n_reconstruct\n",
                            b"cnumpy.core.multiarray\n_reconstruct\n")
    return data


def cifar_batch_dict(images: np.ndarray, labels: np.ndarray) -> dict:
    return {b"batch_label": b"testing batch", b"labels": [int(v) for v in labels],
            b"data": images.reshape(len(images), -1)}


def write_cifar(root: Path, per_batch: int = 20, *, layout: str = "bin", seed: int = 0) -> dict:
    """Tiny CIFAR-10 batches (5 train + test) in the binary or the python layout."""
    folder = root / ("cifar-10-batches-bin" if layout == "bin" else "cifar-10-batches-py")
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    out = {}
    for k, name in enumerate(names):
        images, labels = cifar_arrays(per_batch, seed + k)
        if layout == "bin":
            (folder / f"{name}.bin").write_bytes(cifar_binary_bytes(images, labels))
        else:
            (folder / name).write_bytes(py2_pickle(cifar_batch_dict(images, labels)))
        out[name] = (images, labels)
    return out


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


@pytest.fixture
def fakes():
    """The writers above, for the tests."""
    import types

    return types.SimpleNamespace(
        idx_bytes=idx_bytes, write_mnist=write_mnist, cifar_arrays=cifar_arrays,
        cifar_binary_bytes=cifar_binary_bytes, py2_pickle=py2_pickle,
        cifar_batch_dict=cifar_batch_dict, write_cifar=write_cifar, make_tar=make_tar)


@pytest.fixture
def small_sizes(monkeypatch):
    """Let the canonical record counts be small, for end-to-end tests on tiny files."""
    from dlfs.data import cifar, mnist

    monkeypatch.setattr(mnist, "SPLIT_SIZES", {"train": 12, "test": 5})
    monkeypatch.setattr(cifar, "RECORDS_PER_BATCH", 20)
    return {"mnist": (12, 5), "cifar": 20}


# ------------------------------------------------------------------ a local HTTP server

class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict = {}

    def log_message(self, *args):      # keep test output clean
        pass

    def do_GET(self):
        route = self.routes.get(self.path)
        if route is None:
            self.send_error(404, "Not Found")
            return
        body, mode = route
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if mode == "short":                 # announce more than we send, then hang up
            self.send_header("Content-Length", str(len(body) + 5000))
        elif mode != "no-length":
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True


class LocalServer:
    def __init__(self):
        handler = type("Handler", (_Handler,), {"routes": {}})
        self.routes = handler.routes
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)

    def serve(self, path: str, body: bytes, mode: str = "ok") -> str:
        """Serve ``body`` at ``path``; mode 'short' announces a longer Content-Length than sent,
        'no-length' sends no Content-Length. Returns the URL."""
        self.routes[path] = (body, mode)
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def server():
    srv = LocalServer()
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real datasets (../shared/data from the repo root), or skip."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not available: {SHARED_DATA} does not exist "
                    "(it holds MNIST, CIFAR-10 and Tiny Shakespeare for offline machines)")
    return SHARED_DATA
