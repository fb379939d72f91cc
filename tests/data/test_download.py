"""Downloads against a real HTTP server on 127.0.0.1 serving small files made here."""

import dataclasses
import hashlib
import io
import tarfile

import pytest

from dlfs.data import sources, store
from dlfs.data.download import DownloadError, download_file
from dlfs.data.sources import RemoteFile
from dlfs.errors import DataError

BODY = b"To be, or not to be, that is the question:\n" * 300


def _remote(*urls, body=BODY, name="input.txt", **kw):
    sums = dict(md5=hashlib.md5(body).hexdigest(), sha256=hashlib.sha256(body).hexdigest())
    sums.update(kw)
    return RemoteFile(name, tuple(urls), **sums)


def _leftovers(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_success_renames_verified_file(tmp_path, server):
    url = server.serve("/input.txt", BODY)
    dest = download_file(_remote(url), tmp_path / "dl" / "input.txt", progress=False)
    assert dest.read_bytes() == BODY
    assert _leftovers(tmp_path / "dl") == ["input.txt"]


def test_success_without_content_length(tmp_path, server):
    url = server.serve("/input.txt", BODY, mode="no-length")
    download_file(_remote(url), tmp_path / "input.txt", progress=False)
    assert (tmp_path / "input.txt").read_bytes() == BODY


def test_checksum_mismatch_keeps_nothing(tmp_path, server):
    url = server.serve("/input.txt", BODY.replace(b"question", b"QUESTION"))
    with pytest.raises(DownloadError) as err:
        download_file(_remote(url), tmp_path / "input.txt", progress=False, timeout=5)
    msg = str(err.value)
    assert url in msg and "checksum mismatch: expected SHA-256 " + hashlib.sha256(BODY).hexdigest() in msg
    assert "partial or unverified downloads are deleted" in msg
    assert _leftovers(tmp_path) == []


def test_md5_only_mismatch(tmp_path, server):
    url = server.serve("/a.tar.gz", BODY)
    remote = _remote(url, name="a.tar.gz", md5="0" * 32, sha256=None)
    with pytest.raises(DownloadError, match="checksum mismatch: expected MD5 0000"):
        download_file(remote, tmp_path / "a.tar.gz", progress=False, timeout=5)
    assert _leftovers(tmp_path) == []


def test_interrupted_transfer_keeps_nothing(tmp_path, server):
    url = server.serve("/input.txt", BODY, mode="short")       # Content-Length > body, then close
    with pytest.raises(DownloadError) as err:
        download_file(_remote(url), tmp_path / "input.txt", progress=False, timeout=5)
    assert "transfer interrupted" in str(err.value) and f"{len(BODY) + 5000:,}" in str(err.value)
    assert _leftovers(tmp_path) == []


def test_wrong_size_without_length_header(tmp_path, server):
    url = server.serve("/input.txt", BODY[:100], mode="no-length")
    remote = _remote(url, sha256=None, md5=None, size=len(BODY))
    with pytest.raises(DownloadError, match=f"wrong size: expected {len(BODY):,} bytes, got 100"):
        download_file(remote, tmp_path / "input.txt", progress=False, timeout=5)
    assert _leftovers(tmp_path) == []


def test_404_then_mirror(tmp_path, server):
    good = server.serve("/mirror/input.txt", BODY)
    missing = server.url("/canonical/input.txt")
    download_file(_remote(missing, good), tmp_path / "input.txt", progress=False, timeout=5)
    assert (tmp_path / "input.txt").read_bytes() == BODY


def test_404_everywhere(tmp_path, server):
    url = server.url("/nothing/input.txt")
    with pytest.raises(DownloadError) as err:
        download_file(_remote(url), tmp_path / "input.txt", progress=False, timeout=5)
    assert f"{url}: HTTP 404" in str(err.value) and not err.value.offline
    assert _leftovers(tmp_path) == []


def test_offline(tmp_path, unused_port):
    url = f"http://127.0.0.1:{unused_port}/input.txt"
    with pytest.raises(DownloadError) as err:
        download_file(_remote(url), tmp_path / "input.txt", progress=False, timeout=5)
    assert err.value.offline
    assert url in str(err.value) and "could not connect" in str(err.value)
    assert "are you offline?" in str(err.value)
    assert _leftovers(tmp_path) == []


def test_stale_part_file_is_replaced(tmp_path, server):
    (tmp_path / "input.txt.part").write_bytes(b"left over by a killed process")
    url = server.serve("/input.txt", BODY)
    download_file(_remote(url), tmp_path / "input.txt", progress=False)
    assert _leftovers(tmp_path) == ["input.txt"]


# ------------------------------------------------------------------ whole datasets

def _patch_dataset(monkeypatch, name, **changes):
    ds = dataclasses.replace(sources.DATASETS[name], **changes)
    monkeypatch.setitem(sources.DATASETS, name, ds)
    return ds


def test_fetch_shakespeare_then_already_present(tmp_path, server, monkeypatch):
    url = server.serve("/input.txt", BODY)
    _patch_dataset(monkeypatch, "shakespeare", files=(_remote(url),))
    said = []
    status = store.fetch("tinyshakespeare", tmp_path, progress=False, echo=said.append)
    assert status.valid and status.folder == tmp_path / "tinyshakespeare"
    assert "checksum matches the canonical file" in status.detail
    assert (tmp_path / "tinyshakespeare" / "input.txt").read_bytes() == BODY
    server.routes.clear()                         # a second get needs no network
    again = store.fetch("shakespeare", tmp_path, progress=False, echo=said.append)
    assert again.valid and "already in" in said[-1]


def test_fetch_offline_message(tmp_path, unused_port, monkeypatch):
    urls = [f"http://127.0.0.1:{unused_port}/{n}" for n in ("a/input.txt", "b/input.txt")]
    _patch_dataset(monkeypatch, "shakespeare", files=(_remote(*urls),))
    with pytest.raises(DataError) as err:
        store.fetch("shakespeare", tmp_path, progress=False, timeout=5)
    msg = str(err.value)
    for url in urls:
        assert url in msg
    assert str(tmp_path / "tinyshakespeare" / "input.txt") in msg
    assert "DLFS_DATA_DIR=DIR" in msg and "--data-dir DIR" in msg
    assert f"The download of Tiny Shakespeare (char-rnn) failed; nothing was left behind in " \
           f"{tmp_path}." in msg
    assert "To supply the files by hand" in msg and "dlfs data get" not in msg
    assert _leftovers(tmp_path) == []                # not even the empty folder


def test_fetch_mnist_files(tmp_path, server, monkeypatch, fakes, small_sizes):
    made = tmp_path / "made"
    fakes.write_mnist(made)
    files = []
    for rf in sources.MNIST.files:
        body = (made / rf.name).read_bytes()
        files.append(_remote(server.serve(f"/mnist/{rf.name}", body), body=body, name=rf.name))
    _patch_dataset(monkeypatch, "mnist", files=tuple(files))
    status = store.fetch("mnist", tmp_path / "data", progress=False)
    assert status.valid and "checksums match" in status.detail
    assert _leftovers(tmp_path / "data") == sorted(["mnist"] + [f"mnist/{f.name}" for f in files])


def _cifar_archive(fakes, tmp_path, *, corrupt_one=False):
    src = tmp_path / "src"
    fakes.write_cifar(src, layout="bin")
    if corrupt_one:
        p = src / "cifar-10-batches-bin" / "data_batch_2.bin"
        p.write_bytes(p.read_bytes()[:-1])
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src / "cifar-10-batches-bin", arcname="cifar-10-batches-bin")
    return buf.getvalue()


