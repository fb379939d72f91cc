"""Convolution geometry: sizes, padding and argument checks shared by every convolution and pool.

A kernel of size k with dilation d spans ``d·(k − 1) + 1`` input positions; sliding it with
stride s over an input of size n padded by p on each side gives

    n_out = (n + 2·p − d·(k − 1) − 1) // s + 1

positions along that axis (``conv_output_size``, Topic 11's first exercise; this module is
Topic 11's second exercise file, ``workspace/11-conv2d-sliding-window/geometry.py``). The
rest is given and used by Topics 11–15:

- ``pair``: an int or an (h, w) pair -> (h, w) (stride, padding, dilation may differ along H and W)
- ``pad_hw``: pad the two spatial axes (zeros, or any value: max pooling pads with −inf)
- ``check_conv_args``: the shapes x (N, C_in, H, W), w (C_out, C_in, kh, kw), b (C_out,)
- ``conv_geometry``: the output size and the (h, w) pairs of a convolution, checked
- ``layer_geometry``: a layer's kernel size, stride, padding and dilation as checked pairs
- ``input_grad_is_a_convolution``: when dx is a stride-1 convolution of dout (Topic 12)
"""

from __future__ import annotations

import operator

import numpy as np

__all__ = ["pair", "pad_hw", "check_conv_args", "conv_output_size", "conv_geometry",
           "layer_geometry", "input_grad_is_a_convolution"]


def pair(value, name: str = "value") -> tuple[int, int]:
    """An int or an (h, w) pair of ints -> (h, w) (no range checks).

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


def pad_hw(x: np.ndarray, padding, value: float = 0.0) -> np.ndarray:
    """Pad the last two axes of ``x`` with ``value`` (zeros by default).

    x: (..., H, W); padding: int or (p_h, p_w), >= 0. Returns (..., H + 2·p_h, W + 2·p_w) in x's
    dtype; returns ``x`` itself (no copy) when there is no padding.
    """
    ph, pw = pair(padding, "padding")
    if ph < 0 or pw < 0:
        raise ValueError(f"padding must be >= 0, got {(ph, pw)}")
    if ph == 0 and pw == 0:
        return x
    shape = x.shape[:-2] + (x.shape[-2] + 2 * ph, x.shape[-1] + 2 * pw)
    out = np.zeros(shape, dtype=x.dtype) if value == 0 else np.full(shape, value, dtype=x.dtype)
    out[..., ph:ph + x.shape[-2], pw:pw + x.shape[-1]] = x
    return out


def check_conv_args(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> None:
    """Shapes must be x (N, C_in, H, W), w (C_out, C_in, kh, kw), b (C_out,) or None;
    raises ValueError naming the shapes otherwise."""
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


def conv_geometry(x_shape, kh: int, kw: int, stride, padding, dilation):
    """Unpack and check the geometry of a convolution of an input of shape ``x_shape``
    (..., H, W) with a kh × kw kernel.

    Returns ``(H_out, W_out, (s_h, s_w), (p_h, p_w), (d_h, d_w))``; raises ValueError (from
    ``conv_output_size``) for bad values or an empty output.
    """
    sh, sw = pair(stride, "stride")
    ph, pw = pair(padding, "padding")
    dh, dw = pair(dilation, "dilation")
    H, W = x_shape[-2:]
    H_out = conv_output_size(H, kh, sh, ph, dh)
    W_out = conv_output_size(W, kw, sw, pw, dw)
    return H_out, W_out, (sh, sw), (ph, pw), (dh, dw)


def layer_geometry(layer: str, kernel_size, stride, padding, dilation):
    """A convolution layer's ``(kernel_size, stride, padding, dilation)`` as (h, w) pairs,
    checked: ValueError (naming ``layer``) unless kernel size, stride and dilation are >= 1
    and padding >= 0."""
    k, s, p, d = (pair(kernel_size, "kernel_size"), pair(stride, "stride"),
                  pair(padding, "padding"), pair(dilation, "dilation"))
    if min(k) < 1 or min(s) < 1 or min(d) < 1 or min(p) < 0:
        raise ValueError(f"{layer}: kernel_size, stride, dilation must be >= 1 and padding >= 0, got "
                         f"kernel_size={k}, stride={s}, padding={p}, dilation={d}")
    return k, s, p, d


def input_grad_is_a_convolution(stride, padding, dilation, kh: int, kw: int) -> bool:
    """True when dx of a convolution is the stride-1 convolution of dout with the flipped,
    channel-swapped kernel and padding ``d·(k − 1) − p``: stride 1 and ``p <= d·(k − 1)`` on
    both axes."""
    sh, sw = pair(stride, "stride")
    ph, pw = pair(padding, "padding")
    dh, dw = pair(dilation, "dilation")
    return sh == 1 and sw == 1 and ph <= dh * (kh - 1) and pw <= dw * (kw - 1)
