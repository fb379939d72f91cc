"""Transformers (Module 4): the blocks built from attention, and the models built from blocks.

- ``dlfs.transformer.positional`` (Topic 27): sinusoidal, learned, rotary (RoPE) and ALiBi
  position encodings; attention with RoPE and ALiBi, and the multi-head layer built on it.
- ``dlfs.transformer.encoder`` (Topic 28): the feed-forward sublayer, the residual connection
  with its LayerNorm (post-LN and pre-LN), the encoder block.
- ``dlfs.transformer.decoder`` (Topic 29): cross-attention over an encoder's memory, the
  decoder block (post-LN and pre-LN).
- ``dlfs.transformer.gpt`` (Topic 30): a GPT-2-style decoder-only language model.
- ``dlfs.transformer.sampling`` (Topic 30): temperature, top-k and top-p sampling, generation.
- ``dlfs.transformer.kv_cache``, ``decoding``, ``grouped_query`` (Topic 31): the key/value
  cache, cached generation, grouped-query attention.
- ``dlfs.transformer.checkpointing`` (Topic 32): gradient checkpointing of blocks.
- ``dlfs.transformer.training`` (Topic 30): batches, parameter groups, the training loop with
  checkpoints (given code around the learner's model).

Public names are imported on first use: ``from dlfs.transformer import EncoderBlock, GPT``.
"""

from dlfs.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "dlfs.transformer.positional": ["inverse_frequencies", "sinusoidal_encoding", "SinusoidalPositionalEncoding",
                                    "LearnedPositionalEmbedding", "rope_cos_sin", "apply_rope",
                                    "apply_rope_backward", "RotaryEmbedding", "alibi_slopes", "alibi_bias",
                                    "ALiBi", "attend", "attend_backward", "PositionalSelfAttention"],
    "dlfs.transformer.encoder": ["FeedForward", "SublayerConnection", "EncoderBlock"],
    "dlfs.transformer.decoder": ["CrossAttention", "DecoderBlock"],
    "dlfs.transformer.gpt": ["GPTConfig", "GPT"],
    "dlfs.transformer.sampling": ["apply_temperature", "top_k_filter", "top_p_filter", "filtered_probs",
                                  "sample", "generate"],
    "dlfs.transformer.kv_cache": ["cache_bytes", "KVCache", "cache_for", "gpt_step"],
    "dlfs.transformer.decoding": ["Decoded", "left_pad", "decode", "generate_cached"],
    "dlfs.transformer.grouped_query": ["GroupedQueryAttention", "use_grouped_query"],
    "dlfs.transformer.checkpointing": ["Checkpoint", "checkpoint", "uncheckpoint", "checkpoint_blocks"],
    "dlfs.transformer.training": ["TrainConfig", "get_batch", "decay_groups", "train_step", "ParamGroups",
                                  "adamw_groups", "windows", "evaluate", "fit"],
})
