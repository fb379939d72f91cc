"""The PyTorch half of :mod:`dlfs.testing.checks`: run the same forward and backward in PyTorch
and compare the outputs, every gradient and the buffers.

Nothing here imports PyTorch: the ``torch`` module is handed in by the caller (from the test
suite's ``torch_or_skip``), so the library keeps working, and its numeric checks keep
running, where PyTorch is not installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from dlfs.testing.compare import assert_close
from dlfs.testing.structure import Inputs, leaves, rebuild


@dataclass
class NumpyRun:
    """One forward and backward on the NumPy side, as the comparison needs it.

    inputs: the prepared inputs; outputs: (name, array) of every output leaf; upstream: their
    upstream gradients, in the same order; input_grads: input leaf name -> gradient;
    param_grads: parameter name -> gradient; before: the state (parameters and buffers) the
    forward started from; after: the state after one forward; training: the layer's mode.
    """

    what: str
    inputs: Inputs
    outputs: list[tuple[str, np.ndarray]]
    upstream: list[np.ndarray]
    input_grads: dict[str, object]
    param_grads: dict[str, np.ndarray | None]
    before: Mapping[str, np.ndarray]
    after: Mapping[str, np.ndarray]
    training: bool


def _tensor(torch, value, requires_grad: bool = False):
    """A NumPy array as a tensor (a copy; floats as float64); other values pass through."""
    if not isinstance(value, np.ndarray):
        return value
    array = np.array(value, dtype=np.float64 if value.dtype.kind == "f" else value.dtype, copy=True)
    t = torch.from_numpy(array)
    return t.requires_grad_(True) if requires_grad else t


def _numpy(t) -> np.ndarray:
    return t.detach().cpu().numpy()


def _torch_inputs(torch, run: NumpyRun) -> tuple[list, dict]:
    """The inputs as tensors, nested as they are (differentiated leaves require grad), and
    name -> tensor of the differentiated leaves."""
    diff = set(run.inputs.diff)
    tensors = {}
    converted = []
    for name, v in run.inputs.leaves:
        t = _tensor(torch, v, requires_grad=name in diff)
        if name in diff:
            tensors[name] = t
        converted.append(t)
    values = iter(converted)
    return [rebuild(a, values) for a in run.inputs.args], tensors


def _forward_and_backward(torch, run: NumpyRun, y, *, rtol: float, atol: float) -> None:
    """Compare the outputs, then backpropagate the same upstream gradients through torch."""
    what = run.what
    touts = [t for _, t in leaves(y, "output")]
    if len(touts) != len(run.outputs):
        raise AssertionError(f"{what}: PyTorch returned {len(touts)} output array(s), the NumPy side "
                             f"{len(run.outputs)} ({', '.join(name for name, _ in run.outputs)})")
    for (name, ours), theirs in zip(run.outputs, touts):
        assert_close(ours, _numpy(theirs), rtol=rtol, atol=atol, what=f"{what}: {name} vs PyTorch")
    pairs = [(t, torch.from_numpy(np.array(d, dtype=np.float64)))
             for t, d in zip(touts, run.upstream) if t.requires_grad]
    if pairs:
        torch.autograd.backward([t for t, _ in pairs], [d for _, d in pairs])


def _grad_or_zeros(t) -> np.ndarray:
    return np.zeros(tuple(t.shape)) if t.grad is None else _numpy(t.grad)


def _compare_input_grads(run: NumpyRun, tensors: dict, *, rtol: float, atol: float) -> None:
    for name, t in tensors.items():
        assert_close(run.input_grads[name], _grad_or_zeros(t), rtol=rtol, atol=atol,
                     what=f"{run.what}: gradient of input '{name}' vs PyTorch")


def _resolve_map(param_map: Mapping | None, ours: Mapping[str, np.ndarray], param_names,
                 tparams: dict, tbuffers: dict, what: str) -> dict[str, tuple[str, Callable | None, bool]]:
    """our state name -> (torch name, layout function or None, is_parameter)."""
    param_map = dict(param_map or {})      # names the layer lacks (b with bias=False) are ignored
    resolved = {}
    for name in ours:
        target = param_map.get(name, name)
        tname, fn = (target, None) if isinstance(target, str) else (target[0], target[1])
        is_param = name in param_names
        if is_param and tname not in tparams:
            raise AssertionError(f"{what}: parameter '{name}' has no PyTorch counterpart '{tname}'; "
                                 f"the PyTorch module has parameters {sorted(tparams)} (set param_map)")
        if not is_param and tname not in tbuffers:
            continue                       # a buffer PyTorch does not keep: nothing to compare
        resolved[name] = (tname, fn, is_param)
    mapped = {tname for tname, _, is_param in resolved.values() if is_param}
    extra = sorted(set(tparams) - mapped)
    if extra:
        raise AssertionError(f"{what}: the PyTorch module has parameters {extra} that no parameter of "
                             f"the layer maps to (the layer has {sorted(param_names)})")
    return resolved


def _layout(fn: Callable | None, value: np.ndarray) -> np.ndarray:
    return np.asarray(value if fn is None else fn(np.asarray(value)))


def compare_layer(torch, run: NumpyRun, *, torch_layer: Callable | None, torch_fn: Callable | None,
                  torch_forward: Callable | None, param_map: Mapping | None, copy_weights: bool,
                  rtol: float, atol: float) -> None:
    """Run the layer's PyTorch counterpart on the same inputs, weights and upstream gradients;
    compare outputs, input gradients, every parameter gradient and (modules) the buffers."""
    what = run.what
    targs, tensors = _torch_inputs(torch, run)
    if torch_fn is not None:
        tparams = {n: _tensor(torch, np.asarray(run.before[n]), requires_grad=True) for n in run.param_grads}
        _forward_and_backward(torch, run, torch_fn(torch, *targs, **tparams), rtol=rtol, atol=atol)
        _compare_input_grads(run, tensors, rtol=rtol, atol=atol)
        for n, leaf in tparams.items():
            assert_close(run.param_grads[n], _grad_or_zeros(leaf), rtol=rtol, atol=atol,
                         what=f"{what}: gradient of parameter '{n}' vs PyTorch")
        return

    module = torch_layer(torch).double()
    module.train(run.training)
    tparams = dict(module.named_parameters())
    tbuffers = dict(module.named_buffers())
    mapping = _resolve_map(param_map, run.before, set(run.param_grads), tparams, tbuffers, what)
    if copy_weights:
        for name, (tname, fn, is_param) in mapping.items():
            target = tparams[tname] if is_param else tbuffers[tname]
            value = _layout(fn, run.before[name])
            if tuple(value.shape) != tuple(target.shape):
                raise AssertionError(f"{what}: '{name}' in PyTorch's layout has shape {value.shape}, "
                                     f"PyTorch's '{tname}' has shape {tuple(target.shape)}")
            with torch.no_grad():
                target.copy_(torch.as_tensor(np.array(value, dtype=np.float64 if value.dtype.kind == "f"
                                                      else value.dtype)))
    y = torch_forward(module, *targs) if torch_forward is not None else module(*targs)
    _forward_and_backward(torch, run, y, rtol=rtol, atol=atol)
    _compare_input_grads(run, tensors, rtol=rtol, atol=atol)
    for name, (tname, fn, is_param) in mapping.items():
        if is_param:
            ours = run.param_grads[name]
            if ours is None:
                raise AssertionError(f"{what}: parameter '{name}' got no gradient (None)")
            assert_close(_layout(fn, ours), _grad_or_zeros(tparams[tname]), rtol=rtol, atol=atol,
                         what=f"{what}: gradient of parameter '{name}' vs PyTorch '{tname}'")
        elif tbuffers[tname].dtype.is_floating_point:
            assert_close(_layout(fn, run.after[name]), _numpy(tbuffers[tname]), rtol=rtol, atol=atol,
                         what=f"{what}: buffer '{name}' after one forward vs PyTorch '{tname}'")


def compare_op(torch, run: NumpyRun, *, torch_fn: Callable, rtol: float, atol: float) -> None:
    """Run ``torch_fn(torch, *inputs, **params)`` and compare outputs and every gradient."""
    targs, tensors = _torch_inputs(torch, run)
    tparams = {n: _tensor(torch, np.asarray(v), requires_grad=True) for n, v in run.before.items()}
    _forward_and_backward(torch, run, torch_fn(torch, *targs, **tparams), rtol=rtol, atol=atol)
    _compare_input_grads(run, tensors, rtol=rtol, atol=atol)
    for n, leaf in tparams.items():
        assert_close(run.param_grads[n], _grad_or_zeros(leaf), rtol=rtol, atol=atol,
                     what=f"{run.what}: gradient of parameter '{n}' vs PyTorch")
