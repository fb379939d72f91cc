"""Small experiments that go with the lessons: each runs in a minute or two on a laptop CPU and
saves a figure. Run one with ``python -m dlfs.experiments.<name> --help``.

- ``plain_vs_residual`` (Topic 14): a deep plain network against the residual network of the
  same depth on real MNIST digits — training loss and the gradient reaching each block.
- ``char_lm`` (Topic 20): vanilla RNN, LSTM and GRU as character-level language models on
  Tiny Shakespeare with the same parameter count — validation loss, curves and samples.
"""
