"""Topic 01 — Tensor operations & broadcasting.

An ndarray is a flat buffer of bytes plus a little metadata: a ``shape``, a
``dtype`` (hence ``itemsize``) and ``strides``, the number of bytes to step in the
buffer to move one position along each axis. Element ``a[i_0, ..., i_{d-1}]``
lives at byte offset ``sum_k i_k * strides[k]``. Transposes, broadcasts and
sliding windows change only ``shape`` and ``strides``: they are views, not copies.

This module builds those views by hand with ``np.lib.stride_tricks.as_strided``:

- strides and contiguity:  ``contiguous_strides``, ``is_contiguous``, ``transpose_view``
- broadcasting:            ``broadcast_shapes``, ``broadcast_to``, ``unbroadcast`` (its adjoint)
- batched matmul:          ``batched_matmul_naive`` (loops), ``batched_matmul`` (vectorised)
- sliding windows:         ``sliding_window_view`` (the view behind convolution and pooling)
"""

from __future__ import annotations

import operator

import numpy as np
from numpy.lib.stride_tricks import as_strided


def _as_shape(shape) -> tuple[int, ...]:
    """Turn an int or an iterable of ints into a tuple of Python ints (no validation)."""
    if isinstance(shape, (int, np.integer)):
        return (operator.index(shape),)
    return tuple(operator.index(n) for n in shape)


# ---------------------------------------------------------------------------
# Shapes, strides and contiguity
# ---------------------------------------------------------------------------

def contiguous_strides(shape, itemsize: int) -> tuple[int, ...]:
    """Byte strides of a C-ordered (row-major) array of ``shape``.

    shape: (d,) sizes; itemsize: bytes per element. Returns a tuple of d ints with
    ``strides[k] = itemsize * prod(shape[k+1:])`` (the last axis steps by one element).
    Example: shape (2, 3, 4), itemsize 8 -> (96, 32, 8).
    """
    shape = _as_shape(shape)
    # TODO: walk the axes from the last to the first, multiplying as you go.
    # BEGIN SOLUTION compute the C-order byte strides of `shape`
    strides = []
    step = int(itemsize)
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))
    # END SOLUTION


def is_contiguous(a: np.ndarray) -> bool:
    """True when ``a`` is C-contiguous, decided from ``a.shape``, ``a.strides``, ``a.itemsize``.

    a: any-shape array. Same answer as ``a.flags.c_contiguous`` (do not use it): an array
    with a zero-size axis is contiguous, and the stride of a size-1 axis does not matter
    (you never step along it).
    """
    a = np.asarray(a)
    # BEGIN SOLUTION decide C-contiguity from shape, strides and itemsize
    if any(n == 0 for n in a.shape):
        return True
    expected = a.itemsize
    for n, stride in zip(reversed(a.shape), reversed(a.strides)):
        if n == 1:
            continue
        if stride != expected:
            return False
        expected *= n
    return True
    # END SOLUTION


def transpose_view(a: np.ndarray, axes=None) -> np.ndarray:
    """Permute the axes of ``a`` without copying (like ``np.transpose``), via ``as_strided``.

    a: (d_0, ..., d_{n-1}); axes: a permutation of 0..n-1 (negative axes allowed), default
    reversed. Returns the view of shape (d_axes[0], ..., d_axes[n-1]) sharing ``a``'s memory.
    Raises ValueError when ``axes`` is not a permutation of the axes of ``a``.
    """
    a = np.asarray(a)
    # TODO: output axis j is input axis axes[j]: it takes that axis's size *and* stride.
    # BEGIN SOLUTION permute shape and strides together and build the view with as_strided
    ndim = a.ndim
    axes = tuple(reversed(range(ndim))) if axes is None else _as_shape(axes)
    if any(not -ndim <= ax < ndim for ax in axes):
        raise ValueError(f"axes {axes} out of range for an array with {ndim} dimensions")
    axes = tuple(ax % ndim for ax in axes)
    if sorted(axes) != list(range(ndim)):
        raise ValueError(f"axes {axes} is not a permutation of the {ndim} axes")
    shape = tuple(a.shape[ax] for ax in axes)
    strides = tuple(a.strides[ax] for ax in axes)
    return as_strided(a, shape=shape, strides=strides)
    # END SOLUTION


# ---------------------------------------------------------------------------
# Broadcasting
# ---------------------------------------------------------------------------

