"""Convolutions (Module 2).

- ``dlfs.conv.geometry`` (Topic 11): output sizes, padding, the (h, w) pairs and argument
  checks every convolution and pooling layer shares.
- ``dlfs.conv.sliding_window`` (Topic 11): conv2d forward and backward as explicit loops over
  output positions, with stride, padding and dilation — the readable definition.
- ``dlfs.conv.im2col`` (Topic 12): ``im2col`` / ``col2im`` with strided views, conv2d forward and
  backward as matrix products, and the ``Conv2d`` layer used by the CIFAR-10 networks.
- ``dlfs.conv.pooling`` (Topic 13): max and average pooling (overlapping windows included),
  global average pooling, output-size arithmetic.
- ``dlfs.conv.resnet`` (Topic 14): the residual basic block and the CIFAR ResNet family;
  ``dlfs.conv.resnet9``: ResNet-9 (Milestone 17).
- ``dlfs.conv.modern`` (Topic 15): grouped, depthwise, pointwise and dilated convolutions,
  parameter and FLOP counts.

Batch normalisation (BatchNorm2d) lives in ``dlfs.nn.batchnorm`` and the other normalisation
layers in ``dlfs.nn.normalization`` (Topic 16); the CIFAR-10 training recipe in
``dlfs.train.recipe`` (Topic 17).

Layout everywhere: x (N, C_in, H, W), weights (C_out, C_in, kh, kw), bias (C_out,),
output (N, C_out, H_out, W_out).

Public names are imported on first use: ``from dlfs.conv import Conv2d, MaxPool2d``. (The
functions ``im2col`` and ``col2im`` are not among them — ``dlfs.conv.im2col`` is the module's
name: ``from dlfs.conv.im2col import im2col, col2im``.)
"""

from dlfs.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "dlfs.conv.geometry": ["pair", "pad_hw", "check_conv_args", "conv_output_size", "conv_geometry",
                           "layer_geometry", "input_grad_is_a_convolution"],
    "dlfs.conv.sliding_window": ["conv2d_forward_naive", "conv2d_backward_naive"],
    "dlfs.conv.im2col": ["conv2d_forward", "conv2d_backward", "Conv2d"],
    "dlfs.conv.pooling": [
        "pool_output_size", "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward",
        "avg_pool2d_backward", "global_avg_pool", "global_avg_pool_backward",
        "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d",
    ],
    "dlfs.conv.modern": [
        "check_grouped_args", "grouped_conv2d_forward", "grouped_conv2d_backward",
        "depthwise_conv2d_forward", "depthwise_conv2d_backward", "pointwise_conv2d_forward",
        "pointwise_conv2d_backward", "receptive_field", "same_padding", "conv2d_params", "conv2d_macs",
        "depthwise_separable_params", "depthwise_separable_macs", "compare_conv_costs",
        "format_cost_table", "GroupedConv2d", "DepthwiseConv2d", "PointwiseConv2d",
        "DepthwiseSeparableConv2d",
    ],
    "dlfs.conv.resnet": ["BasicBlock", "ResNet", "resnet20"],
    "dlfs.conv.resnet9": ["ResNet9", "Residual", "Scale"],
    "dlfs.conv.airbench": ["AirbenchNet"],
})
