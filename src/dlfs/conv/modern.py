"""Topic 15 — modern convolutions: grouped, depthwise, pointwise, dilated.

A standard convolution connects every output channel to every input channel. The family below
breaks that dense connection up, which is how MobileNet, Xception, ResNeXt and EfficientNet get
ImageNet accuracy from a fraction of the parameters and multiply-adds:

* **grouped** (``groups = G``): the channels are split into G independent groups; output channel
  ``o`` of group ``g = o // (C_out/G)`` only sees input channels ``g·C_in/G .. (g+1)·C_in/G − 1``.
  Weight ``w: (C_out, C_in/G, kh, kw)`` — PyTorch's layout — so parameters and multiply-adds
  both drop by G. ``groups = 1`` is Topic 12's convolution.
* **depthwise** (``groups = C_in``): every channel is filtered on its own by ``M`` kernels (the
  *channel multiplier*), ``w: (C_in·M, 1, kh, kw)``; output channel ``c·M + m`` reads channel ``c``.
  It mixes space, never channels.
* **pointwise** (a 1×1 convolution): mixes channels, never space. It is a plain matrix product
  ``(C_out, C_in) @ (C_in, H·W)`` per sample — no im2col needed.
* **depthwise-separable** = depthwise then pointwise (MobileNet): a k×k, C_in → C_out convolution
  for about ``1/C_out + 1/k²`` of the cost (≈ 8–9× fewer for 3×3).
* **dilated** (``dilation = d``): the kernel taps are spread ``d`` pixels apart; a stack with
  dilations 1, 2, 4, 8 sees a 31-pixel field with 3×3 kernels and no downsampling
  (``receptive_field``).

Everything is built on Topic 12 (``im2col``, ``col2im``, ``conv2d_forward``, ``conv2d_backward``):
the grouped convolution is Topic 12's product done once per group — one batched matmul over a
``(G, ·, ·)`` view of the same columns. The depthwise convolution also gets a copy-free
formulation: with a single input channel per group the "matrix product" is a ``kh·kw``-term dot
product, which a strided window view and one ``einsum`` compute without materialising the
columns. Both give the same numbers (the tests check it); in NumPy the grouped path is the faster
one, and the lesson explains why.

- ``check_grouped_args``: the shape rules of a grouped convolution, with clear errors
- ``_grouped_conv2d_forward_chunk`` / ``_grouped_conv2d_backward_chunk``: the grouped products on
  one chunk of samples; ``grouped_conv2d_forward`` / ``grouped_conv2d_backward`` split the batch
  into chunks and run them in parallel (given, as in Topic 12, except ``db`` and the stride-1 ``dx``)
- ``depthwise_conv2d_forward`` / ``depthwise_conv2d_backward``: windows and einsum, no column copy
- ``pointwise_conv2d_forward`` / ``pointwise_conv2d_backward``: 1×1 as a matrix product
- ``receptive_field``, ``same_padding``: the arithmetic of dilated stacks
- ``conv2d_params``, ``conv2d_macs``, ``depthwise_separable_params``, ``depthwise_separable_macs``,
  ``compare_conv_costs`` (+ ``format_cost_table``): parameter and multiply-add counts
- layers: ``GroupedConv2d``, ``DepthwiseConv2d``, ``PointwiseConv2d``, ``DepthwiseSeparableConv2d``

Shapes: x (N, C_in, H, W); w (C_out, C_in/groups, kh, kw); b (C_out,);
out (N, C_out, H_out, W_out). Everything keeps the input's floating dtype.
"""

from __future__ import annotations

import numpy as np

from dlfs.conv.geometry import conv_geometry, input_grad_is_a_convolution, layer_geometry, pad_hw, pair
from dlfs.conv.im2col import col2im, conv2d_backward, conv2d_forward, im2col
from dlfs.nn.init import kaiming_normal
from dlfs.nn.layers import Layer, Parameter
from dlfs.parallel import items_per_chunk, map_chunks
from dlfs.tensor.broadcasting import sliding_window_view


# ------------------------------------------------------------------ shape rules

def check_grouped_args(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, groups: int) -> tuple[int, int]:
    """Check the shapes of a grouped convolution; return ``(C_in/groups, C_out/groups)``.

    x: (N, C_in, H, W); w: (C_out, C_in/groups, kh, kw); b: (C_out,) or None; groups: int >= 1.
    Raises ValueError, naming the numbers involved, when

    * ``groups`` is not an int >= 1 (message contains ``"groups"``);
    * x or w is not 4-D;
    * ``C_in`` or ``C_out`` is not divisible by ``groups`` (message contains ``"divisible"``);
    * ``w.shape[1] != C_in / groups`` (message contains ``"weight"`` and the expected shape);
    * b is not of shape (C_out,) (message contains ``"bias"``).
    """
    # TODO: C_out is w.shape[0]; check divisibility of both channel counts before the weight shape.
    # BEGIN SOLUTION validate groups, the ranks, divisibility of C_in and C_out, the weight shape and the bias shape
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"groups must be an int >= 1, got {groups!r}")
    x_shape, w_shape = np.shape(x), np.shape(w)
    if len(x_shape) != 4 or len(w_shape) != 4:
        raise ValueError(f"a grouped convolution needs x (N, C_in, H, W) and w (C_out, C_in/groups, kh, kw), "
                         f"got x {x_shape} and w {w_shape}")
    C_in, C_out = x_shape[1], w_shape[0]
    for name, c in (("in_channels", C_in), ("out_channels", C_out)):
        if c % groups:
            raise ValueError(f"{name} = {c} is not divisible by groups = {groups}")
    c_g = C_in // groups
    expected = (C_out, c_g) + tuple(w_shape[2:])
    if w_shape != expected:
        raise ValueError(f"weight must have shape (C_out, C_in/groups, kh, kw) = {expected} for "
                         f"C_in = {C_in} and groups = {groups}, got {w_shape}")
    if b is not None and np.shape(b) != (C_out,):
        raise ValueError(f"bias must have shape ({C_out},) (one per output channel), got {np.shape(b)}")
    return c_g, C_out // groups
    # END SOLUTION


