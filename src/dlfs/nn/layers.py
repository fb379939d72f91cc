"""Topic 06 — the layer API and backpropagation through it.

Every layer follows one contract, which Modules 2–4 reuse:

* ``forward(x)`` computes the output and caches what ``backward`` needs;
* ``backward(dy)`` takes the gradient of the loss with respect to the output (same shape
  as the output), returns ``dx`` (same shape as ``x``) and **accumulates** (``+=``)
  parameter gradients into ``Parameter.grad``;
* ``parameters()`` finds every :class:`Parameter` in the layer and its sub-layers;
* ``train()`` / ``eval()`` switch behaviour such as dropout and batch-norm statistics.

A :class:`Parameter` has ``.data`` (updated in place by an optimiser) and ``.grad``,
so the optimisers of Topic 03 work on it directly. ``.grad`` may be ``None`` (an
optimiser's ``zero_grad(set_to_none=True)``); :meth:`Parameter.accumulate_grad` handles it.

What you write here:

* :meth:`Parameter.accumulate_grad` — ``grad += g`` in place (or start a new gradient);
* :func:`linear_backward` — the three gradients of ``y = x @ W + b``;
* :class:`Linear` — create the parameters (initialised like ``torch.nn.Linear``), forward
  (cache the input) and backward (accumulate ``dW``, ``db``, return ``dx``);
* :class:`Sequential` — forward through the layers in order, backward in reverse order;
* :class:`Flatten` — ``(N, d1, d2, ...) -> (N, d1·d2·...)`` and back.

Layouts: ``W`` is stored ``(in_features, out_features)`` (the transpose of PyTorch's
``nn.Linear.weight``), so the forward is a plain ``x @ W + b``. Training runs in float32:
keep the dtype of the parameters and the input, and avoid copies the math does not need.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from dlfs.nn.forward import linear_forward
from dlfs.nn.init import kaiming_uniform


class Parameter:
    """A trainable array and its gradient. data, grad: same shape and dtype.

    ``grad`` starts as zeros; it may be set to ``None`` (meaning "no gradient yet") by an
    optimiser, and :meth:`accumulate_grad` and :meth:`zero_grad` cope with that.
    """

    def __init__(self, data: np.ndarray, name: str = ""):
        self.data = np.asarray(data)
        self.grad: np.ndarray | None = np.zeros_like(self.data)
        self.name = name

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    def accumulate_grad(self, g: np.ndarray) -> None:
        """Add ``g`` (same shape as ``data``) into ``grad``.

        When ``grad`` is an array, add **in place** (``+=``): the same array object keeps
        receiving contributions, from two uses of the parameter in one pass or from two
        backward passes (gradient accumulation). When ``grad`` is None, start a new
        gradient: a copy of ``g`` in ``data``'s dtype (the caller may reuse ``g``).
        """
        # TODO: never rebind self.grad when it already exists (an optimiser may hold it).
        # BEGIN SOLUTION add g into grad in place; when grad is None store a copy of g in data's dtype
        if self.grad is None:
            self.grad = np.array(g, dtype=self.data.dtype, copy=True)
        else:
            self.grad += g
        # END SOLUTION

    def zero_grad(self) -> None:
        """Fill ``grad`` with zeros in place (a new zero array when it is None)."""
        if self.grad is None:
            self.grad = np.zeros_like(self.data)
        else:
            self.grad[...] = 0

    def __repr__(self) -> str:
        return f"Parameter({self.name or '?'}, shape={self.data.shape}, dtype={self.data.dtype})"


class Layer:
    """Base class: subclasses implement ``forward`` and ``backward``."""

    training: bool = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def __repr__(self) -> str:
        extra = self.extra_repr()
        return f"{type(self).__name__}({extra})"

    def extra_repr(self) -> str:
        """The text between the parentheses of ``repr(layer)``."""
        return ""

    # -- discovery ---------------------------------------------------------------
    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Every Parameter reachable through attributes, lists and tuples, depth first."""
        seen: set[int] = set()

        def walk(obj, name):
            if isinstance(obj, Parameter):
                if id(obj) not in seen:
                    seen.add(id(obj))
                    yield name, obj
            elif isinstance(obj, Layer):
                for key, value in vars(obj).items():
                    yield from walk(value, f"{name}.{key}" if name else key)
            elif isinstance(obj, (list, tuple)):
                for i, value in enumerate(obj):
                    yield from walk(value, f"{name}.{i}" if name else str(i))

        yield from walk(self, prefix)

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def num_parameters(self) -> int:
        """Total number of trainable scalars."""
        return sum(p.data.size for p in self.parameters())

    def sublayers(self) -> Iterator["Layer"]:
        for value in vars(self).values():
            items = value if isinstance(value, (list, tuple)) else [value]
            for item in items:
                if isinstance(item, Layer):
                    yield item
                    yield from item.sublayers()

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def train(self, mode: bool = True) -> "Layer":
        self.training = mode
        for layer in self.sublayers():
            layer.training = mode
        return self

    def eval(self) -> "Layer":
        return self.train(False)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameters (and buffers a subclass adds via ``buffers()``) by dotted name."""
        state = {name: p.data.copy() for name, p in self.named_parameters()}
        for name, layer in [("", self), *self._named_sublayers()]:
            for key, value in layer.buffers().items():
                state[f"{name}.{key}" if name else key] = np.array(value, copy=True)
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
        params = dict(self.named_parameters())
        for name, value in state.items():
            if name in params:
                if params[name].data.shape != np.shape(value):
                    raise ValueError(f"{name}: expected shape {params[name].data.shape}, got {np.shape(value)}")
                params[name].data[...] = value
        for prefix, layer in [("", self), *self._named_sublayers()]:
            for key in layer.buffers():
                full = f"{prefix}.{key}" if prefix else key
                setattr(layer, key, np.array(state[full], copy=True))

    def buffers(self) -> dict[str, np.ndarray]:
        """Non-trainable state saved with the model (e.g. running statistics)."""
        return {}

    def _named_sublayers(self, prefix: str = "") -> Iterator[tuple[str, "Layer"]]:
        for key, value in vars(self).items():
            items = [(f"{key}.{i}", v) for i, v in enumerate(value)] if isinstance(value, (list, tuple)) \
                else [(key, value)]
            for name, item in items:
                if isinstance(item, Layer):
                    full = f"{prefix}.{name}" if prefix else name
                    yield full, item
                    yield from item._named_sublayers(full)


# -- the fully connected layer ---------------------------------------------------------------

def linear_backward(dy: np.ndarray, x: np.ndarray, W: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of ``y = x @ W + b`` given ``dy = dL/dy``.

    x: (N, D_in) or (..., D_in); W: (D_in, D_out); dy: x's leading shape + (D_out,).
    Returns ``(dx, dW, db)``:

    * ``dx = dy @ Wᵀ``: shaped like x;
    * ``dW = xᵀ @ dy``: (D_in, D_out), summed over every leading index (the batch);
    * ``db = Σ dy`` over every leading index: (D_out,).

    Leading dimensions are handled by viewing x as (M, D_in) and dy as (M, D_out) with
    M the product of the leading sizes (a reshape, no copy for contiguous arrays).
    """
    # TODO: dW and db sum over the batch, because W and b were shared by every row.
    # BEGIN SOLUTION return (dx, dW, db), treating every leading dimension of x as batch
    d_in, d_out = W.shape
    x2 = x.reshape(-1, d_in)
    dy2 = dy.reshape(-1, d_out)
    dW = x2.T @ dy2
    db = dy2.sum(axis=0)
    dx = (dy2 @ W.T).reshape(x.shape)
    return dx, dW, db
    # END SOLUTION


