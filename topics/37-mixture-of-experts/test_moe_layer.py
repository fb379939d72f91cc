"""Topic 37: the MoE layer — forward against a per-token loop, backward (router included) against
finite differences and PyTorch, dropped-token accounting, noise only while training."""

import numpy as np
import pytest

from dlfs.moe.layer import MoELayer
from dlfs.numerics import softmax
from dlfs.testing import assert_close, check_layer
from torch_oracle import torch_or_skip


D, F = 4, 6                                         # small: finite differences stay fast


def layer(k=1, capacity_factor=1.0, balance_coef=0.5, z_coef=0.1, seed=0, **kw):
    m = MoELayer(D, F, 4, k=k, capacity_factor=capacity_factor, balance_coef=balance_coef, z_coef=z_coef,
                 rng=seed, dtype=np.float64, **kw)
    m.router.W.data *= 3.0                          # confident routing: no near-ties
    return m


def x_of(seed=0, shape=(2, 5, D)):
    return np.random.default_rng(seed + 10).standard_normal(shape)


def test_forward_against_a_per_token_loop():
    m = layer(k=2, capacity_factor=None)
    x = x_of()
    y, aux = m.forward(x)
    xs = x.reshape(-1, D)
    probs = softmax(xs @ m.router.W.data)
    expected = np.zeros_like(xs)
    for s in range(xs.shape[0]):
        top = np.argsort(-probs[s])[:2]
        g = probs[s, top] / probs[s, top].sum()
        for j, e in enumerate(top):
            expected[s] += g[j] * m.experts[e].forward(xs[s:s + 1])[0]
    assert_close(y.reshape(-1, D), expected, rtol=1e-10, atol=1e-12, what="MoE output (top-2, no capacity limit)")
    lse = np.log(np.exp(xs @ m.router.W.data).sum(-1))
    f = np.bincount(np.argsort(-probs, axis=1)[:, :2].ravel(), minlength=4) / (xs.shape[0] * 2)
    assert_close(aux, 0.5 * 4 * np.sum(f * probs.mean(0)) + 0.1 * np.mean(lse ** 2), rtol=1e-10,
                 what="aux = 0.5·balance + 0.1·z")


def test_dropped_tokens_get_nothing_and_are_counted():
    m = layer(k=1, capacity_factor=0.5)
    x = x_of(1)
    y, _ = m.forward(x)
    S = 10
    assert m.stats["capacity"] == 2                      # ⌈0.5 · 10 · 1 / 4⌉
    probs = softmax(x.reshape(-1, D) @ m.router.W.data)
    choice = probs.argmax(1)
    kept = np.zeros(S, bool)
    for e in range(4):
        kept[np.nonzero(choice == e)[0][:2]] = True
    assert m.stats["dropped"] == int((~kept).sum()), f"dropped: expected {(~kept).sum()}, got {m.stats['dropped']}"
    assert m.stats["load"].tolist() == [min((choice == e).sum(), 2) for e in range(4)]
    assert np.all(y.reshape(S, D)[~kept] == 0), "a dropped token must get 0 from the layer"
    assert np.all(np.abs(y.reshape(S, D)[kept]).sum(1) > 0)


@pytest.mark.parametrize("k,capacity_factor", [(1, 1.0), (2, 1.0), (2, None), (1, 0.5)])
def test_backward_finite_differences(k, capacity_factor):
    m = layer(k=k, capacity_factor=capacity_factor)
    check_layer(m, x_of(2))
    assert np.abs(m.router.W.grad).max() > 1e-3, "the router must receive a gradient"


def test_router_gradient_without_aux_losses_comes_from_the_gates():
    m = layer(k=1, capacity_factor=None, balance_coef=0.0, z_coef=0.0)
    check_layer(m, x_of(3))
    assert np.abs(m.router.W.grad).max() > 1e-3


def torch_moe(torch, x, m, **p):
    xs = x.reshape(-1, m.d_model)
    logits = xs @ p["router.W"]
    probs = torch.softmax(logits, -1)
    gates, idx = torch.topk(probs, m.k, dim=-1)
    gates = gates / gates.sum(-1, keepdim=True) if m.normalize_gates else gates
    y = torch.zeros_like(xs)
    for e in range(m.num_experts):
        h = torch.nn.functional.gelu(xs @ p[f"experts.{e}.linear1.W"] + p[f"experts.{e}.linear1.b"])
        out = h @ p[f"experts.{e}.linear2.W"] + p[f"experts.{e}.linear2.b"]
        w = (gates * (idx == e)).sum(-1, keepdim=True)
        y = y + w * out
    f = torch.stack([(idx == e).double().mean() for e in range(m.num_experts)]) * 1.0
    balance = m.num_experts * (f * probs.mean(0)).sum()
    z = (torch.logsumexp(logits, -1) ** 2).mean()
    return y.reshape(x.shape), m.balance_coef * balance + m.z_coef * z


@pytest.mark.parametrize("k", [1, 2])
def test_against_torch(k):
    m = layer(k=k, capacity_factor=None, seed=4)
    check_layer(m, x_of(4), torch_fn=lambda torch, x, **p: torch_moe(torch, x, m, **p), oracle=torch_or_skip)


def test_noise_only_while_training_and_dtype():
    m = MoELayer(8, 16, 4, k=1, noise_std=5.0, rng=0)
    x = np.random.default_rng(0).standard_normal((4, 8, 8)).astype(np.float32)
    m.eval()
    y1, aux1 = m.forward(x)
    y2, _ = m.forward(x)
    assert y1.dtype == np.float32 and aux1.dtype == np.float32
    assert np.array_equal(y1, y2), "without training the router is deterministic"
    m.train()
    y3, _ = m.forward(x)
    assert not np.array_equal(y1, y3), "noise of std 5 must change some routing while training"
    assert m.backward(np.ones_like(y3)).dtype == np.float32
