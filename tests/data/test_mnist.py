import gzip

import numpy as np
import pytest

from dlfs.data import mnist
from dlfs.data.common import channel_stats
from dlfs.errors import DataError


def test_idx_round_trip_gzip_and_plain(tmp_path, fakes):
    written = fakes.write_mnist(tmp_path / "gz")
    fakes.write_mnist(tmp_path / "plain", compress=False)
    for folder in (tmp_path / "gz", tmp_path / "plain"):
        images = mnist.read_images(mnist.find_file(folder, "train-images-idx3-ubyte"))
        labels = mnist.read_labels(mnist.find_file(folder, "train-labels-idx1-ubyte"))
        np.testing.assert_array_equal(images, written["train"][0])
        np.testing.assert_array_equal(labels, written["train"][1])
        assert images.dtype == np.uint8 and images.shape == (12, 28, 28)


def _write(path, raw, compress=True):
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def test_bad_magic_number_names_file(tmp_path, fakes):
    labels = np.zeros(10, np.uint8)
    path = _write(tmp_path / "train-images-idx3-ubyte.gz", fakes.idx_bytes(labels))  # 2049
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: bad IDX magic number 2049 "
                                        r"\(expected 2051"):
        mnist.read_images(path)


def test_wrong_image_dimensions(tmp_path, fakes):
    path = _write(tmp_path / "x.gz", fakes.idx_bytes(np.zeros((3, 32, 32), np.uint8)))
    with pytest.raises(DataError, match="dimension 1 is 32, expected 28"):
        mnist.read_images(path)


def test_wrong_record_count(tmp_path, fakes):
    path = _write(tmp_path / "x.gz", fakes.idx_bytes(np.zeros((3, 28, 28), np.uint8)))
    with pytest.raises(DataError, match="record count is 3, expected 60000"):
        mnist.read_images(path, 60000)


def test_truncated_payload(tmp_path, fakes):
    raw = fakes.idx_bytes(np.zeros((4, 28, 28), np.uint8))[:-100]
    path = _write(tmp_path / "x.gz", raw)
    with pytest.raises(DataError, match=r"x\.gz: truncated: the header announces shape "
                                        r"\(4, 28, 28\) = 3,136 bytes of data but only 3,036"):
        mnist.read_images(path)


def test_trailing_garbage(tmp_path, fakes):
    path = _write(tmp_path / "x", fakes.idx_bytes(np.zeros(5, np.uint8)) + b"junk", compress=False)
    with pytest.raises(DataError, match="4 unexpected bytes"):
        mnist.read_labels(path)


def test_truncated_gzip_stream(tmp_path, fakes):
    data = gzip.compress(fakes.idx_bytes(np.arange(4 * 784, dtype=np.uint8).reshape(4, 28, 28)))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: the gzip stream is truncated"):
        mnist.read_images(path)


def test_corrupt_gzip_data(tmp_path, fakes):
    data = bytearray(gzip.compress(fakes.idx_bytes(np.zeros((4, 28, 28), np.uint8))))
    data[-8] ^= 0xFF         # damage the CRC-32 in the trailer
    path = tmp_path / "bad.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"bad\.gz: corrupt gzip data"):
        mnist.read_images(path)


def test_label_out_of_range(tmp_path, fakes):
    path = _write(tmp_path / "l.gz", fakes.idx_bytes(np.array([1, 2, 12, 3], np.uint8)))
    with pytest.raises(DataError, match="label 12 at index 2 is not a digit"):
        mnist.read_labels(path)


def test_too_short_and_missing(tmp_path):
    path = _write(tmp_path / "s", b"\x00\x00", compress=False)
    with pytest.raises(DataError, match="too short"):
        mnist.read_labels(path)
    with pytest.raises(DataError, match="missing train-images-idx3-ubyte.gz"):
        mnist.find_file(tmp_path, "train-images-idx3-ubyte")


def test_load_mnist_end_to_end(tmp_path, fakes, small_sizes):
    written = fakes.write_mnist(tmp_path / "mnist")
    ds = mnist.load_mnist(tmp_path)
    assert ds.x_train.shape == (12, 1, 28, 28) and ds.x_test.shape == (5, 1, 28, 28)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    np.testing.assert_allclose(ds.x_train[:, 0], written["train"][0] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, written["test"][1])
    # statistics come from the training images, not from constants
    u8 = written["train"][0].astype(np.float64) / 255.0
    np.testing.assert_allclose(ds.mean, [u8.mean()], rtol=1e-6)
    np.testing.assert_allclose(ds.std, [u8.std()], rtol=1e-6)
    norm = mnist.load_mnist(tmp_path, normalize=True)
    assert norm.normalized
    np.testing.assert_allclose(norm.x_train.mean(), 0.0, atol=1e-5)
    np.testing.assert_allclose(norm.x_train.std(), 1.0, atol=1e-5)
    np.testing.assert_allclose(norm.x_test, (ds.x_test - ds.mean[0]) / ds.std[0], atol=1e-5)


