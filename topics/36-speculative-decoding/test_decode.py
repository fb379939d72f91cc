"""Topic 36: the speculative loop — a chi-square test of its samples, greedy decoding equal to
the target's (toy models and small GPTs), k = 0, p = q, and tokens per target call against
(1 − α^{k+1})/(1 − α)."""

import numpy as np
import pytest

from dlfs.speculative import decode, rules
from dlfs.speculative.exact import target_sequence_distribution
from dlfs.speculative.models import CachedGPTModel, FunctionModel, GPTModel
from dlfs.testing import assert_close
from dlfs.transformer.gpt import GPT, GPTConfig

# χ² critical values at significance 0.001 and 1e-6 for 15 degrees of freedom
# (scipy.stats.chi2.ppf(0.999, 15) and chi2.ppf(1 - 1e-6, 15))
CHI2_15_AT_0_001 = 37.697
CHI2_15_AT_1E_6 = 56.493


def toy(seed, V):
    """A context-dependent model: a Dirichlet draw per prefix (fixed by seed and prefix), memoised."""
    memo = {}

    def fn(prefix):
        if prefix not in memo:
            memo[prefix] = np.random.default_rng([seed, len(prefix), *prefix]).dirichlet(np.full(V, 0.7))
        return memo[prefix]
    return FunctionModel(fn, V)


def chi_square_of_first_two(target, draft, k, runs, seed):
    """χ² of the first two generated tokens (V² = 16 cells) against the target's exact law."""
    V = target.vocab_size
    counts = np.zeros((V, V))
    rng = np.random.default_rng(seed)
    for _ in range(runs):
        ids, _ = decode.speculative_generate(target, draft, [0], 4, k, rng=rng)
        counts[ids[1], ids[2]] += 1
    law = target_sequence_distribution(target, (0,), 2)
    expected = np.array([[law[(a, b)] for b in range(V)] for a in range(V)]) * runs
    return float(np.sum((counts - expected) ** 2 / expected))


@pytest.mark.dlfs_timeout(30)
def test_chi_square_of_samples(monkeypatch):
    """1,000 runs, k = 3, fixed seed: accepted at significance 0.001; resampling from p instead of
    the residual is rejected (χ² beyond the 1e-6 critical value)."""
    target, draft = toy(1, 4), toy(7, 4)
    stat = chi_square_of_first_two(target, draft, 3, 1000, seed=0)
    assert stat < CHI2_15_AT_0_001, f"χ² = {stat:.1f} ≥ {CHI2_15_AT_0_001} (15 dof, significance 0.001)"
    monkeypatch.setattr(rules, "residual_distribution", lambda p, q: np.asarray(p, dtype=np.float64))
    wrong = chi_square_of_first_two(target, draft, 3, 1000, seed=0)
    assert wrong > CHI2_15_AT_1E_6, f"the wrong rule gave χ² = {wrong:.1f}, expected > {CHI2_15_AT_1E_6}"


@pytest.mark.parametrize("k", [0, 1, 2, 4, 8])
def test_greedy_equals_greedy_target_toy(k):
    target, draft = toy(2, 5), toy(3, 5)
    want, base = decode.autoregressive_generate(target, [1, 2], 20, greedy=True)
    got, stats = decode.speculative_generate(target, draft, [1, 2], 20, k, greedy=True)
    assert got.tolist() == want.tolist(), f"k={k}: greedy speculative {got.tolist()} != greedy target {want.tolist()}"
    assert stats.target_calls == len(stats.rounds) and stats.draft_calls == sum(kk for kk, _ in stats.rounds)


def test_greedy_equals_greedy_target_gpt():
    cfg = GPTConfig(vocab_size=11, block_size=24, n_layer=1, n_head=2, n_embd=16)
    target = GPTModel(GPT(cfg, rng=0, dtype=np.float64))
    draft = GPTModel(GPT(GPTConfig(vocab_size=11, block_size=24, n_layer=1, n_head=1, n_embd=8), rng=1,
                         dtype=np.float64))
    want, _ = decode.autoregressive_generate(target, [3, 1, 4], 20, greedy=True)
    for k in (1, 3, 6):
        got, stats = decode.speculative_generate(target, draft, [3, 1, 4], 20, k, greedy=True)
        assert got.tolist() == want.tolist(), f"k={k}: {got.tolist()} != {want.tolist()}"
        assert stats.target_calls < 20 or stats.accepted == 0


