"""Topic 33 — post-training quantisation (PTQ) of a model's linear layers.

Weight-only: every projection weight W (in, out) of the model's ``Linear`` and
``QKVProjection`` layers is replaced by its dequantised codes Ŵ = dequantize(quantize(W)):
the model computes exactly what an integer-weight kernel that dequantises on the fly would.
Int8 per output channel (``QScheme(8, axis=1)``) and int4 in groups along the input
(``QScheme(4, axis=0, group_size=32)``). Embeddings (and a head tied to them), LayerNorms
and biases stay in float32.

Activations: :class:`ActivationQuantizer` puts a fake quantiser on the *input* of each such
layer. It first observes calibration batches (the range of each layer's input: min-max, or
the mean over batches of the p-th / (100−p)-th percentiles), then quantises every input with
the range found (int8 asymmetric per tensor by default).

Size: :func:`model_bytes` counts float32 parameters at 4 bytes, b-bit codes at b/8 bytes
(two 4-bit codes packed per byte), one float32 scale per block, one byte per zero point of
asymmetric schemes.
"""

from __future__ import annotations

import copy
from typing import Iterable

import numpy as np

from dlfs.attention.qkv import QKVProjection
from dlfs.nn.layers import Layer, Linear
from dlfs.quant.quantize import QParams, QScheme, compute_qparams, fake_quantize, qparams_from_range

WEIGHT_INT8 = QScheme(8, symmetric=True, axis=1)
WEIGHT_INT4_G32 = QScheme(4, symmetric=True, axis=0, group_size=32)
ACT_INT8 = QScheme(8, symmetric=False)


def projection_layers(model: Layer) -> list[tuple[str, Layer]]:
    """(name, layer) for every ``Linear`` and ``QKVProjection`` in the model, in order."""
    return [(name, layer) for name, layer in model._named_sublayers() if isinstance(layer, (Linear, QKVProjection))]


def quantize_weights(model: Layer, scheme: QScheme) -> tuple[Layer, dict[str, QParams]]:
    """A copy of ``model`` whose projection weights are replaced by their dequantised codes under
    ``scheme`` (min-max scales); the model is unchanged. Returns (copy, {layer name: QParams})."""
    model = copy.deepcopy(model)
    params = {}
    for name, layer in projection_layers(model):
        # BEGIN SOLUTION per layer: scales from W's range, then W's data becomes the fake-quantised W
        p = compute_qparams(layer.W.data, scheme)
        layer.W.data[...] = fake_quantize(layer.W.data, p)[0]
        params[name] = p
        # END SOLUTION
    return model, params


def weight_bytes(shape: tuple[int, ...], scheme: QScheme | None) -> int:
    """Bytes of one weight stored as float32 (scheme None) or as b-bit codes + float32 scales
    (+ one byte per zero point when asymmetric); 4-bit codes are packed two per byte."""
    n = int(np.prod(shape))
    if scheme is None:
        return 4 * n
    # TODO: how many (scale, zero point) blocks the scheme has for this shape, then the bytes.
    # BEGIN SOLUTION count the blocks (1, one per channel, or n / group_size); codes at bits/8 bytes, 4 per scale, 1 per zero point
    if scheme.axis is None:
        blocks = 1
    elif scheme.group_size is None:
        blocks = shape[scheme.axis]
    else:
        blocks = n // scheme.group_size
    return (n * scheme.bits + 7) // 8 + 4 * blocks + (0 if scheme.symmetric else blocks)
    # END SOLUTION


def model_bytes(model: Layer, scheme: QScheme | None = None) -> int:
    """The model's size with its projection weights stored under ``scheme`` (None: float32)."""
    quantised = {id(layer.W) for _, layer in projection_layers(model)} if scheme is not None else set()
    return sum(weight_bytes(p.shape, scheme) if id(p) in quantised else 4 * p.size for p in model.parameters())


class ActivationQuantizer:
    """Fake quantisation of the input of each projection layer of a model, calibrated first.

    ``q = ActivationQuantizer(model, ACT_INT8, method="minmax")`` installs itself (the layers'
    ``forward`` first passes through it); in ``"observe"`` mode (the start) forward records each
    input's range; :meth:`freeze` turns the ranges into (scale, zero point) and switches to
    ``"quantize"``; :meth:`remove` restores the layers. method: "minmax" (the extreme values
    seen) or "percentile" (the mean over calibration batches of each batch's percentiles).
    """

    def __init__(self, model: Layer, scheme: QScheme = ACT_INT8, method: str = "minmax",
                 percentile: float = 99.99):
        if scheme.axis is not None:
            raise ValueError("activations are quantised per tensor here")
        if method not in ("minmax", "percentile"):
            raise ValueError(f"method must be 'minmax' or 'percentile', got {method!r}")
        self.scheme, self.method, self.percentile = scheme, method, float(percentile)
        self.mode = "observe"
        self.layers = projection_layers(model)
        self.ranges: dict[str, list] = {name: [] for name, _ in self.layers}
        self.params: dict[str, QParams] = {}
        for name, layer in self.layers:
            layer.forward = self._hook(name, layer)

    def _hook(self, name: str, layer: Layer):
        plain = type(layer).forward

        def forward(x, *args, **kwargs):
            if self.mode == "observe":
                if self.method == "minmax":
                    self.ranges[name].append((x.min(), x.max()))
                else:
                    self.ranges[name].append(tuple(np.percentile(x, [100 - self.percentile, self.percentile])))
            else:
                x = fake_quantize(x, self.params[name])[0].astype(x.dtype, copy=False)
            return plain(layer, x, *args, **kwargs)
        return forward

    def freeze(self) -> dict[str, QParams]:
        """The (scale, zero point) of each layer's input from what was observed; quantise from now on."""
        for name, seen in self.ranges.items():
            if not seen:
                raise RuntimeError(f"no calibration input reached {name}: run forward in observe mode first")
            lo, hi = np.array(seen, dtype=np.float64).T
            lo, hi = (lo.min(), hi.max()) if self.method == "minmax" else (lo.mean(), hi.mean())
            self.params[name] = qparams_from_range(np.float32(lo), np.float32(hi), self.scheme)
        self.mode = "quantize"
        return self.params

    def remove(self) -> None:
        for _, layer in self.layers:
            vars(layer).pop("forward", None)


def calibrate(model: Layer, batches: Iterable[np.ndarray], scheme: QScheme = ACT_INT8, method: str = "minmax",
              percentile: float = 99.99) -> ActivationQuantizer:
    """Install an :class:`ActivationQuantizer` on ``model``, run ``model.forward`` on each
    calibration batch (in eval mode), and freeze it: the model now quantises its activations."""
    quantizer = ActivationQuantizer(model, scheme, method, percentile)
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            model.forward(batch)
    finally:
        model.train(was_training)
    quantizer.freeze()
    return quantizer
