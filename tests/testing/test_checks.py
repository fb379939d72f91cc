"""dlfs.testing.check_layer / check_op: they pass correct layers and catch each kind of mistake
(wrong input gradient, wrong or missing parameter gradient, wrong forward against PyTorch),
with the numeric part running even when PyTorch is not there."""

import numpy as np
import pytest

from dlfs.nn.forward import linear_forward
from dlfs.nn.layers import Layer, Linear, Parameter, linear_backward
from dlfs.nn.batchnorm import BatchNorm2d
from dlfs.nn.regularization import Dropout
from dlfs.testing import OracleSkipped, check_layer, check_layer_gradients, check_op
from torch_oracle import torch_or_skip


def torch_available() -> bool:
    import importlib.util
    try:
        return importlib.util.find_spec("torch") is not None
    except ValueError:          # sys.modules['torch'] = None
        return False

LINEAR_MAP = {"W": ("weight", np.transpose), "b": "bias"}


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def linear(cls=Linear, d_in=5, d_out=3):
    return cls(d_in, d_out, rng=np.random.default_rng(0), dtype=np.float64)


def torch_linear(torch):
    return torch.nn.Linear(5, 3)


class WrongDx(Linear):
    def backward(self, dy):
        return 1.01 * super().backward(dy)


class WrongDW(Linear):
    def backward(self, dy):
        dx = super().backward(dy)
        self.W.grad *= 2.0
        return dx


class ForgetsBias(Linear):
    def backward(self, dy):
        dx, dW, _ = linear_backward(dy, self.x, self.W.data)
        self.W.accumulate_grad(dW)
        return dx


class DropsBiasGrad(Linear):
    def backward(self, dy):
        dx = super().backward(dy)
        self.b.grad = None
        return dx


class DoubleBias(Linear):
    """Forward and backward agree with each other (y = xW + 2b), but not with torch.nn.Linear."""

    def forward(self, x):
        self.x = x
        return x @ self.W.data + 2.0 * self.b.data

    def backward(self, dy):
        dx, dW, db = linear_backward(dy, self.x, self.W.data)
        self.W.accumulate_grad(dW)
        self.b.accumulate_grad(2.0 * db)
        return dx


class Cell(Layer):
    """Two inputs, a mask, two outputs: y = tanh(x W + h) ⊙ mask,  h' = h ⊙ s.

    x, h: (N, D); mask: (N, D) bool -> y: (N, D), h': (N, D)."""

    def __init__(self, d=4, seed=0, forget_h_path=False):
        rng = np.random.default_rng(seed)
        self.W = Parameter(rng.standard_normal((d, d)) / 2, name="W")
        self.s = Parameter(rng.uniform(0.5, 1.5, d), name="s")
        self.forget_h_path = forget_h_path

    def forward(self, x, h, mask):
        self.cache = (x, h, mask)
        self.t = np.tanh(x @ self.W.data + h)
        return self.t * mask, h * self.s.data

    def backward(self, dy, dh_next):
        x, h, mask = self.cache
        da = dy * mask * (1 - self.t ** 2)
        self.W.accumulate_grad(x.T @ da)
        self.s.accumulate_grad((dh_next * h).sum(axis=0))
        dh = da if self.forget_h_path else da + dh_next * self.s.data
        return da @ self.W.data.T, dh, None


class StateCell(Layer):
    """A nested state, as an LSTM's: forward(x, (h, c)) -> (y, (h', c')) with
    y = tanh(x W + h),  h' = y,  c' = c ⊙ s + y.   x, h, c: (N, D)."""

    def __init__(self, d=4, seed=0, forget_c_path=False):
        rng = np.random.default_rng(seed)
        self.W = Parameter(rng.standard_normal((d, d)) / 2, name="W")
        self.s = Parameter(rng.uniform(0.5, 1.5, d), name="s")
        self.forget_c_path = forget_c_path

    def forward(self, x, state):
        h, c = state
        self.cache = (x, c)
        self.y = np.tanh(x @ self.W.data + h)
        return self.y, (self.y, c * self.s.data + self.y)

    def backward(self, dy, dstate):
        x, c = self.cache
        dh_next, dc_next = dstate
        da = (dy + dh_next + dc_next) * (1 - self.y ** 2)
        self.W.accumulate_grad(x.T @ da)
        self.s.accumulate_grad((dc_next * c).sum(axis=0))
        dc = np.zeros_like(c) if self.forget_c_path else dc_next * self.s.data
        return da @ self.W.data.T, (da, dc)


def state_cell_torch(torch, x, state, W, s):
    y = torch.tanh(x @ W + state[0])
    return y, (y, state[1] * s + y)


def cell_torch(torch, x, h, mask, W, s):
    return torch.tanh(x @ W + h) * mask, h * s


