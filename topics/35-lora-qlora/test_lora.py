"""Topic 35: the LoRA layer around a frozen Linear / QKV projection (float and NF4 base): start
equal to the base, merge and unmerge, gradients against finite differences and PyTorch, frozen
base weights, and wrapping a GPT in place."""

import numpy as np
import pytest
from torch_oracle import torch_or_skip

from dlfs.attention.qkv import QKVProjection
from dlfs.lora import adapter as lora
from dlfs.lora.nf4 import dequantize_nf4
from dlfs.nn.layers import Linear
from dlfs.testing import assert_close, check_layer
from dlfs.transformer.gpt import GPT, GPTConfig

CFG = GPTConfig(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=16)


def randn(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape)


def with_random_b(layer, seed=1):
    layer.B.data[...] = randn(*layer.B.shape, seed=seed) * 0.3
    return layer


def lora_linear(r=3, alpha=6.0, quantize=False, bias=True):
    return with_random_b(lora.LoRALinear(Linear(8, 5, bias=bias, rng=0, dtype=np.float64), r, alpha, rng=2,
                                         quantize=quantize))


def ids(seed=0, B=2):
    return np.random.default_rng(seed).integers(0, CFG.vocab_size, (B, CFG.block_size))


def test_adapted_layer_starts_equal_to_the_base_and_computes_the_low_rank_update():
    base = Linear(8, 5, rng=0, dtype=np.float64)
    layer = lora.LoRALinear(base, 3, alpha=6.0, rng=2)
    x = randn(4, 8, seed=3)
    assert np.all(layer.B.data == 0), "B must start at zero"
    assert np.abs(layer.A.data).max() > 0, "A must start random"
    assert np.array_equal(layer.forward(x), base.forward(x)), "with B = 0 the output must equal the base's exactly"
    with_random_b(layer)
    expected = x @ base.W.data + base.b.data + 2.0 * (x @ layer.A.data) @ layer.B.data
    assert_close(layer.forward(x), expected, rtol=1e-13, what="x W + b + (α/r) x A B")
    with pytest.raises(ValueError, match="rank"):
        lora.LoRALinear(base, 6)
    with pytest.raises(TypeError, match="Linear"):
        lora.LoRALinear(object(), 2)


def test_wrapped_gpt_starts_equal_to_the_base_and_only_a_and_b_are_parameters():
    model = GPT(CFG, rng=0, dtype=np.float64)
    x = ids()
    before = model.forward(x)
    names = lora.apply_lora(model, r=2, alpha=4.0, rng=0)
    assert len(names) == 4 * CFG.n_layer, f"expected 4 wrapped projections per block, got {names}"
    assert np.array_equal(model.forward(x), before), "a freshly wrapped GPT must compute exactly the base's logits"
    trainable = lora.lora_parameters(model)
    D = CFG.n_embd
    per_block = 2 * ((D + 3 * D) + (D + D) + (D + 4 * D) + (4 * D + D))
    assert sum(p.size for p in trainable) == CFG.n_layer * per_block, "A, B of every adapter: r·(in + out) each"
    wrapped = dict(lora.lora_layers(model))
    for name, layer in wrapped.items():
        assert [n for n, _ in layer.named_parameters()] == ["A", "B"], f"{name}: only A and B may be parameters"
    assert "blocks.0.ff.linear1.W" in model.state_dict(), "the frozen weight keeps its name in the state dict"


def test_training_step_changes_only_a_and_b():
    from dlfs.optim.optimizers import AdamW
    from dlfs.transformer.training import train_step
    model = GPT(CFG, rng=0, dtype=np.float64)
    lora.apply_lora(model, r=2, rng=0)
    frozen = {n: np.array(layer.W, copy=True) for n, layer in lora.lora_layers(model)}
    others = {n: p.data.copy() for n, p in model.named_parameters() if not n.endswith((".A", ".B"))}
    opt = AdamW(lora.lora_parameters(model), lr=1e-2, weight_decay=0.0)
    x = ids(1)
    train_step(model, x, np.roll(x, -1, axis=1), opt)
    for n, layer in lora.lora_layers(model):
        assert np.array_equal(layer.W, frozen[n]), f"{n}.W changed: the base must stay frozen"
        assert np.abs(layer.B.data).max() > 0, f"{n}.B did not move"
    for n, p in model.named_parameters():
        if n in others:
            assert np.array_equal(p.data, others[n]), f"{n} changed but is not a LoRA parameter"


