"""Topic 25: scaled dot-product attention forward — the loop definition, the batched version,
masks, fully masked rows, float32 at large logits, and the O(T·S) memory of the scores."""

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.attention import scaled_dot_product as sdp
from dlfs.testing import assert_close
from torch_oracle import to_numpy, to_torch, torch_or_skip


def qkv(B=2, H=3, T=5, S=None, d=4, dv=None, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    S, dv = S or T, dv or d
    return (rng.standard_normal((B, H, T, d)).astype(dtype), rng.standard_normal((B, H, S, d)).astype(dtype),
            rng.standard_normal((B, H, S, dv)).astype(dtype))


PAD = np.array([[False] * 6, [False, False, False, False, True, True]])
MASKS = {
    "none": lambda T, S: None,
    "causal": lambda T, S: sdp.attention_mask(T, S, causal=True),
    "padding": lambda T, S: sdp.attention_mask(T, S, key_padding_mask=PAD[:, :S]),
    "causal+padding": lambda T, S: sdp.attention_mask(T, S, causal=True, key_padding_mask=PAD[:, :S]),
}


def test_loop_version_matches_a_hand_computed_example():
    q = np.array([[[[1.0, 0.0]]]])                       # (1, 1, T=1, d=2)
    k = np.array([[[[1.0, 0.0], [0.0, 1.0]]]])           # (1, 1, S=2, 2)
    v = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    p0 = np.exp(1.0) / (np.exp(1.0) + 1.0)               # scores [1, 0] with scale 1
    expected = np.array([[[[p0 * 1 + (1 - p0) * 3, p0 * 2 + (1 - p0) * 4]]]])
    assert_close(sdp.attention_loop(q, k, v, scale=1.0), expected, rtol=1e-12, what="loop attention, scale 1")
    s = 1 / np.sqrt(2)                                   # the default scale 1/√d
    p0 = np.exp(s) / (np.exp(s) + 1.0)
    expected = np.array([[[[p0 * 1 + (1 - p0) * 3, p0 * 2 + (1 - p0) * 4]]]])
    assert_close(sdp.attention_loop(q, k, v), expected, rtol=1e-12, what="loop attention, default scale 1/√d")


@pytest.mark.parametrize("mask_name", list(MASKS))
@pytest.mark.parametrize("T, S, dv", [(5, 5, 4), (3, 6, 2), (6, 4, 3)], ids=str)
def test_batched_attention_matches_the_loop_definition(mask_name, T, S, dv):
    q, k, v = qkv(T=T, S=S, dv=dv, seed=1)
    mask = MASKS[mask_name](T, S)
    out, cache = sdp.attention_forward(q, k, v, mask)
    assert_close(out, sdp.attention_loop(q, k, v, mask), rtol=1e-12, atol=1e-12,
                 what=f"batched vs loop attention (mask {mask_name}, T={T}, S={S}, d_v={dv})")
    assert cache.p.shape == (2, 3, T, S), f"cached weights p: expected shape (2, 3, {T}, {S}), got {cache.p.shape}"


def test_weights_are_a_distribution_over_the_allowed_keys():
    q, k, v = qkv(T=6, seed=2)
    mask = MASKS["causal+padding"](6, 6)
    _, cache = sdp.attention_forward(q, k, v, mask)
    allowed = np.broadcast_to(mask, cache.p.shape)
    assert_close(np.where(allowed, 0.0, cache.p), np.zeros(cache.p.shape), atol=0,
                 what="weights on masked keys (must be exactly 0)")
    assert_close(cache.p.sum(axis=-1), np.ones((2, 3, 6)), rtol=1e-12, what="Σ_s p_ts (rows sum to 1)")
    assert np.all(cache.p >= 0), "attention weights must be non-negative"


@pytest.mark.parametrize("mask_name", list(MASKS))
def test_attention_matches_torch_scaled_dot_product_attention(mask_name):
    torch = torch_or_skip()
    q, k, v = qkv(T=6, S=6, dv=5, seed=3)
    mask = MASKS[mask_name](6, 6)
    out, _ = sdp.attention_forward(q, k, v, mask, scale=0.3)
    expected = torch.nn.functional.scaled_dot_product_attention(
        to_torch(q), to_torch(k), to_torch(v), attn_mask=None if mask is None else to_torch(mask), scale=0.3)
    assert_close(out, to_numpy(expected), rtol=1e-10, atol=1e-12, what=f"attention vs torch (mask {mask_name})")


def test_a_fully_masked_query_row_outputs_zero_not_nan():
    q, k, v = qkv(B=1, H=2, T=3, S=4, seed=4)
    mask = np.ones((3, 4), dtype=bool)
    mask[1] = False                                      # query 1 may attend to nothing
    out, cache = sdp.attention_forward(q, k, v, mask)
    assert np.isfinite(out).all(), f"output must not contain NaN or inf, got {out[0, :, 1]}"
    assert_close(out[:, :, 1], np.zeros((1, 2, 4)), atol=0, what="output of the fully masked query (defined as 0)")
    assert_close(cache.p[:, :, 1], np.zeros((1, 2, 4)), atol=0, what="weights of the fully masked query")
    assert_close(out[:, :, [0, 2]], sdp.attention_loop(q, k, v, mask)[:, :, [0, 2]], rtol=1e-12,
                 what="the other queries are unaffected")
    assert_close(sdp.attention_loop(q, k, v, mask)[:, :, 1], np.zeros((1, 2, 4)), atol=0,
                 what="loop version: output of the fully masked query")


def test_float32_stays_float32_and_is_stable_at_large_logits():
    """Scores of 10000 and 9999: exp overflows in float32 (max ≈ 3.4e38 ≈ e^88.7), but after
    subtracting the max the weights are e^0 and e^-1, normalised: 0.7311 and 0.2689."""
    q = np.ones((1, 1, 1, 1), dtype=np.float32)
    k = np.array([10000.0, 9999.0], dtype=np.float32).reshape(1, 1, 2, 1)
    v = np.array([1.0, 0.0], dtype=np.float32).reshape(1, 1, 2, 1)
    out, cache = sdp.attention_forward(q, k, v, scale=1.0)
    assert out.dtype == np.float32 and cache.p.dtype == np.float32, \
        f"float32 inputs must give float32 output and weights, got {out.dtype}, {cache.p.dtype}"
    assert_close(out.ravel(), [1 / (1 + np.exp(-1.0))], rtol=1e-6, what="float32 output at logits 10000, 9999")
    q, k, v = qkv(T=8, d=16, seed=5, dtype=np.float32)
    q, k = 60 * q, 60 * k                                # logits in the thousands
    out, _ = sdp.attention_forward(q, k, v)
    ref, _ = sdp.attention_forward(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64))
    assert np.isfinite(out).all(), "float32 attention at large logits produced NaN or inf"
    assert_close(out, ref, rtol=1e-4, atol=1e-5, what="float32 attention at large logits vs float64")