# ------------------------------------------------------------------ grouped convolution

def _grouped_conv2d_forward_chunk(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, out: np.ndarray,
                                  stride, padding, dilation, groups: int) -> None:
    """The grouped forward of one chunk of samples, written into ``out``.

    x: (B, C_in, H, W); w: (C_out, C_in/G, kh, kw) and b: (C_out,) or None, in out's dtype;
    out: (B, G, C_out/G, H_out·W_out), the chunk's slice of :func:`grouped_conv2d_forward`'s
    output (write into it, never rebind it); groups G > 1.

    The rows of ``im2col(x)`` are ordered channel-first, so group g's rows are one contiguous
    block: the columns viewed as (B, G, K_g, L) with K_g = C_in/G·kh·kw, the weight as
    (G, C_out/G, K_g), and one broadcast ``np.matmul`` gives (B, G, C_out/G, L) — the chunk's
    output, already in channel order.
    """
    # BEGIN SOLUTION one broadcast matmul of the (G, C_out/G, K_g) weight with the (B, G, K_g, L) columns into out; add the bias
    C_out, c_g, kh, kw = w.shape
    B, G, o_g, L = out.shape
    cols = im2col(x, kh, kw, stride, padding, dilation).astype(out.dtype, copy=False)
    np.matmul(w.reshape(G, o_g, c_g * kh * kw), cols.reshape(B, G, c_g * kh * kw, L), out=out)
    if b is not None:
        out += b.reshape(G, o_g, 1)
    # END SOLUTION


def grouped_conv2d_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride=1,
                           padding=0, dilation=1, groups: int = 1) -> np.ndarray:
    """Grouped 2-D convolution (``torch.nn.functional.conv2d(..., groups=groups)``).

    x: (N, C_in, H, W); w: (C_out, C_in/G, kh, kw); b: (C_out,) or None; stride, padding,
    dilation: int or (h, w) pair; groups G divides C_in and C_out.
    Returns out: (N, C_out, H_out, W_out) in ``np.result_type(x, w)`` with, for output channel
    ``o`` in group ``g = o // (C_out/G)``::

        out[:, o] = conv2d(x[:, g·C_in/G : (g+1)·C_in/G], w[o:o+1])[:, 0] + b[o]

    Given: the arguments are checked with :func:`check_grouped_args`; ``groups = 1`` is Topic
    12's ``conv2d_forward``; otherwise the batch is split into chunks that run in parallel
    (as in Topic 12), each calling :func:`_grouped_conv2d_forward_chunk`.
    """
    x = np.asarray(x)
    w = np.asarray(w)
    c_g, o_g = check_grouped_args(x, w, b, groups)
    if groups == 1:
        return conv2d_forward(x, w, b, stride, padding, dilation)
    C_out, _, kh, kw = w.shape
    H_out, W_out, *_ = conv_geometry(x.shape, kh, kw, stride, padding, dilation)
    N, G = x.shape[0], groups
    dtype = np.result_type(x, w)
    w = w.astype(dtype, copy=False)
    b = None if b is None else np.asarray(b, dtype=dtype)
    L = H_out * W_out
    out = np.empty((N, G, o_g, L), dtype=dtype)

    def chunk(lo, hi):                               # samples [lo, hi)
        _grouped_conv2d_forward_chunk(x[lo:hi], w, b, out[lo:hi], stride, padding, dilation, G)

    map_chunks(chunk, N, items_per_chunk(N, G * c_g * kh * kw * L * dtype.itemsize))
    return out.reshape(N, C_out, H_out, W_out)


def _grouped_conv2d_backward_chunk(dout: np.ndarray, x: np.ndarray, w: np.ndarray, dx: np.ndarray | None,
                                   stride, padding, dilation, groups: int) -> np.ndarray:
    """The grouped backward of one chunk of samples: its share of dw, and its dx when asked.

    dout: (B, G, C_out/G, H_out·W_out) and w: (C_out, C_in/G, kh, kw), in one dtype;
    x: (B, C_in, H, W); dx: None, or the chunk's (B, C_in, H, W) slice of the input gradient, to
    fill with ``col2im(W3ᵀ @ d4)`` (the (B, G, K_g, L) product viewed as (B, C_in·kh·kw, L)).
    Returns ``dW3 = Σ_n d4_n @ cols_nᵀ`` over the chunk — one weight gradient per group —
    reshaped to w's shape (views as in :func:`_grouped_conv2d_forward_chunk`).
    """
    # BEGIN SOLUTION the chunk's dW3 from the grouped views of dout and the columns; when dx is given, col2im of W3ᵀ @ d4 into it
    C_out, c_g, kh, kw = w.shape
    B, G, o_g, L = dout.shape
    K_g = c_g * kh * kw
    cols = im2col(x, kh, kw, stride, padding, dilation).reshape(B, G, K_g, L)
    dW3 = np.matmul(dout, cols.transpose(0, 1, 3, 2)).sum(axis=0)                # (G, o_g, K_g)
    if dx is not None:
        dcols = np.matmul(w.reshape(G, o_g, K_g).transpose(0, 2, 1), dout)        # (B, G, K_g, L)
        dx[...] = col2im(dcols.reshape(B, G * K_g, L), dx.shape, kh, kw, stride, padding, dilation)
    return dW3.reshape(w.shape)
    # END SOLUTION


