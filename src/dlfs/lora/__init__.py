"""LoRA and QLoRA (Topic 35).

- ``dlfs.lora.nf4``: the NF4 code book derived from normal quantiles, block-wise NF4
  quantisation with absmax scales, double quantisation of the scales, the bits-per-weight formula.
- ``dlfs.lora.adapter``: the LoRA layer around a frozen ``Linear`` or ``QKVProjection`` (float
  or NF4 base), merge and unmerge, wrapping a GPT's attention and MLP projections.
- ``python -m dlfs.experiments.lora_finetune``: full fine-tuning, LoRA and QLoRA of the
  Milestone 30 GPT on the Lee news corpus.

Public names are imported on first use: ``from dlfs.lora import LoRALinear, apply_lora``.
"""

from dlfs.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "dlfs.lora.nf4": ["NF4_PUBLISHED", "NF4Tensor", "nf4_code_book", "quantize_nf4", "dequantize_nf4",
                      "double_quantize", "double_dequantize", "pack_nibbles", "unpack_nibbles",
                      "nf4_bits_per_param"],
    "dlfs.lora.adapter": ["LoRALinear", "TARGETS", "apply_lora", "lora_layers", "lora_parameters",
                          "merge_lora", "unmerge_lora", "frozen_weight_bytes"],
})