def test_kv_cached_models_decode_as_full_recomputation():
    """With key/value caches rolled back over rejected drafts, the same tokens come out as with
    full recomputation (float64, same random numbers), sampled and greedy."""
    gt = GPT(GPTConfig(vocab_size=11, block_size=32, n_layer=2, n_head=2, n_embd=16), rng=0, dtype=np.float64)
    gd = GPT(GPTConfig(vocab_size=11, block_size=32, n_layer=1, n_head=1, n_embd=8), rng=1, dtype=np.float64)
    gd.wte.W.data *= 40                       # a peaked draft, far from the near-uniform target: rejections
    for k, greedy in ((2, False), (5, False), (3, True)):
        want, _ = decode.speculative_generate(GPTModel(gt), GPTModel(gd), [3, 1, 4], 24, k, rng=7, greedy=greedy)
        target, draft = CachedGPTModel(gt), CachedGPTModel(gd)
        got, stats = decode.speculative_generate(target, draft, [3, 1, 4], 24, k, rng=7, greedy=greedy)
        assert got.tolist() == want.tolist(), f"k={k}, greedy={greedy}: cached {got.tolist()} != {want.tolist()}"
        assert greedy or stats.examined > stats.accepted, "the run should contain rejections (to exercise the rollback)"
        assert target.fed < 3 + 24 + stats.target_calls * (k + 1), "the cached target fed more than the new positions"


def test_k0_is_autoregressive_sampling():
    target, draft = toy(4, 6), toy(5, 6)
    want, _ = decode.autoregressive_generate(target, [0], 30, rng=11)
    got, stats = decode.speculative_generate(target, draft, [0], 30, 0, rng=11)
    assert got.tolist() == want.tolist(), "k = 0 must draw exactly as autoregressive sampling (same random numbers)"
    assert stats.target_calls == 30 and stats.draft_calls == 0


def test_same_model_accepts_everything():
    target, draft = toy(6, 4), toy(6, 4)
    ids, stats = decode.speculative_generate(target, draft, [0], 12, 3, rng=0)
    assert len(ids) == 13
    assert stats.accepted == stats.examined == 9, f"p = q: all drafts accepted; got rounds {stats.rounds}"
    assert stats.target_calls == 3, f"12 tokens with k = 3 and p = q take 3 target calls, got {stats.target_calls}"


def test_expected_tokens_per_call():
    assert_close(decode.expected_tokens_per_call(0.5, 3), 1 + 0.5 + 0.25 + 0.125, what="α = 0.5, k = 3")
    assert_close(decode.expected_tokens_per_call(0.0, 4), 1.0, what="α = 0")
    assert_close(decode.expected_tokens_per_call(1.0, 4), 5.0, what="α = 1 (k + 1)")
    assert_close(decode.expected_tokens_per_call(0.8, 0), 1.0, what="k = 0")


def test_tokens_per_call_match_the_formula():
    """Context-free p and q: each draft is accepted independently with β = Σ min(p, q), so the mean
    tokens per target call approach (1 − β^{k+1})/(1 − β)."""
    p, q = np.array([0.5, 0.3, 0.2]), np.array([0.3, 0.3, 0.4])
    beta = np.minimum(p, q).sum()                    # 0.8
    target, draft = FunctionModel(lambda _: p, 3), FunctionModel(lambda _: q, 3)
    rng = np.random.default_rng(0)
    stats = decode.DecodeStats()
    for _ in range(200):                             # ~1,000 rounds of k = 4
        stats.rounds += decode.speculative_generate(target, draft, [0], 20, 4, rng=rng)[1].rounds
    want = decode.expected_tokens_per_call(beta, 4)
    # standard errors: about 0.01 for the rate and 0.05 for the mean tokens per call
    assert abs(stats.acceptance_rate - beta) < 0.03, f"acceptance rate {stats.acceptance_rate:.3f}, expected {beta}"
    got = stats.tokens_per_call(4)
    assert abs(got - want) < 0.15, f"tokens per call {got:.3f}, expected {want:.3f}"
