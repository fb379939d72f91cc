"""Tuned kernels for the CIFAR-10 milestone networks: the same convolution and max pooling as
Topics 12 and 13, laid out for fewer, larger matrix products and fewer passes over memory.
Not an exercise: the topics teach ``dlfs.conv.im2col`` and ``dlfs.conv.pooling``, and the
tests check these layers against them (values in float64, and finite differences).

**Convolution.** Topic 12's ``im2col`` gives each sample its own (C_in·kh·kw, H_out·W_out)
column matrix and multiplies it by the weights: one matrix product per sample. When the
image is small (7×7 or 3×3 at the end of a CIFAR network) these products are thin
(49 or 9 columns) and BLAS runs them at a fraction of its speed — 44 GFLOP/s instead of 140
for 9 columns on one core of this machine. Here a chunk of B samples is laid out as one
(C_in·kh·kw, B·H_out·W_out) matrix::

    cols[(c, p, q), (n, i, j)] = xp[n, c, i + p, j + q]          (stride 1, any padding)
    out_chunk = W2 @ cols                                         (C_out, B·L), one product
    dW       += dout2 @ colsᵀ                                     dout2: (C_out, B·L)
    dx        = col2im(W2ᵀ @ dout2) when C_out > C_in, else the stride-1 convolution of
                dout with the flipped kernel (as in Topic 12): whichever copies less

and the (C_out, B, L) result is transposed into the (B, C_out, L) output as it is stored.
Chunks (about ``dlfs.parallel.CHUNK_BYTES`` of columns, at least one per core) run in parallel
threads.
Other strides and dilations fall back to Topic 12's ``conv2d_forward``.

**Max pooling** with kernel = stride and no padding (every CIFAR pooling here): the windows
do not overlap, so the backward writes each tap's gradient with a plain strided assignment
instead of Topic 13's scatter-add, and both directions run on chunks of the batch in
parallel threads. The argmax offsets are uint8 (first maximum on ties, as in Topic 13).

When a milestone runs on a learner's own Topic 12 or 13 code (``dlfs milestone 17 --learner``),
these layers step aside and run the learner's kernels instead.

Shapes: x (N, C, H, W); w (C_out, C_in, kh, kw); out (N, C_out, H_out, W_out).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from dlfs.conv.geometry import pad_hw
from dlfs.conv.im2col import Conv2d
from dlfs.conv.pooling import MaxPool2d
from dlfs.parallel import items_per_chunk, map_chunks, num_workers


def _is_reference(cls) -> bool:
    """Whether ``cls`` comes from the library itself rather than a learner's file."""
    return Path(sys.modules[cls.__module__].__file__).resolve().parent == Path(__file__).resolve().parent


# the tuned kernels replace the topics' kernels only where those are the reference ones
_TUNED_CONV = _is_reference(Conv2d)
_TUNED_POOL = _is_reference(MaxPool2d)


def _chunk_size(n: int, bytes_per_item: int) -> int:
    """Items per chunk: ``items_per_chunk`` (about CHUNK_BYTES each), and at least one chunk per worker."""
    return min(items_per_chunk(n, bytes_per_item), -(-max(n, 1) // num_workers()))


def cols_batched(x: np.ndarray, kh: int, kw: int, padding: tuple[int, int]) -> np.ndarray:
    """Stride-1 im2col of a whole chunk as one matrix.

    x: (B, C, H, W) -> (C·kh·kw, B·H_out·W_out) with row (c, p, q) and column (n, i, j)
    holding ``xp[n, c, i + p, j + q]`` (xp: x zero-padded by ``padding``)."""
    B, C = x.shape[:2]
    xp = pad_hw(x, padding)
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))          # (B, C, H_out, W_out, kh, kw)
    H_out, W_out = win.shape[2:4]
    cols = np.empty((C, kh, kw, B, H_out, W_out), dtype=x.dtype)
    cols[...] = win.transpose(1, 4, 5, 0, 2, 3)
    return cols.reshape(C * kh * kw, B * H_out * W_out)


def conv2d_forward_batched(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None,
                           padding=(0, 0)) -> np.ndarray:
    """Stride-1 convolution, one matrix product per chunk of samples.

    x: (N, C_in, H, W); w: (C_out, C_in, kh, kw); b: (C_out,) or None; padding: (p_h, p_w).
    Returns (N, C_out, H_out, W_out) in ``np.result_type(x, w)``, equal to Topic 12's
    ``conv2d_forward(x, w, b, 1, padding)`` up to rounding."""
    dtype = np.result_type(x, w)
    x = np.asarray(x, dtype=dtype)
    w = np.asarray(w, dtype=dtype)
    N, C_in, H, W = x.shape
    C_out, _, kh, kw = w.shape
    ph, pw = padding
    H_out, W_out = H + 2 * ph - kh + 1, W + 2 * pw - kw + 1
    L = H_out * W_out
    w2 = w.reshape(C_out, C_in * kh * kw)
    out = np.empty((N, C_out, L), dtype=dtype)

    def chunk(lo, hi):
        o = w2 @ cols_batched(x[lo:hi], kh, kw, (ph, pw))            # (C_out, B·L)
        out[lo:hi] = o.reshape(C_out, hi - lo, L).transpose(1, 0, 2)

    map_chunks(chunk, N, _chunk_size(N, C_in * kh * kw * L * dtype.itemsize))
    if b is not None:
        out += np.asarray(b, dtype=dtype)[:, None]
    return out.reshape(N, C_out, H_out, W_out)


