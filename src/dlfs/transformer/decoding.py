"""Topic 31 — generation with the key/value cache: prefill, one token per step, batches of
prompts of different lengths, and contexts longer than ``block_size``.

**Batches: left padding.** Prompts of lengths n_b are padded on the *left* to the longest,
T0, so that every row's last real token is in column T0 − 1 and each new token of every
row goes into the same column (one cache position per step for the whole batch). The
padding columns are masked out as keys (``key_padding_mask``), and the position of a real
token counts from the row's first real token: column j of a row with p_b padding columns
gets position embedding j − p_b, the position it has when the row is generated alone.
(Right padding would put the rows' next tokens in different columns.)

**Longer than block_size: a window rebuilt in jumps.** The GPT's learned positions stop at
``block_size``, and the positions are added to the input, so each cached key depends on its
absolute position: sliding the window by one token would change every cached key (Topic
30's ``generate`` recomputes the whole window at every step for this reason). Here, when the
cache is full, it is **rebuilt**: the last ``keep`` tokens are prefilled again at positions
0 … keep−1 in one batched forward, and single steps continue from there. The context of a
step is then between ``keep`` and ``block_size`` tokens (the window jumps by block_size + 1 −
keep tokens at each rebuild); ``keep = block_size`` rebuilds at every step and reproduces
Topic 30's sliding window exactly. The logits of every step equal the full model run on that
step's window (returned in ``window_start``).

A ring buffer that overwrites the oldest position in place would work for relative position
schemes (RoPE's rotated keys, ALiBi), where a cached key does not change as the window slides.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import numpy as np

from dlfs.transformer.kv_cache import cache_for, gpt_step
from dlfs.transformer.sampling import filtered_probs, sample


class Decoded(NamedTuple):
    """ids: (B, T0 + n), the padded prompts and the new tokens; logits: (B, n, V), the logits
    each new token was chosen from; window_start: (n,), the first column of each step's
    context (padding columns included); pad: (B, T0 + n) bool, True on the left padding."""
    ids: np.ndarray
    logits: np.ndarray
    window_start: np.ndarray
    pad: np.ndarray


def left_pad(prompts: Sequence[np.ndarray], pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Prompts of lengths n_b ≥ 1 -> ids (B, T0) with each prompt at the right end, T0 = max n_b,
    and pad (B, T0) bool, True on the padding (filled with ``pad_id``)."""
    prompts = [np.asarray(p, dtype=np.int64) for p in prompts]
    if not prompts or any(p.ndim != 1 or p.size < 1 for p in prompts):
        raise ValueError(f"prompts must be a non-empty list of 1-D id arrays of length ≥ 1, "
                         f"got shapes {[p.shape for p in prompts]}")
    T0 = max(p.size for p in prompts)
    ids = np.full((len(prompts), T0), pad_id, dtype=np.int64)
    pad = np.ones((len(prompts), T0), dtype=bool)
    for b, p in enumerate(prompts):
        ids[b, T0 - p.size:] = p
        pad[b, T0 - p.size:] = False
    return ids, pad


def window_positions(pad: np.ndarray, start: int, end: int) -> np.ndarray:
    """pad: (B, ≥ end) bool (left padding) -> positions (B, end − start) of columns start … end−1
    in a context starting at column ``start``: a real token counts from the first real token of
    its row inside the window; padding columns get 0 (they are masked out)."""
    # TODO: count the real tokens before each column inside the window.
    # BEGIN SOLUTION cumulative count of real tokens in the window, minus one, clipped at 0
    real = ~pad[:, start:end]
    return np.maximum(np.cumsum(real, axis=1) - 1, 0)
    # END SOLUTION


