"""Nested inputs, outputs and gradients of a layer, as :mod:`dlfs.testing.checks` sees them.

A layer's inputs and outputs may nest tuples: an LSTM takes ``(x, (h0, c0))`` and returns
``(out, (h_n, c_n))``, and its backward mirrors both. Every array inside is a *leaf* with a
name made from the input's name and its position: ``x``, ``state[0]``, ``state[1]``;
outputs are ``output`` (a single array) or ``output[0]``, ``output[1][0]``, ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np


def leaves(tree, name: str) -> list[tuple[str, object]]:
    """(name, leaf) for every leaf of nested tuples/lists, depth first."""
    if isinstance(tree, (tuple, list)):
        return [pair for j, t in enumerate(tree) for pair in leaves(t, f"{name}[{j}]")]
    return [(name, tree)]


def rebuild(tree, values: Iterator):
    """``tree`` with its leaves replaced, in the order of :func:`leaves`, by ``values``."""
    if isinstance(tree, (tuple, list)):
        return type(tree)([rebuild(t, values) for t in tree])
    return next(values)


@dataclass
class Inputs:
    """The positional inputs of a check.

    args: the arguments as passed to forward (differentiated leaves are private copies, so
    that the same array given twice is two inputs); names: one per argument; leaves: (name,
    value) of every leaf of args; diff: names of the differentiated leaves; diff_args: indices
    of the arguments holding one."""

    args: tuple
    names: tuple[str, ...]
    leaves: list[tuple[str, object]]
    diff: list[str]
    diff_args: list[int]

    def arrays(self) -> dict[str, np.ndarray]:
        """name -> array of every differentiated leaf (the very arrays forward reads)."""
        chosen = set(self.diff)
        return {name: v for name, v in self.leaves if name in chosen}


def prepare_inputs(inputs, input_names: Sequence[str] | None, grad_inputs: Sequence[int] | None,
                   what: str) -> Inputs:
    """inputs: one array, or a tuple of positional arguments (arrays, nested tuples of arrays,
    masks, ints, None). Differentiated: every floating-point array leaf, or with
    ``grad_inputs`` every array leaf of the arguments at those indices; all must be float64."""
    args = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    if input_names is None:
        names = ("x",) if len(args) == 1 else tuple(f"inputs[{i}]" for i in range(len(args)))
    else:
        names = tuple(input_names)
        if len(names) != len(args):
            raise ValueError(f"{what}: {len(names)} input names for {len(args)} inputs")
    chosen = range(len(args)) if grad_inputs is None else sorted({int(i) % len(args) for i in grad_inputs})
    diff = []
    for i in chosen:
        for name, v in leaves(args[i], names[i]):
            is_array = isinstance(v, np.ndarray)
            if not is_array or (grad_inputs is None and v.dtype.kind != "f"):
                if grad_inputs is not None and v is not None:
                    raise TypeError(f"{what}: input '{name}' is {type(v).__name__}, not an array to "
                                    "differentiate")
                continue
            if v.dtype != np.float64:
                raise TypeError(f"{what}: input '{name}' is {v.dtype}; gradient checks run in float64 "
                                "(pass a float64 array)")
            diff.append(name)
    chosen_names = set(diff)
    copied = []
    for a, n in zip(args, names):
        values = (np.array(v, copy=True) if name in chosen_names else v for name, v in leaves(a, n))
        copied.append(rebuild(a, values))
    args = tuple(copied)
    all_leaves = [pair for a, n in zip(args, names) for pair in leaves(a, n)]
    diff_args = [i for i, (a, n) in enumerate(zip(args, names))
                 if any(name in chosen_names for name, _ in leaves(a, n))]
    return Inputs(args, names, all_leaves, diff, diff_args)


def output_leaves(y, what: str) -> list[tuple[str, np.ndarray]]:
    """(name, array) of every output leaf; each must be a floating-point array."""
    pairs = leaves(y, "output")
    for name, v in pairs:
        if not isinstance(v, np.ndarray) or v.dtype.kind != "f":
            kind = v.dtype if isinstance(v, np.ndarray) else type(v).__name__
            raise AssertionError(f"{what}: {name} must be a floating-point array, got {kind}")
    return pairs


def flat(pairs: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """Every leaf, raveled and concatenated, in float64: what finite differences perturb against."""
    return np.concatenate([np.asarray(v, dtype=np.float64).ravel() for _, v in pairs])


def input_grads(back, inp: Inputs, what: str) -> dict[str, object]:
    """backward's return value -> name -> gradient of every differentiated leaf.

    One argument: backward returns its gradient (shaped like it, nested like it). Several: a
    tuple with one gradient per argument, or one per argument that holds a differentiated
    leaf; a nested argument's gradient is nested the same way (or None)."""
    if not inp.diff:
        return {}
    n = len(inp.args)
    if n == 1:
        if isinstance(back, (tuple, list)) and len(back) == 1 and not isinstance(inp.args[0], (tuple, list)):
            back = back[0]
        per_arg = {0: back}
    elif not isinstance(back, (tuple, list)):
        raise AssertionError(f"{what}: backward must return one gradient per input "
                             f"({', '.join(inp.names)}) as a tuple, got {type(back).__name__}")
    elif len(back) == n:
        per_arg = dict(enumerate(back))
    elif len(back) == len(inp.diff_args):
        per_arg = dict(zip(inp.diff_args, back))
    else:
        raise AssertionError(f"{what}: backward returned {len(back)} gradients; expected one per input "
                             f"({n}: {', '.join(inp.names)}) or one per differentiated input "
                             f"({len(inp.diff_args)})")
    grads: dict[str, object] = {}
    for i in inp.diff_args:
        _match(inp.args[i], per_arg.get(i), inp.names[i], grads, what)
    return {name: grads.get(name) for name in inp.diff}


def _match(arg, grad, name: str, out: dict, what: str) -> None:
    if not isinstance(arg, (tuple, list)):
        out[name] = grad
        return
    if grad is None:
        return
    if not isinstance(grad, (tuple, list)) or len(grad) != len(arg):
        raise AssertionError(f"{what}: the gradient of input '{name}' must be nested like the input "
                             f"(a tuple of {len(arg)}), got {type(grad).__name__}")
    for j, (a, g) in enumerate(zip(arg, grad)):
        _match(a, g, f"{name}[{j}]", out, what)
