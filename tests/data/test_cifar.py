import os
import pickle

import numpy as np
import pytest

from dlfs.data import cifar
from dlfs.data.safe_pickle import restricted_loads
from dlfs.errors import DataError


def test_binary_record_layout(tmp_path, fakes):
    """1 label byte, then 1024 red, 1024 green, 1024 blue bytes, each 32x32 row-major."""
    label = np.array([7], np.uint8)
    red, green, blue = (np.full(1024, v, np.uint8) for v in (10, 20, 30))
    red[32 * 2 + 5] = 99                                # row 2, column 5 of the red plane
    path = tmp_path / "b.bin"
    path.write_bytes(label.tobytes() + red.tobytes() + green.tobytes() + blue.tobytes())
    images, labels = cifar.read_binary_batch(path, records=1)
    assert labels.tolist() == [7]
    assert images.shape == (1, 3, 32, 32)
    assert images[0, 0, 2, 5] == 99 and images[0, 0, 2, 4] == 10
    assert images[0, 1].min() == images[0, 1].max() == 20 and images[0, 2].max() == 30


@pytest.mark.parametrize("layout", ["bin", "py"])
def test_both_layouts_load_the_same_arrays(tmp_path, fakes, small_sizes, layout):
    written = fakes.write_cifar(tmp_path, layout=layout)
    ds = cifar.load_cifar10(tmp_path)
    assert ds.x_train.shape == (100, 3, 32, 32) and ds.x_test.shape == (20, 3, 32, 32)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    train = np.concatenate([written[f"data_batch_{i}"][0] for i in range(1, 6)])
    np.testing.assert_allclose(ds.x_train, train / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, written["test_batch"][1])
    assert ds.classes[0] == "airplane" and ds.classes[9] == "truck"
    xf = train.astype(np.float64) / 255
    np.testing.assert_allclose(ds.mean, xf.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(ds.std, xf.std(axis=(0, 2, 3)), rtol=1e-6)
    norm = cifar.load_cifar10(tmp_path, normalize=True)
    np.testing.assert_allclose(norm.x_train.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(norm.x_train.std(axis=(0, 2, 3)), 1, atol=1e-4)


def test_binary_layout_is_preferred_when_both_exist(tmp_path, fakes, small_sizes):
    fakes.write_cifar(tmp_path, layout="py", seed=0)
    written = fakes.write_cifar(tmp_path, layout="bin", seed=50)
    ds = cifar.load_cifar10(tmp_path)
    assert ds.source.name == "cifar-10-batches-bin"
    np.testing.assert_array_equal(ds.y_test, written["test_batch"][1])


def test_python3_pickles_with_new_numpy_name(tmp_path, fakes):
    images, labels = fakes.cifar_arrays(20, 1)
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(fakes.cifar_batch_dict(images, labels), protocol=4))
    got_images, got_labels = cifar.read_python_batch(path, records=20)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_truncated_binary_batch(tmp_path, fakes):
    images, labels = fakes.cifar_arrays(20, 0)
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(fakes.cifar_binary_bytes(images, labels)[:-10])
    with pytest.raises(DataError, match=r"data_batch_1\.bin: size 61,450 bytes is not a whole "
                                        r"number of 3073-byte records"):
        cifar.read_binary_batch(path, records=20)


def test_binary_batch_with_wrong_record_count(tmp_path, fakes):
    images, labels = fakes.cifar_arrays(20, 0)
    path = tmp_path / "test_batch.bin"
    path.write_bytes(fakes.cifar_binary_bytes(images, labels))
    with pytest.raises(DataError, match="holds 20 records, expected 10,000"):
        cifar.read_binary_batch(path)


def test_binary_label_out_of_range(tmp_path, fakes):
    images, labels = fakes.cifar_arrays(5, 0)
    labels[3] = 10
    path = tmp_path / "b.bin"
    path.write_bytes(fakes.cifar_binary_bytes(images, labels))
    with pytest.raises(DataError, match=r"b\.bin: label 10 of record 3 is outside 0-9"):
        cifar.read_binary_batch(path, records=5)


def test_python_batch_label_out_of_range(tmp_path, fakes):
    images, labels = fakes.cifar_arrays(5, 0)
    d = fakes.cifar_batch_dict(images, labels)
    d[b"labels"][1] = -1
    path = tmp_path / "data_batch_2"
    path.write_bytes(fakes.py2_pickle(d))
    with pytest.raises(DataError, match="data_batch_2: label -1 of record 1 is outside 0-9"):
        cifar.read_python_batch(path, records=5)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop(b"labels"), "has no 'labels' entry"),
    (lambda d: d.__setitem__(b"data", d[b"data"][:, :100]), r"must be a uint8 array of shape"),
    (lambda d: d.__setitem__(b"data", d[b"data"].astype(np.int32)), r"got int32"),
    (lambda d: d.__setitem__(b"labels", d[b"labels"][:-1]), "5 images but 4 labels"),
])
def test_python_batch_wrong_content(tmp_path, fakes, mutate, message):
    images, labels = fakes.cifar_arrays(5, 0)
    d = fakes.cifar_batch_dict(images, labels)
    mutate(d)
    path = tmp_path / "data_batch_3"
    path.write_bytes(fakes.py2_pickle(d))
    with pytest.raises(DataError, match=message):
        cifar.read_python_batch(path, records=5)


