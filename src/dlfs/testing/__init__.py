"""Helpers every topic's tests use: value comparison and gradient checks.

The PyTorch oracle is not part of the library: it lives with the tests
(``tests/helpers/torch_oracle.py``, importable in every test as ``torch_oracle``)."""

from dlfs.testing.compare import assert_close
from dlfs.testing.gradcheck import check_gradients, numerical_gradient, rel_error
from dlfs.testing.layers import check_layer_gradients, randomize_batchnorm

__all__ = [
    "assert_close", "check_gradients", "check_layer_gradients", "numerical_gradient", "randomize_batchnorm",
    "rel_error",
]
