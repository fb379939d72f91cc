"""Topic 22: the vocabulary — counts, the min-count cut, frequency order, ids."""

import numpy as np
import pytest

from dlfs.embeddings import vocab as vb
from dlfs.testing import assert_close

CORPUS = [["the", "cat", "sat", "on", "the", "mat"],
          ["the", "dog", "sat", "on", "a", "log"],
          ["a", "cat", "and", "a", "dog"]]


def test_counts_min_count_and_order():
    v = vb.build_vocab(CORPUS, min_count=2)
    # the 3, a 3, cat 2, sat 2, on 2, dog 2; ties keep the order of first appearance
    assert v.words == ("the", "a", "cat", "sat", "on", "dog"), f"words in frequency order: got {v.words}"
    assert_close(v.counts, np.array([3, 3, 2, 2, 2, 2]), what="counts of the kept words")
    assert v.counts.dtype == np.int64, f"counts should be int64, got {v.counts.dtype}"
    assert v.index["cat"] == 2 and "mat" not in v and v.total == 14 and v.min_count == 2


def test_min_count_one_keeps_everything_and_the_cut_is_inclusive():
    everything = vb.build_vocab(CORPUS, min_count=1)
    assert everything.words == ("the", "a", "cat", "sat", "on", "dog", "mat", "log", "and"), everything.words
    assert everything.total == sum(map(len, CORPUS)) == 17
    assert vb.build_vocab(CORPUS, min_count=3).words == ("the", "a"), "count == min_count is kept"
    assert len(vb.build_vocab(CORPUS, min_count=4)) == 0
    with pytest.raises(ValueError, match="min_count must be at least 1"):
        vb.build_vocab(CORPUS, min_count=0)


def test_encode_drops_rare_words_and_tracks_sentences():
    v = vb.build_vocab(CORPUS, min_count=2)
    ids, sentences = v.encode(CORPUS)
    assert ids.dtype == np.int32 and sentences.dtype == np.int32
    # "mat", "log", "and" are dropped: their neighbours become neighbours
    expected = [v.index[w] for w in ["the", "cat", "sat", "on", "the", "the", "dog", "sat", "on", "a",
                                     "a", "cat", "a", "dog"]]
    assert_close(ids, np.array(expected, dtype=np.int32), what="encoded ids")
    assert_close(sentences, np.array([0] * 5 + [1] * 5 + [2] * 4, dtype=np.int32), what="sentence ids")
