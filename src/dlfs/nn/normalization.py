"""Topic 16 — normalisation layers for convolutional and sequence models.

All of them compute ``x̂ = (x − μ) / √(σ² + eps)`` over some axes and then scale and shift
per channel (or per feature); they differ in *which* axes the statistics come from:

    BatchNorm2d   x: (N, C, H, W)   μ, σ² per channel over (N, H, W)   running stats for eval
    LayerNorm     x: (..., *S)      over the trailing axes S = normalized_shape, per sample
    GroupNorm     x: (N, C, H, W)   over (C/G, H, W) for each of G channel groups, per sample
    InstanceNorm  x: (N, C, H, W)   over (H, W), per sample and channel (GroupNorm with G = C)
    RMSNorm       x: (..., *S)      no mean: x / √(mean(x²) + eps), then scale

The backward pass of every one of them is the same identity: with the means taken over the
M values that share a mean and variance, 1/σ̂ = 1/√(σ² + eps) and dx̂ = dy·γ,

    dx = (1/σ̂) · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ · x̂))          means over the shared axes

(see the lesson for the derivation; RMSNorm has no mean term). :func:`normalize` and
:func:`normalize_backward` implement the statistics and this identity once, for any axes;
the layers reshape their input so that the right values share an axis, and add the affine
part. ``BatchNorm2d``, also Topic 16's, lives with Topic 09's ``BatchNorm1d`` in
``dlfs.nn.batchnorm`` (this topic's second exercise file): it writes the same identity out
with its per-channel sums, because it runs on the hot path of a ResNet.

Layers follow the contract of ``dlfs.nn.layers``: ``forward`` caches, ``backward`` returns
dx and accumulates parameter gradients with ``Parameter.accumulate_grad``. Outputs keep
the input's floating dtype (float32 for training, float64 for gradient checks).
"""

from __future__ import annotations

import math

import numpy as np

from dlfs.nn.layers import Layer, Parameter


# -- the shared statistics and their backward -----------------------------------------------

def normalize(x: np.ndarray, axes: tuple[int, ...], eps: float, center: bool = True
              ) -> tuple[np.ndarray, np.ndarray]:
    """Standardise ``x`` over ``axes``; every other index gets its own statistics.

    center=True:  x̂ = (x − μ) / √(σ² + eps), μ and σ² (biased) the mean and variance over axes;
    center=False: x̂ = x / √(mean(x²) + eps)  (RMSNorm: no mean is removed).

    x: any shape, float32 or float64; axes: the axes that share a mean and variance.
    Returns ``(x_hat, inv_std)``: x_hat shaped like x, and inv_std = 1/√(σ² + eps) (or
    1/√(mean(x²) + eps)) shaped like x with the ``axes`` kept as length 1, so that it
    broadcasts against x. Both in x's dtype.
    """
    # TODO: keepdims=True on every reduction keeps the statistics broadcastable against x.
    # BEGIN SOLUTION centre over the axes (unless center=False), then divide by √(mean square + eps); return (x̂, 1/σ̂)
    xc = x - x.mean(axis=axes, keepdims=True) if center else x
    inv_std = 1.0 / np.sqrt(np.mean(xc * xc, axis=axes, keepdims=True) + eps)
    return xc * inv_std, inv_std
    # END SOLUTION


def normalize_backward(dx_hat: np.ndarray, x_hat: np.ndarray, inv_std: np.ndarray,
                       axes: tuple[int, ...], center: bool = True) -> np.ndarray:
    """The gradient of :func:`normalize` with respect to its input x.

    dx = inv_std · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ · x̂))      means over ``axes``
    (without the ``mean(dx̂)`` term when center=False: no mean was removed).

    dx_hat: dL/dx̂, shaped like x; x_hat, inv_std: as returned by :func:`normalize` with
    the same axes and center. Returns dx: shaped like x, in dx_hat's dtype.
    """
    # BEGIN SOLUTION dx̂ minus its projection on x̂ (and minus its mean when centred), times inv_std
    dx = dx_hat - x_hat * np.mean(dx_hat * x_hat, axis=axes, keepdims=True)
    if center:
        dx -= dx_hat.mean(axis=axes, keepdims=True)
    dx *= inv_std
    return dx
    # END SOLUTION


def _trailing_axes(x: np.ndarray, normalized_shape: tuple[int, ...], layer: str) -> tuple[int, ...]:
    """The axes of ``x`` that ``normalized_shape`` covers (its last ones), after checking them."""
    k = len(normalized_shape)
    if x.ndim < k or tuple(x.shape[x.ndim - k:]) != normalized_shape:
        raise ValueError(f"{layer} expects input (..., {', '.join(map(str, normalized_shape))}), "
                         f"got {x.shape}")
    return tuple(range(x.ndim - k, x.ndim))


