import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dlfs.data.batching import (BatchIterator, alternating_flip, augment, cutout, random_crop, random_flip,
                                 sample_blocks)


def test_batches_cover_every_row_once_in_order():
    x = np.arange(10 * 2).reshape(10, 2)
    y = np.arange(10)
    it = BatchIterator(x, y, batch_size=4)
    batches = list(it)
    assert len(it) == 3 and [len(b[1]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)
    np.testing.assert_array_equal(batches[1][0], x[4:8])


def test_drop_last_and_single_array():
    it = BatchIterator(np.arange(10), batch_size=4, drop_last=True)
    batches = list(it)
    assert len(it) == 2 and [b.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_shuffle_is_a_seeded_permutation_per_epoch():
    x = np.arange(50)
    y = x * 10
    it = BatchIterator(x, y, batch_size=8, shuffle=True, seed=3)
    epoch1 = [b for b in it]
    epoch2 = [b for b in it]
    order1 = np.concatenate([b[0] for b in epoch1])
    order2 = np.concatenate([b[0] for b in epoch2])
    assert sorted(order1.tolist()) == list(range(50)) and sorted(order2.tolist()) == list(range(50))
    assert not np.array_equal(order1, np.arange(50)) and not np.array_equal(order1, order2)
    for xb, yb in epoch1:                         # rows stay aligned across arrays
        np.testing.assert_array_equal(yb, xb * 10)
    again = BatchIterator(x, y, batch_size=8, shuffle=True, seed=3)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in again]), order1)


def test_transform_gets_the_batch_and_rng():
    seen = []

    def t(xb, rng):
        seen.append(isinstance(rng, np.random.Generator))
        return xb * 2

    out = list(BatchIterator(np.ones((5, 1)), np.zeros(5), batch_size=2, transform=t))
    assert all(seen) and len(seen) == 3 and out[0][0].tolist() == [[2.0], [2.0]]


def test_bad_arguments():
    with pytest.raises(ValueError, match="differ in length"):
        BatchIterator(np.zeros(3), np.zeros(4), batch_size=2)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        BatchIterator(np.zeros(3), batch_size=0)


def _crop_loop(x, padding, dy, dx):
    """The naive reference: one image at a time."""
    n, c, h, w = x.shape
    padded = np.zeros((n, c, h + 2 * padding, w + 2 * padding), x.dtype)
    padded[:, :, padding:padding + h, padding:padding + w] = x
    return np.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])


@settings(deadline=None, max_examples=30)
@given(n=st.integers(1, 6), c=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9),
       padding=st.integers(0, 4), seed=st.integers(0, 2**32 - 1))
def test_random_crop_matches_the_loop(n, c, h, w, padding, seed):
    x = np.random.default_rng(seed).random((n, c, h, w)).astype(np.float32)
    got = random_crop(x, padding, np.random.default_rng(seed))
    draws = np.random.default_rng(seed)
    dy = draws.integers(0, 2 * padding + 1, size=n)
    dx = draws.integers(0, 2 * padding + 1, size=n)
    np.testing.assert_array_equal(got, _crop_loop(x, padding, dy, dx))
    assert got.dtype == np.float32 and got.shape == x.shape


def _reflect(i, n):
    """np.pad's "reflect" index: the border pixel is not repeated."""
    return -i if i < 0 else 2 * (n - 1) - i if i >= n else i


@settings(deadline=None, max_examples=30)
@given(n=st.integers(1, 6), c=st.integers(1, 3), h=st.integers(3, 9), w=st.integers(3, 9),
       padding=st.integers(0, 2), seed=st.integers(0, 2**32 - 1))
