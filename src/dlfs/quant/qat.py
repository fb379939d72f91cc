"""Topic 33 — quantisation-aware training (QAT): train with fake-quantised weights.

Each projection layer's forward uses Ŵ = fake_quantize(W) (scales from W's current range,
recomputed every step) in place of W; its backward gives dL/dŴ, and the straight-through
estimator passes it to W where W was inside the range and blocks it where W was clamped
(``dlfs.quant.quantize.fake_quantize_backward``). The float W keeps receiving small updates
that rounding alone would erase, and the network learns weights that survive rounding.

``FakeQuantWeights(layer, scheme)`` installs itself on a layer (``Linear`` or
``QKVProjection``: any layer whose forward and backward read ``self.W.data``), as
``dlfs.transformer.checkpointing`` does: parameters keep their names; :func:`remove_fake_quant`
takes it off. :func:`prepare_qat` does it for every projection layer of a model.
"""

from __future__ import annotations

import numpy as np

from dlfs.nn.layers import Layer
from dlfs.quant.ptq import projection_layers
from dlfs.quant.quantize import QScheme, compute_qparams, fake_quantize, fake_quantize_backward


class FakeQuantWeights:
    """forward(x): the layer's forward with Ŵ in place of W; backward(dy): the layer's backward
    with Ŵ, and W.grad += STE(dL/dŴ). Shapes are the layer's."""

    def __init__(self, layer: Layer, scheme: QScheme):
        self.layer, self.scheme = layer, scheme
        self._inside = self._w_hat = None
        layer.forward, layer.backward, layer._fake_quant = self.forward, self.backward, self

    def _swap(self, data: np.ndarray) -> np.ndarray:
        old, self.layer.W.data = self.layer.W.data, data
        return old

    def forward(self, x: np.ndarray, *args, **kwargs):
        W = self.layer.W
        # TODO: fake-quantise W with scales from its current range; run the class's forward with
        #       Ŵ in W.data (put the real array back afterwards, even on an error); keep Ŵ and the mask.
        # BEGIN SOLUTION Ŵ and the STE mask from fake_quantize; the class forward with W.data swapped for Ŵ
        self._w_hat, self._inside = fake_quantize(W.data, compute_qparams(W.data, self.scheme))
        real = self._swap(self._w_hat)
        try:
            return type(self.layer).forward(self.layer, x, *args, **kwargs)
        finally:
            self._swap(real)
        # END SOLUTION

    def backward(self, dy, *args, **kwargs):
        if self._w_hat is None:
            raise RuntimeError("backward called before forward")
        W = self.layer.W
        # TODO: the class's backward with Ŵ in W.data, its weight gradient collected apart
        #       (W.grad = None first), then W.grad += the straight-through gradient.
        # BEGIN SOLUTION swap in Ŵ, collect dL/dŴ in a fresh W.grad, restore, accumulate the STE gradient
        grad, W.grad = W.grad, None
        real = self._swap(self._w_hat)
        try:
            dx = type(self.layer).backward(self.layer, dy, *args, **kwargs)
        finally:
            self._swap(real)
            dw_hat, W.grad = W.grad, grad
        W.accumulate_grad(fake_quantize_backward(dw_hat, self._inside))
        return dx
        # END SOLUTION


def remove_fake_quant(layer: Layer) -> Layer:
    for key in ("forward", "backward", "_fake_quant"):
        vars(layer).pop(key, None)
    return layer


def prepare_qat(model: Layer, scheme: QScheme) -> Layer:
    """Fake-quantise the weights of every projection layer of ``model`` (in place); returns it."""
    for _, layer in projection_layers(model):
        FakeQuantWeights(layer, scheme)
    return model


def finish_qat(model: Layer) -> Layer:
    """Remove the fake quantisers (in place); returns the model (quantise it with
    ``dlfs.quant.ptq.quantize_weights`` and the same scheme)."""
    for _, layer in projection_layers(model):
        remove_fake_quant(layer)
    return model