def decode(model, ids: np.ndarray, pad: np.ndarray | None, max_new_tokens: int,
           choose: Callable[[np.ndarray], np.ndarray], keep: int | None = None) -> Decoded:
    """Generate with the cache. ids: (B, T0) left-padded prompts, pad: (B, T0) bool or None;
    choose: logits (B, V) -> next ids (B,); keep: tokens kept when the cache is rebuilt,
    1 ≤ keep ≤ block_size (default block_size // 2). The model must be in eval mode.

    The cache holds ``block_size`` positions. The prompt's last ``block_size`` columns are
    prefilled; each later step feeds the newest token alone, or, when the cache is full,
    rebuilds it from the last ``keep`` columns (see the module docstring).
    """
    block = model.config.block_size
    keep = block // 2 if keep is None else int(keep)
    if not 1 <= keep <= block:
        raise ValueError(f"keep must be in [1, block_size = {block}], got {keep}")
    ids = np.asarray(ids, dtype=np.int64)
    B, T0 = ids.shape
    n = int(max_new_tokens)
    out = np.empty((B, T0 + n), dtype=np.int64)
    out[:, :T0] = ids
    full_pad = np.zeros((B, T0 + n), dtype=bool)
    if pad is not None:
        full_pad[:, :T0] = pad
    padded = bool(full_pad.any())
    cache = cache_for(model, B)
    logits = np.empty((B, n, model.config.vocab_size), dtype=model.wte.W.dtype)
    starts = np.empty(n, dtype=np.int64)
    start = max(0, T0 - block)
    # TODO: the prefill gives the first new token's logits; then either one cached step or,
    #       when the cache is full, a rebuild from the last `keep` columns (a new prefill).
    # BEGIN SOLUTION prefill the prompt's window; then per new token: choose, and feed it by one step or a rebuild
    z = _prefill(model, cache, out, full_pad, start, T0, padded)
    for i in range(n):
        c = T0 + i                                        # the column being generated
        logits[:, i] = z
        starts[i] = start
        out[:, c] = choose(z)
        if i == n - 1:
            break
        if cache.length == cache.max_len:                 # full: rebuild from the last `keep` columns
            start = c + 1 - keep
            cache.reset()
            z = _prefill(model, cache, out, full_pad, start, c + 1, padded)
        else:
            positions = window_positions(full_pad, start, c + 1)[:, -1:]
            kpm = full_pad[:, start:c + 1] if padded else None
            z = gpt_step(model, out[:, c:c + 1], cache, positions, kpm)[:, -1]
    # END SOLUTION
    return Decoded(out, logits, starts, full_pad)


def _prefill(model, cache, out, pad, start: int, end: int, padded: bool) -> np.ndarray:
    """Fill the empty cache with columns start … end−1; the last column's logits (B, V)."""
    kpm = pad[:, start:end] if padded else None
    return gpt_step(model, out[:, start:end], cache, window_positions(pad, start, end), kpm)[:, -1]


def generate_cached(model, prompt, max_new_tokens: int, *, temperature: float = 1.0,
                    top_k: int | None = None, top_p: float | None = None,
                    rng: np.random.Generator | int | None = None, keep: int | None = None):
    """Topic 30's ``generate`` with the key/value cache.

    prompt: (T0,) ids, (B, T0) ids, or a list of 1-D prompts of different lengths (left-padded
    together). Samples as ``dlfs.transformer.sampling.generate`` (temperature, top-k, top-p, one
    uniform number per row and step from ``rng``); with ``keep = block_size`` and equal-length
    prompts it draws the same tokens. Returns (T0 + n,), (B, T0 + n), or a list of 1-D arrays
    (each prompt followed by its new tokens) for a list.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    ragged = isinstance(prompt, (list, tuple))
    if ragged:
        ids, pad = left_pad(prompt)
    else:
        ids, pad = np.asarray(prompt, dtype=np.int64), None
        if ids.ndim not in (1, 2) or ids.shape[-1] < 1:
            raise ValueError(f"prompt must be (T0,) or (B, T0) with T0 ≥ 1 ids, or a list of prompts, "
                             f"got shape {ids.shape}")
    single = not ragged and ids.ndim == 1
    ids = ids[None] if single else ids
    was_training = model.training
    model.eval()
    try:
        result = decode(model, ids, pad, max_new_tokens,
                        lambda z: sample(filtered_probs(z, temperature, top_k, top_p), rng), keep)
    finally:
        model.train(was_training)
    if ragged:
        return [row[p.sum():] for row, p in zip(result.ids, result.pad)]
    return result.ids[0] if single else result.ids
