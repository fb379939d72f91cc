"""Topic 12 — conv2d forward and backward as matrix products, against Topic 11 and PyTorch."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs import parallel
from dlfs.conv import im2col as ic
from dlfs.conv import sliding_window as naive
from dlfs.testing import assert_close
from torch_oracle import to_numpy, to_torch, torch_or_skip

GEOMETRIES = [
    # (H, W, kh, kw, stride, padding, dilation)
    (5, 5, 3, 3, 1, 0, 1),
    (6, 5, 3, 3, 1, 1, 1),       # "same" convolution: dx by the flipped-kernel convolution
    (7, 7, 3, 3, 2, 1, 1),       # stride 2: dx by col2im
    (6, 7, 2, 3, 1, 0, 2),
    (8, 7, 3, 2, (2, 1), (1, 2), (1, 2)),
    (7, 9, 3, 3, 3, 2, 2),
    (5, 4, 3, 3, 1, 3, 1),       # padding larger than the kernel reach
    (5, 5, 1, 1, 1, 0, 1),       # 1x1
]


def random_case(geometry, seed, n=3, c_in=3, c_out=4, dtype=np.float64):
    H, W, kh, kw, stride, padding, dilation = geometry
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c_in, H, W)).astype(dtype)
    w = rng.standard_normal((c_out, c_in, kh, kw)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    return x, w, b, (stride, padding, dilation)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_forward_matches_the_sliding_window_version(geometry):
    x, w, b, g = random_case(geometry, seed=0)
    assert_close(ic.conv2d_forward(x, w, b, *g), naive.conv2d_forward_naive(x, w, b, *g),
                 rtol=1e-10, atol=1e-12, what=f"conv2d_forward vs Topic 11 (stride, padding, dilation = {g})")
    assert_close(ic.conv2d_forward(x, w, None, *g), naive.conv2d_forward_naive(x, w, None, *g),
                 rtol=1e-10, atol=1e-12, what=f"conv2d_forward without bias {g}")


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_backward_matches_the_sliding_window_version(geometry):
    x, w, b, g = random_case(geometry, seed=1)
    out = naive.conv2d_forward_naive(x, w, b, *g)
    dout = np.random.default_rng(2).standard_normal(out.shape)
    got = ic.conv2d_backward(dout, x, w, *g)
    expected = naive.conv2d_backward_naive(dout, x, w, *g)
    for name, a, e in zip(("dx", "dw", "db"), got, expected):
        assert_close(a, e, rtol=1e-10, atol=1e-12, what=f"{name} vs Topic 11 (stride, padding, dilation = {g})")


@pytest.mark.parametrize("geometry", GEOMETRIES[:6], ids=str)
def test_forward_and_backward_match_torch(geometry):
    torch = torch_or_skip()
    x, w, b, (stride, padding, dilation) = random_case(geometry, seed=3, n=2, c_in=4, c_out=3)
    out = ic.conv2d_forward(x, w, b, stride, padding, dilation)
    dout = np.random.default_rng(4).standard_normal(out.shape)
    dx, dw, db = ic.conv2d_backward(dout, x, w, stride, padding, dilation)
    tx, tw, tb = (to_torch(a, requires_grad=True) for a in (x, w, b))
    tout = torch.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=padding, dilation=dilation)
    tout.backward(to_torch(dout))
    assert_close(out, to_numpy(tout), rtol=1e-10, atol=1e-12, what="forward vs torch")
    assert_close(dx, to_numpy(tx.grad), rtol=1e-10, atol=1e-12, what="dx vs torch")
    assert_close(dw, to_numpy(tw.grad), rtol=1e-10, atol=1e-12, what="dw vs torch")
    assert_close(db, to_numpy(tb.grad), rtol=1e-10, atol=1e-12, what="db vs torch")


def test_float32_in_float32_out_with_float32_accuracy():
    geometry = (8, 8, 3, 3, 1, 1, 1)
    x, w, b, g = random_case(geometry, seed=5, n=4, c_in=8, c_out=6, dtype=np.float32)
    out = ic.conv2d_forward(x, w, b, *g)
    dout = np.random.default_rng(6).standard_normal(out.shape).astype(np.float32)
    dx, dw, db = ic.conv2d_backward(dout, x, w, *g)
    dtypes = (out.dtype, dx.dtype, dw.dtype, db.dtype)
    assert dtypes == (np.float32,) * 4, f"float32 inputs must give float32 results (no float64 upcast), got {dtypes}"
    x64, w64, b64, d64 = (a.astype(np.float64) for a in (x, w, b, dout))
    assert_close(out, naive.conv2d_forward_naive(x64, w64, b64, *g), rtol=1e-4, atol=1e-4, what="float32 forward")
    for name, a, e in zip(("dx", "dw", "db"), (dx, dw, db), naive.conv2d_backward_naive(d64, x64, w64, *g)):
        assert_close(a, e, rtol=1e-4, atol=1e-3, what=f"float32 {name}")


def test_results_do_not_depend_on_the_chunk_size(monkeypatch):
    """With a tiny chunk budget every sample is its own chunk: the results must not change."""
    for geometry in [(6, 6, 3, 3, 1, 1, 1), (7, 7, 3, 3, 2, 1, 1)]:
        x, w, b, g = random_case(geometry, seed=7, n=5)
        out_ref = naive.conv2d_forward_naive(x, w, b, *g)
        dout = np.random.default_rng(8).standard_normal(out_ref.shape)
        grads_ref = naive.conv2d_backward_naive(dout, x, w, *g)
        monkeypatch.setattr(parallel, "CHUNK_BYTES", 8)
        out = ic.conv2d_forward(x, w, b, *g)
        grads = ic.conv2d_backward(dout, x, w, *g)
        monkeypatch.undo()
        assert_close(out, out_ref, rtol=1e-10, atol=1e-12, what=f"forward, one sample per chunk {g}")
        for name, a, e in zip(("dx", "dw", "db"), grads, grads_ref):
            assert_close(a, e, rtol=1e-10, atol=1e-12, what=f"{name}, one sample per chunk {g}")


def test_non_contiguous_input_and_upstream_gradient():
    x, w, b, g = random_case((6, 5, 3, 3, 1, 1, 1), seed=9)
    xt = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)   # NHWC memory, NCHW shape
    out = ic.conv2d_forward(xt, w, b, *g)
    assert_close(out, naive.conv2d_forward_naive(x, w, b, *g), rtol=1e-10, atol=1e-12,
                 what="forward of a non-contiguous (NHWC-backed) input")
    dout = np.random.default_rng(10).standard_normal(out.shape)
    dout_t = np.ascontiguousarray(dout.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    for name, a, e in zip(("dx", "dw", "db"), ic.conv2d_backward(dout_t, xt, w, *g),
                          naive.conv2d_backward_naive(dout, x, w, *g)):
        assert_close(a, e, rtol=1e-10, atol=1e-12, what=f"{name} with non-contiguous x and dout")


@settings(deadline=None, max_examples=30)
@given(n=st.integers(1, 3), c_in=st.integers(1, 3), c_out=st.integers(1, 3),
       h=st.integers(1, 7), w=st.integers(1, 7), kh=st.integers(1, 3), kw=st.integers(1, 3),
       sh=st.integers(1, 3), sw=st.integers(1, 2), ph=st.integers(0, 3), pw=st.integers(0, 2),
       dh=st.integers(1, 2), dw=st.integers(1, 2), seed=st.integers(0, 2**16))
def test_gemm_conv_equals_sliding_window_conv(n, c_in, c_out, h, w, kh, kw, sh, sw, ph, pw, dh, dw, seed):
    if h + 2 * ph < dh * (kh - 1) + 1 or w + 2 * pw < dw * (kw - 1) + 1:
        return                                   # no output position
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c_in, h, w))
    wt = rng.standard_normal((c_out, c_in, kh, kw))
    b = rng.standard_normal(c_out)
    g = ((sh, sw), (ph, pw), (dh, dw))
    out = ic.conv2d_forward(x, wt, b, *g)
    assert_close(out, naive.conv2d_forward_naive(x, wt, b, *g), rtol=1e-10, atol=1e-12,
                 what=f"forward, kernel {(kh, kw)}, stride/padding/dilation {g}")
    dout = rng.standard_normal(out.shape)
    for name, a, e in zip(("dx", "dw", "db"), ic.conv2d_backward(dout, x, wt, *g),
                          naive.conv2d_backward_naive(dout, x, wt, *g)):
        assert_close(a, e, rtol=1e-10, atol=1e-12, what=f"{name}, kernel {(kh, kw)}, stride/padding/dilation {g}")