def _as_shape(normalized_shape) -> tuple[int, ...]:
    shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else normalized_shape
    shape = tuple(int(d) for d in shape)
    if not shape or min(shape) < 1:
        raise ValueError(f"normalized_shape must be a positive size or tuple of sizes, got {normalized_shape}")
    return shape


# -- per-sample normalisations --------------------------------------------------------------

class LayerNorm(Layer):
    """Layer normalisation, as ``torch.nn.LayerNorm``.

    x: (..., *normalized_shape) -> y: the same shape. Each sample (each position of a
    sequence) is standardised over its last ``len(normalized_shape)`` axes with its own μ
    and σ², then y = γ x̂ + β elementwise. Parameters ``gamma`` (ones) and ``beta`` (zeros):
    normalized_shape, or None (``elementwise_affine=False``; ``bias=False`` drops β only).
    No running statistics: training and evaluation compute the same thing.
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, dtype=np.float32):
        self.normalized_shape = _as_shape(normalized_shape)
        self.eps = float(eps)
        self.gamma = Parameter(np.ones(self.normalized_shape, dtype=dtype), name="gamma") \
            if elementwise_affine else None
        self.beta = Parameter(np.zeros(self.normalized_shape, dtype=dtype), name="beta") \
            if elementwise_affine and bias else None
        self.cache: tuple | None = None

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps:g}, elementwise_affine={self.gamma is not None}"

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (..., *normalized_shape) -> same shape. Caches x̂, 1/σ̂ and the axes."""
        axes = _trailing_axes(x, self.normalized_shape, repr(self))
        # TODO: return a new array even without affine parameters: x̂ stays cached, and the
        #       caller may modify the output in place.
        # BEGIN SOLUTION normalize over the trailing axes, cache, then γ x̂ + β (each when present)
        x_hat, inv_std = normalize(x, axes, self.eps)
        self.cache = (x_hat, inv_std, axes)
        y = x_hat * self.gamma.data if self.gamma is not None else x_hat.copy()
        if self.beta is not None:
            y += self.beta.data
        return y
        # END SOLUTION

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy: shaped like x -> dx; accumulates gamma.grad = Σ dy·x̂ and beta.grad = Σ dy over the
        leading axes."""
        if self.cache is None:
            raise RuntimeError("LayerNorm.backward called before forward")
        # BEGIN SOLUTION parameter grads summed over the leading axes; dx̂ = dy·γ through normalize_backward
        x_hat, inv_std, axes = self.cache
        lead = tuple(range(dy.ndim - len(axes)))
        if self.beta is not None:
            self.beta.accumulate_grad(dy.sum(axis=lead))
        if self.gamma is not None:
            self.gamma.accumulate_grad(np.sum(dy * x_hat, axis=lead))
            dy = dy * self.gamma.data
        return normalize_backward(dy, x_hat, inv_std, axes)
        # END SOLUTION


class GroupNorm(Layer):
    """Group normalisation (Wu & He, 2018), as ``torch.nn.GroupNorm``.

    x: (N, C, H, W) — or (N, C, *spatial) — -> y: the same shape. The C channels are split
    into ``num_groups`` groups of C/G consecutive channels; each sample's group is
    standardised over its (C/G, H, W) values, then y = γ x̂ + β per channel. G = 1 is
    LayerNorm over (C, H, W) (with per-channel γ, β); G = C is InstanceNorm. Parameters
    ``gamma`` (ones) and ``beta`` (zeros): (C,), or None with ``affine=False``. No running
    statistics: independent of the batch, identical in training and evaluation.
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 dtype=np.float32):
        if num_groups < 1 or num_channels < 1 or num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be a positive multiple of "
                             f"num_groups ({num_groups})")
        self.num_groups = int(num_groups)
        self.num_channels = int(num_channels)
        self.eps = float(eps)
        self.gamma = Parameter(np.ones(num_channels, dtype=dtype), name="gamma") if affine else None
        self.beta = Parameter(np.zeros(num_channels, dtype=dtype), name="beta") if affine else None
        self.cache: tuple | None = None

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps:g}, affine={self.gamma is not None}"

    def _check(self, x: np.ndarray) -> None:
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"{type(self).__name__} expects input (N, {self.num_channels}, ...), got {x.shape}")

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C, H, W) -> (N, C, H, W). Caches x̂ as (N, G, C/G·H·W), 1/σ̂ as (N, G, 1)."""
        self._check(x)
        # TODO: in NCHW memory the channels of a group are consecutive, so the values of one
        #       (sample, group) pair are a contiguous block: view x as (N, G, C/G·H·W).
        # BEGIN SOLUTION normalize x viewed as (N, G, C/G·H·W) over its last axis, cache, then per-channel γ x̂ + β
        grouped = (x.shape[0], self.num_groups, math.prod(x.shape[1:]) // self.num_groups)
        x_hat, inv_std = normalize(x.reshape(grouped), (2,), self.eps)
        self.cache = (x_hat, inv_std)
        x_hat = x_hat.reshape(x.shape)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        y = x_hat * self.gamma.data.reshape(shape) if self.gamma is not None else x_hat.copy()
        if self.beta is not None:
            y += self.beta.data.reshape(shape)
        return y
        # END SOLUTION

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy: (N, C, H, W) -> dx: (N, C, H, W); accumulates gamma.grad and beta.grad (C,)."""
        if self.cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        # BEGIN SOLUTION parameter grads summed over every axis but C; dx̂ = dy·γ, back through normalize_backward in the grouped view
        x_hat, inv_std = self.cache
        sum_axes = (0,) + tuple(range(2, dy.ndim))
        shape = (1, -1) + (1,) * (dy.ndim - 2)
        if self.beta is not None:
            self.beta.accumulate_grad(dy.sum(axis=sum_axes))
        if self.gamma is not None:
            self.gamma.accumulate_grad(np.sum(dy * x_hat.reshape(dy.shape), axis=sum_axes))
            dy = dy * self.gamma.data.reshape(shape)
        return normalize_backward(dy.reshape(x_hat.shape), x_hat, inv_std, (2,)).reshape(dy.shape)
        # END SOLUTION


