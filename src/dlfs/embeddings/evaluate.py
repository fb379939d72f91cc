"""Judging word vectors against people: word-pair similarity (WordSim353, SimLex-999) and
analogies (Mikolov's questions-words), as gensim's ``evaluate_word_pairs`` and
``evaluate_word_analogies`` do.

- **Word pairs**: a file of ``word1<TAB>word2<TAB>score`` lines (``#`` starts a comment). The
  pairs whose two words are in the vocabulary are *covered*; the Spearman rank correlation
  between the people's scores and the cosines of the covered pairs is the result.
- **Analogies**: ``: section`` headers and ``a b c d`` lines ("a is to b as c is to d"). A
  question is covered when its four words are in the vocabulary; it is answered correctly when
  3CosAdd (``dlfs.embeddings.similarity.analogy``) ranks d first.

Words are compared lower-cased (gensim's ``case_insensitive=True`` with a lower-case corpus).
The files are read by ``dlfs.data.word2vec`` (``read_word_pairs``, ``read_analogies``).
"""

from __future__ import annotations

import numpy as np

from dlfs.data.word2vec import Analogies, WordPairs
from dlfs.embeddings.similarity import analogy, cosine_similarity, unit_rows
from dlfs.embeddings.vocab import Vocabulary


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of x: (n,), tied values get the mean of their ranks (scipy's 'average')."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_x[1:] != sorted_x[:-1])))
    ends = np.append(starts[1:], x.size)                 # each run of ties is [start, end)
    mean_rank = (starts + ends + 1) / 2.0                # mean of the ranks start+1 .. end
    ranks = np.empty(x.size)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation: the Pearson correlation of the ranks (ties averaged).
    NaN when either side is constant or fewer than 2 values."""
    if len(x) != len(y):
        raise ValueError(f"x and y need the same length, got {len(x)} and {len(y)}")
    if len(x) < 2:
        return float("nan")
    rx, ry = rankdata(x), rankdata(y)
    rx -= rx.mean()
    ry -= ry.mean()
    denom = np.sqrt((rx @ rx) * (ry @ ry))
    return float(rx @ ry / denom) if denom > 0 else float("nan")


def evaluate_word_pairs(W: np.ndarray, vocab: Vocabulary, bench: WordPairs) -> dict:
    """Spearman correlation between ``bench``'s scores and the cosines of the covered pairs.

    Returns {"spearman", "covered", "total", "coverage"}."""
    covered = [i for i, (a, b) in enumerate(bench.pairs) if a in vocab and b in vocab]
    total = len(bench.pairs)
    result = {"covered": len(covered), "total": total, "coverage": len(covered) / total}
    if len(covered) < 2:
        return {"spearman": float("nan"), **result}
    a = np.array([vocab.index[bench.pairs[i][0]] for i in covered])
    b = np.array([vocab.index[bench.pairs[i][1]] for i in covered])
    cos = cosine_similarity(W, a, b)
    return {"spearman": spearman(bench.scores[covered], cos), **result}


def evaluate_analogies(W: np.ndarray, vocab: Vocabulary, questions: Analogies,
                       chunk: int = 512) -> dict:
    """3CosAdd accuracy on the covered questions (all four words in the vocabulary), in chunks
    of ``chunk`` questions (each chunk's scores are (chunk, V)).

    Returns {"accuracy", "correct", "covered", "total", "coverage"}."""
    idx = [[vocab.index.get(w, -1) for w in q] for q in questions.questions]
    ids = np.array(idx, dtype=np.int64).reshape(-1, 4)
    ids = ids[(ids >= 0).all(axis=1)]
    total = len(questions.questions)
    result = {"covered": int(len(ids)), "total": total, "coverage": len(ids) / total}
    if len(ids) == 0:
        return {"accuracy": float("nan"), "correct": 0, **result}
    Wn = unit_rows(W)
    correct = 0
    for lo in range(0, len(ids), chunk):
        q = ids[lo:lo + chunk]
        best, _ = analogy(Wn, q[:, 0], q[:, 1], q[:, 2], topn=1)
        correct += int((best[:, 0] == q[:, 3]).sum())
    return {"accuracy": correct / len(ids), "correct": correct, **result}
