"""Topic 15 — receptive fields of dilated stacks, "same" padding, parameter and multiply-add counts."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.conv import im2col as ic
from dlfs.conv import modern as mc
from dlfs.testing import assert_close
from torch_oracle import torch_or_skip


# ----------------------------------------------------------------- receptive field

@pytest.mark.parametrize("kernels, dilations, strides, expected", [
    ([3], 1, 1, 3),
    ([3, 3, 3, 3], 1, 1, 9),                     # plain stack: grows by 2 per layer
    ([3, 3, 3, 3], [1, 2, 4, 8], 1, 31),         # WaveNet / context module: grows exponentially
    ([3, 3, 3], 2, 1, 13),
    ([3, 3], 1, [2, 1], 7),                      # a stride multiplies the growth of every later layer
    ([7, 3, 3], 1, [2, 2, 1], 19),               # 1 + 6 + 2·2 + 2·4
    ([5, 3], [1, 3], [1, 1], 11),
    ([], 1, 1, 1),                               # no layer: one pixel sees itself
], ids=str)
def test_receptive_field_values(kernels, dilations, strides, expected):
    got = mc.receptive_field(kernels, dilations, strides)
    assert got == expected, (f"receptive_field(kernels={kernels}, dilations={dilations}, strides={strides}): "
                             f"expected {expected}, got {got}")


def test_receptive_field_rejects_bad_arguments():
    with pytest.raises(ValueError):
        mc.receptive_field([3, 3], [1, 2, 4])         # one dilation per layer
    with pytest.raises(ValueError):
        mc.receptive_field([3, 0])
    with pytest.raises(ValueError):
        mc.receptive_field([3, 3], 0)
    assert mc.receptive_field([3, 3], 1, 1) == 5


def _stack_input_gradient(size, kernels, dilations, strides):
    """Gradient of the sum of a stack's outputs with respect to a (1, 1, size, size) input,
    all weights 1 and no padding (Topic 12's convolution). Returns (output shape, dx)."""
    xs, x = [], np.ones((1, 1, size, size))
    for k, d, s in zip(kernels, dilations, strides):
        xs.append(x)
        x = ic.conv2d_forward(x, np.ones((1, 1, k, k)), None, s, 0, d)
    out_shape, g = x.shape, np.ones(x.shape)
    for x_in, k, d, s in reversed(list(zip(xs, kernels, dilations, strides))):
        g, _, _ = ic.conv2d_backward(g, x_in, np.ones((1, 1, k, k)), s, 0, d)
    return out_shape, g


@settings(deadline=None, max_examples=30)
@given(layers=st.lists(st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 2)), min_size=1, max_size=4))
def test_receptive_field_is_the_smallest_input_with_one_output(layers):
    """An input of exactly RF pixels gives a 1x1 output whose gradient reaches both corners;
    one pixel fewer gives no output at all."""
    kernels, dilations, strides = (list(t) for t in zip(*layers))
    rf = mc.receptive_field(kernels, dilations, strides)
    out_shape, dx = _stack_input_gradient(rf, kernels, dilations, strides)
    assert out_shape == (1, 1, 1, 1), \
        f"input of RF = {rf} pixels through {layers} (k, d, s) should give one output pixel, got {out_shape}"
    assert dx[0, 0, 0, 0] > 0 and dx[0, 0, -1, -1] > 0, \
        f"the output must depend on both corners of its {rf}x{rf} field ({layers})"
    if rf > 1:
        with pytest.raises(ValueError):
            _stack_input_gradient(rf - 1, kernels, dilations, strides)


def test_dilation_gridding_holes_and_how_to_avoid_them():
    """Dilations 2, 2 skip every other pixel of their 9-pixel field; 1, 2, 4 cover all 15."""
    rf = mc.receptive_field([3, 3], [2, 2])
    assert rf == 9, f"two 3x3 layers with dilation 2: expected a field of 9, got {rf}"
    _, dx = _stack_input_gradient(rf, [3, 3], [2, 2], [1, 1])
    assert (dx[0, 0, 1::2, :] == 0).all(), "odd rows are never read by a dilation-2 stack (gridding)"
    rf = mc.receptive_field([3, 3, 3], [1, 2, 4])
    assert rf == 15, f"3x3 with dilations 1, 2, 4: expected 15, got {rf}"
    _, dx = _stack_input_gradient(rf, [3, 3, 3], [1, 2, 4], [1, 1, 1])
    assert (dx > 0).all(), "dilations 1, 2, 4 leave no hole in their field"


