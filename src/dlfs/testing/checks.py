"""The shared check of a layer or an op: every gradient against central finite differences in
float64, then (when asked) the same forward and backward in PyTorch with the same weights.

    check_layer(layer, inputs, ...)                a Layer of ``dlfs.nn.layers``
    check_op(forward, backward, inputs, params)    a forward function and its backward

Both run the forward, draw a random upstream gradient for every output (from ``seed``), run
the backward, and compare the gradient of every differentiated input and of every parameter
with central differences of ``sum(output · upstream)``. Only then, and only when a PyTorch
counterpart and an ``oracle`` are given, do they run PyTorch: the finite-difference part needs
NumPy alone, so a learner without PyTorch still gets the full numeric check.

The library never imports PyTorch. ``oracle`` is a zero-argument function that returns the
``torch`` module, normally ``torch_or_skip`` from ``tests/helpers/torch_oracle.py``. When it
skips (PyTorch not installed), the check still passes on the strength of its numeric part and
emits an :class:`OracleSkipped` warning instead: a test that needs no PyTorch never reports
as skipped, and the grader counts the warnings to say how many PyTorch comparisons did not run.

Several inputs (attention's q, k, v; an RNN's x, h0) and several outputs (an RNN's output and
h_n) are supported, nested tuples too (an LSTM's state (h, c)): ``forward(*inputs)`` may
return a tuple, ``backward(*upstream)`` then takes one gradient per output (nested like the
outputs) and returns one gradient per input (nested like the inputs; ``None`` or anything for
inputs that are not differentiated). Inputs that are not floating-point arrays (integer
tokens, boolean masks, lengths, None) are passed through and not differentiated;
``grad_inputs`` chooses the differentiated inputs explicitly (e.g. to leave out a float mask).
See :mod:`dlfs.testing.structure` for the names of nested inputs and outputs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from dlfs.testing.gradcheck import check_gradients
from dlfs.testing.structure import flat, input_grads, output_leaves, prepare_inputs, rebuild
from dlfs.testing.torch_compare import NumpyRun, compare_layer, compare_op


@dataclass
class CheckResult:
    """What a check measured.

    errors: name -> max relative error against finite differences (inputs and parameters);
    outputs: what the forward returned; upstream: the random upstream gradients, nested like
    the outputs; torch_compared: whether the PyTorch comparison ran (and passed).
    """

    errors: dict[str, float]
    outputs: object
    upstream: object
    torch_compared: bool = False


def _upstream(y, pairs, seed: int):
    """Random upstream gradients nested like the outputs ``y``, from a generator whose stream
    differs from ``default_rng(seed)``: an input drawn with the same seed is never also the
    upstream gradient (for a normalisation, dy = x̂ makes dx vanish and the check meaningless)."""
    rng = np.random.default_rng([seed, 0x6D1F5])
    douts = [(name, rng.standard_normal(v.shape)) for name, v in pairs]
    return douts, rebuild(y, iter(d for _, d in douts))


def _check_deterministic(first, again, what: str) -> None:
    for (name, a), (_, b) in zip(first, again):
        if a.shape != b.shape or not np.allclose(a, b, rtol=1e-12, atol=0.0):
            raise AssertionError(
                f"{what}: two forward passes on the same input gave a different {name}; finite "
                "differences need a deterministic forward (dropout in training mode? check it in "
                "eval mode, or with p=0)")


def _numeric(f: Callable[[], np.ndarray], arrays: Mapping[str, np.ndarray], grads: Mapping[str, object],
             kind: str, dout: np.ndarray, *, tol: float, h: float, what: str) -> dict[str, float]:
    """check_gradients for each name, with the layer and the kind of gradient in the message."""
    errors = {}
    for name, x in arrays.items():
        got = grads.get(name)
        if got is None:
            raise AssertionError(f"{what}: {kind} '{name}' got no gradient from backward "
                                 f"(expected an array of shape {x.shape}, got None)")
        try:
            errors.update(check_gradients(f, {name: x}, {name: got}, dout=dout, tol=tol, h=h))
        except AssertionError as exc:
            hint = ""
            if np.shape(got) == x.shape and not np.any(got):
                hint = ("\n  (backward left it at zero everywhere: "
                        + ("does backward accumulate into this parameter's .grad?)" if kind == "parameter"
                           else "does backward return this input's gradient?)"))
            raise AssertionError(f"{what}: {kind} {exc}{hint}") from None
    return errors


class OracleSkipped(UserWarning):
    """A PyTorch comparison did not run (PyTorch is not installed); the numeric checks passed."""


def _torch_module(oracle, what: str):
    """Call ``oracle``; when it skips, warn with :class:`OracleSkipped` and return None (the
    numeric checks, which already passed, decide the test)."""
    if oracle is None:
        raise TypeError(f"{what}: a PyTorch counterpart was given but no oracle; pass "
                        "oracle=torch_or_skip (from torch_oracle) so the comparison can run")
    try:
        import pytest
        skip_exc = pytest.skip.Exception
    except ImportError:            # outside pytest nothing can skip
        pytest, skip_exc = None, ()
    try:
        return oracle()
    except skip_exc as exc:
        warnings.warn(OracleSkipped(
            f"{what}: every gradient matches central finite differences; the PyTorch "
            f"comparison did not run: {getattr(exc, 'msg', exc)}"), stacklevel=3)
        return None


def _no_clash(params, inp, what: str) -> None:
    clash = set(params) & set(inp.diff)
    if clash:
        raise ValueError(f"{what}: input name(s) {sorted(clash)} are also parameter names; pass input_names")


# -- layers ------------------------------------------------------------------------------------

def check_layer(layer, inputs, *, torch_layer: Callable | None = None, torch_fn: Callable | None = None,
                torch_forward: Callable | None = None, param_map: Mapping | None = None,
                copy_weights: bool = True, oracle: Callable | None = None, train: bool | None = None,
                grad_inputs: Sequence[int] | None = None, input_names: Sequence[str] | None = None,
                seed: int = 0, tol: float = 1e-6, h: float = 1e-6,
                rtol: float = 1e-8, atol: float = 1e-10) -> CheckResult:
    """Check a layer's backward against finite differences and, optionally, against PyTorch.

    layer: a ``dlfs.nn.layers.Layer`` with float64 parameters;
    inputs: one float64 array, or a tuple of ``forward``'s positional arguments (arrays and
        nested tuples of arrays to differentiate; masks, integer arrays, ints, None pass through);
    train: call ``layer.train(train)`` first (None: keep its mode; PyTorch gets the same mode);
    grad_inputs: indices of the arguments to differentiate (default: every floating-point array);
    input_names: one name per argument for the messages (default ``x``, or ``inputs[i]``);
    seed: of the upstream gradient; tol, h: finite differences (max relative error < tol, step h).

    The PyTorch counterpart, used only when ``oracle`` (``torch_or_skip``) returns torch:
    torch_layer: ``torch -> torch.nn.Module`` built from the same specification (it is converted
        to float64 and, with ``copy_weights``, loaded with the layer's weights and buffers);
    param_map: layer state name -> torch state name, or (torch name, layout function) where the
        function turns our array into torch's layout (``np.transpose`` for Linear's W);
        unlisted names map to themselves. Every parameter on either side must have a
        counterpart; buffers (running statistics) are loaded and compared after the forward
        where torch has them;
    torch_forward: ``(module, *torch_inputs) -> output(s)`` when ``module(*inputs)`` is not the
        call (e.g. to add the layer axis torch.nn.RNN wants on h0, or drop attention weights);
    torch_fn: instead of a module, ``(torch, *torch_inputs, **torch_params) -> output(s)`` with
        the layer's parameters (by name, in our layout) as leaf tensors;
    rtol, atol: tolerances of the PyTorch comparison (outputs, gradients, buffers).

    The layer's parameters and buffers are left as they were (running statistics updated by
    the many forward passes are restored); ``.grad`` holds the checked backward's gradients.
    Raises AssertionError naming the first value or gradient that disagrees, its error and
    where. Returns a :class:`CheckResult`.
    """
    what = repr(layer)
    if torch_layer is not None and torch_fn is not None:
        raise TypeError(f"{what}: give torch_layer or torch_fn, not both")
    if train is not None:
        layer.train(train)
    inp = prepare_inputs(inputs, input_names, grad_inputs, what)
    params = dict(layer.named_parameters())
    for name, p in params.items():
        if p.data.dtype != np.float64:
            raise TypeError(f"{what}: parameter '{name}' is {p.data.dtype}; gradient checks run in "
                            "float64 (create the layer with dtype=np.float64)")
    _no_clash(params, inp, what)

    before = layer.state_dict()
    layer.zero_grad()
    y = layer.forward(*inp.args)
    outs = output_leaves(y, what)
    after = layer.state_dict()                     # buffers after one forward (running statistics)
    _check_deterministic(outs, output_leaves(layer.forward(*inp.args), what), what)
    douts, upstream = _upstream(y, outs, seed)
    back = layer.backward(*upstream) if isinstance(y, (tuple, list)) else layer.backward(upstream)
    in_grads = input_grads(back, inp, what)
    param_grads = {n: None if p.grad is None else np.array(p.grad, copy=True) for n, p in params.items()}

    def f():
        return flat(output_leaves(layer.forward(*inp.args), what))

    dout = flat(douts)
    errors = _numeric(f, inp.arrays(), in_grads, "input", dout, tol=tol, h=h, what=what)
    errors.update(_numeric(f, {n: p.data for n, p in params.items()}, param_grads, "parameter", dout,
                           tol=tol, h=h, what=what))
    layer.load_state_dict(before)
    result = CheckResult(errors, y, upstream)

    if torch_layer is None and torch_fn is None:
        return result
    torch = _torch_module(oracle, what)
    if torch is None:
        return result
    run = NumpyRun(what, inp, outs, [d for _, d in douts], in_grads, param_grads, before, after,
                   bool(getattr(layer, "training", True)))
    compare_layer(torch, run, torch_layer=torch_layer, torch_fn=torch_fn, torch_forward=torch_forward,
                  param_map=param_map, copy_weights=copy_weights, rtol=rtol, atol=atol)
    result.torch_compared = True
    return result


# -- functions ---------------------------------------------------------------------------------

def check_op(forward: Callable, backward: Callable, inputs, params: Mapping[str, np.ndarray] | None = None,
             *, torch_fn: Callable | None = None, oracle: Callable | None = None,
             grad_inputs: Sequence[int] | None = None, input_names: Sequence[str] | None = None,
             seed: int = 0, tol: float = 1e-6, h: float = 1e-6, rtol: float = 1e-8, atol: float = 1e-10,
             what: str | None = None) -> CheckResult:
    """Check a functional op ``forward`` and its ``backward`` the same way as :func:`check_layer`.

    forward: ``(*inputs, **params) -> output`` or a tuple of outputs;
    backward: ``(upstream, *inputs, **params) -> gradients`` where upstream is the output's
        gradient (nested like the outputs), and the gradients are a dict name -> array or a
        sequence: one per differentiated input leaf, then one per parameter in ``params`` order
        (a bare array when that is a single gradient). Wrap the library's function in a lambda
        when its signature differs, e.g. for ``y = x @ W + b``:
        ``check_op(linear_forward, lambda dy, x, W, b: linear_backward(dy, x, W), x, {"W": W, "b": b})``;
    inputs: one float64 array or a tuple of positional arguments; params: name -> float64 array
        (both differentiated; non-float inputs are passed through);
    torch_fn: ``(torch, *torch_inputs, **torch_params) -> output(s)``, run when ``oracle``
        (``torch_or_skip``) returns torch; outputs and every gradient are compared.
    Returns a :class:`CheckResult`.
    """
    what = what or getattr(forward, "__name__", "op")
    inp = prepare_inputs(inputs, input_names, grad_inputs, what)
    params = dict(params or {})
    for name, p in params.items():
        if not isinstance(p, np.ndarray) or p.dtype != np.float64:
            raise TypeError(f"{what}: parameter '{name}' must be a float64 array, got "
                            f"{p.dtype if isinstance(p, np.ndarray) else type(p).__name__}")
    params = {n: np.array(p, copy=True) for n, p in params.items()}
    _no_clash(params, inp, what)

    y = forward(*inp.args, **params)
    outs = output_leaves(y, what)
    _check_deterministic(outs, output_leaves(forward(*inp.args, **params), what), what)
    douts, upstream = _upstream(y, outs, seed)
    back = backward(upstream, *inp.args, **params)
    wanted = list(inp.diff) + list(params)
    if isinstance(back, Mapping):
        grads = dict(back)
    else:
        seq = [back] if len(wanted) == 1 and not isinstance(back, (tuple, list)) else list(back)
        if len(seq) != len(wanted):
            raise AssertionError(f"{what}: backward returned {len(seq)} gradients; expected "
                                 f"{len(wanted)} ({', '.join(wanted)})")
        grads = dict(zip(wanted, seq))

    def f():
        return flat(output_leaves(forward(*inp.args, **params), what))

    dout = flat(douts)
    errors = _numeric(f, inp.arrays(), grads, "input", dout, tol=tol, h=h, what=what)
    errors.update(_numeric(f, params, grads, "parameter", dout, tol=tol, h=h, what=what))
    result = CheckResult(errors, y, upstream)
    if torch_fn is None:
        return result
    torch = _torch_module(oracle, what)
    if torch is None:
        return result
    run = NumpyRun(what, inp, outs, [d for _, d in douts], {n: grads[n] for n in inp.diff},
                   {n: grads[n] for n in params}, params, params, True)
    compare_op(torch, run, torch_fn=torch_fn, rtol=rtol, atol=atol)
    result.torch_compared = True
    return result
