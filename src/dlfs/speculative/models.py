"""Language models as the speculative loop sees them: a function from a prefix to next-token
probabilities, able to score several positions in one call.

    next_probs(ids: (L,) ints, count) -> (count, V) float64
        row j = p(· | ids[:L − count + 1 + j])    (the last row: after the whole of ids)

Each model counts its calls in ``calls`` (a call is one pass of the model, however many
positions it scores); :class:`GPTModel` also adds up their time in ``seconds``.

- :class:`FunctionModel`: an explicit toy model, ``fn(prefix tuple) -> (V,) probabilities``;
  one call evaluates ``fn`` on each of the ``count`` prefixes.
- :class:`GPTModel`: Topic 30's GPT, one forward over the whole sequence per call (full
  recomputation: no KV cache), the distributions of the last ``count`` positions after
  temperature / top-k / top-p (:func:`dlfs.transformer.sampling.filtered_probs`). The sequence
  must fit in the context (``block_size``), so that every scored position sees its whole
  prefix and both loops see the same distributions.
- :class:`CachedGPTModel`: the same distributions through Topic 31's key/value cache
  (:func:`dlfs.transformer.kv_cache.gpt_step`): a call feeds only the positions not cached yet.
  Between calls the cache keeps the ids it holds; a call keeps the longest prefix they share
  with the new ids (at most L − count, so that the scored positions are recomputed) and rolls
  the cache back to it — that is how rejected drafts are forgotten.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np


class FunctionModel:
    """fn: prefix (tuple of ints) -> (V,) probabilities; vocab_size V."""

    def __init__(self, fn: Callable[[tuple], np.ndarray], vocab_size: int):
        self.fn = fn
        self.vocab_size = int(vocab_size)
        self.calls = 0

    def next_probs(self, ids, count: int = 1) -> np.ndarray:
        ids = tuple(int(i) for i in ids)
        L = len(ids)
        if not 1 <= count <= L + 1:
            raise ValueError(f"count must be in 1..{L + 1} for a prefix of {L} ids, got {count}")
        self.calls += 1
        rows = [np.asarray(self.fn(ids[:L - count + 1 + j]), dtype=np.float64) for j in range(count)]
        out = np.stack(rows)
        if out.shape != (count, self.vocab_size):
            raise ValueError(f"fn must return ({self.vocab_size},) probabilities, got rows of shape {rows[0].shape}")
        return out


class GPTModel:
    """gpt: a :class:`dlfs.transformer.gpt.GPT` (put in eval mode); sampling filters applied to
    its logits. One call = one forward over ``ids`` (L ≤ block_size)."""

    def __init__(self, gpt, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None):
        self.gpt = gpt
        self.gpt.eval()
        self.vocab_size = gpt.config.vocab_size
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.calls = 0
        self.seconds = 0.0            # wall-clock time spent in calls

    def _checked(self, ids, count: int) -> tuple[np.ndarray, int]:
        """ids as int64 and their number L, with 1 ≤ count ≤ L ≤ block_size (ValueError otherwise)."""
        ids = np.asarray(ids, dtype=np.int64)
        L, block = len(ids), self.gpt.config.block_size
        if not 1 <= count <= L:
            raise ValueError(f"count must be in 1..{L} for a GPT given {L} ids, got {count}")
        if L > block:
            raise ValueError(f"the sequence ({L} ids) must fit in the context ({block}): every scored "
                             "position needs its whole prefix")
        return ids, L

    def next_probs(self, ids, count: int = 1) -> np.ndarray:
        from dlfs.transformer.sampling import filtered_probs

        ids, L = self._checked(ids, count)
        self.calls += 1
        t = time.perf_counter()
        logits = self.gpt.forward(ids[None])[0, L - count:]
        out = filtered_probs(logits, self.temperature, self.top_k, self.top_p)
        self.seconds += time.perf_counter() - t
        return out


class CachedGPTModel(GPTModel):
    """:class:`GPTModel` with a key/value cache of ``block_size`` positions (batch 1)."""

    def __init__(self, gpt, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None):
        from dlfs.transformer.kv_cache import cache_for

        super().__init__(gpt, temperature, top_k, top_p)
        self.cache = cache_for(gpt, 1)
        self.cached_ids = np.zeros(0, dtype=np.int64)      # the ids at cache positions 0 … length−1
        self.fed = 0                                        # positions fed through the model in total

    def next_probs(self, ids, count: int = 1) -> np.ndarray:
        from dlfs.transformer.kv_cache import gpt_step
        from dlfs.transformer.sampling import filtered_probs

        ids, L = self._checked(ids, count)
        self.calls += 1
        t = time.perf_counter()
        n = min(len(self.cached_ids), L - count)
        same = np.flatnonzero(self.cached_ids[:n] != ids[:n])
        keep = int(same[0]) if same.size else n             # the shared prefix: rejected drafts drop out
        self.cache.length = keep
        logits = gpt_step(self.gpt, ids[None, keep:], self.cache)[0, L - count - keep:]
        self.cached_ids = ids.copy()
        self.fed += L - keep
        out = filtered_probs(logits, self.temperature, self.top_k, self.top_p)
        self.seconds += time.perf_counter() - t
        return out
