"""Topic 13 — pooling: max, average and global average pooling, with strides and padding.

A pooling layer slides a ``kh × kw`` window over every feature map, like a convolution, but it
has no weights: it takes the **maximum** or the **mean** of each window, channel by channel::

    out[n, c, i, j] = max / mean  of  xp[n, c, i·s_h : i·s_h + kh, j·s_w : j·s_w + kw]

with ``xp`` the input padded by ``padding`` on each side (``-inf`` for max pooling, so that the
padding never wins; zeros for average pooling, which divides by ``kh·kw`` whatever the window
holds — PyTorch's default ``count_include_pad=True``). The stride defaults to the kernel size
(non-overlapping windows). The output size is the convolution's::

    H_out = (H + 2·p_h − kh) // s_h + 1            (and the same for W)

Backward, every output sends its gradient back to the pixels its window read: max pooling to
the **first** maximum of the window (row-major order, as PyTorch does on ties), average pooling
``dout / (kh·kw)`` to every pixel of the window. When the stride is smaller than the kernel the
windows overlap and a pixel receives gradient from several windows: the contributions must
**add** up (``+=``), never overwrite each other.

- ``pool_output_size``: the output-size arithmetic, with clear errors
- ``max_pool2d_forward_naive`` / ``max_pool2d_backward_naive``: loops over output positions
- ``max_pool2d_forward`` / ``max_pool2d_backward``: strided windows and a scatter-add over the
  ``kh·kw`` kernel offsets (no loop over pixels)
- ``avg_pool2d_forward_naive`` / ``avg_pool2d_backward_naive`` and ``avg_pool2d_forward`` /
  ``avg_pool2d_backward``: the same for the mean
- ``global_avg_pool`` / ``global_avg_pool_backward``: the mean of each whole feature map
- ``MaxPool2d``, ``AvgPool2d``, ``GlobalAvgPool2d``: the layers

Shapes: x (N, C, H, W) -> out (N, C, H_out, W_out); global pooling (N, C, H, W) -> (N, C).
Everything keeps the input's floating dtype (float32 for training, float64 for checks).
"""

from __future__ import annotations

import numpy as np

from dlfs.conv.geometry import conv_output_size, pad_hw, pair
from dlfs.nn.layers import Layer
from dlfs.tensor.broadcasting import sliding_window_view


def pool_output_size(size: int, kernel: int, stride: int | None = None, padding: int = 0) -> int:
    """Number of pooling windows along one axis: ``(size + 2·padding − kernel) // stride + 1``.

    size >= 1, kernel >= 1, stride >= 1 (None means ``stride = kernel``), padding >= 0, plain
    ints. Raises ValueError, naming the bad argument and its value, when

    * an argument is out of range;
    * ``padding > kernel / 2`` (PyTorch's rule: with ``padding <= kernel / 2`` every window
      holds at least ``kernel − padding >= kernel / 2`` real pixels along each axis);
    * the window is larger than the padded input (``kernel > size + 2·padding``): the message
      gives both numbers.

    Reuses ``conv_output_size`` (Topic 11) for the arithmetic.
    Example: size 28, kernel 2 -> 14; size 7, kernel 3, stride 2, padding 1 -> 4.
    """
    # TODO: stride None -> kernel; check each argument, then the two pooling rules, then
    #       the convolution's formula.
    # BEGIN SOLUTION validate the arguments (range, padding at most kernel/2, window no larger than the padded input) and return the output size
    if stride is None:
        stride = kernel
    for name, value, low in (("size", size, 1), ("kernel", kernel, 1), ("stride", stride, 1),
                             ("padding", padding, 0)):
        if value < low:
            raise ValueError(f"pooling: {name} must be >= {low}, got {value}")
    if 2 * padding > kernel:
        raise ValueError(f"pooling: padding must be at most half the kernel size, got padding {padding} "
                         f"for kernel {kernel}")
    if kernel > size + 2 * padding:
        raise ValueError(f"pooling: the window ({kernel}) is larger than the padded input "
                         f"({size + 2 * padding} = size {size} + 2 x padding {padding})")
    return conv_output_size(size, kernel, stride, padding)
    # END SOLUTION


