"""Topic 15 — grouped convolution: shape rules, values against PyTorch and Topic 11/12, gradients."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs import parallel
from dlfs.conv import im2col as ic
from dlfs.conv import modern as mc
from dlfs.conv import sliding_window as naive
from dlfs.testing import assert_close, check_gradients
from torch_oracle import to_numpy, to_torch, torch_or_skip

# A convolution is linear in each of its inputs, so central differences are exact up to rounding
# for any step: a step of 1e-3 (instead of 1e-6) keeps the rounding error far below the tolerance.
CASES = [
    # (C_in, C_out, groups, H, W, kh, kw, stride, padding, dilation)
    (4, 6, 2, 6, 7, 3, 3, 1, 1, 1),              # stride 1: dx by the flipped grouped convolution
    (6, 3, 3, 7, 7, 3, 3, 2, 1, 1),              # stride 2: dx by col2im
    (6, 12, 6, 7, 8, 3, 3, 1, 2, 2),             # depthwise with multiplier 2, dilated "same"
    (8, 4, 4, 8, 7, 3, 2, (2, 1), (1, 0), (1, 2)),
    (6, 6, 3, 5, 5, 1, 1, 1, 0, 1),              # grouped 1x1 (ShuffleNet)
    (4, 8, 4, 6, 6, 3, 3, 1, 3, 1),              # padding beyond the kernel reach
]


def random_case(case, seed, n=2, dtype=np.float64):
    c_in, c_out, g, H, W, kh, kw, stride, padding, dilation = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c_in, H, W)).astype(dtype)
    w = rng.standard_normal((c_out, c_in // g, kh, kw)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    return x, w, b, (stride, padding, dilation), g


def grouped_by_loops(x, w, b, stride, padding, dilation, groups):
    """The definition: one Topic 11 convolution per group, outputs concatenated."""
    c_g, o_g = x.shape[1] // groups, w.shape[0] // groups
    outs = [naive.conv2d_forward_naive(x[:, g * c_g:(g + 1) * c_g], w[g * o_g:(g + 1) * o_g],
                                       None if b is None else b[g * o_g:(g + 1) * o_g],
                                       stride, padding, dilation) for g in range(groups)]
    return np.concatenate(outs, axis=1)


def grouped_backward_by_loops(dout, x, w, stride, padding, dilation, groups):
    c_g, o_g = x.shape[1] // groups, w.shape[0] // groups
    parts = [naive.conv2d_backward_naive(dout[:, g * o_g:(g + 1) * o_g], x[:, g * c_g:(g + 1) * c_g],
                                         w[g * o_g:(g + 1) * o_g], stride, padding, dilation)
             for g in range(groups)]
    return tuple(np.concatenate([p[i] for p in parts], axis=(1, 0, 0)[i]) for i in range(3))


# ----------------------------------------------------------------- shape rules

def test_check_grouped_args_returns_the_per_group_channel_counts():
    x, w = np.zeros((2, 6, 5, 5)), np.zeros((9, 2, 3, 3))
    got = mc.check_grouped_args(x, w, np.zeros(9), 3)
    assert tuple(got) == (2, 3), f"C_in/groups, C_out/groups for 6 -> 9 channels in 3 groups: expected (2, 3), got {got}"
    got = mc.check_grouped_args(np.zeros((1, 4, 3, 3)), np.zeros((4, 1, 3, 3)), None, 4)
    assert tuple(got) == (1, 1), f"depthwise 4 -> 4: expected (1, 1), got {got}"


@pytest.mark.parametrize("x_shape, w_shape, b_shape, groups, match", [
    ((2, 6, 5, 5), (4, 2, 3, 3), None, 4, "divisible"),          # C_in = 6 not divisible by 4
    ((2, 6, 5, 5), (4, 3, 3, 3), None, 3, "divisible"),          # C_out = 4 not divisible by 3
    ((2, 6, 5, 5), (6, 6, 3, 3), None, 3, "weight"),             # w.shape[1] must be C_in/groups = 2
    ((2, 6, 5, 5), (6, 1, 3, 3), None, 3, r"\(6, 2, 3, 3\)"),    # the message gives the expected shape
    ((2, 6, 5, 5), (6, 2, 3, 3), (3,), 3, "bias"),
    ((2, 6, 5, 5), (6, 2, 3, 3), None, 0, "groups"),
    ((6, 5, 5), (6, 2, 3, 3), None, 3, None),                    # x is not 4-D
], ids=["C_in", "C_out", "weight", "weight-shape-in-message", "bias", "groups-0", "rank"])
def test_bad_shapes_raise_clear_errors(x_shape, w_shape, b_shape, groups, match):
    b = None if b_shape is None else np.zeros(b_shape)
    with pytest.raises(ValueError, match=match):
        mc.check_grouped_args(np.zeros(x_shape), np.zeros(w_shape), b, groups)
    with pytest.raises(ValueError, match=match):
        mc.grouped_conv2d_forward(np.zeros(x_shape), np.zeros(w_shape), b, groups=groups)


# ----------------------------------------------------------------- values

@pytest.mark.parametrize("case", CASES, ids=str)
def test_forward_matches_one_convolution_per_group(case):
    x, w, b, g, groups = random_case(case, seed=0)
    assert_close(mc.grouped_conv2d_forward(x, w, b, *g, groups=groups), grouped_by_loops(x, w, b, *g, groups),
                 rtol=1e-10, atol=1e-12, what=f"grouped forward, groups={groups}, (stride, padding, dilation)={g}")
    assert_close(mc.grouped_conv2d_forward(x, w, None, *g, groups=groups), grouped_by_loops(x, w, None, *g, groups),
                 rtol=1e-10, atol=1e-12, what=f"grouped forward without bias, groups={groups}")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_backward_matches_one_convolution_per_group(case):
    x, w, b, g, groups = random_case(case, seed=1)
    out = grouped_by_loops(x, w, b, *g, groups)
    dout = np.random.default_rng(2).standard_normal(out.shape)
    got = mc.grouped_conv2d_backward(dout, x, w, *g, groups=groups)
    expected = grouped_backward_by_loops(dout, x, w, *g, groups)
    for name, a, e in zip(("dx", "dw", "db"), got, expected):
        assert_close(a, e, rtol=1e-10, atol=1e-12, what=f"{name}, groups={groups}, (stride, padding, dilation)={g}")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_forward_and_backward_match_torch(case):
    torch = torch_or_skip()
    x, w, b, (stride, padding, dilation), groups = random_case(case, seed=3)
    out = mc.grouped_conv2d_forward(x, w, b, stride, padding, dilation, groups)
    dout = np.random.default_rng(4).standard_normal(out.shape)
    dx, dw, db = mc.grouped_conv2d_backward(dout, x, w, stride, padding, dilation, groups)
    tx, tw, tb = (to_torch(a, requires_grad=True) for a in (x, w, b))
    tout = torch.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=padding, dilation=dilation, groups=groups)
    tout.backward(to_torch(dout))
    assert_close(out, to_numpy(tout), rtol=1e-10, atol=1e-12, what=f"forward vs torch (groups={groups})")
    assert_close(dx, to_numpy(tx.grad), rtol=1e-10, atol=1e-12, what=f"dx vs torch (groups={groups})")
    assert_close(dw, to_numpy(tw.grad), rtol=1e-10, atol=1e-12, what=f"dw vs torch (groups={groups})")
    assert_close(db, to_numpy(tb.grad), rtol=1e-10, atol=1e-12, what=f"db vs torch (groups={groups})")


@pytest.mark.parametrize("g", [(1, 0, 1), (2, 1, 1), (1, 2, 2)], ids=str)
def test_groups_1_is_topic_12s_convolution(g):
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    out = mc.grouped_conv2d_forward(x, w, b, *g, groups=1)
    assert_close(out, ic.conv2d_forward(x, w, b, *g), rtol=1e-12, atol=1e-12, what=f"groups=1 forward {g}")
    dout = rng.standard_normal(out.shape)
    for name, a, e in zip(("dx", "dw", "db"), mc.grouped_conv2d_backward(dout, x, w, *g, groups=1),
                          ic.conv2d_backward(dout, x, w, *g)):
        assert_close(a, e, rtol=1e-12, atol=1e-12, what=f"groups=1 {name} {g}")


def test_groups_g_is_a_block_diagonal_dense_convolution():
    """A grouped weight equals a dense (C_out, C_in, kh, kw) weight that is zero off the group blocks."""
    rng = np.random.default_rng(6)
    groups, c_in, c_out = 3, 6, 9
    x, w, b = rng.standard_normal((2, c_in, 6, 6)), rng.standard_normal((c_out, 2, 3, 3)), rng.standard_normal(c_out)
    dense = np.zeros((c_out, c_in, 3, 3))
    for g in range(groups):
        dense[g * 3:(g + 1) * 3, g * 2:(g + 1) * 2] = w[g * 3:(g + 1) * 3]
    assert_close(mc.grouped_conv2d_forward(x, w, b, 1, 1, 1, groups), ic.conv2d_forward(x, dense, b, 1, 1, 1),
                 rtol=1e-10, atol=1e-12, what="grouped conv vs block-diagonal dense conv")
    dout = rng.standard_normal((2, c_out, 6, 6))
    dx, dw, _ = mc.grouped_conv2d_backward(dout, x, w, 1, 1, 1, groups)
    dx_dense, dw_dense, _ = ic.conv2d_backward(dout, x, dense, 1, 1, 1)
    assert_close(dx, dx_dense, rtol=1e-10, atol=1e-12, what="dx vs the block-diagonal dense conv")
    for g in range(groups):
        assert_close(dw[g * 3:(g + 1) * 3], dw_dense[g * 3:(g + 1) * 3, g * 2:(g + 1) * 2], rtol=1e-10, atol=1e-12,
                     what=f"dw of group {g} = the diagonal block of the dense dw")


def test_gradients_match_finite_differences():
    for case in (CASES[0], CASES[1], CASES[3]):
        x, w, b, g, groups = random_case(case, seed=7, n=1)
        out = mc.grouped_conv2d_forward(x, w, b, *g, groups=groups)
        dout = np.random.default_rng(8).standard_normal(out.shape)
        dx, dw, db = mc.grouped_conv2d_backward(dout, x, w, *g, groups=groups)
        check_gradients(lambda: mc.grouped_conv2d_forward(x, w, b, *g, groups=groups),
                        {"x": x, "w": w, "b": b}, {"x": dx, "w": dw, "b": db}, dout=dout, h=1e-3)


def test_float32_stays_float32_and_chunking_does_not_change_results(monkeypatch):
    x, w, b, g, groups = random_case(CASES[1], seed=9, n=5, dtype=np.float32)
    out = mc.grouped_conv2d_forward(x, w, b, *g, groups=groups)
    dout = np.random.default_rng(10).standard_normal(out.shape).astype(np.float32)
    grads = mc.grouped_conv2d_backward(dout, x, w, *g, groups=groups)
    dtypes = (out.dtype,) + tuple(a.dtype for a in grads)
    assert dtypes == (np.float32,) * 4, f"float32 inputs must give float32 results, got {dtypes}"
    x64, w64, b64, d64 = (a.astype(np.float64) for a in (x, w, b, dout))
    expected = grouped_by_loops(x64, w64, b64, *g, groups)
    assert_close(out, expected, rtol=1e-4, atol=1e-4, what="float32 forward")
    monkeypatch.setattr(parallel, "CHUNK_BYTES", 8)      # one sample per chunk
    assert_close(mc.grouped_conv2d_forward(x64, w64, b64, *g, groups=groups), expected, rtol=1e-10, atol=1e-12,
                 what="forward with one sample per chunk")
    for name, a, e in zip(("dx", "dw", "db"), mc.grouped_conv2d_backward(d64, x64, w64, *g, groups=groups),
                          grouped_backward_by_loops(d64, x64, w64, *g, groups)):
        assert_close(a, e, rtol=1e-10, atol=1e-12, what=f"{name} with one sample per chunk")


@settings(deadline=None, max_examples=25)
@given(groups=st.integers(1, 4), c_g=st.integers(1, 2), o_g=st.integers(1, 2), n=st.integers(1, 2),
       h=st.integers(1, 6), w=st.integers(1, 6), k=st.integers(1, 3), s=st.integers(1, 2),
       p=st.integers(0, 2), d=st.integers(1, 2), seed=st.integers(0, 2**16))
def test_grouped_equals_per_group_convolutions(groups, c_g, o_g, n, h, w, k, s, p, d, seed):
    if min(h, w) + 2 * p < d * (k - 1) + 1:
        return                                        # no output position
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, groups * c_g, h, w))
    wt = rng.standard_normal((groups * o_g, c_g, k, k))
    b = rng.standard_normal(groups * o_g)
    g = (s, p, d)
    out = mc.grouped_conv2d_forward(x, wt, b, *g, groups=groups)
    assert_close(out, grouped_by_loops(x, wt, b, *g, groups), rtol=1e-10, atol=1e-12,
                 what=f"forward, groups={groups}, kernel {k}, (stride, padding, dilation)={g}")
    dout = rng.standard_normal(out.shape)
    for name, a, e in zip(("dx", "dw", "db"), mc.grouped_conv2d_backward(dout, x, wt, *g, groups=groups),
                          grouped_backward_by_loops(dout, x, wt, *g, groups)):
        assert_close(a, e, rtol=1e-10, atol=1e-12, what=f"{name}, groups={groups}, kernel {k}, {g}")
