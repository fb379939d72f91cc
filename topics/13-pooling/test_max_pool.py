"""Topic 13 — max pooling: output sizes, hand-computed cases, overlapping windows, ties,
the loop version against the vectorised one, PyTorch, and finite differences."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.conv import pooling as pl
from dlfs.testing import assert_close, check_gradients
from torch_oracle import to_numpy, to_torch, torch_or_skip

GEOMETRIES = [
    # (H, W, kernel_size, stride, padding)
    (4, 4, 2, None, 0),                   # the classic 2x2 window, stride = kernel
    (5, 5, 2, 2, 0),                      # odd size: the last row and column are never read
    (6, 7, 3, 1, 1),                      # overlapping, output size = input size
    (7, 7, 3, 2, 1),                      # overlapping (kernel > stride), ResNet-stem style
    (8, 6, (3, 2), (2, 1), (1, 0)),       # different on each axis
    (5, 6, 4, 1, 2),                      # padding = kernel / 2, the largest allowed
    (6, 6, 1, 2, 0),                      # a 1x1 window: plain subsampling
]

IMPLEMENTATIONS = {
    "naive": (pl.max_pool2d_forward_naive, pl.max_pool2d_backward_naive),
    "vectorised": (pl.max_pool2d_forward, pl.max_pool2d_backward),
}


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def distinct(shape, seed=0):
    """float64 values with gaps of at least 1/size: the maximum of every window is unique."""
    n = int(np.prod(shape))
    return np.random.default_rng(seed).permutation(n).reshape(shape) / n - 0.5


def torch_indices(arg, x_shape, kernel_size, stride, padding):
    """Our window offsets p·kw + q -> PyTorch's return_indices (flat positions in H·W)."""
    (kh, kw), (ph, pw) = _pair(kernel_size), _pair(padding)
    sh, sw = (kh, kw) if stride is None else _pair(stride)
    H_out, W_out = arg.shape[-2:]
    i = np.arange(H_out)[:, None]
    j = np.arange(W_out)[None, :]
    rows = i * sh - ph + arg // kw
    cols = j * sw - pw + arg % kw
    return rows * x_shape[-1] + cols


# ----------------------------------------------------------------- output size

@pytest.mark.parametrize("args, expected", [
    ((28, 2), 14), ((28, 2, 2, 0), 14), ((5, 2), 2), ((7, 3, 2, 1), 4), ((6, 3, 1, 1), 6),
    ((32, 3, 2, 1), 16), ((5, 4, 1, 2), 6), ((1, 1), 1), ((9, 3, None, 1), 3),
], ids=str)
def test_pool_output_size(args, expected):
    got = pl.pool_output_size(*args)
    assert got == expected, f"pool_output_size{args}: expected {expected}, got {got}"


@pytest.mark.parametrize("args, words", [
    ((0, 2), ["size", "0"]),
    ((5, 0), ["kernel", "0"]),
    ((5, 2, 0), ["stride", "0"]),
    ((5, 3, 1, -1), ["padding", "-1"]),
    ((8, 3, 1, 2), ["padding", "half", "2", "3"]),
    ((8, 2, 2, 2), ["padding", "half"]),
    ((3, 5), ["5", "3"]),
    ((3, 6, 1, 1), ["6", "5"]),
], ids=str)
def test_pool_output_size_errors_name_the_problem(args, words):
    with pytest.raises(ValueError) as info:
        pl.pool_output_size(*args)
    message = str(info.value)
    missing = [w for w in words if w not in message]
    assert not missing, f"pool_output_size{args}: the error message should mention {missing}, got: {message!r}"


def test_bad_geometry_is_refused_by_both_versions():
    x = distinct((1, 1, 4, 4))
    for forward, _ in IMPLEMENTATIONS.values():
        with pytest.raises(ValueError, match="half"):
            forward(x, 3, 1, 2)
        with pytest.raises(ValueError, match="larger"):
            forward(x, 5)
    assert_close(pl.max_pool2d_forward(x, 4)[0], x.max(axis=(2, 3), keepdims=True),
                 what="a window as large as the input")


# ----------------------------------------------------------------- hand-computed cases

X_HAND = np.array([[1, 2, 5, 0],
                   [3, 4, 1, 1],
                   [0, 9, 2, 8],
                   [7, 6, 3, 8]], dtype=float).reshape(1, 1, 4, 4)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=str)
