"""dlfs.special: erf and erfc against Python's math module, in float64 and float32."""

import math

import numpy as np
import pytest

from dlfs.special import erf, erfc


def test_float32_erfc_is_as_accurate_as_float32_allows():
    x = np.linspace(-12, 12, 400_001).astype(np.float32)
    expected = np.array([math.erfc(float(v)) for v in x])
    got = erfc(x)
    assert got.dtype == np.float32, f"expected a float32 result, got {got.dtype}"
    keep = expected > 1e-37                               # float32's normal range
    rel = np.abs(got.astype(np.float64) - expected)[keep] / expected[keep]
    worst = int(np.argmax(rel))
    # the fit's own error is 1.2e-7; float32 rounding of the result and of x/… adds a few ulps
    assert rel[worst] < 1e-6, (f"float32 erfc: max relative error {rel[worst]:.3g} at x = {x[keep][worst]} "
                               f"(expected < 1e-6)")
    assert np.all(got[~keep] <= 1e-37), "erfc must underflow to (almost) 0 past x = 9.3"


def test_float32_erfc_edges_and_shapes():
    x = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e30, -1e30], dtype=np.float32)
    got = erfc(x)
    assert np.array_equal(got[[0, 1, 3, 4, 5, 6]], np.array([0, 2, 1, 1, 0, 2], np.float32)), f"got {got}"
    assert np.isnan(got[2]), f"erfc(nan) must be nan, got {got[2]}"
    assert erfc(np.float32(0.5)).shape == (), "a 0-d input gives a 0-d result"
    assert erfc(np.ones((2, 3), np.float32)).shape == (2, 3)


@pytest.mark.parametrize("fn, ref", [(erf, math.erf), (erfc, math.erfc)])
def test_float64_is_cody_accurate(fn, ref):
    x = np.concatenate([np.linspace(-30, 30, 20_001), [0.0, 1e-300, -1e-300, 0.46875, 4.0]])
    expected = np.array([ref(v) for v in x])
    got = fn(x)
    keep = np.abs(expected) > 1e-300
    rel = np.abs(got - expected)[keep] / np.abs(expected)[keep]
    assert rel.max() < 2e-15, f"{fn.__name__}: max relative error {rel.max():.3g} (expected < 2e-15)"
