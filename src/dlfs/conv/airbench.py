"""The airbench network: a small, fast CIFAR-10 convolutional network (K. Jordan, "94% on
CIFAR-10 in 3.29 seconds on a single GPU", 2024, arXiv 2404.00498), built from the
library's layers. With widths (w1, w2, w3) and 2×2 whitening::

    whiten   conv 2×2 (3 → 24, bias, frozen: patch-whitening filters)   GELU        31×31
    block1   conv 3×3 (24 → w1)   max-pool 2   BN GELU   conv 3×3 (w1 → w1)   BN GELU   15×15
    block2   conv 3×3 (w1 → w2)   max-pool 2   BN GELU   conv 3×3 (w2 → w2)   BN GELU    7×7
    block3   conv 3×3 (w2 → w3)   max-pool 2   BN GELU   conv 3×3 (w3 → w3)   BN GELU    3×3
    head     max-pool over the whole 3×3 map, flatten, Linear(w3 → classes, no bias), × 1/9

The 3×3 convolutions have padding 1 and no bias; pooling comes before BatchNorm and GELU
(a quarter of their work). The GELUs are the tanh form by default (``gelu="tanh"``; airbench
uses the exact one, ``gelu="none"``): the two differ by less than 5e-4 and, without an
``erf`` in NumPy, the tanh form costs a fifth as much. The convolutions and poolings are
Topic 12's and 13's layers with the batched kernels of ``dlfs.conv.fast``. As in airbench,
the 3×3 convolutions start as partly the identity (``dirac=True``, :func:`dirac_`): their
first filters copy their input channels, an implicit residual connection at initialisation.
The BatchNorms are airbench's (:class:`BiasScaledBatchNorm2d`): no trained scale, shifts that
learn 64× faster, and running statistics with momentum 0.4 (with lookahead, the running
statistics must follow the weights closely).

The whitening layer's filters are set from the training images by
``dlfs.train.whitening.init_whitening`` and are not trained: they are a buffer of the network
(saved in ``state_dict`` as ``whiten_W``), not among its ``parameters()``; its bias is
trained. airbench's own network is widths (64, 256, 256).

Shapes: x (N, in_channels, S, S) -> logits (N, num_classes); S = 32 for CIFAR-10 (any S
whose three halvings after the k×k whitening leave at least one pixel works).
"""

from __future__ import annotations

import numpy as np

from dlfs.conv.fast import FastConv2d as Conv2d
from dlfs.conv.fast import FastMaxPool2d as MaxPool2d
from dlfs.conv.resnet9 import Scale
from dlfs.nn.activations import GELU
from dlfs.nn.batchnorm import BatchNorm2d
from dlfs.nn.layers import Flatten, Layer, Linear, Parameter, Sequential