def _pool_geometry(x_shape, kernel_size, stride, padding):
    """Unpack and check a pooling geometry (given).

    x_shape: (N, C, H, W); kernel_size, padding: int or (h, w) pair; stride: int, pair or None
    (None means the kernel size). Returns ``((kh, kw), (s_h, s_w), (p_h, p_w), H_out, W_out)``;
    raises ValueError (from ``pool_output_size``) for a bad geometry.
    """
    if len(x_shape) != 4:
        raise ValueError(f"pooling needs x of shape (N, C, H, W), got shape {tuple(x_shape)}")
    kh, kw = pair(kernel_size, "kernel_size")
    sh, sw = (kh, kw) if stride is None else pair(stride, "stride")
    ph, pw = pair(padding, "padding")
    H, W = x_shape[-2:]
    H_out = pool_output_size(H, kh, sh, ph)
    W_out = pool_output_size(W, kw, sw, pw)
    return (kh, kw), (sh, sw), (ph, pw), H_out, W_out


def _check_dout(dout: np.ndarray, x_shape, H_out: int, W_out: int) -> None:
    """dout must have the pooled shape (N, C, H_out, W_out) (given)."""
    expected = (*tuple(x_shape)[:2], H_out, W_out)
    if dout.shape != expected:
        raise ValueError(f"dout must have the output's shape {expected}, got {dout.shape}")


# ----------------------------------------------------------------- max pooling

def max_pool2d_forward_naive(x: np.ndarray, kernel_size, stride=None,
                             padding=0) -> tuple[np.ndarray, np.ndarray]:
    """Max pooling with a Python loop over the output positions (the readable definition).

    x: (N, C, H, W), floating; kernel_size, padding: int or (h, w) pair; stride: int, pair or
    None (= kernel_size). Returns ``(out, arg)``:

    * out: (N, C, H_out, W_out) in x's dtype, the maximum of each window of ``xp`` (x padded
      with ``-inf``);
    * arg: (N, C, H_out, W_out) int64, where that maximum sits inside its window, as the
      row-major offset ``p·kw + q`` (0 <= arg < kh·kw). On ties the **first** maximum wins
      (what ``np.argmax`` returns, and what PyTorch picks).
    """
    x = np.asarray(x)
    (kh, kw), (sh, sw), (ph, pw), H_out, W_out = _pool_geometry(x.shape, kernel_size, stride, padding)
    # TODO: pad with -inf once; for each output position (i, j) flatten the (N, C, kh, kw) patch
    #       to (N, C, kh·kw) and take its max and argmax.
    # BEGIN SOLUTION pad with -inf, loop over output positions, take max and argmax of each flattened window
    N, C = x.shape[:2]
    xp = pad_hw(x, (ph, pw), -np.inf)
    out = np.empty((N, C, H_out, W_out), dtype=x.dtype)
    arg = np.empty((N, C, H_out, W_out), dtype=np.int64)
    for i in range(H_out):
        for j in range(W_out):
            patch = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].reshape(N, C, kh * kw)
            arg[:, :, i, j] = patch.argmax(axis=-1)
            out[:, :, i, j] = patch.max(axis=-1)
    return out, arg
    # END SOLUTION


def max_pool2d_backward_naive(dout: np.ndarray, arg: np.ndarray, x_shape, kernel_size, stride=None,
                              padding=0) -> np.ndarray:
    """Gradient of max pooling, with the forward's loop over output positions.

    dout: (N, C, H_out, W_out); arg: the forward's argmax offsets, same shape; x_shape:
    (N, C, H, W); the geometry as in the forward. Returns dx: (N, C, H, W) in dout's dtype:
    every ``dout[n, c, i, j]`` goes to the one pixel of window (i, j) that ``arg`` names, and a
    pixel that is the maximum of several (overlapping) windows receives the **sum** of their
    gradients. Gradient that lands in the padding is dropped.
    """
    dout = np.asarray(dout)
    arg = np.asarray(arg)
    (kh, kw), (sh, sw), (ph, pw), H_out, W_out = _pool_geometry(x_shape, kernel_size, stride, padding)
    _check_dout(dout, x_shape, H_out, W_out)
    if arg.shape != dout.shape:
        raise ValueError(f"arg must have dout's shape {dout.shape}, got {arg.shape}")
    # TODO: a one-hot (N, C, kh·kw) mask from arg[:, :, i, j] times dout[:, :, i, j], reshaped to
    #       (N, C, kh, kw) and ADDED (+=) to the window of the padded gradient; crop at the end.
    # BEGIN SOLUTION loop over output positions, add dout times the one-hot argmax mask into the padded window, crop the padding
    N, C, H, W = x_shape
    dxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=dout.dtype)
    offsets = np.arange(kh * kw)
    for i in range(H_out):
        for j in range(W_out):
            one_hot = offsets == arg[:, :, i, j, None]                         # (N, C, kh·kw)
            g = (one_hot * dout[:, :, i, j, None]).reshape(N, C, kh, kw)
            dxp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw] += g
    return np.ascontiguousarray(dxp[:, :, ph:ph + H, pw:pw + W])
    # END SOLUTION