def broadcast_shapes(*shapes) -> tuple[int, ...]:
    """The shape that ``shapes`` broadcast to, like ``np.broadcast_shapes``.

    shapes: any number of shapes (tuples of ints, or single ints). Align them on the
    right; missing leading axes count as 1; on each axis the sizes must all be equal
    or 1, and the result takes the size that is not 1 (or 1 if all are 1).
    ``broadcast_shapes()`` is ``()``. Raises ValueError, naming the shapes and the
    axis, when they do not broadcast, and for negative sizes.
    Example: (8, 1, 6, 1), (7, 1, 5) -> (8, 7, 6, 5).
    """
    shapes = [_as_shape(s) for s in shapes]
    # TODO: walk the shapes from the right; sizes must match or be 1.
    # BEGIN SOLUTION compute the broadcast shape of the given shapes
    for s in shapes:
        if any(n < 0 for n in s):
            raise ValueError(f"negative dimensions are not allowed: shape {s}")
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for axis in range(1, ndim + 1):            # axis counted from the right
        size = 1
        for s in shapes:
            if len(s) < axis or s[-axis] == 1:
                continue
            if size == 1:
                size = s[-axis]
            elif s[-axis] != size:
                raise ValueError(
                    f"shapes {', '.join(map(str, shapes))} do not broadcast: "
                    f"axis {-axis} has sizes {size} and {s[-axis]} (they must be equal or 1)"
                )
        out.append(size)
    return tuple(reversed(out))
    # END SOLUTION