def dirac_(conv: Conv2d) -> Conv2d:
    """Make the first min(C_out, C_in) filters of a k×k convolution (k odd) the identity: filter
    i has a 1 at the centre of input channel i and zeros elsewhere, so at initialisation those
    outputs copy their inputs — an implicit residual connection (airbench's dirac
    initialisation). The other filters keep their random values. Returns ``conv``."""
    W = conv.W.data
    c_out, c_in, kh, kw = W.shape
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"dirac_ needs an odd kernel size, got {kh}x{kw}")
    n = min(c_out, c_in)
    W[:n] = 0
    W[np.arange(n), np.arange(n), kh // 2, kw // 2] = 1
    return conv


class _Fixed:
    """An array a layer uses like a Parameter (``data``, ``grad``, ``accumulate_grad``) that
    no optimiser sees: not a Parameter, so in neither ``parameters()`` nor ``state_dict()``."""

    def __init__(self, data: np.ndarray):
        self.data, self.grad = data, None

    def accumulate_grad(self, g: np.ndarray) -> None:
        self.grad = np.array(g, dtype=self.data.dtype) if self.grad is None else self.grad + g


class BiasScaledBatchNorm2d(BatchNorm2d):
    """BatchNorm2d whose scale is fixed and whose shift learns fast (airbench's BatchNorm):
    γ stays 1 and β = ``bias_scale`` · b, where b (``bias``, (C,), zeros) is the only
    parameter the optimiser sees.

    Why the factor: for β = s·b the gradient is ∂L/∂b = s·∂L/∂β, so an SGD step on b with
    learning rate η and coupled weight decay λ moves β by −η(s²·∂L/∂β + λβ). Momentum and
    lookahead are linear in the parameter, so the whole trajectory is that of β trained with
    s² times the learning rate and the same decay per step — airbench's 64× learning rate
    for BatchNorm biases is s = 8, with no per-parameter learning rates in the optimiser.

    x: (N, C, H, W) -> (N, C, H, W); ``gamma`` (ones) and ``beta`` (set from ``bias`` at
    every forward) are arrays of the layer, not parameters: they are neither trained nor saved.
    """

    def __init__(self, num_features: int, bias_scale: float = 8.0, eps: float = 1e-5,
                 momentum: float = 0.1, dtype=np.float32):
        super().__init__(num_features, eps=eps, momentum=momentum, dtype=dtype)
        self.bias_scale = float(bias_scale)
        self.bias = Parameter(np.zeros(num_features, dtype=dtype), name="bias")
        self.gamma, self.beta = _Fixed(self.gamma.data), _Fixed(self.beta.data)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bias_scale={self.bias_scale:g}"

    def forward(self, x: np.ndarray) -> np.ndarray:
        np.multiply(self.bias.data, self.bias_scale, out=self.beta.data)
        return super().forward(x)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy: (N, C, H, W) -> dx; accumulates ``bias.grad`` = bias_scale · ∂L/∂β."""
        dx = super().backward(dy)                   # γ and β hold this pass's gradients only
        self.bias.accumulate_grad(self.bias_scale * self.beta.grad)
        self.gamma.grad = self.beta.grad = None
        return dx


def conv_group(c_in: int, c_out: int, rng: np.random.Generator, dtype,
               gelu: str = "tanh", dirac: bool = True, bn_bias_scale: float | None = None,
               bn_momentum: float = 0.1) -> list[Layer]:
    """[Conv 3×3, MaxPool2d(2), BN, GELU, Conv 3×3, BN, GELU]: (N, c_in, s, s) -> (N, c_out, s//2, s//2).
    ``gelu``: the GELU's ``approximate`` ("tanh" or "none"); ``dirac``: identity-initialise the
    first filters of both convolutions (:func:`dirac_`); ``bn_bias_scale``: None for Topic 16's
    BatchNorm2d (γ and β trained), else :class:`BiasScaledBatchNorm2d` with that factor;
    ``bn_momentum``: the BatchNorms' running-statistics momentum."""
    convs = [Conv2d(c_in, c_out, 3, padding=1, bias=False, rng=rng, dtype=dtype),
             Conv2d(c_out, c_out, 3, padding=1, bias=False, rng=rng, dtype=dtype)]
    if dirac:
        for conv in convs:
            dirac_(conv)

    def norm():
        if bn_bias_scale is None:
            return BatchNorm2d(c_out, momentum=bn_momentum, dtype=dtype)
        return BiasScaledBatchNorm2d(c_out, bn_bias_scale, momentum=bn_momentum, dtype=dtype)

    return [convs[0], MaxPool2d(2), norm(), GELU(gelu), convs[1], norm(), GELU(gelu)]


class AirbenchNet(Layer):
    """The airbench network with ``widths`` (w1, w2, w3), ``whiten_kernel`` k, GELU form
    ``gelu``, dirac initialisation ``dirac`` and airbench's BatchNorm (``bn_bias_scale`` 8:
    no trained scale, 64× the learning rate on the shifts; None for Topic 16's BatchNorm2d;
    running statistics with ``bn_momentum`` 0.4, airbench's) (see the module docstring). Weights
    are drawn from ``rng`` layer by layer, in order; the whitening filters start random too until
    ``init_whitening(model.whiten, x_train)`` sets them.

    Two settings save backward work in training (the gradients of the parameters are the same):

    - ``input_grad=False``: ``backward`` returns None instead of the gradient of the images,
      which training never uses; the frozen whitening filters then need no backward at all,
      only the bias its gradient (a sum).
    - ``whiten_bias_steps=S``: the whitening bias trains for the first S backward passes and is
      then frozen, as airbench does after 3 epochs: its gradient stays None, so the optimisers
      skip it (a lookahead exchange can still move it once, to its slow copy). With
      ``input_grad=False`` the backward then stops at the first 3×3 convolution's weights: no
      dx there, no GELU backward at 31×31.
      The count of backward passes is a buffer (``whiten_bias_steps_done``), so a resumed
      run freezes the bias at the same step.
    """

    def __init__(self, widths: tuple[int, int, int] = (64, 256, 256), num_classes: int = 10,
                 in_channels: int = 3, whiten_kernel: int = 2, rng: np.random.Generator | int | None = None,
                 dtype=np.float32, image_size: int = 32, gelu: str = "tanh", dirac: bool = True,
                 bn_bias_scale: float | None = 8.0, bn_momentum: float = 0.4, input_grad: bool = True,
                 whiten_bias_steps: int | None = None):
        if len(widths) != 3:
            raise ValueError(f"AirbenchNet has three blocks, got widths {tuple(widths)}")
        k, s = int(whiten_kernel), int(image_size) - int(whiten_kernel) + 1
        for _ in range(3):
            s //= 2
        if s < 1:
            raise ValueError(f"AirbenchNet: images of size {image_size} are too small for a {k}x{k} "
                             f"whitening layer and three 2x poolings")
        rng = np.random.default_rng(rng)
        self.widths, self.image_size, self.final_size = tuple(int(w) for w in widths), int(image_size), s
        self.input_grad = bool(input_grad)
        self.whiten_bias_steps = None if whiten_bias_steps is None else int(whiten_bias_steps)
        self.whiten_bias_steps_done = np.array(0, dtype=np.int64)
        w1, w2, w3 = self.widths
        whiten_width = 2 * in_channels * k * k
        self.whiten = Conv2d(in_channels, whiten_width, k, bias=True, rng=rng, dtype=dtype)
        bn = {"bn_bias_scale": bn_bias_scale, "bn_momentum": bn_momentum}
        self.net = Sequential(
            GELU(gelu),
            *conv_group(whiten_width, w1, rng, dtype, gelu, dirac, **bn),
            *conv_group(w1, w2, rng, dtype, gelu, dirac, **bn), *conv_group(w2, w3, rng, dtype, gelu, dirac, **bn),
            MaxPool2d(s), Flatten(), Linear(w3, num_classes, bias=False, rng=rng, dtype=dtype),
            Scale(1 / 9),
        )

    def extra_repr(self) -> str:
        return f"widths={self.widths}, parameters={self.num_parameters():,}"

    # the whitening filters are a buffer: saved and loaded, never trained
    def named_parameters(self, prefix: str = ""):
        frozen = self.whiten.W
        return ((name, p) for name, p in super().named_parameters(prefix) if p is not frozen)

    def buffers(self) -> dict[str, np.ndarray]:
        counted = {} if self.whiten_bias_steps is None else {"whiten_bias_steps_done": self.whiten_bias_steps_done}
        return {"whiten_W": self.whiten.W.data, **counted}

    @property
    def whiten_W(self) -> np.ndarray:
        return self.whiten.W.data

    @whiten_W.setter
    def whiten_W(self, value: np.ndarray) -> None:      # used by load_state_dict
        self.whiten.W.data[...] = value

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, in_channels, S, S) with S = image_size -> logits (N, num_classes)."""
        s = self.image_size
        if x.ndim != 4 or x.shape[-2:] != (s, s):
            raise ValueError(f"AirbenchNet expects images of shape (N, C, {s}, {s}), got {x.shape}")
        return self.net.forward(self.whiten.forward(x))

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        """dy: (N, num_classes) -> dx: (N, in_channels, S, S), or None without ``input_grad``;
        parameter grads accumulate (the frozen whitening filters keep no gradient, nor the
        whitening bias after ``whiten_bias_steps`` backward passes)."""
        train_bias = self.whiten_bias_steps is None or int(self.whiten_bias_steps_done) < self.whiten_bias_steps
        self.whiten_bias_steps_done = np.array(int(self.whiten_bias_steps_done) + 1, dtype=np.int64)
        dx = None
        if not self.input_grad and not train_bias:
            gelu, first_conv, *rest = self.net.layers
            for layer in reversed(rest):
                dy = layer.backward(dy)
            first_conv.backward_weights(dy)
        else:
            d = self.net.backward(dy)                           # (N, 2·C·k·k, S - k + 1, S - k + 1)
            if self.input_grad:
                dx = self.whiten.backward(d)
            else:
                self.whiten.b.accumulate_grad(d.reshape(len(d), d.shape[1], -1).sum(axis=(0, 2)))
        # None, not zeros: the optimisers skip the parameter (no decay, no momentum)
        self.whiten.W.grad = None
        if not train_bias:
            self.whiten.b.grad = None
        return dx