def max_pool2d_forward(x: np.ndarray, kernel_size, stride=None,
                       padding=0) -> tuple[np.ndarray, np.ndarray]:
    """Max pooling without a loop over pixels; same contract and same results as
    :func:`max_pool2d_forward_naive` (``(out, arg)``, first maximum on ties).

    Pad with ``-inf`` once and take every window as a strided view
    (``sliding_window_view(xp, (kh, kw), step=(s_h, s_w))``: (N, C, H_out, W_out, kh, kw), no
    copy). Then loop over the ``kh·kw`` kernel offsets: ``win[..., p, q]`` is the
    (N, C, H_out, W_out) array of every window's tap (p, q); keep a running maximum and, where
    the tap is *strictly* larger, record its offset ``p·kw + q`` (strictly, so that the first
    maximum stays). The offsets are stored as int16 (a quarter of int64's memory traffic)
    unless the window has more taps than int16 can count.
    """
    x = np.asarray(x)
    (kh, kw), (sh, sw), (ph, pw), H_out, W_out = _pool_geometry(x.shape, kernel_size, stride, padding)
    # TODO: xp = x padded with -inf; win = sliding_window_view(xp, (kh, kw), step=(sh, sw));
    #       out starts as a copy of tap (0, 0), arg as zeros; update both tap by tap.
    # BEGIN SOLUTION pad with -inf, take the strided window view, and keep a running max and its offset over the kh*kw taps
    xp = pad_hw(x, (ph, pw), -np.inf)
    win = sliding_window_view(xp, (kh, kw), step=(sh, sw))        # (N, C, H_out, W_out, kh, kw)
    out = win[..., 0, 0].copy()
    arg = np.zeros(out.shape, dtype=np.int16 if kh * kw <= np.iinfo(np.int16).max else np.int64)
    larger = np.empty(out.shape, dtype=bool)
    for p in range(kh):
        for q in range(kw):
            if p == 0 and q == 0:
                continue
            tap = win[..., p, q]
            np.greater(tap, out, out=larger)
            np.maximum(out, tap, out=out)
            np.copyto(arg, p * kw + q, where=larger)
    return out, arg
    # END SOLUTION


def max_pool2d_backward(dout: np.ndarray, arg: np.ndarray, x_shape, kernel_size, stride=None,
                        padding=0) -> np.ndarray:
    """Gradient of max pooling without a loop over pixels; same contract and same results as
    :func:`max_pool2d_backward_naive`.

    A scatter-add over the ``kh·kw`` kernel offsets, as in ``col2im`` (Topic 12): for offset
    (p, q), the windows whose maximum is tap (p, q) send ``dout`` to the padded pixels
    ``(p + i·s_h, q + j·s_w)`` — for all (i, j) at once one strided slice of the padded gradient,
    into which ``np.where(arg == p·kw + q, dout, 0)`` is **added**. Different offsets hit the same
    pixel when the windows overlap (kernel > stride); within one offset no pixel repeats.
    """
    dout = np.asarray(dout)
    arg = np.asarray(arg)
    (kh, kw), (sh, sw), (ph, pw), H_out, W_out = _pool_geometry(x_shape, kernel_size, stride, padding)
    _check_dout(dout, x_shape, H_out, W_out)
    if arg.shape != dout.shape:
        raise ValueError(f"arg must have dout's shape {dout.shape}, got {arg.shape}")
    # TODO: the slice of offset (p, q) starts at p (q) and ends at p + s·(n_out − 1) + 1 with
    #       step s on each axis; crop the padding off at the end.
    # BEGIN SOLUTION loop over the kh*kw offsets, adding dout where arg names that offset into a strided slice of the padded dx; crop
    N, C, H, W = x_shape
    dxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=dout.dtype)
    zero = np.zeros((), dtype=dout.dtype)
    for p in range(kh):
        rows = slice(p, p + sh * (H_out - 1) + 1, sh)
        for q in range(kw):
            cols = slice(q, q + sw * (W_out - 1) + 1, sw)
            dxp[:, :, rows, cols] += np.where(arg == p * kw + q, dout, zero)
    return np.ascontiguousarray(dxp[:, :, ph:ph + H, pw:pw + W])
    # END SOLUTION


