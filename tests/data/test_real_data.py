"""Checks on the real datasets in ../shared/data (skipped when that folder is absent).

The MNIST and Tiny Shakespeare copies there are byte-identical to the canonical files; the
CIFAR-10 copy is not (its pixels went through JPEG), so it is checked by format and content.
"""

import numpy as np
import pytest

from dlfs.data import augment, cifar, load_mnist, load_shakespeare, store
from dlfs.data.common import channel_stats, to_unit_float

pytestmark = pytest.mark.slow

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def mnist_ds(shared_data, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:       # decoded arrays go to a private cache dir
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg")))
        return load_mnist(shared_data)


@pytest.fixture(scope="module")
def cifar_u8(shared_data):
    """The uint8 arrays that load_cifar10 converts (the float conversion itself is the same
    code as MNIST's, checked above on real data; skipping it here keeps this suite fast)."""
    folder = store.locate("cifar10", shared_data)
    assert folder is not None, f"no CIFAR-10 batches in {shared_data}"
    return cifar.read_folder(folder)


def test_mnist(mnist_ds):
    ds = mnist_ds
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert 0.0 == ds.x_train.min() and ds.x_train.max() == 1.0
    assert np.bincount(ds.y_train).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(ds.y_test).tolist() == MNIST_TEST_COUNTS
    np.testing.assert_allclose(ds.mean, [0.1307], atol=5e-5)
    np.testing.assert_allclose(ds.std, [0.3081], atol=5e-5)
    # the well-known first training label is a 5
    assert ds.y_train[0] == 5 and ds.y_test[0] == 7


def test_mnist_copy_is_canonical(shared_data):
    st = store.check("mnist", shared_data)
    assert st.valid and st.detail == "checksums match the canonical files"


def test_cifar10(cifar_u8):
    x_train, y_train, x_test, y_test = cifar_u8
    assert x_train.shape == (50000, 3, 32, 32) and x_test.shape == (10000, 3, 32, 32)
    assert x_train.dtype == np.uint8
    assert np.bincount(y_train).tolist() == [5000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    mean, std = channel_stats(x_train)
    # the canonical statistics are (0.4914, 0.4822, 0.4465) / (0.2470, 0.2435, 0.2616); the
    # shared copy went through JPEG, which keeps the means and lowers the spread a little
    np.testing.assert_allclose(mean, [0.4914, 0.4822, 0.4465], atol=3e-3)
    np.testing.assert_allclose(std, [0.2470, 0.2435, 0.2616], atol=5e-3)
    assert y_train[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]     # the original order
    assert y_test[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]


def test_shakespeare(shared_data):
    ds = load_shakespeare(shared_data)
    assert len(ds.text) == 1_115_394 and ds.vocab_size == 65
    assert ds.train.size == 1_003_854 and ds.val.size == 111_540
    assert ds.text.startswith("First Citizen:\nBefore we proceed any further, hear me speak.")
    assert "".join(ds.vocab.chars[:13]) == "\n !$&',-.3:;?"
    assert ds.decode(ds.train[:14]) == "First Citizen:"
    st = store.check("shakespeare", shared_data)
    assert st.valid and st.detail.startswith("checksum matches the canonical file")


def test_cifar10_augmentation_on_a_real_batch(cifar_u8):
    x = to_unit_float(cifar_u8[0][:128])
    out = augment(x, 0)
    assert out.shape == x.shape and out.dtype == np.float32
    # every output image is a shifted (maybe mirrored) copy: its centre comes from the source
    assert all(np.isin(out[i, 0, 12:20, 12:20], x[i, 0]).all() for i in range(16))
    assert not np.array_equal(out, x)


def test_describe_copy_on_the_shared_datasets(shared_data):
    """The shared MNIST and Tiny Shakespeare are byte-identical to the canonical files; the
    shared CIFAR-10 batches were rebuilt from JPEGs, so their checksums differ (its
    batches.meta is the original)."""
    from dlfs.data import describe_copy

    assert describe_copy("mnist", shared_data / "mnist").startswith(
        "canonical files: the checksums of all 4")
    assert describe_copy("shakespeare", shared_data).startswith(
        "canonical files: the checksums of all 1 (input.txt)")
    assert describe_copy("cifar10", shared_data / "cifar-10-batches-py") == (
        "not the canonical files: data_batch_1, data_batch_2, data_batch_3, data_batch_4, "
        "data_batch_5, test_batch differ from the published checksums; batches.meta matches")
    assert "differ from the published checksums" in store.check("cifar10", shared_data).detail


def test_shakespeare_with_windows_line_endings_is_a_plausible_copy(shared_data, tmp_path):
    text = (shared_data / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    (tmp_path / "tinyshakespeare").mkdir()
    (tmp_path / "tinyshakespeare" / "input.txt").write_text(text.replace("\n", "\r\n"),
                                                            encoding="utf-8", newline="")
    st = store.check("shakespeare", tmp_path)
    assert st.valid and st.detail == ("plausible copy, not the canonical file (1,155,394 "
                                      "characters, 66 distinct)")
    assert len(load_shakespeare(tmp_path).text) == 1_155_394