class InstanceNorm2d(GroupNorm):
    """Instance normalisation, as ``torch.nn.InstanceNorm2d`` (default ``track_running_stats=False``).

    x: (N, C, H, W) -> y: the same shape. Each (sample, channel) plane is standardised over
    its H·W values — GroupNorm with one channel per group, which is how it is computed.
    ``affine=False`` by default (as in torch): no parameters; with ``affine=True``,
    ``gamma`` and ``beta``: (C,). No running statistics: training and evaluation agree.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = False, dtype=np.float32):
        super().__init__(num_features, num_features, eps=eps, affine=affine, dtype=dtype)
        self.num_features = int(num_features)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps:g}, affine={self.gamma is not None}"

    def _check(self, x: np.ndarray) -> None:
        if x.ndim != 4 or x.shape[1] != self.num_features:
            raise ValueError(f"InstanceNorm2d({self.num_features}) expects input (N, {self.num_features}, H, W), "
                             f"got {x.shape}")


class RMSNorm(Layer):
    """Root-mean-square normalisation (Zhang & Sennrich, 2019), as ``torch.nn.RMSNorm``.

    x: (..., *normalized_shape) -> y: the same shape,
        y = x / √(mean(x²) + eps) · γ          mean over the last len(normalized_shape) axes
    No mean is removed and there is no β. ``eps=None`` uses the machine epsilon of x's
    dtype (as torch). Parameter ``gamma`` (ones): normalized_shape, or None
    (``elementwise_affine=False``).
    """

    def __init__(self, normalized_shape, eps: float | None = None, elementwise_affine: bool = True,
                 dtype=np.float32):
        self.normalized_shape = _as_shape(normalized_shape)
        self.eps = None if eps is None else float(eps)
        self.gamma = Parameter(np.ones(self.normalized_shape, dtype=dtype), name="gamma") \
            if elementwise_affine else None
        self.cache: tuple | None = None

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.gamma is not None}"

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (..., *normalized_shape) -> same shape. Caches x̂, 1/rms and the axes."""
        axes = _trailing_axes(x, self.normalized_shape, repr(self))
        eps = float(np.finfo(x.dtype).eps) if self.eps is None else self.eps
        # BEGIN SOLUTION normalize without centring over the trailing axes, cache, then γ x̂
        x_hat, inv_rms = normalize(x, axes, eps, center=False)
        self.cache = (x_hat, inv_rms, axes)
        return x_hat * self.gamma.data if self.gamma is not None else x_hat.copy()
        # END SOLUTION

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy: shaped like x -> dx; accumulates gamma.grad = Σ dy·x̂ over the leading axes."""
        if self.cache is None:
            raise RuntimeError("RMSNorm.backward called before forward")
        # BEGIN SOLUTION gamma grad summed over the leading axes; dx̂ = dy·γ through normalize_backward without centring
        x_hat, inv_rms, axes = self.cache
        if self.gamma is not None:
            self.gamma.accumulate_grad(np.sum(dy * x_hat, axis=tuple(range(dy.ndim - len(axes)))))
            dy = dy * self.gamma.data
        return normalize_backward(dy, x_hat, inv_rms, axes, center=False)
        # END SOLUTION
