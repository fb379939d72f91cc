"""Topic 22 — using word vectors: cosine similarity, nearest neighbours, analogies.

Cosine similarity compares directions and ignores lengths:

    cos(x, y) = x · y / (‖x‖ ‖y‖)        in [−1, 1]

Normalise the rows of the embedding matrix once (``unit_rows``) and every cosine with every
word is one matrix–vector product. Analogies "a is to b as c is to ?" use 3CosAdd (Mikolov et
al., 2013), the rule of gensim's ``most_similar(positive=[b, c], negative=[a])``:

    q = unit(x̂_b − x̂_a + x̂_c)          x̂ = the unit-length vectors
    answer = argmax over w ∉ {a, b, c} of  x̂_w · q

The query words are excluded: the nearest vector to q is very often b or c itself.

Shapes: W: (V, d) word vectors; ids are integer arrays. Batched functions take Q queries at
once and return (Q, topn) arrays; scores keep W's floating dtype.
"""

from __future__ import annotations

import numpy as np


def unit_rows(W: np.ndarray) -> np.ndarray:
    """W: (V, d) → (V, d), each row divided by its L2 norm; an all-zero row stays zero."""
    # BEGIN SOLUTION divide each row by its norm; leave zero rows at zero
    norms = np.linalg.norm(W, axis=1, keepdims=True)
    return np.divide(W, norms, out=np.zeros_like(W), where=norms > 0)
    # END SOLUTION


def cosine_similarity(W: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The cosine between the vectors of the word pairs (a[i], b[i]).

    W: (V, d); a, b: (P,) ids → (P,) cosines (0 where a vector is all zeros).
    """
    # BEGIN SOLUTION normalise the rows taken, then one dot product per pair
    Wa, Wb = unit_rows(W[np.asarray(a)]), unit_rows(W[np.asarray(b)])
    return np.einsum("pd,pd->p", Wa, Wb)
    # END SOLUTION


def most_similar(W_unit: np.ndarray, queries: np.ndarray, topn: int = 10,
                 exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``topn`` words whose vectors have the largest cosine with each query.

    W_unit: (V, d) unit-length rows (``unit_rows``); queries: (Q, d) unit-length query vectors;
    exclude: (Q, E) ids never returned for query q (its own words), or None.
    Returns ``(ids, scores)``, both (Q, topn), best first; ids int64.
    """
    queries = np.asarray(queries)
    if queries.ndim != 2 or queries.shape[1] != W_unit.shape[1]:
        raise ValueError(f"queries must be (Q, {W_unit.shape[1]}), got {queries.shape}")
    n_excluded = 0 if exclude is None else np.asarray(exclude).shape[1]
    if not 1 <= topn <= W_unit.shape[0] - n_excluded:
        raise ValueError(f"topn must be in 1..{W_unit.shape[0] - n_excluded}, got {topn}")
    # TODO: all the cosines are one product (Q, V). Give the excluded words −inf, then
    #       np.argpartition finds the topn without sorting all V; sort only those topn.
    # BEGIN SOLUTION scores = queries @ W_unitᵀ, −inf on excluded ids, argpartition, sort the topn
    scores = queries @ W_unit.T                                     # (Q, V)
    if exclude is not None:
        np.put_along_axis(scores, np.asarray(exclude, dtype=np.int64), -np.inf, axis=1)
    top = np.argpartition(-scores, topn - 1, axis=1)[:, :topn]
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    ids = np.take_along_axis(top, order, axis=1).astype(np.int64)
    return ids, np.take_along_axis(top_scores, order, axis=1)
    # END SOLUTION


def analogy(W_unit: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray, topn: int = 1
            ) -> tuple[np.ndarray, np.ndarray]:
    """3CosAdd: for each question "a is to b as c is to ?", the words nearest to
    unit(x̂_b − x̂_a + x̂_c), excluding a, b and c.

    W_unit: (V, d) unit-length rows; a, b, c: (Q,) ids. Returns ``(ids, scores)`` (Q, topn).
    """
    a, b, c = (np.asarray(x, dtype=np.int64).reshape(-1) for x in (a, b, c))
    # BEGIN SOLUTION the query b − a + c from unit vectors, normalised; most_similar excluding a, b, c
    q = unit_rows(W_unit[b] - W_unit[a] + W_unit[c])
    return most_similar(W_unit, q, topn, exclude=np.stack([a, b, c], axis=1))
    # END SOLUTION
