"""Topic 29: the decoder block — post-LN and pre-LN against their formulas written out, against
torch.nn.TransformerDecoderLayer with loaded weights (values, dx, dmemory and every parameter's
gradient), finite differences in float64, the torch loader, causality, and the memory gradient
of a stack of blocks."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.attention.multi_head import MultiHeadAttention
from dlfs.nn.activations import gelu
from dlfs.nn.normalization import LayerNorm
from dlfs.transformer import decoder as dec
from dlfs.testing import assert_close, check_gradients
from torch_oracle import to_numpy, to_torch, torch_or_skip

H_STEP = 1e-5       # central-difference step: truncation (∝ h²) and rounding (∝ 1/h) errors balance near here
TGT_PAD = np.array([[False] * 5, [False, False, False, False, True]])
MEM_PAD = np.array([[False] * 4, [False, False, True, True]])


def block(norm_first, D=8, H=2, F=16, seed=0, dtype=np.float64, dropout=0.0):
    """A block with every parameter random (biases and the LayerNorms' γ, β too)."""
    b = dec.DecoderBlock(D, H, F, dropout=dropout, norm_first=norm_first, rng=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 100)
    for name, p in b.named_parameters():
        if p.data.ndim == 1:
            p.data[...] = (1.0 if name.endswith("gamma") else 0.0) + 0.3 * rng.standard_normal(p.shape)
    return b


def inputs(B=2, T=5, S=4, D=8, seed=1, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, T, D)).astype(dtype), rng.standard_normal((B, S, D)).astype(dtype)


def layer_norm(x, gamma, beta, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(x.var(-1, keepdims=True) + eps) * gamma + beta


def softmax_attention(q, k, v, allowed):
    """q: (B, T, d), k, v: (B, S, d), allowed: (B, T, S) bool."""
    s = np.where(allowed, q @ k.swapaxes(-1, -2) / np.sqrt(q.shape[-1]), -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)) @ v


def mha_written_out(p, prefix, x, mem, allowed, H):
    """Multi-head attention with the block's weights (``prefix`` = self_attn or cross_attn)."""
    D = x.shape[-1]
    dh = D // H
    W, b = p[f"{prefix}.qkv.W"], p[f"{prefix}.qkv.b"]
    q, k, v = x @ W[:, :D] + b[:D], mem @ W[:, D:2 * D] + b[D:2 * D], mem @ W[:, 2 * D:] + b[2 * D:]
    heads = [softmax_attention(q[..., h * dh:(h + 1) * dh], k[..., h * dh:(h + 1) * dh], v[..., h * dh:(h + 1) * dh],
                               allowed) for h in range(H)]
    return np.concatenate(heads, -1) @ p[f"{prefix}.out_proj.W"] + p[f"{prefix}.out_proj.b"]


def written_out(blk, x, mem, tgt_pad=None, mem_pad=None):
    """The block's three sublayers from the formulas of the lesson."""
    p = {n: q.data for n, q in blk.named_parameters()}
    B, T, S, H = x.shape[0], x.shape[1], mem.shape[1], blk.self_attn.num_heads
    self_allowed = np.tril(np.ones((T, T), dtype=bool))[None] & (True if tgt_pad is None else ~tgt_pad[:, None, :])
    cross_allowed = np.ones((B, T, S), dtype=bool) & (True if mem_pad is None else ~mem_pad[:, None, :])

    def norm(i, h):
        return layer_norm(h, p[f"sublayer{i}.norm.gamma"], p[f"sublayer{i}.norm.beta"])

    def ff(h):
        return gelu(h @ p["ff.linear1.W"] + p["ff.linear1.b"]) @ p["ff.linear2.W"] + p["ff.linear2.b"]

    def sa(h):
        return mha_written_out(p, "self_attn", h, h, self_allowed, H)

    def ca(h):
        return mha_written_out(p, "cross_attn", h, mem, cross_allowed, H)

    if blk.norm_first:
        h1 = x + sa(norm(1, x))
        h2 = h1 + ca(norm(2, h1))
        return h2 + ff(norm(3, h2))
    h1 = norm(1, x + sa(x))
    h2 = norm(2, h1 + ca(h1))
    return norm(3, h2 + ff(h2))


def check_block_gradients(blk, x, mem, masks=None, seed=2):
    """dx, dmemory and every parameter gradient against central differences in float64. The two
    key biases add a constant to every score of a row, which softmax ignores: their gradients are
    exactly 0 and are checked to be 0 (finite-difference noise has no meaningful relative error)."""
    masks = masks or {}
    blk.zero_grad()
    y = blk.forward(x, mem, **masks)
    dy = np.random.default_rng(seed).standard_normal(y.shape)
    dx, dmem = blk.backward(dy)
    D = blk.d_model
    arrays, analytic = {"x": x, "memory": mem}, {"x": dx, "memory": dmem}
    for name, p in blk.named_parameters():
        if name.endswith("qkv.b"):
            assert_close(p.grad[D:2 * D], np.zeros(D), atol=1e-12 * (1 + np.abs(p.grad).max()),
                         what=f"gradient of {name}'s key part (softmax ignores a constant shift of a row: 0)")
            for part, cols in (("query", slice(0, D)), ("value", slice(2 * D, 3 * D))):
                arrays[f"{name} ({part} part)"], analytic[f"{name} ({part} part)"] = p.data[cols], p.grad[cols].copy()
        else:
            arrays[name], analytic[name] = p.data, p.grad.copy()
    check_gradients(lambda: blk.forward(x, mem, **masks), arrays, analytic, dout=dy, h=H_STEP)


