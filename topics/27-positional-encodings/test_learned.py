"""Topic 27: the learned positional embedding — forward, the gradient of the table (finite
differences and torch.nn.Embedding), accumulation, and positions beyond the table."""

import functools

import numpy as np
import pytest

from dlfs.transformer import positional as pe
from dlfs.testing import assert_close, check_layer
from torch_oracle import torch_or_skip


def table(max_len=6, D=4, seed=0, dtype=np.float64):
    return pe.LearnedPositionalEmbedding(max_len, D, rng=seed, dtype=dtype)


def at_offset(layer, offset):
    """The layer with its offset fixed, so that check_layer's forward(x) uses it."""
    layer.forward = functools.partial(type(layer).forward, layer, offset=offset)
    return layer


def test_forward_adds_the_rows_of_the_positions():
    layer = table(max_len=6, D=4)
    x = np.random.default_rng(1).standard_normal((2, 3, 4))
    assert_close(layer.forward(x), x + layer.W.data[:3], rtol=0, atol=0, what="x + W[0 … 2]")
    assert_close(layer.forward(x, offset=3), x + layer.W.data[3:6], rtol=0, atol=0, what="x + W[3 … 5] (offset 3)")
    assert_close(layer.forward(x[0]), x[0] + layer.W.data[:3], rtol=0, atol=0, what="one sequence (T, D)")


def test_initialisation_is_normal_with_std_002_and_float32_stays_float32():
    layer = pe.LearnedPositionalEmbedding(1024, 64, rng=3)
    assert layer.W.data.dtype == np.float32, f"default dtype float32, got {layer.W.data.dtype}"
    std = float(layer.W.data.std())
    assert abs(std - 0.02) < 0.001, f"expected std ≈ 0.02 (GPT-2's initialisation), got {std:.5f}"
    x = np.zeros((1, 4, 64), dtype=np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32, f"float32 in, float32 out; got {y.dtype}"
    assert_close(y[0], layer.W.data[:4], rtol=0, atol=0, what="0 + W[0 … 3]")


@pytest.mark.parametrize("offset", [0, 2])
def test_backward_matches_finite_differences(offset):
    """dx = dy and dW[p] = Σ over the batch of dy at position p, for the used rows only."""
    check_layer(at_offset(table(max_len=7, D=3, seed=4), offset), np.random.default_rng(5).standard_normal((3, 4, 3)))


def test_gradient_goes_to_the_used_rows_only_and_accumulates():
    layer = table(max_len=6, D=2, seed=6)
    x = np.zeros((3, 2, 2))
    dy = np.random.default_rng(7).standard_normal(x.shape)
    layer.forward(x, offset=1)
    assert_close(layer.backward(dy), dy, rtol=0, atol=0, what="dx = dy")
    expected = np.zeros((6, 2))
    expected[1:3] = dy.sum(axis=0)
    assert_close(layer.W.grad, expected, rtol=1e-12, atol=0, what="W.grad: rows 1, 2 get Σ_batch dy; the others 0")
    layer.backward(dy)
    assert_close(layer.W.grad, 2 * expected, rtol=1e-12, atol=0, what="W.grad after two backward calls")
    layer.W.grad = None                                  # an optimiser's zero_grad(set_to_none=True)
    layer.backward(dy)
    assert_close(layer.W.grad, expected, rtol=1e-12, atol=0, what="W.grad after it was set to None")


def test_positions_beyond_the_table_are_refused_with_the_reason():
    layer = table(max_len=4, D=2, seed=8)
    x = np.ones((1, 3, 2))
    assert_close(layer.forward(x, offset=1), x + layer.W.data[1:4], rtol=0, atol=0, what="positions 1 … 3 fit")
    for T, offset in ((5, 0), (3, 2)):
        with pytest.raises(ValueError, match="max_len|0 … 3"):
            layer.forward(np.ones((1, T, 2)), offset=offset)
    with pytest.raises(ValueError):
        layer.forward(np.ones((1, 3, 5)))                   # D = 5, not 2


def test_matches_torch_embedding_of_the_positions():
    T = 4

    def torch_forward(module, x):
        import torch

        return x + module(torch.arange(T))

    check_layer(table(max_len=6, D=5, seed=9), np.random.default_rng(10).standard_normal((2, T, 5)),
                torch_layer=lambda torch: torch.nn.Embedding(6, 5), torch_forward=torch_forward,
                param_map={"W": "weight"}, oracle=torch_or_skip)
