"""Topic 25 — the fused query/key/value projection: one matrix product instead of three.

Self-attention projects the same input three ways, ``q = x Wq + bq``, ``k = x Wk + bk``,
``v = x Wv + bv``. Stacking the three weights side by side gives one (D, 3D) matrix, so one
matmul — one pass over x, one large BLAS call instead of three smaller ones — produces

    qkv = x @ W + b:   (B, T, 3D)     W = [Wq | Wk | Wv]: (D, 3D),  b = [bq | bk | bv]: (3D,)

and q, k, v are the three column blocks ``qkv[..., :D]``, ``qkv[..., D:2D]``,
``qkv[..., 2D:]`` — views, no copies. The backward pass does the reverse: place dq, dk, dv
side by side into one (B, T, 3D) gradient and run one ``linear_backward``.

Layout: W is stored (in, out) like ``dlfs.nn.layers.Linear``; PyTorch's
``nn.MultiheadAttention.in_proj_weight`` is its transpose, (3D, D), with the rows of Wq,
then Wk, then Wv.
"""

from __future__ import annotations

import numpy as np

from dlfs.nn.init import xavier_uniform
from dlfs.nn.layers import Layer, Parameter, linear_backward


class QKVProjection(Layer):
    """x: (..., D) -> (q, k, v), each (..., D), with one matmul by W: (D, 3D) plus b: (3D,).

    Parameters ``W`` (Xavier-uniform over the (3D, D) matrix, like torch's ``in_proj_weight``)
    and ``b`` (zeros; None when ``bias=False``). ``backward(dq, dk, dv)`` takes the three
    gradients (each shaped like x), accumulates W.grad and b.grad and returns dx.
    """

    def __init__(self, d_model: int, bias: bool = True, rng: np.random.Generator | int | None = None,
                 dtype=np.float32):
        if d_model < 1:
            raise ValueError(f"QKVProjection needs a positive d_model, got {d_model}")
        self.d_model = int(d_model)
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.W = Parameter(xavier_uniform((3 * self.d_model, self.d_model), rng=rng, dtype=dtype).T.copy(),
                           name="W")
        self.b = Parameter(np.zeros(3 * self.d_model, dtype=dtype), name="b") if bias else None
        self.x: np.ndarray | None = None

    def extra_repr(self) -> str:
        return f"{self.d_model}, bias={self.b is not None}"

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x: (..., D) -> (q, k, v), each (..., D): column blocks of x @ W + b. Caches x."""
        if x.ndim < 1 or x.shape[-1] != self.d_model:
            raise ValueError(f"{self!r} expects input (..., {self.d_model}), got {x.shape}")
        # TODO: one product with the whole (D, 3D) W, then split the last axis in three.
        # BEGIN SOLUTION cache x; qkv = x @ W (+ b); return its three column blocks of width D as views
        self.x = x
        qkv = x @ self.W.data
        if self.b is not None:
            qkv += self.b.data
        D = self.d_model
        return qkv[..., :D], qkv[..., D:2 * D], qkv[..., 2 * D:]
        # END SOLUTION

    def backward(self, dq: np.ndarray, dk: np.ndarray, dv: np.ndarray) -> np.ndarray:
        """dq, dk, dv: (..., D) each -> dx: (..., D); accumulates W.grad (D, 3D) and b.grad (3D,)."""
        if self.x is None:
            raise RuntimeError("QKVProjection.backward called before forward")
        # TODO: the gradient of qkv is dq, dk, dv side by side; then it is a Linear's backward.
        # BEGIN SOLUTION concatenate dq, dk, dv along the last axis; linear_backward with the cached x; accumulate
        dqkv = np.concatenate([dq, dk, dv], axis=-1)
        dx, dW, db = linear_backward(dqkv, self.x, self.W.data)
        self.W.accumulate_grad(dW)
        if self.b is not None:
            self.b.accumulate_grad(db)
        return dx
        # END SOLUTION
