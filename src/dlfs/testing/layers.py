"""Test helpers for whole layers and networks: non-trivial BatchNorm state, and a gradient
check of a layer's input and every parameter at once."""

from __future__ import annotations

import numpy as np

from dlfs.testing.gradcheck import check_gradients


def randomize_batchnorm(model, seed: int = 0) -> None:
    """Give every BatchNorm2d of ``model`` non-trivial γ, β and running statistics (the defaults
    1, 0, 0, 1 would hide a γ/β mix-up or a missing normalisation)."""
    from dlfs.nn.normalization import BatchNorm2d

    rng = np.random.default_rng(seed)
    for bn in [l for l in model.sublayers() if isinstance(l, BatchNorm2d)]:
        c = bn.num_features
        bn.gamma.data[...] = rng.uniform(0.5, 1.5, c)
        bn.beta.data[...] = rng.normal(0.0, 0.3, c)
        bn.running_mean = rng.normal(0.0, 0.3, c).astype(bn.running_mean.dtype)
        bn.running_var = rng.uniform(0.5, 2.0, c).astype(bn.running_var.dtype)


def check_layer_gradients(layer, x: np.ndarray, *, seed: int = 0, h: float = 1e-6,
                          tol: float = 1e-6) -> dict[str, float]:
    """Run ``layer`` forward on x (float64) and backward with a random upstream gradient (from
    ``seed``), then compare dx and every parameter's gradient with central differences.

    The parameters' gradients are cleared first. Returns name -> max relative error ("x" for
    the input); raises AssertionError naming the first gradient that disagrees."""
    layer.zero_grad()
    y = layer.forward(x)
    dy = np.random.default_rng(seed).standard_normal(y.shape)
    dx = layer.backward(dy)
    params = dict(layer.named_parameters())
    inputs = {"x": x, **{name: p.data for name, p in params.items()}}
    analytic = {"x": dx, **{name: p.grad for name, p in params.items()}}
    return check_gradients(lambda: layer.forward(x), inputs, analytic, dout=dy, h=h, tol=tol)
