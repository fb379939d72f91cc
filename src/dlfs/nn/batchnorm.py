"""Batch normalisation: ``BatchNorm1d`` (Topic 09) and ``BatchNorm2d`` (Topic 16).

Both standardise every feature with the statistics of the batch in training, then scale and
shift it with a learnable γ and β. ``BatchNorm1d`` normalises each feature of x: (N, D) over
the N samples; ``BatchNorm2d`` each channel of x: (N, C, H, W) over its M = N·H·W values::

    μ = mean x,   σ² = mean (x - μ)²   (biased),   x̂ = (x - μ) / √(σ² + eps),   y = γ x̂ + β
    running_mean ← (1 - momentum) running_mean + momentum μ
    running_var  ← (1 - momentum) running_var  + momentum σ² M / (M - 1)   (unbiased)

Evaluation uses running_mean and running_var in place of μ and σ². The backward pass in
training goes through μ and σ² too (every value of a feature affects every output of it)::

    dx = (γ / √(σ² + eps)) (dy - mean(dy) - x̂ mean(dy x̂))        means over the M values
    dγ += Σ dy x̂,   dβ += Σ dy

Topic 09 writes :class:`BatchNorm1d` and :meth:`BatchNormBase.update_running_stats`; Topic 16
writes BatchNorm2d's math on a block of channels (:func:`_batchnorm2d_forward_block`,
:func:`_batchnorm2d_backward_block`). This module is the exercise file of both topics
(``workspace/09-regularization/batchnorm.py``, ``workspace/16-normalization/batchnorm.py``);
in each, the other topic's parts may stay as they are.

BatchNorm2d sits after every convolution of a ResNet, so its given ``forward`` and
``backward`` split the channels into one block per core and run the blocks in parallel
threads (``dlfs.parallel.map_blocks``); the block functions write into slices of arrays
allocated once.

Layers follow the contract of ``dlfs.nn.layers``: ``forward`` caches, ``backward`` returns
dx and accumulates parameter gradients with ``Parameter.accumulate_grad`` (a gradient an
optimiser set to None starts afresh). Outputs keep the input's floating dtype.
"""

from __future__ import annotations

import numpy as np

from dlfs.nn.layers import Layer, Parameter
from dlfs.parallel import map_blocks

__all__ = ["BatchNormBase", "BatchNorm1d", "BatchNorm2d"]


