"""Topic 22 — the word vocabulary of word2vec: counts, a min-count cut, and ids.

A corpus is a list of sentences, each a list of tokens (``list[list[str]]``; raw text is split
into tokens by ``dlfs.data.word2vec.tokenize``). The vocabulary
keeps the words seen at least ``min_count`` times, sorted by count, most frequent first (ties
in order of first appearance), as gensim's ``Word2Vec(min_count=..., sorted_vocab=1)`` does:

    words:  ("the", "of", "and", ...)        id i is words[i]
    counts: (V,) int64, counts[i] = occurrences of words[i] in the corpus, non-increasing

Words below the cut are dropped from the training stream *before* the context windows are
formed, so the words around a rare word become neighbours (gensim and word2vec.c do the same).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

@dataclass(frozen=True)
class Vocabulary:
    """words: (V,) strings, most frequent first; counts: (V,) int64 in the same order;
    ``index[word]`` is the word's id."""

    words: tuple[str, ...]
    counts: np.ndarray
    min_count: int = 1
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "index", {w: i for i, w in enumerate(self.words)})
        if len(self.index) != len(self.words):
            raise ValueError("the vocabulary's words must be distinct")
        if np.shape(self.counts) != (len(self.words),):
            raise ValueError(f"counts must have shape ({len(self.words)},), got {np.shape(self.counts)}")

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    @property
    def total(self) -> int:
        """The number of corpus tokens the vocabulary keeps (the sum of its counts)."""
        return int(np.sum(self.counts))

    def encode(self, sentences: Iterable[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """The corpus as one id stream: ``(ids, sentence_ids)``, both (N,) int32, where N is the
        number of in-vocabulary tokens; ``sentence_ids[n]`` says which sentence token n came
        from. Out-of-vocabulary tokens are dropped."""
        index = self.index
        ids: list[int] = []
        sent: list[int] = []
        for s, sentence in enumerate(sentences):
            kept = [index[w] for w in sentence if w in index]
            ids.extend(kept)
            sent.extend([s] * len(kept))
        return np.asarray(ids, dtype=np.int32), np.asarray(sent, dtype=np.int32)


def build_vocab(sentences: Iterable[Sequence[str]], min_count: int = 5) -> Vocabulary:
    """Count every token of ``sentences`` and keep the words seen at least ``min_count`` times,
    most frequent first; words with equal counts keep the order in which they first appear.

    Returns a :class:`Vocabulary` whose ``counts`` (V,) int64 are the full corpus counts of the
    kept words. ``min_count`` must be at least 1.
    """
    if min_count < 1:
        raise ValueError(f"min_count must be at least 1, got {min_count}")
    # TODO: collections.Counter counts; it remembers first appearances, so a sort that is
    #       stable (Python's sorted is) on the count alone, descending, breaks ties for you.
    # BEGIN SOLUTION count the tokens, keep count >= min_count, sort by count descending (stable)
    counter = Counter()
    for sentence in sentences:
        counter.update(sentence)
    kept = [(w, c) for w, c in counter.items() if c >= min_count]
    kept.sort(key=lambda wc: -wc[1])
    words = tuple(w for w, _ in kept)
    counts = np.array([c for _, c in kept], dtype=np.int64)
    return Vocabulary(words, counts, min_count)
    # END SOLUTION
