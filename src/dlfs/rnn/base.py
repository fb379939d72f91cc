"""What every recurrent layer of ``dlfs.rnn`` shares: PyTorch's parameter names, layout and
initialisation, loading a PyTorch state dict, and the checks of the input and the state.

A layer with G gate blocks (RNN 1, LSTM 4, GRU 3), hidden size H and L stacked layers has, for
each layer ``k`` (layer 0 reads the input, layer k > 0 reads the hidden states of layer k − 1):

    weight_ih_l{k}: (G·H, D_k)     weight_hh_l{k}: (G·H, H)     D_0 = input_size, D_k = H
    bias_ih_l{k}:   (G·H,)         bias_hh_l{k}:   (G·H,)       (absent when bias=False)

created in that order, each drawn from ``U(-1/√H, 1/√H)`` as ``torch.nn.RNN/LSTM/GRU`` do, so
``layer.state_dict()`` loads into the PyTorch module (``batch_first=True``) unchanged and
:meth:`RecurrentLayer.from_torch_state` builds a layer from a PyTorch state dict.
"""

from __future__ import annotations

import math
import re
from typing import Mapping

import numpy as np

from dlfs.nn.layers import Layer, Parameter

_NAME = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)$")


class RecurrentLayer(Layer):
    """Base class of the recurrent layers: parameters, loading, argument checks (given code).

    Subclasses set ``gates`` (G) and ``max_layers`` and implement ``forward``/``backward``.
    input_size: D; hidden_size: H; num_layers: L; bias: whether the four bias vectors exist;
    rng: a Generator, a seed or None; dtype: of the parameters (float32, or float64 for checks).
    """

    gates: int = 1
    max_layers: int | None = None

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 rng: np.random.Generator | int | None = None, dtype=np.float32):
        name = type(self).__name__
        for what, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name}: {what} must be a positive integer, got {value!r}")
        if self.max_layers is not None and num_layers > self.max_layers:
            raise ValueError(f"{name} supports num_layers up to {self.max_layers}, got {num_layers}")
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.bias = bool(bias)
        rng = np.random.default_rng(rng)
        k = 1.0 / math.sqrt(self.hidden_size)
        GH, H = self.gates * self.hidden_size, self.hidden_size
        for layer in range(self.num_layers):
            d_in = self.input_size if layer == 0 else H
            shapes = [("weight_ih", (GH, d_in)), ("weight_hh", (GH, H))]
            if self.bias:
                shapes += [("bias_ih", (GH,)), ("bias_hh", (GH,))]
            for base, shape in shapes:
                pname = f"{base}_l{layer}"
                setattr(self, pname, Parameter(rng.uniform(-k, k, shape).astype(dtype), name=pname))

    def extra_repr(self) -> str:
        extra = f", num_layers={self.num_layers}" if self.num_layers > 1 else ""
        return f"{self.input_size}, {self.hidden_size}{extra}, bias={self.bias}"

    @property
    def dtype(self) -> np.dtype:
        return self.weight_ih_l0.data.dtype

    def layer_parameters(self, layer: int) -> tuple[Parameter, Parameter, Parameter | None, Parameter | None]:
        """``(weight_ih, weight_hh, bias_ih, bias_hh)`` of layer ``layer`` (biases None without bias)."""
        get = lambda base: getattr(self, f"{base}_l{layer}", None)    # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    # -- PyTorch state dicts ---------------------------------------------------------------------

    @classmethod
    def from_torch_state(cls, state: Mapping, dtype=None, **kwargs) -> "RecurrentLayer":
        """A layer holding copies of the weights of a PyTorch state dict.

        state: ``module.state_dict()`` of ``torch.nn.RNN/LSTM/GRU`` (tensors or arrays; CPU
        tensors convert with ``np.asarray``), or this layer's own ``state_dict()``. The sizes,
        the number of layers and whether there are biases are read from the shapes; dtype: of
        the new layer (default: the state's floating dtype, float32 for any other); kwargs: passed
        to the constructor (e.g. ``nonlinearity``). Raises ValueError naming what does not fit.
        """
        arrays = {}
        for key, value in state.items():
            if not _NAME.match(key):
                raise ValueError(f"{cls.__name__}.from_torch_state: unexpected entry {key!r} (expected "
                                 "weight_ih_l<k>, weight_hh_l<k>, bias_ih_l<k>, bias_hh_l<k>)")
            arrays[key] = np.asarray(value)
        if "weight_ih_l0" not in arrays or "weight_hh_l0" not in arrays:
            raise ValueError(f"{cls.__name__}.from_torch_state: the state has no weight_ih_l0/weight_hh_l0 "
                             f"(keys: {sorted(arrays)})")
        w_ih, w_hh = arrays["weight_ih_l0"], arrays["weight_hh_l0"]
        if w_ih.ndim != 2 or w_hh.ndim != 2 or w_hh.shape[0] != cls.gates * w_hh.shape[1]:
            raise ValueError(f"{cls.__name__}.from_torch_state: weight_hh_l0 must be ({cls.gates}·H, H) and "
                             f"weight_ih_l0 ({cls.gates}·H, D); got {w_hh.shape} and {w_ih.shape}")
        num_layers = 1 + max(int(_NAME.match(k).group(2)) for k in arrays)
        if dtype is None:
            dtype = w_ih.dtype if w_ih.dtype.kind == "f" else np.dtype(np.float32)
        layer = cls(w_ih.shape[1], w_hh.shape[1], num_layers=num_layers, bias="bias_ih_l0" in arrays,
                    rng=0, dtype=dtype, **kwargs)
        layer.load_state_dict(arrays)
        return layer

    # -- argument checks ------------------------------------------------------------------------

    def check_input(self, x: np.ndarray) -> tuple[int, int, int]:
        """x must be a floating (N, T, D) array with D = input_size and T ≥ 1; returns (N, T, D)."""
        name = type(self).__name__
        if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
            raise TypeError(f"{name} expects a floating-point array x: (N, T, {self.input_size}), "
                            f"got {type(x).__name__ if not isinstance(x, np.ndarray) else x.dtype}")
        if x.ndim != 3 or x.shape[2] != self.input_size or x.shape[1] < 1:
            raise ValueError(f"{name} expects x: (N, T, {self.input_size}) with T ≥ 1 (batch first), "
                             f"got shape {x.shape}")
        return x.shape

    def state_shape(self, n: int) -> tuple[int, ...]:
        """The shape of one state: (N, H) for a single layer, (L, N, H) for a stack."""
        return (n, self.hidden_size) if self.num_layers == 1 else (self.num_layers, n, self.hidden_size)

    def initial_state(self, s0: np.ndarray | None, n: int, dtype, what: str = "h0") -> np.ndarray:
        """A given initial state checked against :meth:`state_shape`, or zeros; always returned as
        (L, N, H) in ``dtype`` (a view of s0 when nothing needs converting)."""
        shape = self.state_shape(n)
        if s0 is None:
            return np.zeros((self.num_layers, n, self.hidden_size), dtype=dtype)
        s0 = np.asarray(s0)
        if s0.shape != shape:
            raise ValueError(f"{type(self).__name__}: {what} must have shape {shape} (batch {n}, hidden "
                             f"{self.hidden_size}{', layers first' if self.num_layers > 1 else ''}), "
                             f"got {s0.shape}")
        return s0.astype(dtype, copy=False).reshape(self.num_layers, n, self.hidden_size)

    def final_state(self, s: np.ndarray) -> np.ndarray:
        """(L, N, H) -> the user's shape: (N, H) for a single layer."""
        return s[0] if self.num_layers == 1 else s

    def check_upstream(self, d: np.ndarray | None, shape: tuple[int, ...], what: str) -> None:
        if d is not None and np.shape(d) != shape:
            raise ValueError(f"{type(self).__name__}.backward: {what} must have shape {shape}, got {np.shape(d)}")
