"""Topic 30 — turning a language model's logits into text: temperature, top-k, top-p (nucleus).

A model gives logits z: (..., V) for the next token. Sampling draws from p = softmax(z / τ),
usually after cutting off the unlikely tail, in this order (nanoGPT's and Hugging Face's):

    temperature τ > 0     z ← z / τ           τ < 1 sharpens p, τ > 1 flattens it
    top-k                 keep the k largest logits (and any tied with the k-th), −inf elsewhere
    top-p (nucleus)       sort p descending; keep the smallest prefix whose mass reaches p_top:
                          token i stays iff the mass of the tokens ranked before it is < p_top
    p = softmax(z)        the filtered tokens get probability exactly 0

Each filter works on logits (−inf marks a removed token) along the last axis, for any
leading axes. ``sample`` draws one id per row by inverting the cumulative distribution with
one uniform number per row. ``generate`` runs a model autoregressively: crop the context to the
model's ``block_size``, take the last position's logits, filter, sample, append.
"""

from __future__ import annotations

import numpy as np

from dlfs.numerics import softmax


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """logits: (..., V) -> logits / temperature (a new array). temperature must be > 0."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    # BEGIN SOLUTION divide by the temperature
    return logits / temperature
    # END SOLUTION


def top_k_filter(logits: np.ndarray, k: int) -> np.ndarray:
    """logits: (..., V) -> a copy with every logit below the k-th largest of its row set to −inf.

    Ties with the k-th largest are kept (so a row may keep more than k tokens), as nanoGPT's
    ``logits[logits < v[:, [-1]]] = -inf``. k ≥ V keeps everything; k must be ≥ 1.
    """
    if k < 1:
        raise ValueError(f"top_k must be >= 1, got {k}")
    V = logits.shape[-1]
    if k >= V:
        return logits.copy()
    # TODO: np.partition finds the k-th largest of each row without sorting the whole row.
    # BEGIN SOLUTION the k-th largest value per row (np.partition), −inf for every logit below it
    kth = np.partition(logits, V - k, axis=-1)[..., V - k:V - k + 1]
    return np.where(logits < kth, -np.inf, logits)
    # END SOLUTION


def top_p_filter(logits: np.ndarray, p: float) -> np.ndarray:
    """logits: (..., V) -> a copy with the tokens outside the nucleus of mass ``p`` set to −inf.

    With the row's probabilities softmax(logits) sorted in descending order (ties in index
    order), token i is kept iff the total probability of the tokens ranked before it is < p:
    the smallest set of top tokens whose mass reaches p, so the most likely token always stays.
    p must be in (0, 1]; p = 1 keeps every token of non-zero probability.
    """
    if not 0 < p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    # TODO: sort, cumulative sum, decide in sorted order, then scatter the decision back.
    # BEGIN SOLUTION sort the probabilities descending (stable), keep where the mass before < p, map back, −inf elsewhere
    probs = softmax(logits, axis=-1)
    order = np.argsort(-probs, axis=-1, kind="stable")
    sorted_p = np.take_along_axis(probs, order, axis=-1)
    before = np.cumsum(sorted_p, axis=-1) - sorted_p
    keep_sorted = before < p
    keep = np.empty_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=-1)
    return np.where(keep, logits, -np.inf)
    # END SOLUTION


def filtered_probs(logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None,
                   top_p: float | None = None) -> np.ndarray:
    """logits: (..., V) -> the sampling distribution (..., V): temperature, then top-k, then
    top-p, then softmax. Removed tokens get probability exactly 0; rows sum to 1."""
    z = apply_temperature(np.asarray(logits, dtype=np.float64), temperature)
    if top_k is not None:
        z = top_k_filter(z, top_k)
    if top_p is not None:
        z = top_p_filter(z, top_p)
    return softmax(z, axis=-1)


def sample(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """probs: (..., V), each row a distribution -> ids: (...,) int64, one draw per row.

    Inverse-CDF sampling: with u ~ U[0, 1) (one ``rng.random()`` per row, in row order),
    the id is the first index whose cumulative probability exceeds u · (row sum). A token of
    probability 0 is never drawn.
    """
    probs = np.asarray(probs)
    # BEGIN SOLUTION cumulative sums per row, one uniform per row, the first index where the cumsum exceeds u · total
    cdf = np.cumsum(probs, axis=-1)
    u = rng.random(probs.shape[:-1] + (1,)) * cdf[..., -1:]
    ids = (cdf <= u).sum(axis=-1)
    return np.minimum(ids, probs.shape[-1] - 1).astype(np.int64)
    # END SOLUTION


def generate(model, prompt: np.ndarray, max_new_tokens: int, *, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None,
             rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Extend ``prompt`` (T0,) or (B, T0) ids by ``max_new_tokens`` sampled tokens.

    ``model``: ``forward(ids (B, T)) -> logits (B, T, V)`` with ``config.block_size``; it is put
    in eval mode (no dropout) and back into its previous mode afterwards. Each step feeds the
    last ``block_size`` tokens, samples from the last position's :func:`filtered_probs` and
    appends. Returns the ids with the prompt, (T0 + max_new_tokens,) or (B, T0 + max_new_tokens).
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    ids = np.asarray(prompt, dtype=np.int64)
    single = ids.ndim == 1
    ids = ids[None] if single else ids
    if ids.ndim != 2 or ids.shape[1] < 1:
        raise ValueError(f"prompt must be (T0,) or (B, T0) with T0 ≥ 1 ids, got shape {np.shape(prompt)}")
    block = model.config.block_size
    was_training = model.training
    model.eval()
    try:
        out = np.empty((ids.shape[0], ids.shape[1] + max_new_tokens), dtype=np.int64)
        out[:, :ids.shape[1]] = ids
        for t in range(ids.shape[1], out.shape[1]):
            logits = model.forward(out[:, max(0, t - block):t])[:, -1]
            out[:, t] = sample(filtered_probs(logits, temperature, top_k, top_p), rng)
    finally:
        model.train(was_training)
    return out[0] if single else out
