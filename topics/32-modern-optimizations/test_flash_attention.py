"""Topic 32: tiled attention with the online softmax against Topic 25's attention, finite
differences and PyTorch's scaled_dot_product_attention."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dlfs.attention import flash
from dlfs.attention import scaled_dot_product as sdp
from dlfs.testing import assert_close, check_op
from torch_oracle import torch_or_skip

PAD = np.array([[False] * 11, [False] * 6 + [True] * 5])


def qkv(B=2, H=2, T=9, S=11, d=4, dv=3, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((B, H, T, d)).astype(dtype), rng.standard_normal((B, H, S, d)).astype(dtype),
            rng.standard_normal((B, H, S, dv)).astype(dtype))


CASES = {  # name: (causal, key padding, block_q, block_k)
    "no mask": (False, None, 4, 3),
    "causal": (True, None, 4, 3),
    "padding": (False, PAD, 2, 5),
    "causal+padding": (True, PAD, 3, 4),
    "one tile": (True, PAD, 64, 64),
}


def reference(q, k, v, causal, pad, dout):
    T, S = q.shape[-2], k.shape[-2]
    out, cache = sdp.attention_forward(q, k, v, sdp.attention_mask(T, S, causal=causal, key_padding_mask=pad))
    return out, sdp.attention_backward(dout, cache)


def tiled(q, k, v, causal, pad, dout, bq, bk):
    T, S = q.shape[-2], k.shape[-2]
    out, cache = flash.flash_attention_forward(q, k, v, sdp.attention_mask(T, S, key_padding_mask=pad),
                                               causal=causal, block_q=bq, block_k=bk)
    return out, flash.flash_attention_backward(dout, cache), cache


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("T,S", [(9, 11), (11, 11)])
def test_forward_and_backward_equal_topic_25_attention(case, T, S):
    causal, pad, bq, bk = CASES[case]
    q, k, v = qkv(T=T, S=S, seed=1)
    dout = np.random.default_rng(2).standard_normal(q.shape[:-1] + (v.shape[-1],))
    out, grads = reference(q, k, v, causal, pad, dout)
    out2, grads2, _ = tiled(q, k, v, causal, pad, dout, bq, bk)
    assert_close(out2, out, rtol=0, atol=1e-10, what=f"tiled attention output ({case}, T={T}, S={S})")
    for name, g2, g in zip("qkv", grads2, grads):
        assert_close(g2, g, rtol=0, atol=1e-10, what=f"d{name} ({case}, T={T}, S={S})")


def test_the_cache_keeps_the_log_sum_exp_not_the_weights():
    q, k, v = qkv(T=9, S=11, seed=3)
    _, _, cache = tiled(q, k, v, True, None, np.zeros((2, 2, 9, 3)), 4, 3)
    scores = (q @ k.swapaxes(-1, -2)) / np.sqrt(4)
    scores = np.where(sdp.attention_mask(9, 11, causal=True), scores, -np.inf)
    m = scores.max(-1, keepdims=True)
    lse = (m + np.log(np.exp(scores - m).sum(-1, keepdims=True)))[..., 0]
    assert_close(cache.lse, lse, rtol=0, atol=1e-12, what="the saved log-sum-exp per row")
    assert all(a.size <= q.size + k.size + v.size for a in cache if isinstance(a, np.ndarray)), \
        "the cache holds an array as large as the (T, S) weights"


def test_fully_masked_rows_give_zero_and_pass_no_gradient():
    q, k, v = qkv(B=1, H=1, T=4, S=6, seed=4)
    mask = np.ones((4, 6), dtype=bool)
    mask[1] = False
    out, cache = flash.flash_attention_forward(q, k, v, mask, block_q=2, block_k=4)
    dq, dk, dv = flash.flash_attention_backward(np.ones_like(out), cache)
    assert np.isfinite(out).all() and np.isfinite(dq).all() and np.isfinite(dk).all() and np.isfinite(dv).all(), \
        "NaN or inf in the output or the gradients of a fully masked row"
    assert_close(out[0, 0, 1], np.zeros(3), what="the output of the fully masked query")
    assert_close(dq[0, 0, 1], np.zeros(4), what="the gradient of the fully masked query")
    expected, _ = sdp.attention_forward(q, k, v, mask)
    assert_close(out, expected, rtol=0, atol=1e-12, what="the other queries' outputs")


def test_causal_skips_the_tiles_above_the_diagonal(monkeypatch):
    q, k, v = qkv(B=1, H=1, T=8, S=8, seed=5)
    calls = []
    real = flash.tile_mask
    monkeypatch.setattr(flash, "tile_mask", lambda *a: calls.append(a[-4:]) or real(*a))
    flash.flash_attention_forward(q, k, v, causal=True, block_q=2, block_k=2)
    visited = sorted(set(calls))
    assert visited == [(i, i + 2, j, j + 2) for i in range(0, 8, 2) for j in range(0, i + 1, 2)], \
        f"expected the 10 tiles on or below the diagonal of a 4 × 4 tiling, visited {visited}"


def test_large_scores_stay_finite():
    q, k, v = qkv(B=1, H=1, T=6, S=6, seed=6)
    out, _ = flash.flash_attention_forward(q * 300, k * 300, v, causal=True, block_q=2, block_k=2)
    expected, _ = sdp.attention_forward(q * 300, k * 300, v, sdp.attention_mask(6, 6, causal=True))
    assert_close(out, expected, rtol=0, atol=1e-10, what="attention with scores in the thousands")


@pytest.mark.parametrize("causal", [False, True])
def test_backward_matches_finite_differences(causal):
    q, k, v = qkv(B=1, H=2, T=5, S=5, d=3, dv=2, seed=7)
    mask = sdp.attention_mask(5, 5, key_padding_mask=np.array([[False, False, False, True, False]]))
    check_op(lambda q, k, v: flash.flash_attention_forward(q, k, v, mask, causal, block_q=2, block_k=3)[0],
             lambda dout, q, k, v: flash.flash_attention_backward(
                 dout, flash.flash_attention_forward(q, k, v, mask, causal, block_q=2, block_k=3)[1]),
             (q, k, v), input_names=("q", "k", "v"), what=f"tiled attention (causal={causal})")


def test_against_torch_scaled_dot_product_attention():
    torch = torch_or_skip()
    q, k, v = qkv(T=10, S=10, d=4, dv=4, seed=8)
    dout = np.random.default_rng(9).standard_normal(q.shape)
    out, (dq, dk, dv), _ = tiled(q, k, v, True, None, dout, 3, 4)
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    tout = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
    tout.backward(torch.tensor(dout))
    assert_close(out, tout.detach().numpy(), rtol=0, atol=1e-10, what="output vs torch sdpa")
    for name, g, t in (("dq", dq, tq), ("dk", dk, tk), ("dv", dv, tv)):
        assert_close(g, t.grad.numpy(), rtol=0, atol=1e-10, what=f"{name} vs torch sdpa")


def test_float32_stays_float32():
    q, k, v = qkv(T=7, S=7, seed=10, dtype=np.float32)
    out, cache = flash.flash_attention_forward(q, k, v, causal=True, block_q=3, block_k=3)
    grads = flash.flash_attention_backward(np.ones_like(out), cache)
    assert out.dtype == np.float32 and all(g.dtype == np.float32 for g in grads), \
        f"expected float32, got {out.dtype} and {[g.dtype for g in grads]}"
    expected, _ = sdp.attention_forward(q, k, v, sdp.attention_mask(7, 7, causal=True))
    assert_close(out, expected, rtol=1e-5, atol=1e-6, what="float32 tiled output")


@settings(deadline=None, max_examples=25)
@given(T=st.integers(1, 9), S=st.integers(1, 9), bq=st.integers(1, 5), bk=st.integers(1, 5),
       causal=st.booleans(), seed=st.integers(0, 10 ** 6))
def test_any_tiling_gives_the_same_attention(T, S, bq, bk, causal, seed):
    q, k, v = qkv(B=1, H=1, T=T, S=S, seed=seed)
    dout = np.random.default_rng(seed + 1).standard_normal((1, 1, T, 3))
    out, grads = reference(q, k, v, causal, None, dout)
    out2, grads2, _ = tiled(q, k, v, causal, None, dout, bq, bk)
    assert_close(out2, out, rtol=0, atol=1e-10, what=f"output, T={T} S={S} tiles {bq}×{bk} causal={causal}")
    for name, g2, g in zip("qkv", grads2, grads):
        assert_close(g2, g, rtol=0, atol=1e-10, what=f"d{name}, T={T} S={S} tiles {bq}×{bk} causal={causal}")

