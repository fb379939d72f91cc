import hashlib
import subprocess
import sys

from click.testing import CliRunner

from dlfs.data import sources
from dlfs.data.cli import data
from dlfs.data.sources import RemoteFile


def _run(*args, env=None):
    return CliRunner().invoke(data, list(args), env=env, catch_exceptions=False)


def test_importing_the_cli_is_cheap():
    code = ("import sys, dlfs.data.cli; "
            "print(sorted(m for m in ('numpy', 'tqdm', 'urllib.request', 'tarfile') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_list_empty_dir(tmp_path):
    result = _run("list", "--data-dir", str(tmp_path))
    assert result.exit_code == 0
    assert f"Data dir: {tmp_path}  (from --data-dir)" in result.output
    for name in ("mnist", "cifar10", "shakespeare", "word2vec"):
        assert f"missing {name}" in result.output
        assert f"`dlfs data get {name}`" in result.output


def test_list_uses_env_and_reports_valid_and_invalid(tmp_path, fakes, small_sizes):
    fakes.write_mnist(tmp_path / "mnist")
    fakes.write_cifar(tmp_path, layout="py")
    bad = tmp_path / "cifar-10-batches-py" / "test_batch"
    bad.write_bytes(bad.read_bytes()[:100])
    (tmp_path / "tinyshakespeare").mkdir()
    (tmp_path / "tinyshakespeare" / "input.txt").write_text("hello\n", encoding="utf-8")
    result = _run("list", env={"DLFS_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 0
    out = result.output
    assert "(from $DLFS_DATA_DIR)" in out
    assert f"ok      mnist        {tmp_path / 'mnist'}" in out
    assert f"INVALID cifar10      {tmp_path / 'cifar-10-batches-py'}" in out
    assert "test_batch: not a readable pickle" in out
    assert f"INVALID shakespeare  {tmp_path / 'tinyshakespeare'}" in out
    assert "input.txt: 6 characters, so it is not Tiny Shakespeare" in out


def test_get_offline_is_one_clear_error(tmp_path, unused_port, monkeypatch):
    url = f"http://127.0.0.1:{unused_port}/input.txt"
    rf = RemoteFile("input.txt", (url,), sha256=hashlib.sha256(b"x").hexdigest())
    monkeypatch.setitem(sources.DATASETS, "shakespeare",
                        sources.DATASETS["shakespeare"].__class__(
                            **{**sources.DATASETS["shakespeare"].__dict__, "files": (rf,)}))
    result = _run("get", "shakespeare", "--data-dir", str(tmp_path))
    assert result.exit_code == 4
    assert "error: Could not download input.txt." in result.output
    assert url in result.output and "DLFS_DATA_DIR=DIR" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "tinyshakespeare" / "input.txt").exists()
    assert not (tmp_path / "tinyshakespeare" / "input.txt.part").exists()


def test_get_downloads(tmp_path, server, monkeypatch):
    body = b"hello world\n" * 50
    url = server.serve("/input.txt", body)
    rf = RemoteFile("input.txt", (url,), sha256=hashlib.sha256(body).hexdigest())
    ds = sources.DATASETS["shakespeare"]
    monkeypatch.setitem(sources.DATASETS, "shakespeare",
                        ds.__class__(**{**ds.__dict__, "files": (rf,)}))
    result = _run("get", "shakespeare", "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "Tiny Shakespeare (char-rnn) is ready in" in result.output
    assert (tmp_path / "tinyshakespeare" / "input.txt").read_bytes() == body


def test_get_unknown_name():
    result = _run("get", "imagenet")
    assert result.exit_code == 2
    assert ("Unknown dataset 'imagenet'. Known datasets: mnist, cifar10, shakespeare, word2vec."
            in result.output)