def test_decoded_cache_is_written_in_the_cache_dir_and_reused(tmp_path, fakes, small_sizes,
                                                              monkeypatch):
    from dlfs.data.paths import cache_root, decoded_cache_dir

    fakes.write_mnist(tmp_path / "mnist")
    before = sorted(p.name for p in (tmp_path / "mnist").iterdir())
    first = mnist.load_mnist(tmp_path)
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == before   # data untouched
    folder = decoded_cache_dir(tmp_path / "mnist", "mnist")
    assert folder.parent == cache_root() / "decoded"
    cached = sorted(p.name for p in folder.iterdir())
    assert cached == ["mnist-test-images.npy", "mnist-test-labels.npy", "mnist-test.json",
                      "mnist-train-images.npy", "mnist-train-labels.npy", "mnist-train.json"]

    def no_decoding(*a, **k):
        raise AssertionError("the IDX files were decoded again despite an up-to-date cache")

    monkeypatch.setattr(mnist, "read_split", no_decoding)
    second = mnist.load_mnist(tmp_path)
    np.testing.assert_array_equal(first.x_train, second.x_train)
    np.testing.assert_array_equal(first.y_test, second.y_test)


def test_stale_cache_is_ignored(tmp_path, fakes, small_sizes):
    fakes.write_mnist(tmp_path / "mnist", seed=1)
    mnist.load_mnist(tmp_path)
    written = fakes.write_mnist(tmp_path / "mnist", seed=2)        # the files change
    again = mnist.load_mnist(tmp_path)
    np.testing.assert_allclose(again.x_train[:, 0], written["train"][0] / 255.0, rtol=1e-6)


def test_read_only_data_dir_caches_in_cache_dir(tmp_path, fakes, small_sizes):
    from dlfs.data.paths import cache_root

    data = tmp_path / "ro"
    fakes.write_mnist(data / "mnist")
    (data / "mnist").chmod(0o555)
    data.chmod(0o555)
    try:
        mnist.load_mnist(data)
        expected = sorted(f"{p}-{k}.gz" for p in ("train", "t10k")
                          for k in ("images-idx3-ubyte", "labels-idx1-ubyte"))
        assert sorted(p.name for p in (data / "mnist").iterdir()) == expected   # untouched
        decoded = list((cache_root() / "decoded").glob("mnist-*/mnist-train-images.npy"))
        assert len(decoded) == 1
    finally:
        (data / "mnist").chmod(0o755)
        data.chmod(0o755)


def test_corrupt_cache_falls_back_to_decoding(tmp_path, fakes, small_sizes):
    written = fakes.write_mnist(tmp_path / "mnist")
    mnist.load_mnist(tmp_path)
    from dlfs.data.paths import decoded_cache_dir

    (decoded_cache_dir(tmp_path / "mnist", "mnist") / "mnist-train-images.npy").write_bytes(b"garbage")
    ds = mnist.load_mnist(tmp_path)
    np.testing.assert_allclose(ds.x_train[:, 0], written["train"][0] / 255.0, rtol=1e-6)


def test_missing_dataset_message(tmp_path):
    with pytest.raises(DataError) as err:
        mnist.load_mnist(tmp_path)
    msg = str(err.value)
    assert "MNIST handwritten digits not found in" in msg
    assert str(tmp_path / "mnist" / "train-images-idx3-ubyte.gz") in msg
    assert "DLFS_DATA_DIR" in msg and "dlfs data get mnist" in msg


def test_channel_stats_matches_numpy():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, size=(70, 3, 5, 6), dtype=np.uint8)
    mean, std = channel_stats(x)
    xf = x.astype(np.float64) / 255
    np.testing.assert_allclose(mean, xf.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(std, xf.std(axis=(0, 2, 3)), rtol=1e-6)


def test_partial_copy_names_the_missing_file(tmp_path, fakes, small_sizes):
    fakes.write_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"mnist: missing t10k-labels-idx1-ubyte\.gz"):
        mnist.load_mnist(tmp_path)
