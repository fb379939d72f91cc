"""Topic 11 — the backward pass: finite differences (float64), PyTorch and the adjoint identities."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.conv import sliding_window as sw
from dlfs.testing import assert_close, check_gradients
from torch_oracle import to_numpy, to_torch, torch_or_skip

GEOMETRIES = [
    # (H, W, kh, kw, stride, padding, dilation)
    (4, 5, 3, 3, 1, 0, 1),
    (5, 5, 3, 3, 1, 1, 1),
    (6, 5, 3, 3, 2, 1, 1),
    (6, 7, 2, 3, 1, 0, 2),
    (7, 6, 3, 2, (2, 1), (1, 2), (2, 1)),
    (7, 7, 3, 3, 3, 2, 2),
]


def random_case(geometry, seed, n=2, c_in=2, c_out=3):
    H, W, kh, kw, stride, padding, dilation = geometry
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c_in, H, W))
    w = rng.standard_normal((c_out, c_in, kh, kw))
    b = rng.standard_normal(c_out)
    out = sw.conv2d_forward_naive(x, w, b, stride, padding, dilation)
    dout = rng.standard_normal(out.shape)
    return x, w, b, dout, (stride, padding, dilation)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_backward_matches_finite_differences(geometry):
    x, w, b, dout, (stride, padding, dilation) = random_case(geometry, seed=10)
    dx, dw, db = sw.conv2d_backward_naive(dout, x, w, stride, padding, dilation)
    check_gradients(lambda: sw.conv2d_forward_naive(x, w, b, stride, padding, dilation),
                    {"x": x, "w": w, "b": b}, {"x": dx, "w": dw, "b": db}, dout=dout)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_backward_matches_torch(geometry):
    torch = torch_or_skip()
    x, w, b, dout, (stride, padding, dilation) = random_case(geometry, seed=11, n=3, c_in=3, c_out=2)
    dx, dw, db = sw.conv2d_backward_naive(dout, x, w, stride, padding, dilation)
    tx, tw, tb = (to_torch(a, requires_grad=True) for a in (x, w, b))
    torch.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=padding, dilation=dilation).backward(to_torch(dout))
    what = f"stride {stride}, padding {padding}, dilation {dilation}"
    assert_close(dx, to_numpy(tx.grad), rtol=1e-10, atol=1e-12, what=f"dx vs torch ({what})")
    assert_close(dw, to_numpy(tw.grad), rtol=1e-10, atol=1e-12, what=f"dw vs torch ({what})")
    assert_close(db, to_numpy(tb.grad), rtol=1e-10, atol=1e-12, what=f"db vs torch ({what})")


def test_backward_hand_computed_example():
    # x = arange(9) (3x3), w 2x2, dout all ones (2x2): dw[p, q] is the sum of the 2x2 block of x
    # at offset (p, q); dx counts how often each pixel is seen, weighted by the tap that sees it.
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    w = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    dout = np.ones((1, 1, 2, 2))
    dx, dw, db = sw.conv2d_backward_naive(dout, x, w)
    assert_close(dw, np.array([[0 + 1 + 3 + 4, 1 + 2 + 4 + 5], [3 + 4 + 6 + 7, 4 + 5 + 7 + 8]],
                              dtype=float).reshape(1, 1, 2, 2), what="dw (sum of the x block each tap saw)")
    assert_close(dx, np.array([[1, 3, 2], [4, 10, 6], [3, 7, 4]], dtype=float).reshape(1, 1, 3, 3),
                 what="dx (the full correlation of dout with the flipped kernel)")
    assert_close(db, np.array([4.0]), what="db (sum of dout)")


@settings(deadline=None, max_examples=25)
@given(n=st.integers(1, 2), c_in=st.integers(1, 3), c_out=st.integers(1, 3),
       h=st.integers(1, 7), w=st.integers(1, 7), kh=st.integers(1, 3), kw=st.integers(1, 3),
       stride=st.integers(1, 3), padding=st.integers(0, 2), dilation=st.integers(1, 2),
       seed=st.integers(0, 2**16))
def test_backward_adjoint_identities(n, c_in, c_out, h, w, kh, kw, stride, padding, dilation, seed):
    """conv (without bias) is linear in x and in w, so <dout, conv(x, w)> = <dx, x> = <dw, w>."""
    if (h + 2 * padding < dilation * (kh - 1) + 1) or (w + 2 * padding < dilation * (kw - 1) + 1):
        return                                   # no output: nothing to check
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c_in, h, w))
    wt = rng.standard_normal((c_out, c_in, kh, kw))
    out = sw.conv2d_forward_naive(x, wt, None, stride, padding, dilation)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = sw.conv2d_backward_naive(dout, x, wt, stride, padding, dilation)
    assert dx.shape == x.shape and dw.shape == wt.shape and db.shape == (c_out,), (
        f"shapes: expected dx {x.shape}, dw {wt.shape}, db {(c_out,)}; got {dx.shape}, {dw.shape}, {db.shape}"
    )
    inner = np.sum(dout * out)
    assert np.isclose(np.sum(dx * x), inner, rtol=1e-9, atol=1e-9), "<dx, x> must equal <dout, conv(x, w)>"
    assert np.isclose(np.sum(dw * wt), inner, rtol=1e-9, atol=1e-9), "<dw, w> must equal <dout, conv(x, w)>"
    assert_close(db, dout.sum(axis=(0, 2, 3)), rtol=1e-12, what="db = dout summed over N, H_out, W_out")


def test_backward_keeps_float32():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    dout = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    dx, dw, db = sw.conv2d_backward_naive(dout, x, w, 1, 1, 1)
    assert (dx.dtype, dw.dtype, db.dtype) == (np.float32,) * 3, \
        f"float32 in must give float32 gradients, got {dx.dtype}, {dw.dtype}, {db.dtype}"
    dx64, dw64, db64 = sw.conv2d_backward_naive(dout.astype(float), x.astype(float), w.astype(float), 1, 1, 1)
    assert_close(dx, dx64, rtol=1e-4, atol=1e-5, what="float32 dx")
    assert_close(dw, dw64, rtol=1e-4, atol=1e-5, what="float32 dw")
