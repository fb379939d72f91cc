"""Topic 07 — activation values and derivatives against formulas computed with `math`, and against torch."""

import math

import numpy as np
import pytest

from dlfs.nn import activations as A
from dlfs.special import erf, erfc
from dlfs.testing import assert_close
from torch_oracle import to_numpy, to_torch, torch_or_skip

# Each entry: forward, backward as a function of (dy, x, y), and the scalar formula and
# derivative written independently with the `math` module.
SQRT2 = math.sqrt(2.0)
K = math.sqrt(2.0 / math.pi)


def _sig(v):
    return 1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v))


def _gelu_tanh(v):
    return 0.5 * v * (1 + math.tanh(K * (v + 0.044715 * v ** 3)))


def _gelu_tanh_prime(v):
    t = math.tanh(K * (v + 0.044715 * v ** 3))
    return 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * K * (1 + 3 * 0.044715 * v * v)


ELEMENTWISE = {
    "relu": (A.relu, lambda dy, x, y: A.relu_backward(dy, x),
             lambda v: max(v, 0.0), lambda v: 1.0 if v > 0 else 0.0),
    "leaky_relu(0.1)": (lambda x: A.leaky_relu(x, 0.1), lambda dy, x, y: A.leaky_relu_backward(dy, x, 0.1),
                        lambda v: v if v > 0 else 0.1 * v, lambda v: 1.0 if v > 0 else 0.1),
    "leaky_relu default 0.01": (A.leaky_relu, lambda dy, x, y: A.leaky_relu_backward(dy, x),
                                lambda v: v if v > 0 else 0.01 * v, lambda v: 1.0 if v > 0 else 0.01),
    "elu(0.5)": (lambda x: A.elu(x, 0.5), lambda dy, x, y: A.elu_backward(dy, x, 0.5),
                 lambda v: v if v > 0 else 0.5 * math.expm1(v), lambda v: 1.0 if v > 0 else 0.5 * math.exp(v)),
    "elu default 1.0": (A.elu, lambda dy, x, y: A.elu_backward(dy, x),
                        lambda v: v if v > 0 else math.expm1(v), lambda v: 1.0 if v > 0 else math.exp(v)),
    "gelu": (A.gelu, lambda dy, x, y: A.gelu_backward(dy, x),
             lambda v: 0.5 * v * math.erfc(-v / SQRT2),
             lambda v: 0.5 * math.erfc(-v / SQRT2) + v * math.exp(-v * v / 2) / math.sqrt(2 * math.pi)),
    "gelu tanh": (lambda x: A.gelu(x, approximate="tanh"), lambda dy, x, y: A.gelu_backward(dy, x, approximate="tanh"),
                  _gelu_tanh, _gelu_tanh_prime),
    "silu": (A.silu, lambda dy, x, y: A.silu_backward(dy, x),
             lambda v: v * _sig(v), lambda v: _sig(v) * (1 + v * (1 - _sig(v)))),
    "sigmoid": (A.sigmoid, lambda dy, x, y: A.sigmoid_backward(dy, y),
                _sig, lambda v: _sig(v) * (1 - _sig(v))),
    "tanh": (A.tanh, lambda dy, x, y: A.tanh_backward(dy, y),
             math.tanh, lambda v: 1 - math.tanh(v) ** 2),
}

POINTS = np.array([-7.5, -3.0, -1.7, -0.9, -0.3, -0.05, 0.02, 0.4, 0.8, 1.3, 2.5, 6.0, 9.0])


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_forward_and_derivative_match_the_formula(name):
    fwd, bwd, f, fprime = ELEMENTWISE[name]
    x = POINTS.copy()
    y = fwd(x)
    assert_close(y, np.array([f(v) for v in x]), rtol=1e-12, atol=1e-15, what=f"{name}(x)")
    dy = np.linspace(-2.0, 3.0, x.size)
    dx = bwd(dy, x, y)
    assert_close(dx, dy * np.array([fprime(v) for v in x]), rtol=1e-11, atol=1e-15,
                 what=f"{name} backward: dy * {name}'(x)")
    assert_close(x, POINTS, rtol=0, atol=0, what="x after the calls (must not be modified in place)")


def test_exact_gelu_is_accurate_in_the_far_negative_tail():
    """x·Φ(x) for very negative x: Φ is tiny, and ½(1 + erf(x/√2)) cancels to 0 long before it."""
    x = np.array([-10.0, -20.0, -30.0, -37.0])
    expected = np.array([0.5 * v * math.erfc(-v / SQRT2) for v in x])
    assert_close(A.gelu(x), expected, rtol=1e-12, atol=0, what="gelu(x) in the far negative tail")
    assert (A.gelu(x) < 0).all(), "gelu(x) is negative (not 0) for these x"


