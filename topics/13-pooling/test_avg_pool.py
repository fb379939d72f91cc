"""Topic 13 — average and global average pooling: hand-computed cases, zero padding that counts,
overlapping windows, the loop version against the vectorised one, PyTorch, finite differences."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.conv import pooling as pl
from dlfs.testing import assert_close, check_gradients
from torch_oracle import to_numpy, to_torch, torch_or_skip

GEOMETRIES = [
    # (H, W, kernel_size, stride, padding)
    (4, 4, 2, None, 0),
    (5, 5, 2, 2, 0),
    (6, 7, 3, 1, 1),
    (7, 7, 3, 2, 1),
    (8, 6, (3, 2), (2, 1), (1, 0)),
    (5, 6, 4, 1, 2),
    (6, 6, 1, 2, 0),
]

IMPLEMENTATIONS = {
    "naive": (pl.avg_pool2d_forward_naive, pl.avg_pool2d_backward_naive),
    "vectorised": (pl.avg_pool2d_forward, pl.avg_pool2d_backward),
}


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ----------------------------------------------------------------- hand-computed cases

@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=str)
def test_avg_pool_hand_computed_2x2(impl):
    forward, backward = IMPLEMENTATIONS[impl]
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    assert_close(forward(x, 2), np.array([[[[2.5, 4.5], [10.5, 12.5]]]]),
                 what=f"{impl} average pool 2x2 of arange(16)")
    dx = backward(np.array([[[[4.0, 8.0], [12.0, 16.0]]]]), x.shape, 2)
    expected = np.repeat(np.repeat(np.array([[1.0, 2.0], [3.0, 4.0]]), 2, axis=0), 2, axis=1)
    assert_close(dx, expected.reshape(1, 1, 4, 4), what=f"{impl} dx: dout / 4 to every pixel of the window")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=str)
def test_padded_zeros_count_in_the_mean(impl):
    forward, backward = IMPLEMENTATIONS[impl]
    x = np.ones((1, 1, 2, 2))
    # kernel 2, stride 1, padding 1: nine windows over the 4x4 padded input
    expected = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=float).reshape(1, 1, 3, 3) / 4
    assert_close(forward(x, 2, 1, 1), expected,
                 what=f"{impl} average pool of ones with padding 1 (padded zeros count, divisor kh*kw = 4)")
    dx = backward(np.ones((1, 1, 3, 3)), x.shape, 2, 1, 1)
    assert_close(dx, np.ones((1, 1, 2, 2)), what=f"{impl} dx: each pixel is in 4 windows, 1/4 from each")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=str)
def test_overlapping_windows_add_their_gradients(impl):
    _, backward = IMPLEMENTATIONS[impl]
    dx = backward(np.ones((1, 1, 2, 2)), (1, 1, 3, 3), 2, 1)
    expected = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=float).reshape(1, 1, 3, 3) / 4
    assert_close(dx, expected, what=f"{impl} dx of overlapping 2x2 windows, stride 1 (each pixel "
                                    f"receives 1/4 from every window that covers it)")


def test_avg_pool_of_the_whole_map_is_global_average_pooling():
    x = randn(2, 3, 5, 4, seed=1)
    assert_close(pl.avg_pool2d_forward(x, (5, 4)), pl.global_avg_pool(x)[:, :, None, None],
                 rtol=1e-12, atol=1e-12, what="avg pool with the whole map as its window")
    dy = randn(2, 3, seed=2)
    assert_close(pl.avg_pool2d_backward(dy[:, :, None, None], x.shape, (5, 4)),
                 pl.global_avg_pool_backward(dy, x.shape), rtol=1e-12, atol=1e-12,
                 what="its backward vs global_avg_pool_backward")


# ----------------------------------------------------------------- naive vs vectorised, adjoint

@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_vectorised_matches_naive(geometry):
    H, W, k, s, p = geometry
    x = randn(2, 3, H, W, seed=3)
    out = pl.avg_pool2d_forward(x, k, s, p)
    assert_close(out, pl.avg_pool2d_forward_naive(x, k, s, p), rtol=1e-12, atol=1e-12,
                 what=f"avg_pool2d_forward vs the loops, geometry {geometry}")
    dout = randn(*out.shape, seed=4)
    assert_close(pl.avg_pool2d_backward(dout, x.shape, k, s, p),
                 pl.avg_pool2d_backward_naive(dout, x.shape, k, s, p), rtol=1e-12, atol=1e-12,
                 what=f"avg_pool2d_backward vs the loops, geometry {geometry}")


@settings(deadline=None, max_examples=40)
@given(n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9),
       kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
       ph=st.integers(0, 2), pw=st.integers(0, 2), seed=st.integers(0, 2**16))
def test_backward_is_the_adjoint_of_the_forward(n, c, h, w, kh, kw, sh, sw, ph, pw, seed):
    ph, pw = min(ph, kh // 2), min(pw, kw // 2)
    kh, kw = min(kh, h + 2 * ph), min(kw, w + 2 * pw)
    ph, pw = min(ph, kh // 2), min(pw, kw // 2)
    geo = ((kh, kw), (sh, sw), (ph, pw))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    out = pl.avg_pool2d_forward(x, *geo)
    assert_close(out, pl.avg_pool2d_forward_naive(x, *geo), rtol=1e-12, atol=1e-12, what=f"forward, geometry {geo}")
    g = rng.standard_normal(out.shape)
    dx = pl.avg_pool2d_backward(g, x.shape, *geo)
    # average pooling is linear, so its backward is its adjoint: <pool(x), g> = <x, pool^T(g)>
    assert_close(np.vdot(out, g), np.vdot(x, dx), rtol=1e-10, atol=1e-10,
                 what=f"<avg_pool(x), g> vs <x, avg_pool_backward(g)>, geometry {geo}")


# ----------------------------------------------------------------- PyTorch

@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_avg_pool_matches_torch(geometry):
    torch = torch_or_skip()
    H, W, k, s, p = geometry
    x = randn(2, 3, H, W, seed=5)
    tx = to_torch(x, requires_grad=True)
    ty = torch.nn.functional.avg_pool2d(tx, k, stride=s, padding=p)      # count_include_pad=True
    out = pl.avg_pool2d_forward(x, k, s, p)
    dout = randn(*out.shape, seed=6)
    ty.backward(to_torch(dout))
    assert_close(out, to_numpy(ty), rtol=1e-12, atol=1e-12, what=f"forward vs torch avg_pool2d, geometry {geometry}")
    assert_close(pl.avg_pool2d_backward(dout, x.shape, k, s, p), to_numpy(tx.grad), rtol=1e-12, atol=1e-12,
                 what=f"dx vs torch, geometry {geometry}")


def test_global_avg_pool_matches_torch_adaptive_avg_pool():
    torch = torch_or_skip()
    x = randn(3, 4, 5, 6, seed=7)
    tx = to_torch(x, requires_grad=True)
    ty = torch.nn.functional.adaptive_avg_pool2d(tx, 1).flatten(1)
    dy = randn(3, 4, seed=8)
    ty.backward(to_torch(dy))
    assert_close(pl.global_avg_pool(x), to_numpy(ty), rtol=1e-12, atol=1e-12,
                 what="global_avg_pool vs torch adaptive_avg_pool2d(x, 1)")
    assert_close(pl.global_avg_pool_backward(dy, x.shape), to_numpy(tx.grad), rtol=1e-12, atol=1e-12,
                 what="global_avg_pool_backward vs torch")


# ----------------------------------------------------------------- finite differences and dtypes

@pytest.mark.parametrize("geometry", [(5, 5, 2, 2, 0), (5, 6, 3, 1, 1), (7, 6, 3, 2, 1),
                                      (6, 5, (2, 3), (1, 2), (1, 1))], ids=str)
def test_avg_pool_gradients_match_finite_differences(geometry):
    H, W, k, s, p = geometry
    x = randn(2, 2, H, W, seed=9)
    out = pl.avg_pool2d_forward(x, k, s, p)
    dout = randn(*out.shape, seed=10)
    dx = pl.avg_pool2d_backward(dout, x.shape, k, s, p)
    check_gradients(lambda: pl.avg_pool2d_forward(x, k, s, p), {"x": x}, {"x": dx}, dout=dout)


def test_global_avg_pool_values_and_gradients():
    x = np.arange(8.0).reshape(1, 2, 2, 2)
    assert_close(pl.global_avg_pool(x), np.array([[1.5, 5.5]]), what="global_avg_pool of arange(8) as (1, 2, 2, 2)")
    x = randn(2, 3, 4, 5, seed=11)
    dy = randn(2, 3, seed=12)
    dx = pl.global_avg_pool_backward(dy, x.shape)
    assert_close(dx, np.broadcast_to(dy[:, :, None, None] / 20, x.shape), what="global_avg_pool_backward: dy / (H*W)")
    check_gradients(lambda: pl.global_avg_pool(x), {"x": x}, {"x": dx}, dout=dy)


def test_avg_pooling_keeps_float32_and_accepts_non_contiguous_input():
    x = randn(2, 5, 7, 3, seed=13).astype(np.float32).transpose(0, 3, 1, 2)       # (2, 3, 5, 7)
    assert not x.flags.c_contiguous
    out = pl.avg_pool2d_forward(x, 3, 2, 1)
    assert out.dtype == np.float32, f"average pooling must keep float32, got {out.dtype}"
    x64 = np.ascontiguousarray(x).astype(np.float64)
    assert_close(out, pl.avg_pool2d_forward_naive(x64, 3, 2, 1), rtol=1e-5, atol=1e-6,
                 what="float32 avg pool of a transposed input")
    dout = np.ones(out.shape, dtype=np.float32)
    dx = pl.avg_pool2d_backward(dout, x.shape, 3, 2, 1)
    assert dx.dtype == np.float32, f"dx must keep dout's float32, got {dx.dtype}"
    assert_close(dx, pl.avg_pool2d_backward_naive(dout.astype(np.float64), x.shape, 3, 2, 1), rtol=1e-6,
                 what="float32 dx")
    g = pl.global_avg_pool(x)
    assert g.dtype == np.float32, f"global_avg_pool must keep float32, got {g.dtype}"
    assert pl.global_avg_pool_backward(g, x.shape).dtype == np.float32, "global_avg_pool_backward must keep float32"