class Linear(Layer):
    """A fully connected layer: ``y = x @ W + b``.

    x: (N, in_features) or (..., in_features) -> y: (N, out_features) or (..., out_features).
    Parameters: ``W``: (in_features, out_features); ``b``: (out_features,), or ``b = None``
    when ``bias=False``.

    Initialisation (the same distribution as ``torch.nn.Linear``): with
    ``bound = 1 / sqrt(in_features)``, ``W ~ U(-bound, bound)`` and ``b ~ U(-bound, bound)``.
    For W this is Kaiming-uniform with negative slope ``a = sqrt(5)``:
    ``gain = sqrt(2 / (1 + a²)) = sqrt(1/3)`` and ``bound = gain · sqrt(3 / fan_in)``
    (``dlfs.nn.init.kaiming_uniform(..., a=math.sqrt(5), nonlinearity="leaky_relu")``).
    W is drawn first, then b, both from ``rng`` (a Generator, a seed, or None).
    Parameters are created in ``dtype`` (float32 by default; float64 for gradient checks).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 rng: np.random.Generator | int | None = None, dtype=np.float32):
        if in_features < 1 or out_features < 1:
            raise ValueError(f"Linear needs positive sizes, got ({in_features}, {out_features})")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        rng = np.random.default_rng(rng)
        self.x: np.ndarray | None = None         # the input of the last forward
        # TODO: W first (kaiming_uniform with a=sqrt(5) and nonlinearity="leaky_relu"), then b
        # from rng.uniform(-bound, bound); wrap them in Parameter(..., name="W") / ("b").
        # BEGIN SOLUTION create self.W: (in, out) and self.b: (out,) or None as Parameters, initialised like torch.nn.Linear
        self.W = Parameter(
            kaiming_uniform((self.in_features, self.out_features), a=math.sqrt(5.0),
                            nonlinearity="leaky_relu", rng=rng, dtype=dtype),
            name="W",
        )
        if bias:
            bound = 1.0 / math.sqrt(self.in_features)
            self.b = Parameter(rng.uniform(-bound, bound, self.out_features).astype(dtype), name="b")
        else:
            self.b = None
        # END SOLUTION

    @classmethod
    def from_weights(cls, W, b=None) -> "Linear":
        """A Linear layer holding copies of given weights (given).

        W: (in_features, out_features); b: (out_features,), or None for a layer without bias.
        The parameters take W's floating dtype (float32 for any other dtype). The layer is
        built by the constructor, then its parameters are overwritten (``load_state_dict``,
        which checks the shapes).
        """
        W = np.asarray(W)
        if W.ndim != 2:
            raise ValueError(f"Linear.from_weights: W must be (in_features, out_features), got shape {W.shape}")
        dtype = W.dtype if W.dtype.kind == "f" else np.dtype(np.float32)
        layer = cls(W.shape[0], W.shape[1], bias=b is not None, rng=0, dtype=dtype)
        layer.load_state_dict({"W": W} if b is None else {"W": W, "b": b})
        return layer

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.b is not None}"

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (..., in_features) -> (..., out_features). Caches x (a reference, not a copy)."""
        # BEGIN SOLUTION cache x, then return linear_forward(x, W.data, b.data or None)
        self.x = x
        return linear_forward(x, self.W.data, None if self.b is None else self.b.data)
        # END SOLUTION

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy: (..., out_features) -> dx: (..., in_features); accumulates W.grad and b.grad."""
        if self.x is None:
            raise RuntimeError("Linear.backward called before forward")
        # BEGIN SOLUTION linear_backward with the cached x; accumulate dW (and db when there is a bias); return dx
        dx, dW, db = linear_backward(dy, self.x, self.W.data)
        self.W.accumulate_grad(dW)
        if self.b is not None:
            self.b.accumulate_grad(db)
        return dx
        # END SOLUTION


# -- containers and shape layers -------------------------------------------------------------

class Sequential(Layer):
    """Layers applied one after the other: ``Sequential(Linear(784, 256), ReLU(), Linear(256, 10))``.

    forward: ``x -> layers[0] -> layers[1] -> ... -> y``; backward: the chain rule in the
    reverse order, ``dy -> layers[-1].backward -> ... -> layers[0].backward -> dx``.
    Parameters are named ``layers.<index>.<name>`` (e.g. ``layers.0.W``).
    """

    def __init__(self, *layers: Layer):
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: item {i} is a {type(layer).__name__}, not a Layer")
        self.layers = list(layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Layer:
        return self.layers[i]

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def append(self, layer: Layer) -> "Sequential":
        self.layers.append(layer)
        return self

    def __repr__(self) -> str:
        inner = "".join(f"\n  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)" if inner else "Sequential()"

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: the first layer's input -> the last layer's output."""
        # BEGIN SOLUTION feed x through every layer in order
        for layer in self.layers:
            x = layer.forward(x)
        return x
        # END SOLUTION

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy: shaped like the last output -> dx: shaped like the first input."""
        # BEGIN SOLUTION feed dy backwards through every layer, last to first
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy
        # END SOLUTION


class Flatten(Layer):
    """Flatten every dimension from ``start_dim`` on, as ``torch.nn.Flatten``.

    x: (N, d1, d2, ...) -> (N, d1·d2·...) for ``start_dim=1`` (the default: keep the batch).
    A reshape — a view of x, no copy, when x is contiguous. backward reshapes dy back to
    x's shape.
    """

    def __init__(self, start_dim: int = 1):
        self.start_dim = int(start_dim)
        self.input_shape: tuple[int, ...] | None = None

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}"

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (d0, ..., d_{s-1}, d_s, ..., d_last) -> (d0, ..., d_{s-1}, d_s·...·d_last)."""
        # BEGIN SOLUTION remember x.shape; reshape to keep the dimensions before start_dim and merge the rest
        self.input_shape = x.shape
        start = self.start_dim % x.ndim
        return x.reshape(*x.shape[:start], math.prod(x.shape[start:]))
        # END SOLUTION

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy: the flattened shape -> dx: the shape of the last forward's x."""
        # BEGIN SOLUTION reshape dy back to the remembered input shape
        return dy.reshape(self.input_shape)
        # END SOLUTION