def test_max_pool_hand_computed_2x2(impl):
    forward, backward = IMPLEMENTATIONS[impl]
    out, arg = forward(X_HAND, 2)
    assert_close(out, np.array([[[[4, 5], [9, 8]]]], dtype=float), what=f"{impl} max pool 2x2 of the 4x4 example")
    assert np.issubdtype(np.asarray(arg).dtype, np.integer), f"arg must be integer offsets, got {arg.dtype}"
    # offsets p·kw + q inside each window; window (1, 1) = [[2, 8], [3, 8]] ties: the first 8 wins
    assert_close(arg, np.array([[[[3, 0], [1, 1]]]]), what=f"{impl} argmax offsets (first maximum on ties)")
    dx = backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), arg, X_HAND.shape, 2)
    expected = np.zeros((1, 1, 4, 4))
    expected[0, 0, 1, 1], expected[0, 0, 0, 2], expected[0, 0, 2, 1], expected[0, 0, 2, 3] = 1, 2, 3, 4
    assert_close(dx, expected, what=f"{impl} dx: each gradient goes to its window's (first) maximum")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=str)
def test_overlapping_windows_add_their_gradients(impl):
    forward, backward = IMPLEMENTATIONS[impl]
    x = np.array([[1, 2, 3],
                  [4, 9, 5],
                  [6, 7, 8]], dtype=float).reshape(1, 1, 3, 3)
    out, arg = forward(x, 2, 1)                   # four 2x2 windows, all containing the 9
    assert_close(out, np.full((1, 1, 2, 2), 9.0), what=f"{impl} max pool 2x2, stride 1")
    dx = backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), arg, x.shape, 2, 1)
    expected = np.zeros((1, 1, 3, 3))
    expected[0, 0, 1, 1] = 1 + 2 + 3 + 4
    assert_close(dx, expected, what=f"{impl} dx: the centre is the maximum of four windows, its gradient "
                                    f"is the sum 1+2+3+4 (assigning instead of adding keeps only one)")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=str)
def test_padding_never_wins(impl):
    forward, backward = IMPLEMENTATIONS[impl]
    x = -1.0 - distinct((1, 2, 3, 3), seed=1) - 1.0   # all negative: zero padding would win
    out, arg = forward(x, 3, 1, 1)
    xp = np.full((1, 2, 5, 5), -np.inf)
    xp[:, :, 1:4, 1:4] = x
    expected = np.array([[[[xp[0, c, i:i + 3, j:j + 3].max() for j in range(3)] for i in range(3)]
                          for c in range(2)]])
    assert_close(out, expected, what=f"{impl} 3x3 'same' max pool of negative values (pad with -inf)")
    dout = np.ones(out.shape)
    dx = backward(dout, arg, x.shape, 3, 1, 1)
    assert_close(dx.sum(), dout.sum(), what=f"{impl} total gradient (none may be lost in the padding)")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=str)
def test_ties_send_the_gradient_to_the_first_maximum(impl):
    forward, backward = IMPLEMENTATIONS[impl]
    x = np.ones((1, 1, 3, 4))
    out, arg = forward(x, 2, 1)
    assert_close(arg, np.zeros((1, 1, 2, 3), dtype=np.int64), what=f"{impl} argmax of constant windows")
    dx = backward(np.ones(out.shape), arg, x.shape, 2, 1)
    expected = np.zeros((1, 1, 3, 4))
    expected[0, 0, :2, :3] = 1                    # each window's top-left pixel
    assert_close(dx, expected, what=f"{impl} dx of a constant input: the first maximum of each window")


def test_stride_defaults_to_the_kernel_size():
    x = distinct((2, 3, 6, 9), seed=2)
    out, arg = pl.max_pool2d_forward(x, (2, 3))
    expected = x.reshape(2, 3, 3, 2, 3, 3).max(axis=(3, 5))
    assert_close(out, expected, what="max pool with kernel (2, 3) and the default stride (2, 3)")
    dx = pl.max_pool2d_backward(np.ones(out.shape), arg, x.shape, (2, 3))
    assert_close(dx, (x == np.repeat(np.repeat(expected, 2, axis=2), 3, axis=3)).astype(float),
                 what="dx of non-overlapping windows: a one at each window's maximum")


# ----------------------------------------------------------------- naive vs vectorised

@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_vectorised_matches_naive(geometry):
    H, W, k, s, p = geometry
    rng = np.random.default_rng(3)
    x = rng.integers(0, 4, size=(2, 3, H, W)).astype(float)     # many ties on purpose
    out, arg = pl.max_pool2d_forward(x, k, s, p)
    out_n, arg_n = pl.max_pool2d_forward_naive(x, k, s, p)
    assert_close(out, out_n, rtol=0, atol=0, what=f"max_pool2d_forward vs the loops, geometry {geometry}")
    assert_close(arg, arg_n, what=f"argmax offsets vs the loops, geometry {geometry}")
    dout = rng.standard_normal(out.shape)
    assert_close(pl.max_pool2d_backward(dout, arg, x.shape, k, s, p),
                 pl.max_pool2d_backward_naive(dout, arg, x.shape, k, s, p),
                 rtol=1e-12, atol=1e-12, what=f"max_pool2d_backward vs the loops, geometry {geometry}")


