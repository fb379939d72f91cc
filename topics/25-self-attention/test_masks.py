"""Topic 25: the boolean attention mask — causal, key padding, and both (True = may attend)."""

import numpy as np
import pytest

from dlfs.attention import scaled_dot_product as sdp
from dlfs.testing import assert_close


def test_causal_mask_lets_each_position_see_itself_and_the_past():
    mask = sdp.attention_mask(4, 4, causal=True)
    expected = np.array([[1, 0, 0, 0],
                         [1, 1, 0, 0],
                         [1, 1, 1, 0],
                         [1, 1, 1, 1]], dtype=bool)
    assert_close(np.broadcast_to(mask, (4, 4)), expected, what="causal mask for T = S = 4 (True = attend)")


def test_causal_mask_with_more_keys_aligns_the_last_query_with_the_last_key():
    """3 new queries after 2 earlier keys: query t sees keys 0 .. t + 2."""
    mask = sdp.attention_mask(3, 5, causal=True)
    expected = np.array([[1, 1, 1, 0, 0],
                         [1, 1, 1, 1, 0],
                         [1, 1, 1, 1, 1]], dtype=bool)
    assert_close(np.broadcast_to(mask, (3, 5)), expected, what="causal mask for T = 3 queries, S = 5 keys")


def test_key_padding_mask_hides_padded_keys_from_every_query():
    pad = np.array([[False, False, True], [False, True, True]])
    mask = sdp.attention_mask(2, 3, key_padding_mask=pad)
    assert mask is not None and np.broadcast_shapes(mask.shape, (2, 5, 2, 3)) == (2, 5, 2, 3), \
        f"a padding mask must broadcast against scores (B, H, T, S) = (2, 5, 2, 3), got {None if mask is None else mask.shape}"
    full = np.broadcast_to(mask, (2, 5, 2, 3))
    expected = np.broadcast_to(~pad[:, None, None, :], (2, 5, 2, 3))
    assert_close(full, expected, what="padding mask broadcast to (B, H, T, S): key s hidden where pad[b, s]")


def test_causal_and_padding_combine_with_and():
    pad = np.array([[False, False, False, True], [False, False, True, True]])
    full = np.broadcast_to(sdp.attention_mask(4, 4, causal=True, key_padding_mask=pad), (2, 1, 4, 4))
    causal = np.tril(np.ones((4, 4), dtype=bool))
    for b in range(2):
        assert_close(full[b, 0], causal & ~pad[b][None, :], what=f"combined mask of sample {b}")


def test_no_mask_is_none_and_a_bad_padding_mask_is_refused():
    causal = sdp.attention_mask(2, 2, causal=True)
    assert causal is not None and np.array_equal(np.broadcast_to(causal, (2, 2)), [[True, False], [True, True]]), \
        f"expected the 2x2 causal mask, got {causal}"
    assert sdp.attention_mask(3, 3) is None, "no causal flag and no padding: expected None (attend everywhere)"
    with pytest.raises(ValueError, match="key_padding_mask"):
        sdp.attention_mask(2, 3, key_padding_mask=np.zeros((2, 3)))          # not boolean
    with pytest.raises(ValueError, match="key_padding_mask"):
        sdp.attention_mask(2, 3, key_padding_mask=np.zeros((2, 4), dtype=bool))   # wrong S
