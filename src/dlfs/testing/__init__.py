"""Helpers every topic's tests use: value comparison, gradient checks, and the shared check of
a layer or op (finite differences, then PyTorch when an oracle is given).

The PyTorch oracle is not part of the library: it lives with the tests
(``tests/helpers/torch_oracle.py``, importable in every test as ``torch_oracle``) and is handed
to :func:`check_layer` / :func:`check_op` as ``oracle=torch_or_skip``."""

from dlfs.testing.checks import CheckResult, OracleSkipped, check_layer, check_op
from dlfs.testing.compare import assert_close
from dlfs.testing.gradcheck import check_gradients, numerical_gradient, rel_error
from dlfs.testing.layers import check_layer_gradients, randomize_batchnorm

__all__ = [
    "CheckResult", "OracleSkipped", "assert_close", "check_gradients", "check_layer", "check_layer_gradients", "check_op",
    "numerical_gradient", "randomize_batchnorm", "rel_error",
]
