"""Topic 02 — automatic differentiation, built from scratch.

- ``dlfs.autograd.value``: ``Value``, a scalar reverse-mode autograd engine (micrograd-style);
- ``dlfs.autograd.tensor``: ``Tensor``, the same engine over NumPy arrays (broadcasting,
  matmul, reductions, indexing, stable ``logsumexp`` / ``softmax`` / ``log_softmax`` methods),
  plus ``no_grad``.

The stable array functions behind those methods live in ``dlfs.numerics``. Public names are
imported on first use: ``from dlfs.autograd import Tensor, no_grad``.
"""

from dlfs.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "dlfs.autograd.value": ["Value"],
    "dlfs.autograd.tensor": ["Tensor", "no_grad", "is_grad_enabled"],
})