def test_fetch_cifar_archive_extracts_and_validates(tmp_path, server, monkeypatch, fakes,
                                                    small_sizes):
    body = _cifar_archive(fakes, tmp_path)
    url = server.serve("/cifar-10-binary.tar.gz", body)
    _patch_dataset(monkeypatch, "cifar10",
                   files=(_remote(url, body=body, name="cifar-10-binary.tar.gz", sha256=None),))
    data = tmp_path / "data"
    status = store.fetch("cifar10", data, progress=False)
    assert status.valid and status.folder == data / "cifar-10-batches-bin"
    assert _leftovers(data)[0] == "cifar-10-batches-bin"
    assert not list(data.glob("*.tar.gz")) and not list(data.glob(".extract-*"))
    from dlfs.data import load_cifar10
    assert load_cifar10(data).x_train.shape == (100, 3, 32, 32)


def test_fetch_cifar_archive_with_bad_batch_installs_nothing(tmp_path, server, monkeypatch,
                                                             fakes, small_sizes):
    body = _cifar_archive(fakes, tmp_path, corrupt_one=True)
    url = server.serve("/cifar-10-binary.tar.gz", body)
    _patch_dataset(monkeypatch, "cifar10",
                   files=(_remote(url, body=body, name="cifar-10-binary.tar.gz", sha256=None),))
    data = tmp_path / "data"
    with pytest.raises(DataError, match=r"data_batch_2\.bin: size .* not a whole number"):
        store.fetch("cifar10", data, progress=False)
    assert _leftovers(data) == []


