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

from dlfs.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "dlfs.embeddings.vocab": ["Vocabulary", "build_vocab"],
    "dlfs.embeddings.word2vec": [
        "keep_probabilities", "noise_distribution", "skipgram_pairs", "sgns_forward",
        "sgns_backward", "scatter_add_rows", "sgns_step", "learning_rate", "SkipGramConfig",
        "SkipGram",
    ],
    "dlfs.embeddings.similarity": ["unit_rows", "cosine_similarity", "most_similar", "analogy"],
    "dlfs.embeddings.evaluate": ["spearman", "evaluate_word_pairs", "evaluate_analogies"],
})
