"""Topic 30: the GPT model — the definition written out, weight tying (two gradients summed), the
whole model's gradients against finite differences in float64 and against the same model built in
PyTorch with loaded weights, GPT-2's initialisation, causality."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.nn.losses import cross_entropy
from dlfs.testing import assert_close, check_gradients
from dlfs.transformer import gpt as G
from dlfs.transformer.encoder import torch_names
from torch_oracle import to_numpy, to_torch, torch_or_skip

TINY = G.GPTConfig(vocab_size=7, block_size=5, n_layer=2, n_head=2, n_embd=4, activation="gelu_tanh")


def tiny(seed=0, config=TINY, dtype=np.float64):
    """A tiny GPT with every parameter redrawn: weights ~ N(0, 0.5²), LayerNorm gains and biases
    around 1 and 0. (At GPT-2's initialisation, std 0.02, the attention is almost uniform and the
    query and key gradients are ~1e-10, below what finite differences resolve; and biases of 0
    and gains of 1 would hide mistakes.)"""
    model = G.GPT(config, rng=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 100)
    for name, p in model.named_parameters():
        if p.data.ndim == 1:
            p.data[...] = (1.0 if name.endswith("gamma") else 0.0) + 0.3 * rng.standard_normal(p.shape)
        else:
            p.data[...] = 0.5 * rng.standard_normal(p.shape)
    return model


def ids_of(B=2, T=5, V=7, seed=1):
    return np.random.default_rng(seed).integers(0, V, (B, T))


def layer_norm(x, gamma, beta, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) * gamma + beta


def final_hidden(model, ids):
    """h = ln_f(blocks(wte[ids] + wpe[:T])), written out with the (reference) blocks of Topic 28."""
    T = ids.shape[1]
    x = model.wte.W.data[ids] + model.wpe.data[:T]
    for block in model.blocks:
        x = block.forward(x, causal=True)
    return layer_norm(x, model.ln_f.gamma.data, model.ln_f.beta.data)


def by_definition(model, ids):
    """The forward written out: the final hidden states times the embedding matrix transposed."""
    return final_hidden(model, ids) @ model.wte.W.data.T


# ------------------------------------------------------------------ without PyTorch

def test_forward_matches_the_definition():
    model = tiny(seed=2)
    ids = ids_of(seed=3)
    logits = model.forward(ids)
    assert logits.shape == (2, 5, 7), f"expected logits (B, T, V) = (2, 5, 7), got {logits.shape}"
    assert_close(logits, by_definition(model, ids), rtol=1e-12, atol=1e-12,
                 what="logits = ln_f(blocks(wte[ids] + wpe[:T])) @ wteᵀ")
    short = ids[:, :3]
    assert_close(model.forward(short), by_definition(model, short), rtol=1e-12, atol=1e-12,
                 what="logits for T = 3 < block_size (positions 0..2 of wpe)")


def test_the_head_is_tied_to_the_token_embedding():
    model = tiny(seed=4)
    names = [n for n, _ in model.named_parameters()]
    assert names.count("wte.W") == 1 and not any("head" in n for n in names), \
        f"the output head must reuse wte.W, not have its own parameter; parameters: {names}"
    ids = ids_of(seed=5)
    h = final_hidden(model, ids).reshape(-1, 4)
    model.zero_grad()
    logits = model.forward(ids)
    dlogits = np.random.default_rng(6).standard_normal(logits.shape)
    model.backward(dlogits)
    # the head's part of wte.W's gradient is dlogitsᵀ h; the rest must be the lookup's scatter-add,
    # which is zero in the rows of the tokens that do not occur in ids
    lookup_part = model.wte.W.grad - dlogits.reshape(-1, 7).T @ h
    absent = np.setdiff1d(np.arange(7), ids)
    assert absent.size, "the test needs a token that does not occur"
    assert_close(lookup_part[absent], np.zeros((absent.size, 4)), rtol=0, atol=1e-12,
                 what="wte.W.grad − the head's dlogitsᵀ·h, rows of absent tokens (only the head uses them)")
    assert np.abs(lookup_part[np.unique(ids)]).min(axis=1).max() > 1e-6, \
        "wte.W.grad holds only the head's gradient: the embedding lookup's gradient must be added to it"


def check_model_gradients(model, ids, targets):
    """Every parameter's gradient of the mean cross-entropy against central differences in float64.
    Each block's key bias gets exactly zero gradient (softmax ignores a constant shift of a row):
    checked to be 0; the rest of every parameter against finite differences."""
    model.zero_grad()
    loss, dlogits = cross_entropy(model.forward(ids), targets)
    model.backward(dlogits)
    D = model.config.n_embd
    inputs, analytic = {}, {}
    for name, p in model.named_parameters():
        if name.endswith("self_attn.qkv.b"):
            assert_close(p.grad[D:2 * D], np.zeros(D), atol=1e-13,
                         what=f"{name}: the key bias's gradient (0: softmax ignores a constant shift of a row)")
            for part, cols in (("query", slice(0, D)), ("value", slice(2 * D, 3 * D))):
                inputs[f"{name} ({part})"], analytic[f"{name} ({part})"] = p.data[cols], p.grad[cols].copy()
        else:
            inputs[name], analytic[name] = p.data, p.grad.copy()
    check_gradients(lambda: np.array(cross_entropy(model.forward(ids), targets)[0]), inputs, analytic, h=1e-5)
    return loss


def test_whole_model_gradients_match_finite_differences():
    """wte.W's gradient includes both uses (the head and the lookup); wpe's rows T.. get none."""
    model = tiny(seed=7)
    ids, targets = ids_of(T=4, seed=8), ids_of(T=4, seed=9)
    check_model_gradients(model, ids, targets)
    assert_close(model.wpe.grad[4:], np.zeros((1, 4)), rtol=0, atol=0, what="wpe rows beyond T (unused)")


def test_dropout_is_off_in_eval_mode_and_changes_training_outputs():
    config = G.GPTConfig(vocab_size=7, block_size=5, n_layer=1, n_head=2, n_embd=4, dropout=0.5,
                         activation="gelu_tanh")
    model = tiny(seed=10, config=config)
    ids = ids_of(seed=11)
    model.eval()
    assert_close(model.forward(ids), by_definition(model, ids), rtol=1e-12, atol=1e-12,
                 what="eval mode: no dropout anywhere")
    model.train()
    assert not np.allclose(model.forward(ids), by_definition(model.eval() or model, ids)), \
        "training mode with dropout 0.5 should change the logits"


def test_gpt2_initialisation():
    config = G.GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=64)
    model = G.GPT(config, rng=12)
    params = dict(model.named_parameters())
    residual = 0.02 / math.sqrt(2 * 4)
    for name, p in params.items():
        if name.endswith(("out_proj.W", "linear2.W")):
            expected = residual
        elif name in ("wte.W", "wpe") or name.endswith(".W"):
            expected = 0.02
        elif name.endswith(".b") or name.endswith("beta"):
            assert_close(p.data, np.zeros(p.shape), rtol=0, atol=0, what=f"{name} at initialisation")
            continue
        else:
            assert_close(p.data, np.ones(p.shape), rtol=0, atol=0, what=f"{name} at initialisation")
            continue
        std = float(p.data.std())
        assert abs(std - expected) < 0.08 * expected and abs(float(p.data.mean())) < 0.1 * expected, \
            f"{name}: expected N(0, {expected:.4f}²), got mean {p.data.mean():.5f} std {std:.5f}"
        assert p.data.dtype == np.float32, f"{name}: expected float32, got {p.data.dtype}"


@settings(deadline=None, max_examples=15)
@given(st.integers(0, 4), st.integers(0, 2**32 - 1))
def test_logits_at_t_ignore_the_tokens_after_t(t, seed):
    model = tiny(seed=seed % 100)
    ids = ids_of(B=1, seed=seed)
    changed = ids.copy()
    changed[:, t + 1:] = (changed[:, t + 1:] + 1) % 7
    assert_close(model.forward(changed)[:, :t + 1], model.forward(ids)[:, :t + 1], rtol=1e-12, atol=1e-12,
                 what=f"logits 0..{t} after changing the tokens after {t}")


def test_float32_and_bad_inputs():
    model = tiny(seed=13, dtype=np.float32)
    ids = ids_of(seed=14)
    logits = model.forward(ids)
    assert logits.dtype == np.float32, f"expected float32 logits, got {logits.dtype}"
    ref = tiny(seed=13)
    assert_close(logits, ref.forward(ids), rtol=1e-4, atol=1e-5, what="float32 logits vs float64")
    with pytest.raises(ValueError):
        model.forward(ids_of(T=6, seed=15))                     # longer than block_size
    with pytest.raises(ValueError):
        model.forward(ids[0])                                   # not (B, T)
    with pytest.raises(ValueError):
        G.GPTConfig(vocab_size=7, n_embd=6, n_head=4)          # 6 features do not split into 4 heads


# ------------------------------------------------------------------ PyTorch

def torch_gpt(torch, model):
    """The same model from torch.nn parts: nn.Embedding, a learned position table, pre-LN
    nn.TransformerEncoderLayer blocks (tanh GELU, causal mask), a final nn.LayerNorm, the head tied
    to the embedding. Loaded with our weights (float64)."""
    cfg = model.config

    class TorchGPT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            D = cfg.n_embd
            self.wte = torch.nn.Embedding(cfg.vocab_size, D)
            self.wpe = torch.nn.Parameter(torch.zeros(cfg.block_size, D))
            self.blocks = torch.nn.ModuleList([torch.nn.TransformerEncoderLayer(
                D, cfg.n_head, 4 * D, dropout=0.0, batch_first=True, norm_first=True,
                activation=lambda x: torch.nn.functional.gelu(x, approximate="tanh"))
                for _ in range(cfg.n_layer)])
            self.ln_f = torch.nn.LayerNorm(D)

        def forward(self, idx):
            T = idx.shape[1]
            x = self.wte(idx) + self.wpe[:T]
            mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
            for block in self.blocks:
                x = block(x, src_mask=mask, is_causal=True)
            return self.ln_f(x) @ self.wte.weight.T

    tm = TorchGPT().double()
    state = {"wte.weight": model.wte.W.data, "wpe": model.wpe.data,
             "ln_f.weight": model.ln_f.gamma.data, "ln_f.bias": model.ln_f.beta.data}
    for i, block in enumerate(model.blocks):
        params = dict(block.named_parameters())
        for ours, theirs in torch_names(block).items():
            value = params[ours].data
            state[f"blocks.{i}.{theirs}"] = value.T if value.ndim == 2 else value
    tm.load_state_dict({k: to_torch(np.ascontiguousarray(v)) for k, v in state.items()})
    return tm


def test_logits_loss_and_every_gradient_match_the_same_model_in_torch():
    torch = torch_or_skip()
    model = tiny(seed=16, config=G.GPTConfig(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=8,
                                             activation="gelu_tanh"))
    tm = torch_gpt(torch, model)
    ids, targets = ids_of(B=3, T=6, V=11, seed=17), ids_of(B=3, T=6, V=11, seed=18)
    model.zero_grad()
    logits = model.forward(ids)
    loss, dlogits = cross_entropy(logits, targets)
    model.backward(dlogits)
    tlogits = tm(torch.from_numpy(ids))
    tloss = torch.nn.functional.cross_entropy(tlogits.reshape(-1, 11), torch.from_numpy(targets).reshape(-1))
    tloss.backward()
    assert_close(logits, to_numpy(tlogits), rtol=1e-10, atol=1e-12, what="logits vs torch")
    assert_close(loss, float(tloss.detach()), rtol=1e-12, what="loss vs torch")
    tgrads = {n: to_numpy(p.grad) for n, p in tm.named_parameters()}
    assert_close(model.wte.W.grad, tgrads["wte.weight"], rtol=1e-8, atol=1e-12,
                 what="wte.W.grad (head + lookup) vs torch's tied wte.weight.grad")
    assert_close(model.wpe.grad, tgrads["wpe"], rtol=1e-8, atol=1e-12, what="wpe.grad vs torch")
    assert_close(model.ln_f.gamma.grad, tgrads["ln_f.weight"], rtol=1e-8, atol=1e-12, what="ln_f.gamma.grad")
    assert_close(model.ln_f.beta.grad, tgrads["ln_f.bias"], rtol=1e-8, atol=1e-12, what="ln_f.beta.grad")
    for i, block in enumerate(model.blocks):
        for name, p in block.named_parameters():
            g = tgrads[f"blocks.{i}.{torch_names(block)[name]}"]
            assert_close(p.grad, g.T if g.ndim == 2 else g, rtol=1e-8, atol=1e-12,
                         what=f"blocks.{i}.{name}.grad vs torch")
