"""Transformers (Module 4): the blocks built from attention, and the models built from blocks.

- ``dlfs.transformer.encoder`` (Topic 28): the feed-forward sublayer, the residual connection
  with its LayerNorm (post-LN and pre-LN), the encoder block.
- ``dlfs.transformer.gpt`` (Topic 30): a GPT-2-style decoder-only language model.
- ``dlfs.transformer.sampling`` (Topic 30): temperature, top-k and top-p sampling, generation.
- ``dlfs.transformer.training`` (Topic 30): batches, parameter groups, the training loop with
  checkpoints (given code around the learner's model).

Public names are imported on first use: ``from dlfs.transformer import EncoderBlock, GPT``.
"""

from dlfs.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "dlfs.transformer.encoder": ["FeedForward", "SublayerConnection", "EncoderBlock"],
})