def broadcast_to(a: np.ndarray, shape) -> np.ndarray:
    """A read-only view of ``a`` broadcast to ``shape``, like ``np.broadcast_to``.

    a: (*s) with ``broadcast_shapes(s, shape) == shape``; returns (*shape) sharing ``a``'s
    memory, built with ``as_strided``: new leading axes and stretched size-1 axes get
    stride 0 (every index reads the same element); other axes keep ``a``'s strides.
    Raises ValueError when ``a`` cannot be broadcast to exactly ``shape``.
    """
    a = np.asarray(a)
    shape = _as_shape(shape)
    # BEGIN SOLUTION check that a.shape broadcasts to `shape`, then build the zero-stride view
    if any(n < 0 for n in shape):
        raise ValueError(f"cannot broadcast to shape {shape}: negative dimensions are not allowed")
    extra = len(shape) - a.ndim
    if extra < 0:
        raise ValueError(f"cannot broadcast an array of shape {a.shape} to the smaller rank shape {shape}")
    strides = [0] * extra
    for n, target, stride in zip(a.shape, shape[extra:], a.strides):
        if n == target:
            strides.append(stride)
        elif n == 1:
            strides.append(0)
        else:
            raise ValueError(
                f"cannot broadcast an array of shape {a.shape} to shape {shape}: "
                f"size {n} would have to become {target} (only size 1 can stretch)"
            )
    return as_strided(a, shape=shape, strides=tuple(strides), writeable=False)
    # END SOLUTION


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` back to ``shape``: the adjoint of broadcasting ``shape`` to ``grad.shape``.

    grad: (*B, *shape-broadcast) gradient w.r.t. a broadcast result;
    shape: the shape of the input that was broadcast. Returns an array of ``shape``.
    """
    # TODO: sum over the leading axes grad has in excess, then (keepdims) over the axes
    #       where `shape` has size 1; raise ValueError if the result is not `shape`.
    # BEGIN SOLUTION sum the gradient over the broadcast axes back to `shape`
    shape = tuple(shape)
    extra = grad.ndim - len(shape)
    if extra < 0:
        raise ValueError(f"cannot unbroadcast gradient of shape {grad.shape} to larger shape {shape}")
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    if grad.shape != shape:
        raise ValueError(f"gradient of shape {grad.shape} does not broadcast from shape {shape}")
    return grad
    # END SOLUTION


# ---------------------------------------------------------------------------
# Batched matrix multiplication
# ---------------------------------------------------------------------------

def _matmul_shapes(a: np.ndarray, b: np.ndarray):
    """Check a: (..., n, k) and b: (..., k, m); return (batch shape, n, k, m).

    Raises ValueError for operands with fewer than 2 dimensions, mismatched inner
    sizes, or batch shapes that do not broadcast (via ``broadcast_shapes``).
    """
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(f"batched matmul needs operands with at least 2 dimensions, "
                         f"got shapes {a.shape} and {b.shape}")
    n, k = a.shape[-2:]
    k2, m = b.shape[-2:]
    if k != k2:
        raise ValueError(f"batched matmul: inner sizes differ: {a.shape} @ {b.shape} ({k} != {k2})")
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return batch, n, k, m


def batched_matmul_naive(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` with explicit Python loops: the readable definition.

    a: (*Ba, n, k), b: (*Bb, k, m) with broadcastable batch shapes Ba, Bb;
    returns (*broadcast(Ba, Bb), n, m) with
    ``out[..., i, j] = sum_p a[..., i, p] * b[..., p, j]``, dtype ``np.result_type(a, b)``.
    Raises ValueError like ``np.matmul`` (inner sizes differ, batch shapes incompatible).
    """
    a = np.asarray(a)
    b = np.asarray(b)
    batch, n, k, m = _matmul_shapes(a, b)
    out = np.zeros(batch + (n, m), dtype=np.result_type(a, b))
    # TODO: broadcast both operands to the common batch shape, then loop over
    #       every batch index (np.ndindex), every row i and every column j.
    # BEGIN SOLUTION loop over batch indices, rows and columns, summing a[..., i, p] * b[..., p, j]
    A = broadcast_to(a, batch + (n, k))
    B = broadcast_to(b, batch + (k, m))
    for idx in np.ndindex(*batch):
        for i in range(n):
            for j in range(m):
                total = out.dtype.type(0)
                for p in range(k):
                    total += A[idx + (i, p)] * B[idx + (p, j)]
                out[idx + (i, j)] = total
    return out
    # END SOLUTION


def batched_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` vectorised over the batch: no Python loops, no ``np.matmul`` / ``@``.

    a: (*Ba, n, k), b: (*Bb, k, m) with broadcastable batch shapes; returns
    (*broadcast(Ba, Bb), n, m), equal to ``batched_matmul_naive(a, b)`` and ``np.matmul``.
    Raises ValueError like ``batched_matmul_naive``.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    batch, n, k, m = _matmul_shapes(a, b)
    # TODO: broadcast to the common batch shape, then contract over k in one call
    #       (np.einsum, or an elementwise product with a new axis and a sum).
    # BEGIN SOLUTION broadcast the batch axes and contract over k in one vectorised call
    A = broadcast_to(a, batch + (n, k))
    B = broadcast_to(b, batch + (k, m))
    return np.einsum("...nk,...km->...nm", A, B)
    # END SOLUTION


# ---------------------------------------------------------------------------
# Sliding windows
# ---------------------------------------------------------------------------

def sliding_window_view(x: np.ndarray, window_shape, step=1) -> np.ndarray:
    """Every window of ``window_shape`` over the last axes of ``x``, as a read-only view.

    x: (*L, n_1, ..., n_d); window_shape: (w_1, ..., w_d) (an int means d = 1);
    step: an int or d ints >= 1, the distance between window starts on each axis.
    Returns (*L, p_1, ..., p_d, w_1, ..., w_d) with ``p_i = (n_i - w_i) // s_i + 1`` and
    ``out[..., j_1, ..., j_d, :, ..., :] = x[..., j_1*s_1 : j_1*s_1 + w_1, ...]``; built with
    ``as_strided`` (no copy). With step 1 it equals
    ``np.lib.stride_tricks.sliding_window_view(x, window_shape, axis=<the last d axes>)``.
    Raises ValueError when d > x.ndim, a window is negative or larger than its axis, or a
    step is < 1 or has the wrong length.
    """
    x = np.asarray(x)
    window_shape = _as_shape(window_shape)
    if isinstance(step, (int, np.integer)):
        step = (operator.index(step),) * len(window_shape)
    step = _as_shape(step)
    # TODO: the window axes reuse the strides of the last d axes; the position axes
    #       use those strides multiplied by the step.
    # BEGIN SOLUTION validate, then build the (positions, window) view with as_strided
    d = len(window_shape)
    if len(step) != d:
        raise ValueError(f"step {step} must have one entry per window axis ({d})")
    if d > x.ndim:
        raise ValueError(f"window_shape {window_shape} has more axes than x {x.shape}")
    if any(w < 0 for w in window_shape):
        raise ValueError(f"window_shape {window_shape} cannot contain negative values")
    if any(s < 1 for s in step):
        raise ValueError(f"step {step} must be >= 1 on every axis")
    split = x.ndim - d
    lead, tail = x.shape[:split], x.shape[split:]
    if any(w > n for w, n in zip(window_shape, tail)):
        raise ValueError(f"window shape {window_shape} cannot be larger than the last axes of x {x.shape}")
    positions = tuple((n - w) // s + 1 for n, w, s in zip(tail, window_shape, step))
    tail_strides = x.strides[split:]
    strides = x.strides[:split] + tuple(st * s for st, s in zip(tail_strides, step)) + tail_strides
    return as_strided(x, shape=lead + positions + window_shape, strides=strides, writeable=False)
    # END SOLUTION
