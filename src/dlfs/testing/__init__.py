"""Helpers every topic's tests use: value comparison, gradient checks, the torch oracle."""

from dlfs.testing.compare import assert_close
from dlfs.testing.gradcheck import check_gradients, numerical_gradient, rel_error
from dlfs.testing.layers import check_layer_gradients, randomize_batchnorm
from dlfs.testing.oracle import torch_or_skip, to_numpy, to_torch

__all__ = [
    "assert_close", "check_gradients", "check_layer_gradients", "numerical_gradient", "randomize_batchnorm",
    "rel_error",
    "torch_or_skip", "to_numpy", "to_torch",
]
