"""Topic 22: cosine similarity, nearest neighbours and 3CosAdd analogies on hand-made vectors
(and against gensim's KeyedVectors when gensim is installed)."""

import numpy as np
import pytest

from dlfs.embeddings import similarity as sim
from dlfs.testing import assert_close

#                    male female royal fruit
WORDS = ["man", "woman", "king", "queen", "apple", "pear"]
W = np.array([[1.0, 0.0, 0.0, 0.0],
              [0.0, 1.0, 0.0, 0.0],
              [1.0, 0.0, 1.0, 0.0],
              [0.5, 1.0, 0.3, 0.0],
              [0.0, 0.0, 0.0, 2.0],
              [0.0, 0.1, 0.0, 1.0]])
ID = {w: i for i, w in enumerate(WORDS)}


def test_unit_rows_and_a_zero_row():
    X = np.array([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]])
    assert_close(sim.unit_rows(X), np.array([[0.6, 0.8], [0.0, 0.0], [0.0, -1.0]]), rtol=1e-12,
                 what="rows divided by their norms; the zero row stays zero")
    assert sim.unit_rows(X.astype(np.float32)).dtype == np.float32


def test_cosine_similarity_of_pairs():
    got = sim.cosine_similarity(W, np.array([0, 2, 4, 4]), np.array([2, 0, 5, 4]))
    expected = [1 / np.sqrt(2), 1 / np.sqrt(2), 1.0 / np.sqrt(1.01), 1.0]
    assert_close(got, np.array(expected), rtol=1e-12, what="cos(man, king), cos(king, man), cos(apple, pear), "
                                                          "cos(apple, apple)")


def test_most_similar_ranks_by_cosine_and_excludes():
    Wn = sim.unit_rows(W)
    ids, scores = sim.most_similar(Wn, Wn[[ID["apple"]]], topn=2)
    assert ids.tolist() == [[ID["apple"], ID["pear"]]], f"without exclusion a word is its own neighbour: {ids}"
    ids, scores = sim.most_similar(Wn, Wn[[ID["apple"], ID["man"]]], topn=3,
                                   exclude=np.array([[ID["apple"]], [ID["man"]]]))
    assert ids[0, 0] == ID["pear"] and ids[1, 0] == ID["king"], f"nearest after excluding the query word: {ids}"
    expected = np.sort(Wn[[ID["man"]]] @ Wn.T, axis=1)[:, ::-1][:, 1:4]
    assert_close(scores[1:], expected, rtol=1e-12, what="the three best cosines of 'man', best first")
    assert ids.dtype == np.int64 and ids.shape == (2, 3) and scores.shape == (2, 3)


def test_analogy_excludes_the_question_words():
    Wn = sim.unit_rows(W)
    a, b, c = [np.array([ID[w]]) for w in ("man", "king", "woman")]
    q = sim.unit_rows(Wn[b] - Wn[a] + Wn[c])
    nearest, _ = sim.most_similar(Wn, q, topn=1)
    assert WORDS[nearest[0, 0]] == "woman", "this example is built so that, unexcluded, the answer would be c"
    ids, scores = sim.analogy(Wn, a, b, c, topn=2)
    assert [WORDS[i] for i in ids[0]] == ["queen", "pear"], \
        f"man : king = woman : ? expected queen, then pear; got {[WORDS[i] for i in ids[0]]}"
    assert_close(scores[0, 0], float(q[0] @ Wn[ID["queen"]]), rtol=1e-12, what="score of queen: cos with unit(b − a + c)")


def test_batched_analogies_match_a_loop():
    rng = np.random.default_rng(0)
    X = sim.unit_rows(rng.standard_normal((30, 8)))
    a, b, c = rng.integers(0, 30, (3, 12))
    ids, scores = sim.analogy(X, a, b, c, topn=3)
    for q in range(12):
        target = X[b[q]] - X[a[q]] + X[c[q]]
        target /= np.linalg.norm(target)
        cos = {w: X[w] @ target for w in range(30) if w not in (a[q], b[q], c[q])}
        best = sorted(cos, key=cos.get, reverse=True)[:3]
        assert ids[q].tolist() == best, f"question {q}: expected {best}, got {ids[q].tolist()}"
        assert_close(scores[q], np.array([cos[w] for w in best]), rtol=1e-12, what=f"scores of question {q}")


def test_analogy_and_most_similar_match_gensim():
    gensim = pytest.importorskip("gensim", reason="gensim not installed: the comparison with KeyedVectors is "
                                                  "skipped (pip install -e '.[word2vec]' to enable it)")
    rng = np.random.default_rng(1)
    X = rng.standard_normal((50, 10)).astype(np.float32)
    kv = gensim.models.KeyedVectors(10)
    kv.add_vectors([f"w{i}" for i in range(50)], X)
    Xn = sim.unit_rows(X)
    for a, b, c in rng.integers(0, 50, (10, 3)):
        if len({a, b, c}) < 3:
            continue
        theirs = kv.most_similar(positive=[f"w{b}", f"w{c}"], negative=[f"w{a}"], topn=5)
        ids, scores = sim.analogy(Xn, np.array([a]), np.array([b]), np.array([c]), topn=5)
        assert [f"w{i}" for i in ids[0]] == [w for w, _ in theirs], f"{a}:{b} = {c}:?"
        assert_close(scores[0], np.array([s for _, s in theirs]), rtol=1e-5, atol=1e-6, what="3CosAdd scores")
    theirs = kv.most_similar("w7", topn=4)
    ids, scores = sim.most_similar(Xn, Xn[[7]], topn=4, exclude=np.array([[7]]))
    assert [f"w{i}" for i in ids[0]] == [w for w, _ in theirs], "nearest neighbours of w7"