def test_merge_equals_the_adapted_forward_and_unmerge_restores_the_base():
    model = GPT(CFG, rng=0, dtype=np.float64)
    lora.apply_lora(model, r=3, alpha=5.0, rng=0)
    for i, (_, layer) in enumerate(lora.lora_layers(model)):
        with_random_b(layer, seed=10 + i)
    base_w = {n: np.array(layer.W, copy=True) for n, layer in lora.lora_layers(model)}
    x = ids(2)
    adapted = model.forward(x)
    lora.merge_lora(model)
    merged = model.forward(x)
    assert np.abs(merged - adapted).max() <= 1e-12, f"merged logits differ by {np.abs(merged - adapted).max():.2e}"
    for n, layer in lora.lora_layers(model):
        assert np.abs(layer.W - base_w[n]).max() > 1e-3, f"{n}: merge did not change W"
    lora.unmerge_lora(model)
    for n, layer in lora.lora_layers(model):
        err = np.abs(layer.W - base_w[n]).max()
        assert err <= 1e-12, f"{n}: unmerge left W off by {err:.2e}"
    assert np.abs(model.forward(x) - adapted).max() <= 1e-12, "after unmerge the adapted logits must come back"


def test_merged_layer_refuses_backward_and_double_merge():
    layer = lora_linear()
    layer.merge()
    layer.forward(randn(2, 8))
    with pytest.raises(RuntimeError, match="unmerge"):
        layer.backward(randn(2, 5))
    with pytest.raises(RuntimeError, match="already"):
        layer.merge()


def test_gradients_of_the_lora_linear_layer():
    layer = lora_linear()
    result = check_layer(layer, randn(3, 4, 8, seed=4))
    assert set(result.errors) == {"x", "A", "B"}, f"expected gradients of x, A and B only, got {set(result.errors)}"


def test_gradients_of_the_lora_linear_layer_match_pytorch():
    layer = lora_linear(bias=False)
    W, s = layer.W.copy(), layer.scaling
    check_layer(layer, randn(3, 8, seed=5), oracle=torch_or_skip,
                torch_fn=lambda torch, x, A, B: x @ torch.from_numpy(W) + s * (x @ A) @ B)


def test_gradients_of_the_lora_qkv_projection():
    base = QKVProjection(6, rng=0, dtype=np.float64)
    base.b.data[...] = randn(18, seed=6)
    layer = with_random_b(lora.LoRALinear(base, 2, alpha=3.0, rng=1))
    q, k, v = layer.forward(randn(2, 3, 6, seed=7))
    assert q.shape == k.shape == v.shape == (2, 3, 6), f"expected three (2, 3, 6) outputs, got {q.shape}"
    check_layer(layer, randn(2, 3, 6, seed=7))


def test_gradients_through_a_whole_gpt_with_lora():
    cfg = GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=2, n_embd=8)
    model = GPT(cfg, rng=0, dtype=np.float64)
    lora.apply_lora(model, r=2, alpha=4.0, rng=0)
    for i, (_, layer) in enumerate(lora.lora_layers(model)):
        with_random_b(layer, seed=20 + i)
    result = check_layer(model, np.random.default_rng(3).integers(0, 7, (2, 4)))
    assert any(n.endswith(".A") for n in result.errors), "the A matrices must be checked"


def test_qlora_layer_uses_the_dequantised_nf4_base():
    layer = lora_linear(quantize=True)
    assert layer.W is None and layer.W_nf4 is not None, "a QLoRA layer keeps W only in NF4"
    W = dequantize_nf4(layer.W_nf4)
    assert W.dtype == np.float64, f"the dequantised base keeps the dtype, got {W.dtype}"
    x = randn(4, 8, seed=8)
    expected = x @ W + layer.b + layer.scaling * (x @ layer.A.data) @ layer.B.data
    assert_close(layer.forward(x), expected, rtol=1e-13, what="QLoRA forward")
    check_layer(layer, x)
    with pytest.raises(RuntimeError, match="NF4"):
        layer.merge()


def test_qlora_gpt_stores_frozen_weights_in_about_4_bits():
    cfg = GPTConfig(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=64)
    model = GPT(cfg, rng=0)
    lora.apply_lora(model, r=4, rng=0, quantize=True)
    n = sum(layer.in_features * layer.out_features for _, layer in lora.lora_layers(model))
    got = lora.frozen_weight_bytes(model)
    assert abs(8 * got / n - 4.127) < 0.01, f"expected about 4.127 bits per frozen weight, got {8 * got / n:.4f}"
    assert got < 4 * n / 7, f"{got:,} bytes is not about an eighth of float32's {4 * n:,}"
    logits = model.forward(ids())
    assert logits.shape == (2, 6, 11) and np.isfinite(logits).all()

