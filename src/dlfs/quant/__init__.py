"""Quantisation (Topic 33).

- ``dlfs.quant.quantize``: schemes (bits, symmetric or not, per tensor / channel / group),
  calibration of scales and zero points, quantise, dequantise, fake quantisation and its
  straight-through backward.
- ``dlfs.quant.int_matmul``: the integer product with int32 accumulation (and its overflow
  bound), the quantised linear product.
- ``dlfs.quant.ptq``: post-training quantisation of a model's weights and activations, sizes.
- ``dlfs.quant.qat``: quantisation-aware training with fake-quantised weights.
- ``python -m dlfs.quant.experiment``: PTQ and QAT of a small GPT on Tiny Shakespeare.

Public names are imported on first use: ``from dlfs.quant import QScheme, quantize``.
"""

from dlfs.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "dlfs.quant.quantize": ["QScheme", "QParams", "blocked", "compute_qparams", "qparams_from_range", "quantize",
                            "dequantize", "fake_quantize", "fake_quantize_backward"],
    "dlfs.quant.int_matmul": ["code_bound", "max_safe_k", "int_matmul", "quantized_matmul"],
    "dlfs.quant.ptq": ["WEIGHT_INT8", "WEIGHT_INT4_G32", "ACT_INT8", "projection_layers", "quantize_weights",
                       "weight_bytes", "model_bytes", "ActivationQuantizer", "calibrate"],
    "dlfs.quant.qat": ["FakeQuantWeights", "prepare_qat", "finish_qat", "remove_fake_quant"],
})
