"""Topic 31: grouped-query attention — H_kv = H is multi-head attention, the gradients are
right, and its cache is H / H_kv times smaller with the same cached logits."""

import functools

import numpy as np
import pytest
from torch_oracle import torch_or_skip

from dlfs.attention.multi_head import MultiHeadAttention
from dlfs.attention.scaled_dot_product import attention_forward, attention_mask
from dlfs.testing import assert_close, check_layer
from dlfs.transformer import kv_cache as kv
from dlfs.transformer.gpt import GPT, GPTConfig
from dlfs.transformer.grouped_query import GroupedQueryAttention, use_grouped_query

PAD = np.array([[False] * 5, [True, False, False, False, False]])


def with_masks(layer, key_padding_mask=None, causal=False):
    """The layer with its masks fixed, so that check_layer's forward(x) uses them."""
    layer.forward = functools.partial(type(layer).forward, layer, key_padding_mask=key_padding_mask, causal=causal)
    return layer


def test_grouped_attention_equals_attention_with_repeated_heads():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, 6, 5, 3))
    k, v = rng.standard_normal((2, 2, 2, 7, 3))
    mask = attention_mask(5, 7, causal=True, key_padding_mask=np.array([[False] * 7, [True] * 2 + [False] * 5]))
    got, _ = kv.grouped_attention(q, k, v, mask)
    want, _ = attention_forward(q, np.repeat(k, 3, axis=1), np.repeat(v, 3, axis=1), mask)
    assert_close(got, want, atol=1e-14, what="query heads 0-2 on kv head 0, 3-5 on kv head 1")


def test_as_many_kv_heads_as_heads_is_multi_head_attention():
    mha = MultiHeadAttention(8, 4, rng=0, dtype=np.float64)
    mha.out_proj.b.data[...] = np.random.default_rng(1).standard_normal(8)
    gqa = GroupedQueryAttention.from_multi_head(mha)
    x = np.random.default_rng(2).standard_normal((2, 5, 8))
    dy = np.random.default_rng(3).standard_normal((2, 5, 8))
    y1 = mha.forward(x, key_padding_mask=PAD, causal=True)
    y2 = gqa.forward(x, key_padding_mask=PAD, causal=True)
    assert_close(y2, y1, atol=1e-13, what="GQA with H_kv = H against MultiHeadAttention")
    assert_close(gqa.backward(dy), mha.backward(dy), atol=1e-13, what="dx")
    D = 8
    assert_close(gqa.q_proj.W.grad, mha.qkv.W.grad[:, :D], atol=1e-13, what="dWq")
    assert_close(gqa.kv_proj.W.grad, mha.qkv.W.grad[:, D:], atol=1e-13, what="dWk, dWv")
    assert_close(gqa.kv_proj.b.grad, mha.qkv.b.grad[D:], atol=1e-13, what="dbk, dbv")
    assert_close(gqa.out_proj.b.grad, mha.out_proj.b.grad, atol=1e-13, what="dbo")


@pytest.mark.parametrize("kv_heads", [1, 2])
def test_gradients_against_finite_differences(kv_heads):
    # no biases: the key bias's gradient is exactly 0 (it adds q·b_k to a whole row of scores),
    # and finite differences of 0 are rounding noise above the relative check's floor
    layer = GroupedQueryAttention(8, 4, kv_heads, bias=False, rng=0, dtype=np.float64)
    x = np.random.default_rng(4).standard_normal((2, 5, 8))
    check_layer(with_masks(layer, PAD, causal=True), x, h=1e-5)


@pytest.mark.dlfs_timeout(30)                  # importing torch takes seconds on a busy machine
def test_against_torch_scaled_dot_product_attention_with_gqa():
    torch_or_skip()
    layer = GroupedQueryAttention(8, 4, 2, bias=False, rng=0, dtype=np.float64)
    x = np.random.default_rng(5).standard_normal((2, 5, 8))

    def torch_fn(torch, x, **p):
        B, T, _ = x.shape
        q = (x @ p["q_proj.W"]).reshape(B, T, 4, 2).transpose(1, 2)
        k, v = (x @ p["kv_proj.W"]).split(4, dim=-1)
        k, v = (a.reshape(B, T, 2, 2).transpose(1, 2) for a in (k, v))
        o = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        return o.transpose(1, 2).reshape(B, T, 8) @ p["out_proj.W"]

    check_layer(with_masks(layer, causal=True), x, torch_fn=torch_fn, oracle=torch_or_skip, h=1e-5)


@pytest.mark.parametrize("kv_heads", [1, 2, 4])
def test_grouped_query_gpt_cache_is_smaller_and_exact(kv_heads):
    cfg = GPTConfig(vocab_size=11, block_size=12, n_layer=2, n_head=4, n_embd=16)
    model = use_grouped_query(GPT(cfg, rng=0, dtype=np.float64), kv_heads, rng=1).eval()
    ids = np.random.default_rng(6).integers(0, 11, (2, 12))
    full = model.forward(ids)
    cache = kv.cache_for(model, batch=2)
    got = np.concatenate([kv.gpt_step(model, ids[:, :4], cache)]
                         + [kv.gpt_step(model, ids[:, t:t + 1], cache) for t in range(4, 12)], axis=1)
    assert_close(got, full, atol=1e-12, rtol=0, what=f"cached logits with {kv_heads} kv heads")
    mha_bytes = kv.cache_for(GPT(cfg, rng=0, dtype=np.float64), batch=2).nbytes
    assert cache.k.shape[2] == kv_heads
    assert cache.nbytes * 4 // kv_heads == mha_bytes, \
        f"cache of {cache.nbytes} bytes; expected {mha_bytes} / {4 // kv_heads}"
