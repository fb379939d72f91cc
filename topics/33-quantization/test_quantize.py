"""Topic 33: quantise / dequantise rules at the edges, against torch's quantisation ops, and the
straight-through backward."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from dlfs.quant import quantize as Q
from dlfs.quant.quantize import QScheme
from dlfs.testing import assert_close
from torch_oracle import torch_or_skip


def test_rounding_is_half_to_even_and_the_ranges():
    got = [(s.qmin, s.qmax) for s in (QScheme(8), QScheme(8, False), QScheme(4), QScheme(4, False))]
    assert got == [(-127, 127), (0, 255), (-7, 7), (0, 15)], f"expected int8/uint8/int4/uint4 ranges, got {got}"
    p = Q.QParams(np.array(1.0), np.array(0, dtype=np.int32), QScheme(8))
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49, 0.51])
    assert Q.quantize(x, p).tolist() == [0, 2, 2, 0, -2, -2, 0, 1], Q.quantize(x, p).tolist()


def test_symmetric_per_tensor_maps_plus_and_minus_max_to_the_range_ends():
    x = np.array([-3.0, -1.0, 0.0, 0.7, 2.0])
    p = Q.compute_qparams(x, QScheme(8))
    assert_close(p.scale, np.full((1,), 3.0 / 127).reshape(1), what="scale max|x|/127")
    q = Q.quantize(x, p)
    assert q.dtype == np.int8 and q[0] == -127 and q[2] == 0, f"expected -127 at -max and 0 at 0, got {q}"
    y = np.array([3.0, -3.0, 6.0, -6.0])
    assert Q.quantize(y, p).tolist() == [127, -127, 127, -127], "±max at the ends and clamping beyond"


def test_asymmetric_range_contains_zero_and_zero_is_exact():
    x = np.array([0.5, 1.0, 3.0])                         # all positive: the range widens to [0, 3]
    p = Q.compute_qparams(x, QScheme(8, symmetric=False))
    assert int(p.zero_point.ravel()[0]) == 0, f"zero point for [0, 3] should be 0, got {p.zero_point}"
    x = np.array([-2.0, -1.0, 1.0])                       # range [-2, 1]
    p = Q.compute_qparams(x, QScheme(8, symmetric=False))
    s, z = float(p.scale.ravel()[0]), int(p.zero_point.ravel()[0])
    assert_close(s, 3.0 / 255, what="scale (hi − lo)/255")
    assert z == 170, f"zero point round(2 / (3/255)) = 170, got {z}"
    assert Q.quantize(np.array([-2.0, 0.0, 1.0]), p).tolist() == [0, 170, 255]
    assert Q.dequantize(Q.quantize(np.zeros(3), p), p).tolist() == [0.0, 0.0, 0.0], "0 must be exact"
    neg = Q.compute_qparams(np.array([-4.0, -1.0]), QScheme(8, symmetric=False))
    assert int(neg.zero_point.ravel()[0]) == 255, f"all-negative range [-4, 0]: zero point 255, got {neg.zero_point}"


@pytest.mark.parametrize("scheme", [QScheme(8), QScheme(8, False), QScheme(4), QScheme(4, False)])
def test_all_equal_and_all_zero_tensors(scheme):
    for value in (0.0, 2.5, -1.25):
        x = np.full((3, 4), value)
        p = Q.compute_qparams(x, scheme)
        xhat = Q.dequantize(Q.quantize(x, p), p)
        assert np.isfinite(p.scale).all() and (p.scale > 0).all(), f"scale must be finite and positive: {p.scale}"
        assert_close(xhat, x, rtol=1e-12, atol=1e-12, what=f"all-equal tensor of {value} ({scheme})")


def test_per_channel_and_group_shapes_and_values():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((8, 3))
    p = Q.compute_qparams(W, QScheme(8, axis=1))
    assert p.scale.shape == (1, 3), f"per-channel scales of W (8, 3) along axis 1: (1, 3), got {p.scale.shape}"
    assert_close(p.scale.ravel(), np.abs(W).max(axis=0) / 127, what="per-channel scales")
    g = Q.compute_qparams(W, QScheme(4, axis=0, group_size=4))
    assert g.scale.shape == (2, 1, 3), f"groups of 4 along axis 0 of (8, 3): scales (2, 1, 3), got {g.scale.shape}"
    assert_close(g.scale[:, 0, :], np.abs(W.reshape(2, 4, 3)).max(axis=1) / 7, what="group scales")
    q = Q.quantize(W, g)
    assert q.shape == W.shape and np.abs(q).max() == 7
    with pytest.raises(ValueError, match="multiple of group_size"):
        Q.compute_qparams(W, QScheme(4, axis=0, group_size=3))


def test_percentile_calibration_clips_outliers():
    x = np.concatenate([np.linspace(-1, 1, 10001), [50.0]])
    mm = Q.compute_qparams(x, QScheme(8))
    pc = Q.compute_qparams(x, QScheme(8), method="percentile", percentile=99.9)
    assert_close(mm.scale.ravel(), np.array([50 / 127]), what="min-max scale follows the outlier")
    assert float(pc.scale.ravel()[0]) < 1.0 / 127 * 1.01, f"percentile scale ignores the outlier, got {pc.scale}"


@settings(deadline=None, max_examples=60)
@given(x=arrays(np.float64, st.integers(1, 40), elements=st.floats(-1e3, 1e3)),
       bits=st.sampled_from([4, 8]), symmetric=st.booleans())
def test_round_trip_error_is_at_most_half_a_step(x, bits, symmetric):
    p = Q.compute_qparams(x, QScheme(bits, symmetric))
    err = np.abs(Q.dequantize(Q.quantize(x, p), p) - x)
    bound = float(p.scale.ravel()[0]) / 2 * (1 + 1e-9) + 1e-12
    assert err.max() <= bound, f"round-trip error {err.max()} above scale/2 = {bound}"


def test_fake_quantize_and_the_straight_through_backward():
    p = Q.QParams(np.array(0.5), np.array(0, dtype=np.int32), QScheme(4))     # codes −7..7, x in [−3.5, 3.5]
    x = np.array([-5.0, -3.5, -3.74, -3.76, 0.2, 3.5, 3.74, 3.76, 9.0])
    xhat, inside = Q.fake_quantize(x, p)
    assert_close(xhat, np.array([-3.5, -3.5, -3.5, -3.5, 0.0, 3.5, 3.5, 3.5, 3.5]), what="fake-quantised x")
    assert inside.tolist() == [False, True, True, False, True, True, True, False, False], inside.tolist()
    dy = np.arange(1.0, 10.0)
    assert_close(Q.fake_quantize_backward(dy, inside), dy * inside, what="STE: dy inside the range, 0 outside")


def test_fake_quantize_matches_torch_per_tensor():
    torch = torch_or_skip()
    x = np.random.default_rng(1).standard_normal(200).astype(np.float32) * 3
    for scheme, scale, zp in ((QScheme(8), 2.0 ** -5, 0), (QScheme(8, False), 2.0 ** -4, 100), (QScheme(4), 0.25, 0)):
        p = Q.QParams(np.array(scale, np.float32), np.array(zp, np.int32), scheme)
        xhat, inside = Q.fake_quantize(x, p)
        tx = torch.tensor(x, requires_grad=True)
        ty = torch.fake_quantize_per_tensor_affine(tx, scale, zp, scheme.qmin, scheme.qmax)
        ty.backward(torch.ones_like(ty))
        assert_close(xhat, ty.detach().numpy(), rtol=0, atol=0, what=f"fake quantisation vs torch ({scheme})")
        assert_close(Q.fake_quantize_backward(np.ones_like(x), inside), tx.grad.numpy(), rtol=0, atol=0,
                     what=f"STE gradient vs torch ({scheme})")


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")
def test_per_channel_codes_match_torch_quantize_per_channel():
    torch = torch_or_skip()
    W = np.random.default_rng(2).standard_normal((6, 4)).astype(np.float32)
    scales = np.array([2.0 ** -6, 2.0 ** -5, 2.0 ** -7, 2.0 ** -4], dtype=np.float32)
    p = Q.QParams(scales.reshape(1, 4), np.zeros((1, 4), np.int32), QScheme(8, axis=1))
    tq = torch.quantize_per_channel(torch.tensor(W), torch.tensor(scales, dtype=torch.float64),
                                    torch.zeros(4, dtype=torch.int64), 1, torch.qint8)
    got = Q.quantize(W, p)
    expected = np.clip(tq.int_repr().numpy(), -127, 127)          # torch's qint8 range is [-128, 127]
    assert np.array_equal(got, expected), f"codes differ from torch.quantize_per_channel:\n{got}\n{expected}"
    assert_close(Q.dequantize(got, p), np.clip(tq.dequantize().numpy(), -127 * scales, 127 * scales),
                 rtol=0, atol=0, what="dequantised per-channel values vs torch")
