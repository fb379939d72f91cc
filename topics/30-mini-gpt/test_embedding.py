"""Topic 30: the embedding lookup — rows of the table, the scatter-add backward with repeated ids,
finite differences and torch.nn.Embedding."""

import numpy as np
import pytest

from dlfs.nn import embedding as emb
from dlfs.testing import assert_close, check_layer
from torch_oracle import torch_or_skip


def test_forward_gathers_rows_for_any_leading_shape():
    layer = emb.Embedding(7, 3, rng=0, dtype=np.float64)
    ids = np.array([[0, 6, 2], [2, 2, 5]])
    y = layer.forward(ids)
    assert y.shape == (2, 3, 3), f"expected (2, 3, 3), got {y.shape}"
    assert_close(y, np.eye(7)[ids] @ layer.W.data, rtol=0, atol=0, what="W[ids] = onehot(ids) @ W")


def test_backward_adds_the_gradients_of_repeated_ids():
    layer = emb.Embedding(5, 4, rng=1, dtype=np.float64)
    ids = np.array([[1, 3, 1], [1, 0, 3]])                    # token 1 three times, token 3 twice
    layer.zero_grad()
    layer.forward(ids)
    dy = np.random.default_rng(2).standard_normal((2, 3, 4))
    assert layer.backward(dy) is None, "integer ids have no gradient: backward returns None"
    expected = np.eye(5)[ids].reshape(-1, 5).T @ dy.reshape(-1, 4)     # onehotᵀ @ dy
    assert_close(layer.W.grad, expected, rtol=1e-12, atol=1e-12,
                 what="W.grad = Σ of dy over the positions holding each token (repeats add up)")
    assert_close(layer.W.grad[[2, 4]], np.zeros((2, 4)), rtol=0, atol=0, what="rows of tokens that do not occur")
    layer.forward(ids)
    layer.backward(dy)
    assert_close(layer.W.grad, 2 * expected, rtol=1e-12, atol=1e-12, what="W.grad after two backward calls")


def test_backward_matches_finite_differences_and_torch():
    ids = np.array([[0, 2, 2, 4], [4, 4, 1, 0]])
    check_layer(emb.Embedding(6, 3, rng=3, dtype=np.float64), ids,
                torch_layer=lambda torch: torch.nn.Embedding(6, 3), param_map={"W": "weight"},
                oracle=torch_or_skip, rtol=1e-12, atol=1e-12)


def test_initialisation_bad_ids_and_dtype():
    layer = emb.Embedding(1000, 50, rng=4)
    assert layer.W.dtype == np.float32, f"expected float32 weights, got {layer.W.dtype}"
    assert abs(layer.W.data.std() - 1) < 0.02 and abs(layer.W.data.mean()) < 0.02, \
        f"expected N(0, 1) weights like torch.nn.Embedding, got mean {layer.W.data.mean():.3f} std {layer.W.data.std():.3f}"
    assert_close(layer.forward(np.array([999, 0])), layer.W.data[[999, 0]], rtol=0, atol=0, what="rows 999 and 0")
    for bad in (np.array([1000]), np.array([-1]), np.array([0.0])):
        with pytest.raises(ValueError):
            layer.forward(bad)
