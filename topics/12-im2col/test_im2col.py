"""Topic 12 — im2col and col2im: values (a loop and PyTorch's unfold/fold) and adjointness."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.conv import im2col as ic
from dlfs.testing import assert_close
from torch_oracle import to_numpy, to_torch, torch_or_skip

GEOMETRIES = [
    # (H, W, kh, kw, stride, padding, dilation)
    (4, 4, 2, 2, 1, 0, 1),
    (5, 6, 3, 3, 1, 1, 1),
    (7, 7, 3, 3, 2, 1, 1),
    (6, 7, 2, 3, 1, 0, 2),
    (8, 7, 3, 2, (2, 1), (1, 2), (1, 2)),
    (7, 9, 3, 3, 3, 2, 2),
    (5, 5, 1, 1, 2, 0, 1),
]


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def out_hw(H, W, kh, kw, stride, padding, dilation):
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    return (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1


def im2col_by_loops(x, kh, kw, stride, padding, dilation):
    """cols[n, (c·kh + p)·kw + q, i·W_out + j] = xp[n, c, i·sh + p·dh, j·sw + q·dw]."""
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    N, C, H, W = x.shape
    xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=x.dtype)
    xp[:, :, ph:ph + H, pw:pw + W] = x
    Ho, Wo = out_hw(H, W, kh, kw, stride, padding, dilation)
    cols = np.zeros((N, C * kh * kw, Ho * Wo), dtype=x.dtype)
    for c in range(C):
        for p in range(kh):
            for q in range(kw):
                for i in range(Ho):
                    for j in range(Wo):
                        cols[:, (c * kh + p) * kw + q, i * Wo + j] = xp[:, c, i * sh + p * dh, j * sw + q * dw]
    return cols


def col2im_by_loops(cols, x_shape, kh, kw, stride, padding, dilation):
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    N, C, H, W = x_shape
    Ho, Wo = out_hw(H, W, kh, kw, stride, padding, dilation)
    dxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=cols.dtype)
    for c in range(C):
        for p in range(kh):
            for q in range(kw):
                for i in range(Ho):
                    for j in range(Wo):
                        dxp[:, c, i * sh + p * dh, j * sw + q * dw] += cols[:, (c * kh + p) * kw + q, i * Wo + j]
    return dxp[:, :, ph:ph + H, pw:pw + W]


# ----------------------------------------------------------------- im2col

def test_im2col_hand_computed():
    x = np.arange(9.0).reshape(1, 1, 3, 3)           # [[0 1 2] [3 4 5] [6 7 8]]
    cols = ic.im2col(x, 2, 2)
    # one row per kernel tap (p, q), one column per output position (i, j)
    expected = np.array([[0, 1, 3, 4],               # tap (0, 0)
                         [1, 2, 4, 5],               # tap (0, 1)
                         [3, 4, 6, 7],               # tap (1, 0)
                         [4, 5, 7, 8]], dtype=float)  # tap (1, 1)
    assert_close(cols, expected[None], what="im2col of arange(9) with a 2x2 kernel")


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_im2col_matches_loops(geometry):
    H, W, kh, kw, stride, padding, dilation = geometry
    x = np.random.default_rng(0).standard_normal((2, 3, H, W))
    got = ic.im2col(x, kh, kw, stride, padding, dilation)
    expected = im2col_by_loops(x, kh, kw, stride, padding, dilation)
    assert_close(got, expected, rtol=0, atol=0,
                 what=f"im2col, kernel {(kh, kw)}, stride {stride}, padding {padding}, dilation {dilation}")


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_im2col_matches_torch_unfold(geometry):
    torch = torch_or_skip()
    H, W, kh, kw, stride, padding, dilation = geometry
    x = np.random.default_rng(1).standard_normal((2, 3, H, W))
    got = ic.im2col(x, kh, kw, stride, padding, dilation)
    expected = torch.nn.functional.unfold(to_torch(x), (kh, kw), dilation=dilation, padding=padding, stride=stride)
    assert_close(got, to_numpy(expected), rtol=0, atol=0, what="im2col vs torch.nn.functional.unfold")


def test_im2col_keeps_dtype_and_accepts_non_contiguous_input():
    x = np.random.default_rng(2).standard_normal((2, 5, 6, 3)).astype(np.float32).transpose(0, 3, 1, 2)
    assert not x.flags.c_contiguous
    cols = ic.im2col(x, 3, 3, 1, 1, 1)
    assert cols.dtype == np.float32, f"im2col must keep float32, got {cols.dtype}"
    assert_close(cols, im2col_by_loops(np.ascontiguousarray(x), 3, 3, 1, 1, 1), rtol=0, atol=0,
                 what="im2col of a transposed (non-contiguous) float32 input")
    assert not np.shares_memory(cols, x), "im2col returns a new array (the caller may write to it)"
    ones = ic.im2col(x, 1, 1)                    # 1x1 kernel, stride 1: a reshape alone would be a view
    assert_close(ones, np.ascontiguousarray(x).reshape(2, 3, 30), rtol=0, atol=0, what="im2col with a 1x1 kernel")
    assert not np.shares_memory(ones, x) and ones.flags.writeable, \
        "im2col with a 1x1 kernel must still return a new, writeable array"


# ----------------------------------------------------------------- col2im

def test_col2im_of_ones_counts_the_windows_covering_each_pixel():
    x_shape = (1, 1, 3, 3)
    cols = np.ones((1, 4, 4))                        # 2x2 kernel, 2x2 output positions
    expected = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=float).reshape(x_shape)
    assert_close(ic.col2im(cols, x_shape, 2, 2), expected,
                 what="col2im of ones (overlapping windows must add, not overwrite)")


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_col2im_matches_loops(geometry):
    H, W, kh, kw, stride, padding, dilation = geometry
    x_shape = (2, 3, H, W)
    Ho, Wo = out_hw(H, W, kh, kw, stride, padding, dilation)
    cols = np.random.default_rng(3).standard_normal((2, 3 * kh * kw, Ho * Wo))
    got = ic.col2im(cols, x_shape, kh, kw, stride, padding, dilation)
    expected = col2im_by_loops(cols, x_shape, kh, kw, stride, padding, dilation)
    assert_close(got, expected, rtol=1e-12, atol=1e-12,
                 what=f"col2im, kernel {(kh, kw)}, stride {stride}, padding {padding}, dilation {dilation}")


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_col2im_matches_torch_fold(geometry):
    torch = torch_or_skip()
    H, W, kh, kw, stride, padding, dilation = geometry
    x_shape = (2, 3, H, W)
    Ho, Wo = out_hw(H, W, kh, kw, stride, padding, dilation)
    cols = np.random.default_rng(4).standard_normal((2, 3 * kh * kw, Ho * Wo))
    got = ic.col2im(cols, x_shape, kh, kw, stride, padding, dilation)
    expected = torch.nn.functional.fold(to_torch(cols), (H, W), (kh, kw), dilation=dilation,
                                        padding=padding, stride=stride)
    assert_close(got, to_numpy(expected), rtol=1e-12, atol=1e-12, what="col2im vs torch.nn.functional.fold")


@settings(deadline=None, max_examples=40)
@given(n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 8), w=st.integers(1, 8),
       kh=st.integers(1, 3), kw=st.integers(1, 3), sh=st.integers(1, 3), sw=st.integers(1, 3),
       ph=st.integers(0, 2), pw=st.integers(0, 2), dh=st.integers(1, 2), dw=st.integers(1, 2),
       seed=st.integers(0, 2**16))
def test_col2im_is_the_adjoint_of_im2col(n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, seed):
    """<im2col(x), cols> == <x, col2im(cols)> for every x and cols: col2im is im2col transposed."""
    if h + 2 * ph < dh * (kh - 1) + 1 or w + 2 * pw < dw * (kw - 1) + 1:
        return                                   # no output position
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    geometry = ((sh, sw), (ph, pw), (dh, dw))
    cols_x = ic.im2col(x, kh, kw, *geometry)
    cols = rng.standard_normal(cols_x.shape)
    back = ic.col2im(cols, x.shape, kh, kw, *geometry)
    assert back.shape == x.shape, f"col2im must return x's shape {x.shape}, got {back.shape}"
    lhs, rhs = np.sum(cols_x * cols), np.sum(x * back)
    assert np.isclose(lhs, rhs, rtol=1e-10, atol=1e-10), (
        f"<im2col(x), c> = {lhs!r} but <x, col2im(c)> = {rhs!r} "
        f"(kernel {(kh, kw)}, stride {(sh, sw)}, padding {(ph, pw)}, dilation {(dh, dw)})"
    )
