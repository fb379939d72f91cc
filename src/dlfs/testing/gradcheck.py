"""Central-difference gradient checks in float64, reported the CS231n way.

``rel_error = |analytic - numeric| / max(|analytic| + |numeric|, 1e-8)`` per element;
for smooth functions the maximum should be below 1e-6 (1e-7 is typical).
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np


def numerical_gradient(f: Callable[[], np.ndarray], x: np.ndarray, dout: np.ndarray | None = None,
                       h: float = 1e-6) -> np.ndarray:
    """d(sum(f() * dout))/dx by central differences, perturbing ``x`` in place.

    f: a zero-argument function that reads ``x`` (and may read other arrays);
    x: float64 array; dout: upstream gradient with f()'s shape (ones if None).
    """
    if x.dtype != np.float64:
        raise TypeError(f"numerical_gradient needs float64 input, got {x.dtype}")
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        plus = np.asarray(f(), dtype=np.float64)
        x[i] = old - h
        minus = np.asarray(f(), dtype=np.float64)
        x[i] = old
        up = np.ones_like(plus) if dout is None else dout
        grad[i] = np.sum((plus - minus) * up) / (2 * h)
        it.iternext()
    return grad


def rel_error(analytic: np.ndarray, numeric: np.ndarray) -> np.ndarray:
    a = np.asarray(analytic, dtype=np.float64)
    n = np.asarray(numeric, dtype=np.float64)
    return np.abs(a - n) / np.maximum(np.abs(a) + np.abs(n), 1e-8)


def check_gradients(f: Callable[[], np.ndarray], inputs: Mapping[str, np.ndarray],
                    analytic: Mapping[str, np.ndarray], dout: np.ndarray | None = None,
                    *, tol: float = 1e-6, h: float = 1e-6) -> dict[str, float]:
    """Compare analytic gradients with central differences for every named input.

    f: zero-argument function computing the output from the arrays in ``inputs``
       (which it must read by reference, so in-place perturbation is seen);
    inputs: name -> float64 array; analytic: name -> gradient of sum(f() * dout).
    Raises AssertionError naming the input, its max relative error and where.
    Returns name -> max relative error.
    """
    errors = {}
    for name, x in inputs.items():
        if name not in analytic or analytic[name] is None:
            raise AssertionError(f"gradient for '{name}': expected an array of shape {x.shape}, got None")
        got = np.asarray(analytic[name])
        if got.shape != x.shape:
            raise AssertionError(f"gradient for '{name}': expected shape {x.shape}, got shape {got.shape}")
        num = numerical_gradient(f, x, dout, h=h)
        err = rel_error(got, num)
        worst = float(err.max()) if err.size else 0.0
        errors[name] = worst
        if not worst < tol:
            idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(err)), err.shape))
            raise AssertionError(
                f"gradient for '{name}' disagrees with finite differences: max relative error "
                f"{worst:.3e} (must be < {tol:g}) at index {idx}: "
                f"analytic {got[idx]!r}, numerical {num[idx]!r}"
            )
    return errors
