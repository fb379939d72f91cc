"""Sequence to sequence (Module 3).

- ``dlfs.seq2seq.encoder_decoder`` (Topic 23): teacher forcing, the masked sequence loss, and
  ``Seq2Seq``, a GRU encoder–decoder without attention (the source reaches the decoder through
  the encoder's final state only).
- ``dlfs.seq2seq.beam`` (Topic 23): greedy search and beam search over a ``step`` function
  (end token, length penalty), and ``decode`` for any model with ``start``/``step``.
- ``dlfs.seq2seq.bahdanau`` (Topic 24): additive attention (forward, backward, the layer with
  precomputed keys) and ``AttentionSeq2Seq``, the attention decoder of Bahdanau et al. (2015)
  over a bidirectional GRU encoder.
- ``dlfs.seq2seq.dates`` (Milestone 24's data): human-written dates in 20 declared formats and
  their ISO form, seeded, split by date.

The names below are exported lazily: importing ``dlfs.seq2seq`` loads no submodule until a
name is used, so a topic's exercise file can stand in for its module.
"""

from __future__ import annotations

from dlfs.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "dlfs.seq2seq.encoder_decoder": ["decoder_inputs", "sequence_loss", "Seq2Seq"],
    "dlfs.seq2seq.beam": ["Decoded", "length_normalizer", "greedy_decode", "beam_search", "decode"],
    "dlfs.seq2seq.bahdanau": ["AttentionCache", "additive_attention", "additive_attention_backward",
                              "BahdanauAttention", "AttentionSeq2Seq"],
})
