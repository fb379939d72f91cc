"""Topic 29: cross-attention — queries from the decoder, keys and values from the memory: the
definition, the memory padding mask, finite differences (dx, dmemory and the weights), and
torch.nn.MultiheadAttention called with (x, memory, memory)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.attention.scaled_dot_product import attention_loop
from dlfs.transformer import decoder as dec
from dlfs.testing import assert_close, check_gradients, check_layer
from torch_oracle import to_numpy, to_torch, torch_or_skip

H_STEP = 1e-5       # central-difference step: truncation (∝ h²) and rounding (∝ 1/h) errors balance near here
MEM_PAD = np.array([[False, False, False, False], [False, False, True, True]])


def cross(D=6, H=2, bias=True, seed=0, dtype=np.float64):
    """A layer with random, non-zero biases (the zero defaults would hide a bias mistake)."""
    layer = dec.CrossAttention(D, H, bias=bias, rng=seed, dtype=dtype)
    if bias:
        rng = np.random.default_rng(seed + 100)
        layer.qkv.b.data[...] = rng.standard_normal(3 * D)
        layer.out_proj.b.data[...] = rng.standard_normal(D)
    return layer


def inputs(B=2, T=5, S=4, D=6, seed=1, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, T, D)).astype(dtype), rng.standard_normal((B, S, D)).astype(dtype)


def by_definition(layer, x, memory, key_padding_mask=None):
    """Head by head with Topic 25's loop attention: q = x Wq + bq, k = m Wk + bk, v = m Wv + bv."""
    D, H = layer.d_model, layer.num_heads
    dh = D // H
    W, b = layer.qkv.W.data, layer.qkv.b.data if layer.qkv.b is not None else np.zeros(3 * D)
    mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
    heads = []
    for h in range(H):
        cq, ck, cv = (slice(j * D + h * dh, j * D + (h + 1) * dh) for j in range(3))
        q, k, v = x @ W[:, cq] + b[cq], memory @ W[:, ck] + b[ck], memory @ W[:, cv] + b[cv]
        heads.append(attention_loop(q[:, None], k[:, None], v[:, None], mask)[:, 0])
    y = np.concatenate(heads, axis=-1) @ layer.out_proj.W.data
    return y + (layer.out_proj.b.data if layer.out_proj.b is not None else 0)


def check_cross_gradients(layer, x, memory, key_padding_mask=None, seed=2):
    """dx, dmemory and every parameter gradient against central differences in float64. The key
    bias adds q·b_k to every score of a row, which softmax ignores: its gradient is exactly 0 and
    is checked to be 0 (a relative error against finite-difference noise would mean nothing)."""
    layer.zero_grad()
    y = layer.forward(x, memory, key_padding_mask)
    dy = np.random.default_rng(seed).standard_normal(y.shape)
    dx, dmemory = layer.backward(dy)
    D = layer.d_model
    arrays, analytic = {"x": x, "memory": memory}, {"x": dx, "memory": dmemory}
    for name, p in layer.named_parameters():
        if name == "qkv.b":
            assert_close(p.grad[D:2 * D], np.zeros(D), atol=1e-12 * (1 + np.abs(p.grad).max()),
                         what="gradient of the key bias (softmax ignores a constant shift of a row: 0)")
            for part, cols in (("query", slice(0, D)), ("value", slice(2 * D, 3 * D))):
                arrays[f"qkv.b ({part} part)"], analytic[f"qkv.b ({part} part)"] = p.data[cols], p.grad[cols].copy()
        else:
            arrays[name], analytic[name] = p.data, p.grad.copy()
    check_gradients(lambda: layer.forward(x, memory, key_padding_mask), arrays, analytic, dout=dy, h=H_STEP)


@pytest.mark.parametrize("padding", [False, True])
def test_forward_matches_the_head_by_head_definition(padding):
    layer = cross(D=6, H=3, seed=3)
    x, memory = inputs(seed=4)
    kpm = MEM_PAD if padding else None
    assert_close(layer.forward(x, memory, kpm), by_definition(layer, x, memory, kpm), rtol=1e-10, atol=1e-12,
                 what=f"cross-attention vs the head-by-head definition (memory padding: {padding})")


def test_padded_memory_positions_change_nothing_and_get_no_gradient():
    layer = cross(seed=5)
    x, memory = inputs(seed=6)
    y = layer.forward(x, memory, MEM_PAD)
    changed = memory.copy()
    changed[1, 2:] = 100.0                                   # the padded positions of sample 1
    assert_close(layer.forward(x, changed, MEM_PAD), y, rtol=1e-12, atol=1e-12,
                 what="output after changing padded memory positions")
    _, dmemory = layer.backward(np.ones_like(y))
    assert_close(dmemory[1, 2:], np.zeros((2, 6)), atol=0, what="dmemory at padded positions")
    assert np.abs(dmemory[0]).min() > 0, "unpadded memory positions should get a gradient"


