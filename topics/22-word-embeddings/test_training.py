"""Topic 22: end to end on a small synthetic corpus whose structure is known — words that share
their sentences end up closer together than words that never meet."""

import numpy as np
import pytest

from dlfs.embeddings import similarity as sim
from dlfs.embeddings import vocab as vb
from dlfs.embeddings import word2vec as w2v

GROUPS, PER_GROUP = 4, 6


def topic_corpus(sentences=400, length=10, seed=0):
    """Each sentence uses the words of one group only: g0w0 … g0w5, g1w0 …"""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(sentences):
        g = rng.integers(GROUPS)
        out.append([f"g{g}w{i}" for i in rng.integers(0, PER_GROUP, length)])
    return out


def group_of(word):
    return int(word[1])


def train(corpus, **overrides):
    cfg = w2v.SkipGramConfig(**{**dict(vector_size=16, window=3, negative=5, min_count=1, sample=0.0,
                                       epochs=5, batch_pairs=256, seed=0), **overrides})
    vocab = vb.build_vocab(corpus, cfg.min_count)
    model = w2v.SkipGram(vocab, cfg)
    stats = model.train(*vocab.encode(corpus))
    return vocab, model, stats


def separation(vocab, W):
    """(mean cosine within groups) − (mean cosine across groups), and the share of words whose
    nearest neighbour is in their group."""
    Wn = sim.unit_rows(W)
    cos = Wn @ Wn.T
    groups = np.array([group_of(w) for w in vocab.words])
    same = groups[:, None] == groups[None, :]
    off_diagonal = ~np.eye(len(groups), dtype=bool)
    gap = cos[same & off_diagonal].mean() - cos[~same].mean()
    ids, _ = sim.most_similar(Wn, Wn, topn=1, exclude=np.arange(len(groups))[:, None])
    return gap, float((groups[ids[:, 0]] == groups).mean())


def test_words_of_one_topic_end_up_together():
    corpus = topic_corpus()
    vocab, model, stats = train(corpus)
    gap, nn_same = separation(vocab, model.vectors)
    assert gap > 0.5, f"mean cosine within groups minus across groups: expected > 0.5, got {gap:.3f}"
    assert nn_same == 1.0, f"every word's nearest neighbour should share its group; {nn_same:.0%} do"
    assert stats.losses[-1] < 0.8 * stats.losses[0], f"the loss per pair should fall: {stats.losses}"
    assert model.vectors.dtype == np.float32 and stats.words == 4000 and stats.pairs > 0
    before_gap, _ = separation(vocab, w2v.SkipGram(vocab, model.config).vectors)
    assert abs(before_gap) < 0.2, f"before training there is no structure (gap {before_gap:.3f})"


def test_training_subsamples_each_epoch_by_the_keep_probabilities():
    # every sentence also holds a filler word far above the subsampling threshold
    corpus = [s + ["the"] * 10 for s in topic_corpus(sentences=200)]
    vocab, model, stats = train(corpus, sample=1e-3, epochs=4)
    p = w2v.keep_probabilities(vocab.counts, 1e-3)
    assert p[vocab.index["the"]] < 0.1, "the filler word is far above the threshold"
    mean = 4 * (vocab.counts * p).sum()                   # four epochs, a fresh draw each
    sd = np.sqrt(4 * (vocab.counts * p * (1 - p)).sum())
    assert abs(stats.kept_words - mean) < 5 * sd, \
        f"tokens kept over 4 epochs: expected {mean:.0f} ± {5 * sd:.0f}, got {stats.kept_words}"
    assert stats.words == 4000 and stats.epochs == 4


def test_same_structure_as_gensim_on_the_same_corpus():
    gensim = pytest.importorskip("gensim", reason="gensim not installed: the side-by-side run is skipped "
                                                  "(pip install -e '.[word2vec]' to enable it)")
    corpus = topic_corpus()
    vocab, model, _ = train(corpus)
    theirs = gensim.models.Word2Vec(corpus, sg=1, hs=0, negative=5, vector_size=16, window=3, min_count=1,
                                    sample=0, epochs=5, workers=1, seed=0)
    W_theirs = np.stack([theirs.wv[w] for w in vocab.words])
    ours_gap, ours_nn = separation(vocab, model.vectors)
    theirs_gap, theirs_nn = separation(vocab, W_theirs)
    assert ours_nn == theirs_nn == 1.0, f"nearest neighbours in the group: ours {ours_nn:.0%}, gensim {theirs_nn:.0%}"
    assert ours_gap > 0.7 * theirs_gap, f"cosine gap within − across groups: ours {ours_gap:.3f}, gensim {theirs_gap:.3f}"
