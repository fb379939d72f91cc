"""Topic 02 — automatic differentiation, built from scratch.

- ``dlfs.autograd.value``: ``Value``, a scalar reverse-mode autograd engine (micrograd-style);
- ``dlfs.autograd.tensor``: ``Tensor``, the same engine over NumPy arrays (broadcasting,
  matmul, reductions, indexing, stable ``logsumexp`` / ``softmax`` / ``log_softmax``), plus
  ``no_grad``.

Import what you need from the submodules, e.g. ``from dlfs.autograd.tensor import Tensor``.
"""
