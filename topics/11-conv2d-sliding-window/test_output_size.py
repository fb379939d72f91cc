"""Topic 11 — output-size arithmetic: H_out = (H + 2p − d(k − 1) − 1) // s + 1, and its errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.conv import geometry
from dlfs.conv import sliding_window as sw


@pytest.mark.parametrize("size, kernel, stride, padding, dilation, expected", [
    (32, 3, 1, 1, 1, 32),        # "same" 3x3 convolution
    (32, 3, 2, 1, 1, 16),        # ResNet down-sampling
    (224, 7, 2, 3, 1, 112),      # ImageNet stem
    (7, 3, 1, 0, 1, 5),          # "valid"
    (7, 3, 2, 0, 1, 3),
    (7, 3, 1, 0, 2, 3),          # dilation 2: the kernel spans 5
    (8, 3, 3, 0, 1, 2),          # the last partial window is dropped
    (5, 5, 1, 0, 1, 1),          # the kernel exactly fits
    (1, 3, 1, 1, 1, 1),
    (4, 1, 1, 2, 1, 8),          # 1x1 kernel with padding
])
def test_conv_output_size_values(size, kernel, stride, padding, dilation, expected):
    got = geometry.conv_output_size(size, kernel, stride, padding, dilation)
    assert got == expected, (
        f"conv_output_size(size={size}, kernel={kernel}, stride={stride}, padding={padding}, "
        f"dilation={dilation}): expected {expected}, got {got}"
    )


@settings(deadline=None, max_examples=60)
@given(size=st.integers(1, 20), kernel=st.integers(1, 6), stride=st.integers(1, 4),
       padding=st.integers(0, 3), dilation=st.integers(1, 3))
def test_conv_output_size_counts_the_windows_that_fit(size, kernel, stride, padding, dilation):
    """The output size is the number of window starts i·s whose last tap i·s + d(k−1) is inside."""
    padded = size + 2 * padding
    span = dilation * (kernel - 1) + 1
    fitting = sum(1 for start in range(0, padded, stride) if start + span <= padded)
    if fitting == 0:
        with pytest.raises(ValueError):
            geometry.conv_output_size(size, kernel, stride, padding, dilation)
    else:
        got = geometry.conv_output_size(size, kernel, stride, padding, dilation)
        assert got == fitting, (
            f"size {size}, kernel {kernel}, stride {stride}, padding {padding}, dilation {dilation}: "
            f"{fitting} windows fit, conv_output_size returned {got}"
        )


@pytest.mark.parametrize("size, kernel, padding, dilation", [
    (4, 5, 0, 1),       # kernel larger than the input
    (4, 3, 0, 2),       # dilated span 5 > 4
    (2, 7, 2, 1),       # padded size 6 < 7
])
def test_conv_output_size_refuses_an_empty_output_with_a_clear_message(size, kernel, padding, dilation):
    span = dilation * (kernel - 1) + 1
    padded = size + 2 * padding
    with pytest.raises(ValueError) as info:
        geometry.conv_output_size(size, kernel, 1, padding, dilation)
    message = str(info.value)
    assert str(span) in message and str(padded) in message, (
        f"the message must give the dilated kernel span ({span}) and the padded size ({padded}); "
        f"got: {message!r}"
    )


@pytest.mark.parametrize("name, kwargs", [
    ("stride", dict(stride=0)),
    ("dilation", dict(dilation=0)),
    ("padding", dict(padding=-1)),
    ("kernel", dict(kernel=0)),
    ("size", dict(size=0)),
])
def test_conv_output_size_rejects_bad_arguments_by_name(name, kwargs):
    args = dict(size=8, kernel=3, stride=1, padding=0, dilation=1) | kwargs
    with pytest.raises(ValueError, match=name):
        geometry.conv_output_size(**args)
    assert geometry.conv_output_size(8, 3, 1, 0, 1) == 6, "conv_output_size(8, 3) must be 6"


def test_forward_rejects_a_kernel_that_does_not_fit():
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError):
        sw.conv2d_forward_naive(x, np.zeros((1, 1, 5, 5)))
    with pytest.raises(ValueError):
        sw.conv2d_forward_naive(x, np.zeros((1, 1, 3, 3)), dilation=2)
    out = sw.conv2d_forward_naive(x, np.zeros((1, 1, 3, 3)), dilation=2, padding=1)
    assert out.shape == (1, 1, 2, 2), f"with padding 1 the dilated 3x3 kernel fits: expected (1, 1, 2, 2), got {out.shape}"
