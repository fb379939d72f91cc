"""Small experiments that go with the lessons: each runs in a minute or two on a laptop CPU and
saves a figure. Run one with ``python -m dlfs.experiments.<name> --help``. Results go to
``<workspace>/results/topic-NN/``; the project's recorded ones (``results/topic-NN/``) are
written only with ``--record`` (see :mod:`dlfs.experiments.common`).

- ``plain_vs_residual`` (Topic 14): a deep plain network against the residual network of the
  same depth on real MNIST digits — training loss and the gradient reaching each block.
- ``char_lm`` (Topic 20): vanilla RNN, LSTM and GRU as character-level language models on
  Tiny Shakespeare with the same parameter count — validation loss, curves and samples.
- ``word2vec_vs_gensim`` (Topic 22): our skip-gram with negative sampling and gensim's
  ``Word2Vec`` on the same corpus and settings over several seeds — Spearman on WordSim353 and
  SimLex-999, analogy accuracy, words per second, and a PCA projection of chosen words (the
  longest: 13 minutes on a busy 2-core machine for the default corpora and seeds).
"""