def causal_mask(torch, T):
    """torch's boolean attn_mask marks the *blocked* pairs: True above the diagonal."""
    return torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)


def torch_block(torch, norm_first, D=8, H=2, F=16):
    return torch.nn.TransformerDecoderLayer(D, H, F, dropout=0.0, activation="gelu", batch_first=True,
                                            norm_first=norm_first, dtype=torch.float64)


# ------------------------------------------------------------------ values without PyTorch

@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
@pytest.mark.parametrize("masks", ["causal", "causal+padding"])
def test_forward_matches_the_formulas_written_out(norm_first, masks):
    blk = block(norm_first, seed=3)
    x, mem = inputs(seed=4)
    pads = (TGT_PAD, MEM_PAD) if "padding" in masks else (None, None)
    y = blk.forward(x, mem, tgt_key_padding_mask=pads[0], memory_key_padding_mask=pads[1])
    assert_close(y, written_out(blk, x, mem, *pads), rtol=1e-10, atol=1e-12,
                 what=f"decoder block ({'pre' if norm_first else 'post'}-LN, {masks}) vs its formulas")


def test_sublayers_are_the_library_layers():
    blk = block(True, seed=5)
    assert type(blk.self_attn) is MultiHeadAttention, f"self_attn should be MultiHeadAttention, got {type(blk.self_attn)}"
    assert isinstance(blk.cross_attn, MultiHeadAttention) and isinstance(blk.sublayer3.norm, LayerNorm), \
        "cross_attn is a MultiHeadAttention (CrossAttention) and the norms are LayerNorms"
    x, mem = inputs(seed=6)
    assert_close(blk.forward(x, mem), written_out(blk, x, mem), rtol=1e-10, atol=1e-12, what="forward")


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_backward_matches_finite_differences(norm_first):
    check_block_gradients(block(norm_first, seed=7), *inputs(seed=8),
                          dict(tgt_key_padding_mask=TGT_PAD, memory_key_padding_mask=MEM_PAD))


def test_non_causal_backward_matches_finite_differences():
    check_block_gradients(block(False, D=4, H=2, F=8, seed=9), *inputs(B=1, T=3, S=5, D=4, seed=10),
                          dict(causal=False))


def test_a_stack_of_blocks_adds_up_the_memory_gradients():
    """Every block of a decoder reads the same memory: its gradient is the sum of theirs."""
    blocks = [block(True, D=4, H=2, F=8, seed=11), block(False, D=4, H=2, F=8, seed=12)]
    x, mem = inputs(B=2, T=3, S=4, D=4, seed=13)

    def forward():
        h = x
        for b in blocks:
            h = b.forward(h, mem)
        return h

    y = forward()
    dy = np.random.default_rng(14).standard_normal(y.shape)
    dmem = np.zeros_like(mem)
    dh = dy
    for b in reversed(blocks):
        dh, dm = b.backward(dh)
        dmem += dm
    check_gradients(forward, {"x": x, "memory": mem}, {"x": dh, "memory": dmem}, dout=dy, h=H_STEP)


def test_float32_stays_float32_and_eval_mode_turns_dropout_off():
    blk = block(True, seed=15, dtype=np.float32, dropout=0.3)
    x, mem = inputs(seed=16, dtype=np.float32)
    y = blk.forward(x, mem)
    dx, dmem = blk.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == dmem.dtype == np.float32, f"float32 throughout, got {y.dtype} {dx.dtype} {dmem.dtype}"
    blk.eval()
    ref = block(True, seed=15, dtype=np.float64, dropout=0.3).eval()
    assert_close(blk.forward(x, mem), ref.forward(x.astype(np.float64), mem.astype(np.float64)), rtol=1e-4, atol=1e-4,
                 what="eval mode (no dropout), float32 vs float64")
    assert_close(ref.forward(x.astype(np.float64), mem.astype(np.float64)),
                 written_out(ref, x.astype(np.float64), mem.astype(np.float64)), rtol=1e-10, atol=1e-12,
                 what="eval mode vs the formulas without dropout")


