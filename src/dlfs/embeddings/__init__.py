"""Word embeddings (Module 3, Topic 22).

- ``dlfs.embeddings.vocab``: the vocabulary with its min-count cut, ids.
- ``dlfs.embeddings.word2vec``: skip-gram with negative sampling — subsampling, the noise
  distribution, the (center, context) pairs, the loss and its gradients, the sparse SGD step,
  the learning-rate decay, and the ``SkipGram`` trainer around them.
- ``dlfs.embeddings.similarity``: cosine similarity, nearest neighbours, 3CosAdd analogies.
- ``dlfs.embeddings.evaluate``: WordSim353 / SimLex-999 Spearman correlation and analogy
  accuracy, as gensim reports them (the files are read by ``dlfs.data.word2vec``).

The names below are exported lazily: importing ``dlfs.embeddings`` loads no submodule until a
name is used, so a topic's exercise file can stand in for its module.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Vocabulary": "vocab",
    "build_vocab": "vocab",
    "keep_probabilities": "word2vec",
    "noise_distribution": "word2vec",
    "skipgram_pairs": "word2vec",
    "sgns_forward": "word2vec",
    "sgns_backward": "word2vec",
    "scatter_add_rows": "word2vec",
    "sgns_step": "word2vec",
    "learning_rate": "word2vec",
    "SkipGramConfig": "word2vec",
    "SkipGram": "word2vec",
    "unit_rows": "similarity",
    "cosine_similarity": "similarity",
    "most_similar": "similarity",
    "analogy": "similarity",
    "spearman": "evaluate",
    "evaluate_word_pairs": "evaluate",
    "evaluate_analogies": "evaluate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dlfs.embeddings' has no attribute {name!r}")
    return getattr(importlib.import_module(f"dlfs.embeddings.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
