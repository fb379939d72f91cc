"""Topic 36 — the speculative decoding loop, and plain autoregressive decoding to compare.

Models follow :mod:`dlfs.speculative.models`: ``next_probs(ids (L,), count) -> (count, V)``
and a ``calls`` counter. One speculative round with k drafts:

    draft:   for i = 1..k:  q_i = draft.next_probs(seq + x_1..x_{i−1}, 1),  x_i ~ q_i   (k draft calls)
    score:   p = target.next_probs(seq + x_1..x_k, k + 1)                                (one target call)
    verify:  :func:`~dlfs.speculative.rules.speculative_accept` (or ``greedy_accept``)
    append the emitted tokens (1 to k+1 of them)

If each draft is accepted independently with probability α, a round emits on average

    E[tokens per target call] = 1 + α + … + α^k = (1 − α^{k+1}) / (1 − α)

(:func:`expected_tokens_per_call`). The last rounds draft fewer than k tokens so that the
output stops at exactly ``max_new_tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dlfs.speculative.rules import greedy_accept, speculative_accept
from dlfs.transformer.sampling import sample


@dataclass
class DecodeStats:
    """Counts of one generation. rounds: (drafted k, accepted n) per target call."""

    target_calls: int = 0
    draft_calls: int = 0
    rounds: list = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return sum(n for _, n in self.rounds)

    @property
    def examined(self) -> int:
        """Drafts the target judged: the accepted ones and each round's rejected one."""
        return sum(n + (n < k) for k, n in self.rounds)

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.examined if self.examined else float("nan")

    def tokens_per_call(self, k: int | None = None) -> float:
        """Mean tokens emitted per target call (over the rounds that drafted k, if given)."""
        rows = [n + 1 for kk, n in self.rounds if k is None or kk == k]
        return float(np.mean(rows)) if rows else float("nan")


def expected_tokens_per_call(alpha: float, k: int) -> float:
    """(1 − α^{k+1}) / (1 − α): tokens per target call when every draft is accepted with
    probability α independently; k + 1 at α = 1."""
    # BEGIN SOLUTION the geometric sum 1 + α + … + α^k
    return float(k + 1) if alpha >= 1.0 else (1.0 - alpha ** (k + 1)) / (1.0 - alpha)
    # END SOLUTION


def autoregressive_generate(model, prompt, max_new_tokens: int, rng: np.random.Generator | int | None = None,
                            greedy: bool = False) -> tuple[np.ndarray, DecodeStats]:
    """One call of ``model`` per token: sample (one :func:`~dlfs.transformer.sampling.sample`
    per token) or take the argmax. Returns (prompt + new ids, stats)."""
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    seq = [int(i) for i in prompt]
    calls0 = model.calls
    for _ in range(max_new_tokens):
        p = model.next_probs(seq, 1)[0]
        seq.append(int(np.argmax(p)) if greedy else int(sample(p, rng)))
    return np.asarray(seq, dtype=np.int64), DecodeStats(target_calls=model.calls - calls0,
                                                        rounds=[(0, 0)] * max_new_tokens)


def speculative_generate(target, draft, prompt, max_new_tokens: int, k: int,
                         rng: np.random.Generator | int | None = None, greedy: bool = False
                         ) -> tuple[np.ndarray, DecodeStats]:
    """Extend ``prompt`` (T0,) by exactly ``max_new_tokens`` ids with k drafts per round.

    Sampling (``greedy=False``): drafts x_i ~ q_i drawn with :func:`~dlfs.transformer.sampling.sample`,
    verified by :func:`~dlfs.speculative.rules.speculative_accept` (the output is distributed as
    the target's own samples). Greedy: drafts are the draft's argmax, verified by
    :func:`~dlfs.speculative.rules.greedy_accept` (the output equals greedy target decoding).
    k = 0 is plain autoregressive decoding of the target. Returns (prompt + new ids, stats).
    """
    if k < 0:
        raise ValueError(f"k must be ≥ 0, got {k}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    seq = [int(i) for i in prompt]
    end = len(seq) + max_new_tokens
    stats = DecodeStats()
    t0, d0 = target.calls, draft.calls
    while len(seq) < end:
        k_now = min(k, end - len(seq) - 1)        # never emit past the end
        # TODO: k_now draft calls (one position each), then ONE target call scoring k_now + 1 positions.
        # BEGIN SOLUTION draft k_now tokens one call at a time, score them with one target call, verify, append
        drafts, qs = [], []
        for _ in range(k_now):
            q = draft.next_probs(seq + drafts, 1)[0]
            drafts.append(int(np.argmax(q)) if greedy else int(sample(q, rng)))
            qs.append(q)
        p = target.next_probs(seq + drafts, k_now + 1)
        if greedy:
            emitted = greedy_accept(p, np.asarray(drafts, dtype=np.int64))
        else:
            q_rows = np.asarray(qs, dtype=np.float64).reshape(k_now, p.shape[-1])
            emitted = speculative_accept(p, q_rows, np.asarray(drafts, dtype=np.int64), rng)
        seq.extend(int(x) for x in emitted)
        # END SOLUTION
        stats.rounds.append((k_now, len(emitted) - 1))
    stats.target_calls, stats.draft_calls = target.calls - t0, draft.calls - d0
    return np.asarray(seq, dtype=np.int64), stats