@settings(deadline=None, max_examples=15)
@given(st.integers(2, 6), st.integers(0, 5), st.booleans(), st.integers(0, 2**32 - 1))
def test_causal_output_at_t_ignores_the_target_after_t_but_reads_all_the_memory(T, t, norm_first, seed):
    t %= T
    blk = block(norm_first, D=4, H=2, F=8, seed=seed % 1000)
    x, mem = inputs(B=1, T=T, S=3, D=4, seed=seed)
    y = blk.forward(x, mem)
    x2 = x.copy()
    x2[:, t + 1:] += 1.0
    assert_close(blk.forward(x2, mem)[:, :t + 1], y[:, :t + 1], rtol=1e-12, atol=1e-12,
                 what=f"outputs 0 … {t} after changing the target after position {t}")
    mem2 = mem.copy()
    mem2[:, -1] += 1.0
    assert np.abs(blk.forward(x, mem2)[:, 0] - y[:, 0]).max() > 1e-8, \
        "position 0 should read the whole memory (changing its last position must change the output)"


# ------------------------------------------------------------------ PyTorch

@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_values_and_gradients_match_torch_decoder_layer(norm_first):
    torch = torch_or_skip()
    blk = block(norm_first, seed=17)
    tl = torch_block(torch, norm_first)
    names = dec.torch_names(blk)
    params = dict(blk.named_parameters())
    tl.load_state_dict({names[n]: to_torch(p.data.T) for n, p in params.items()})
    x, mem = inputs(seed=18)
    y = blk.forward(x, mem, tgt_key_padding_mask=TGT_PAD, memory_key_padding_mask=MEM_PAD)
    dy = np.random.default_rng(19).standard_normal(y.shape)
    blk.zero_grad()
    dx, dmem = blk.backward(dy)
    tx, tm = to_torch(x, requires_grad=True), to_torch(mem, requires_grad=True)
    ty = tl(tx, tm, tgt_mask=causal_mask(torch, 5),
            tgt_key_padding_mask=to_torch(TGT_PAD), memory_key_padding_mask=to_torch(MEM_PAD), tgt_is_causal=True)
    ty.backward(to_torch(dy))
    arrangement = "pre-LN" if norm_first else "post-LN"
    assert_close(y, to_numpy(ty), rtol=1e-10, atol=1e-12, what=f"output vs torch TransformerDecoderLayer ({arrangement})")
    assert_close(dx, to_numpy(tx.grad), rtol=1e-9, atol=1e-11, what=f"dx vs torch ({arrangement})")
    assert_close(dmem, to_numpy(tm.grad), rtol=1e-9, atol=1e-11, what=f"dmemory vs torch ({arrangement})")
    tparams = dict(tl.named_parameters())
    for name, p in params.items():
        assert_close(p.grad, to_numpy(tparams[names[name]].grad).T, rtol=1e-9, atol=1e-11,
                     what=f"{name}.grad vs torch {names[name]}.grad ({arrangement})")


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_loading_torch_weights_reproduces_torch(norm_first):
    torch = torch_or_skip()
    torch.manual_seed(0)
    tl = torch_block(torch, norm_first)
    with torch.no_grad():
        for p in tl.parameters():
            p.add_(0.2 * torch.randn_like(p))              # non-trivial biases and norms
    blk = dec.DecoderBlock(8, 2, 16, dropout=0.0, norm_first=norm_first, dtype=np.float64)
    blk.load_torch_state_dict({k: to_numpy(v) for k, v in tl.state_dict().items()})
    x, mem = inputs(seed=20)
    expected = tl(to_torch(x), to_torch(mem), memory_key_padding_mask=to_torch(MEM_PAD),
                  tgt_mask=causal_mask(torch, 5),
                  tgt_is_causal=True)
    assert_close(blk.forward(x, mem, memory_key_padding_mask=MEM_PAD), to_numpy(expected), rtol=1e-10, atol=1e-12,
                 what="output with torch's weights loaded through load_torch_state_dict")


# ------------------------------------------------------------------ the loader without PyTorch

def test_loader_maps_torch_names_and_refuses_bad_states_changing_nothing():
    blk = block(False, D=4, H=2, F=8, seed=21)
    state = {dec.torch_names(blk)[n]: p.data.T.copy() for n, p in blk.named_parameters()}
    assert {"multihead_attn.in_proj_weight", "norm3.weight", "linear2.bias"} <= set(state), \
        f"torch names expected (multihead_attn.*, norm3.*, linear2.*), got {sorted(state)}"
    x, mem = inputs(B=1, T=3, S=2, D=4, seed=22)
    before = blk.forward(x, mem)
    fresh = dec.DecoderBlock(4, 2, 8, dropout=0.0, dtype=np.float64)
    fresh.load_torch_state_dict(state)
    assert_close(fresh.forward(x, mem), before, rtol=1e-12, atol=1e-12, what="a block loaded from its torch state")
    for bad in ({k: v for k, v in state.items() if k != "norm3.bias"},
                {**state, "extra": np.zeros(1)},
                {**state, "multihead_attn.in_proj_weight": np.zeros((4, 12))}):      # our layout, not torch's
        with pytest.raises(ValueError):
            blk.load_torch_state_dict(bad)
        assert_close(blk.forward(x, mem), before, rtol=0, atol=0, what="output after a refused load (unchanged)")
