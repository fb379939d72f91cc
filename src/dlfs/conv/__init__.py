"""Convolutions (Module 2).

- ``dlfs.conv.sliding_window`` (Topic 11): conv2d forward and backward as explicit loops over
  output positions, with stride, padding and dilation — the readable definition.
- ``dlfs.conv.im2col`` (Topic 12): ``im2col`` / ``col2im`` with strided views, conv2d forward and
  backward as matrix products, and the ``Conv2d`` layer used by the CIFAR-10 networks.

Layout everywhere: x (N, C_in, H, W), weights (C_out, C_in, kh, kw), bias (C_out,),
output (N, C_out, H_out, W_out).
"""