def test_fetch_cifar_archive_with_traversal_is_refused(tmp_path, server, monkeypatch):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    body = buf.getvalue()
    url = server.serve("/cifar-10-binary.tar.gz", body)
    _patch_dataset(monkeypatch, "cifar10",
                   files=(_remote(url, body=body, name="cifar-10-binary.tar.gz", sha256=None),))
    data = tmp_path / "a" / "b" / "data"
    with pytest.raises(DataError, match="refusing member '../../escaped.txt'"):
        store.fetch("cifar10", data, progress=False)
    assert _leftovers(data) == [] and not list(tmp_path.rglob("escaped.txt"))


def test_fetch_into_read_only_dir(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(DataError, match="is read-only.*--data-dir DIR or DLFS_DATA_DIR=DIR"):
            store.fetch("shakespeare", ro, progress=False)
    finally:
        ro.chmod(0o755)


def test_check_reports_invalid_and_missing(tmp_path, fakes, small_sizes):
    assert store.check("mnist", tmp_path).detail == "not present"
    fakes.write_mnist(tmp_path / "mnist")
    st = store.check("mnist", tmp_path)
    assert st.valid and st.detail.startswith("valid format (not byte-identical")
    p = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    p.write_bytes(p.read_bytes()[:10])
    st = store.check("mnist", tmp_path)
    assert st.present and not st.valid and "t10k-labels-idx1-ubyte.gz" in st.detail


def test_failed_download_removes_stale_part_file(tmp_path, unused_port):
    (tmp_path / "input.txt.part").write_bytes(b"left over by a killed process")
    with pytest.raises(DownloadError):
        download_file(_remote(f"http://127.0.0.1:{unused_port}/x"), tmp_path / "input.txt",
                      progress=False, timeout=5)
    assert _leftovers(tmp_path) == []


def test_failed_mnist_download_leaves_nothing_and_says_how_to_supply_files(
        tmp_path, server, monkeypatch, fakes, small_sizes):
    """The first file downloads, the second cannot be fetched: the first is removed again,
    and so are the folders the fetch created (the data dir did not exist either)."""
    made = tmp_path / "made"
    fakes.write_mnist(made)
    files = []
    for i, rf in enumerate(sources.MNIST.files):
        body = (made / rf.name).read_bytes()
        url = server.serve(f"/mnist/{rf.name}", body) if i == 0 else server.url(f"/gone/{rf.name}")
        files.append(_remote(url, body=body, name=rf.name))
    _patch_dataset(monkeypatch, "mnist", files=tuple(files))
    data = tmp_path / "new" / "data"
    with pytest.raises(DataError) as err:
        store.fetch("mnist", data, progress=False)
    msg = str(err.value)
    assert "Could not download train-labels-idx1-ubyte.gz" in msg and "HTTP 404" in msg
    assert f"The download of MNIST handwritten digits failed; nothing was left behind in {data}." \
        in msg
    assert str(data / "mnist" / "t10k-images-idx3-ubyte.gz") in msg
    assert "DLFS_DATA_DIR=DIR" in msg and "`dlfs data get mnist`" not in msg
    assert not (tmp_path / "new").exists()


def test_failed_download_keeps_what_was_there_before(tmp_path, unused_port, monkeypatch):
    url = f"http://127.0.0.1:{unused_port}/input.txt"
    _patch_dataset(monkeypatch, "shakespeare", files=(_remote(url),))
    folder = tmp_path / "tinyshakespeare"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="nothing was left behind"):
        store.fetch("shakespeare", tmp_path, progress=False, timeout=5)
    assert _leftovers(tmp_path) == ["tinyshakespeare", "tinyshakespeare/notes.txt"]
