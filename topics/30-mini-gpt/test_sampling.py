"""Topic 30: the samplers on known distributions — the exact probabilities after temperature, top-k
and top-p filtering, and a chi-square test of the drawn samples — and generation with a model."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.testing import assert_close
from dlfs.transformer import sampling as S

P = np.array([0.05, 0.4, 0.1, 0.3, 0.15])            # a known distribution, not sorted
LOGITS = np.log(P) + 1.7                               # any shift gives the same softmax


def chi_square_critical(df: int) -> float:
    """The 0.999 quantile of the chi-square distribution with df degrees of freedom (a test at
    significance 0.001): exact for df = 1 (z² with z = N(0,1)'s 0.9995 quantile) and df = 2
    (−2 ln 0.001), the Wilson–Hilferty approximation above (within 1%)."""
    if df == 1:
        return 3.2905 ** 2
    if df == 2:
        return -2.0 * math.log(0.001)
    a, z = 2.0 / (9.0 * df), 3.0902                    # z: N(0,1)'s 0.999 quantile
    return df * (1.0 - a + z * math.sqrt(a)) ** 3


def chi_square(counts: np.ndarray, probs: np.ndarray) -> float:
    expected = counts.sum() * probs
    keep = probs > 0
    return float((((counts - expected) ** 2)[keep] / expected[keep]).sum())


# ------------------------------------------------------------------ filters: exact probabilities

def test_temperature_divides_the_logits():
    assert_close(S.apply_temperature(LOGITS, 0.5), 2 * LOGITS, rtol=1e-15, what="logits / 0.5")
    sharp = S.filtered_probs(LOGITS, temperature=0.5)
    assert_close(sharp, P ** 2 / np.sum(P ** 2), rtol=1e-12, what="softmax(z / 0.5) = p² / Σ p²")
    flat = S.filtered_probs(LOGITS, temperature=4.0)
    assert_close(flat, P ** 0.25 / np.sum(P ** 0.25), rtol=1e-12, what="softmax(z / 4) = p^¼ / Σ p^¼")
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError):
            S.apply_temperature(LOGITS, bad)


def test_top_k_keeps_the_k_largest():
    z = S.top_k_filter(LOGITS, 2)
    assert_close(np.isfinite(z), np.array([False, True, False, True, False]), rtol=0, atol=0,
                 what="top-2 keeps tokens 1 (0.4) and 3 (0.3)")
    assert_close(z[[1, 3]], LOGITS[[1, 3]], rtol=0, atol=0, what="the kept logits are unchanged")
    assert_close(S.filtered_probs(LOGITS, top_k=3), np.array([0, 0.4, 0, 0.3, 0.15]) / 0.85, rtol=1e-12,
                 atol=1e-15, what="top-3 probabilities renormalised")
    assert_close(S.filtered_probs(LOGITS, top_k=5), P, rtol=1e-12, what="top-5 of 5 keeps the distribution")
    assert_close(S.top_k_filter(LOGITS, 9), LOGITS, rtol=0, atol=0, what="k > V keeps everything")
    with pytest.raises(ValueError):
        S.top_k_filter(LOGITS, 0)


def test_top_k_keeps_ties_and_works_row_by_row():
    z = np.array([[1.0, 3.0, 3.0, 0.0], [5.0, 4.0, 3.0, 2.0]])
    kept = np.isfinite(S.top_k_filter(z, 1))
    assert_close(kept, np.array([[False, True, True, False], [True, False, False, False]]), rtol=0, atol=0,
                 what="top-1 per row (a tie with the largest is kept)")


def test_top_p_keeps_the_smallest_nucleus_reaching_p():
    # sorted: 0.4 (token 1), 0.3 (3), 0.15 (4), 0.1 (2), 0.05 (0); mass before each: 0, .4, .7, .85, .95
    for p, kept in ((0.3, [1]), (0.5, [1, 3]), (0.75, [1, 3, 4]), (0.9, [1, 3, 4, 2]), (0.99, [1, 3, 4, 2, 0])):
        probs = S.filtered_probs(LOGITS, top_p=p)
        expected = np.zeros(5)
        expected[kept] = P[kept] / P[kept].sum()
        assert_close(probs, expected, rtol=1e-12, atol=1e-15, what=f"top-p {p}: tokens {kept} renormalised")
    assert_close(S.filtered_probs(LOGITS, top_p=1.0), P, rtol=1e-12, what="top-p 1 keeps every token")
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError):
            S.top_p_filter(LOGITS, bad)


def test_filters_compose_in_order_temperature_top_k_top_p():
    # temperature 0.5: p² renormalised = [.0025, .16, .01, .09, .0225] / .285
    probs = S.filtered_probs(LOGITS, temperature=0.5, top_k=4, top_p=0.8)
    sq = P ** 2
    # top-4 drops token 0; then the order is 1, 3, 4, 2 with masses before 0, .566, .885 (of the top 4)
    expected = np.zeros(5)
    expected[[1, 3]] = sq[[1, 3]] / sq[[1, 3]].sum()
    assert_close(probs, expected, rtol=1e-12, atol=1e-15, what="temperature 0.5, then top-4, then top-p 0.8")


@settings(deadline=None, max_examples=40)
@given(st.integers(2, 12), st.floats(0.05, 1.0), st.integers(1, 12), st.integers(0, 2**32 - 1))
def test_filtered_distributions_are_distributions_and_keep_the_most_likely_token(V, p, k, seed):
    z = np.random.default_rng(seed).standard_normal((3, V)) * 3
    probs = S.filtered_probs(z, top_k=k, top_p=p)
    assert_close(probs.sum(-1), np.ones(3), rtol=1e-12, what="each row sums to 1")
    top = np.argmax(z, axis=-1)
    assert (probs[np.arange(3), top] > 0).all(), "the most likely token always survives the filters"
    kth = np.sort(z, axis=-1)[:, [-min(k, V)]]
    assert ((probs > 0).sum(-1) <= (z >= kth).sum(-1)).all(), "top-k keeps at most the k largest (and ties)"


# ------------------------------------------------------------------ sampling: chi-square tests

@pytest.mark.parametrize("filters", [{}, {"temperature": 0.7}, {"top_k": 3}, {"top_p": 0.75},
                                     {"temperature": 1.5, "top_k": 4, "top_p": 0.9}])
def test_samples_follow_the_filtered_distribution(filters):
    probs = S.filtered_probs(LOGITS, **filters)
    rng = np.random.default_rng(0)
    n = 20000
    draws = S.sample(np.broadcast_to(probs, (n, 5)), rng)
    assert draws.shape == (n,) and draws.dtype == np.int64, f"expected (n,) int64 ids, got {draws.shape} {draws.dtype}"
    counts = np.bincount(draws, minlength=5)
    assert (counts[probs == 0] == 0).all(), f"tokens of probability 0 were drawn: counts {counts}, probs {probs}"
    df = int((probs > 0).sum()) - 1
    if df >= 1:
        stat = chi_square(counts, probs)
        assert stat < chi_square_critical(df), \
            f"samples do not follow {np.round(probs, 4)} ({filters}): counts {counts}, chi-square {stat:.1f} " \
            f"with {df} degrees of freedom"


def test_sample_uses_one_uniform_per_row_and_is_reproducible():
    probs = np.array([[0.2, 0.5, 0.3], [0.0, 0.0, 1.0]])
    a = S.sample(probs, np.random.default_rng(5))
    u = np.random.default_rng(5).random(2)
    expected = [int(np.searchsorted(np.cumsum(row), ui * row.sum(), side="right")) for row, ui in zip(probs, u)]
    assert_close(a, np.array(expected), rtol=0, atol=0, what="inverse-CDF draw with rng.random() per row")
    assert a[1] == 2, "a row with all its mass on one token must draw it"


# ------------------------------------------------------------------ generation

class Successor:
    """A stand-in model: next token = (last token + 1) mod V with probability ≈ 1; it refuses
    contexts longer than block_size, like the GPT."""

    def __init__(self, V=6, block_size=4):
        self.config = type("C", (), {"block_size": block_size})()
        self.V = V
        self.training = True
        self.calls = []

    def forward(self, ids):
        assert ids.shape[1] <= self.config.block_size, f"context {ids.shape[1]} longer than block_size"
        assert not self.training, "generation must run the model in eval mode"
        self.calls.append(ids.shape[1])
        logits = np.full(ids.shape + (self.V,), -20.0)
        np.put_along_axis(logits, ((ids + 1) % self.V)[..., None], 20.0, axis=-1)
        return logits

    def train(self, mode=True):
        self.training = mode
        return self

    def eval(self):
        return self.train(False)


def test_generate_appends_samples_and_crops_the_context():
    model = Successor()
    out = S.generate(model, np.array([2, 3]), 7, top_k=1, rng=0)
    assert_close(out, np.array([2, 3, 4, 5, 0, 1, 2, 3, 4]), rtol=0, atol=0, what="prompt + 7 successors")
    assert model.calls == [2, 3, 4, 4, 4, 4, 4], f"context lengths fed to the model: {model.calls}"
    assert model.training, "generate must restore the model's training mode"
    batch = S.generate(model, np.array([[0], [5]]), 3, rng=1)
    assert_close(batch, np.array([[0, 1, 2, 3], [5, 0, 1, 2]]), rtol=0, atol=0, what="a batch of prompts")