def grouped_conv2d_backward(dout: np.ndarray, x: np.ndarray, w: np.ndarray, stride=1, padding=0,
                            dilation=1, groups: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`grouped_conv2d_forward`.

    dout: (N, C_out, H_out, W_out); x: (N, C_in, H, W); w: (C_out, C_in/G, kh, kw).
    Returns ``(dx, dw, db)`` shaped like x, w and (C_out,), in ``np.result_type(dout, x, w)``.

    ``groups = 1`` is Topic 12's ``conv2d_backward``. Otherwise, with the grouped views of the
    forward (``W3: (G, C_out/G, K_g)``, ``cols: (B, G, K_g, L)``, ``d4: (B, G, C_out/G, L)``):

    * ``db = Σ_{n,i,j} dout``;
    * ``dW3 = Σ_n d4_n @ cols_nᵀ`` — one weight gradient per group;
    * ``dx``: for stride 1 (``input_grad_is_a_convolution``), the *grouped* convolution of
      ``dout`` with the kernel flipped in space and transposed **within each group** to
      (C_in, C_out/G, kh, kw), padding ``d·(k − 1) − p``; otherwise
      ``col2im(W3ᵀ @ d4)`` with the (B, G, K_g, L) result viewed as (B, C_in·kh·kw, L).

    Given: the checks, the dispatch of ``groups = 1``, and the chunks in parallel as in the
    forward, each calling :func:`_grouped_conv2d_backward_chunk` (with its slice of dx only
    when dx is not the stride-1 convolution); their shares of dw are added up.
    """
    dout = np.asarray(dout)
    x = np.asarray(x)
    w = np.asarray(w)
    c_g, o_g = check_grouped_args(x, w, None, groups)
    if groups == 1:
        return conv2d_backward(dout, x, w, stride, padding, dilation)
    C_out, _, kh, kw = w.shape
    H_out, W_out, (sh, sw), (ph, pw), (dh, dw_) = conv_geometry(x.shape, kh, kw, stride, padding, dilation)
    N, C_in, G = x.shape[0], x.shape[1], groups
    if dout.shape != (N, C_out, H_out, W_out):
        raise ValueError(f"dout must have the output's shape {(N, C_out, H_out, W_out)}, got {dout.shape}")
    dtype = np.result_type(dout, x, w)
    w = w.astype(dtype, copy=False)
    dout = dout.astype(dtype, copy=False)
    L = H_out * W_out
    d4 = dout.reshape(N, G, o_g, L)
    fast_dx = input_grad_is_a_convolution((sh, sw), (ph, pw), (dh, dw_), kh, kw)
    dx = None if fast_dx else np.empty(x.shape, dtype=dtype)

    def chunk(lo, hi):                             # samples [lo, hi): their share of dw (and dx)
        return _grouped_conv2d_backward_chunk(d4[lo:hi], x[lo:hi], w, None if dx is None else dx[lo:hi],
                                              stride, padding, dilation, G)

    dw = np.zeros(w.shape, dtype=dtype)
    for part in map_chunks(chunk, N, items_per_chunk(N, G * c_g * kh * kw * L * dtype.itemsize)):
        dw += part
    # TODO: db is a sum; for stride 1, dx is a grouped convolution of dout (use grouped_conv2d_forward).
    # BEGIN SOLUTION db by summing; for stride 1, dx by the grouped convolution of dout with the kernel flipped and transposed within each group
    db = d4.sum(axis=(0, 3)).reshape(C_out)
    if fast_dx:
        w_flip = (w.reshape(G, o_g, c_g, kh, kw).transpose(0, 2, 1, 3, 4)
                  .reshape(C_in, o_g, kh, kw)[:, :, ::-1, ::-1])
        dx = grouped_conv2d_forward(dout, w_flip, None, stride=1,
                                    padding=(dh * (kh - 1) - ph, dw_ * (kw - 1) - pw),
                                    dilation=(dh, dw_), groups=G)
    return dx, dw, db
    # END SOLUTION


# ------------------------------------------------------------------ depthwise convolution

def _depthwise_windows(x: np.ndarray, kh: int, kw: int, stride, padding, dilation) -> np.ndarray:
    """Every receptive field of every channel as a read-only strided view (given).

    x: (N, C, H, W) -> (N, C, H_out, W_out, kh, kw) with
    ``win[n, c, i, j, p, q] = xp[n, c, i·s_h + p·d_h, j·s_w + q·d_w]`` — the entries of
    ``im2col(x)``, not copied. (Pads x once when padding > 0.)
    """
    _, _, (sh, sw), (ph, pw), (dh, dw) = conv_geometry(x.shape, kh, kw, stride, padding, dilation)
    xp = pad_hw(x, (ph, pw))
    span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    return sliding_window_view(xp, span, step=(sh, sw))[..., ::dh, ::dw]


def _check_depthwise_args(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> int:
    """Shapes of a depthwise convolution (given): x (N, C, H, W), w (C·M, 1, kh, kw),
    b (C·M,) or None. Returns the channel multiplier M; raises ValueError otherwise."""
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"a depthwise convolution needs x (N, C, H, W) and w (C·M, 1, kh, kw), "
                         f"got x {x.shape} and w {w.shape}")
    C = x.shape[1]
    if w.shape[1] != 1 or w.shape[0] % C or w.shape[0] == 0:
        raise ValueError(f"depthwise weight must have shape (C·M, 1, kh, kw) with C = {C} input channels, "
                         f"got {w.shape}")
    if b is not None and np.shape(b) != (w.shape[0],):
        raise ValueError(f"bias must have shape ({w.shape[0]},), got {np.shape(b)}")
    return w.shape[0] // C


def depthwise_conv2d_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride=1,
                             padding=0, dilation=1) -> np.ndarray:
    """Depthwise convolution: the numbers of ``grouped_conv2d_forward(x, w, b, ..., groups=C)``,
    without the im2col copy.

    x: (N, C, H, W); w: (C·M, 1, kh, kw) (M = channel multiplier); b: (C·M,) or None.
    Returns out: (N, C·M, H_out, W_out) in ``np.result_type(x, w)`` with::

        out[n, c·M + m, i, j] = b[c·M + m] + Σ_{p,q} w[c·M + m, 0, p, q] · win[n, c, i, j, p, q]

    (``win`` from ``_depthwise_windows``). One ``np.einsum`` over the strided view — no Python
    loop over pixels or channels, and no im2col copy: the only new array is the output.
    Pass ``optimize=True`` to einsum: it picks a much faster loop order here.
    """
    x = np.asarray(x)
    w = np.asarray(w)
    M = _check_depthwise_args(x, w, b)
    # TODO: view w as (C, M, kh, kw); einsum "nchwpq,cmpq->ncmhw"; reshape to (N, C·M, H_out, W_out).
    # BEGIN SOLUTION einsum of the strided windows with the (C, M, kh, kw) kernels; reshape; add the bias
    N, C = x.shape[:2]
    _, _, kh, kw = w.shape
    dtype = np.result_type(x, w)
    win = _depthwise_windows(x.astype(dtype, copy=False), kh, kw, stride, padding, dilation)
    w4 = w.reshape(C, M, kh, kw).astype(dtype, copy=False)
    out = np.einsum("nchwpq,cmpq->ncmhw", win, w4, optimize=True)
    out = np.ascontiguousarray(out).reshape(N, C * M, *win.shape[2:4])
    if b is not None:
        out += np.asarray(b, dtype=dtype)[:, None, None]
    return out
    # END SOLUTION


def depthwise_conv2d_backward(dout: np.ndarray, x: np.ndarray, w: np.ndarray, stride=1, padding=0,
                              dilation=1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`depthwise_conv2d_forward`, with the same window-and-einsum tools.

    dout: (N, C·M, H_out, W_out); x: (N, C, H, W); w: (C·M, 1, kh, kw).
    Returns ``(dx, dw, db)`` shaped like x, w and (C·M,), in ``np.result_type(dout, x, w)``.
    With ``d5 = dout`` viewed as (N, C, M, H_out, W_out), ``w4 = w`` as (C, M, kh, kw) and
    ``win`` the windows of x:

    * ``db[c·M + m] = Σ_{n,i,j} dout[n, c·M + m, i, j]``;
    * ``dw4[:, :, p, q] = einsum("nchw,ncmhw->cm", win[..., p, q], d5)`` — one einsum per kernel
      tap (a loop over the kh·kw taps, never over pixels);
    * ``dx``, stride 1 (``input_grad_is_a_convolution``): the depthwise convolution (this
      module's forward, multiplier 1) of ``dout``'s C·M channels with every kernel flipped in
      space, padding ``d·(k − 1) − p`` and the same dilation, then summed over the M outputs of
      each input channel (a (N, C, M, H, W) view summed over axis 2);
    * ``dx``, otherwise: ``dwin = einsum("ncmhw,cmpq->ncpqhw", d5, w4)`` is the gradient of every
      window entry in im2col's layout, and ``col2im`` (Topic 12) adds it back onto the pixels.
    """
    dout = np.asarray(dout)
    x = np.asarray(x)
    w = np.asarray(w)
    M = _check_depthwise_args(x, w, None)
    # TODO: db is a sum; dw one einsum per tap; dx by the flipped-kernel depthwise convolution
    #       (stride 1, reusing the forward) or by col2im of the window gradient.
    # BEGIN SOLUTION db by summing; dw by one einsum per kernel tap; dx by the flipped depthwise convolution of dout (stride 1) or col2im
    N, C, H, W = x.shape
    _, _, kh, kw = w.shape
    H_out, W_out, (sh, sw), (ph, pw), (dh, dw_) = conv_geometry(x.shape, kh, kw, stride, padding, dilation)
    if dout.shape != (N, C * M, H_out, W_out):
        raise ValueError(f"dout must have the output's shape {(N, C * M, H_out, W_out)}, got {dout.shape}")
    dtype = np.result_type(dout, x, w)
    dout = dout.astype(dtype, copy=False)
    d5 = dout.reshape(N, C, M, H_out, W_out)
    w4 = w.reshape(C, M, kh, kw).astype(dtype, copy=False)
    db = d5.sum(axis=(0, 3, 4)).reshape(C * M)
    win = _depthwise_windows(x.astype(dtype, copy=False), kh, kw, stride, padding, dilation)
    dw4 = np.empty((C, M, kh, kw), dtype=dtype)
    for p in range(kh):
        for q in range(kw):
            dw4[:, :, p, q] = np.einsum("nchw,ncmhw->cm", win[..., p, q], d5)
    if input_grad_is_a_convolution((sh, sw), (ph, pw), (dh, dw_), kh, kw):
        pad = (dh * (kh - 1) - ph, dw_ * (kw - 1) - pw)
        dx = depthwise_conv2d_forward(dout, w[:, :, ::-1, ::-1].astype(dtype, copy=False), None, 1, pad, (dh, dw_))
        if M > 1:
            dx = dx.reshape(N, C, M, H, W).sum(axis=2)
    else:
        dwin = np.einsum("ncmhw,cmpq->ncpqhw", d5, w4, optimize=True)
        dcols = np.ascontiguousarray(dwin).reshape(N, C * kh * kw, H_out * W_out)
        dx = col2im(dcols, x.shape, kh, kw, stride, padding, dilation)
    return dx, dw4.reshape(w.shape), db
    # END SOLUTION


# ------------------------------------------------------------------ pointwise (1x1) convolution

def _check_pointwise_args(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> None:
    """Shapes of a 1×1 convolution (given): x (N, C_in, H, W), w (C_out, C_in, 1, 1), b (C_out,)."""
    if x.ndim != 4 or w.ndim != 4 or w.shape[2:] != (1, 1) or w.shape[1] != x.shape[1]:
        raise ValueError(f"a pointwise convolution needs x (N, C_in, H, W) and w (C_out, C_in, 1, 1), "
                         f"got x {x.shape} and w {w.shape}")
    if b is not None and np.shape(b) != (w.shape[0],):
        raise ValueError(f"bias must have shape ({w.shape[0]},), got {np.shape(b)}")


def pointwise_conv2d_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None,
                             stride=1) -> np.ndarray:
    """1×1 convolution as one matrix product per sample.

    x: (N, C_in, H, W); w: (C_out, C_in, 1, 1); b: (C_out,) or None; stride: int or pair.
    Returns out: (N, C_out, H_out, W_out) in ``np.result_type(x, w)``, where the stride keeps
    every s-th pixel (``H_out = (H − 1) // s_h + 1``) and::

        out_n = W2 @ xs_n + b        W2 = w.reshape(C_out, C_in),  xs_n: (C_in, H_out·W_out)

    A 1×1 kernel's im2col is the input itself, so there is nothing to copy (for stride 1).
    """
    x = np.asarray(x)
    w = np.asarray(w)
    _check_pointwise_args(x, w, b)
    sh, sw = pair(stride, "stride")
    # TODO: subsample with x[:, :, ::s_h, ::s_w]; np.matmul of (C_out, C_in) with (N, C_in, L).
    # BEGIN SOLUTION subsample by the stride, one matmul of the (C_out, C_in) weight with (N, C_in, H_out*W_out), add the bias
    if sh < 1 or sw < 1:
        raise ValueError(f"stride must be >= 1, got {(sh, sw)}")
    dtype = np.result_type(x, w)
    xs = x[:, :, ::sh, ::sw]
    N, C_in, H_out, W_out = xs.shape
    C_out = w.shape[0]
    W2 = w.reshape(C_out, C_in).astype(dtype, copy=False)
    out = np.matmul(W2, xs.reshape(N, C_in, H_out * W_out).astype(dtype, copy=False))
    if b is not None:
        out += np.asarray(b, dtype=dtype)[:, None]
    return out.reshape(N, C_out, H_out, W_out)
    # END SOLUTION


def pointwise_conv2d_backward(dout: np.ndarray, x: np.ndarray, w: np.ndarray,
                              stride=1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`pointwise_conv2d_forward` (Topic 06's matrix-product gradients).

    dout: (N, C_out, H_out, W_out); x: (N, C_in, H, W); w: (C_out, C_in, 1, 1).
    Returns ``(dx, dw, db)`` shaped like x, w and (C_out,), in ``np.result_type(dout, x, w)``:
    ``dW2 = Σ_n dout_n @ xs_nᵀ``, ``dxs_n = W2ᵀ @ dout_n`` (scattered back to every s-th pixel of
    a zero dx when the stride is > 1), ``db = Σ dout``.
    """
    dout = np.asarray(dout)
    x = np.asarray(x)
    w = np.asarray(w)
    _check_pointwise_args(x, w, None)
    sh, sw = pair(stride, "stride")
    # BEGIN SOLUTION db by summing; dW2 = sum over samples of dout_n @ xs_n^T; dx = W2^T @ dout_n placed at the strided pixels
    dtype = np.result_type(dout, x, w)
    xs = x[:, :, ::sh, ::sw]
    N, C_in, H_out, W_out = xs.shape
    C_out = w.shape[0]
    if dout.shape != (N, C_out, H_out, W_out):
        raise ValueError(f"dout must have the output's shape {(N, C_out, H_out, W_out)}, got {dout.shape}")
    L = H_out * W_out
    W2 = w.reshape(C_out, C_in).astype(dtype, copy=False)
    d3 = dout.reshape(N, C_out, L).astype(dtype, copy=False)
    x3 = xs.reshape(N, C_in, L).astype(dtype, copy=False)
    db = d3.sum(axis=(0, 2))
    dW2 = np.matmul(d3, x3.transpose(0, 2, 1)).sum(axis=0)
    dxs = np.matmul(W2.T, d3).reshape(N, C_in, H_out, W_out)
    if (sh, sw) == (1, 1):
        dx = dxs
    else:
        dx = np.zeros(x.shape, dtype=dtype)
        dx[:, :, ::sh, ::sw] = dxs
    return dx, dW2.reshape(w.shape), db
    # END SOLUTION


# ------------------------------------------------------------------ dilation arithmetic

def _per_layer(value, n: int, name: str) -> list[int]:
    """An int (the same for every layer) or a sequence of n ints -> a list of n ints (given)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return [int(value)] * n
    values = [int(v) for v in value]
    if len(values) != n:
        raise ValueError(f"{name} must be an int or have one entry per layer ({n}), got {len(values)}")
    return values


def receptive_field(kernel_sizes, dilations=1, strides=1) -> int:
    """Receptive field (along one axis) of one output pixel of a stack of convolutions.

    kernel_sizes: a sequence of ints, one per layer, first layer first; dilations, strides: an
    int for every layer or one int per layer. Layer l adds ``d_l·(k_l − 1)`` times the product of
    the strides of the layers before it (its "jump", in input pixels)::

        RF = 1 + Σ_l d_l·(k_l − 1)·Π_{i<l} s_i

    Examples: four 3×3 layers -> 9; 3×3 with dilations 1, 2, 4, 8 -> 31; two 3×3 layers
    with strides 2, 1 -> 7; ``receptive_field([])`` -> 1 (the identity).
    Raises ValueError for a kernel size, dilation or stride < 1.
    """
    kernel_sizes = [int(k) for k in kernel_sizes]
    n = len(kernel_sizes)
    dilations = _per_layer(dilations, n, "dilations")
    strides = _per_layer(strides, n, "strides")
    # TODO: keep a running jump (product of the strides so far); each layer adds d·(k − 1)·jump.
    # BEGIN SOLUTION validate; accumulate d*(k-1)*jump over the layers, updating the jump by each stride
    for name, values in (("kernel size", kernel_sizes), ("dilation", dilations), ("stride", strides)):
        if any(v < 1 for v in values):
            raise ValueError(f"every {name} must be >= 1, got {values}")
    rf, jump = 1, 1
    for k, d, s in zip(kernel_sizes, dilations, strides):
        rf += d * (k - 1) * jump
        jump *= s
    return rf
    # END SOLUTION


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    """The padding that keeps H_out = H at stride 1: ``d·(k − 1) / 2``.

    Raises ValueError when ``d·(k − 1)`` is odd (an even effective kernel has no centred
    "same" padding) or an argument is < 1. Example: kernel 3, dilation 4 -> 4.
    """
    # BEGIN SOLUTION validate; return d*(k-1)//2, refusing an odd d*(k-1)
    if kernel_size < 1 or dilation < 1:
        raise ValueError(f"kernel_size and dilation must be >= 1, got {kernel_size} and {dilation}")
    span = dilation * (kernel_size - 1)
    if span % 2:
        raise ValueError(f"no symmetric 'same' padding: the dilated kernel spans {span + 1} pixels "
                         f"(kernel {kernel_size}, dilation {dilation}), an even number")
    return span // 2
    # END SOLUTION


# ------------------------------------------------------------------ parameter and multiply-add counts

def conv2d_params(in_channels: int, out_channels: int, kernel_size, groups: int = 1,
                  bias: bool = True) -> int:
    """Number of parameters of a (grouped) convolution, as ``torch.nn.Conv2d`` counts them:
    ``C_out · (C_in / G) · kh · kw`` (+ ``C_out`` with a bias).

    kernel_size: int or (kh, kw). Raises ValueError when G does not divide both channel counts
    (message contains ``"divisible"``). Example: 3×3, 64 -> 128: 73 728 + 128 = 73 856.
    """
    kh, kw = pair(kernel_size, "kernel_size")
    # BEGIN SOLUTION check divisibility; weight count plus the bias
    for name, c in (("in_channels", in_channels), ("out_channels", out_channels)):
        if groups < 1 or c % groups:
            raise ValueError(f"{name} = {c} is not divisible by groups = {groups}")
    return out_channels * (in_channels // groups) * kh * kw + (out_channels if bias else 0)
    # END SOLUTION


def conv2d_macs(in_channels: int, out_channels: int, kernel_size, out_size, groups: int = 1) -> int:
    """Multiply-adds of one sample through a (grouped) convolution:
    ``C_out · (C_in / G) · kh · kw · H_out · W_out`` — one per weight per output position (the
    bias adds are not counted; FLOPs ≈ 2 × MACs).

    kernel_size, out_size: int or pair (out_size is the *output's* (H_out, W_out)).
    Raises ValueError when G does not divide both channel counts.
    Example: 3×3, 64 -> 128 on a 32×32 output: 75 497 472.
    """
    kh, kw = pair(kernel_size, "kernel_size")
    ho, wo = pair(out_size, "out_size")
    # BEGIN SOLUTION the weight count (without bias) times the number of output positions
    return conv2d_params(in_channels, out_channels, (kh, kw), groups, bias=False) * ho * wo
    # END SOLUTION


def depthwise_separable_params(in_channels: int, out_channels: int, kernel_size, multiplier: int = 1,
                               bias: bool = True) -> int:
    """Parameters of a depthwise (C_in -> C_in·M, groups = C_in) then pointwise (C_in·M -> C_out)
    pair, biases in both when ``bias``. Example: 3×3, 64 -> 128, M = 1:
    576 + 64 + 8 192 + 128 = 8 960."""
    # BEGIN SOLUTION sum of the depthwise and the pointwise conv2d_params
    mid = in_channels * multiplier
    return (conv2d_params(in_channels, mid, kernel_size, groups=in_channels, bias=bias)
            + conv2d_params(mid, out_channels, 1, bias=bias))
    # END SOLUTION


def depthwise_separable_macs(in_channels: int, out_channels: int, kernel_size, out_size,
                             multiplier: int = 1) -> int:
    """Multiply-adds of one sample through a depthwise-separable pair (both layers produce
    ``out_size``: any stride is in the depthwise layer). Example: 3×3, 64 -> 128, 32×32 output:
    (576 + 8 192) · 1024 = 8 978 432."""
    # BEGIN SOLUTION sum of the depthwise and the pointwise conv2d_macs
    mid = in_channels * multiplier
    return (conv2d_macs(in_channels, mid, kernel_size, out_size, groups=in_channels)
            + conv2d_macs(mid, out_channels, 1, out_size))
    # END SOLUTION


def compare_conv_costs(in_channels: int, out_channels: int, kernel_size, out_size,
                       groups: int = 4, bias: bool = False) -> list[dict]:
    """Parameters and multiply-adds of the ways to map C_in -> C_out channels with a k×k field.

    Returns one dict per row, in this order, each with keys ``name`` (str), ``params``,
    ``macs`` (ints, per sample) and ``params_ratio``, ``macs_ratio`` (float: the standard
    convolution's count divided by this row's, so the standard row has 1.0):

    1. ``"standard"``: a k×k convolution, groups 1;
    2. ``"grouped"``: the same with ``groups``;
    3. ``"depthwise-separable"``: k×k depthwise (multiplier 1) then 1×1 pointwise.

    Example: 3×3, 64 -> 128, 32×32, no bias: ratios 1, 4 and 8.41 for both columns.
    """
    # BEGIN SOLUTION build the three rows from the counting functions; ratios are standard / row
    rows = [
        ("standard", conv2d_params(in_channels, out_channels, kernel_size, 1, bias),
         conv2d_macs(in_channels, out_channels, kernel_size, out_size, 1)),
        ("grouped", conv2d_params(in_channels, out_channels, kernel_size, groups, bias),
         conv2d_macs(in_channels, out_channels, kernel_size, out_size, groups)),
        ("depthwise-separable", depthwise_separable_params(in_channels, out_channels, kernel_size, 1, bias),
         depthwise_separable_macs(in_channels, out_channels, kernel_size, out_size, 1)),
    ]
    p0, m0 = rows[0][1], rows[0][2]
    return [dict(name=name, params=p, macs=m, params_ratio=p0 / p, macs_ratio=m0 / m)
            for name, p, m in rows]
    # END SOLUTION


def format_cost_table(rows: list[dict]) -> str:
    """The rows of :func:`compare_conv_costs` as a Markdown table (given)."""
    lines = ["| convolution | parameters | MACs / sample | FLOPs / sample | fewer than standard |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['params']:,} | {r['macs']:,} | {2 * r['macs']:,} | "
                     f"{r['macs_ratio']:.2f}× |")
    return "\n".join(lines)


# ------------------------------------------------------------------ layers

class GroupedConv2d(Layer):
    """A grouped convolution layer, like ``torch.nn.Conv2d(..., groups=groups)``.

    x: (N, in_channels, H, W) -> y: (N, out_channels, H_out, W_out).
    Parameters: ``W``: (out_channels, in_channels/groups, kh, kw); ``b``: (out_channels,) or None.
    He-normal initialisation: ``kaiming_normal(shape, mode="fan_in", nonlinearity="relu")`` —
    fan_in = (in_channels/groups)·kh·kw, the inputs one output actually sees; ``b = 0``.
    Raises ValueError (message contains ``"divisible"``) when groups does not divide both
    channel counts. ``forward`` caches x; ``backward`` returns dx and accumulates W.grad, b.grad.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True,
                 rng: np.random.Generator | int | None = None, dtype=np.float32):
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"GroupedConv2d needs positive channel counts, got ({in_channels}, {out_channels})")
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), groups
        self.kernel_size, self.stride, self.padding, self.dilation = layer_geometry(
            "GroupedConv2d", kernel_size, stride, padding, dilation)
        rng = np.random.default_rng(rng)
        self.x: np.ndarray | None = None
        # BEGIN SOLUTION check that groups divides both channel counts; create W (He-normal, (out, in/groups, kh, kw)) and b
        for name, c in (("in_channels", self.in_channels), ("out_channels", self.out_channels)):
            if groups < 1 or c % groups:
                raise ValueError(f"{name} = {c} is not divisible by groups = {groups}")
        shape = (self.out_channels, self.in_channels // groups, *self.kernel_size)
        self.W = Parameter(kaiming_normal(shape, mode="fan_in", nonlinearity="relu", rng=rng, dtype=dtype),
                           name="W")
        self.b = Parameter(np.zeros(self.out_channels, dtype=dtype), name="b") if bias else None
        # END SOLUTION

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"groups={self.groups}, bias={self.b is not None}")

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, in_channels, H, W) -> (N, out_channels, H_out, W_out). Caches x."""
        # BEGIN SOLUTION cache x; grouped_conv2d_forward with the layer's parameters and geometry
        self.x = x
        return grouped_conv2d_forward(x, self.W.data, None if self.b is None else self.b.data,
                                      self.stride, self.padding, self.dilation, self.groups)
        # END SOLUTION

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy: (N, out_channels, H_out, W_out) -> dx; accumulates W.grad and b.grad."""
        if self.x is None:
            raise RuntimeError("GroupedConv2d.backward called before forward")
        # BEGIN SOLUTION grouped_conv2d_backward with the cached x; accumulate dW (and db); return dx
        dx, dW, db = grouped_conv2d_backward(dy, self.x, self.W.data, self.stride, self.padding,
                                             self.dilation, self.groups)
        self.W.accumulate_grad(dW)
        if self.b is not None:
            self.b.accumulate_grad(db)
        return dx
        # END SOLUTION


class DepthwiseConv2d(Layer):
    """A depthwise convolution layer: ``torch.nn.Conv2d(C, C·M, k, groups=C)``, on the fast path.

    x: (N, channels, H, W) -> y: (N, channels·multiplier, H_out, W_out).
    Parameters: ``W``: (channels·multiplier, 1, kh, kw); ``b``: (channels·multiplier,) or None.
    He-normal initialisation (fan_in = kh·kw); ``b = 0``. Forward caches x; backward returns dx
    and accumulates W.grad, b.grad.

    ``method`` picks the implementation (same numbers): ``"gemm"`` (default) runs
    ``grouped_conv2d_forward/backward`` with ``groups = channels`` — im2col columns and one
    batched product, the faster of the two in NumPy; ``"einsum"`` runs the copy-free
    ``depthwise_conv2d_forward/backward``.
    """

    def __init__(self, channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 multiplier: int = 1, bias: bool = True,
                 rng: np.random.Generator | int | None = None, dtype=np.float32, method: str = "gemm"):
        if channels < 1 or multiplier < 1:
            raise ValueError(f"DepthwiseConv2d needs channels >= 1 and multiplier >= 1, "
                             f"got {channels} and {multiplier}")
        if method not in ("gemm", "einsum"):
            raise ValueError(f"method must be 'gemm' or 'einsum', got {method!r}")
        self.channels, self.multiplier, self.method = int(channels), int(multiplier), method
        self.kernel_size, self.stride, self.padding, self.dilation = layer_geometry(
            "DepthwiseConv2d", kernel_size, stride, padding, dilation)
        rng = np.random.default_rng(rng)
        self.x: np.ndarray | None = None
        # BEGIN SOLUTION create W (He-normal, (channels*multiplier, 1, kh, kw)) and b (zeros, or None)
        c_out = self.channels * self.multiplier
        self.W = Parameter(kaiming_normal((c_out, 1, *self.kernel_size), mode="fan_in", nonlinearity="relu",
                                          rng=rng, dtype=dtype), name="W")
        self.b = Parameter(np.zeros(c_out, dtype=dtype), name="b") if bias else None
        # END SOLUTION

    def extra_repr(self) -> str:
        return (f"{self.channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, multiplier={self.multiplier}, "
                f"bias={self.b is not None}, method={self.method!r}")

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, channels, H, W) -> (N, channels·multiplier, H_out, W_out). Caches x."""
        # BEGIN SOLUTION cache x; grouped_conv2d_forward with groups = channels ("gemm") or depthwise_conv2d_forward ("einsum")
        self.x = x
        b = None if self.b is None else self.b.data
        if self.method == "einsum":
            return depthwise_conv2d_forward(x, self.W.data, b, self.stride, self.padding, self.dilation)
        return grouped_conv2d_forward(x, self.W.data, b, self.stride, self.padding, self.dilation,
                                      groups=self.channels)
        # END SOLUTION

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy: (N, channels·multiplier, H_out, W_out) -> dx; accumulates W.grad and b.grad."""
        if self.x is None:
            raise RuntimeError("DepthwiseConv2d.backward called before forward")
        # BEGIN SOLUTION the backward of the chosen method with the cached x; accumulate dW (and db); return dx
        if self.method == "einsum":
            dx, dW, db = depthwise_conv2d_backward(dy, self.x, self.W.data, self.stride, self.padding,
                                                   self.dilation)
        else:
            dx, dW, db = grouped_conv2d_backward(dy, self.x, self.W.data, self.stride, self.padding,
                                                 self.dilation, groups=self.channels)
        self.W.accumulate_grad(dW)
        if self.b is not None:
            self.b.accumulate_grad(db)
        return dx
        # END SOLUTION


class PointwiseConv2d(Layer):
    """A 1×1 convolution layer: ``torch.nn.Conv2d(C_in, C_out, 1, stride=stride)``.

    x: (N, in_channels, H, W) -> y: (N, out_channels, H_out, W_out).
    Parameters: ``W``: (out_channels, in_channels, 1, 1); ``b``: (out_channels,) or None.
    He-normal initialisation (fan_in = in_channels); ``b = 0``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride=1, bias: bool = True,
                 rng: np.random.Generator | int | None = None, dtype=np.float32):
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"PointwiseConv2d needs positive channel counts, got ({in_channels}, {out_channels})")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        _, self.stride, _, _ = layer_geometry("PointwiseConv2d", 1, stride, 0, 1)
        rng = np.random.default_rng(rng)
        self.x: np.ndarray | None = None
        # BEGIN SOLUTION create W (He-normal, (out, in, 1, 1)) and b (zeros, or None)
        shape = (self.out_channels, self.in_channels, 1, 1)
        self.W = Parameter(kaiming_normal(shape, mode="fan_in", nonlinearity="relu", rng=rng, dtype=dtype),
                           name="W")
        self.b = Parameter(np.zeros(self.out_channels, dtype=dtype), name="b") if bias else None
        # END SOLUTION

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}, bias={self.b is not None}"

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, in_channels, H, W) -> (N, out_channels, H_out, W_out). Caches x."""
        # BEGIN SOLUTION cache x; pointwise_conv2d_forward
        self.x = x
        return pointwise_conv2d_forward(x, self.W.data, None if self.b is None else self.b.data, self.stride)
        # END SOLUTION

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy: (N, out_channels, H_out, W_out) -> dx; accumulates W.grad and b.grad."""
        if self.x is None:
            raise RuntimeError("PointwiseConv2d.backward called before forward")
        # BEGIN SOLUTION pointwise_conv2d_backward with the cached x; accumulate dW (and db); return dx
        dx, dW, db = pointwise_conv2d_backward(dy, self.x, self.W.data, self.stride)
        self.W.accumulate_grad(dW)
        if self.b is not None:
            self.b.accumulate_grad(db)
        return dx
        # END SOLUTION


