"""Topic 11 — the forward pass: hand-computed examples, a scalar-loop definition and PyTorch."""

import numpy as np
import pytest

from dlfs.conv import sliding_window as sw
from dlfs.testing import assert_close
from torch_oracle import to_numpy, to_torch, torch_or_skip


def conv_by_definition(x, w, b, stride, padding, dilation):
    """out[n,o,i,j] = b[o] + Σ w[o,c,p,q] · xp[n, c, i·sh + p·dh, j·sw + q·dw], one scalar at a time."""
    (sh, sw_), (ph, pw), (dh, dw) = (_pair(stride), _pair(padding), _pair(dilation))
    N, C, H, W = x.shape
    O, _, kh, kw = w.shape
    xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw))
    xp[:, :, ph:ph + H, pw:pw + W] = x
    Ho = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    Wo = (W + 2 * pw - dw * (kw - 1) - 1) // sw_ + 1
    out = np.zeros((N, O, Ho, Wo))
    for n in range(N):
        for o in range(O):
            for i in range(Ho):
                for j in range(Wo):
                    total = 0.0 if b is None else b[o]
                    for c in range(C):
                        for p in range(kh):
                            for q in range(kw):
                                total += w[o, c, p, q] * xp[n, c, i * sh + p * dh, j * sw_ + q * dw]
                    out[n, o, i, j] = total
    return out


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


GEOMETRIES = [
    # (H, W, kh, kw, stride, padding, dilation)
    (5, 5, 3, 3, 1, 0, 1),
    (5, 6, 3, 3, 1, 1, 1),
    (7, 7, 3, 3, 2, 1, 1),
    (6, 7, 2, 3, 1, 0, 2),
    (8, 7, 3, 2, (2, 1), (1, 2), (1, 2)),
    (7, 9, 3, 3, 3, 2, 2),
    (4, 4, 1, 1, 2, 1, 1),
]


# ----------------------------------------------------------------- small examples by hand

def test_forward_hand_computed_2x2_kernel_with_bias():
    x = np.arange(9.0).reshape(1, 1, 3, 3)           # [[0 1 2] [3 4 5] [6 7 8]]
    w = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    b = np.array([1.0])
    # top-left: 0·1 + 1·2 + 3·3 + 4·4 = 27; a step right adds 1+2+3+4 = 10, a step down 3·10 = 30
    expected = np.array([[27.0, 37.0], [57.0, 67.0]]).reshape(1, 1, 2, 2) + 1.0
    assert_close(sw.conv2d_forward_naive(x, w, b), expected, what="2x2 kernel on arange(9) (no flip: cross-correlation)")


def test_forward_hand_computed_stride_2_padding_1():
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    w = np.ones((1, 1, 3, 3))
    # padded 5x5 input, 3x3 windows starting at rows/cols 0 and 2: the four 2x2 corners of x
    expected = np.array([[0 + 1 + 3 + 4, 1 + 2 + 4 + 5], [3 + 4 + 6 + 7, 4 + 5 + 7 + 8]], dtype=float)
    assert_close(sw.conv2d_forward_naive(x, w, None, stride=2, padding=1), expected.reshape(1, 1, 2, 2),
                 what="3x3 box filter, stride 2, padding 1 on arange(9)")


def test_forward_hand_computed_dilation_2():
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    w = np.ones((1, 1, 2, 2))
    # taps at (i, j), (i, j+2), (i+2, j), (i+2, j+2): 24 at the top-left, +4 per column, +20 per row
    expected = np.array([[24, 28, 32], [44, 48, 52], [64, 68, 72]], dtype=float).reshape(1, 1, 3, 3)
    assert_close(sw.conv2d_forward_naive(x, w, dilation=2), expected, what="2x2 ones, dilation 2 on arange(25)")


def test_forward_1x1_kernel_mixes_channels_per_pixel():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 5))
    w = rng.standard_normal((4, 3, 1, 1))
    b = rng.standard_normal(4)
    expected = np.einsum("oc,nchw->nohw", w[:, :, 0, 0], x) + b[None, :, None, None]
    assert_close(sw.conv2d_forward_naive(x, w, b), expected, rtol=1e-12,
                 what="a 1x1 convolution is a per-pixel matrix product over channels")


# ----------------------------------------------------------------- general definition

@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_forward_matches_the_scalar_definition(geometry):
    H, W, kh, kw, stride, padding, dilation = geometry
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, H, W))
    w = rng.standard_normal((4, 3, kh, kw))
    b = rng.standard_normal(4)
    got = sw.conv2d_forward_naive(x, w, b, stride, padding, dilation)
    expected = conv_by_definition(x, w, b, stride, padding, dilation)
    assert_close(got, expected, rtol=1e-10, atol=1e-12,
                 what=f"conv2d_forward_naive, stride {stride}, padding {padding}, dilation {dilation}")


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_forward_matches_torch(geometry):
    torch = torch_or_skip()
    H, W, kh, kw, stride, padding, dilation = geometry
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 2, H, W))
    w = rng.standard_normal((5, 2, kh, kw))
    b = rng.standard_normal(5)
    got = sw.conv2d_forward_naive(x, w, b, stride, padding, dilation)
    expected = torch.nn.functional.conv2d(to_torch(x), to_torch(w), to_torch(b), stride=stride,
                                          padding=padding, dilation=dilation)
    assert_close(got, to_numpy(expected), rtol=1e-10, atol=1e-12,
                 what=f"forward vs torch conv2d, stride {stride}, padding {padding}, dilation {dilation}")


def test_forward_keeps_float32_and_works_without_bias():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    out = sw.conv2d_forward_naive(x, w, None, stride=1, padding=1)
    assert out.dtype == np.float32, f"float32 in must give float32 out, got {out.dtype}"
    expected = conv_by_definition(x.astype(np.float64), w.astype(np.float64), None, 1, 1, 1)
    assert_close(out, expected, rtol=1e-4, atol=1e-5, what="float32 forward without bias")