# ----------------------------------------------------------------- average pooling

def avg_pool2d_forward_naive(x: np.ndarray, kernel_size, stride=None, padding=0) -> np.ndarray:
    """Average pooling with a Python loop over the output positions.

    x: (N, C, H, W); geometry as in max pooling. Returns out: (N, C, H_out, W_out) in x's dtype,
    the sum of each window of the **zero**-padded input divided by ``kh·kw`` (padded zeros
    count, like PyTorch's ``avg_pool2d`` with its default ``count_include_pad=True``).
    """
    x = np.asarray(x)
    (kh, kw), (sh, sw), (ph, pw), H_out, W_out = _pool_geometry(x.shape, kernel_size, stride, padding)
    # TODO: zero-pad once (pad_hw); each output position is the mean of its (kh, kw) patch.
    # BEGIN SOLUTION zero-pad, loop over output positions, mean of each window
    N, C = x.shape[:2]
    xp = pad_hw(x, (ph, pw))
    out = np.empty((N, C, H_out, W_out), dtype=x.dtype)
    for i in range(H_out):
        for j in range(W_out):
            out[:, :, i, j] = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].mean(axis=(2, 3))
    return out
    # END SOLUTION


def avg_pool2d_backward_naive(dout: np.ndarray, x_shape, kernel_size, stride=None,
                              padding=0) -> np.ndarray:
    """Gradient of average pooling, with the forward's loop.

    dout: (N, C, H_out, W_out); x_shape: (N, C, H, W). Returns dx: (N, C, H, W) in dout's dtype:
    every pixel of window (i, j) receives ``dout[n, c, i, j] / (kh·kw)``, summed over all the
    windows that contain it; the padding's share is dropped.
    """
    dout = np.asarray(dout)
    (kh, kw), (sh, sw), (ph, pw), H_out, W_out = _pool_geometry(x_shape, kernel_size, stride, padding)
    _check_dout(dout, x_shape, H_out, W_out)
    # TODO: add dout[:, :, i, j] / (kh·kw) to the whole window of the padded gradient; crop.
    # BEGIN SOLUTION loop over output positions, add dout/(kh*kw) to each window of the padded dx, crop the padding
    N, C, H, W = x_shape
    dxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=dout.dtype)
    share = dout / (kh * kw)
    for i in range(H_out):
        for j in range(W_out):
            dxp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw] += share[:, :, i, j, None, None]
    return np.ascontiguousarray(dxp[:, :, ph:ph + H, pw:pw + W])
    # END SOLUTION


def avg_pool2d_forward(x: np.ndarray, kernel_size, stride=None, padding=0) -> np.ndarray:
    """Average pooling without a loop over pixels; equal to :func:`avg_pool2d_forward_naive`.

    Zero-pad once, take the strided window view (``sliding_window_view``) and add up its
    ``kh·kw`` taps ``win[..., p, q]`` — each an (N, C, H_out, W_out) array — then divide by
    ``kh·kw``.
    """
    x = np.asarray(x)
    (kh, kw), (sh, sw), (ph, pw), H_out, W_out = _pool_geometry(x.shape, kernel_size, stride, padding)
    # TODO: start from a copy of tap (0, 0), add the other taps in place, divide in place.
    # BEGIN SOLUTION zero-pad, take the strided window view, sum its kh*kw taps and divide by kh*kw
    xp = pad_hw(x, (ph, pw))
    win = sliding_window_view(xp, (kh, kw), step=(sh, sw))        # (N, C, H_out, W_out, kh, kw)
    out = win[..., 0, 0].copy()
    for p in range(kh):
        for q in range(kw):
            if p or q:
                out += win[..., p, q]
    out /= kh * kw
    return out
    # END SOLUTION


def avg_pool2d_backward(dout: np.ndarray, x_shape, kernel_size, stride=None, padding=0) -> np.ndarray:
    """Gradient of average pooling without a loop over pixels; equal to
    :func:`avg_pool2d_backward_naive`.

    The adjoint of the forward: for each kernel offset (p, q), add ``dout / (kh·kw)`` into the
    strided slice of the padded gradient that tap (p, q) was read from (overlapping windows
    add up); crop the padding.
    """
    dout = np.asarray(dout)
    (kh, kw), (sh, sw), (ph, pw), H_out, W_out = _pool_geometry(x_shape, kernel_size, stride, padding)
    _check_dout(dout, x_shape, H_out, W_out)
    # TODO: the same slices as in max_pool2d_backward, with the same share for every offset.
    # BEGIN SOLUTION loop over the kh*kw offsets, adding dout/(kh*kw) into strided slices of the padded dx; crop
    N, C, H, W = x_shape
    dxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=dout.dtype)
    share = dout / (kh * kw)
    for p in range(kh):
        rows = slice(p, p + sh * (H_out - 1) + 1, sh)
        for q in range(kw):
            dxp[:, :, rows, q:q + sw * (W_out - 1) + 1:sw] += share
    return np.ascontiguousarray(dxp[:, :, ph:ph + H, pw:pw + W])
    # END SOLUTION


