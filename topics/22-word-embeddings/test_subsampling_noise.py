"""Topic 22: frequent-word subsampling and the noise distribution, against their formulas (and
against gensim's tables when gensim is installed)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.embeddings import word2vec as w2v
from dlfs.testing import assert_close

COUNTS = np.array([5000, 1200, 300, 60, 20, 7, 5, 5, 1])


def test_keep_probabilities_follow_mikolovs_formula():
    s, t = 1e-3, COUNTS.sum()
    threshold = s * t                                     # 6.598
    expected = [min(1.0, (math.sqrt(f / threshold) + 1) * threshold / f) for f in COUNTS]
    got = w2v.keep_probabilities(COUNTS, s)
    assert_close(got, np.array(expected), rtol=1e-12, what="keep probabilities, sample=1e-3")
    assert got.dtype == np.float64
    # by hand for the most frequent word: (sqrt(5000 / 6.598) + 1) · 6.598 / 5000 = 0.03765
    assert abs(got[0] - 0.0376458) < 1e-6, f"p_keep(count 5000 of 6598, sample 1e-3): expected 0.0376458, got {got[0]}"
    assert_close(w2v.keep_probabilities(COUNTS, 0.0), np.ones(len(COUNTS)), what="sample=0 keeps every word")


def test_words_up_to_golden_ratio_squared_times_the_threshold_are_always_kept():
    # (sqrt(x) + 1) / x = 1 at x = ((1 + sqrt 5) / 2)^2 = 2.618: every word with f ≤ 2.618·s·t is kept
    counts = np.array([1_000_000 - 2617 - 2619 - 100, 2617, 2619, 100])    # t = 10⁶, s·t = 1000
    got = w2v.keep_probabilities(counts, 1e-3)
    assert got[1] == 1.0 and got[3] == 1.0, f"counts 2617 and 100 are kept always, got {got[[1, 3]]}"
    assert got[2] < 1.0, f"count 2619 is above 2.618·s·t: expected < 1, got {got[2]}"
    f = counts[0]
    assert abs(got[0] - (math.sqrt(1000 / f) + 1000 / f)) < 1e-12, \
        f"p_keep = sqrt(s·t/f) + s·t/f for f = {f}: expected {math.sqrt(1000 / f) + 1000 / f}, got {got[0]}"


@settings(deadline=None, max_examples=60)
@given(st.lists(st.integers(1, 10**6), min_size=1, max_size=30), st.sampled_from([1e-5, 1e-4, 1e-3, 1e-2]))
def test_keep_probabilities_are_in_range_and_fall_with_the_count(counts, sample):
    counts = np.array(counts)
    p = w2v.keep_probabilities(counts, sample)
    assert ((p > 0) & (p <= 1)).all(), f"probabilities out of (0, 1]: {p}"
    order = np.argsort(counts, kind="stable")
    assert (np.diff(p[order]) <= 1e-15).all(), "a more frequent word must not be kept more often"


def test_noise_distribution_is_the_unigram_to_the_three_quarters():
    got = w2v.noise_distribution(COUNTS)
    weights = COUNTS.astype(float) ** 0.75
    assert_close(got, weights / weights.sum(), rtol=1e-12, what="P(w) ∝ count^0.75")
    assert abs(got.sum() - 1) < 1e-12
    # flattening: rare words get more than their unigram share, the most frequent less
    unigram = COUNTS / COUNTS.sum()
    assert got[0] < unigram[0] and got[-1] > unigram[-1]
    assert_close(w2v.noise_distribution(COUNTS, 1.0), unigram, rtol=1e-12, what="exponent 1: the unigram distribution")
    assert_close(w2v.noise_distribution(COUNTS, 0.0), np.full(len(COUNTS), 1 / len(COUNTS)), rtol=1e-12,
                 what="exponent 0: uniform")


def test_the_sampler_draws_from_the_noise_distribution():
    p = w2v.noise_distribution(COUNTS)
    draws = w2v.NoiseSampler(p)(np.random.default_rng(0), (200_000,))
    assert draws.dtype == np.int32 and draws.min() >= 0 and draws.max() < len(COUNTS)
    freq = np.bincount(draws, minlength=len(COUNTS)) / draws.size
    # 5 standard errors of a binomial proportion
    tol = 5 * np.sqrt(p * (1 - p) / draws.size)
    assert (np.abs(freq - p) < tol).all(), f"draw frequencies {freq.round(4)} vs P {p.round(4)}"


# ---------------------------------------------------------------- gensim's own tables

def _gensim_vocab(sentences, **kw):
    gensim = pytest.importorskip("gensim", reason="gensim not installed: the comparison with its tables is "
                                                  "skipped (pip install -e '.[word2vec]' to enable it)")
    model = gensim.models.Word2Vec(sg=1, negative=5, workers=1, **kw)
    model.build_vocab(sentences)
    return model


def _zipf_corpus():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)]
    p = 1 / np.arange(1, 41)
    tokens = rng.choice(40, size=20_000, p=p / p.sum())
    return [[words[i] for i in tokens[k:k + 20]] for k in range(0, tokens.size, 20)]


def test_keep_probabilities_match_gensims_sample_int():
    from dlfs.embeddings.vocab import build_vocab

    corpus = _zipf_corpus()
    model = _gensim_vocab(corpus, min_count=3, sample=1e-3)
    v = build_vocab(corpus, min_count=3)
    ours = w2v.keep_probabilities(v.counts, 1e-3)
    theirs = np.array([model.wv.get_vecattr(w, "sample_int") for w in v.words]) / (2**32 - 1)
    assert_close(ours, theirs, rtol=0, atol=1e-8, what="keep probability vs gensim's sample_int / (2^32 - 1)")


def test_noise_distribution_matches_gensims_cum_table():
    from dlfs.embeddings.vocab import build_vocab

    corpus = _zipf_corpus()
    model = _gensim_vocab(corpus, min_count=3, sample=1e-3)
    v = build_vocab(corpus, min_count=3)
    order = [model.wv.key_to_index[w] for w in v.words]         # gensim's order of equal counts may differ
    theirs = np.diff(np.concatenate([[0], model.cum_table.astype(np.float64)])) / model.cum_table[-1]
    assert_close(w2v.noise_distribution(v.counts), theirs[order], rtol=0, atol=2e-9,
                 what="noise probabilities vs the steps of gensim's cum_table")
