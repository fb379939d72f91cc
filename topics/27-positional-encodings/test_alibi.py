"""Topic 27: ALiBi — the slopes of the paper (powers of two and the rule for other head
counts), the bias, and attention with it against PyTorch's additive attention mask."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.attention.scaled_dot_product import attention_forward, attention_mask
from dlfs.transformer import positional as pe
from dlfs.testing import assert_close, check_op
from torch_oracle import to_torch, torch_or_skip

H_STEP = 1e-5       # central-difference step: truncation (∝ h²) and rounding (∝ 1/h) errors balance near here


def paper_slopes(n):
    """The slope rule of Press et al.'s reference code (ofirpress/attention_with_linear_biases)."""
    def power_of_2(n):
        start = 2 ** (-2 ** -(math.log2(n) - 3))
        return [start * start ** i for i in range(n)]

    if math.log2(n).is_integer():
        return power_of_2(n)
    closest = 2 ** math.floor(math.log2(n))
    return power_of_2(closest) + paper_slopes(2 * closest)[0::2][:n - closest]


def qkv(B=2, H=4, T=5, S=None, d=3, seed=0):
    rng = np.random.default_rng(seed)
    S = S or T
    return rng.standard_normal((B, H, T, d)), rng.standard_normal((B, H, S, d)), rng.standard_normal((B, H, S, d))


@pytest.mark.parametrize("H, expected", [
    (8, [2.0 ** -k for k in range(1, 9)]),                          # 1/2, 1/4, …, 1/256
    (16, [2.0 ** (-k / 2) for k in range(1, 17)]),                  # 2^-0.5, 2^-1, …, 2^-8
    (1, [2.0 ** -8]),
    (4, [2.0 ** -2, 2.0 ** -4, 2.0 ** -6, 2.0 ** -8]),
    (6, [2.0 ** -2, 2.0 ** -4, 2.0 ** -6, 2.0 ** -8, 2.0 ** -1, 2.0 ** -3]),
    (12, [2.0 ** -k for k in range(1, 9)] + [2.0 ** -0.5, 2.0 ** -1.5, 2.0 ** -2.5, 2.0 ** -3.5]),
])
def test_slopes_of_the_paper(H, expected):
    got = pe.alibi_slopes(H)
    assert got.shape == (H,) and got.dtype == np.float64, f"expected ({H},) float64, got {got.shape} {got.dtype}"
    assert_close(got, expected, rtol=1e-13, what=f"ALiBi slopes for {H} heads")


def test_slopes_match_the_reference_code_for_every_head_count_up_to_100():
    for H in range(1, 101):
        assert_close(pe.alibi_slopes(H), paper_slopes(H), rtol=1e-12, what=f"ALiBi slopes for {H} heads")
        assert len(set(np.round(np.log2(pe.alibi_slopes(H)), 9))) == H, f"the {H} slopes should all differ"


def test_bias_is_minus_slope_times_distance():
    slopes = np.array([0.5, 0.25])
    bias = pe.alibi_bias(slopes, 3, dtype=np.float64)
    expected = -np.array([[[0, 1, 2], [1, 0, 1], [2, 1, 0]]]) * slopes[:, None, None]
    assert_close(bias, expected, rtol=0, atol=0, what="ALiBi bias (H, T, T) = −m_h·|i − j|")
    late = pe.alibi_bias(slopes, 2, 5, dtype=np.float64)      # queries at positions 3, 4 of 5
    assert_close(late, -np.array([[3, 2, 1, 0, 1], [4, 3, 2, 1, 0]]) * slopes[:, None, None], rtol=0, atol=0,
                 what="ALiBi bias for the last 2 queries of 5 positions (T=2, S=5)")
    b32 = pe.ALiBi(4).bias(3)
    assert b32.dtype == np.float32 and b32.shape == (4, 3, 3), f"expected (4, 3, 3) float32, got {b32.shape} {b32.dtype}"
    assert_close(b32[:, 2, 0], -2 * pe.alibi_slopes(4), rtol=1e-7, what="bias of query 2 on key 0, per head")


@pytest.mark.parametrize("causal", [True, False])
def test_alibi_attention_matches_torch_additive_mask(causal):
    """torch's scaled_dot_product_attention adds a float attn_mask to the scores: with the ALiBi
    bias (and −inf above the diagonal for causal) it is ALiBi attention."""
    H, T = 4, 5
    bias = -np.abs(np.arange(T)[:, None] - np.arange(T)[None, :]) * np.array(paper_slopes(H))[:, None, None]
    if causal:
        bias = np.where(np.tril(np.ones((T, T), dtype=bool)), bias, -np.inf)
    mask = attention_mask(T, T, causal=causal)
    alibi = pe.ALiBi(H)

    def forward(q, k, v):
        return pe.attend(q, k, v, mask, alibi=alibi)[0]

    def backward(dout, q, k, v):
        return pe.attend_backward(dout, pe.attend(q, k, v, mask, alibi=alibi)[1])

    def torch_fn(torch, q, k, v):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=to_torch(bias))

    check_op(forward, backward, qkv(H=H, T=T, seed=1), input_names=("q", "k", "v"), torch_fn=torch_fn,
             oracle=torch_or_skip, h=H_STEP, what=f"ALiBi attention ({'causal' if causal else 'no mask'})")


@settings(deadline=None, max_examples=25)
@given(st.integers(1, 8), st.integers(1, 7), st.integers(0, 2**32 - 1))
def test_causal_alibi_equals_the_key_position_bias_of_the_reference_code(H, T, seed):
    """Under a causal mask, −m·(i − j) and the reference code's m·j differ by −m·i, the same for
    every key of query i, and a softmax ignores a constant added to its row."""
    q, k, v = qkv(B=1, H=H, T=T, seed=seed % 1000)
    mask = attention_mask(T, T, causal=True)
    out, _ = pe.attend(q, k, v, mask, alibi=pe.ALiBi(H))
    key_bias = np.array(paper_slopes(H))[:, None, None] * np.arange(T)[None, None, :]
    assert_close(out, attention_forward(q, k, v, mask, bias=np.broadcast_to(key_bias, (H, T, T)))[0],
                 rtol=1e-9, atol=1e-11, what=f"causal ALiBi vs the bias m·j of the reference code, H={H}, T={T}")


def test_far_keys_fade_and_no_bias_on_the_diagonal():
    """With equal q·k scores, ALiBi alone decides: weight ∝ exp(−m·distance)."""
    H, T = 2, 6
    q = np.zeros((1, H, T, 4))
    k = np.zeros((1, H, T, 4))
    v = np.eye(T)[None, None].repeat(H, axis=1)              # value s is the one-hot e_s: out = the weights
    out, _ = pe.attend(q, k, v, attention_mask(T, T, causal=True), alibi=pe.ALiBi(H))
    for h, m in enumerate(pe.alibi_slopes(H)):
        w = np.exp(-m * np.arange(T - 1, -1, -1))
        assert_close(out[0, h, -1], w / w.sum(), rtol=1e-12, what=f"weights of the last query in head {h} (slope {m})")


def test_bad_arguments_are_refused():
    assert pe.alibi_slopes(3).shape == (3,), "three slopes for three heads"
    with pytest.raises(ValueError):
        pe.alibi_slopes(0)
    with pytest.raises(ValueError):
        pe.attend(*qkv(H=3), alibi=pe.ALiBi(4))              # 3 heads, 4 slopes
