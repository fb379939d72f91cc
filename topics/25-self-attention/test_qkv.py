"""Topic 25: the fused QKV projection — one (D, 3D) matmul, split into q, k, v, and its backward."""

import numpy as np
import pytest

from dlfs.attention.qkv import QKVProjection
from dlfs.testing import assert_close, check_layer
from torch_oracle import torch_or_skip


def layer(D=6, bias=True, seed=0, dtype=np.float64):
    proj = QKVProjection(D, bias=bias, rng=seed, dtype=dtype)
    if proj.b is not None:
        proj.b.data[...] = np.random.default_rng(seed + 100).standard_normal(3 * D)   # not the zero default
    return proj


def test_forward_equals_three_separate_projections():
    proj = layer(D=6)
    x = np.random.default_rng(1).standard_normal((2, 5, 6))
    q, k, v = proj.forward(x)
    W, b = proj.W.data, proj.b.data
    for name, got, j in zip("qkv", (q, k, v), range(3)):
        expected = x @ W[:, 6 * j:6 * (j + 1)] + b[6 * j:6 * (j + 1)]
        assert_close(got, expected, rtol=1e-12, atol=1e-12, what=f"{name} = x @ W{name} + b{name} (block {j})")


def test_q_k_v_are_views_of_one_product():
    proj = layer(D=4, bias=False)
    x = np.random.default_rng(2).standard_normal((3, 4))
    q, k, v = proj.forward(x)
    assert_close(np.concatenate([q, k, v], axis=-1), x @ proj.W.data, rtol=1e-12, what="[q | k | v] = x @ W")
    assert q.base is not None and q.base is k.base and k.base is v.base, \
        "q, k, v should be views (slices) of the one (..., 3D) product, not three separate arrays"


@pytest.mark.parametrize("bias", [True, False])
def test_backward_matches_finite_differences(bias):
    """forward returns (q, k, v); backward(dq, dk, dv) returns dx and fills W.grad and b.grad."""
    check_layer(layer(D=4, bias=bias, seed=3), np.random.default_rng(4).standard_normal((2, 3, 4)))


@pytest.mark.parametrize("bias", [True, False])
def test_matches_torch_linear_to_3D_split_in_three(bias):
    check_layer(layer(D=4, bias=bias, seed=5), np.random.default_rng(6).standard_normal((2, 3, 4)),
                torch_layer=lambda torch: torch.nn.Linear(4, 12, bias=bias),
                param_map={"W": ("weight", np.transpose), **({"b": "bias"} if bias else {})},
                torch_forward=lambda m, x: m(x).chunk(3, dim=-1), oracle=torch_or_skip)


def test_backward_accumulates_and_keeps_float32():
    proj = QKVProjection(3, rng=6)
    assert proj.W.data.dtype == np.float32 and proj.W.shape == (3, 9), \
        f"expected W float32 (3, 9), got {proj.W.data.dtype} {proj.W.shape}"
    x = np.random.default_rng(7).standard_normal((4, 3)).astype(np.float32)
    q, k, v = proj.forward(x)
    assert q.dtype == np.float32, f"expected float32 q, got {q.dtype}"
    ones = np.ones((4, 3), dtype=np.float32)
    dx = proj.backward(ones, 2 * ones, 3 * ones)
    assert dx.dtype == np.float32, f"expected float32 dx, got {dx.dtype}"
    assert_close(proj.b.grad, np.repeat([4.0, 8.0, 12.0], 3), rtol=1e-6,
                 what="b.grad = Σ over the batch of [dq | dk | dv]")
    proj.backward(ones, 2 * ones, 3 * ones)
    assert_close(proj.b.grad, np.repeat([8.0, 16.0, 24.0], 3), rtol=1e-6, what="b.grad after two backward calls")


def test_initialisation_and_bad_input():
    proj = QKVProjection(8, rng=0, dtype=np.float64)
    bound = np.sqrt(6.0 / (8 + 24))                      # Xavier-uniform over (3D, D), like torch
    assert np.abs(proj.W.data).max() <= bound and np.abs(proj.W.data).max() > 0.8 * bound, \
        f"W should be U(-{bound:.4f}, {bound:.4f}), got max |W| = {np.abs(proj.W.data).max():.4f}"
    assert_close(proj.b.data, np.zeros(24), atol=0, what="b at initialisation (zeros, like torch's in_proj_bias)")
    q, _, _ = proj.forward(np.ones((1, 8)))
    assert_close(q, np.ones((1, 8)) @ proj.W.data[:, :8], rtol=1e-12, what="q of a ones input")
    with pytest.raises(ValueError):
        proj.forward(np.ones((2, 7)))