def col2im_batched(dcols: np.ndarray, x_shape, kh: int, kw: int, padding: tuple[int, int]) -> np.ndarray:
    """The adjoint of :func:`cols_batched`: dcols (C·kh·kw, B·H_out·W_out) -> dx (B, C, H, W),
    every entry added back onto the input pixel it was read from (padding dropped)."""
    B, C, H, W = x_shape
    ph, pw = padding
    Ho, Wo = H + 2 * ph - kh + 1, W + 2 * pw - kw + 1
    d6 = dcols.reshape(C, kh, kw, B, Ho, Wo)
    dxp = np.zeros((C, B, H + 2 * ph, W + 2 * pw), dtype=dcols.dtype)
    for p in range(kh):
        for q in range(kw):
            dxp[:, :, p:p + Ho, q:q + Wo] += d6[:, p, q]
    return dxp[:, :, ph:ph + H, pw:pw + W].transpose(1, 0, 2, 3)


def conv2d_backward_batched(dout: np.ndarray, x: np.ndarray, w: np.ndarray, padding=(0, 0),
                            need_dx: bool = True) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of :func:`conv2d_forward_batched`: ``(dx, dw, db)`` shaped like x, w, (C_out,);
    dx is None when not ``need_dx`` (a first layer: half the work of the backward is dx).

    dw is one (C_out, B·L) @ (B·L, C_in·kh·kw) product per chunk. dx takes the cheaper of two
    equal routes: when C_out > C_in, ``col2im(W2ᵀ @ dout2)`` in the same chunk (its columns
    have C_in·kh·kw rows); otherwise the stride-1 convolution of dout with w flipped in space
    and transposed to (C_in, C_out, kh, kw), padding ``k - 1 - p`` (whose columns have
    C_out·kh·kw rows). ``p <= k - 1`` is required, as in Topic 12."""
    dtype = np.result_type(dout, x, w)
    dout = np.asarray(dout, dtype=dtype)
    x = np.asarray(x, dtype=dtype)
    w = np.asarray(w, dtype=dtype)
    N, C_in = x.shape[:2]
    C_out, _, kh, kw = w.shape
    ph, pw = padding
    H_out, W_out = dout.shape[2:]
    L = H_out * W_out
    d3 = dout.reshape(N, C_out, L)
    w2 = w.reshape(C_out, C_in * kh * kw)
    via_col2im = need_dx and C_out > C_in
    dx = np.empty(x.shape, dtype=dtype) if via_col2im else None

    def chunk(lo, hi):
        d2 = np.ascontiguousarray(d3[lo:hi].transpose(1, 0, 2)).reshape(C_out, (hi - lo) * L)
        cols = cols_batched(x[lo:hi], kh, kw, (ph, pw))
        dw_part = d2 @ cols.T
        if via_col2im:
            np.matmul(w2.T, d2, out=cols)                            # dcols, reusing the buffer
            dx[lo:hi] = col2im_batched(cols, x[lo:hi].shape, kh, kw, (ph, pw))
        return dw_part

    dw = np.zeros((C_out, C_in * kh * kw), dtype=dtype)
    for part in map_chunks(chunk, N, _chunk_size(N, C_in * kh * kw * L * dtype.itemsize)):
        dw += part
    db = d3.sum(axis=(0, 2))
    if need_dx and not via_col2im:
        w_flip = w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]
        dx = conv2d_forward_batched(dout, w_flip, None, (kh - 1 - ph, kw - 1 - pw))
    return dx, dw.reshape(w.shape), db


class FastConv2d(Conv2d):
    """Topic 12's ``Conv2d`` (same parameters, initialisation and state) with the batched
    kernels above for stride 1 and dilation 1; other geometries use Topic 12's kernels."""

    def _batched(self) -> bool:
        kh, kw = self.kernel_size
        ph, pw = self.padding
        return (_TUNED_CONV and self.stride == (1, 1) and self.dilation == (1, 1)
                and ph <= kh - 1 and pw <= kw - 1)

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self._batched():
            return super().forward(x)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"FastConv2d expects (N, {self.in_channels}, H, W), got {x.shape}")
        self.x = x
        return conv2d_forward_batched(x, self.W.data, None if self.b is None else self.b.data, self.padding)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if not self._batched():
            return super().backward(dy)
        if self.x is None:
            raise RuntimeError("FastConv2d.backward called before forward")
        dx, dW, db = conv2d_backward_batched(dy, self.x, self.W.data, self.padding)
        self.W.accumulate_grad(dW)
        if self.b is not None:
            self.b.accumulate_grad(db)
        return dx

    def backward_weights(self, dy: np.ndarray) -> None:
        """The parameter gradients of ``backward(dy)`` without dx, for a layer whose input
        needs no gradient (Topic 12's kernels, when they run instead, compute dx and drop it)."""
        if not self._batched():
            super().backward(dy)
            return
        if self.x is None:
            raise RuntimeError("FastConv2d.backward_weights called before forward")
        _, dW, db = conv2d_backward_batched(dy, self.x, self.W.data, self.padding, need_dx=False)
        self.W.accumulate_grad(dW)
        if self.b is not None:
            self.b.accumulate_grad(db)


