"""Topic 25: the attention backward pass — finite differences in float64, and PyTorch."""

import numpy as np
import pytest

from dlfs.attention import scaled_dot_product as sdp
from dlfs.testing import assert_close, check_op
from torch_oracle import torch_or_skip


def qkv(B=2, H=2, T=4, S=None, d=3, dv=None, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    S, dv = S or T, dv or d
    return (rng.standard_normal((B, H, T, d)).astype(dtype), rng.standard_normal((B, H, S, d)).astype(dtype),
            rng.standard_normal((B, H, S, dv)).astype(dtype))


PAD = np.array([[False, False, False, False, False], [False, False, True, False, True]])
CASES = {
    "no mask": dict(T=4, S=5, dv=2, mask=lambda T, S: None),
    "causal": dict(T=5, S=5, dv=3, mask=lambda T, S: sdp.attention_mask(T, S, causal=True)),
    "padding": dict(T=3, S=5, dv=3, mask=lambda T, S: sdp.attention_mask(T, S, key_padding_mask=PAD)),
    "causal+padding": dict(T=5, S=5, dv=2,
                           mask=lambda T, S: sdp.attention_mask(T, S, causal=True, key_padding_mask=PAD)),
    "fully masked rows": dict(T=3, S=5, dv=3,
                              mask=lambda T, S: np.array([[True] * 5, [False] * 5, [True, False] * 2 + [True]])),
}


def forward(q, k, v, mask, scale=None):
    return sdp.attention_forward(q, k, v, mask, scale)[0]


def backward(dout, q, k, v, mask, scale=None):
    return sdp.attention_backward(dout, sdp.attention_forward(q, k, v, mask, scale)[1])


def inputs(case, seed):
    c = CASES[case]
    return (*qkv(T=c["T"], S=c["S"], dv=c["dv"], seed=seed), c["mask"](c["T"], c["S"]))


@pytest.mark.parametrize("case", list(CASES))
def test_backward_matches_finite_differences(case):
    check_op(forward, backward, inputs(case, seed=1), input_names=("q", "k", "v", "mask"), what=f"attention ({case})")


def test_backward_with_a_custom_scale_matches_finite_differences():
    q, k, v = qkv(T=3, S=4, seed=3)
    check_op(lambda q, k, v: forward(q, k, v, None, 0.7), lambda dout, q, k, v: backward(dout, q, k, v, None, 0.7),
             (q, k, v), input_names=("q", "k", "v"), what="attention with scale 0.7")


def test_fully_masked_queries_pass_no_gradient():
    q, k, v = qkv(B=1, H=1, T=3, S=4, seed=5)
    mask = np.ones((3, 4), dtype=bool)
    mask[0] = False
    out, cache = sdp.attention_forward(q, k, v, mask)
    dq, dk, dv = sdp.attention_backward(np.ones_like(out), cache)
    assert np.isfinite(dq).all() and np.isfinite(dk).all() and np.isfinite(dv).all(), "gradients contain NaN or inf"
    assert_close(dq[0, 0, 0], np.zeros(3), atol=0, what="dq of the fully masked query")
    assert_close(dv.sum(axis=(0, 1, 2)), np.full(3, 2.0), rtol=1e-12,
                 what="Σ dv with dout = 1: each of the 2 live queries spreads weight 1 over the values")


def test_masked_keys_receive_no_gradient():
    q, k, v = qkv(B=2, H=2, T=3, S=5, seed=6)
    mask = sdp.attention_mask(3, 5, key_padding_mask=PAD)
    out, cache = sdp.attention_forward(q, k, v, mask)
    dq, dk, dv = sdp.attention_backward(np.random.default_rng(7).standard_normal(out.shape), cache)
    padded = np.broadcast_to(PAD[:, None, :, None], dk.shape)
    assert_close(np.where(padded, dk, 0.0), np.zeros(dk.shape), atol=0, what="dk of padded keys")
    assert_close(np.where(padded[..., :1], dv, 0.0), np.zeros(dv.shape), atol=0, what="dv of padded values")
    assert np.abs(dk[~padded]).min() > 0, "keys that are attended to should get a gradient"


def torch_attention(torch, q, k, v, mask):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)


@pytest.mark.parametrize("case", ["no mask", "causal", "causal+padding", "fully masked rows"])
def test_output_and_gradients_match_torch(case):
    """torch's scaled_dot_product_attention also gives 0 (and no gradient) for fully masked rows."""
    check_op(forward, backward, inputs(case, seed=11), input_names=("q", "k", "v", "mask"),
             torch_fn=torch_attention, oracle=torch_or_skip, rtol=1e-9, atol=1e-12, what=f"attention ({case})")


def test_backward_keeps_float32_and_uses_the_cache_only():
    q, k, v = qkv(T=4, seed=10, dtype=np.float32)
    out, cache = sdp.attention_forward(q, k, v)
    dout = np.ones_like(out)
    grads = sdp.attention_backward(dout, cache)
    for name, g in zip("qkv", grads):
        assert g.dtype == np.float32, f"d{name}: expected float32, got {g.dtype}"
    ref = sdp.attention_backward(dout.astype(np.float64), sdp.attention_forward(
        q.astype(np.float64), k.astype(np.float64), v.astype(np.float64))[1])
    for name, got, expected in zip("qkv", grads, ref):
        assert_close(got, expected, rtol=1e-4, atol=1e-5, what=f"float32 d{name} vs float64")
    assert_close(grads[2].sum(axis=-2), np.full((2, 2, 3), 4.0), rtol=1e-5,
                 what="Σ_s dv with dout = 1 (each of the 4 queries' weights sum to 1)")
