"""Topic 36: the output distribution of speculative sampling, computed exactly over every draft
and every acceptance event, equals the target's — for one step and for the first tokens."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.speculative import exact, rules
from dlfs.speculative.models import FunctionModel


def toy(seed, V, zeros=0.0):
    """A context-dependent model: a Dirichlet draw per prefix (fixed by seed and prefix);
    with ``zeros`` > 0 some tokens get probability 0 (never the whole row)."""
    def fn(prefix):
        r = np.random.default_rng([seed, len(prefix), *prefix])
        p = r.dirichlet(np.full(V, 0.7))
        if zeros:
            p[r.random(V) < zeros] = 0.0
            if p.sum() == 0:
                p[r.integers(V)] = 1.0
            p /= p.sum()
        return p
    return FunctionModel(fn, V)


def max_gap(a: dict, b: dict) -> float:
    return max(abs(a.get(s, 0.0) - b.get(s, 0.0)) for s in set(a) | set(b))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_first_tokens_equal_the_target(k):
    target, draft = toy(1, 3), toy(2, 3)
    for n in (1, 2, 3):
        got = exact.sequence_distribution(target, draft, (0, 2), k, n)
        want = exact.target_sequence_distribution(target, (0, 2), n)
        gap = max_gap(got, want)
        assert gap < 1e-12, f"k={k}: the first {n} tokens differ from the target's by up to {gap:.3g}"


def test_one_step_with_zero_draft_probabilities():
    """q(x) = 0 where p(x) > 0: x is never drafted, yet emitted as often as p says (by the residual)."""
    target, draft = toy(3, 4), toy(4, 4, zeros=0.5)
    for k in (1, 2):
        step = exact.step_distribution(target, draft, (1,), k)
        first = np.zeros(4)
        for seq, pr in step.items():
            first[seq[0]] += pr
        p = target.next_probs((1,), 1)[0]
        assert np.max(np.abs(first - p)) < 1e-12, f"k={k}: first token {first}, target {p}"
        got = exact.sequence_distribution(target, draft, (1,), k, 2)
        gap = max_gap(got, exact.target_sequence_distribution(target, (1,), 2))
        assert gap < 1e-12, f"k={k}: two tokens differ from the target's by {gap:.3g}"


@settings(max_examples=15)
@given(st.integers(0, 10_000), st.integers(2, 4), st.integers(1, 3), st.floats(0.0, 0.6))
def test_exact_on_random_models(seed, V, k, zeros):
    target, draft = toy(seed, V, zeros), toy(seed + 1, V, zeros)
    got = exact.sequence_distribution(target, draft, (0,), k, 2)
    gap = max_gap(got, exact.target_sequence_distribution(target, (0,), 2))
    assert gap < 1e-12, f"V={V}, k={k}: the first two tokens differ from the target's by {gap:.3g}"


def test_equal_models_accept_everything():
    """p = q: every draft is accepted; one step emits k+1 tokens."""
    model = toy(5, 3)
    step = exact.step_distribution(model, model, (0,), 2)
    assert all(len(s) == 3 for s in step), f"p = q must emit k+1 = 3 tokens per step, got {sorted(step)}"
    gap = max_gap(step, exact.target_sequence_distribution(model, (0,), 3))
    assert gap < 1e-12, f"p = q: one step differs from three target tokens by {gap:.3g}"


def test_wrong_rule_is_detected(monkeypatch):
    """Resampling from p instead of the residual gives a different distribution: the check can fail."""
    target, draft = toy(1, 3), toy(2, 3)
    want = exact.target_sequence_distribution(target, (0,), 2)
    assert max_gap(exact.sequence_distribution(target, draft, (0,), 2, 2), want) < 1e-12
    monkeypatch.setattr(rules, "residual_distribution", lambda p, q: np.asarray(p, dtype=np.float64))
    gap = max_gap(exact.sequence_distribution(target, draft, (0,), 2, 2), want)
    assert gap > 1e-2, f"resampling from p should change the output distribution; it moved by {gap:.3g} only"
