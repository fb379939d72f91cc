"""Attention (Module 4).

- ``dlfs.attention.scaled_dot_product`` (Topic 25): scaled dot-product attention forward and
  backward (a loop version and a batched one), causal and key-padding masks.
- ``dlfs.attention.qkv`` (Topic 25): the fused query/key/value projection layer.
- ``dlfs.attention.multi_head`` (Topic 26): head split and merge, multi-head self-attention,
  loading ``torch.nn.MultiheadAttention`` weights.

The names below are exported lazily: importing ``dlfs.attention`` loads no submodule until a
name is used, so a topic's exercise file can stand in for its module.
"""

from __future__ import annotations

from dlfs.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "dlfs.attention.scaled_dot_product": [
        "AttentionCache", "attention_mask", "attention_loop", "attention_forward",
        "attention_backward",
    ],
    "dlfs.attention.qkv": ["QKVProjection"],
    "dlfs.attention.multi_head": ["split_heads", "merge_heads", "MultiHeadAttention"],
    "dlfs.attention.flash": ["FlashCache", "flash_attention_forward", "flash_attention_backward"],
})
