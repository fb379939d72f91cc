"""Topic 22: (center, context) pairs — dynamic windows that never cross a sentence."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.embeddings import word2vec as w2v
from dlfs.testing import assert_close


def naive_pairs(ids, sentence_ids, windows):
    """The definition, one token at a time (word2vec.c's loop)."""
    centers, contexts = [], []
    for n in range(len(ids)):
        for m in range(n - windows[n], n + windows[n] + 1):
            if m != n and 0 <= m < len(ids) and sentence_ids[m] == sentence_ids[n]:
                centers.append(ids[n])
                contexts.append(ids[m])
    return np.array(centers, dtype=np.int64), np.array(contexts, dtype=np.int64)


def test_pairs_by_hand():
    ids = np.array([10, 11, 12, 13, 14, 15], dtype=np.int32)
    sentences = np.array([0, 0, 0, 0, 1, 1])
    windows = np.array([1, 2, 1, 3, 1, 1])
    centers, contexts = w2v.skipgram_pairs(ids, sentences, windows)
    expected = [(10, 11), (11, 10), (11, 12), (11, 13), (12, 11), (12, 13),
                (13, 10), (13, 11), (13, 12), (14, 15), (15, 14)]
    got = list(zip(centers.tolist(), contexts.tolist()))
    assert got == expected, f"pairs in center order, contexts left to right:\nexpected {expected}\ngot      {got}"
    assert centers.dtype == np.int32 and contexts.dtype == np.int32, "the pairs keep the ids' dtype"


def test_a_single_token_sentence_has_no_pairs():
    centers, contexts = w2v.skipgram_pairs(np.array([3, 4, 5]), np.array([0, 1, 2]), np.array([5, 5, 5]))
    assert centers.size == 0 and contexts.size == 0, f"no pairs across sentences, got {list(zip(centers, contexts))}"
    centers, _ = w2v.skipgram_pairs(np.array([3, 4, 5]), np.array([0, 0, 0]), np.array([5, 5, 5]))
    assert centers.tolist() == [3, 3, 4, 4, 5, 5], f"got {centers.tolist()}"


@settings(deadline=None, max_examples=60)
@given(st.integers(1, 60).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 9), min_size=n, max_size=n),
    st.lists(st.integers(0, 3), min_size=n, max_size=n),
    st.lists(st.integers(1, 5), min_size=n, max_size=n))))
def test_pairs_match_the_definition(case):
    ids, breaks, windows = (np.array(x) for x in case)
    sentences = np.cumsum(breaks == 0)                   # a new sentence wherever breaks is 0
    centers, contexts = w2v.skipgram_pairs(ids, sentences, windows)
    exp_c, exp_x = naive_pairs(ids, sentences, windows)
    assert_close(centers, exp_c, what="centers")
    assert_close(contexts, exp_x, what="contexts")