# ----------------------------------------------------------------- "same" padding

@pytest.mark.parametrize("k, d, expected", [(3, 1, 1), (3, 2, 2), (3, 4, 4), (5, 1, 2), (5, 3, 6), (1, 7, 0), (2, 2, 1)])
def test_same_padding_values_keep_the_size(k, d, expected):
    got = mc.same_padding(k, d)
    assert got == expected, f"same_padding(kernel={k}, dilation={d}): expected {expected}, got {got}"
    x = np.random.default_rng(0).standard_normal((1, 2, 9, 8))
    out = mc.grouped_conv2d_forward(x, np.ones((2, 1, k, k)), None, 1, got, d, groups=2)
    assert out.shape == x.shape, f"kernel {k}, dilation {d}, padding {got}: output {out.shape} != input {x.shape}"


@pytest.mark.parametrize("k, d", [(2, 1), (4, 1), (4, 3)])
def test_same_padding_refuses_even_effective_kernels(k, d):
    with pytest.raises(ValueError, match="even|odd|symmetric"):
        mc.same_padding(k, d)


# ----------------------------------------------------------------- parameters and multiply-adds

def test_parameter_counts_by_hand():
    cases = [
        (mc.conv2d_params(64, 128, 3), 64 * 128 * 9 + 128, "standard 3x3, 64 -> 128"),
        (mc.conv2d_params(64, 128, 3, bias=False), 73_728, "standard, no bias"),
        (mc.conv2d_params(64, 128, 3, groups=4), 128 * 16 * 9 + 128, "groups 4"),
        (mc.conv2d_params(64, 64, 3, groups=64, bias=False), 576, "depthwise 3x3 on 64 channels"),
        (mc.conv2d_params(32, 96, (1, 5), groups=32), 96 * 5 + 96, "1x5 depthwise, multiplier 3"),
        (mc.conv2d_params(64, 128, 1, bias=False), 8_192, "pointwise 64 -> 128"),
        (mc.depthwise_separable_params(64, 128, 3), 576 + 64 + 8192 + 128, "separable 3x3, 64 -> 128"),
        (mc.depthwise_separable_params(64, 128, 3, bias=False), 8_768, "separable, no bias"),
        (mc.depthwise_separable_params(64, 128, 3, multiplier=2, bias=False), 1152 + 128 * 128, "separable, M = 2"),
    ]
    for got, expected, what in cases:
        assert got == expected, f"{what}: expected {expected} parameters, got {got}"


def test_multiply_add_counts_by_hand():
    cases = [
        (mc.conv2d_macs(64, 128, 3, 32), 73_728 * 1024, "standard 3x3, 64 -> 128, 32x32 output"),
        (mc.conv2d_macs(64, 128, 3, (16, 8), groups=4), 18_432 * 128, "groups 4, 16x8 output"),
        (mc.conv2d_macs(3, 32, (3, 5), (10, 20)), 32 * 3 * 15 * 200, "3x5 kernel, 10x20 output"),
        (mc.depthwise_separable_macs(64, 128, 3, 32), 8_978_432, "separable 3x3, 64 -> 128, 32x32"),
        (mc.depthwise_separable_macs(16, 8, 5, 4, multiplier=2), (32 * 25 + 32 * 8) * 16, "separable 5x5, M = 2"),
    ]
    for got, expected, what in cases:
        assert got == expected, f"{what}: expected {expected} multiply-adds, got {got}"


def test_counts_reject_groups_that_do_not_divide_the_channels():
    with pytest.raises(ValueError, match="divisible"):
        mc.conv2d_params(6, 8, 3, groups=4)
    with pytest.raises(ValueError, match="divisible"):
        mc.conv2d_macs(8, 6, 3, 4, groups=4)


