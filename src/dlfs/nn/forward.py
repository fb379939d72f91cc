"""Topic 05 — The forward pass of a multi-layer perceptron.

A fully connected layer maps a batch of row vectors ``x: (N, D_in)`` to
``x @ W + b: (N, D_out)`` with ``W: (D_in, D_out)`` and ``b: (D_out,)`` broadcast over the
rows (Topic 01). An MLP alternates such layers with an elementwise nonlinearity::

    h_0 = x
    h_l = activation(h_{l-1} @ W_l + b_l)      l = 1 .. L   (the last layer is usually linear)

:func:`mlp_forward` returns every ``h_l`` so that you can watch the signal's scale layer by
layer and see what the initialisation (``dlfs.nn.init``) does to it.

The output keeps the floating dtype of the inputs (float32 in, float32 out).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def linear_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """A fully connected layer: ``x @ W + b``.

    x: (N, D_in); W: (D_in, D_out); b: (D_out,) or None (no bias) -> (N, D_out).
    (Any leading dimensions of ``x`` work the same way: (*, D_in) -> (*, D_out).)
    Note the layout: this is ``torch.nn.functional.linear(x, W.T, b)``.
    """
    # BEGIN SOLUTION return x @ W, plus b broadcast over the rows when b is not None
    out = x @ W
    if b is not None:
        out = out + b
    return out
    # END SOLUTION


def mlp_forward(
    x: np.ndarray,
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray | None] | None,
    activation: Callable[[np.ndarray], np.ndarray] | None,
    *,
    final_activation: bool = False,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Run ``x`` through ``L = len(weights)`` fully connected layers.

    x: (N, D_0); weights[l]: (D_l, D_{l+1}); biases[l]: (D_{l+1},) or None, or ``biases=None``
    for no biases at all; activation: an elementwise function such as ``np.tanh`` or
    ``dlfs.nn.activations.relu`` (None for the identity).

    The activation follows every layer except the last, whose output (the scores or logits)
    is left linear — unless ``final_activation=True``, which applies it after every layer
    (a uniform stack, convenient for studying signal propagation).

    Returns ``(output, activations)``: ``activations[l]`` is the output of layer ``l + 1``,
    shape (N, D_{l+1}), after its activation when it has one; ``activations[-1] is output``.
    Raises ValueError when ``weights`` and ``biases`` differ in length.
    """
    weights = list(weights)
    biases = [None] * len(weights) if biases is None else list(biases)
    if len(weights) != len(biases):
        raise ValueError(f"got {len(weights)} weight matrices but {len(biases)} biases")
    # BEGIN SOLUTION loop over the layers: linear_forward, then the activation where it applies; collect each output
    h = x
    activations = []
    for l, (W, b) in enumerate(zip(weights, biases)):
        h = linear_forward(h, W, b)
        if activation is not None and (final_activation or l < len(weights) - 1):
            h = activation(h)
        activations.append(h)
    return h, activations
    # END SOLUTION