def max_pool2d_forward_tiled(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k×k max pooling with stride k and no padding (rows and columns past the last whole
    window are dropped, as in Topic 13). x: (N, C, H, W) -> (out, arg), both
    (N, C, H // k, W // k); arg: uint8 offset p·k + q of each window's first maximum."""
    N, C, H, W = x.shape
    Ho, Wo = H // k, W // k
    if Ho < 1 or Wo < 1:
        raise ValueError(f"max pooling {k}x{k} needs an input of at least {k}x{k}, got {H}x{W}")
    out = np.empty((N, C, Ho, Wo), dtype=x.dtype)
    arg = np.zeros((N, C, Ho, Wo), dtype=np.uint8)

    def chunk(lo, hi):
        o, a = out[lo:hi], arg[lo:hi]
        larger = np.empty(o.shape, dtype=bool)
        xs = x[lo:hi]
        o[...] = xs[:, :, 0:k * Ho:k, 0:k * Wo:k]
        for t in range(1, k * k):
            p, q = divmod(t, k)
            tap = xs[:, :, p:k * Ho:k, q:k * Wo:k]
            np.greater(tap, o, out=larger)
            np.maximum(o, tap, out=o)
            np.copyto(a, t, where=larger)

    map_chunks(chunk, N, _chunk_size(N, C * H * W * x.dtype.itemsize))
    return out, arg


def max_pool2d_backward_tiled(dout: np.ndarray, arg: np.ndarray, x_shape, k: int) -> np.ndarray:
    """Gradient of :func:`max_pool2d_forward_tiled`: dout and arg (N, C, Ho, Wo) -> dx of
    ``x_shape``, each window's gradient on its first maximum, zero elsewhere."""
    N, C, H, W = x_shape
    Ho, Wo = dout.shape[2:]
    dx = np.empty(x_shape, dtype=dout.dtype)
    zero = np.zeros((), dtype=dout.dtype)

    def chunk(lo, hi):
        d, a = dout[lo:hi], arg[lo:hi]
        if H != k * Ho or W != k * Wo:
            dx[lo:hi, :, k * Ho:] = 0
            dx[lo:hi, :, :, k * Wo:] = 0
        for t in range(k * k):
            p, q = divmod(t, k)
            np.copyto(dx[lo:hi, :, p:k * Ho:k, q:k * Wo:k], np.where(a == t, d, zero))

    map_chunks(chunk, N, _chunk_size(N, C * H * W * dout.dtype.itemsize))
    return dx


class FastMaxPool2d(MaxPool2d):
    """Topic 13's ``MaxPool2d`` with the tiled kernels above when kernel = stride, the kernel
    is square and there is no padding; otherwise Topic 13's kernels."""

    def _tiled(self) -> bool:
        k = self.kernel_size
        return (_TUNED_POOL and k[0] == k[1] and self.stride == k and self.padding == (0, 0)
                and k[0] * k[1] <= 255)

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self._tiled():
            return super().forward(x)
        if x.ndim != 4:
            raise ValueError(f"FastMaxPool2d expects (N, C, H, W), got {x.shape}")
        out, self.arg = max_pool2d_forward_tiled(x, self.kernel_size[0])
        self.x_shape = x.shape
        return out

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if not self._tiled():
            return super().backward(dy)
        if self.arg is None:
            raise RuntimeError("FastMaxPool2d.backward called before forward")
        if dy.shape != self.arg.shape:
            raise ValueError(f"FastMaxPool2d.backward: dy must have the output's shape {self.arg.shape}, "
                             f"got {dy.shape}")
        return max_pool2d_backward_tiled(dy, self.arg, self.x_shape, self.kernel_size[0])
