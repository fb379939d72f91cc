"""Topic 02 (part 2) — a vectorised autograd engine: ``Tensor`` over NumPy arrays.

The same reverse-mode engine as ``Value``, one array per node instead of one float. Each
operation computes its output with NumPy and records a ``backward(g)`` function: given
``g = dL/d(output)`` (the output's shape) it returns ``dL/d(input)`` for each input (each
input's shape). ``Tensor.backward`` walks the graph in reverse topological order, sums the
gradients arriving at each node and stores the result in the ``.grad`` of the leaves.

    >>> W = Tensor(np.random.randn(3, 2), requires_grad=True)     # W: (3, 2)
    >>> x = Tensor(np.random.randn(4, 3))                          # x: (4, 3)
    >>> loss = (x @ W).tanh().sum()
    >>> loss.backward()
    >>> W.grad.shape
    (3, 2)

Conventions (they match PyTorch):

- ``Tensor(data, requires_grad=False)``: a floating ndarray keeps its dtype (float64 stays
  float64, float32 stays float32) and is used as is, without a copy; Python numbers, lists
  and integer or boolean arrays become float32.
- ``.data`` is the ndarray, ``.grad`` is ``None`` until a backward pass reaches the tensor,
  then an ndarray of ``.data``'s shape and dtype. Only **leaves** (tensors you created with
  ``requires_grad=True``) keep ``.grad``; intermediate results do not.
- Gradients accumulate: a second ``backward`` adds to ``.grad``. Clear them with
  ``zero_grad()`` (or set ``.grad = None``) between steps.
- Binary operations broadcast like NumPy; their backward sums the gradient back to each
  input's shape with ``unbroadcast``.
- Inside ``with no_grad():`` operations record nothing: results have ``requires_grad=False``.
- A ``Tensor`` is a valid optimiser parameter: an optimiser may update ``.data`` in place
  (``p.data -= lr * p.grad``) and reset ``.grad`` (to ``None`` or zeros in place).

The methods ``logsumexp``, ``softmax`` and ``log_softmax`` call the stable array functions of
``dlfs.numerics``, which this topic also writes (``workspace/02-autograd/numerics.py``).
"""

from __future__ import annotations

import functools

import numpy as np

from dlfs.numerics import log_softmax, logsumexp, softmax
from dlfs.tensor.broadcasting import unbroadcast

# ---------------------------------------------------------------------------------------------
# Grad mode
# ---------------------------------------------------------------------------------------------

_grad_enabled = True


def is_grad_enabled() -> bool:
    """False inside ``with no_grad():``."""
    return _grad_enabled


class no_grad:
    """Context manager (and decorator) that turns graph recording off.

        with no_grad():
            y = model(x)        # y.requires_grad is False; nothing is kept for backward

    Use it for evaluation and for parameter updates. Blocks nest, and the previous mode is
    restored on exit, even when the block raises.
    """

    def __enter__(self):
        global _grad_enabled
        # BEGIN SOLUTION remember the current grad mode on self, then switch recording off
        self._previous = _grad_enabled
        _grad_enabled = False
        # END SOLUTION
        return self

    def __exit__(self, *exc_info) -> bool:
        global _grad_enabled
        # BEGIN SOLUTION restore the grad mode saved by __enter__
        _grad_enabled = self._previous
        # END SOLUTION
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)
        return wrapper


# ---------------------------------------------------------------------------------------------
# Helpers (given)
# ---------------------------------------------------------------------------------------------


def _as_float_array(data) -> np.ndarray:
    """A floating ndarray keeps its dtype (no copy); anything else becomes float32."""
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, (np.ndarray, np.generic)) and np.issubdtype(data.dtype, np.floating):
        return np.asarray(data)
    return np.asarray(data, dtype=np.float32)


