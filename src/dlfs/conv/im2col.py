"""Topic 12 — im2col: convolution as one big matrix product.

Topic 11 computes a convolution with one small product per output position. Here every
receptive field is first laid out as a column of a matrix (``im2col``), so that the whole layer is a
single matrix product that BLAS runs at full speed::

    cols  = im2col(x)                         (N, C_in·kh·kw, H_out·W_out)
    out   = W2 @ cols + b                     W2 = w.reshape(C_out, C_in·kh·kw)
          -> (N, C_out, H_out·W_out) -> (N, C_out, H_out, W_out)        (a free reshape)

The column layout is PyTorch's ``unfold``: row ``(c, p, q)`` of sample ``n``'s matrix holds, for
every output position ``(i, j)``, the input value that kernel tap ``(c, p, q)`` sees there. The
windows are a strided view of the padded input (Topic 01's ``sliding_window_view``); the only copy
is the final reshape. The backward is two more products and ``col2im``, the adjoint of ``im2col``
(it adds each column back onto the pixels it came from)::

    dw    = Σ_n dout_n @ cols_nᵀ              (C_out, C_in·kh·kw)
    dcols = W2ᵀ @ dout_n                      (C_in·kh·kw, H_out·W_out)  ->  dx = col2im(dcols)

For a stride-1 convolution ``dx`` is itself a convolution — of ``dout`` with the kernel flipped
in space and with C_in and C_out swapped — so it reuses the fast forward instead of ``col2im``.

Work is done a few samples at a time (``dlfs.parallel.items_per_chunk``): the column matrix of
a chunk stays in the CPU cache instead of making a multi-hundred-megabyte round trip through
memory. The chunks are independent, so ``dlfs.parallel.map_chunks`` runs them on all cores at
once, one single-threaded matrix product each — faster, for products this small, than one
product split across the cores by the BLAS library. That scaffolding is given:
``conv2d_forward`` and ``conv2d_backward`` split the batch and call the per-chunk functions
you write.

- ``im2col`` / ``col2im``: patches to columns and back
- ``_conv2d_forward_chunk`` / ``_conv2d_backward_chunk``: the layer's math as matrix products,
  on one chunk of samples; ``conv2d_forward`` / ``conv2d_backward`` (given around them, except
  ``db`` and the stride-1 ``dx``)
- ``Conv2d``: the layer (He-initialised weights, cached input, accumulated gradients)

Shapes: x (N, C_in, H, W); w (C_out, C_in, kh, kw); b (C_out,); out (N, C_out, H_out, W_out).
Everything keeps the input's floating dtype (float32 for training, float64 for checks).
"""

from __future__ import annotations

import numpy as np

from dlfs.conv.geometry import (
    check_conv_args,
    conv_geometry,
    input_grad_is_a_convolution,
    layer_geometry,
    pad_hw,
)
from dlfs.nn.init import kaiming_normal
from dlfs.nn.layers import Layer, Parameter
from dlfs.parallel import items_per_chunk, map_chunks
from dlfs.tensor.broadcasting import sliding_window_view