@pytest.mark.parametrize("c_in, c_out, k, groups, bias", [
    (64, 128, 3, 1, True), (64, 128, 3, 4, False), (32, 32, 5, 32, True), (16, 48, (3, 1), 16, False),
    (24, 36, 1, 3, True),
], ids=str)
def test_counts_match_torch(c_in, c_out, k, groups, bias):
    torch = torch_or_skip()
    conv = torch.nn.Conv2d(c_in, c_out, k, groups=groups, bias=bias)
    expected = sum(p.numel() for p in conv.parameters())
    got = mc.conv2d_params(c_in, c_out, k, groups=groups, bias=bias)
    assert got == expected, f"Conv2d({c_in}, {c_out}, {k}, groups={groups}, bias={bias}): torch has {expected} parameters, got {got}"
    # With all inputs and weights 1 and no padding, every output value is the number of
    # multiply-adds that produced it: the sum of the output counts them all.
    ones = torch.ones(1, c_in, 12, 10, dtype=torch.float64)
    y = torch.nn.functional.conv2d(ones, torch.ones_like(conv.weight, dtype=torch.float64), groups=groups)
    macs = mc.conv2d_macs(c_in, c_out, k, tuple(y.shape[2:]), groups=groups)
    assert macs == int(y.sum()), f"torch's convolution performs {int(y.sum())} multiply-adds, got {macs}"


def test_separable_counts_match_torch():
    torch = torch_or_skip()
    for c_in, c_out, k, m, bias in [(64, 128, 3, 1, True), (16, 40, 5, 2, False)]:
        block = torch.nn.Sequential(torch.nn.Conv2d(c_in, c_in * m, k, groups=c_in, bias=bias),
                                    torch.nn.Conv2d(c_in * m, c_out, 1, bias=bias))
        expected = sum(p.numel() for p in block.parameters())
        got = mc.depthwise_separable_params(c_in, c_out, k, multiplier=m, bias=bias)
        assert got == expected, f"separable {c_in} -> {c_out}, k={k}, M={m}: torch has {expected}, got {got}"


def test_compare_conv_costs_for_the_worked_example():
    rows = mc.compare_conv_costs(64, 128, 3, 32, groups=4)
    assert [r["name"] for r in rows] == ["standard", "grouped", "depthwise-separable"], \
        f"rows must be standard, grouped, depthwise-separable, got {[r['name'] for r in rows]}"
    expected = [(73_728, 75_497_472, 1.0), (18_432, 18_874_368, 4.0), (8_768, 8_978_432, 73_728 / 8_768)]
    for row, (params, macs, ratio) in zip(rows, expected):
        assert (row["params"], row["macs"]) == (params, macs), \
            f"{row['name']}: expected {params} params and {macs} MACs, got {row['params']} and {row['macs']}"
        assert_close(row["params_ratio"], ratio, rtol=1e-12, what=f"{row['name']} params ratio")
        assert_close(row["macs_ratio"], ratio, rtol=1e-12, what=f"{row['name']} MACs ratio")
    assert 8 < rows[2]["macs_ratio"] < 9, "a 3x3 separable 64 -> 128 layer is 8-9x cheaper"
    table = mc.format_cost_table(rows)
    assert "8.41×" in table and "73,728" in table, f"the table should show 73,728 and 8.41×:\n{table}"


@settings(deadline=None, max_examples=40)
@given(c_in=st.integers(1, 256), c_out=st.integers(1, 512), k=st.integers(1, 7), size=st.integers(1, 64))
def test_separable_saving_is_one_over_the_sum_of_reciprocals(c_in, c_out, k, size):
    """standard / separable = C_out·k² / (C_out + k²) = 1 / (1/C_out + 1/k²), for any C_in and size."""
    rows = mc.compare_conv_costs(c_in, c_out, k, size, groups=1)
    expected = 1.0 / (1.0 / c_out + 1.0 / k ** 2)
    assert_close(rows[2]["macs_ratio"], expected, rtol=1e-12,
                 what=f"separable saving for C_in={c_in}, C_out={c_out}, k={k}")
    assert rows[2]["macs"] == mc.depthwise_separable_params(c_in, c_out, k, bias=False) * size * size
