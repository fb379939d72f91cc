"""Topic 31: the preallocated key/value cache and the GPT's incremental forward give the logits
of the full forward at every step."""

import numpy as np
import pytest

from dlfs.testing import assert_close
from dlfs.transformer import kv_cache as kv
from dlfs.transformer.encoder import EncoderBlock
from dlfs.transformer.gpt import GPT, GPTConfig

CFG = GPTConfig(vocab_size=13, block_size=16, n_layer=2, n_head=4, n_embd=16)
TOL = {np.float64: 1e-12, np.float32: 1e-5}


def test_append_writes_into_the_preallocated_arrays():
    cache = kv.KVCache(n_layer=2, batch=2, max_len=5, n_kv_head=3, d_head=4, dtype=np.float64)
    k_buf, v_buf = cache.k, cache.v
    rng = np.random.default_rng(0)
    k1, v1 = rng.standard_normal((2, 2, 3, 2, 4))
    K, V = cache.append(1, k1, v1)
    cache.advance(2)
    k2, v2 = rng.standard_normal((2, 2, 3, 1, 4))
    K, V = cache.append(1, k2, v2)
    cache.advance(1)
    assert cache.k is k_buf and cache.v is v_buf, "the cache arrays were replaced instead of written in place"
    assert np.shares_memory(K, k_buf) and np.shares_memory(V, v_buf), "append should return views of the cache"
    assert_close(K, np.concatenate([k1, k2], axis=2), what="cached keys of layer 1")
    assert_close(V, np.concatenate([v1, v2], axis=2), what="cached values of layer 1")
    assert_close(cache.k[0], np.zeros((2, 3, 5, 4)), what="layer 0 (untouched)")
    assert cache.length == 3
    with pytest.raises(ValueError, match="full"):
        cache.append(0, *rng.standard_normal((2, 2, 3, 3, 4)))
    assert_close(cache.k[1, :, :, :3], K, what="keys after a rejected append")


def test_cache_bytes_follow_the_formula():
    model = GPT(CFG, rng=0)
    cache = kv.cache_for(model, batch=3)
    expected = 2 * 2 * 3 * 16 * 4 * 4 * 4             # 2·L·B·T·H_kv·d_head·itemsize
    assert kv.cache_bytes(2, 3, 16, 4, 4, 4) == expected
    assert cache.nbytes == expected, f"cache of {cache.nbytes} bytes, expected {expected}"
    assert cache.k.shape == (2, 3, 4, 16, 4) and cache.k.dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_prefill_then_steps_equal_the_full_forward_at_every_step(dtype):
    model = GPT(CFG, rng=0, dtype=dtype).eval()
    ids = np.random.default_rng(1).integers(0, CFG.vocab_size, (3, CFG.block_size))
    full = model.forward(ids)
    cache = kv.cache_for(model, batch=3)
    got = [kv.gpt_step(model, ids[:, :5], cache)]
    for t in range(5, CFG.block_size):
        got.append(kv.gpt_step(model, ids[:, t:t + 1], cache))
        assert cache.length == t + 1
    got = np.concatenate(got, axis=1)
    assert got.dtype == dtype
    assert_close(got, full, atol=TOL[dtype], rtol=0, what=f"cached logits ({np.dtype(dtype).name})")


def test_post_ln_block_through_the_cache_equals_its_causal_forward():
    block = EncoderBlock(8, 2, 16, dropout=0.0, norm_first=False, rng=0, dtype=np.float64)
    x = np.random.default_rng(2).standard_normal((2, 6, 8))
    full = block.forward(x, causal=True)
    cache = kv.KVCache(1, 2, 6, 2, 4, dtype=np.float64)
    first = kv.block_step(block, x[:, :4], cache, 0)
    cache.advance(4)
    rest = []
    for t in (4, 5):
        rest.append(kv.block_step(block, x[:, t:t + 1], cache, 0))
        cache.advance(1)
    assert_close(np.concatenate([first, *rest], axis=1), full, atol=1e-12, rtol=0, what="post-LN block, cached")


def test_gpt_step_rejects_what_does_not_fit():
    model = GPT(CFG, rng=0, dtype=np.float64).eval()
    cache = kv.cache_for(model, batch=1, max_len=4)
    kv.gpt_step(model, np.zeros((1, 3), dtype=int), cache)
    before = cache.k.copy()
    with pytest.raises(ValueError, match="full"):
        kv.gpt_step(model, np.zeros((1, 2), dtype=int), cache)
    assert cache.length == 3
    assert_close(cache.k, before, what="cache after a rejected step")
    with pytest.raises(ValueError, match="positions"):
        kv.gpt_step(model, np.zeros((1, 1), dtype=int), cache, positions=np.array([16]))