def im2col(x: np.ndarray, kh: int, kw: int, stride=1, padding=0, dilation=1) -> np.ndarray:
    """Every receptive field of ``x`` as a column: PyTorch's ``unfold`` layout.

    x: (N, C, H, W); kh, kw: kernel size; stride, padding, dilation: int or (h, w) pair.
    Returns cols: (N, C·kh·kw, H_out·W_out), a new contiguous array in x's dtype, with
    ``cols[n, (c·kh + p)·kw + q, i·W_out + j] = xp[n, c, i·s_h + p·d_h, j·s_w + q·d_w]``
    (``xp`` = x zero-padded by ``padding``).

    No Python loop over pixels: pad once (``pad_hw``), take the windows as a strided view
    (``sliding_window_view`` of Topic 01, with the *dilated* window size, then every d-th tap),
    reorder the axes to (N, C, kh, kw, H_out, W_out) and copy them into a new array (the one
    copy; a bare ``reshape`` would return a read-only view in the 1x1 stride-1 case).
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"im2col needs x of shape (N, C, H, W), got {x.shape}")
    H_out, W_out, (sh, sw), (ph, pw), (dh, dw) = conv_geometry(x.shape, kh, kw, stride, padding, dilation)
    # TODO: the view has shape (N, C, H_out, W_out, span_h, span_w) with span = d·(k − 1) + 1;
    #       keep every d-th tap of each window, move (H_out, W_out) last, copy into a new
    #       (N, C, kh, kw, H_out, W_out) array and reshape it (free: it is contiguous).
    # BEGIN SOLUTION pad, take strided windows (dilated span, then every d-th tap), reorder and reshape to (N, C*kh*kw, H_out*W_out)
    N, C = x.shape[:2]
    xp = pad_hw(x, (ph, pw))
    span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    win = sliding_window_view(xp, span, step=(sh, sw))        # (N, C, H_out, W_out, span_h, span_w)
    win = win[..., ::dh, ::dw]                                # (N, C, H_out, W_out, kh, kw)
    cols = np.empty((N, C, kh, kw, H_out, W_out), dtype=x.dtype)
    cols[...] = win.transpose(0, 1, 4, 5, 2, 3)               # the one copy
    return cols.reshape(N, C * kh * kw, H_out * W_out)
    # END SOLUTION


def col2im(cols: np.ndarray, x_shape, kh: int, kw: int, stride=1, padding=0,
           dilation=1) -> np.ndarray:
    """The adjoint of :func:`im2col` (PyTorch's ``fold``): add every column entry back onto the
    input pixel it was read from.

    cols: (N, C·kh·kw, H_out·W_out); x_shape: (N, C, H, W); the rest as in :func:`im2col`.
    Returns dx: (N, C, H, W) in cols' dtype with
    ``dx[n, c, y, x] = Σ`` of every ``cols`` entry that ``im2col`` copied from ``xp[n, c, y+p_h, x+p_w]``,
    so that ``<im2col(x), cols> == <x, col2im(cols)>`` for all x and cols. Entries that came
    from the zero padding are dropped.

    Loops over the kh·kw kernel offsets only: offset (p, q) is one strided slice of the padded
    gradient, and overlapping windows must *add*, never overwrite.
    """
    cols = np.asarray(cols)
    N, C, H, W = (int(s) for s in x_shape)
    H_out, W_out, (sh, sw), (ph, pw), (dh, dw) = conv_geometry((H, W), kh, kw, stride, padding, dilation)
    expected = (N, C * kh * kw, H_out * W_out)
    if cols.shape != expected:
        raise ValueError(f"col2im: cols must have shape {expected} for x of shape {tuple(x_shape)}, "
                         f"got {cols.shape}")
    # TODO: for offset (p, q) the taps sit at rows p·d_h + i·s_h and columns q·d_w + j·s_w of the
    #       padded gradient: one slice with step s per axis; crop the padding at the end.
    # BEGIN SOLUTION loop over the kh*kw offsets, adding each (N, C, H_out, W_out) slab into a strided slice of the padded dx
    c6 = cols.reshape(N, C, kh, kw, H_out, W_out)
    dxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=cols.dtype)
    for p in range(kh):
        r0 = p * dh
        rows = slice(r0, r0 + sh * (H_out - 1) + 1, sh)
        for q in range(kw):
            c0 = q * dw
            dxp[:, :, rows, c0:c0 + sw * (W_out - 1) + 1:sw] += c6[:, :, p, q]
    return dxp[:, :, ph:ph + H, pw:pw + W]
    # END SOLUTION


def _conv2d_forward_chunk(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, out: np.ndarray,
                          stride, padding, dilation) -> None:
    """The forward of one chunk of samples, written into ``out``: ``out_n = W2 @ im2col(x)_n + b``.

    x: (B, C_in, H, W), a few samples of the batch; w: (C_out, C_in, kh, kw) and b: (C_out,)
    or None, both in out's dtype; out: (B, C_out, H_out·W_out), the chunk's slice of
    :func:`conv2d_forward`'s output — write into it (``np.matmul(..., out=out)``, ``+=``),
    never rebind it. stride, padding, dilation: int or (h, w) pair.
    """
    # TODO: W2 = w as a (C_out, C_in·kh·kw) matrix; one (batched) matmul (C_out, K) @ (B, K, L)
    #       with the chunk's im2col columns, straight into out; then the bias b[:, None].
    # BEGIN SOLUTION one matmul of the weight matrix with the chunk's im2col columns into out; add the bias
    C_out, C_in, kh, kw = w.shape
    cols = im2col(x, kh, kw, stride, padding, dilation).astype(out.dtype, copy=False)
    np.matmul(w.reshape(C_out, C_in * kh * kw), cols, out=out)
    if b is not None:
        out += b[:, None]
    # END SOLUTION


def conv2d_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride=1,
                   padding=0, dilation=1) -> np.ndarray:
    """Conv2d forward as matrix products: ``out_n = W2 @ im2col(x)_n + b``.

    x: (N, C_in, H, W); w: (C_out, C_in, kh, kw); b: (C_out,) or None; stride, padding,
    dilation: int or (h, w) pair. Returns out: (N, C_out, H_out, W_out), C-contiguous, in
    ``np.result_type(x, w)``; equal to Topic 11's ``conv2d_forward_naive``.

    Given: the batch is split into chunks of a few samples (``items_per_chunk``: about
    ``dlfs.parallel.CHUNK_BYTES`` of im2col columns each, so that they stay in the CPU cache)
    and the chunks run in parallel threads (``map_chunks``), each calling
    :func:`_conv2d_forward_chunk` on its slice of the output.
    """
    x = np.asarray(x)
    w = np.asarray(w)
    check_conv_args(x, w, b)
    C_out, C_in, kh, kw = w.shape
    H_out, W_out, *_ = conv_geometry(x.shape, kh, kw, stride, padding, dilation)
    N = x.shape[0]
    dtype = np.result_type(x, w)
    w = w.astype(dtype, copy=False)
    b = None if b is None else np.asarray(b, dtype=dtype)
    L = H_out * W_out
    out = np.empty((N, C_out, L), dtype=dtype)

    def chunk(lo, hi):                               # samples [lo, hi)
        _conv2d_forward_chunk(x[lo:hi], w, b, out[lo:hi], stride, padding, dilation)

    map_chunks(chunk, N, items_per_chunk(N, C_in * kh * kw * L * dtype.itemsize))
    return out.reshape(N, C_out, H_out, W_out)


def _conv2d_backward_chunk(dout: np.ndarray, x: np.ndarray, w: np.ndarray, dx: np.ndarray | None,
                           stride, padding, dilation) -> np.ndarray:
    """The backward of one chunk of samples: its share of dw, and its dx when asked.

    dout: (B, C_out, H_out·W_out) and w: (C_out, C_in, kh, kw), in one dtype; x: (B, C_in, H, W)
    (the chunk of the forward's input); dx: None, or the chunk's (B, C_in, H, W) slice of
    :func:`conv2d_backward`'s input gradient, to fill with ``col2im(W2ᵀ @ dout_n)`` (write into
    it, never rebind it). Returns ``Σ_n dout_n @ cols_nᵀ`` over the chunk's samples, reshaped
    to w's shape (cols = im2col of x).
    """
    # TODO: one im2col of the chunk serves both: dw's products, then (if dx is not None) the
    #       buffer for dcols = W2ᵀ @ dout (np.matmul(..., out=cols)) and col2im.
    # BEGIN SOLUTION the chunk's dw from dout and the im2col columns; when dx is given, col2im of W2ᵀ @ dout into it
    C_out, C_in, kh, kw = w.shape
    cols = im2col(x, kh, kw, stride, padding, dilation)                  # (B, K, L)
    dw = sum(d @ c.T for d, c in zip(dout, cols))                         # (C_out, K)
    if dx is not None:
        np.matmul(w.reshape(C_out, C_in * kh * kw).T, dout, out=cols)   # dcols, reusing the buffer
        dx[...] = col2im(cols, dx.shape, kh, kw, stride, padding, dilation)
    return dw.reshape(w.shape)
    # END SOLUTION


def conv2d_backward(dout: np.ndarray, x: np.ndarray, w: np.ndarray, stride=1, padding=0,
                    dilation=1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`conv2d_forward` as matrix products.

    dout: (N, C_out, H_out, W_out); x: (N, C_in, H, W) (the forward's input);
    w: (C_out, C_in, kh, kw). Returns ``(dx, dw, db)`` with shapes x, w and (C_out,), in
    ``np.result_type(dout, x, w)``, equal to Topic 11's ``conv2d_backward_naive``:

    * ``db = Σ_{n,i,j} dout``;
    * ``dw = Σ_n dout_n @ cols_nᵀ`` reshaped to w's shape (cols = im2col of a chunk of x);
    * ``dx``: for stride 1 (and ``p <= d·(k − 1)``), the convolution of ``dout`` with
      ``w`` flipped in space and transposed to (C_in, C_out, kh, kw), padding
      ``d·(k − 1) − p`` and the same dilation; otherwise ``col2im(W2ᵀ @ dout_n)``.

    Given: the chunks run in parallel as in the forward, each calling
    :func:`_conv2d_backward_chunk` (with its slice of dx only when dx is not the stride-1
    convolution), and their shares of dw are added up.
    """
    dout = np.asarray(dout)
    x = np.asarray(x)
    w = np.asarray(w)
    check_conv_args(x, w, None)
    C_out, C_in, kh, kw = w.shape
    H_out, W_out, (sh, sw), (ph, pw), (dh, dw_) = conv_geometry(x.shape, kh, kw, stride, padding, dilation)
    N = x.shape[0]
    if dout.shape != (N, C_out, H_out, W_out):
        raise ValueError(f"dout must have the output's shape {(N, C_out, H_out, W_out)}, got {dout.shape}")
    dtype = np.result_type(dout, x, w)
    w = w.astype(dtype, copy=False)
    dout = dout.astype(dtype, copy=False)
    L = H_out * W_out
    d3 = dout.reshape(N, C_out, L)
    fast_dx = input_grad_is_a_convolution((sh, sw), (ph, pw), (dh, dw_), kh, kw)
    dx = None if fast_dx else np.empty(x.shape, dtype=dtype)

    def chunk(lo, hi):                             # samples [lo, hi): their share of dw (and dx)
        return _conv2d_backward_chunk(d3[lo:hi], x[lo:hi], w, None if dx is None else dx[lo:hi],
                                      stride, padding, dilation)

    dw = np.zeros(w.shape, dtype=dtype)
    for part in map_chunks(chunk, N, items_per_chunk(N, C_in * kh * kw * L * dtype.itemsize)):
        dw += part
    # TODO: db is a sum; when fast_dx, dx is the stride-1 convolution of dout (use conv2d_forward).
    # BEGIN SOLUTION db by summing dout; for stride 1, dx by conv2d_forward of dout with the flipped, channel-swapped kernel
    db = d3.sum(axis=(0, 2))
    if fast_dx:
        w_flip = w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]
        dx = conv2d_forward(dout, w_flip, None, stride=1,
                            padding=(dh * (kh - 1) - ph, dw_ * (kw - 1) - pw), dilation=(dh, dw_))
    return dx, dw, db
    # END SOLUTION