@pytest.mark.parametrize("padding", [False, True])
def test_backward_matches_finite_differences(padding):
    check_cross_gradients(cross(seed=7), *inputs(seed=8), MEM_PAD if padding else None)


def test_backward_without_biases_through_check_layer():
    layer = cross(D=4, H=2, bias=False, seed=9)
    check_layer(layer, (*inputs(T=3, S=5, D=4, seed=10), None), input_names=("x", "memory", "key_padding_mask"),
                h=H_STEP)


def test_float32_stays_float32():
    layer = cross(D=8, H=4, seed=11, dtype=np.float32)
    x, memory = inputs(D=8, seed=12, dtype=np.float32)
    y = layer.forward(x, memory)
    dx, dmemory = layer.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == dmemory.dtype == layer.qkv.W.grad.dtype == np.float32, \
        f"expected float32 throughout, got y {y.dtype}, dx {dx.dtype}, dmemory {dmemory.dtype}"
    ref = cross(D=8, H=4, seed=11)
    assert_close(y, ref.forward(x.astype(np.float64), memory.astype(np.float64)), rtol=1e-4, atol=1e-5,
                 what="float32 output vs float64")


def test_values_and_gradients_match_torch_multihead_attention():
    torch = torch_or_skip()
    layer = cross(D=8, H=2, seed=13)
    tmha = torch.nn.MultiheadAttention(8, 2, batch_first=True, dtype=torch.float64)
    tmha.load_state_dict({"in_proj_weight": to_torch(layer.qkv.W.data.T), "in_proj_bias": to_torch(layer.qkv.b.data),
                          "out_proj.weight": to_torch(layer.out_proj.W.data.T),
                          "out_proj.bias": to_torch(layer.out_proj.b.data)})
    x, memory = inputs(D=8, seed=14)
    y = layer.forward(x, memory, MEM_PAD)
    dy = np.random.default_rng(15).standard_normal(y.shape)
    dx, dmemory = layer.backward(dy)
    tx, tm = to_torch(x, requires_grad=True), to_torch(memory, requires_grad=True)
    ty = tmha(tx, tm, tm, key_padding_mask=to_torch(MEM_PAD), need_weights=False)[0]
    ty.backward(to_torch(dy))
    assert_close(y, to_numpy(ty), rtol=1e-10, atol=1e-12, what="output vs torch MultiheadAttention(x, memory, memory)")
    assert_close(dx, to_numpy(tx.grad), rtol=1e-9, atol=1e-11, what="dx vs torch")
    assert_close(dmemory, to_numpy(tm.grad), rtol=1e-9, atol=1e-11, what="dmemory vs torch")
    assert_close(layer.qkv.W.grad, to_numpy(tmha.in_proj_weight.grad).T, rtol=1e-9, atol=1e-11,
                 what="qkv.W.grad vs torch in_proj_weight.grad transposed")
    assert_close(layer.qkv.b.grad, to_numpy(tmha.in_proj_bias.grad), rtol=1e-9, atol=1e-11,
                 what="qkv.b.grad vs torch in_proj_bias.grad")
    assert_close(layer.out_proj.W.grad, to_numpy(tmha.out_proj.weight.grad).T, rtol=1e-9, atol=1e-11,
                 what="out_proj.W.grad vs torch")


def test_bad_inputs_are_refused():
    layer = cross(D=6, H=2, seed=16)
    x, memory = inputs(seed=17)
    assert_close(layer.forward(x, memory), by_definition(layer, x, memory), rtol=1e-10, atol=1e-12, what="forward")
    with pytest.raises(ValueError):
        layer.forward(x, memory[:1])                          # batch sizes differ
    with pytest.raises(ValueError):
        layer.forward(x, memory[..., :4])                     # memory width 4, not 6
    with pytest.raises(ValueError):
        layer.forward(x, memory, np.zeros((2, 5), dtype=bool))    # padding mask for S = 5, memory has 4


@settings(deadline=None, max_examples=20)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_permuting_the_memory_changes_nothing_and_each_query_is_independent(T, S, seed):
    """Without positions, attention over the memory is a weighted average: the memory's order
    does not matter; and query t's output depends on x[t] alone."""
    layer = cross(D=4, H=2, seed=seed % 1000)
    x, memory = inputs(B=1, T=T, S=S, D=4, seed=seed)
    y = layer.forward(x, memory)
    perm = np.random.default_rng(seed).permutation(S)
    assert_close(layer.forward(x, memory[:, perm]), y, rtol=1e-10, atol=1e-12, what="output for a permuted memory")
    assert_close(layer.forward(x[:, ::-1], memory), y[:, ::-1], rtol=1e-10, atol=1e-12,
                 what="output for reversed queries (each query on its own)")