def test_bad_shapes_and_masks_are_refused():
    q, k, v = qkv(T=3, S=4, seed=6)
    assert_close(sdp.attention_forward(q, k, v)[0], sdp.attention_loop(q, k, v), rtol=1e-12, what="attention")
    with pytest.raises(ValueError):
        sdp.attention_forward(q, k[..., :3], v)                      # d of q and k differ
    with pytest.raises(ValueError):
        sdp.attention_forward(q, k, v[:, :, :3])                     # S of k and v differ
    with pytest.raises(ValueError):
        sdp.attention_forward(q, k, v, np.ones((3, 4)))              # not boolean
    with pytest.raises(ValueError):
        sdp.attention_forward(q, k, v, np.ones((4, 3), dtype=bool))  # not (T, S)


def test_the_scores_cost_memory_proportional_to_T_times_S():
    """The forward keeps p: (B, H, T, S) and briefly needs a few arrays of that size — but never
    a (T, S, d) array of products, which broadcasting q[..., :, None, :] * k[..., None, :, :] builds."""
    B, H, T, d = 1, 2, 256, 16
    q, k, v = qkv(B=B, H=H, T=T, d=d, seed=7, dtype=np.float32)
    score_bytes = B * H * T * T * 4
    tracemalloc.start()
    try:
        out, cache = sdp.attention_forward(q, k, v, sdp.attention_mask(T, T, causal=True))
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_close(cache.p.sum(axis=-1), np.ones((B, H, T)), rtol=1e-5, what="rows of p")
    io_bytes = 4 * q.nbytes
    assert kept <= 2 * score_bytes + io_bytes, \
        f"after forward: expected at most 2 score matrices ({2 * score_bytes} B) kept, got {kept} B"
    assert peak <= 6 * score_bytes + io_bytes, \
        f"forward peak: expected at most 6 score matrices ({6 * score_bytes} B), got {peak} B"