@settings(deadline=None, max_examples=40)
@given(n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9),
       kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
       ph=st.integers(0, 2), pw=st.integers(0, 2), ties=st.booleans(), seed=st.integers(0, 2**16))
def test_vectorised_matches_naive_on_random_geometries(n, c, h, w, kh, kw, sh, sw, ph, pw, ties, seed):
    ph, pw = min(ph, kh // 2), min(pw, kw // 2)
    kh, kw = min(kh, h + 2 * ph), min(kw, w + 2 * pw)
    ph, pw = min(ph, kh // 2), min(pw, kw // 2)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, size=(n, c, h, w)).astype(float) if ties else rng.standard_normal((n, c, h, w))
    geo = ((kh, kw), (sh, sw), (ph, pw))
    out, arg = pl.max_pool2d_forward(x, *geo)
    out_n, arg_n = pl.max_pool2d_forward_naive(x, *geo)
    assert_close(out, out_n, rtol=0, atol=0, what=f"forward, geometry {geo}")
    assert_close(arg, arg_n, what=f"argmax, geometry {geo}")
    dout = rng.standard_normal(out.shape)
    dx = pl.max_pool2d_backward(dout, arg, x.shape, *geo)
    assert_close(dx, pl.max_pool2d_backward_naive(dout, arg, x.shape, *geo), rtol=1e-12, atol=1e-12,
                 what=f"backward, geometry {geo}")
    # every window sends all of its gradient to one real pixel: nothing is lost or created
    assert_close(dx.sum(), dout.sum(), rtol=1e-10, atol=1e-10, what=f"sum of dx vs sum of dout, geometry {geo}")


# ----------------------------------------------------------------- PyTorch

@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_max_pool_matches_torch(geometry):
    torch = torch_or_skip()
    H, W, k, s, p = geometry
    rng = np.random.default_rng(4)
    x = rng.integers(0, 4, size=(2, 3, H, W)).astype(float)     # ties: torch also picks the first maximum
    out, arg = pl.max_pool2d_forward(x, k, s, p)
    tx = to_torch(x, requires_grad=True)
    ty, t_idx = torch.nn.functional.max_pool2d(tx, k, stride=s, padding=p, return_indices=True)
    dout = rng.standard_normal(out.shape)
    ty.backward(to_torch(dout))
    assert_close(out, to_numpy(ty), rtol=0, atol=0, what=f"forward vs torch max_pool2d, geometry {geometry}")
    assert_close(torch_indices(np.asarray(arg), x.shape, k, s, p), to_numpy(t_idx),
                 what=f"the chosen maximum vs torch's return_indices, geometry {geometry}")
    dx = pl.max_pool2d_backward(dout, arg, x.shape, k, s, p)
    assert_close(dx, to_numpy(tx.grad), rtol=1e-12, atol=1e-12, what=f"dx vs torch, geometry {geometry}")


# ----------------------------------------------------------------- finite differences and dtypes

@pytest.mark.parametrize("geometry", [(5, 5, 2, 2, 0), (5, 6, 3, 1, 1), (7, 6, 3, 2, 1),
                                      (6, 5, (2, 3), (1, 2), (1, 1))], ids=str)
def test_max_pool_gradients_match_finite_differences(geometry):
    H, W, k, s, p = geometry
    x = distinct((2, 2, H, W), seed=5)
    out, arg = pl.max_pool2d_forward(x, k, s, p)
    dout = np.random.default_rng(6).standard_normal(out.shape)
    dx = pl.max_pool2d_backward(dout, arg, x.shape, k, s, p)
    check_gradients(lambda: pl.max_pool2d_forward(x, k, s, p)[0], {"x": x}, {"x": dx}, dout=dout)


def test_max_pool_keeps_float32_and_accepts_non_contiguous_input():
    x = distinct((2, 5, 7, 3), seed=7).astype(np.float32).transpose(0, 3, 1, 2)     # (2, 3, 5, 7)
    assert not x.flags.c_contiguous
    out, arg = pl.max_pool2d_forward(x, 3, 2, 1)
    assert out.dtype == np.float32, f"max pooling must keep float32, got {out.dtype}"
    out64, arg64 = pl.max_pool2d_forward_naive(np.ascontiguousarray(x).astype(np.float64), 3, 2, 1)
    assert_close(out, out64, rtol=0, atol=0, what="float32 max pool of a transposed input")
    assert_close(arg, arg64, what="argmax of a transposed float32 input")
    dout = np.ones(out.shape, dtype=np.float32)
    dx = pl.max_pool2d_backward(dout, arg, x.shape, 3, 2, 1)
    assert dx.dtype == np.float32, f"dx must keep dout's float32, got {dx.dtype}"
    assert_close(dx, pl.max_pool2d_backward_naive(dout.astype(np.float64), arg64, x.shape, 3, 2, 1),
                 what="float32 dx")
