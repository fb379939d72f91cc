"""Topic 38: the linear recurrence, its associative operator, the parallel (Hillis–Steele) scan
against the loop, the reverse-scan backward, and the selective scan (values, finite differences,
PyTorch)."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dlfs.ssm import scan as sc
from dlfs.testing import assert_close, check_op
from torch_oracle import torch_or_skip


def pairs(shape, seed=0, h0=True):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.3, 1.1, shape)
    b = rng.standard_normal(shape)
    return a, b, (rng.standard_normal((shape[0],) + shape[2:]) if h0 else None)


def test_combine_is_composition_of_affine_maps():
    rng = np.random.default_rng(0)
    a1, b1, a2, b2, h = rng.standard_normal((5, 4))
    a, b = sc.scan_combine((a1, b1), (a2, b2))
    assert_close(a * h + b, a2 * (a1 * h + b1) + b2, rtol=1e-12, what="(a₁,b₁)∘(a₂,b₂) applied to h")


@settings(deadline=None, max_examples=25)
@given(st.lists(st.tuples(st.floats(-2, 2), st.floats(-2, 2)), min_size=3, max_size=3))
def test_combine_is_associative(ps):
    (a1, b1), (a2, b2), (a3, b3) = [(np.float64(a), np.float64(b)) for a, b in ps]
    left = sc.scan_combine(sc.scan_combine((a1, b1), (a2, b2)), (a3, b3))
    right = sc.scan_combine((a1, b1), sc.scan_combine((a2, b2), (a3, b3)))
    assert_close(np.array(left), np.array(right), rtol=1e-12, atol=1e-12, what="(p₁∘p₂)∘p₃ vs p₁∘(p₂∘p₃)")


def test_loop_against_the_closed_form():
    a, b, h0 = pairs((2, 5, 3))
    h = sc.linear_recurrence(a, b, h0)
    for t in range(5):
        expected = np.prod(a[:, :t + 1], axis=1) * h0
        for s in range(t + 1):
            expected = expected + np.prod(a[:, s + 1:t + 1], axis=1) * b[:, s]
        assert_close(h[:, t], expected, rtol=1e-12, what=f"h_{t} = Π a·h0 + Σ_s Π_(s<r≤t) a_r · b_s")


@settings(deadline=None, max_examples=30)
@given(st.integers(1, 70), st.booleans(), st.integers(0, 10_000))
def test_parallel_scan_equals_the_loop(L, with_h0, seed):
    a, b, h0 = pairs((2, L, 3, 2), seed, with_h0)
    assert_close(sc.parallel_linear_recurrence(a, b, h0), sc.linear_recurrence(a, b, h0),
                 rtol=1e-12, atol=1e-13, what=f"parallel scan vs loop (L={L}, h0={with_h0})")


def test_parallel_scan_does_not_modify_its_inputs():
    a, b, h0 = pairs((1, 9, 2))
    a0, b0 = a.copy(), b.copy()
    h = sc.parallel_linear_recurrence(a, b, h0)
    assert_close(h[:, -1], sc.linear_recurrence(a, b, h0)[:, -1], rtol=1e-12, what="last state")
    assert np.array_equal(a, a0) and np.array_equal(b, b0), "the scan must not change a or b"


@pytest.mark.parametrize("parallel", [True, False])
def test_recurrence_backward_finite_differences(parallel):
    a, b, h0 = pairs((2, 9, 3), 3)

    def backward(dh, a, b, h0):
        h = sc.linear_recurrence(a, b, h0)
        return sc.linear_recurrence_backward(dh, a, h, h0, parallel=parallel)

    check_op(sc.linear_recurrence, backward, (a, b, h0), input_names=("a", "b", "h0"))


def scan_inputs(seed=0, Bt=2, L=6, Di=3, N=4):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((Bt, L, Di)), rng.uniform(0.1, 1.0, (Bt, L, Di)),
            -rng.uniform(0.3, 2.0, (Di, N)), rng.standard_normal((Bt, L, N)),
            rng.standard_normal((Bt, L, N)), rng.standard_normal(Di))


def test_selective_scan_against_its_definition():
    x, delta, A, B, C, D = scan_inputs()
    Bt, L, Di = x.shape
    y, cache = sc.selective_scan(x, delta, A, B, C, D)
    expected = np.zeros_like(x)
    for b in range(Bt):
        for d in range(Di):
            h = np.zeros(A.shape[1])
            for t in range(L):
                h = np.exp(delta[b, t, d] * A[d]) * h + delta[b, t, d] * B[b, t] * x[b, t, d]
                expected[b, t, d] = C[b, t] @ h + D[d] * x[b, t, d]
    assert_close(y, expected, rtol=1e-12, atol=1e-13, what="selective scan vs the per-channel loop")
    y_loop, _ = sc.selective_scan(x, delta, A, B, C, D, parallel=False)
    assert_close(y_loop, y, rtol=1e-12, atol=1e-13, what="parallel=False vs parallel=True")
    assert cache["h"].shape == (Bt, L, Di, A.shape[1])


@pytest.mark.parametrize("parallel", [True, False])
def test_selective_scan_backward_finite_differences(parallel):
    x, delta, A, B, C, D = scan_inputs(1)

    def fwd(x, delta, A, B, C, D):
        return sc.selective_scan(x, delta, A, B, C, D, parallel=parallel)[0]

    def bwd(dy, x, delta, A, B, C, D):
        _, cache = sc.selective_scan(x, delta, A, B, C, D, parallel=parallel)
        return sc.selective_scan_backward(dy, x, delta, A, B, C, D, cache, parallel=parallel)

    check_op(fwd, bwd, (x, delta, A, B, C, D), input_names=("x", "delta", "A", "B", "C", "D"))


def test_selective_scan_without_skip():
    x, delta, A, B, C, _ = scan_inputs(2)
    y, cache = sc.selective_scan(x, delta, A, B, C, None)
    assert_close(y, np.einsum("bldn,bln->bld", cache["h"], C), rtol=1e-12, what="y = C·h without D")
    grads = sc.selective_scan_backward(np.ones_like(y), x, delta, A, B, C, None, cache)
    assert grads[-1] is None and grads[0].shape == x.shape


def torch_selective_scan(torch, x, delta, A, B, C, D):
    h = torch.zeros(x.shape[0], x.shape[2], A.shape[1], dtype=x.dtype)
    ys = []
    for t in range(x.shape[1]):
        h = torch.exp(delta[:, t, :, None] * A) * h + (delta[:, t] * x[:, t])[..., None] * B[:, t, None, :]
        ys.append((h * C[:, t, None, :]).sum(-1) + D * x[:, t])
    return torch.stack(ys, 1)


def test_selective_scan_against_torch():
    x, delta, A, B, C, D = scan_inputs(3)

    def bwd(dy, x, delta, A, B, C, D):
        _, cache = sc.selective_scan(x, delta, A, B, C, D)
        return sc.selective_scan_backward(dy, x, delta, A, B, C, D, cache)

    check_op(lambda *a: sc.selective_scan(*a)[0], bwd, (x, delta, A, B, C, D),
             torch_fn=torch_selective_scan, oracle=torch_or_skip)
