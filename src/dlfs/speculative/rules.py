"""Topic 36 — the acceptance rule of exact speculative sampling (Leviathan et al. 2023,
Chen et al. 2023).

A draft model q proposed tokens x_1..x_k; the target p scored the prefix extended by them in
one call, giving k+1 next-token distributions:

    p: (k+1, V)   p[i] = p(· | prefix, x_1..x_i)      (row k: after all k drafts)
    q: (k, V)     q[i] = q(· | prefix, x_1..x_i)      (the distribution x_{i+1} was drawn from)

For i = 0..k−1: accept x_{i+1} with probability min(1, p[i, x]/q[i, x]). On the first
rejection, emit one token drawn from the residual normalise(max(0, p[i] − q[i])) and stop.
If all k are accepted, emit a bonus token drawn from p[k]. Either way the step emits between
1 and k+1 tokens, and each one is distributed exactly as the target's next token:

    P(emit x) = q(x)·min(1, p(x)/q(x)) + (1 − β)·max(0, p(x) − q(x))/(1 − β)
              = min(q(x), p(x)) + max(0, p(x) − q(x)) = p(x),
    with β = Σ_y min(p(y), q(y)) the probability of accepting (1 − β = Σ_y max(0, p(y) − q(y))).

Greedy decoding is the temperature → 0 limit: accept x while it is the target's argmax, emit
the target's argmax at the first mismatch (or as the bonus).
"""

from __future__ import annotations

import numpy as np

from dlfs.transformer.sampling import sample


def acceptance_probability(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """p, q: (..., ) target and draft probabilities of the same tokens -> min(1, p/q) (...,).

    Where q = 0 the token is never drafted; the value there is 1 by convention (no division
    by zero, no warning)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    # BEGIN SOLUTION min(1, p/q), 1 where q = 0
    ratio = np.divide(p, q, out=np.ones(np.broadcast_shapes(p.shape, q.shape)), where=q > 0)
    return np.minimum(1.0, ratio)
    # END SOLUTION


def residual_distribution(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """p, q: (V,) target and draft distributions -> (V,) normalise(max(0, p − q)).

    When p = q the residual is all zeros and a rejection cannot happen; ``p`` is returned then
    (any distribution would do)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    # BEGIN SOLUTION the positive part of p − q, normalised; p when it sums to 0
    r = np.maximum(0.0, p - q)
    total = r.sum()
    return r / total if total > 0 else p.copy()
    # END SOLUTION


def speculative_accept(p: np.ndarray, q: np.ndarray, drafts: np.ndarray, rng: np.random.Generator
                       ) -> np.ndarray:
    """One verification step of exact speculative sampling.

    p: (k+1, V) target distributions, q: (k, V) draft distributions, drafts: (k,) the drafted
    ids (drafts[i] was drawn from q[i]). Randomness, in this order: one ``rng.random()`` per
    examined draft (accept when u < min(1, p/q)); then one :func:`~dlfs.transformer.sampling.sample`
    from the residual of the rejected position, or from p[k] when all k were accepted.

    Returns the emitted ids (n+1,) int64: the n accepted drafts, then the resampled or bonus
    token. Raises ValueError for a draft whose draft probability is 0 (it cannot have been drawn).
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    drafts = np.asarray(drafts, dtype=np.int64)
    k = len(drafts)
    if p.shape[0] != k + 1 or q.shape[0] != k:
        raise ValueError(f"with k = {k} drafts, p must have k+1 rows and q k rows; got {p.shape} and {q.shape}")
    if k and np.any(q[np.arange(k), drafts] <= 0):
        i = int(np.argmax(q[np.arange(k), drafts] <= 0))
        raise ValueError(f"draft {i} (id {drafts[i]}) has draft probability 0: it cannot have been drafted")
    # TODO: walk the drafts in order; stop at the first rejection.
    # BEGIN SOLUTION accept with probability min(1, p/q); resample a rejection from the residual; else a bonus from p[k]
    for i, x in enumerate(drafts):
        if rng.random() < acceptance_probability(p[i, x], q[i, x]):
            continue
        last = sample(residual_distribution(p[i], q[i]), rng)
        return np.append(drafts[:i], last).astype(np.int64)
    return np.append(drafts, sample(p[k], rng)).astype(np.int64)
    # END SOLUTION


def greedy_accept(p: np.ndarray, drafts: np.ndarray) -> np.ndarray:
    """Greedy verification. p: (k+1, V) target scores (probabilities or logits), drafts: (k,).

    Returns (n+1,) int64: the drafts while each equals the target's argmax at its position, then
    the target's argmax at the first mismatch (or at row k when all matched)."""
    p = np.asarray(p)
    drafts = np.asarray(drafts, dtype=np.int64)
    if p.shape[0] != len(drafts) + 1:
        raise ValueError(f"with k = {len(drafts)} drafts, p must have k+1 rows; got {p.shape}")
    # BEGIN SOLUTION keep the drafts that equal the target's argmax, then the argmax where they first differ
    best = np.argmax(p, axis=-1)
    n = 0
    while n < len(drafts) and drafts[n] == best[n]:
        n += 1
    return np.append(drafts[:n], best[n]).astype(np.int64)
    # END SOLUTION
