"""Topic 15 — depthwise (windows + einsum) against the grouped path and PyTorch; pointwise (1x1)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.conv import im2col as ic
from dlfs.conv import modern as mc
from dlfs.testing import assert_close, check_gradients
from torch_oracle import to_numpy, to_torch, torch_or_skip

# A convolution is linear in each of its inputs, so central differences are exact up to rounding
# for any step: a step of 1e-3 (instead of 1e-6) keeps the rounding error far below the tolerance.
DEPTHWISE = [
    # (C, multiplier, H, W, kh, kw, stride, padding, dilation)
    (3, 1, 6, 7, 3, 3, 1, 1, 1),           # MobileNet's 3x3 "same": dx by the flipped depthwise conv
    (4, 2, 7, 7, 3, 3, 2, 1, 1),           # stride 2: dx by col2im
    (2, 3, 8, 6, 3, 3, 1, 2, 2),           # dilated "same", multiplier 3
    (3, 1, 9, 8, 5, 3, (2, 1), (2, 0), (1, 2)),
    (2, 2, 5, 5, 1, 1, 1, 0, 1),           # 1x1 depthwise: a per-channel scale
    (3, 1, 5, 4, 3, 3, 1, 3, 1),           # padding beyond the kernel reach
]


def depthwise_case(case, seed, n=2, dtype=np.float64):
    C, M, H, W, kh, kw, stride, padding, dilation = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, C, H, W)).astype(dtype)
    w = rng.standard_normal((C * M, 1, kh, kw)).astype(dtype)
    b = rng.standard_normal(C * M).astype(dtype)
    return x, w, b, (stride, padding, dilation)


def grouped_depthwise(x, w, b, *g):
    return mc.grouped_conv2d_forward(x, w, b, *g, groups=x.shape[1])


# ----------------------------------------------------------------- depthwise

@pytest.mark.parametrize("case", DEPTHWISE, ids=str)
def test_depthwise_forward_equals_the_grouped_convolution(case):
    x, w, b, g = depthwise_case(case, seed=0)
    expected = grouped_depthwise(x, w, b, *g)
    assert_close(mc.depthwise_conv2d_forward(x, w, b, *g), expected, rtol=1e-10, atol=1e-12,
                 what=f"depthwise forward vs grouped (groups = C), (stride, padding, dilation) = {g}")
    assert_close(mc.depthwise_conv2d_forward(x, w, None, *g), grouped_depthwise(x, w, None, *g),
                 rtol=1e-10, atol=1e-12, what="depthwise forward without bias")


@pytest.mark.parametrize("case", DEPTHWISE, ids=str)
def test_depthwise_backward_equals_the_grouped_backward(case):
    x, w, b, g = depthwise_case(case, seed=1)
    out = grouped_depthwise(x, w, b, *g)
    dout = np.random.default_rng(2).standard_normal(out.shape)
    got = mc.depthwise_conv2d_backward(dout, x, w, *g)
    expected = mc.grouped_conv2d_backward(dout, x, w, *g, groups=x.shape[1])
    for name, a, e in zip(("dx", "dw", "db"), got, expected):
        assert_close(a, e, rtol=1e-10, atol=1e-12, what=f"depthwise {name} vs grouped, {g}")


@pytest.mark.parametrize("case", DEPTHWISE[:4], ids=str)
def test_depthwise_matches_torch(case):
    torch = torch_or_skip()
    x, w, b, (stride, padding, dilation) = depthwise_case(case, seed=3)
    out = mc.depthwise_conv2d_forward(x, w, b, stride, padding, dilation)
    dout = np.random.default_rng(4).standard_normal(out.shape)
    dx, dw, db = mc.depthwise_conv2d_backward(dout, x, w, stride, padding, dilation)
    tx, tw, tb = (to_torch(a, requires_grad=True) for a in (x, w, b))
    tout = torch.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=padding, dilation=dilation,
                                      groups=x.shape[1])
    tout.backward(to_torch(dout))
    for name, a, e in (("forward", out, tout), ("dx", dx, tx.grad), ("dw", dw, tw.grad), ("db", db, tb.grad)):
        assert_close(a, to_numpy(e), rtol=1e-10, atol=1e-12, what=f"depthwise {name} vs torch (groups = C)")


def test_depthwise_output_channel_order_is_channel_major():
    """Output channel c·M + m reads input channel c (PyTorch's order), seen on a one-hot input."""
    C, M = 3, 2
    x = np.zeros((1, C, 3, 3))
    x[0, 1, 1, 1] = 1.0                                    # only channel 1 is non-zero
    w = np.arange(1.0, C * M + 1).reshape(C * M, 1, 1, 1)  # a 1x1 kernel: out[c·M + m] = w[c·M + m] · x[c]
    out = mc.depthwise_conv2d_forward(x, w)
    got = out[0, :, 1, 1]
    assert_close(got, [0, 0, 3, 4, 0, 0], rtol=0, atol=0,
                 what="centre pixel of each output channel (channels 2 and 3 read input channel 1)")


def test_depthwise_gradients_match_finite_differences():
    for case in (DEPTHWISE[0], DEPTHWISE[1], DEPTHWISE[3]):
        x, w, b, g = depthwise_case(case, seed=5, n=1)
        out = mc.depthwise_conv2d_forward(x, w, b, *g)
        dout = np.random.default_rng(6).standard_normal(out.shape)
        dx, dw, db = mc.depthwise_conv2d_backward(dout, x, w, *g)
        check_gradients(lambda: mc.depthwise_conv2d_forward(x, w, b, *g), {"x": x, "w": w, "b": b},
                        {"x": dx, "w": dw, "b": db}, dout=dout, h=1e-3)


def test_depthwise_keeps_float32():
    x, w, b, g = depthwise_case(DEPTHWISE[2], seed=7, dtype=np.float32)
    out = mc.depthwise_conv2d_forward(x, w, b, *g)
    dout = np.random.default_rng(8).standard_normal(out.shape).astype(np.float32)
    grads = mc.depthwise_conv2d_backward(dout, x, w, *g)
    dtypes = (out.dtype,) + tuple(a.dtype for a in grads)
    assert dtypes == (np.float32,) * 4, f"float32 inputs must give float32 results, got {dtypes}"
    x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
    assert_close(out, grouped_depthwise(x64, w64, b64, *g), rtol=1e-4, atol=1e-4, what="float32 depthwise forward")


def test_depthwise_rejects_a_wrong_weight_shape():
    x = np.zeros((1, 4, 5, 5))
    for bad in [(4, 2, 3, 3), (6, 1, 3, 3), (4, 3, 3)]:
        with pytest.raises(ValueError, match="depthwise"):
            mc.depthwise_conv2d_forward(x, np.zeros(bad))
    assert_close(mc.depthwise_conv2d_forward(x + 1, np.ones((8, 1, 3, 3)), padding=1)[0, :, 2, 2], np.full(8, 9.0),
                 rtol=0, atol=1e-12, what="a (C·M, 1, kh, kw) weight with M = 2 is accepted: 3x3 box sum of ones")


@settings(deadline=None, max_examples=25)
@given(c=st.integers(1, 3), m=st.integers(1, 2), n=st.integers(1, 2), h=st.integers(1, 7), w=st.integers(1, 7),
       kh=st.integers(1, 3), kw=st.integers(1, 3), s=st.integers(1, 2), p=st.integers(0, 2),
       d=st.integers(1, 2), seed=st.integers(0, 2**16))
def test_depthwise_equals_grouped_on_random_geometries(c, m, n, h, w, kh, kw, s, p, d, seed):
    if h + 2 * p < d * (kh - 1) + 1 or w + 2 * p < d * (kw - 1) + 1:
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    wt = rng.standard_normal((c * m, 1, kh, kw))
    b = rng.standard_normal(c * m)
    g = (s, p, d)
    out = mc.depthwise_conv2d_forward(x, wt, b, *g)
    assert_close(out, grouped_depthwise(x, wt, b, *g), rtol=1e-10, atol=1e-12,
                 what=f"depthwise forward, kernel {(kh, kw)}, multiplier {m}, {g}")
    dout = rng.standard_normal(out.shape)
    for name, a, e in zip(("dx", "dw", "db"), mc.depthwise_conv2d_backward(dout, x, wt, *g),
                          mc.grouped_conv2d_backward(dout, x, wt, *g, groups=c)):
        assert_close(a, e, rtol=1e-10, atol=1e-12, what=f"depthwise {name}, kernel {(kh, kw)}, multiplier {m}, {g}")


# ----------------------------------------------------------------- pointwise

@pytest.mark.parametrize("stride", [1, 2, (2, 3)], ids=str)
def test_pointwise_is_the_1x1_convolution(stride):
    rng = np.random.default_rng(9)
    x, w, b = rng.standard_normal((2, 4, 7, 8)), rng.standard_normal((5, 4, 1, 1)), rng.standard_normal(5)
    out = mc.pointwise_conv2d_forward(x, w, b, stride)
    assert_close(out, ic.conv2d_forward(x, w, b, stride), rtol=1e-10, atol=1e-12,
                 what=f"pointwise vs Topic 12's conv2d_forward with a 1x1 kernel, stride {stride}")
    dout = rng.standard_normal(out.shape)
    for name, a, e in zip(("dx", "dw", "db"), mc.pointwise_conv2d_backward(dout, x, w, stride),
                          ic.conv2d_backward(dout, x, w, stride)):
        assert_close(a, e, rtol=1e-10, atol=1e-12, what=f"pointwise {name}, stride {stride}")


def test_pointwise_is_a_matrix_product_over_channels():
    rng = np.random.default_rng(10)
    x, w = rng.standard_normal((3, 4, 5, 6)), rng.standard_normal((2, 4, 1, 1))
    expected = np.einsum("oc,nchw->nohw", w[:, :, 0, 0], x)
    assert_close(mc.pointwise_conv2d_forward(x, w), expected, rtol=1e-12, atol=1e-12,
                 what="out[n, o] = Σ_c w[o, c] · x[n, c]")


def _pointwise_case():
    rng = np.random.default_rng(11)
    x, w, b = rng.standard_normal((2, 3, 5, 6)), rng.standard_normal((4, 3, 1, 1)), rng.standard_normal(4)
    out = mc.pointwise_conv2d_forward(x, w, b, 2)
    dout = rng.standard_normal(out.shape)
    return x, w, b, out, dout, mc.pointwise_conv2d_backward(dout, x, w, 2)


def test_pointwise_with_stride_matches_finite_differences():
    x, w, b, _, dout, (dx, dw, db) = _pointwise_case()
    check_gradients(lambda: mc.pointwise_conv2d_forward(x, w, b, 2), {"x": x, "w": w, "b": b},
                    {"x": dx, "w": dw, "b": db}, dout=dout, h=1e-3)


def test_pointwise_matches_torch():
    torch = torch_or_skip()
    x, w, b, out, dout, (dx, dw, db) = _pointwise_case()
    tx, tw, tb = (to_torch(a, requires_grad=True) for a in (x, w, b))
    tout = torch.nn.functional.conv2d(tx, tw, tb, stride=2)
    tout.backward(to_torch(dout))
    for name, a, e in (("forward", out, tout), ("dx", dx, tx.grad), ("dw", dw, tw.grad), ("db", db, tb.grad)):
        assert_close(a, to_numpy(e), rtol=1e-10, atol=1e-12, what=f"pointwise {name} vs torch (stride 2)")


def test_pointwise_keeps_float32():
    rng = np.random.default_rng(12)
    x, w = rng.standard_normal((2, 3, 4, 4)).astype(np.float32), rng.standard_normal((5, 3, 1, 1)).astype(np.float32)
    b = np.zeros(5, dtype=np.float32)
    out = mc.pointwise_conv2d_forward(x, w, b)
    grads = mc.pointwise_conv2d_backward(np.ones_like(out), x, w)
    dtypes = (out.dtype,) + tuple(a.dtype for a in grads)
    assert dtypes == (np.float32,) * 4, f"float32 inputs must give float32 results, got {dtypes}"
    assert_close(out, np.einsum("oc,nchw->nohw", w[:, :, 0, 0].astype(np.float64), x.astype(np.float64)),
                 rtol=1e-5, atol=1e-5, what="float32 pointwise forward")
