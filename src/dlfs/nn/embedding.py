"""A lookup table of learned vectors: token ids in, one row of the table per id out.

    W: (V, D)                 one D-dimensional vector per token of a V-token vocabulary
    ids: (...,) integers in [0, V)  ->  y = W[ids]: (..., D)

The forward pass is indexing; it equals ``onehot(ids) @ W`` without building the (…, V) one-hot
matrix. The backward pass is therefore ``onehot(ids)ᵀ @ dy``: row v of dW is the sum of the
upstream gradients of every position that holds token v,

    dW[v] = Σ_{positions i with ids[i] = v} dy[i]       (0 for tokens that do not occur)

A token that occurs twice must get both contributions: ``dW[ids] += dy`` does not do that
(NumPy's buffered fancy assignment writes each repeated row once), ``np.add.at`` does.
As ``torch.nn.Embedding``: W is drawn from N(0, 1); the ids are not differentiated.
"""

from __future__ import annotations

import numpy as np

from dlfs.nn.layers import Layer, Parameter


class Embedding(Layer):
    """ids: (...,) int in [0, num_embeddings) -> (..., embedding_dim). Parameter ``W``:
    (num_embeddings, embedding_dim), N(0, 1) at initialisation (from ``rng``), in ``dtype``.
    ``backward(dy)`` accumulates W.grad and returns None (integer ids have no gradient)."""

    def __init__(self, num_embeddings: int, embedding_dim: int,
                 rng: np.random.Generator | int | None = None, dtype=np.float32):
        if num_embeddings < 1 or embedding_dim < 1:
            raise ValueError(f"Embedding needs positive sizes, got ({num_embeddings}, {embedding_dim})")
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        rng = np.random.default_rng(rng)
        self.W = Parameter(rng.standard_normal((self.num_embeddings, self.embedding_dim)).astype(dtype),
                           name="W")
        self.ids: np.ndarray | None = None

    @classmethod
    def from_weights(cls, W) -> "Embedding":
        """An Embedding holding a copy of W: (V, D) (its floating dtype; float32 otherwise)."""
        W = np.asarray(W)
        if W.ndim != 2:
            raise ValueError(f"Embedding.from_weights: W must be (num_embeddings, embedding_dim), got {W.shape}")
        layer = cls(*W.shape, rng=0, dtype=W.dtype if W.dtype.kind == "f" else np.float32)
        layer.load_state_dict({"W": W})
        return layer

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"

    def forward(self, ids: np.ndarray) -> np.ndarray:
        """ids: (...,) integers -> (..., D): row ids[i] of W for every position. Caches the ids.
        Raises ValueError for non-integer ids or ids outside [0, V)."""
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu":
            raise ValueError(f"Embedding expects integer ids, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            raise ValueError(f"Embedding ids must be in [0, {self.num_embeddings}), "
                             f"got {ids.min()}..{ids.max()}")
        # BEGIN SOLUTION cache the ids and gather the rows of W
        self.ids = ids
        return self.W.data[ids]
        # END SOLUTION

    def backward(self, dy: np.ndarray) -> None:
        """dy: (..., D) shaped like the last output -> None; W.grad[v] += Σ of dy over the
        positions holding token v."""
        if self.ids is None:
            raise RuntimeError("Embedding.backward called before forward")
        # TODO: repeated ids must add up: use np.add.at (unbuffered), not dW[ids] += dy.
        # BEGIN SOLUTION scatter-add the rows of dy into a (V, D) gradient at the cached ids; accumulate it
        dW = np.zeros_like(self.W.data)
        np.add.at(dW, self.ids.reshape(-1), dy.reshape(-1, self.embedding_dim))
        self.W.accumulate_grad(dW)
        # END SOLUTION
        return None
