"""Patch-whitening initialisation of a network's first convolution (Jordan's airbench, 2024).

The first layer of the airbench network is a k×k convolution (k = 2) whose filters are not
learned: they whiten the k×k patches of the training images. With the patches flattened to
vectors p ∈ R^d (d = C·k·k) and their covariance Σ = V diag(λ) Vᵀ (eigendecomposition),
the filter i is the eigenvector v_i scaled by 1 / √(λ_i + eps):

    z_i = v_iᵀ p / √(λ_i + eps)          Cov(z) = diag(λ / (λ + eps))  ≈  I

so the layer's outputs are decorrelated with unit variance along every direction where the
patches vary by more than eps (the small directions are not blown up: eps caps their gain
at 1/√eps). Each filter appears twice, as +v_i and −v_i, so that the GELU after the layer
keeps both signs of every whitened coordinate: 2d output channels in all, largest
eigenvalue first.

Shapes: images x (N, C, H, W); filters (2·C·k·k, C, k, k).
"""

from __future__ import annotations

import numpy as np


def image_patches(x: np.ndarray, kernel_size: int = 2) -> np.ndarray:
    """Every k×k patch (stride 1, no padding) of every image, flattened in the order of a
    convolution filter's (C, k, k) layout.

    x: (N, C, H, W) -> (N·(H−k+1)·(W−k+1), C·k·k), in x's dtype."""
    if x.ndim != 4:
        raise ValueError(f"image_patches expects images (N, C, H, W), got shape {x.shape}")
    k = int(kernel_size)
    if k < 1 or k > min(x.shape[2:]):
        raise ValueError(f"kernel_size must be between 1 and the image size {x.shape[2:]}, got {k}")
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))   # (N, C, H', W', k, k)
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(-1, x.shape[1] * k * k)


def patch_whitening_filters(x: np.ndarray, kernel_size: int = 2, eps: float = 5e-4
                            ) -> tuple[np.ndarray, np.ndarray]:
    """The whitening filters of the k×k patches of ``x`` and the patch covariance's eigenvalues.

    x: (N, C, H, W) training images (normalised as the network will see them).
    Returns ``(W, eigenvalues)``: W (2d, C, k, k) float64 with d = C·k·k, rows ``v_i / √(λ_i + eps)``
    for i in order of decreasing λ, followed by the same rows negated; eigenvalues (d,) float64,
    decreasing. Raises ValueError for eps <= 0 or fewer than two patches.
    """
    if eps <= 0:
        raise ValueError(f"eps must be > 0 (it bounds the gain of flat directions), got {eps}")
    c, k = x.shape[1], int(kernel_size)
    patches = image_patches(x, k).astype(np.float64)
    if len(patches) < 2:
        raise ValueError("need at least two patches to estimate their covariance")
    cov = np.cov(patches, rowvar=False)
    eigenvalues, eigenvectors = np.linalg.eigh(cov)          # ascending
    eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
    filters = (eigenvectors / np.sqrt(eigenvalues + eps)).T.reshape(-1, c, k, k)
    return np.concatenate([filters, -filters]), eigenvalues


def init_whitening(conv, x: np.ndarray, eps: float = 5e-4) -> np.ndarray:
    """Set ``conv`` (a ``dlfs.conv.im2col.Conv2d`` with 2·C·k·k output channels, square k×k
    kernel, stride 1) to the patch-whitening filters of ``x`` and its bias to zero.

    x: (N, C, H, W). Returns the eigenvalues (d,) of the patch covariance. The weights are
    cast to the layer's dtype; ValueError when the layer's shape does not fit."""
    k = conv.kernel_size[0]
    expected = (2 * x.shape[1] * k * k, x.shape[1], k, k)
    if conv.kernel_size[0] != conv.kernel_size[1] or conv.W.data.shape != expected:
        raise ValueError(f"a whitening layer for {x.shape[1]}-channel images with {k}x{k} patches has "
                         f"weights {expected}, this one has {conv.W.data.shape}")
    filters, eigenvalues = patch_whitening_filters(x, k, eps)
    conv.W.data[...] = filters
    if conv.b is not None:
        conv.b.data[...] = 0
    return eigenvalues
