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

import importlib

_EXPORTS = {
    "AttentionCache": "scaled_dot_product",
    "attention_mask": "scaled_dot_product",
    "attention_loop": "scaled_dot_product",
    "attention_forward": "scaled_dot_product",
    "attention_backward": "scaled_dot_product",
    "QKVProjection": "qkv",
    "split_heads": "multi_head",
    "merge_heads": "multi_head",
    "MultiHeadAttention": "multi_head",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dlfs.attention' has no attribute {name!r}")
    return getattr(importlib.import_module(f"dlfs.attention.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
