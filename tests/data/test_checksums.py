"""Whether a dataset copy is canonical, from checksums computed once per file version."""

import hashlib
import os

import pytest

from dlfs.data import checksums, sources
from dlfs.data.sources import RemoteFile


@pytest.fixture(autouse=True)
def fresh_memory():
    checksums.forget()
    yield
    checksums.forget()


@pytest.fixture
def hashed(monkeypatch):
    """The files actually read to compute a checksum, in order."""
    calls = []
    real = checksums._hash_file

    def counting(path):
        calls.append(path.name)
        return real(path)

    monkeypatch.setattr(checksums, "_hash_file", counting)
    return calls


def _publish_cifar_py(monkeypatch, folder, *, tamper=()):
    """Publish the MD5s of the tiny python batches in ``folder`` as if they were canonical."""
    table = []
    for name in sorted(p.name for p in folder.iterdir()):
        md5 = hashlib.md5((folder / name).read_bytes()).hexdigest()
        table.append((name, "0" * 32 if name in tamper else md5))
    monkeypatch.setattr(sources, "_CIFAR10_PY_MD5", tuple(table))


def test_canonical_copy(tmp_path, fakes, monkeypatch):
    fakes.write_cifar(tmp_path, layout="py")
    folder = tmp_path / "cifar-10-batches-py"
    _publish_cifar_py(monkeypatch, folder)
    note = checksums.describe_copy("cifar10", folder)
    assert note == ("canonical files: the checksums of all 6 (data_batch_1, data_batch_2, "
                    "data_batch_3, data_batch_4, data_batch_5, test_batch) match the published ones")
    assert checksums.describe_copy("cifar10", tmp_path) == note      # the data dir works too


def test_which_files_differ_and_which_are_missing(tmp_path, fakes, monkeypatch):
    fakes.write_cifar(tmp_path, layout="py")
    folder = tmp_path / "cifar-10-batches-py"
    _publish_cifar_py(monkeypatch, folder, tamper=("data_batch_2", "test_batch"))
    (folder / "data_batch_5").unlink()
    from dlfs.data import describe_copy                                  # exported

    assert describe_copy("cifar10", folder) == (
        "not the canonical files: data_batch_2, test_batch differ from the published checksums; "
        "data_batch_5 is missing; data_batch_1, data_batch_3, data_batch_4 match")


def test_the_published_cifar_python_checksums_are_torchvisions():
    published = {f.name: f.md5 for f in sources.published_files("cifar10", "cifar-10-batches-py")}
    assert published["data_batch_1"] == "c99cafc152244af753f735de768cd75f"
    assert published["test_batch"] == "40351d587109b95175f43aff81a1287e"
    assert len(published) == 7 and sources.published_files("cifar10", "cifar-10-batches-bin") == ()


def test_binary_layout_has_no_published_checksums(tmp_path, fakes):
    fakes.write_cifar(tmp_path, layout="bin")
    note = checksums.describe_copy("cifar10", tmp_path / "cifar-10-batches-bin")
    assert note.startswith("no checksums are published for the files of cifar-10-batches-bin/")


def test_mnist_uncompressed_copy_is_not_canonical(tmp_path, fakes):
    fakes.write_mnist(tmp_path / "mnist", compress=False)
    note = checksums.describe_copy("mnist", tmp_path / "mnist")
    assert note.startswith("not the canonical files: train-images-idx3-ubyte (uncompressed; the "
                           "checksum is of the .gz)")


def test_checksums_are_computed_once_per_file_version(tmp_path, fakes, monkeypatch, hashed):
    fakes.write_cifar(tmp_path, layout="py")
    folder = tmp_path / "cifar-10-batches-py"
    _publish_cifar_py(monkeypatch, folder)
    first = checksums.describe_copy("cifar10", folder)
    assert sorted(hashed) == sorted(p.name for p in folder.iterdir())
    hashed.clear()
    assert checksums.describe_copy("cifar10", folder) == first and hashed == []
    checksums.forget()                  # a new process: the cache file under the cache dir
    assert checksums.describe_copy("cifar10", folder) == first and hashed == []
    assert (tmp_path / "xdg-cache" / "dlfs" / "checksums.json").is_file()
    batch = folder / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[::-1])                       # same size, new content
    st = batch.stat()
    os.utime(batch, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert "data_batch_3 differs" in checksums.describe_copy("cifar10", folder)
    assert hashed == ["data_batch_3"]


def test_a_broken_cache_file_only_costs_time(tmp_path, hashed):
    cache = tmp_path / "xdg-cache" / "dlfs" / "checksums.json"
    cache.parent.mkdir(parents=True)
    cache.write_text("{not json")
    f = tmp_path / "input.txt"
    f.write_bytes(b"hello")
    rf = RemoteFile("input.txt", (), sha256=hashlib.sha256(b"hello").hexdigest())
    assert checksums.matches_checksums(f, rf) and hashed == ["input.txt"]
