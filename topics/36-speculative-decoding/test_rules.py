"""Topic 36: the acceptance probability, the residual distribution and one verification step,
on explicit distributions with scripted random numbers."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.speculative import rules
from dlfs.testing import assert_close


class Scripted:
    """A stand-in for np.random.Generator whose random() returns the given numbers in order."""

    def __init__(self, *values):
        self.values = list(values)

    def random(self, size=None):
        v = self.values.pop(0)
        return v if size is None else np.full(size, v)


def test_acceptance_probability_values():
    p = np.array([0.2, 0.5, 0.0, 0.3])
    q = np.array([0.4, 0.25, 0.1, 0.0])
    assert_close(rules.acceptance_probability(p, q), [0.5, 1.0, 0.0, 1.0], what="min(1, p/q), 1 where q = 0")


def test_residual_values():
    p = np.array([0.5, 0.3, 0.2, 0.0])
    q = np.array([0.1, 0.2, 0.4, 0.3])
    # max(0, p − q) = [0.4, 0.1, 0, 0] -> normalised
    assert_close(rules.residual_distribution(p, q), [0.8, 0.2, 0.0, 0.0], rtol=1e-12, what="residual")
    assert_close(rules.residual_distribution(p, p), p, what="residual when p = q (returns p)")


@settings(max_examples=40)
@given(st.integers(0, 10_000), st.integers(2, 8))
def test_one_token_is_distributed_as_the_target(seed, V):
    """P(emit x) = q(x)·min(1, p(x)/q(x)) + (1 − β)·residual(x) = p(x), zeros included."""
    rng = np.random.default_rng(seed)
    p, q = rng.dirichlet(np.ones(V)), rng.dirichlet(np.ones(V))
    q[rng.random(V) < 0.3] = 0.0                     # tokens the draft never proposes
    if q.sum() == 0:
        q[0] = 1.0
    q /= q.sum()
    a = rules.acceptance_probability(p, q)
    accept = float(np.sum(q * a))                    # β = Σ min(p, q)
    assert_close(accept, np.minimum(p, q).sum(), rtol=1e-12, what="acceptance probability β")
    emitted = q * a + (1 - accept) * rules.residual_distribution(p, q)
    assert_close(emitted, p, rtol=0, atol=1e-12, what="distribution of the emitted token")


def test_accept_reject_and_resample():
    p = np.array([[0.6, 0.3, 0.1],       # after the prefix
                  [0.2, 0.2, 0.6],       # after draft 1
                  [0.3, 0.3, 0.4]])      # after drafts 1, 2
    q = np.array([[0.3, 0.6, 0.1],
                  [0.1, 0.8, 0.1]])
    drafts = np.array([0, 1])
    # draft 0: p/q = 2 -> accepted whatever u; draft 1: p/q = 0.25, u = 0.3 -> rejected;
    # residual of row 1 = max(0, [0.1, -0.6, 0.5]) / 0.6 = [1/6, 0, 5/6]; u = 0.5 -> id 2
    got = rules.speculative_accept(p, q, drafts, Scripted(0.99, 0.3, 0.5))
    assert got.tolist() == [0, 2], f"expected [0, 2] (accept, reject, resample 2), got {got.tolist()}"
    # u = 0.2 < 0.25: both accepted, then the bonus from p[2] with u = 0.5: cumsum [0.3, 0.6, 1] -> id 1
    got = rules.speculative_accept(p, q, drafts, Scripted(0.99, 0.2, 0.5))
    assert got.tolist() == [0, 1, 1], f"expected [0, 1, 1] (both accepted, bonus 1), got {got.tolist()}"
    # first draft rejected: p/q for id 1 at row 0 = 0.5, u = 0.7; residual = [0.3, 0, 0]/0.3 -> id 0
    got = rules.speculative_accept(p, q, np.array([1, 1]), Scripted(0.7, 0.1))
    assert got.tolist() == [0], f"expected [0] (first draft rejected, resampled 0), got {got.tolist()}"
    # k = 0: one token from p[0]
    got = rules.speculative_accept(p[:1], q[:0], np.array([], dtype=int), Scripted(0.95))
    assert got.tolist() == [2], f"expected [2] (k = 0: a sample of p[0]), got {got.tolist()}"
    with pytest.raises(ValueError, match="draft probability 0"):
        rules.speculative_accept(p, np.array([[0.0, 1.0, 0.0], [0.1, 0.8, 0.1]]), drafts, Scripted(0.1))
    with pytest.raises(ValueError, match="k\\+1 rows"):
        rules.speculative_accept(p[:2], q, drafts, Scripted(0.1))


def test_greedy_accept():
    p = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]])
    assert rules.greedy_accept(p, np.array([1, 0, 2])).tolist() == [1, 0, 2, 1], "all three match: bonus argmax 1"
    assert rules.greedy_accept(p, np.array([1, 2, 2])).tolist() == [1, 0], "second differs: the target's 0"
    assert rules.greedy_accept(p, np.array([0, 0, 2])).tolist() == [1], "first differs: the target's 1"
    assert rules.greedy_accept(p[:1], np.array([], dtype=int)).tolist() == [1], "k = 0: the argmax"