def test_softmax_and_log_softmax_backward_match_the_jacobian():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5))
    dy = rng.standard_normal((3, 5))
    for axis in (-1, 0):
        y = A.softmax(x, axis=axis)
        xs, dys, ys = (np.moveaxis(a, axis, -1) for a in (x, dy, y))
        expected_soft, expected_log = np.empty_like(xs), np.empty_like(xs)
        for i in range(xs.shape[0]):
            p = ys[i]
            jac = np.diag(p) - np.outer(p, p)                # d softmax_i / d x_j
            expected_soft[i] = jac.T @ dys[i]
            jac_log = np.eye(p.size) - np.outer(np.ones_like(p), p)   # d log_softmax_i / d x_j
            expected_log[i] = jac_log.T @ dys[i]
        assert_close(A.softmax_backward(dy, y, axis=axis), np.moveaxis(expected_soft, -1, axis), rtol=1e-12,
                     atol=1e-14, what=f"softmax_backward along axis {axis} vs the explicit Jacobian")
        logy = A.log_softmax(x, axis=axis)
        assert_close(A.log_softmax_backward(dy, logy, axis=axis), np.moveaxis(expected_log, -1, axis),
                     rtol=1e-12, atol=1e-14, what=f"log_softmax_backward along axis {axis} vs the explicit Jacobian")


# ------------------------------------------------------------------------------ at the kink

# name -> (forward, derivative at x = 0 by PyTorch's convention for the one-sided ones)
AT_ZERO = {
    "relu": (A.relu, lambda dy, x: A.relu_backward(dy, x), 0.0, 0.0),
    "leaky_relu(0.2)": (lambda x: A.leaky_relu(x, 0.2), lambda dy, x: A.leaky_relu_backward(dy, x, 0.2), 0.0, 0.2),
    "elu(0.3)": (lambda x: A.elu(x, 0.3), lambda dy, x: A.elu_backward(dy, x, 0.3), 0.0, 0.3),
    "gelu": (A.gelu, lambda dy, x: A.gelu_backward(dy, x), 0.0, 0.5),
    "gelu tanh": (lambda x: A.gelu(x, "tanh"), lambda dy, x: A.gelu_backward(dy, x, "tanh"), 0.0, 0.5),
    "silu": (A.silu, lambda dy, x: A.silu_backward(dy, x), 0.0, 0.5),
}


@pytest.mark.parametrize("name", list(AT_ZERO))
def test_value_and_derivative_at_exactly_zero(name):
    """At the kink the one-sided functions take the left derivative: relu'(0) = 0,
    leaky_relu'(0) = slope, elu'(0) = alpha (as PyTorch); the smooth ones have f'(0) = 1/2."""
    fwd, bwd, value, slope = AT_ZERO[name]
    x = np.zeros((2, 3))
    dy = np.linspace(-1.0, 1.5, 6).reshape(2, 3)
    assert_close(fwd(x), np.full((2, 3), value), rtol=0, atol=0, what=f"{name}(0)")
    assert_close(bwd(dy, x), slope * dy, rtol=1e-15, atol=0, what=f"{name} backward at x = 0: dy * {slope}")


# ------------------------------------------------------------------------------ vs torch

OURS = {
    "relu": (A.relu, lambda dy, x, y: A.relu_backward(dy, x)),
    "leaky_relu(0.01)": (A.leaky_relu, lambda dy, x, y: A.leaky_relu_backward(dy, x)),
    "leaky_relu(0.2)": (lambda x: A.leaky_relu(x, 0.2), lambda dy, x, y: A.leaky_relu_backward(dy, x, 0.2)),
    "elu(1.0)": (A.elu, lambda dy, x, y: A.elu_backward(dy, x)),
    "elu(0.3)": (lambda x: A.elu(x, 0.3), lambda dy, x, y: A.elu_backward(dy, x, 0.3)),
    "gelu": (A.gelu, lambda dy, x, y: A.gelu_backward(dy, x)),
    "gelu tanh": (lambda x: A.gelu(x, "tanh"), lambda dy, x, y: A.gelu_backward(dy, x, "tanh")),
    "silu": (A.silu, lambda dy, x, y: A.silu_backward(dy, x)),
    "sigmoid": (A.sigmoid, lambda dy, x, y: A.sigmoid_backward(dy, y)),
    "tanh": (A.tanh, lambda dy, x, y: A.tanh_backward(dy, y)),
    "softmax(-1)": (A.softmax, lambda dy, x, y: A.softmax_backward(dy, y)),
    "softmax(0)": (lambda x: A.softmax(x, axis=0), lambda dy, x, y: A.softmax_backward(dy, y, axis=0)),
    "log_softmax(-1)": (A.log_softmax, lambda dy, x, y: A.log_softmax_backward(dy, y)),
    "log_softmax(1)": (lambda x: A.log_softmax(x, axis=1), lambda dy, x, y: A.log_softmax_backward(dy, y, axis=1)),
}


