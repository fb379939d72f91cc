"""Topic 37: top-k gates, their backward, the Switch load-balancing loss and the router z-loss —
values against formulas, finite differences (away from ties) and PyTorch."""

import numpy as np
import pytest

from dlfs.moe import router as rt
from dlfs.numerics import softmax
from dlfs.testing import assert_close, check_op
from torch_oracle import torch_or_skip


def probs_of(S=6, E=5, seed=0):
    """Router probabilities whose entries are well apart (no ties within 1e-3)."""
    rng = np.random.default_rng(seed)
    logits = np.stack([rng.permutation(E) * 0.7 + rng.uniform(0, 0.3, E) for _ in range(S)])
    return softmax(logits)


def test_top_k_values():
    p = np.array([[0.1, 0.5, 0.15, 0.25], [0.4, 0.05, 0.3, 0.25]])
    idx, gates = rt.top_k_gates(p, 2)
    assert idx.tolist() == [[1, 3], [0, 2]], f"expected experts [[1, 3], [0, 2]], got {idx.tolist()}"
    assert_close(gates, [[0.5, 0.25], [0.4, 0.3]], what="raw top-2 gates")
    _, norm = rt.top_k_gates(p, 2, normalize=True)
    assert_close(norm, [[0.5 / 0.75, 0.25 / 0.75], [0.4 / 0.7, 0.3 / 0.7]], what="normalised top-2 gates")
    idx1, g1 = rt.top_k_gates(p, 1)
    assert idx1.tolist() == [[1], [0]] and np.allclose(g1, [[0.5], [0.4]])
    with pytest.raises(ValueError, match="k must be"):
        rt.top_k_gates(p, 5)


@pytest.mark.parametrize("normalize", [False, True])
def test_top_k_backward_finite_differences(normalize):
    p = probs_of()
    idx, _ = rt.top_k_gates(p, 2)
    check_op(lambda p: rt.top_k_gates(p, 2, normalize)[1],
             lambda dg, p: rt.top_k_gates_backward(dg, p, idx, normalize), p)


def test_load_balancing_loss_values():
    E, S = 4, 8
    uniform = np.full((S, E), 1 / E)
    idx = np.arange(S)[:, None] % E
    loss, f = rt.load_balancing_loss(uniform, idx)
    assert_close(loss, 1.0, what="balanced routing: loss = 1")
    assert_close(f, np.full(E, 0.25), what="f for balanced routing")
    collapsed = np.zeros((S, E)); collapsed[:, 2] = 1
    loss, f = rt.load_balancing_loss(collapsed, np.full((S, 1), 2))
    assert_close(loss, float(E), what="every token to one expert with probability 1: loss = E")
    p = probs_of(S=7, E=5, seed=3)
    idx, _ = rt.top_k_gates(p, 2)
    loss, f = rt.load_balancing_loss(p, idx)
    f_expected = np.array([(idx == i).sum() for i in range(5)]) / idx.size
    assert_close(f, f_expected, what="f: share of the S·k assignments")
    assert_close(loss, 5 * np.sum(f_expected * p.mean(0)), rtol=1e-12, what="E · Σ f·P")


def test_load_balancing_backward_finite_differences():
    p = probs_of(seed=1)
    idx, _ = rt.top_k_gates(p, 2)
    _, f = rt.load_balancing_loss(p, idx)
    check_op(lambda p, idx: np.array(rt.load_balancing_loss(p, idx)[0]),
             lambda d, p, idx: rt.load_balancing_loss_backward(float(d), p, f), (p, idx))


def test_z_loss_values_and_finite_differences():
    logits = np.random.default_rng(0).standard_normal((6, 4)) * 3
    lse = np.log(np.exp(logits).sum(-1))
    assert_close(rt.router_z_loss(logits), np.mean(lse ** 2), rtol=1e-12, what="mean logsumexp²")
    big = np.array([[1000.0, 999.0]])
    assert_close(rt.router_z_loss(big), (1000 + np.log1p(np.exp(-1.0))) ** 2, rtol=1e-12,
                 what="z-loss of large logits (no overflow)")
    check_op(lambda l: np.array(rt.router_z_loss(l)), lambda d, l: rt.router_z_loss_backward(float(d), l), logits)


def test_z_loss_against_torch():
    logits = np.random.default_rng(1).standard_normal((5, 3)) * 2
    check_op(lambda l: np.array(rt.router_z_loss(l)), lambda d, l: rt.router_z_loss_backward(float(d), l), logits,
             torch_fn=lambda torch, l: (torch.logsumexp(l, -1) ** 2).mean(), oracle=torch_or_skip)
