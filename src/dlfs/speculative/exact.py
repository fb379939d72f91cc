"""The exact output distribution of speculative sampling, by enumerating every path.

One speculative step from ``prefix`` with k drafts: every draft sequence x_1..x_k (probability
Π q_i(x_i)), and for each, every acceptance event — the first rejection at position i
(probability Π_{j<i} a_j · (1 − a_i), then a token from the residual) or no rejection
(Π a_j, then the bonus token from p_k), with a_i = min(1, p_i(x_i)/q_i(x_i)). The acceptance
probability and the residual come from :mod:`dlfs.speculative.rules`, so this checks that code.

Models: :class:`dlfs.speculative.models.FunctionModel` (small vocabularies: the enumeration
costs V^k target calls per step).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from dlfs.speculative import rules


def step_distribution(target, draft, prefix, k: int) -> dict[tuple, float]:
    """{emitted tokens (1 to k+1 ids): probability} of one speculative step after ``prefix``."""
    prefix = tuple(int(i) for i in prefix)
    out: dict[tuple, float] = defaultdict(float)

    def resolve(drafts: tuple, qs: list, prob: float) -> None:
        p = target.next_probs(prefix + drafts, k + 1)
        reach = prob                                   # probability of reaching position i
        for i, x in enumerate(drafts):
            a = float(rules.acceptance_probability(p[i, x], qs[i][x]))
            if a < 1.0:
                r = rules.residual_distribution(p[i], qs[i])
                for y in np.flatnonzero(r):
                    out[drafts[:i] + (int(y),)] += reach * (1.0 - a) * float(r[y])
            reach *= a
        for y in np.flatnonzero(p[k]):
            out[drafts + (int(y),)] += reach * float(p[k][y])

    def walk(drafts: tuple, qs: list, prob: float) -> None:
        if len(drafts) == k:
            resolve(drafts, qs, prob)
            return
        q = draft.next_probs(prefix + drafts, 1)[0]
        for x in np.flatnonzero(q):                    # a token of probability 0 is never drafted
            walk(drafts + (int(x),), qs + [q], prob * float(q[x]))

    walk((), [], 1.0)
    return dict(out)


def sequence_distribution(target, draft, prefix, k: int, n: int) -> dict[tuple, float]:
    """{first n emitted tokens: probability} when speculative steps with k drafts are repeated
    from ``prefix`` (the last step's output cut after n tokens)."""
    prefix = tuple(int(i) for i in prefix)
    out: dict[tuple, float] = defaultdict(float)

    def grow(done: tuple, prob: float) -> None:
        if len(done) >= n:
            out[done[:n]] += prob
            return
        for emitted, pr in step_distribution(target, draft, prefix + done, k).items():
            grow(done + emitted, prob * pr)

    grow((), 1.0)
    return dict(out)


def target_sequence_distribution(target, prefix, n: int) -> dict[tuple, float]:
    """{n tokens: probability} of sampling n tokens from the target one by one."""
    prefix = tuple(int(i) for i in prefix)
    out: dict[tuple, float] = {}

    def grow(done: tuple, prob: float) -> None:
        if len(done) == n:
            out[done] = prob
            return
        p = target.next_probs(prefix + done, 1)[0]
        for y in np.flatnonzero(p):
            grow(done + (int(y),), prob * float(p[y]))

    grow((), 1.0)
    return out
