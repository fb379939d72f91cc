"""dlfs.conv.fast: the batched convolution and tiled max pooling equal Topic 12's and 13's
kernels (float64), match finite differences, and step aside where they do not apply."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.conv.fast import (
    FastConv2d,
    FastMaxPool2d,
    conv2d_backward_batched,
    conv2d_forward_batched,
    max_pool2d_backward_tiled,
    max_pool2d_forward_tiled,
)
from dlfs.conv.im2col import Conv2d, conv2d_backward, conv2d_forward
from dlfs.conv.pooling import MaxPool2d, max_pool2d_backward, max_pool2d_forward
from dlfs.testing import assert_close, check_layer


@settings(deadline=None, max_examples=40)
@given(n=st.integers(1, 5), c_in=st.integers(1, 5), c_out=st.integers(1, 6), h=st.integers(3, 9),
       w=st.integers(3, 9), k=st.integers(1, 3), pad=st.integers(0, 2), bias=st.booleans(),
       seed=st.integers(0, 10_000))
def test_batched_convolution_equals_topic_12(n, c_in, c_out, h, w, k, pad, bias, seed):
    pad = min(pad, k - 1)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c_in, h, w))
    wt = rng.standard_normal((c_out, c_in, k, k))
    b = rng.standard_normal(c_out) if bias else None
    y = conv2d_forward_batched(x, wt, b, (pad, pad))
    assert_close(y, conv2d_forward(x, wt, b, 1, pad), rtol=1e-12, atol=1e-12, what="forward vs Topic 12")
    dout = rng.standard_normal(y.shape)
    got = conv2d_backward_batched(dout, x, wt, (pad, pad))
    want = conv2d_backward(dout, x, wt, 1, pad)
    for name, g, r in zip(("dx", "dw", "db"), got, want):
        assert g.shape == r.shape, f"{name}: expected shape {r.shape}, got {g.shape}"
        assert_close(g, r, rtol=1e-12, atol=1e-12, what=f"{name} vs Topic 12 (C_in={c_in}, C_out={c_out})")


@pytest.mark.parametrize("c_in, c_out", [(2, 5), (5, 2)])       # both routes to dx
def test_without_dx_the_weight_gradients_are_unchanged(c_in, c_out):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, c_in, 6, 6))
    wt = rng.standard_normal((c_out, c_in, 3, 3))
    dout = rng.standard_normal((3, c_out, 6, 6))
    dx, dw, db = conv2d_backward_batched(dout, x, wt, (1, 1))
    none, dw2, db2 = conv2d_backward_batched(dout, x, wt, (1, 1), need_dx=False)
    assert none is None, f"need_dx=False must skip dx, got {type(none)}"
    assert_close(dw2, dw, rtol=0, atol=0, what="dw without dx")
    assert_close(db2, db, rtol=0, atol=0, what="db without dx")
    for stride in (1, 2):                                       # the batched kernel and Topic 12's
        layer = FastConv2d(c_in, c_out, 3, stride, 1, bias=True, rng=0, dtype=np.float64)
        dy = rng.standard_normal(layer.forward(x).shape)
        layer.backward(dy)
        full = (layer.W.grad.copy(), layer.b.grad.copy())
        layer.zero_grad()
        assert layer.backward_weights(dy) is None
        assert_close(layer.W.grad, full[0], rtol=0, atol=0, what=f"backward_weights dW (stride {stride})")
        assert_close(layer.b.grad, full[1], rtol=0, atol=0, what=f"backward_weights db (stride {stride})")


def test_float32_stays_float32_and_many_chunks_add_up(monkeypatch):
    monkeypatch.setattr("dlfs.parallel.CHUNK_BYTES", 1)           # one sample per chunk
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 3, 6, 6), dtype=np.float32)
    wt = rng.standard_normal((5, 3, 3, 3), dtype=np.float32)
    y = conv2d_forward_batched(x, wt, None, (1, 1))
    assert y.dtype == np.float32, f"expected float32, got {y.dtype}"
    dx, dw, _ = conv2d_backward_batched(np.ones_like(y), x, wt, (1, 1))
    _, dw_ref, _ = conv2d_backward(np.ones_like(y), x, wt, 1, 1)
    assert dx.dtype == dw.dtype == np.float32
    assert_close(dw, dw_ref, rtol=1e-4, atol=1e-4, what="dw summed over 7 chunks")


@pytest.mark.parametrize("stride, padding, dilation", [(1, 1, 1), (1, 0, 1), (2, 1, 1), (1, 2, 2)])
def test_fast_conv_layer_matches_finite_differences_and_the_topic_layer(stride, padding, dilation):
    fast = FastConv2d(3, 4, 3, stride, padding, dilation, bias=True, rng=0, dtype=np.float64)
    plain = Conv2d(3, 4, 3, stride, padding, dilation, bias=True, rng=0, dtype=np.float64)
    assert np.array_equal(fast.W.data, plain.W.data), "the same rng must give the same weights"
    x = np.random.default_rng(1).standard_normal((2, 3, 7, 7))
    check_layer(fast, x, seed=2)
    fast.zero_grad()
    dy = np.random.default_rng(3).standard_normal(plain.forward(x).shape)
    assert_close(fast.forward(x), plain.forward(x), rtol=1e-12, atol=1e-12, what="FastConv2d forward")
    assert_close(fast.backward(dy), plain.backward(dy), rtol=1e-12, atol=1e-12, what="FastConv2d dx")
    assert_close(fast.W.grad, plain.W.grad, rtol=1e-12, atol=1e-12, what="FastConv2d dW")


def test_fast_conv_refuses_wrong_channels_and_backward_before_forward():
    layer = FastConv2d(3, 4, 3, padding=1, rng=0)
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.zeros((1, 4, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        layer.forward(np.zeros((1, 2, 5, 5), np.float32))


@settings(deadline=None, max_examples=40)
@given(n=st.integers(1, 4), c=st.integers(1, 4), h=st.integers(2, 9), w=st.integers(2, 9),
       k=st.integers(2, 3), ties=st.booleans(), seed=st.integers(0, 10_000))
def test_tiled_max_pooling_equals_topic_13(n, c, h, w, k, ties, seed):
    if h < k or w < k:
        return
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, (n, c, h, w)).astype(np.float64) if ties else rng.standard_normal((n, c, h, w))
    out, arg = max_pool2d_forward_tiled(x, k)
    out_ref, arg_ref = max_pool2d_forward(x, k)
    assert np.array_equal(out, out_ref), "pooled values differ from Topic 13's"
    assert np.array_equal(arg, arg_ref), "argmax offsets differ from Topic 13's (first maximum on ties)"
    dout = rng.standard_normal(out.shape)
    dx = max_pool2d_backward_tiled(dout, arg, x.shape, k)
    assert np.array_equal(dx, max_pool2d_backward(dout, arg_ref, x.shape, k)), "dx differs from Topic 13's"


def test_fast_pool_layer_matches_finite_differences_and_falls_back_for_overlapping_windows():
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 7))
    check_layer(FastMaxPool2d(2), x, seed=1)
    overlapping = FastMaxPool2d(3, stride=2, padding=1)
    y = overlapping.forward(x)
    assert np.array_equal(y, MaxPool2d(3, 2, 1).forward(x)), "the fallback must be Topic 13's pooling"
    check_layer(overlapping, x, seed=2)
    with pytest.raises(ValueError, match="at least 2x2"):
        max_pool2d_forward_tiled(np.zeros((1, 1, 1, 4)), 2)


def test_with_a_learners_topic_12_file_the_fast_layers_use_the_learners_kernels(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    import dlfs.conv.im2col as ref

    learner = tmp_path / "im2col.py"
    learner.write_text(Path(ref.__file__).read_text())
    code = (
        "import json, sys\n"
        "from dlfs.course import redirect\n"
        f"redirect.install({{'dlfs.conv.im2col': {str(learner)!r}}})\n"
        "import dlfs.conv.fast as fast\n"
        "print(json.dumps([fast._TUNED_CONV, fast._TUNED_POOL]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[false, true]", (f"expected the tuned convolution off (the learner's Topic 12 "
                                           f"is in use) and the tuned pooling on, got {out!r}")
