"""Topic 01 — Tensor operations & broadcasting.

(This module is being written; ``unbroadcast`` below is final and other topics rely on it.)
"""

from __future__ import annotations

import numpy as np


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` back to ``shape``: the adjoint of broadcasting ``shape`` to ``grad.shape``.

    grad: (*B, *shape-broadcast) gradient w.r.t. a broadcast result;
    shape: the shape of the input that was broadcast. Returns an array of ``shape``.
    """
    # BEGIN SOLUTION sum the gradient over the broadcast axes back to `shape`
    shape = tuple(shape)
    extra = grad.ndim - len(shape)
    if extra < 0:
        raise ValueError(f"cannot unbroadcast gradient of shape {grad.shape} to larger shape {shape}")
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    if grad.shape != shape:
        raise ValueError(f"gradient of shape {grad.shape} does not broadcast from shape {shape}")
    return grad
    # END SOLUTION