# ----------------------------------------------------------------- global average pooling

def global_avg_pool(x: np.ndarray) -> np.ndarray:
    """Mean over each feature map. x: (N, C, H, W) -> (N, C), in x's dtype."""
    # BEGIN SOLUTION average over the two spatial axes
    return x.mean(axis=(2, 3))
    # END SOLUTION


def global_avg_pool_backward(dy: np.ndarray, x_shape) -> np.ndarray:
    """dy: (N, C) -> dx: x_shape = (N, C, H, W); every pixel gets dy / (H·W)."""
    # BEGIN SOLUTION spread dy / (H·W) over every pixel of its map
    N, C, H, W = x_shape
    return np.broadcast_to((dy / (H * W))[:, :, None, None], x_shape).astype(dy.dtype, copy=True)
    # END SOLUTION


# ----------------------------------------------------------------- layers

class _Pool2d(Layer):
    """Shared constructor and repr of the pooling layers (given): kernel_size, padding: int or
    (h, w) pair; stride: int, pair or None (= kernel_size). No parameters."""

    def __init__(self, kernel_size, stride=None, padding=0):
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else pair(stride, "stride")
        self.padding = pair(padding, "padding")
        self.x_shape: tuple | None = None          # the input shape of the last forward

    def extra_repr(self) -> str:
        s = f"kernel_size={self.kernel_size}, stride={self.stride}"
        return s + (f", padding={self.padding}" if self.padding != (0, 0) else "")


class MaxPool2d(_Pool2d):
    """Max pooling, like ``torch.nn.MaxPool2d``: x (N, C, H, W) -> (N, C, H_out, W_out).

    ``forward`` caches the input shape and the argmax offsets (not the input);
    ``backward(dy)`` returns dx: (N, C, H, W), the gradient routed to each window's first
    maximum (summed where windows overlap).
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__(kernel_size, stride, padding)
        self.arg: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        # BEGIN SOLUTION max_pool2d_forward with the layer's geometry; cache x's shape and the argmax
        out, self.arg = max_pool2d_forward(x, self.kernel_size, self.stride, self.padding)
        self.x_shape = x.shape
        return out
        # END SOLUTION

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self.arg is None:
            raise RuntimeError("MaxPool2d.backward called before forward")
        # BEGIN SOLUTION max_pool2d_backward with the cached argmax and shape
        return max_pool2d_backward(dy, self.arg, self.x_shape, self.kernel_size, self.stride, self.padding)
        # END SOLUTION


class AvgPool2d(_Pool2d):
    """Average pooling, like ``torch.nn.AvgPool2d`` (``count_include_pad=True``):
    x (N, C, H, W) -> (N, C, H_out, W_out). ``forward`` caches the input shape only."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        # BEGIN SOLUTION avg_pool2d_forward with the layer's geometry; cache x's shape
        self.x_shape = x.shape
        return avg_pool2d_forward(x, self.kernel_size, self.stride, self.padding)
        # END SOLUTION

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self.x_shape is None:
            raise RuntimeError("AvgPool2d.backward called before forward")
        # BEGIN SOLUTION avg_pool2d_backward with the cached shape
        return avg_pool2d_backward(dy, self.x_shape, self.kernel_size, self.stride, self.padding)
        # END SOLUTION


class GlobalAvgPool2d(Layer):
    """x: (N, C, H, W) -> (N, C): the mean of each feature map (ResNet's head)."""

    def __init__(self):
        self.x_shape: tuple | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        # BEGIN SOLUTION cache x's shape, then global_avg_pool
        self.x_shape = x.shape
        return global_avg_pool(x)
        # END SOLUTION

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self.x_shape is None:
            raise RuntimeError("GlobalAvgPool2d.backward called before forward")
        # BEGIN SOLUTION global_avg_pool_backward with the cached shape
        return global_avg_pool_backward(dy, self.x_shape)
        # END SOLUTION
