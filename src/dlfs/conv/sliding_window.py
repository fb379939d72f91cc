"""Topic 11 — Conv2D as a sliding window: the readable definition, forward and backward.

A 2-D convolution layer (a cross-correlation, as in every deep-learning library) slides a
``(C_in, kh, kw)`` kernel over the zero-padded input and takes a dot product at every stop::

    out[n, o, i, j] = b[o] + Σ_{c, p, q} w[o, c, p, q] · xp[n, c, i·s_h + p·d_h, j·s_w + q·d_w]

with ``xp`` the input padded by ``padding`` zeros on each side, ``s`` the stride and ``d`` the
dilation (the gap between kernel taps). Shapes:

    x: (N, C_in, H, W)    w: (C_out, C_in, kh, kw)    b: (C_out,)
    out: (N, C_out, H_out, W_out),  H_out = (H + 2·p_h − d_h·(kh − 1) − 1) // s_h + 1

The functions here loop in Python over the output positions ``(i, j)`` and are vectorised over
the batch and the channels (one ``np.tensordot`` per position). They are slow on purpose: they
are the definition that Topic 12's fast version is tested against.

- ``conv_output_size``: the output-size arithmetic, with a clear error for empty outputs
- ``conv2d_forward_naive``: the forward pass
- ``conv2d_backward_naive``: ``dx``, ``dw``, ``db`` from ``dout``

Given helpers: ``_pair`` (an int or an (h, w) pair -> a pair) and ``pad_hw`` (zero padding of the
two spatial axes).
"""

from __future__ import annotations

import operator

import numpy as np


def _pair(value, name: str = "value") -> tuple[int, int]:
    """An int or an (h, w) pair of ints -> (h, w) (given; no range checks).

    Raises TypeError for anything else (floats, strings, sequences of the wrong length).
    """
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        v = operator.index(value)
        return v, v
    try:
        h, w = value
        return operator.index(h), operator.index(w)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an int or a pair of ints (h, w), got {value!r}") from None


def pad_hw(x: np.ndarray, padding) -> np.ndarray:
    """Zero-pad the last two axes of ``x`` (given).

    x: (..., H, W); padding: int or (p_h, p_w), >= 0. Returns (..., H + 2·p_h, W + 2·p_w) in x's
    dtype; returns ``x`` itself (no copy) when there is no padding.
    """
    ph, pw = _pair(padding, "padding")
    if ph < 0 or pw < 0:
        raise ValueError(f"padding must be >= 0, got {(ph, pw)}")
    if ph == 0 and pw == 0:
        return x
    out = np.zeros(x.shape[:-2] + (x.shape[-2] + 2 * ph, x.shape[-1] + 2 * pw), dtype=x.dtype)
    out[..., ph:ph + x.shape[-2], pw:pw + x.shape[-1]] = x
    return out


def _check_conv_args(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> None:
    """Shapes must be x (N, C_in, H, W), w (C_out, C_in, kh, kw), b (C_out,) or None (given)."""
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"conv2d needs x (N, C_in, H, W) and w (C_out, C_in, kh, kw), "
                         f"got x {x.shape} and w {w.shape}")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"x has {x.shape[1]} channels but w expects C_in = {w.shape[1]} "
                         f"(x {x.shape}, w {w.shape})")
    if b is not None and np.shape(b) != (w.shape[0],):
        raise ValueError(f"b must have shape ({w.shape[0]},) (one bias per output channel), "
                         f"got {np.shape(b)}")


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1) -> int:
    """Number of output positions along one axis: ``(size + 2·padding − dilation·(kernel − 1) − 1)
    // stride + 1``.

    size >= 1, kernel >= 1, stride >= 1, padding >= 0, dilation >= 1 (plain ints); raises
    ValueError naming the bad argument otherwise. A kernel with dilation d spans
    ``dilation·(kernel − 1) + 1`` input positions; when that span is larger than the padded size
    ``size + 2·padding`` there is no valid position and a ValueError is raised whose message
    gives both numbers (the padded size and the dilated kernel span).
    Example: size 32, kernel 3, stride 2, padding 1 -> 16.
    """
    # TODO: validate each argument, compute the dilated kernel span, refuse an empty output.
    # BEGIN SOLUTION validate the arguments and return the output size (ValueError when the output would be empty)
    for name, value, low in (("size", size, 1), ("kernel", kernel, 1), ("stride", stride, 1),
                             ("padding", padding, 0), ("dilation", dilation, 1)):
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
    span = dilation * (kernel - 1) + 1
    padded = size + 2 * padding
    if span > padded:
        raise ValueError(
            f"empty output: the kernel spans {span} positions (kernel {kernel}, dilation {dilation}) "
            f"but the padded input has only {padded} (size {size} + 2 x padding {padding})"
        )
    return (padded - span) // stride + 1
    # END SOLUTION


