"""Topic 14 — residual networks: the basic block and a ResNet for 32×32 images.

A basic block computes ``y = relu(F(x) + S(x))`` with

    F(x) = BN(conv3x3(relu(BN(conv3x3(x, stride)))))         the residual branch
    S(x) = x                                                   identity shortcut, or
    S(x) = BN(conv1x1(x, stride))                              projection shortcut

(the projection is needed when the block changes the number of channels or the stride, so
that F(x) and S(x) have the same shape). In backward the gradient reaching the sum goes down
*both* paths, and through the identity it arrives unchanged::

    dL/dx = dL/ds · (∂F/∂x + 1)        s = F(x) + x, the input of the final ReLU

so however small ∂F/∂x is, the gradient of the block above reaches the block below — why
networks of a hundred layers and more still train. ``residual=False`` drops the shortcut: the
"plain" block, ``y = relu(F(x))``, used to show the difference.

``ResNet`` is the CIFAR design of He et al. (2016, §4.2): a 3×3 stem with ``widths[0]``
channels, three stages of ``blocks_per_stage = n`` basic blocks with ``widths`` channels (the
first block of the 2nd and 3rd stages has stride 2 and a projection shortcut), global average
pooling and a linear classifier: 6n + 2 layers with weights. ``n = 3`` with widths
(16, 32, 64) is ResNet-20 (272,474 parameters).

What you write: the shortcut in ``BasicBlock.__init__``, ``BasicBlock.forward`` and
``BasicBlock.backward``, and the stages and head in ``ResNet.__init__``. The layers
``Conv2d``, ``ReLU``, ``GlobalAvgPool2d``, ``Linear`` and ``Sequential`` come from earlier
topics; ``BatchNorm2d`` comes from Topic 16 (``dlfs.nn.normalization``, batch norm with
per-channel statistics over (N, H, W)), which the course reaches later.

Shapes: x (N, C, H, W); logits (N, num_classes). Everything keeps the parameters' dtype
(float32 for training, float64 for gradient checks).
"""

from __future__ import annotations

import numpy as np

from dlfs.conv.im2col import Conv2d
from dlfs.conv.pooling import GlobalAvgPool2d
from dlfs.nn.activations import ReLU
from dlfs.nn.layers import Layer, Linear, Sequential
from dlfs.nn.batchnorm import BatchNorm2d


class BasicBlock(Layer):
    """conv3x3–BN–ReLU–conv3x3–BN, plus the shortcut, then ReLU.

    x: (N, in_channels, H, W) -> (N, out_channels, H_out, W_out) with
    ``H_out = (H - 1) // stride + 1`` (H/stride for even H), and the same for W.

    Sub-layers, in this order (they draw their weights from ``rng`` in this order):
    ``conv1`` (3×3, ``stride``, padding 1, no bias), ``bn1``, ``relu1``, ``conv2`` (3×3,
    stride 1, padding 1, no bias), ``bn2``, then ``shortcut`` and ``relu_out``, the ReLU after
    the sum. The convolutions have no bias: the BatchNorm2d after each one subtracts the mean,
    which would cancel it, and has its own β.

    ``shortcut`` is ``None`` for the identity (``stride == 1`` and
    ``in_channels == out_channels``) and for a plain block (``residual=False``); otherwise it
    is the projection ``Sequential(Conv2d(in, out, 1, stride, no bias), BatchNorm2d(out))``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, residual: bool = True,
                 rng: np.random.Generator | int | None = None, dtype=np.float32):
        rng = np.random.default_rng(rng)
        self.residual = bool(residual)
        self.conv1 = Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False,
                            rng=rng, dtype=dtype)
        self.bn1 = BatchNorm2d(out_channels, dtype=dtype)
        self.relu1 = ReLU()
        self.conv2 = Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False,
                            rng=rng, dtype=dtype)
        self.bn2 = BatchNorm2d(out_channels, dtype=dtype)
        self.relu_out = ReLU()
        self.shortcut: Sequential | None = None
        # TODO: a projection only when the block is residual and the identity would not fit
        #       (stride != 1 or the channel count changes); draw its weights from rng.
        # BEGIN SOLUTION set self.shortcut to the projection Sequential(conv1x1 with the stride, BN) when the shapes change, else leave None
        if self.residual and (stride != 1 or in_channels != out_channels):
            self.shortcut = Sequential(
                Conv2d(in_channels, out_channels, 1, stride=stride, bias=False, rng=rng, dtype=dtype),
                BatchNorm2d(out_channels, dtype=dtype))
        # END SOLUTION

    def extra_repr(self) -> str:
        kind = "plain" if not self.residual else ("projection" if self.shortcut else "identity")
        return (f"{self.conv1.in_channels}, {self.conv1.out_channels}, stride={self.conv1.stride[0]}, "
                f"shortcut={kind}")

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C_in, H, W) -> (N, C_out, H_out, W_out): ``relu(F(x) + S(x))``, or
        ``relu(F(x))`` for a plain block. Each sub-layer caches what its backward needs."""
        # TODO: the residual branch, plus the shortcut (identity, projection, or nothing when
        #       plain), then the final ReLU. Adding in place is safe: bn2's output is a new array.
        # BEGIN SOLUTION residual branch F(x), add the shortcut S(x) (when residual), final ReLU
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        if self.residual:
            out += x if self.shortcut is None else self.shortcut(x)
        return self.relu_out(out)
        # END SOLUTION

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy: (N, C_out, H_out, W_out) -> dx: (N, C_in, H, W); every parameter's gradient
        accumulates (``+=``) through the sub-layers' backward passes."""
        # TODO: through the final ReLU; a sum copies its gradient to both terms, so the branch
        #       and the shortcut each get the same d; add their two contributions to dx.
        # BEGIN SOLUTION back through the final ReLU, then the branch and the shortcut, summing their dx
        d = self.relu_out.backward(dy)
        dx = self.conv1.backward(self.bn1.backward(self.relu1.backward(self.conv2.backward(self.bn2.backward(d)))))
        if self.residual:
            dx += d if self.shortcut is None else self.shortcut.backward(d)
        return dx
        # END SOLUTION


