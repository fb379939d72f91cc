"""Topic 05 — Weight initialisation: fans, gains, Xavier/Glorot, Kaiming/He and LeCun.

A good initialisation keeps the variance of the signal roughly constant from layer to layer,
so that a deep network neither fades to zero nor blows up before training starts.

**Weight layouts.** Our layers compute ``x @ W + b``, so a fully connected weight is stored
``(in_features, out_features)`` — the transpose of PyTorch's ``nn.Linear.weight``
``(out, in)``. Convolution weights (Module 2) are stored like PyTorch's,
``(C_out, C_in, *kernel)``. Hence:

=====================  ==========================  ===========================
weight shape           fan_in                      fan_out
=====================  ==========================  ===========================
``(D_in, D_out)``      ``D_in``                    ``D_out``
``(C_out, C_in, *k)``  ``C_in · prod(k)``          ``C_out · prod(k)``
=====================  ==========================  ===========================

**The formulas** (``gain`` from :func:`calculate_gain`):

* Xavier / Glorot: ``std = gain · sqrt(2 / (fan_in + fan_out))``; uniform bound
  ``a = gain · sqrt(6 / (fan_in + fan_out))``.
* Kaiming / He: ``std = gain / sqrt(fan)``; uniform bound ``a = gain · sqrt(3 / fan)``, with
  ``fan`` = fan_in (preserves the forward signal) or fan_out (preserves the gradients).
* LeCun normal: ``std = 1 / sqrt(fan_in)``.

A uniform draw on ``[-a, a]`` has standard deviation ``a / sqrt(3)``, which is why the
uniform bounds carry ``sqrt(3)`` times the normal std.

Every initialiser takes ``rng`` (an ``np.random.Generator``, an integer seed, or None for a
fresh generator; ``np.random.default_rng`` returns a Generator unchanged) and returns an array
of ``shape`` in ``dtype`` (float32 by default).
"""

from __future__ import annotations

import math

import numpy as np

_LINEAR_GAIN_NAMES = ("linear", "conv1d", "conv2d", "conv3d",
                      "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "sigmoid")


def _fan(shape, mode: str) -> int:
    """fan_in or fan_out of ``shape`` according to ``mode`` (given; uses calculate_fans)."""
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = calculate_fans(shape)
    return fan_in if mode == "fan_in" else fan_out


def calculate_fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of ``shape``.

    shape: ``(D_in, D_out)`` for a fully connected weight (used as ``x @ W``), or
    ``(C_out, C_in, *kernel)`` for a convolution weight, whose fans are multiplied by the
    receptive-field size ``prod(kernel)``. Raises ValueError for fewer than 2 dimensions
    (a bias has no fans).
    """
    shape = tuple(int(s) for s in shape)
    # TODO: note the two layouts put the input dimension in different places.
    # BEGIN SOLUTION return (fan_in, fan_out): (D_in, D_out) for 2-D; (C_in·prod(k), C_out·prod(k)) for conv weights
    if len(shape) < 2:
        raise ValueError(f"fans need a weight with at least 2 dimensions, got shape {shape}")
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive_field = math.prod(shape[2:])
    return shape[1] * receptive_field, shape[0] * receptive_field
    # END SOLUTION


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity, as in ``torch.nn.init.calculate_gain``.

    linear / conv* / sigmoid: 1;  tanh: 5/3;  relu: sqrt(2);  selu: 3/4;
    leaky_relu: sqrt(2 / (1 + a²)) with negative slope ``a = param`` (0.01 when None).
    Raises ValueError for an unknown name or a non-numeric ``param`` of leaky_relu.
    """
    # BEGIN SOLUTION return the gain of each nonlinearity; ValueError for unknown names
    if nonlinearity in _LINEAR_GAIN_NAMES:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")
    # END SOLUTION


def xavier_uniform(shape, gain: float = 1.0, rng=None, dtype=np.float32) -> np.ndarray:
    """Glorot uniform: U(-a, a) with ``a = gain · sqrt(6 / (fan_in + fan_out))``. -> ``shape``."""
    rng = np.random.default_rng(rng)
    # BEGIN SOLUTION draw uniformly in [-a, a] with a = gain * sqrt(6 / (fan_in + fan_out)); cast to dtype
    fan_in, fan_out = calculate_fans(shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=tuple(shape)).astype(dtype)
    # END SOLUTION


def xavier_normal(shape, gain: float = 1.0, rng=None, dtype=np.float32) -> np.ndarray:
    """Glorot normal: N(0, std²) with ``std = gain · sqrt(2 / (fan_in + fan_out))``. -> ``shape``."""
    rng = np.random.default_rng(rng)
    # BEGIN SOLUTION draw from N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out)); cast to dtype
    fan_in, fan_out = calculate_fans(shape)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return (rng.standard_normal(tuple(shape)) * std).astype(dtype)
    # END SOLUTION


def kaiming_uniform(shape, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "relu",
                    rng=None, dtype=np.float32) -> np.ndarray:
    """He uniform: U(-bound, bound) with ``bound = gain · sqrt(3 / fan)``. -> ``shape``.

    gain = calculate_gain(nonlinearity, a) (``a`` is the negative slope of leaky_relu);
    fan = fan_in (``mode="fan_in"``, keeps the forward variance) or fan_out (``"fan_out"``,
    keeps the backward variance).
    """
    rng = np.random.default_rng(rng)
    fan = _fan(shape, mode)
    # BEGIN SOLUTION draw uniformly in [-bound, bound] with bound = gain * sqrt(3 / fan); cast to dtype
    gain = calculate_gain(nonlinearity, a)
    bound = gain * math.sqrt(3.0 / fan)
    return rng.uniform(-bound, bound, size=tuple(shape)).astype(dtype)
    # END SOLUTION


def kaiming_normal(shape, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "relu",
                   rng=None, dtype=np.float32) -> np.ndarray:
    """He normal: N(0, std²) with ``std = gain / sqrt(fan)``. -> ``shape``.

    gain, fan and mode as in :func:`kaiming_uniform`. For ReLU: ``std = sqrt(2 / fan_in)``.
    """
    rng = np.random.default_rng(rng)
    fan = _fan(shape, mode)
    # BEGIN SOLUTION draw from N(0, std^2) with std = gain / sqrt(fan); cast to dtype
    gain = calculate_gain(nonlinearity, a)
    std = gain / math.sqrt(fan)
    return (rng.standard_normal(tuple(shape)) * std).astype(dtype)
    # END SOLUTION


def lecun_normal(shape, rng=None, dtype=np.float32) -> np.ndarray:
    """LeCun normal: N(0, 1 / fan_in), the variance-preserving choice for linear and SELU
    layers. -> ``shape``. (Keras draws it from a truncated normal; this is the plain normal.)
    """
    rng = np.random.default_rng(rng)
    # BEGIN SOLUTION draw from N(0, 1 / fan_in); cast to dtype
    fan_in, _ = calculate_fans(shape)
    return (rng.standard_normal(tuple(shape)) / math.sqrt(fan_in)).astype(dtype)
    # END SOLUTION