def _normalize_axes(axis, ndim: int) -> tuple[int, ...]:
    """axis (None, an int or a tuple, negatives allowed) -> sorted tuple of axes in [0, ndim)."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for an array with {ndim} dimension(s)")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis}")
    return tuple(sorted(out))


def _unreduce(g: np.ndarray, shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """The adjoint of a reduction: spread ``g`` (the gradient of a sum/mean/max over ``axes``)
    back over the input's ``shape``.

    g: the reduced shape (size-1 ``axes`` kept if ``keepdims``, removed otherwise);
    returns an array of ``shape`` (it may be a read-only broadcast view: never write into it).
    """
    # TODO: put the reduced axes back as size-1 axes (unless keepdims), then broadcast.
    # BEGIN SOLUTION re-insert the reduced axes with size 1 (unless keepdims) and broadcast g to shape
    if not keepdims:
        g = np.expand_dims(g, axes)
    return np.broadcast_to(g, shape)
    # END SOLUTION


def _index_arrays(index):
    """Tensors inside an index become their (integer-cast) arrays."""
    if isinstance(index, Tensor):
        return index.data.astype(np.intp)
    if isinstance(index, tuple):
        return tuple(_index_arrays(i) for i in index)
    return index


# ---------------------------------------------------------------------------------------------
# Tensor
# ---------------------------------------------------------------------------------------------


class Tensor:
    """An ndarray with a gradient, recording the operations applied to it.

    data: np.ndarray (any shape); grad: None or an ndarray like ``data``;
    requires_grad: whether gradients flow to this tensor;
    _parents: the Tensors this one was computed from (empty for a leaf);
    _backward: ``g -> tuple`` of one gradient (or None) per parent, None for a leaf;
    _op: a short label of the operation that made this tensor.
    """

    __array_ufunc__ = None       # make `ndarray * Tensor` call Tensor.__rmul__

    def __init__(self, data, requires_grad: bool = False):
        self.data = _as_float_array(data)
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self._parents: tuple[Tensor, ...] = ()
        self._backward = None
        self._op = ""

    # ----------------------------------------------------------------- plain accessors

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def is_leaf(self) -> bool:
        return not self._parents

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        flag = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({np.array2string(self.data, precision=4, threshold=20)}{flag})"

    def item(self) -> float:
        return self.data.item()

    def numpy(self) -> np.ndarray:
        return self.data

    def detach(self) -> Tensor:
        """A new leaf sharing ``data``, cut from the graph."""
        return Tensor(self.data)

    def _lift(self, other) -> Tensor:
        """Wrap a non-Tensor operand as a constant; Python numbers take this tensor's dtype."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, (np.ndarray, np.generic)) and np.issubdtype(other.dtype, np.floating):
            return Tensor(other)
        return Tensor(np.asarray(other, dtype=self.data.dtype))

    @staticmethod
    def _result(data, parents: tuple[Tensor, ...], backward, op: str) -> Tensor:
        """Wrap an operation's output ``data`` as a Tensor.

        Record the graph (``_parents``, ``_backward``, ``_op``, ``requires_grad=True``) only
        when grad mode is on (see ``no_grad``) and at least one parent requires grad;
        otherwise return a plain constant Tensor.
        """
        # BEGIN SOLUTION wrap data; record parents/backward/op only if grad mode is on and a parent requires grad
        out = Tensor(data)
        if _grad_enabled and any(p.requires_grad for p in parents):
            out.requires_grad = True
            out._parents = tuple(parents)
            out._backward = backward
            out._op = op
        return out
        # END SOLUTION

    # ------------------------------------------------------------ broadcasting arithmetic
    # Each backward(g) gets g with the output's shape and returns one gradient per input,
    # each with that input's shape: unbroadcast(...) sums over the axes broadcasting added.

    def __add__(self, other) -> Tensor:
        other = self._lift(other)
        a, b = self.data, other.data
        # BEGIN SOLUTION forward of a + b
        out = a + b
        # END SOLUTION

        def backward(g):
            # BEGIN SOLUTION backward of a + b: g to both inputs, unbroadcast to their shapes
            return unbroadcast(g, a.shape), unbroadcast(g, b.shape)
            # END SOLUTION

        return Tensor._result(out, (self, other), backward, "add")

    def __sub__(self, other) -> Tensor:
        other = self._lift(other)
        a, b = self.data, other.data
        # BEGIN SOLUTION forward of a - b
        out = a - b
        # END SOLUTION

        def backward(g):
            # BEGIN SOLUTION backward of a - b
            return unbroadcast(g, a.shape), unbroadcast(-g, b.shape)
            # END SOLUTION

        return Tensor._result(out, (self, other), backward, "sub")

    def __mul__(self, other) -> Tensor:
        other = self._lift(other)
        a, b = self.data, other.data
        # BEGIN SOLUTION forward of a * b
        out = a * b
        # END SOLUTION

        def backward(g):
            # BEGIN SOLUTION backward of a * b: g * b for a, g * a for b, each unbroadcast
            return unbroadcast(g * b, a.shape), unbroadcast(g * a, b.shape)
            # END SOLUTION

        return Tensor._result(out, (self, other), backward, "mul")

    def __truediv__(self, other) -> Tensor:
        other = self._lift(other)
        a, b = self.data, other.data
        # BEGIN SOLUTION forward of a / b
        out = a / b
        # END SOLUTION

        def backward(g):
            # d(a / b)/da = 1 / b, d(a / b)/db = -a / b^2.
            # BEGIN SOLUTION backward of a / b
            return unbroadcast(g / b, a.shape), unbroadcast(-g * a / (b * b), b.shape)
            # END SOLUTION

        return Tensor._result(out, (self, other), backward, "div")

    def __neg__(self) -> Tensor:
        a = self.data
        # BEGIN SOLUTION forward of -a
        out = -a
        # END SOLUTION

        def backward(g):
            # BEGIN SOLUTION backward of -a
            return (-g,)
            # END SOLUTION

        return Tensor._result(out, (self,), backward, "neg")

    def __pow__(self, exponent) -> Tensor:
        """self ** exponent; the exponent is a number, an array or a Tensor (broadcasting).
        The exponent's gradient a^b * log(a) is computed only if it requires grad."""
        other = self._lift(exponent)
        a, b = self.data, other.data
        # BEGIN SOLUTION forward of a ** b
        out = a ** b
        # END SOLUTION

        def backward(g):
            # d(a^b)/da = b * a^(b-1); d(a^b)/db = a^b * log(a) (only when b requires grad).
            # BEGIN SOLUTION backward of a ** b
            grad_a = unbroadcast(g * b * a ** (b - 1), a.shape)
            grad_b = unbroadcast(g * out * np.log(a), b.shape) if other.requires_grad else None
            return grad_a, grad_b
            # END SOLUTION

        return Tensor._result(out, (self, other), backward, "pow")

    # reflected operators (given): 2 + t, 2 - t, 2 * t, 2 / t, 2 ** t, A @ t
    def __radd__(self, other) -> Tensor:
        return self._lift(other) + self

    def __rsub__(self, other) -> Tensor:
        return self._lift(other) - self

    def __rmul__(self, other) -> Tensor:
        return self._lift(other) * self

    def __rtruediv__(self, other) -> Tensor:
        return self._lift(other) / self

    def __rpow__(self, other) -> Tensor:
        return self._lift(other) ** self

    def __rmatmul__(self, other) -> Tensor:
        return self._lift(other) @ self

    # ----------------------------------------------------------------------------- matmul

    def __matmul__(self, other) -> Tensor:
        """a @ b with NumPy's rules: a: (..., n, k), b: (..., k, m) -> (..., n, m), the batch
        axes ``...`` broadcast; a 1-D a is a row (k,), a 1-D b is a column (k,), and that
        axis is dropped from the result."""
        other = self._lift(other)
        a, b = self.data, other.data
        # BEGIN SOLUTION forward of a @ b
        out = a @ b
        # END SOLUTION

        def backward(g):
            # TODO: view 1-D inputs as (1, k) / (k, 1) and put the dropped axes back into g;
            #       then grad_a = g @ b^T, grad_b = a^T @ g over the last two axes, unbroadcast
            #       over the batch axes, and reshape to the original shapes.
            # BEGIN SOLUTION backward of a @ b (1-D inputs, batched and broadcast batch axes)
            a2 = a[None, :] if a.ndim == 1 else a
            b2 = b[:, None] if b.ndim == 1 else b
            g2 = g
            if b.ndim == 1:
                g2 = g2[..., None]
            if a.ndim == 1:
                g2 = np.expand_dims(g2, -2)
            grad_a = unbroadcast(g2 @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
            grad_b = unbroadcast(np.swapaxes(a2, -1, -2) @ g2, b2.shape).reshape(b.shape)
            return grad_a, grad_b
            # END SOLUTION

        return Tensor._result(out, (self, other), backward, "matmul")

    # ------------------------------------------------------------------------- reductions

    def sum(self, axis=None, keepdims: bool = False) -> Tensor:
        """Sum over ``axis`` (None: all; int or tuple). (d0, ..., dn) -> the reduced shape."""
        a = self.data
        axes = _normalize_axes(axis, a.ndim)
        # BEGIN SOLUTION forward of sum over axes
        out = a.sum(axis=axes, keepdims=keepdims)
        # END SOLUTION

        def backward(g):
            # BEGIN SOLUTION backward of sum: every summed element receives g (use _unreduce)
            return (_unreduce(g, a.shape, axes, keepdims),)
            # END SOLUTION

        return Tensor._result(out, (self,), backward, "sum")

    def mean(self, axis=None, keepdims: bool = False) -> Tensor:
        """Mean over ``axis`` (None: all; int or tuple)."""
        a = self.data
        axes = _normalize_axes(axis, a.ndim)
        count = int(np.prod([a.shape[i] for i in axes]))
        # BEGIN SOLUTION forward of mean over axes
        out = a.mean(axis=axes, keepdims=keepdims)
        # END SOLUTION

        def backward(g):
            # BEGIN SOLUTION backward of mean: like sum, divided by the number of averaged elements
            return (_unreduce(g, a.shape, axes, keepdims) / count,)
            # END SOLUTION

        return Tensor._result(out, (self,), backward, "mean")

    def max(self, axis=None, keepdims: bool = False) -> Tensor:
        """Maximum over ``axis`` (None: all; int or tuple), like ``torch.amax``.

        The gradient goes to the positions holding the maximum; when several positions tie,
        it is split evenly among them (torch.amax does the same).
        """
        a = self.data
        axes = _normalize_axes(axis, a.ndim)
        # BEGIN SOLUTION forward of max over axes
        out = a.max(axis=axes, keepdims=keepdims)
        # END SOLUTION

        def backward(g):
            # BEGIN SOLUTION backward of max: g to the argmax positions, split evenly among ties
            mask = a == a.max(axis=axes, keepdims=True)
            share = mask / mask.sum(axis=axes, keepdims=True)
            return (_unreduce(g, a.shape, axes, keepdims) * share.astype(a.dtype),)
            # END SOLUTION

        return Tensor._result(out, (self,), backward, "max")

    # ---------------------------------------------------------------------- shape changes

    def reshape(self, *shape) -> Tensor:
        """reshape(2, 3) or reshape((2, 3)); -1 infers one size."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        a = self.data
        # BEGIN SOLUTION forward of reshape
        out = a.reshape(shape)
        # END SOLUTION

        def backward(g):
            # BEGIN SOLUTION backward of reshape
            return (g.reshape(a.shape),)
            # END SOLUTION

        return Tensor._result(out, (self,), backward, "reshape")

    def transpose(self, *axes) -> Tensor:
        """Permute the axes: transpose() reverses them, transpose(0, 2, 1) or
        transpose((0, 2, 1)) applies that permutation (like ``np.transpose``)."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        a = self.data
        perm = tuple(range(a.ndim))[::-1] if not axes else tuple(int(i) % a.ndim for i in axes)
        # BEGIN SOLUTION forward of transpose by perm
        out = np.transpose(a, perm)
        # END SOLUTION

        def backward(g):
            # BEGIN SOLUTION backward of transpose: apply the inverse permutation
            return (np.transpose(g, np.argsort(perm)),)
            # END SOLUTION

        return Tensor._result(out, (self,), backward, "transpose")

    @property
    def T(self) -> Tensor:
        return self.transpose()

    def __getitem__(self, index) -> Tensor:
        """NumPy indexing: ints, slices, None, Ellipsis, integer arrays and boolean masks.
        With integer arrays an element may be picked several times; its gradient is the sum
        of the gradients of every copy (np.add.at does this; ``grad[index] += g`` does not)."""
        index = _index_arrays(index)
        a = self.data
        # BEGIN SOLUTION forward of indexing
        out = a[index]
        # END SOLUTION

        def backward(g):
            # BEGIN SOLUTION backward of indexing: scatter-add g into zeros of a's shape with np.add.at
            grad = np.zeros_like(a)
            np.add.at(grad, index, g)
            return (grad,)
            # END SOLUTION

        return Tensor._result(out, (self,), backward, "getitem")

    # ------------------------------------------------------------------ elementwise functions

    def exp(self) -> Tensor:
        a = self.data
        # BEGIN SOLUTION forward of exp
        out = np.exp(a)
        # END SOLUTION

        def backward(g):
            # BEGIN SOLUTION backward of exp
            return (g * out,)
            # END SOLUTION

        return Tensor._result(out, (self,), backward, "exp")

    def log(self) -> Tensor:
        a = self.data
        # BEGIN SOLUTION forward of log
        out = np.log(a)
        # END SOLUTION

        def backward(g):
            # BEGIN SOLUTION backward of log
            return (g / a,)
            # END SOLUTION

        return Tensor._result(out, (self,), backward, "log")

    def tanh(self) -> Tensor:
        a = self.data
        # BEGIN SOLUTION forward of tanh
        out = np.tanh(a)
        # END SOLUTION

        def backward(g):
            # BEGIN SOLUTION backward of tanh
            return (g * (1 - out * out),)
            # END SOLUTION

        return Tensor._result(out, (self,), backward, "tanh")

    def relu(self) -> Tensor:
        """max(a, 0); the gradient at exactly 0 is 0 (as in PyTorch)."""
        a = self.data
        # BEGIN SOLUTION forward of relu
        out = np.maximum(a, 0)
        # END SOLUTION

        def backward(g):
            # BEGIN SOLUTION backward of relu
            return (g * (a > 0),)
            # END SOLUTION

        return Tensor._result(out, (self,), backward, "relu")

    def sigmoid(self) -> Tensor:
        """1 / (1 + exp(-a)) without overflow: with e = exp(-|a|), 1 / (1 + e) where a >= 0
        and e / (1 + e) where a < 0."""
        a = self.data
        # BEGIN SOLUTION forward of sigmoid, stable for large |a|
        e = np.exp(-np.abs(a))
        out = np.where(a >= 0, 1 / (1 + e), e / (1 + e))
        # END SOLUTION

        def backward(g):
            # BEGIN SOLUTION backward of sigmoid
            return (g * out * (1 - out),)
            # END SOLUTION

        return Tensor._result(out, (self,), backward, "sigmoid")

    # ------------------------------------------------------------ stable softmax family

    def logsumexp(self, axis=-1, keepdims: bool = False) -> Tensor:
        """log(sum(exp(self), axis)) via the stable ``logsumexp`` of ``dlfs.numerics``."""
        a = self.data
        axes = _normalize_axes(axis, a.ndim)
        # BEGIN SOLUTION forward of logsumexp (call logsumexp from dlfs.numerics)
        out = logsumexp(a, axis=axes, keepdims=keepdims)
        # END SOLUTION

        def backward(g):
            # d logsumexp(a)/da = softmax(a) along the reduced axes.
            # BEGIN SOLUTION backward of logsumexp: g spread back, times softmax
            out_kept = out if keepdims else np.expand_dims(out, axes)
            return (_unreduce(g, a.shape, axes, keepdims) * np.exp(a - out_kept),)
            # END SOLUTION

        return Tensor._result(out, (self,), backward, "logsumexp")

    def softmax(self, axis: int = -1) -> Tensor:
        """Softmax along ``axis`` via the stable ``softmax`` of ``dlfs.numerics``."""
        a = self.data
        # BEGIN SOLUTION forward of softmax (call softmax from dlfs.numerics)
        out = softmax(a, axis=axis)
        # END SOLUTION

        def backward(g):
            # With s = softmax(a): grad = s * (g - sum(g * s, axis)).
            # BEGIN SOLUTION backward of softmax
            return (out * (g - np.sum(g * out, axis=axis, keepdims=True)),)
            # END SOLUTION

        return Tensor._result(out, (self,), backward, "softmax")

    def log_softmax(self, axis: int = -1) -> Tensor:
        """log(softmax(self)) along ``axis`` via the stable ``log_softmax`` of ``dlfs.numerics``."""
        a = self.data
        # BEGIN SOLUTION forward of log_softmax (call log_softmax from dlfs.numerics)
        out = log_softmax(a, axis=axis)
        # END SOLUTION

        def backward(g):
            # With y = log_softmax(a): grad = g - exp(y) * sum(g, axis).
            # BEGIN SOLUTION backward of log_softmax
            return (g - np.exp(out) * np.sum(g, axis=axis, keepdims=True),)
            # END SOLUTION

        return Tensor._result(out, (self,), backward, "log_softmax")

    # ------------------------------------------------------------------------- the engine

    def _topological_order(self) -> list[Tensor]:
        """Every tensor that requires grad and that this one depends on, itself included,
        each once, children (parents in the data flow) before the tensors computed from them.
        Follow only ``_parents`` that require grad; use a stack, not recursion."""
        # BEGIN SOLUTION topological sort over _parents that require grad (use a stack, not recursion)
        order: list[Tensor] = []
        visited: set[int] = set()
        stack: list[tuple[Tensor, bool]] = [(self, False)]
        while stack:
            node, parents_done = stack.pop()
            if parents_done:
                order.append(node)
                continue
            if id(node) in visited:
                continue
            visited.add(id(node))
            stack.append((node, True))
            for parent in node._parents:
                if parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
        return order
        # END SOLUTION

    def backward(self, grad=None) -> None:
        """Reverse-mode pass from this tensor.

        grad: dL/d(self), same shape as self; may be omitted only when self has one element
        (then it is 1). Afterwards every leaf with ``requires_grad`` that this tensor depends
        on has ``.grad`` increased by dL/d(leaf) (created if it was None). The graph is kept,
        so calling ``backward`` again adds the same gradients again.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a Tensor that does not require grad: no input of the computation "
                "had requires_grad=True, or it was computed inside no_grad()")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a one-element Tensor, got shape {self.shape}; "
                    "call backward(grad) with grad of the same shape (or reduce to a scalar first)")
            grad = np.ones_like(self.data)
        else:
            grad = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.data.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"backward(grad): grad has shape {grad.shape}, the tensor has shape {self.shape}")
        # TODO: grads = {id(self): grad}; visit the topological order from the output back;
        #       a leaf adds its total gradient to .grad; any other node passes it to
        #       _backward(g) and adds each returned gradient to its parent's entry in grads.
        # BEGIN SOLUTION propagate: sum the gradients reaching each node, call _backward in reverse topological order, accumulate into the leaves' .grad
        grads: dict[int, np.ndarray] = {id(self): grad}
        for node in reversed(self._topological_order()):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node.is_leaf:
                g = np.array(g, dtype=node.data.dtype)           # an owned copy
                node.grad = g if node.grad is None else node.grad + g
                continue
            for parent, pg in zip(node._parents, node._backward(g)):
                if pg is None or not parent.requires_grad:
                    continue
                if np.shape(pg) != parent.shape:
                    raise ValueError(f"backward of '{node._op}' returned a gradient of shape "
                                     f"{np.shape(pg)} for an input of shape {parent.shape}")
                key = id(parent)
                grads[key] = pg if key not in grads else grads[key] + pg
        # END SOLUTION

    def zero_grad(self) -> None:
        """Set ``.grad`` to None on this tensor and on every tensor it depends on (for a
        leaf parameter: just itself)."""
        # BEGIN SOLUTION set .grad to None on this tensor and every tensor in its graph
        for node in self._topological_order():
            node.grad = None
        # END SOLUTION