class ResNet(Layer):
    """A ResNet for 32×32 images (He et al. 2016, CIFAR version).

    ``net`` is one Sequential of, in order:

    - stem: Conv2d(in_channels → widths[0], 3×3, padding 1, no bias), BatchNorm2d, ReLU;
    - stages i = 0, 1, 2, …: ``blocks_per_stage`` BasicBlocks with ``widths[i]`` output
      channels; the first block of every stage but the first has stride 2 (it halves H and W
      and, with its projection shortcut, changes the channel count); the others stride 1;
    - head: GlobalAvgPool2d, then Linear(widths[-1] → num_classes).

    x: (N, in_channels, H, W) -> logits (N, num_classes); 32×32 → 16×16 → 8×8 for CIFAR, but
    any size works (global pooling removes the spatial axes). ``residual=False`` builds the
    plain network of the same depth and widths (Topic 14's experiment). ``depth`` is 6n + 2
    for three stages. Weights are drawn from ``rng`` layer by layer in the order above.
    ``stem_stride=2`` makes the stem halve the image first (a cheaper network that runs every
    stage at half the resolution; Milestone 17's ``quick`` preset).
    """

    def __init__(self, blocks_per_stage: int = 3, widths=(16, 32, 64), num_classes: int = 10,
                 in_channels: int = 3, residual: bool = True,
                 rng: np.random.Generator | int | None = None, dtype=np.float32, stem_stride: int = 1):
        rng = np.random.default_rng(rng)
        self.depth = 6 * blocks_per_stage + 2 if len(widths) == 3 else None
        layers: list[Layer] = [
            Conv2d(in_channels, widths[0], 3, stride=stem_stride, padding=1, bias=False, rng=rng,
                   dtype=dtype),
            BatchNorm2d(widths[0], dtype=dtype),
            ReLU(),
        ]
        # TODO: the blocks of a stage take the previous block's channel count as input; pass
        #       residual, rng and dtype to every block.
        # BEGIN SOLUTION append the stages of BasicBlocks (stride 2 opens every stage after the first), then global average pooling and the Linear head; wrap all the layers in self.net = Sequential(...)
        c = widths[0]
        for stage, width in enumerate(widths):
            for b in range(blocks_per_stage):
                stride = 2 if stage > 0 and b == 0 else 1
                layers.append(BasicBlock(c, width, stride, residual=residual, rng=rng, dtype=dtype))
                c = width
        layers += [GlobalAvgPool2d(), Linear(c, num_classes, rng=rng, dtype=dtype)]
        self.net = Sequential(*layers)
        # END SOLUTION

    def extra_repr(self) -> str:
        return f"depth={self.depth}, parameters={self.num_parameters():,}"

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, in_channels, H, W) -> logits (N, num_classes)."""
        return self.net.forward(x)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy: (N, num_classes) -> dx: (N, in_channels, H, W); parameter grads accumulate."""
        return self.net.backward(dy)


def resnet20(num_classes: int = 10, rng=None, dtype=np.float32) -> ResNet:
    """ResNet-20 for 3-channel 32×32 images: 3 blocks per stage, widths (16, 32, 64),
    272,474 parameters (with 10 classes)."""
    return ResNet(3, (16, 32, 64), num_classes, rng=rng, dtype=dtype)