def torch_functions(F):
    return {
        "relu": F.relu,
        "leaky_relu(0.01)": F.leaky_relu,
        "leaky_relu(0.2)": lambda t: F.leaky_relu(t, 0.2),
        "elu(1.0)": F.elu,
        "elu(0.3)": lambda t: F.elu(t, alpha=0.3),
        "gelu": F.gelu,
        "gelu tanh": lambda t: F.gelu(t, approximate="tanh"),
        "silu": F.silu,
        "sigmoid": lambda t: t.sigmoid(),
        "tanh": lambda t: t.tanh(),
        "softmax(-1)": lambda t: F.softmax(t, dim=-1),
        "softmax(0)": lambda t: F.softmax(t, dim=0),
        "log_softmax(-1)": lambda t: F.log_softmax(t, dim=-1),
        "log_softmax(1)": lambda t: F.log_softmax(t, dim=1),
    }


CASE_NAMES = list(OURS)


def oracle_input(dtype):
    """(4, 4, 6): values up to about ±10, a row reaching ±40, and a block of exact zeros; and a dy."""
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.standard_normal((3, 4, 6)) * 3, np.full((1, 4, 6), 0.0)]).astype(dtype)
    x[0, 0, :] = [-40.0, -12.0, -5.5, 5.5, 12.0, 40.0]
    dy = rng.standard_normal(x.shape).astype(dtype)
    return x, dy


@pytest.mark.parametrize("name", CASE_NAMES)
def test_float32_stays_float32_and_agrees_with_float64(name):
    fwd, bwd = OURS[name]
    x32, dy32 = oracle_input(np.float32)
    x64, dy64 = x32.astype(np.float64), dy32.astype(np.float64)      # the same (float32) numbers
    y32, y64 = fwd(x32), fwd(x64)
    dx32, dx64 = bwd(dy32, x32, y32), bwd(dy64, x64, y64)
    for dtype, y, dx in ((np.float32, y32, dx32), (np.float64, y64, dx64)):
        assert y.dtype == dtype and dx.dtype == dtype, f"{name}: {np.dtype(dtype)} in must stay " \
                                                       f"{np.dtype(dtype)}, got y {y.dtype}, dx {dx.dtype}"
    assert_close(y32, y64, rtol=2e-5, atol=2e-6, what=f"{name} forward in float32 vs float64")
    assert_close(dx32, dx64, rtol=2e-5, atol=2e-6, what=f"{name} backward in float32 vs float64")


@pytest.mark.parametrize("dtype, rtol, atol", [(np.float64, 1e-10, 1e-12), (np.float32, 2e-5, 2e-6)])
@pytest.mark.parametrize("name", CASE_NAMES)
def test_forward_and_backward_match_torch(name, dtype, rtol, atol):
    torch = torch_or_skip()
    fwd, bwd = OURS[name]
    tfn = torch_functions(torch.nn.functional)[name]
    x, dy = oracle_input(dtype)
    y = fwd(x)
    dx = bwd(dy, x, y)
    tx = to_torch(x, requires_grad=True)
    ty = tfn(tx)
    ty.backward(to_torch(dy))
    assert_close(y, to_numpy(ty), rtol=rtol, atol=atol, what=f"{name} forward vs torch ({np.dtype(dtype)})")
    assert_close(dx, to_numpy(tx.grad), rtol=rtol, atol=atol, what=f"{name} backward vs torch ({np.dtype(dtype)})")


def test_gelu_and_the_given_erf_are_float64_accurate():
    x = np.concatenate([np.linspace(-7, 7, 2001), [0.46875, -0.46875, 4.0, -4.0, 1e-8, 26.0, -26.0]])
    expected_gelu = np.array([0.5 * v * math.erfc(-v / SQRT2) for v in x])
    assert_close(A.gelu(x), expected_gelu, rtol=1e-13, atol=1e-300, what="gelu(x) vs 0.5 x erfc(-x/sqrt 2)")
    # erf and erfc are given to you; the exact GELU and its gradient check rely on their precision.
    assert_close(erf(x), np.array([math.erf(v) for v in x]), rtol=2e-15, atol=1e-300, what="erf(x) vs math.erf")
    assert_close(erfc(x), np.array([math.erfc(v) for v in x]), rtol=2e-15, atol=1e-300, what="erfc(x) vs math.erfc")


def test_gelu_rejects_an_unknown_approximation():
    x = np.array([0.5, -1.0])
    assert_close(A.gelu(x, approximate="none"), A.gelu(x), rtol=0, atol=0, what="gelu(x, approximate='none')")
    with pytest.raises(ValueError):
        A.gelu(x, approximate="fast")
    with pytest.raises(ValueError):
        A.gelu_backward(np.ones_like(x), x, approximate="sigmoid")