def conv2d_forward_naive(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None,
                         stride=1, padding=0, dilation=1) -> np.ndarray:
    """2-D convolution (cross-correlation) with explicit loops over the output positions.

    x: (N, C_in, H, W); w: (C_out, C_in, kh, kw); b: (C_out,) or None;
    stride, padding, dilation: an int or an (h, w) pair.
    Returns out: (N, C_out, H_out, W_out) in ``np.result_type(x, w)`` with
    ``out[n, o, i, j] = b[o] + Σ_{c,p,q} w[o, c, p, q] · xp[n, c, i·s_h + p·d_h, j·s_w + q·d_w]``
    (``xp`` = x zero-padded by ``padding`` on each side of H and W).
    """
    x = np.asarray(x)
    w = np.asarray(w)
    _check_conv_args(x, w, b)
    sh, sw = _pair(stride, "stride")
    ph, pw = _pair(padding, "padding")
    dh, dw = _pair(dilation, "dilation")
    # TODO: pad once (pad_hw), then for every output position (i, j) take the (N, C_in, kh, kw)
    #       patch with a strided slice and contract it with w over (C_in, kh, kw).
    # BEGIN SOLUTION loop over output positions (i, j); each is a tensordot of the dilated patch with w
    N, _, H, W = x.shape
    C_out, _, kh, kw = w.shape
    H_out = conv_output_size(H, kh, sh, ph, dh)
    W_out = conv_output_size(W, kw, sw, pw, dw)
    xp = pad_hw(x, (ph, pw))
    out = np.empty((N, C_out, H_out, W_out), dtype=np.result_type(x, w))
    for i in range(H_out):
        r0 = i * sh
        rows = slice(r0, r0 + dh * (kh - 1) + 1, dh)
        for j in range(W_out):
            c0 = j * sw
            cols = slice(c0, c0 + dw * (kw - 1) + 1, dw)
            patch = xp[:, :, rows, cols]                                  # (N, C_in, kh, kw)
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))   # (N, C_out)
    if b is not None:
        out += np.asarray(b).reshape(1, C_out, 1, 1)
    return out
    # END SOLUTION


def conv2d_backward_naive(dout: np.ndarray, x: np.ndarray, w: np.ndarray, stride=1, padding=0,
                          dilation=1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`conv2d_forward_naive` given ``dout = dL/dout``, with the same loops.

    dout: (N, C_out, H_out, W_out); x: (N, C_in, H, W); w: (C_out, C_in, kh, kw);
    stride, padding, dilation as in the forward. Returns ``(dx, dw, db)``:

    * ``dx``: (N, C_in, H, W) — every output position sends ``dout[n, :, i, j] · w`` back to the
      patch it read (overlapping patches add up); padding positions are then cropped away;
    * ``dw``: (C_out, C_in, kh, kw) — ``Σ_{n,i,j} dout[n, o, i, j] · patch(n, i, j)``;
    * ``db``: (C_out,) — ``Σ_{n,i,j} dout[n, o, i, j]``.
    """
    dout = np.asarray(dout)
    x = np.asarray(x)
    w = np.asarray(w)
    _check_conv_args(x, w, None)
    sh, sw = _pair(stride, "stride")
    ph, pw = _pair(padding, "padding")
    dh, dw_ = _pair(dilation, "dilation")
    # TODO: mirror the forward loops: the patch slice is read for dw and *accumulated into*
    #       (+=) for dx, on the padded input; crop the padding off dx at the end.
    # BEGIN SOLUTION loop over output positions; accumulate dw from each patch and scatter dout·w into the padded dx
    N, _, H, W = x.shape
    C_out, _, kh, kw = w.shape
    H_out = conv_output_size(H, kh, sh, ph, dh)
    W_out = conv_output_size(W, kw, sw, pw, dw_)
    if dout.shape != (N, C_out, H_out, W_out):
        raise ValueError(f"dout must have the output's shape {(N, C_out, H_out, W_out)}, got {dout.shape}")
    dtype = np.result_type(dout, x, w)
    xp = pad_hw(x, (ph, pw))
    dxp = np.zeros(xp.shape, dtype=dtype)
    dw = np.zeros(w.shape, dtype=dtype)
    for i in range(H_out):
        r0 = i * sh
        rows = slice(r0, r0 + dh * (kh - 1) + 1, dh)
        for j in range(W_out):
            c0 = j * sw
            cols = slice(c0, c0 + dw_ * (kw - 1) + 1, dw_)
            g = dout[:, :, i, j]                                          # (N, C_out)
            dw += np.tensordot(g, xp[:, :, rows, cols], axes=([0], [0]))  # (C_out, C_in, kh, kw)
            dxp[:, :, rows, cols] += np.tensordot(g, w, axes=([1], [0]))  # (N, C_in, kh, kw)
    db = dout.sum(axis=(0, 2, 3)).astype(dtype, copy=False)
    dx = dxp[:, :, ph:ph + H, pw:pw + W]
    return np.ascontiguousarray(dx), dw, db
    # END SOLUTION
