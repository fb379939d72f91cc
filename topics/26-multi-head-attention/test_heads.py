"""Topic 26: splitting the features into heads and merging them back, by reshape and transpose."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.attention import multi_head as mh
from dlfs.testing import assert_close


def test_split_heads_gives_each_head_its_own_block_of_features():
    B, T, H, dh = 2, 3, 4, 5
    x = np.arange(B * T * H * dh, dtype=np.float64).reshape(B, T, H * dh)
    heads = mh.split_heads(x, H)
    assert heads.shape == (B, H, T, dh), f"expected (B, H, T, D/H) = {(B, H, T, dh)}, got {heads.shape}"
    for h in range(H):
        assert_close(heads[:, h], x[:, :, h * dh:(h + 1) * dh], rtol=0, atol=0,
                     what=f"head {h} = features {h * dh}..{(h + 1) * dh - 1} of every position")


def test_split_heads_is_a_view_and_merge_heads_inverts_it():
    x = np.random.default_rng(0).standard_normal((2, 5, 12))
    heads = mh.split_heads(x, 3)
    assert np.shares_memory(heads, x), "split_heads should be a view of x (reshape + transpose, no copy)"
    assert_close(mh.merge_heads(heads), x, rtol=0, atol=0, what="merge_heads(split_heads(x))")
    o = np.random.default_rng(1).standard_normal((2, 3, 5, 4))
    assert_close(mh.split_heads(mh.merge_heads(o), 3), o, rtol=0, atol=0, what="split_heads(merge_heads(o))")


def test_merge_heads_puts_head_h_at_features_h_times_dh():
    o = np.random.default_rng(2).standard_normal((2, 3, 4, 5))      # (B, H, T, d_h)
    merged = mh.merge_heads(o)
    assert merged.shape == (2, 4, 15), f"expected (B, T, H·d_h) = (2, 4, 15), got {merged.shape}"
    for h in range(3):
        assert_close(merged[:, :, 5 * h:5 * (h + 1)], o[:, h], rtol=0, atol=0, what=f"features of head {h}")


def test_bad_shapes_are_refused():
    x = np.ones((2, 3, 6))
    assert mh.split_heads(x, 2).shape == (2, 2, 3, 3), "split of (2, 3, 6) into 2 heads"
    with pytest.raises(ValueError):
        mh.split_heads(x, 4)                     # 6 features do not split into 4 heads
    with pytest.raises(ValueError):
        mh.merge_heads(np.ones((2, 3, 6)))       # not (B, H, T, d_h)


@settings(deadline=None, max_examples=30)
@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 4), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_split_then_merge_is_the_identity(B, T, H, dh, seed):
    x = np.random.default_rng(seed).standard_normal((B, T, H * dh))
    heads = mh.split_heads(x, H)
    assert_close(heads[:, -1, -1], x[:, -1, -dh:], rtol=0, atol=0, what="last head of the last position")
    assert_close(mh.merge_heads(heads), x, rtol=0, atol=0, what=f"merge(split(x)) for B={B} T={T} H={H} d_h={dh}")
