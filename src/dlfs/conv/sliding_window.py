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

- ``conv2d_forward_naive``: the forward pass
- ``conv2d_backward_naive``: ``dx``, ``dw``, ``db`` from ``dout``

The geometry lives in ``dlfs.conv.geometry``, this topic's second exercise file:
``conv_output_size`` (the output-size arithmetic, with a clear error for empty outputs) is
yours; ``pair`` (an int or an (h, w) pair -> a pair), ``pad_hw`` (zero padding of the two
spatial axes) and ``check_conv_args`` are given.
"""

from __future__ import annotations

import numpy as np

from dlfs.conv.geometry import check_conv_args, conv_output_size, pad_hw, pair


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
    check_conv_args(x, w, b)
    sh, sw = pair(stride, "stride")
    ph, pw = pair(padding, "padding")
    dh, dw = pair(dilation, "dilation")
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
    check_conv_args(x, w, None)
    sh, sw = pair(stride, "stride")
    ph, pw = pair(padding, "padding")
    dh, dw_ = pair(dilation, "dilation")
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
