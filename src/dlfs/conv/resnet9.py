"""ResNet-9: a fast residual network for CIFAR-10, after D. Page's DAWNBench design (2018).

Where ResNet-20 (Topic 14) spends 18 thin layers, ResNet-9 spends 8 wide ones and pools
early, so most of its arithmetic runs at 16×16 and below, in large matrix products that an
im2col convolution (Topic 12) does efficiently. It reaches a given CIFAR-10 accuracy in
far fewer epochs than ResNet-20. With base width ``c``::

    prep     conv(3 → c)                      BN ReLU            32×32
    layer1   conv(c → 2c)    max-pool 2       BN ReLU            16×16
             + Residual(conv-BN-ReLU, conv-BN-ReLU)  (2c)
    layer2   conv(2c → 4c)   max-pool 2       BN ReLU             8×8
    layer3   conv(4c → 8c)   max-pool 2       BN ReLU             4×4
             + Residual(conv-BN-ReLU, conv-BN-ReLU)  (8c)
    head     max-pool 4 (the whole 4×4 map), flatten, Linear(8c → classes), × 0.125

All convolutions are 3×3 with padding 1 and no bias (the BatchNorm after each has its own β).
Pooling before the BatchNorm and ReLU (rather than after) gives the same kind of network and
a quarter of their work. The final scale 0.125 keeps the initial logits small. ``c = 64`` is
Page's network (6.6 M parameters); Milestone 17 uses ``c = 32`` (1.6 M), a quarter of the
arithmetic.

Shapes: x (N, 3, 32, 32) -> logits (N, num_classes). Other square sizes divisible by 8 work
with ``image_size`` (the head then pools the whole ``image_size / 8`` map; the tests use small
images).
"""

from __future__ import annotations

import numpy as np

from dlfs.conv.fast import FastConv2d as Conv2d
from dlfs.conv.fast import FastMaxPool2d as MaxPool2d
from dlfs.nn.activations import ReLU
from dlfs.nn.layers import Flatten, Layer, Linear, Sequential
from dlfs.nn.batchnorm import BatchNorm2d


class Residual(Layer):
    """``y = x + body(x)``: a skip connection around any shape-preserving layer.

    x: (N, …) -> y: same shape. Backward: the sum copies dy to both terms, so
    ``dx = dy + body.backward(dy)``.
    """

    def __init__(self, body: Layer):
        self.body = body

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = self.body.forward(x)
        if out.shape != x.shape:
            raise ValueError(f"Residual: the body must keep the shape {x.shape}, it returned {out.shape}")
        out += x                     # the body's output is a fresh array
        return out

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx = self.body.backward(dy)
        dx += dy
        return dx


class Scale(Layer):
    """``y = factor · x`` with a fixed factor (no parameter). x: any shape."""

    def __init__(self, factor: float):
        self.factor = float(factor)

    def extra_repr(self) -> str:
        return f"{self.factor}"

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x * np.asarray(self.factor, dtype=x.dtype)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy * np.asarray(self.factor, dtype=dy.dtype)


def conv_bn_relu(c_in: int, c_out: int, rng: np.random.Generator, dtype, pool: bool = False) -> list[Layer]:
    """[Conv2d 3×3 (no bias), optional MaxPool2d(2), BatchNorm2d, ReLU]."""
    layers: list[Layer] = [Conv2d(c_in, c_out, 3, padding=1, bias=False, rng=rng, dtype=dtype)]
    if pool:
        layers.append(MaxPool2d(2))
    return layers + [BatchNorm2d(c_out, dtype=dtype), ReLU()]


class ResNet9(Layer):
    """ResNet-9 with base width ``width`` (see the module docstring for the layers).

    x: (N, in_channels, image_size, image_size) -> logits (N, num_classes); ``image_size``
    must be a multiple of 8 (three 2× poolings, then one over the whole remaining map).
    Weights are drawn from ``rng`` layer by layer, in order.
    """

    def __init__(self, width: int = 32, num_classes: int = 10, in_channels: int = 3,
                 rng: np.random.Generator | int | None = None, dtype=np.float32, image_size: int = 32):
        if image_size < 8 or image_size % 8:
            raise ValueError(f"ResNet9 needs an image size that is a multiple of 8, got {image_size}")
        rng = np.random.default_rng(rng)
        c1, c2, c3, c4 = width, 2 * width, 4 * width, 8 * width
        self.width, self.image_size = int(width), int(image_size)

        def res(c):
            return Residual(Sequential(*conv_bn_relu(c, c, rng, dtype), *conv_bn_relu(c, c, rng, dtype)))

        self.net = Sequential(
            *conv_bn_relu(in_channels, c1, rng, dtype),
            *conv_bn_relu(c1, c2, rng, dtype, pool=True), res(c2),
            *conv_bn_relu(c2, c3, rng, dtype, pool=True),
            *conv_bn_relu(c3, c4, rng, dtype, pool=True), res(c4),
            MaxPool2d(image_size // 8), Flatten(), Linear(c4, num_classes, rng=rng, dtype=dtype), Scale(0.125),
        )

    def extra_repr(self) -> str:
        return f"width={self.width}, parameters={self.num_parameters():,}"

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, in_channels, S, S) with S = image_size -> logits (N, num_classes)."""
        s = self.image_size
        if x.ndim != 4 or x.shape[-2:] != (s, s):
            raise ValueError(f"ResNet9 expects images of shape (N, C, {s}, {s}), got {x.shape}")
        return self.net.forward(x)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy: (N, num_classes) -> dx: (N, in_channels, S, S); parameter grads accumulate."""
        return self.net.backward(dy)
