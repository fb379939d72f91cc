"""The evaluation helpers of Topic 22: ranks and Spearman's correlation, coverage, analogy
accuracy, and the projection used by the comparison with gensim."""

import numpy as np
import pytest

from dlfs.data.word2vec import Analogies, WordPairs
from dlfs.embeddings import evaluate as ev
from dlfs.embeddings.vocab import Vocabulary
from dlfs.testing import assert_close


def test_ranks_average_ties():
    assert_close(ev.rankdata(np.array([10.0, 30.0, 20.0, 30.0, 10.0])), np.array([1.5, 4.5, 3.0, 4.5, 1.5]),
                 rtol=0, what="ranks with ties")


def test_spearman_by_hand_and_edge_cases():
    assert ev.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert ev.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # d = rank differences (0, 0, 1, -1): rho = 1 - 6·2 / (4·15) = 0.8
    assert ev.spearman([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(0.8)
    assert np.isnan(ev.spearman([1, 1, 1], [1, 2, 3])) and np.isnan(ev.spearman([1], [2]))
    with pytest.raises(ValueError, match="same length"):
        ev.spearman([1, 2], [1, 2, 3])


def test_spearman_matches_scipy():
    stats = pytest.importorskip("scipy.stats", reason="scipy not installed: the comparison is skipped")
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.integers(0, 6, 40).astype(float)          # many ties
        y = x + rng.integers(-3, 4, 40)
        assert ev.spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


VOCAB = Vocabulary(("man", "woman", "king", "queen", "apple"), np.array([5, 4, 3, 2, 1]))
W = np.array([[1.0, 0, 0, 0], [0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 1, 0], [0, 0, 0, 1]])


def test_word_pairs_use_only_the_covered_pairs():
    bench = WordPairs("tiny", (("man", "king"), ("woman", "queen"), ("man", "apple"), ("man", "pear")),
                      np.array([8.0, 7.0, 1.0, 5.0]))
    got = ev.evaluate_word_pairs(W, VOCAB, bench)
    assert (got["covered"], got["total"], got["coverage"]) == (3, 4, 0.75)
    # cosines 0.707, 0.707, 0 against scores 8, 7, 1: ranks (2.5, 2.5, 1) vs (3, 2, 1)
    assert got["spearman"] == pytest.approx(np.corrcoef([2.5, 2.5, 1], [3, 2, 1])[0, 1])


def test_analogies_count_covered_questions_only():
    qa = Analogies((("man", "king", "woman", "queen"), ("king", "man", "queen", "woman"),
                    ("man", "woman", "king", "prince")), ("royal", "royal", "royal"))
    got = ev.evaluate_analogies(W, VOCAB, qa, chunk=1)
    assert got == {"accuracy": 1.0, "correct": 2, "covered": 2, "total": 3, "coverage": 2 / 3}


def test_pca_projection_keeps_the_largest_spread():
    from dlfs.experiments.word2vec_vs_gensim import pca_2d

    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 5)) * np.array([5.0, 3.0, 0.1, 0.1, 0.1]) + 7.0
    xy = pca_2d(X)
    assert xy.shape == (200, 2)
    assert_close(xy.mean(axis=0), np.zeros(2), atol=1e-9, what="centred")
    var = xy.var(axis=0)
    assert 20 < var[0] < 30 and 7 < var[1] < 11, f"variances along the two components: {var}"