def cell_inputs(seed=1):
    x, h = randn(3, 4, seed=seed), randn(3, 4, seed=seed + 1)
    mask = np.random.default_rng(seed + 2).random((3, 4)) > 0.3
    return x, h, mask


def skipping_oracle(calls):
    def oracle():
        calls.append(1)
        pytest.skip("PyTorch not installed (simulated)")
    return oracle


# ----------------------------------------------------------------- correct layers pass

def test_a_correct_linear_passes_finite_differences_and_torch():
    torch_or_skip()            # a comparison with PyTorch: it alone skips without it
    result = check_layer(linear(), randn(4, 5), torch_layer=torch_linear, param_map=LINEAR_MAP,
                         oracle=torch_or_skip)
    assert sorted(result.errors) == ["W", "b", "x"], f"every gradient is checked, got {sorted(result.errors)}"
    assert max(result.errors.values()) < 1e-6 and result.torch_compared


def test_several_inputs_and_outputs_with_a_mask_pass():
    result = check_layer(Cell(), cell_inputs(), input_names=("x", "h", "mask"))
    assert sorted(result.errors) == ["W", "h", "s", "x"], \
        f"x, h and both parameters are checked; the bool mask is not: got {sorted(result.errors)}"
    assert len(result.outputs) == 2 and len(result.upstream) == 2


def test_several_inputs_and_outputs_match_torch():
    torch_or_skip()            # a comparison with PyTorch: it alone skips without it
    result = check_layer(Cell(), cell_inputs(), input_names=("x", "h", "mask"), torch_fn=cell_torch,
                         oracle=torch_or_skip)
    assert result.torch_compared


def test_nested_inputs_and_outputs_are_checked_leaf_by_leaf_and_against_torch():
    x, h, c = randn(3, 4, seed=1), randn(3, 4, seed=2), randn(3, 4, seed=3)
    result = check_layer(StateCell(), (x, (h, c)), input_names=("x", "state"), torch_fn=state_cell_torch,
                         oracle=torch_or_skip)
    assert sorted(result.errors) == ["W", "s", "state[0]", "state[1]", "x"], sorted(result.errors)
    with pytest.raises(AssertionError, match=r"input gradient for 'state\[1\]'"):
        check_layer(StateCell(forget_c_path=True), (x, (h, c)), input_names=("x", "state"))


def test_a_float_mask_is_left_out_with_grad_inputs():
    x, h, mask = cell_inputs()
    check_layer(Cell(), (x, h, mask.astype(np.float64)), input_names=("x", "h", "mask"), grad_inputs=(0, 1))
    with pytest.raises(AssertionError, match=r"input 'mask' got no gradient"):
        check_layer(Cell(), (x, h, mask.astype(np.float64)), input_names=("x", "h", "mask"))


def test_the_same_array_passed_twice_is_checked_input_by_input():
    """check_layer copies each input, so (x, x) does not turn two partial derivatives into one."""
    x, _, mask = cell_inputs()
    check_layer(Cell(), (x, x, mask), input_names=("x", "h", "mask"))


def test_check_op_passes_linear_and_compares_with_torch():
    torch_or_skip()            # a comparison with PyTorch: it alone skips without it
    x, W, b = randn(4, 5), randn(5, 3, seed=1), randn(3, seed=2)
    result = check_op(linear_forward, lambda dy, x, W, b: linear_backward(dy, x, W), x, {"W": W, "b": b},
                      torch_fn=lambda torch, x, W, b: x @ W + b, oracle=torch_or_skip)
    assert sorted(result.errors) == ["W", "b", "x"] and result.torch_compared


def test_batchnorm_in_training_mode_matches_torch_buffers_included_and_keeps_its_state():
    bn = BatchNorm2d(3, dtype=np.float64)
    bn.gamma.data[...] = [0.5, 1.0, 2.0]
    bn.beta.data[...] = [0.1, -0.2, 0.3]
    bn.running_mean[...] = [0.2, -0.1, 0.0]
    before = bn.state_dict()
    result = check_layer(bn, randn(2, 3, 4, 4) + 1.0, train=True, oracle=torch_or_skip,
                         torch_layer=lambda torch: torch.nn.BatchNorm2d(3),
                         param_map={"gamma": "weight", "beta": "bias"})
    assert result.torch_compared or not torch_available()
    for name, value in bn.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=f"{name} must be restored after the check")


# ----------------------------------------------------------------- mistakes are caught

def test_a_wrong_input_gradient_is_named():
    with pytest.raises(AssertionError, match=r"input gradient for 'x' disagrees .* relative error .* at index"):
        check_layer(linear(WrongDx), randn(4, 5))


def test_a_wrong_parameter_gradient_is_named():
    with pytest.raises(AssertionError, match=r"parameter gradient for 'W' disagrees .* relative error"):
        check_layer(linear(WrongDW), randn(4, 5))


