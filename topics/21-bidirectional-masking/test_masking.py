"""Topic 21: lengths and masks, reversal within each sequence, masked mean and last-state pooling."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.rnn import masking as mk
from dlfs.testing import assert_close, check_op
from torch_oracle import torch_or_skip

LENGTHS = np.array([4, 1, 3, 4, 2])


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def test_length_mask_and_back():
    mask = mk.length_mask(LENGTHS, 5)
    expected = np.array([[1, 1, 1, 1, 0], [1, 0, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 0, 0, 0]], bool)
    assert mask.dtype == np.bool_ and np.array_equal(mask, expected), f"length_mask([4, 1, 3, 4, 2], 5):\n{mask}"
    assert_close(mk.lengths_from_mask(mask), LENGTHS, rtol=0, atol=0, what="lengths_from_mask(length_mask(...))")
    with pytest.raises(ValueError):
        mk.lengths_from_mask(np.array([[True, False, True]]))        # a hole is not a padded sequence
    with pytest.raises(ValueError):
        mk.length_mask(np.array([2, 6]), 5)                          # longer than T


def test_reverse_padded_reverses_each_sequence_within_its_length():
    x = np.arange(5 * 4).reshape(5, 4) + 0.0                          # x[i, t] = 4 i + t
    got = mk.reverse_padded(x[..., None], LENGTHS[:5].clip(max=4))[..., 0]
    expected = np.array([[3, 2, 1, 0], [4, 5, 6, 7], [10, 9, 8, 11], [15, 14, 13, 12], [17, 16, 18, 19]], float)
    assert_close(got, expected, rtol=0, atol=0, what="reverse_padded: real steps reversed, padding in place")
    assert_close(mk.reverse_index(np.array([3, 1]), 4), np.array([[2, 1, 0, 3], [0, 1, 2, 3]]), rtol=0, atol=0,
                 what="reverse_index([3, 1], 4)")


@settings(max_examples=30)
@given(data=st.data())
def test_reversing_twice_gives_the_input_back(data):
    N, T = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 7))
    lengths = np.array(data.draw(st.lists(st.integers(1, T), min_size=N, max_size=N)))
    x = randn(N, T, 2, seed=N * 10 + T)
    once = mk.reverse_padded(x, lengths)
    for i, n in enumerate(lengths):
        assert_close(once[i, :n], x[i, :n][::-1], rtol=0, atol=0, what=f"sequence {i} (length {n}) reversed")
        assert_close(once[i, n:], x[i, n:], rtol=0, atol=0, what=f"padding of sequence {i} left in place")
    assert_close(mk.reverse_padded(once, lengths), x, rtol=0, atol=0, what="reverse_padded twice")


def test_reverse_padded_backward_is_itself():
    lengths = np.array([3, 1, 2])
    check_op(lambda x: mk.reverse_padded(x, lengths), lambda dy, x: mk.reverse_padded(dy, lengths),
             randn(3, 3, 2, seed=1), what="reverse_padded")


def test_masked_mean_ignores_padding_whatever_it_holds():
    x = randn(5, 5, 3, seed=2)
    mask = mk.length_mask(LENGTHS, 5)
    expected = np.stack([x[i, :n].mean(axis=0) for i, n in enumerate(LENGTHS)])
    assert_close(mk.masked_mean(x, mask), expected, rtol=1e-12, atol=1e-14, what="masked_mean vs the mean of the real steps")
    x[~mask] = np.nan                                                 # padding may hold anything
    assert_close(mk.masked_mean(x, mask), expected, rtol=1e-12, atol=1e-14, what="masked_mean with NaN padding")
    holes = np.array([[True, False, True, False, False]] * 5)           # any pattern works, not only prefixes
    assert_close(mk.masked_mean(np.nan_to_num(x), holes), np.nan_to_num(x)[:, [0, 2]].mean(axis=1),
                 rtol=1e-12, atol=1e-14, what="masked_mean over steps 0 and 2")


def torch_masked_mean(torch, x, mask):
    m = mask.to(x.dtype)[..., None]
    return (x * m).sum(dim=1) / m.sum(dim=1)


def test_masked_mean_backward_matches_finite_differences_and_torch():
    mask = mk.length_mask(np.array([2, 4, 1]), 4)
    result = check_op(mk.masked_mean, lambda dy, x, mask: mk.masked_mean_backward(dy, mask),
                      (randn(3, 4, 2, seed=3), mask), input_names=("x", "mask"), what="masked_mean",
                      torch_fn=torch_masked_mean, oracle=torch_or_skip)
    assert result.errors["x"] < 1e-6


def test_masked_mean_backward_gives_padding_exactly_zero():
    mask = mk.length_mask(np.array([2, 4, 1]), 4)
    dx = mk.masked_mean_backward(randn(3, 5, seed=4), mask)
    assert dx.shape == (3, 4, 5), f"expected dx (3, 4, 5), got {dx.shape}"
    assert np.all(dx[~mask] == 0), "padded steps must get exactly zero gradient"
    assert_close(dx[0, :2].sum(axis=0), randn(3, 5, seed=4)[0], rtol=1e-12, what="the shares of a row sum to dy")


def test_last_state_picks_the_last_real_step():
    out = randn(5, 4, 3, seed=5)
    lengths = LENGTHS.clip(max=4)
    expected = np.stack([out[i, n - 1] for i, n in enumerate(lengths)])
    assert_close(mk.last_state(out, lengths), expected, rtol=0, atol=0, what="last_state")
    dy = randn(5, 3, seed=6)
    dout = mk.last_state_backward(dy, lengths, 4)
    for i, n in enumerate(lengths):
        assert_close(dout[i, n - 1], dy[i], rtol=0, atol=0, what=f"dout[{i}, {n - 1}]")
    assert np.count_nonzero(dout.any(axis=2)) == 5, "every other step gets zero gradient"


def test_last_state_backward_matches_finite_differences_and_torch():
    lengths = np.array([2, 3, 1])
    check_op(mk.last_state, lambda dy, out, lengths: mk.last_state_backward(dy, lengths, out.shape[1]),
             (randn(3, 3, 4, seed=7), lengths), input_names=("out", "lengths"), what="last_state",
             torch_fn=lambda torch, out, lengths: out[torch.arange(out.shape[0]), lengths - 1], oracle=torch_or_skip)


def test_float32_is_kept():
    x = randn(2, 3, 4, seed=8).astype(np.float32)
    lengths = np.array([1, 3])
    mask = mk.length_mask(lengths, 3)
    for name, y in (("masked_mean", mk.masked_mean(x, mask)), ("last_state", mk.last_state(x, lengths)),
                    ("reverse_padded", mk.reverse_padded(x, lengths)),
                    ("masked_mean_backward", mk.masked_mean_backward(x[:, 0], mask)),
                    ("last_state_backward", mk.last_state_backward(x[:, 0], lengths, 3))):
        assert y.dtype == np.float32, f"{name} should keep float32, got {y.dtype}"