class BatchNormBase(Layer):
    """What every batch norm has: per-feature ``gamma`` (ones) and ``beta`` (zeros), running
    statistics ``running_mean`` (zeros) and ``running_var`` (ones) saved in ``state_dict``,
    ``eps`` and ``momentum``. Subclasses say which axes hold the batch (forward/backward)."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 dtype=np.float32):
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.gamma = Parameter(np.ones(num_features, dtype=dtype), name="gamma")
        self.beta = Parameter(np.zeros(num_features, dtype=dtype), name="beta")
        self.running_mean = np.zeros(num_features, dtype=dtype)
        self.running_var = np.ones(num_features, dtype=dtype)
        self.cache: tuple | None = None

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps:g}, momentum={self.momentum:g}"

    def buffers(self) -> dict[str, np.ndarray]:
        return {"running_mean": self.running_mean, "running_var": self.running_var}

    def update_running_stats(self, mean: np.ndarray, var: np.ndarray, count: int) -> None:
        """Move the running statistics towards those of a training batch.

        mean, var: (num_features,), the batch's mean and *biased* variance, each over the
        ``count`` > 1 values of a feature. With m = momentum:

            running_mean ← (1 - m) running_mean + m mean
            running_var  ← (1 - m) running_var  + m var · count / (count - 1)   (unbiased)

        The running statistics keep their dtype (float32 for a float32 layer, whatever the
        batch's dtype).
        """
        # BEGIN SOLUTION exponential moving averages of the mean and of the unbiased variance, cast back to the buffers' dtype
        m = self.momentum
        self.running_mean = ((1 - m) * self.running_mean + m * mean).astype(self.running_mean.dtype)
        self.running_var = ((1 - m) * self.running_var + m * var * (count / (count - 1))).astype(
            self.running_var.dtype)
        # END SOLUTION


# -- Topic 09: batch normalisation of features ----------------------------------------------

class BatchNorm1d(BatchNormBase):
    """Batch normalisation over the batch axis, as ``torch.nn.BatchNorm1d`` for (N, D) input.

    Training: per feature, μ and σ² (biased) over the N samples, x̂ = (x - μ) / √(σ² + eps),
    y = γ x̂ + β, and the running statistics move towards μ and σ²
    (:meth:`update_running_stats`). Evaluation: the same with μ, σ² replaced by
    running_mean, running_var.

    Backward in training goes through μ and σ² too (every x_n affects every y_m):
        dx = (1/N) γ / √(σ² + eps) (N dy - Σ_n dy - x̂ Σ_n (dy x̂))
        dγ += Σ_n dy x̂,   dβ += Σ_n dy

    x: (N, D) -> y: (N, D). Parameters ``gamma``, ``beta``: (D,); buffers ``running_mean``
    (zeros) and ``running_var`` (ones): (D,), saved in ``state_dict``.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm1d({self.num_features}) expects input (N, {self.num_features}), "
                             f"got {x.shape}")
        # TODO: training needs N > 1 (raise ValueError otherwise: one sample has no variance).
        # Cache x̂, 1/√(σ² + eps) and the mode for backward.
        # BEGIN SOLUTION normalise with batch statistics (training, updating the running ones) or running statistics (eval)
        if self.training:
            n = x.shape[0]
            if n < 2:
                raise ValueError(f"BatchNorm1d needs more than one sample per batch in training, got {n}")
            mean = x.mean(axis=0)
            var = x.var(axis=0)
            self.update_running_stats(mean, var, n)
        else:
            mean = self.running_mean.astype(x.dtype, copy=False)
            var = self.running_var.astype(x.dtype, copy=False)
        inv_std = 1.0 / np.sqrt(var + self.eps)
        x_hat = (x - mean) * inv_std
        self.cache = (x_hat, inv_std, self.training)
        return self.gamma.data * x_hat + self.beta.data
        # END SOLUTION

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy: (N, D) -> dx: (N, D); accumulates gamma.grad and beta.grad."""
        # BEGIN SOLUTION accumulate dgamma, dbeta; dx with the compact formula in training, dy γ inv_std in eval
        x_hat, inv_std, training = self.cache
        self.gamma.accumulate_grad(np.sum(dy * x_hat, axis=0))
        self.beta.accumulate_grad(np.sum(dy, axis=0))
        g = self.gamma.data * inv_std
        if not training:
            return dy * g
        n = dy.shape[0]
        return (g / n) * (n * dy - dy.sum(axis=0) - x_hat * np.sum(dy * x_hat, axis=0))
        # END SOLUTION


# -- Topic 16: batch normalisation of images ------------------------------------------------

def _batchnorm2d_forward_block(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float,
                               training: bool, mean: np.ndarray, var: np.ndarray,
                               inv_std: np.ndarray, x_hat: np.ndarray, y: np.ndarray) -> None:
    """BatchNorm2d's forward on a block of Cb channels, written into the given arrays.

    x: (N, Cb, H, W); gamma, beta: (Cb,); eps: a float.
    mean, var: (Cb,). In training, write into them each channel's mean and biased variance
    over its M = N·H·W values; in evaluation they hold the running statistics: read them.
    inv_std: (Cb,), write 1/√(var + eps). x_hat, y: (N, Cb, H, W), write x̂ = (x - mean)·inv_std
    and y = gamma·x̂ + beta.

    Every output is a slice of an array of ``BatchNorm2d.forward`` (other threads fill the
    other channels): write into it (``out=``, ``a[...] = ``, ``*=``), never rebind the name.
    """
    # TODO: the clear version is fine (the tests accept it); the fast one computes the variance
    #       with np.einsum("nchw,nchw->c", xc, xc) (no xc² temporary) and turns x - mean into x̂
    #       in place, in the x_hat buffer.
    # BEGIN SOLUTION per-channel statistics over (N, H, W) in training, then x̂ and y into the given buffers
    shape = (1, -1, 1, 1)
    m = x.shape[0] * x.shape[2] * x.shape[3]
    if training:
        mean[...] = x.mean(axis=(0, 2, 3))
    np.subtract(x, mean.reshape(shape), out=x_hat)
    if training:
        var[...] = np.einsum("nchw,nchw->c", x_hat, x_hat) / m
    inv_std[...] = 1.0 / np.sqrt(var + eps)
    x_hat *= inv_std.reshape(shape)
    np.multiply(x_hat, gamma.reshape(shape), out=y)
    y += beta.reshape(shape)
    # END SOLUTION


def _batchnorm2d_backward_block(dy: np.ndarray, x_hat: np.ndarray, inv_std: np.ndarray,
                                gamma: np.ndarray, training: bool, dgamma: np.ndarray,
                                dbeta: np.ndarray, dx: np.ndarray) -> None:
    """BatchNorm2d's backward on a block of Cb channels, written into the given arrays.

    dy, x_hat: (N, Cb, H, W); inv_std, gamma: (Cb,), as cached by the forward.
    Write dgamma = Σ dy·x̂ and dbeta = Σ dy over (N, H, W) into dgamma, dbeta: (Cb,), and the
    input gradient into dx: (N, Cb, H, W) — the compact formula in training, dy·γ·inv_std in
    evaluation (the running statistics are constants). Outputs are slices, as in the forward.
    """
    # TODO: with dx̂ = γ·dy, and γ and inv_std constant over a channel's M = N·H·W values,
    #       mean(dx̂) = γ·dbeta/M and mean(dx̂·x̂) = γ·dgamma/M: reuse the parameter gradients
    #       instead of forming dx̂.
    # BEGIN SOLUTION dgamma and dbeta by sums over (N, H, W); dx by the compact formula (training) or dy·γ·inv_std (eval)
    shape = (1, -1, 1, 1)
    m = dy.shape[0] * dy.shape[2] * dy.shape[3]
    dbeta[...] = db = dy.sum(axis=(0, 2, 3))
    dgamma[...] = dg = np.einsum("nchw,nchw->c", dy, x_hat)
    g = (gamma * inv_std).astype(dy.dtype, copy=False).reshape(shape)
    if not training:
        np.multiply(dy, g, out=dx)
        return
    np.multiply(x_hat, (dg / m).reshape(shape), out=dx)
    dx += (db / m).reshape(shape)
    np.subtract(dy, dx, out=dx)
    dx *= g
    # END SOLUTION


class BatchNorm2d(BatchNormBase):
    """Batch normalisation for images, as ``torch.nn.BatchNorm2d``.

    x: (N, C, H, W) -> y: (N, C, H, W). Training: per channel, μ and σ² (biased) over the
    N·H·W values of that channel; ``running_mean``/``running_var`` (C,) move towards μ and
    the *unbiased* σ² with ``momentum``. Evaluation: the running statistics instead.
    Parameters ``gamma`` (ones) and ``beta`` (zeros): (C,). Buffers saved in ``state_dict``.

    ``forward`` and ``backward`` are given: they allocate the outputs, run the block
    functions above on blocks of channels in parallel, update the running statistics and
    accumulate the parameter gradients.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C, H, W) -> (N, C, H, W). Caches x̂ and 1/σ̂ for backward."""
        if x.ndim != 4 or x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm2d({self.num_features}) expects input (N, {self.num_features}, H, W), "
                             f"got {x.shape}")
        n, c, h, w = x.shape
        count = n * h * w
        training = self.training
        if training and count < 2:
            raise ValueError(f"BatchNorm2d needs more than one value per channel in training, got {x.shape}")
        if training:
            mean, var = np.empty(c, dtype=x.dtype), np.empty(c, dtype=x.dtype)
        else:
            mean = self.running_mean.astype(x.dtype, copy=False)
            var = self.running_var.astype(x.dtype, copy=False)
        inv_std = np.empty(c, dtype=x.dtype)
        x_hat, y = np.empty_like(x), np.empty_like(x)
        gamma, beta = self.gamma.data, self.beta.data

        def block(c0, c1):                         # channels are independent: blocks run in parallel
            _batchnorm2d_forward_block(x[:, c0:c1], gamma[c0:c1], beta[c0:c1], self.eps, training,
                                       mean[c0:c1], var[c0:c1], inv_std[c0:c1], x_hat[:, c0:c1], y[:, c0:c1])

        map_blocks(block, c)
        if training:
            self.update_running_stats(mean, var, count)
        self.cache = (x_hat, inv_std, training)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy: (N, C, H, W) -> dx: (N, C, H, W); accumulates gamma.grad and beta.grad."""
        if self.cache is None:
            raise RuntimeError("BatchNorm2d.backward called before forward")
        x_hat, inv_std, training = self.cache
        c = dy.shape[1]
        dgamma, dbeta = np.empty(c, dtype=dy.dtype), np.empty(c, dtype=dy.dtype)
        dx = np.empty_like(dy)
        gamma = self.gamma.data

        def block(c0, c1):
            _batchnorm2d_backward_block(dy[:, c0:c1], x_hat[:, c0:c1], inv_std[c0:c1], gamma[c0:c1], training,
                                        dgamma[c0:c1], dbeta[c0:c1], dx[:, c0:c1])

        map_blocks(block, c)
        self.gamma.accumulate_grad(dgamma)
        self.beta.accumulate_grad(dbeta)
        return dx
