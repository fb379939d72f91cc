"""Topic 17: the per-epoch random generator and per-class accuracy."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.testing import assert_close
from dlfs.train import recipe


# ----------------------------------------------------------------- epoch_rng

def test_epoch_rng_depends_only_on_seed_and_epoch():
    rng = recipe.epoch_rng(0, 3)
    assert isinstance(rng, np.random.Generator), f"expected a numpy Generator, got {type(rng).__name__}"
    first = rng.random(8)
    assert_close(recipe.epoch_rng(0, 3).random(8), first, rtol=0, atol=0,
                 what="epoch_rng(0, 3) drawn twice (must give the same numbers)")

    # a resumed run creates epoch 3's generator without having drawn anything from 1 and 2
    for e in (1, 2):
        recipe.epoch_rng(0, e).permutation(1000)
    np.random.seed(123)
    np.random.random(10)                     # the legacy global state must not matter either
    assert_close(recipe.epoch_rng(0, 3).random(8), first, rtol=0, atol=0,
                 what="epoch_rng(0, 3) after other epochs drew numbers")


def test_epoch_rng_streams_are_distinct():
    draws = {(s, e): recipe.epoch_rng(s, e).random(4) for s in range(4) for e in range(1, 5)}
    keys = list(draws)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            assert not np.array_equal(draws[a], draws[b]), \
                f"(seed, epoch) = {a} and {b} give the same numbers: each pair needs its own stream " \
                f"(seed + epoch or seed * epoch collide)"
    assert not np.array_equal(recipe.epoch_rng(0, 1).random(4), np.random.default_rng(0).random(4)), \
        "epoch_rng(0, 1) is default_rng(0): the epoch must enter the seed"


# ----------------------------------------------------------------- per_class_accuracy

def _per_class_loop(y_true, y_pred, k):
    out = np.full(k, np.nan)
    for c in range(k):
        mask = y_true == c
        if mask.any():
            out[c] = np.mean(y_pred[mask] == c)
    return out


def test_per_class_accuracy_values_and_empty_class():
    y_true = np.array([0, 0, 1, 1, 1, 3, 3, 3, 3])
    y_pred = np.array([0, 1, 1, 1, 0, 3, 2, 2, 3])       # class 2 is predicted but never true
    with warnings.catch_warnings():
        warnings.simplefilter("error")                     # 0/0 for the empty class: no warning
        got = recipe.per_class_accuracy(y_true, y_pred, 5)
    assert got.shape == (5,) and got.dtype == np.float64, \
        f"expected a (5,) float64 array, got {np.shape(got)} {getattr(got, 'dtype', None)}"
    assert_close(got, [0.5, 2 / 3, np.nan, 0.5, np.nan], rtol=0, atol=1e-15,
                 what="per-class accuracy (nan for classes 2 and 4, which have no examples)")


@settings(deadline=None, max_examples=40)
@given(st.integers(1, 6), st.integers(0, 40), st.integers(0, 2**32 - 1))
def test_per_class_accuracy_matches_a_loop(k, n, seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, n)
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, k, n))
    assert_close(recipe.per_class_accuracy(y_true, y_pred, k), _per_class_loop(y_true, y_pred, k),
                 rtol=0, atol=1e-15, what=f"per_class_accuracy with {k} classes and {n} examples")


def test_per_class_accuracy_rejects_bad_inputs():
    with pytest.raises(ValueError):
        recipe.per_class_accuracy(np.array([0, 1, 1]), np.array([0, 1]), 2)        # lengths differ
    with pytest.raises(ValueError):
        recipe.per_class_accuracy(np.zeros((2, 3), int), np.zeros((2, 3), int), 2)  # not 1-D
    with pytest.raises(ValueError):
        recipe.per_class_accuracy(np.array([0, 3]), np.array([0, 1]), 3)            # label 3 of 3 classes
    with pytest.raises(ValueError):
        recipe.per_class_accuracy(np.array([0, -1]), np.array([0, 1]), 3)           # negative label