def test_a_missing_parameter_gradient_is_named():
    with pytest.raises(AssertionError, match=r"(?s)parameter gradient for 'b' .*zero everywhere"):
        check_layer(linear(ForgetsBias), randn(4, 5))
    with pytest.raises(AssertionError, match=r"parameter 'b' got no gradient"):
        check_layer(linear(DropsBiasGrad), randn(4, 5))


def test_a_wrong_gradient_of_a_second_input_is_named():
    with pytest.raises(AssertionError, match=r"input gradient for 'h'"):
        check_layer(Cell(forget_h_path=True), cell_inputs(), input_names=("x", "h", "mask"))


def test_a_wrong_forward_is_caught_by_torch_when_finite_differences_agree():
    torch_or_skip()            # a comparison with PyTorch: it alone skips without it
    layer = linear(DoubleBias)
    check_layer(layer, randn(4, 5))                  # self-consistent: the numeric check passes
    with pytest.raises(AssertionError, match=r"output vs PyTorch"):
        check_layer(layer, randn(4, 5), torch_layer=torch_linear, param_map=LINEAR_MAP, oracle=torch_or_skip)


def test_a_wrong_running_statistic_is_caught_by_torch():
    torch_or_skip()            # a comparison with PyTorch: it alone skips without it
    bn = BatchNorm2d(3, momentum=0.2, dtype=np.float64)     # torch's default momentum is 0.1
    with pytest.raises(AssertionError, match=r"buffer 'running_mean' after one forward vs PyTorch"):
        check_layer(bn, randn(2, 3, 4, 4) + 1.0, train=True, oracle=torch_or_skip,
                    torch_layer=lambda torch: torch.nn.BatchNorm2d(3), param_map={"gamma": "weight", "beta": "bias"})


def test_check_op_catches_a_wrong_gradient():
    x, W = randn(4, 5), randn(5, 3, seed=1)
    with pytest.raises(AssertionError, match=r"parameter gradient for 'W'"):
        check_op(lambda x, W: x @ W, lambda dy, x, W: (dy @ W.T, x.T @ dy * 0.5), x, {"W": W})
    with pytest.raises(AssertionError, match=r"input gradient for 'x'"):
        check_op(np.tanh, lambda dy, x: dy * (1 - x ** 2), x)        # uses x where tanh(x) belongs


def test_the_old_name_still_checks_every_gradient():
    assert sorted(check_layer_gradients(linear(), randn(4, 5))) == ["W", "b", "x"]
    with pytest.raises(AssertionError, match="'W'"):
        check_layer_gradients(linear(WrongDW), randn(4, 5))


# ----------------------------------------------------------------- without torch, and misuse

def test_numeric_checks_run_before_the_torch_part_can_skip():
    calls = []
    with pytest.raises(AssertionError, match=r"parameter gradient for 'W'"):
        check_layer(linear(WrongDW), randn(4, 5), torch_layer=torch_linear, param_map=LINEAR_MAP,
                    oracle=skipping_oracle(calls))
    assert calls == [], "a wrong gradient must fail before PyTorch is even asked for"
    with pytest.warns(OracleSkipped, match=r"every gradient matches central finite differences"):
        result = check_layer(linear(), randn(4, 5), torch_layer=torch_linear, param_map=LINEAR_MAP,
                             oracle=skipping_oracle(calls))
    assert calls == [1]
    assert not result.torch_compared and sorted(result.errors) == ["W", "b", "x"], \
        "without PyTorch the check passes on its numeric part and says the comparison did not run"


def test_torch_counterpart_without_an_oracle_is_an_error():
    with pytest.raises(TypeError, match="oracle=torch_or_skip"):
        check_layer(linear(), randn(4, 5), torch_layer=torch_linear)


def test_float32_and_random_layers_are_refused_clearly():
    with pytest.raises(TypeError, match="float64"):
        check_layer(Linear(5, 3, rng=0), randn(4, 5))
    with pytest.raises(TypeError, match="input 'x' is float32"):
        check_layer(linear(), randn(4, 5).astype(np.float32))
    with pytest.raises(AssertionError, match="deterministic forward"):
        check_layer(Dropout(0.5, rng=0), randn(4, 5))


def test_parameters_without_a_counterpart_are_named():
    torch = torch_or_skip()
    with pytest.raises(AssertionError, match=r"parameter 'W' has no PyTorch counterpart 'W'"):
        check_layer(linear(), randn(4, 5), torch_layer=torch_linear, param_map={"b": "bias"},
                    oracle=lambda: torch)
    with pytest.raises(AssertionError, match=r"PyTorch module has parameters \['bias'\] that no parameter"):
        check_layer(Linear(5, 3, bias=False, rng=0, dtype=np.float64), randn(4, 5), torch_layer=torch_linear,
                    param_map={"W": ("weight", np.transpose)}, oracle=lambda: torch)
