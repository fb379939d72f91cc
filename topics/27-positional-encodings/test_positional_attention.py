"""Topic 27: attention with positions — attend (RoPE on q and k, ALiBi on the scores) and the
multi-head layer built on it: definitions, finite differences, PyTorch, and what positions
change (no more permutation equivariance; causality kept)."""

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.attention.multi_head import MultiHeadAttention
from dlfs.attention.scaled_dot_product import attention_forward, attention_mask
from dlfs.transformer import positional as pe
from dlfs.testing import assert_close, check_layer, check_op
from torch_oracle import to_torch, torch_or_skip

H_STEP = 1e-5       # central-difference step: truncation (∝ h²) and rounding (∝ 1/h) errors balance near here
PARAM_MAP = {"qkv.W": ("in_proj_weight", np.transpose), "qkv.b": "in_proj_bias",
             "out_proj.W": ("out_proj.weight", np.transpose), "out_proj.b": "out_proj.bias"}


def complex_rope(x, offset=0, base=10000.0):
    """z_j = x_2j + i·x_2j+1 at position m times e^(i·m·θ_j), θ_j = base^(−2j/d)."""
    T, d = x.shape[-2], x.shape[-1]
    z = (x[..., 0::2] + 1j * x[..., 1::2]) * np.exp(1j * np.arange(offset, offset + T)[:, None]
                                                     * base ** (-np.arange(d // 2) * 2.0 / d))
    out = np.empty(x.shape)
    out[..., 0::2], out[..., 1::2] = z.real, z.imag
    return out


def qkv(B=2, H=2, T=4, S=None, d=4, seed=0):
    rng = np.random.default_rng(seed)
    S = S or T
    return rng.standard_normal((B, H, T, d)), rng.standard_normal((B, H, S, d)), rng.standard_normal((B, H, S, d))


def layer(D=8, H=2, rope=False, alibi=False, seed=0, bias=True, dtype=np.float64):
    """A layer with random, non-zero biases (the zero defaults would hide a bias mistake)."""
    mha = pe.PositionalSelfAttention(D, H, rope=rope, alibi=alibi, bias=bias, rng=seed, dtype=dtype)
    if bias:
        rng = np.random.default_rng(seed + 100)
        mha.qkv.b.data[...] = rng.standard_normal(3 * D)
        mha.out_proj.b.data[...] = rng.standard_normal(D)
    return mha


def with_masks(mha, key_padding_mask=None, causal=False):
    mha.forward = functools.partial(type(mha).forward, mha, key_padding_mask=key_padding_mask, causal=causal)
    return mha


# ------------------------------------------------------------------ attend

@pytest.mark.parametrize("T, S", [(5, 5), (2, 6)])
def test_attend_with_rope_is_attention_of_the_rotated_queries_and_keys(T, S):
    """Keys at positions 0 … S − 1, queries at the last T of them; values are not rotated."""
    q, k, v = qkv(T=T, S=S, seed=1)
    mask = attention_mask(T, S, causal=True)
    out, _ = pe.attend(q, k, v, mask, rope=pe.RotaryEmbedding(4))
    expected, _ = attention_forward(complex_rope(q, S - T), complex_rope(k), v, mask)
    assert_close(out, expected, rtol=1e-10, atol=1e-12, what=f"attend with RoPE, T={T}, S={S}")


def test_attend_without_positions_is_plain_attention_and_with_both_adds_the_bias_to_rotated_scores():
    q, k, v = qkv(H=4, T=5, seed=2)
    assert_close(pe.attend(q, k, v)[0], attention_forward(q, k, v)[0], rtol=1e-12, what="attend, no positions")
    bias = -np.abs(np.arange(5)[:, None] - np.arange(5)) * pe.alibi_slopes(4)[:, None, None]
    out, _ = pe.attend(q, k, v, rope=pe.RotaryEmbedding(4), alibi=pe.ALiBi(4))
    expected, _ = attention_forward(complex_rope(q), complex_rope(k), v, bias=bias)
    assert_close(out, expected, rtol=1e-10, atol=1e-12, what="attend with RoPE and ALiBi")


@pytest.mark.parametrize("positions", ["rope", "alibi", "rope+alibi"])
@pytest.mark.parametrize("T, S", [(5, 5), (3, 5)])
def test_attend_backward_matches_finite_differences(positions, T, S):
    q, k, v = qkv(H=4, T=T, S=S, seed=3)
    mask = attention_mask(T, S, causal=True)
    kw = dict(rope=pe.RotaryEmbedding(4) if "rope" in positions else None,
              alibi=pe.ALiBi(4) if "alibi" in positions else None)
    check_op(lambda q, k, v: pe.attend(q, k, v, mask, **kw)[0],
             lambda dout, q, k, v: pe.attend_backward(dout, pe.attend(q, k, v, mask, **kw)[1]),
             (q, k, v), input_names=("q", "k", "v"), h=H_STEP, what=f"attend ({positions}, T={T}, S={S})")


def test_attend_with_rope_and_alibi_matches_torch():
    """torch: RoPE in its complex form (as Meta's LLaMA code), then scaled_dot_product_attention
    with the ALiBi bias (and the causal −inf) as its float attn_mask; autograd for the gradients."""
    H, T, d = 4, 5, 6
    bias = -np.abs(np.arange(T)[:, None] - np.arange(T)) * pe.alibi_slopes(H)[:, None, None]
    bias = np.where(np.tril(np.ones((T, T), dtype=bool)), bias, -np.inf)
    kw = dict(rope=pe.RotaryEmbedding(d), alibi=pe.ALiBi(H))
    mask = attention_mask(T, T, causal=True)

    def torch_fn(torch, q, k, v):
        theta = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
        freqs = torch.polar(torch.ones(T, d // 2, dtype=torch.float64), torch.outer(torch.arange(T).double(), theta))

        def rope(x):
            return torch.view_as_real(torch.view_as_complex(x.reshape(*x.shape[:-1], d // 2, 2).contiguous())
                                      * freqs).flatten(-2)
        return torch.nn.functional.scaled_dot_product_attention(rope(q), rope(k), v, attn_mask=to_torch(bias))

    check_op(lambda q, k, v: pe.attend(q, k, v, mask, **kw)[0],
             lambda dout, q, k, v: pe.attend_backward(dout, pe.attend(q, k, v, mask, **kw)[1]),
             qkv(H=H, T=T, d=d, seed=4), input_names=("q", "k", "v"), h=H_STEP, torch_fn=torch_fn,
             oracle=torch_or_skip, what="attend (RoPE + ALiBi, causal) vs torch")


# ------------------------------------------------------------------ the multi-head layer

def test_layer_without_positions_is_multi_head_attention():
    pos = layer(D=6, H=3, seed=5)
    mha = MultiHeadAttention(6, 3, dtype=np.float64)
    mha.load_state_dict(pos.state_dict())
    x = np.random.default_rng(6).standard_normal((2, 4, 6))
    assert_close(pos.forward(x, causal=True), mha.forward(x, causal=True), rtol=1e-12, atol=1e-13,
                 what="PositionalSelfAttention without RoPE or ALiBi vs MultiHeadAttention")
    dy = np.random.default_rng(7).standard_normal((2, 4, 6))
    assert_close(pos.backward(dy), mha.backward(dy), rtol=1e-12, atol=1e-13, what="dx, same layers")


@pytest.mark.parametrize("positions", ["rope", "alibi", "rope+alibi"])
def test_layer_with_rope_matches_the_head_by_head_definition(positions):
    D, H, T = 8, 2, 5
    mha = layer(D=D, H=H, rope="rope" in positions, alibi="alibi" in positions, seed=8)
    x = np.random.default_rng(9).standard_normal((2, T, D))
    W, b = mha.qkv.W.data, mha.qkv.b.data
    heads = []
    for h in range(H):
        q, k, v = (x @ W[:, j * D + h * 4:j * D + (h + 1) * 4] + b[j * D + h * 4:j * D + (h + 1) * 4] for j in range(3))
        if "rope" in positions:
            q, k = complex_rope(q), complex_rope(k)
        scores = q @ k.swapaxes(-1, -2) / 2.0
        if "alibi" in positions:
            scores = scores - pe.alibi_slopes(H)[h] * np.abs(np.arange(T)[:, None] - np.arange(T))
        scores = np.where(np.tril(np.ones((T, T), dtype=bool)), scores, -np.inf)
        p = np.exp(scores - scores.max(-1, keepdims=True))
        heads.append((p / p.sum(-1, keepdims=True)) @ v)
    expected = np.concatenate(heads, axis=-1) @ mha.out_proj.W.data + mha.out_proj.b.data
    assert_close(mha.forward(x, causal=True), expected, rtol=1e-10, atol=1e-12,
                 what=f"PositionalSelfAttention ({positions}) vs the per-head definition")


@pytest.mark.parametrize("positions", ["rope", "alibi", "rope+alibi"])
def test_layer_backward_matches_finite_differences(positions):
    mha = layer(D=8, H=2, rope="rope" in positions, alibi="alibi" in positions, seed=10, bias=False)
    check_layer(with_masks(mha, key_padding_mask=np.array([[False] * 5, [False, False, False, True, True]]),
                           causal=True), np.random.default_rng(11).standard_normal((2, 5, 8)), h=H_STEP)


def test_layer_with_rope_key_bias_gets_a_gradient():
    """Without RoPE the key bias adds q·b_k to a whole row of scores, so its gradient is 0; RoPE
    rotates b_k differently at every position, and the gradient is no longer 0."""
    mha = layer(D=4, H=1, rope=True, seed=12)
    x = np.random.default_rng(13).standard_normal((2, 5, 4))
    mha.zero_grad()
    mha.backward(np.random.default_rng(14).standard_normal(mha.forward(x, causal=True).shape))
    key_bias_grad = mha.qkv.b.grad[4:8].copy()
    assert np.abs(key_bias_grad).max() > 1e-3, f"the key bias should get a gradient under RoPE, got {key_bias_grad}"
    check_layer(with_masks(mha, causal=True), x, h=H_STEP)


def test_layer_with_alibi_matches_torch_multihead_attention_with_a_float_mask():
    """torch.nn.MultiheadAttention adds a float attn_mask of shape (B·H, T, T) to the scores."""
    B, T, D, H = 2, 5, 8, 4
    bias = -np.abs(np.arange(T)[:, None] - np.arange(T)) * pe.alibi_slopes(H)[:, None, None]
    bias = np.where(np.tril(np.ones((T, T), dtype=bool)), bias, -np.inf)

    def torch_forward(module, x):
        return module(x, x, x, attn_mask=to_torch(np.tile(bias, (B, 1, 1))), need_weights=False)[0]

    check_layer(with_masks(layer(D=D, H=H, alibi=True, seed=15, bias=False), causal=True),
                np.random.default_rng(16).standard_normal((B, T, D)), h=H_STEP,
                torch_layer=lambda torch: torch.nn.MultiheadAttention(D, H, bias=False, batch_first=True),
                param_map={"qkv.W": PARAM_MAP["qkv.W"], "out_proj.W": PARAM_MAP["out_proj.W"]},
                torch_forward=torch_forward, oracle=torch_or_skip, rtol=1e-9, atol=1e-11)


@settings(deadline=None, max_examples=15)
@given(st.sampled_from(["rope", "alibi"]), st.integers(3, 6), st.integers(0, 2**32 - 1))
def test_positions_break_permutation_equivariance_and_keep_causality(positions, T, seed):
    mha = layer(D=8, H=2, rope=positions == "rope", alibi=positions == "alibi", seed=seed % 1000)
    x = np.random.default_rng(seed).standard_normal((1, T, 8))
    perm = np.roll(np.arange(T), 1)
    y = mha.forward(x)
    gap = np.abs(mha.forward(x[:, perm]) - y[:, perm]).max()
    assert gap > 1e-6, (f"with {positions}, permuting the positions should change more than the order of "
                        f"the outputs (max difference {gap:.2e})")
    yc = mha.forward(x, causal=True)
    x2 = x.copy()
    x2[:, -1] += 1.0
    assert_close(mha.forward(x2, causal=True)[:, :-1], yc[:, :-1], rtol=1e-12, atol=1e-12,
                 what=f"causal outputs before the last position after changing the last input ({positions})")