# ------------------------------------------------------------------ properties

@settings(deadline=None, max_examples=25)
@given(st.integers(2, 6), st.integers(0, 5), st.integers(0, 2**32 - 1))
def test_causal_output_at_t_ignores_everything_after_t(T, t, seed):
    t = t % T
    q, k, v = qkv(B=1, H=2, T=T, seed=seed)
    mask = sdp.attention_mask(T, T, causal=True)
    out, _ = sdp.attention_forward(q, k, v, mask)
    rng = np.random.default_rng(seed + 1)
    q2, k2, v2 = q.copy(), k.copy(), v.copy()
    for a in (q2, k2, v2):
        a[:, :, t + 1:] = rng.standard_normal(a[:, :, t + 1:].shape)
    out2, _ = sdp.attention_forward(q2, k2, v2, mask)
    assert_close(out2[:, :, :t + 1], out[:, :, :t + 1], rtol=1e-12, atol=1e-12,
                 what=f"causal outputs 0..{t} after changing q, k, v at positions > {t}")
    if t + 1 < T:
        assert not np.allclose(out2[:, :, t + 1:], out[:, :, t + 1:]), "later outputs should change"


@settings(deadline=None, max_examples=25)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_without_mask_queries_are_equivariant_and_keys_invariant_to_permutation(T, S, seed):
    q, k, v = qkv(B=2, H=1, T=T, S=S, seed=seed)
    rng = np.random.default_rng(seed)
    pq, pk = rng.permutation(T), rng.permutation(S)
    out, _ = sdp.attention_forward(q, k, v)
    assert_close(sdp.attention_forward(q[:, :, pq], k, v)[0], out[:, :, pq], rtol=1e-10, atol=1e-12,
                 what="output for permuted queries (must be the permuted output)")
    assert_close(sdp.attention_forward(q, k[:, :, pk], v[:, :, pk])[0], out, rtol=1e-10, atol=1e-12,
                 what="output for keys and values permuted together (must not change)")


@settings(deadline=None, max_examples=25)
@given(st.integers(2, 6), st.integers(0, 2**32 - 1))
def test_padded_keys_and_values_do_not_matter(S, seed):
    q, k, v = qkv(B=2, H=2, T=3, S=S, seed=seed)
    rng = np.random.default_rng(seed)
    pad = rng.random((2, S)) < 0.5
    pad[:, 0] = False                                    # keep one real key per sample
    mask = sdp.attention_mask(3, S, key_padding_mask=pad)
    out, _ = sdp.attention_forward(q, k, v, mask)
    where = np.broadcast_to(pad[:, None, :, None], k.shape)
    k2 = np.where(where, 100 * rng.standard_normal(k.shape), k)
    v2 = np.where(where, 100 * rng.standard_normal(v.shape), v)
    assert_close(sdp.attention_forward(q, k2, v2, mask)[0], out, rtol=1e-12, atol=1e-12,
                 what="output after changing the padded keys and values")