class DepthwiseSeparableConv2d(Layer):
    """Depthwise k×k (channels -> channels·multiplier, with the stride, padding and dilation)
    then pointwise 1×1 (channels·multiplier -> out_channels): MobileNet's building block, without
    the normalisation and activation that a network puts after each of the two.

    x: (N, in_channels, H, W) -> y: (N, out_channels, H_out, W_out).
    Sub-layers ``depthwise`` (a :class:`DepthwiseConv2d`) and ``pointwise`` (a
    :class:`PointwiseConv2d`), created in that order from the same ``rng``; ``bias`` applies to
    both. Parameters (in order): ``depthwise.W``, ``depthwise.b``, ``pointwise.W``, ``pointwise.b``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, multiplier: int = 1, bias: bool = True,
                 rng: np.random.Generator | int | None = None, dtype=np.float32):
        rng = np.random.default_rng(rng)
        # BEGIN SOLUTION create self.depthwise then self.pointwise from the same rng
        self.depthwise = DepthwiseConv2d(in_channels, kernel_size, stride, padding, dilation, multiplier,
                                         bias=bias, rng=rng, dtype=dtype)
        self.pointwise = PointwiseConv2d(in_channels * multiplier, out_channels, bias=bias, rng=rng,
                                         dtype=dtype)
        # END SOLUTION

    def extra_repr(self) -> str:
        return f"{self.depthwise!r}, {self.pointwise!r}"

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, in_channels, H, W) -> (N, out_channels, H_out, W_out)."""
        # BEGIN SOLUTION depthwise, then pointwise
        return self.pointwise.forward(self.depthwise.forward(x))
        # END SOLUTION

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy: (N, out_channels, H_out, W_out) -> dx: (N, in_channels, H, W); accumulates the
        gradients of both sub-layers."""
        # BEGIN SOLUTION backward through pointwise, then depthwise
        return self.depthwise.backward(self.pointwise.backward(dy))
        # END SOLUTION
