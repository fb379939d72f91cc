"""Topic 22: the SGNS loss and its gradients — a case by hand, finite differences in float64,
PyTorch, and no overflow at large scores."""

import math

import numpy as np
import pytest

from dlfs.embeddings import word2vec as w2v
from dlfs.testing import assert_close, check_op
from torch_oracle import torch_or_skip


def randn(*shape, seed=0, scale=1.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


def forward(v, u):
    return w2v.sgns_forward(v, u)[0]


def backward(dloss, v, u):
    return w2v.sgns_backward(dloss, w2v.sgns_forward(v, u)[1])


def torch_sgns(torch, v, u):
    s = torch.einsum("bd,bkd->bk", v, u)
    F = torch.nn.functional
    return -F.logsigmoid(s[:, 0]) - F.logsigmoid(-s[:, 1:]).sum(dim=1)


def softplus(x):
    return math.log1p(math.exp(x))


def test_one_pair_by_hand():
    v = np.array([[1.0, 2.0]])
    u = np.array([[[0.5, -0.5], [1.0, 1.0], [-2.0, 0.0]]])      # context, then two noise words
    s = [-0.5, 3.0, -2.0]                                     # u · v
    loss, cache = w2v.sgns_forward(v, u)
    expected = softplus(0.5) + softplus(3.0) + softplus(-2.0)   # −log σ(s₀) − Σ log σ(−s_k)
    assert_close(loss, np.array([expected]), rtol=1e-12, what="loss of one pair")
    sig = [1 / (1 + math.exp(-x)) for x in s]
    g = np.array([sig[0] - 1, sig[1], sig[2]])                 # ∂loss/∂s
    dv, du = w2v.sgns_backward(np.array([1.0]), cache)
    assert_close(dv, (g @ u[0])[None], rtol=1e-12, what="dv = Σ_k g_k u_k")
    assert_close(du, (g[:, None] * v[0])[None], rtol=1e-12, what="du_k = g_k v")
    dv2, du2 = w2v.sgns_backward(np.array([2.5]), cache)
    assert_close(dv2, 2.5 * dv, rtol=1e-12, what="dv scales with dloss")
    assert_close(du2, 2.5 * du, rtol=1e-12, what="du scales with dloss")


@pytest.mark.parametrize("B, K, d", [(1, 1, 3), (4, 5, 6), (7, 2, 1)])
def test_gradients_match_finite_differences(B, K, d):
    check_op(forward, backward, (randn(B, d, seed=B, scale=0.5), randn(B, 1 + K, d, seed=K + 10, scale=0.5)),
             input_names=("v", "u"), what=f"SGNS loss, B={B} K={K} d={d}")


def test_gradients_match_pytorch():
    check_op(forward, backward, (randn(5, 4, seed=1), randn(5, 4, 4, seed=2)), input_names=("v", "u"),
             torch_fn=torch_sgns, oracle=torch_or_skip, rtol=1e-9, atol=1e-12, what="SGNS loss vs PyTorch")


def test_large_scores_neither_overflow_nor_lose_the_loss():
    # scores ±1000 in float64 and ±100 in float32: exp overflows in a naive log(1 + exp(x))
    for dtype, big in ((np.float64, 1000.0), (np.float32, 100.0)):
        v = np.array([[1.0], [1.0]], dtype=dtype)
        u = np.array([[[-big], [big]], [[big], [-big]]], dtype=dtype)
        loss, cache = w2v.sgns_forward(v, u)
        assert loss.dtype == dtype, f"the loss keeps {dtype.__name__}, got {loss.dtype}"
        assert_close(loss, np.array([2 * big, 0.0]), rtol=1e-6, atol=1e-6,
                     what=f"loss at scores ±{big} ({dtype.__name__}): wrong context and noise, then right")
        dv, du = w2v.sgns_backward(np.ones(2, dtype=dtype), cache)
        assert np.isfinite(dv).all() and np.isfinite(du).all(), "gradients must stay finite"
        assert_close(dv, np.array([[2 * big], [0.0]]), rtol=1e-6, atol=1e-6, what=f"dv at scores ±{big}")
        assert dv.dtype == dtype and du.dtype == dtype


def test_the_loss_is_lowest_when_the_context_agrees_and_the_noise_disagrees():
    v = randn(1, 8, seed=3)
    good = np.stack([v[0], -v[0], -v[0]])[None]
    bad = np.stack([-v[0], v[0], v[0]])[None]
    lo, hi = forward(v, good)[0], forward(v, bad)[0]
    assert lo < 0.1 < 10 < hi, f"loss with an agreeing context {lo:.3f}, with a disagreeing one {hi:.3f}"
