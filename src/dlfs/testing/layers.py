"""Test helpers for whole layers and networks: non-trivial BatchNorm state, and the older
name of the one-input gradient check (:func:`dlfs.testing.check_layer` does the work)."""

from __future__ import annotations

import numpy as np

from dlfs.testing.checks import check_layer


def randomize_batchnorm(model, seed: int = 0) -> None:
    """Give every BatchNorm2d of ``model`` non-trivial γ, β and running statistics (the defaults
    1, 0, 0, 1 would hide a γ/β mix-up or a missing normalisation)."""
    from dlfs.nn.batchnorm import BatchNorm2d

    rng = np.random.default_rng(seed)
    for bn in [l for l in model.sublayers() if isinstance(l, BatchNorm2d)]:
        c = bn.num_features
        bn.gamma.data[...] = rng.uniform(0.5, 1.5, c)
        bn.beta.data[...] = rng.normal(0.0, 0.3, c)
        if hasattr(bn, "bias_scale"):       # airbench's BatchNorm: β is bias_scale · bias
            bn.bias.data[...] = bn.beta.data / bn.bias_scale
        bn.running_mean = rng.normal(0.0, 0.3, c).astype(bn.running_mean.dtype)
        bn.running_var = rng.uniform(0.5, 2.0, c).astype(bn.running_var.dtype)


def check_layer_gradients(layer, x: np.ndarray, *, seed: int = 0, h: float = 1e-6,
                          tol: float = 1e-6) -> dict[str, float]:
    """:func:`dlfs.testing.check_layer` for a one-input layer without a PyTorch counterpart:
    dx and every parameter's gradient against central differences. Returns name -> max
    relative error ("x" for the input); raises AssertionError naming the first that disagrees."""
    return check_layer(layer, x, seed=seed, h=h, tol=tol).errors
