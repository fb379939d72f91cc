"""Convolutions (Module 2).

- ``dlfs.conv.sliding_window`` (Topic 11): conv2d forward and backward as explicit loops over
  output positions, with stride, padding and dilation — the readable definition.
- ``dlfs.conv.im2col`` (Topic 12): ``im2col`` / ``col2im`` with strided views, conv2d forward and
  backward as matrix products, and the ``Conv2d`` layer used by the CIFAR-10 networks.
- ``dlfs.conv.pooling`` (Topic 13): max and average pooling (overlapping windows included),
  global average pooling, output-size arithmetic.
- ``dlfs.conv.resnet`` (Topic 14): the residual basic block and the CIFAR ResNet family.
- ``dlfs.conv.modern`` (Topic 15): grouped, depthwise, pointwise and dilated convolutions,
  parameter and FLOP counts.

Normalisation layers (BatchNorm2d, LayerNorm, GroupNorm, ...) live in ``dlfs.nn.normalization``
(Topic 16); the CIFAR-10 training recipe in ``dlfs.train.recipe`` (Topic 17).

Layout everywhere: x (N, C_in, H, W), weights (C_out, C_in, kh, kw), bias (C_out,),
output (N, C_out, H_out, W_out).
"""