def test_reflect_padded_crops_are_translations_with_mirrored_borders(n, c, h, w, padding, seed):
    x = np.random.default_rng(seed).random((n, c, h, w)).astype(np.float32)
    got = random_crop(x, padding, np.random.default_rng(seed), pad_mode="reflect")
    draws = np.random.default_rng(seed)
    dy = draws.integers(0, 2 * padding + 1, size=n)
    dx = draws.integers(0, 2 * padding + 1, size=n)
    want = np.empty_like(x)
    for k in range(n):
        for i in range(h):
            for j in range(w):
                want[k, :, i, j] = x[k, :, _reflect(i + dy[k] - padding, h), _reflect(j + dx[k] - padding, w)]
    np.testing.assert_array_equal(got, want, err_msg=f"reflect crops at offsets dy={dy}, dx={dx}")
    # the same draws through augment (no flip) give the same crops
    np.testing.assert_array_equal(augment(x, np.random.default_rng(seed), padding=padding, flip=False,
                                          pad_mode="reflect"), want)


def test_random_crop_rejects_an_unknown_pad_mode_and_a_reflection_larger_than_the_image():
    x = np.zeros((2, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="pad_mode must be"):
        random_crop(x, 2, 0, pad_mode="edge")
    with pytest.raises(ValueError, match="reflect padding of 4"):
        random_crop(x, 4, 0, pad_mode="reflect")


def test_random_crop_uses_several_offsets():
    x = np.ones((200, 1, 4, 4), np.float32)
    out = random_crop(x, 2, 0)
    zeros_per_image = (out == 0).sum(axis=(1, 2, 3))
    assert (zeros_per_image == 0).any() and (zeros_per_image > 0).any()
    assert len(np.unique(zeros_per_image)) > 3


def test_random_flip_matches_the_loop():
    x = np.random.default_rng(0).random((64, 3, 5, 7))
    got = random_flip(x, 0.5, np.random.default_rng(1))
    flip = np.random.default_rng(1).random(64) < 0.5
    assert 10 < flip.sum() < 54
    for i in range(64):
        np.testing.assert_array_equal(got[i], x[i, :, :, ::-1] if flip[i] else x[i])


@settings(deadline=None, max_examples=25)
@given(n=st.integers(1, 40), seed=st.integers(0, 2**32 - 1), epoch=st.integers(1, 50))
def test_alternating_flips_mirror_each_image_in_every_other_epoch(n, seed, epoch):
    x = np.random.default_rng(seed).random((n, 2, 3, 5)).astype(np.float32)
    mirrored = lambda out: np.array([np.array_equal(out[i], x[i, :, :, ::-1]) for i in range(n)])
    a, b = alternating_flip(x, seed, epoch), alternating_flip(x, seed, epoch + 1)
    assert a.dtype == np.float32 and a.shape == x.shape
    for out in (a, b):
        unchanged = np.array([np.array_equal(out[i], x[i]) for i in range(n)])
        assert (mirrored(out) ^ unchanged).all(), "every image must be either itself or its mirror image"
    assert (mirrored(a) != mirrored(b)).all(), \
        f"epochs {epoch} and {epoch + 1} must mirror complementary images: {mirrored(a)} then {mirrored(b)}"
    np.testing.assert_array_equal(alternating_flip(x, seed, epoch + 2), a, err_msg="the pattern has period 2")


def test_alternating_flips_start_from_a_seeded_random_half():
    x = np.random.default_rng(0).random((1000, 1, 2, 3))
    first = np.array([np.array_equal(o, m) for o, m in zip(alternating_flip(x, 7, 1), x[..., ::-1])])
    assert 420 < first.sum() < 580, f"epoch 1 should mirror about half of 1,000 images, mirrored {first.sum()}"
    again = np.array([np.array_equal(o, m) for o, m in zip(alternating_flip(x, 7, 1), x[..., ::-1])])
    other = np.array([np.array_equal(o, m) for o, m in zip(alternating_flip(x, 8, 1), x[..., ::-1])])
    assert (again == first).all() and (other != first).any(), "the half is drawn from the seed alone"
    with pytest.raises(ValueError, match="epochs are counted from 1"):
        alternating_flip(x, 7, 0)


@settings(deadline=None, max_examples=30)
@given(n=st.integers(1, 20), h=st.integers(1, 9), w=st.integers(1, 9), seed=st.integers(0, 2**32 - 1),
       data=st.data())
def test_cutout_blanks_one_square_inside_each_image(n, h, w, seed, data):
    size = data.draw(st.integers(1, min(h, w)))
    x = np.random.default_rng(seed).uniform(1, 2, (n, 3, h, w)).astype(np.float32)   # no zeros of its own
    out = cutout(x, size, seed)
    assert out.shape == x.shape and out.dtype == np.float32
    for i in range(n):
        zero = out[i] == 0
        assert (zero == zero[0]).all(), "the square must cover every channel alike"
        rows, cols = np.flatnonzero(zero[0].any(axis=1)), np.flatnonzero(zero[0].any(axis=0))
        assert len(rows) == size and len(cols) == size and np.ptp(rows) == size - 1 and np.ptp(cols) == size - 1, \
            f"image {i}: expected one {size}x{size} square, zero rows {rows}, columns {cols}"
        assert zero[0].sum() == size * size, f"image {i}: {zero[0].sum()} zeros, expected {size * size}"
        np.testing.assert_array_equal(out[i][~zero], x[i][~zero], err_msg="pixels outside the square change")
    np.testing.assert_array_equal(cutout(x, size, seed), out, err_msg="the same seed must blank the same squares")


def test_cutout_places_its_square_anywhere_it_fits_and_refuses_bad_sizes():
    x = np.ones((4000, 1, 6, 6))
    corners = [tuple(np.argwhere(img[0] == 0).min(axis=0)) for img in cutout(x, 4, 0)]
    counts = np.unique(np.array(corners), axis=0, return_counts=True)[1]
    assert len(counts) == 9, f"a 4x4 square fits at 3x3 corners of a 6x6 image, saw {len(counts)}"
    assert counts.min() > 330, f"each corner should be drawn about 444 times of 4,000, counts {counts}"
    for bad in (0, -1, 7):
        with pytest.raises(ValueError, match="cutout size"):
            cutout(x[:2], bad, 0)


def test_augment_shape_dtype_and_content():
    x = np.random.default_rng(0).random((128, 3, 32, 32)).astype(np.float32)
    out = augment(x, np.random.default_rng(0))
    assert out.shape == x.shape and out.dtype == np.float32
    assert not np.array_equal(out, x)
    np.testing.assert_array_equal(augment(x, 5), augment(x, 5))   # seeded


def test_sample_blocks_are_contiguous_and_shifted():
    ids = np.arange(1000) * 3
    x, y = sample_blocks(ids, block_size=16, batch_size=32, rng=0)
    assert x.shape == y.shape == (32, 16) and x.dtype == np.int64
    np.testing.assert_array_equal(np.diff(x, axis=1), 3)          # contiguous
    np.testing.assert_array_equal(y, x + 3)                        # shifted by one position
    assert y.max() <= ids[-1]
    starts = x[:, 0] // 3
    assert len(np.unique(starts)) > 20
    x2, _ = sample_blocks(ids, 16, 32, rng=0)
    np.testing.assert_array_equal(x, x2)


def test_sample_blocks_reaches_the_last_token():
    ids = np.arange(5)
    x, y = sample_blocks(ids, block_size=4, batch_size=10, rng=1)
    np.testing.assert_array_equal(x, np.tile([0, 1, 2, 3], (10, 1)))
    np.testing.assert_array_equal(y, np.tile([1, 2, 3, 4], (10, 1)))
    with pytest.raises(ValueError, match="longer than block_size"):
        sample_blocks(ids, 5, 2)


def test_augment_with_cutout_draws_after_the_crop_and_the_flip():
    x = np.random.default_rng(0).uniform(1, 2, (64, 3, 8, 8)).astype(np.float32)
    plain = augment(x, 3, padding=0)
    out = augment(x, 3, padding=0, cutout_size=3)
    zeros = (out == 0).all(axis=1)                                  # (N, H, W)
    assert (zeros.sum(axis=(1, 2)) == 9).all(), "every image must lose one 3x3 square"
    np.testing.assert_array_equal(np.where(zeros[:, None], 0, plain), out,
                                  err_msg="outside the squares, cutout must leave the cropped, flipped images")