def test_python_batch_with_wrong_count(tmp_path, fakes):
    images, labels = fakes.cifar_arrays(7, 0)
    path = tmp_path / "test_batch"
    path.write_bytes(fakes.py2_pickle(fakes.cifar_batch_dict(images, labels)))
    with pytest.raises(DataError, match="holds 7 images, expected 10,000"):
        cifar.read_python_batch(path)


def test_truncated_pickle(tmp_path, fakes):
    images, labels = fakes.cifar_arrays(5, 0)
    data = fakes.py2_pickle(fakes.cifar_batch_dict(images, labels))
    path = tmp_path / "data_batch_4"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="data_batch_4: not a readable pickle, it is corrupt or "
                                        "truncated"):
        cifar.read_python_batch(path, records=5)


def test_missing_batch_file(tmp_path, fakes, small_sizes):
    fakes.write_cifar(tmp_path, layout="bin")
    (tmp_path / "cifar-10-batches-bin" / "data_batch_3.bin").unlink()
    with pytest.raises(DataError, match=r"missing data_batch_3\.bin \(CIFAR-10 binary version\)"):
        cifar.load_cifar10(tmp_path)


# ------------------------------------------------------------------ malicious pickles

class _RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Evals:
    def __reduce__(self):
        return (eval, ("__import__('os').getpid()",))


def test_os_system_pickle_is_refused_without_running(tmp_path, fakes):
    marker = tmp_path / "pwned"
    images, labels = fakes.cifar_arrays(3, 0)
    d = fakes.cifar_batch_dict(images, labels)
    d[b"batch_label"] = _RunsACommand(marker)
    payload = fakes.py2_pickle(d)     # a canonical-looking batch carrying a command
    assert b"\nsystem\n" in payload
    path = tmp_path / "data_batch_1"
    path.write_bytes(payload)
    with pytest.raises(DataError, match=r"data_batch_1: refusing to unpickle: it references "
                                        r"(posix|os|nt)\.system, which is not allowed"):
        cifar.read_python_batch(path, records=3)
    assert not marker.exists()


@pytest.mark.parametrize("payload", [
    pickle.dumps(_Evals(), protocol=4),
    pickle.dumps(_Evals(), protocol=0),
    b"cbuiltins\ngetattr\n.",
    b"cnumpy\nload\n.",
    b"cnumpy.core.multiarray\nscalar\n.",
    b"\x80\x02c_codecs\nencode\n.",
])
def test_other_globals_are_refused(payload):
    with pytest.raises(DataError, match="refusing to unpickle"):
        restricted_loads(payload, source="evil.pkl")


def test_plain_data_needs_no_globals():
    obj = {b"labels": [1, 2], b"name": b"x", "n": 3, "f": 1.5, "t": (1, None, True)}
    for protocol in (3, 4, 5):
        assert restricted_loads(pickle.dumps(obj, protocol=protocol)) == obj