class Conv2d(Layer):
    """A 2-D convolution layer: ``y = conv2d(x, W) + b`` (cross-correlation, like ``torch.nn.Conv2d``).

    x: (N, in_channels, H, W) -> y: (N, out_channels, H_out, W_out).
    Parameters: ``W``: (out_channels, in_channels, kh, kw); ``b``: (out_channels,), or
    ``b = None`` when ``bias=False`` (the usual choice before a batch norm).
    kernel_size, stride, padding, dilation: int or (h, w) pair.

    Initialisation (He / Kaiming normal for ReLU networks, from ``dlfs.nn.init``):
    ``W ~ N(0, 2 / fan_in)`` with ``fan_in = in_channels · kh · kw``
    (``kaiming_normal(shape, mode="fan_in", nonlinearity="relu", rng=rng, dtype=dtype)``);
    ``b = 0``. Parameters are created in ``dtype`` (float32 by default, float64 for gradient
    checks) from ``rng`` (a Generator, a seed, or None).

    ``forward`` caches its input (a reference, not a copy); ``backward(dy)`` returns ``dx`` and
    **accumulates** (``+=``) into ``W.grad`` and ``b.grad``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, bias: bool = True, rng: np.random.Generator | int | None = None,
                 dtype=np.float32):
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"Conv2d needs positive channel counts, got ({in_channels}, {out_channels})")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size, self.stride, self.padding, self.dilation = layer_geometry(
            "Conv2d", kernel_size, stride, padding, dilation)
        rng = np.random.default_rng(rng)
        self.x: np.ndarray | None = None          # the input of the last forward
        # TODO: W from kaiming_normal (fan_in, relu) with shape (out, in, kh, kw); b zeros or None.
        # BEGIN SOLUTION create self.W (He-normal, shape (out, in, kh, kw)) and self.b (zeros, or None) as Parameters
        shape = (self.out_channels, self.in_channels, *self.kernel_size)
        self.W = Parameter(kaiming_normal(shape, mode="fan_in", nonlinearity="relu", rng=rng, dtype=dtype),
                           name="W")
        self.b = Parameter(np.zeros(self.out_channels, dtype=dtype), name="b") if bias else None
        # END SOLUTION

    @classmethod
    def from_weights(cls, W, b=None, stride=1, padding=0, dilation=1) -> "Conv2d":
        """A Conv2d layer holding copies of given weights (given).

        W: (out_channels, in_channels, kh, kw); b: (out_channels,), or None for a layer without
        bias; stride, padding, dilation: int or (h, w) pair. The parameters take W's floating
        dtype (float32 for any other dtype); the constructor builds the layer, then
        ``load_state_dict`` overwrites (and shape-checks) its parameters.
        """
        W = np.asarray(W)
        if W.ndim != 4:
            raise ValueError(f"Conv2d.from_weights: W must be (out_channels, in_channels, kh, kw), "
                             f"got shape {W.shape}")
        dtype = W.dtype if W.dtype.kind == "f" else np.dtype(np.float32)
        layer = cls(W.shape[1], W.shape[0], W.shape[2:], stride, padding, dilation, bias=b is not None,
                    rng=0, dtype=dtype)
        layer.load_state_dict({"W": W} if b is None else {"W": W, "b": b})
        return layer

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        return s + f", bias={self.b is not None}"

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, in_channels, H, W) -> (N, out_channels, H_out, W_out). Caches x."""
        # BEGIN SOLUTION cache x, then conv2d_forward with W, b (or None) and the layer's geometry
        self.x = x
        return conv2d_forward(x, self.W.data, None if self.b is None else self.b.data,
                              self.stride, self.padding, self.dilation)
        # END SOLUTION

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy: (N, out_channels, H_out, W_out) -> dx: (N, in_channels, H, W);
        accumulates W.grad and b.grad."""
        if self.x is None:
            raise RuntimeError("Conv2d.backward called before forward")
        # BEGIN SOLUTION conv2d_backward with the cached x; accumulate dW (and db); return dx
        dx, dW, db = conv2d_backward(dy, self.x, self.W.data, self.stride, self.padding, self.dilation)
        self.W.accumulate_grad(dW)
        if self.b is not None:
            self.b.accumulate_grad(db)
        return dx
        # END SOLUTION
