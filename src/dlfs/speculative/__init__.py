"""Speculative decoding (Module 5, Topic 36): a small draft model proposes k tokens, the target
model scores them all in one call, and an acceptance rule keeps the output distributed exactly
as the target's.

- ``dlfs.speculative.rules``: the acceptance probability min(1, p/q), the residual
  distribution normalise(max(0, p − q)), one speculative step (sampling and greedy).
- ``dlfs.speculative.decode``: the generation loops, speculative and plain autoregressive,
  with the counts of target and draft calls and of accepted drafts.
- ``dlfs.speculative.models``: language models as functions from a prefix to next-token
  probabilities: explicit toy models and adapters for Topic 30's GPT, with and without
  Topic 31's key/value cache.
- ``dlfs.speculative.exact``: the exact output distribution of speculative decoding,
  enumerated over every draft and every acceptance event.

Public names are imported on first use: ``from dlfs.speculative import speculative_generate``.
"""

from dlfs.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "dlfs.speculative.rules": ["acceptance_probability", "residual_distribution", "speculative_accept",
                               "greedy_accept"],
    "dlfs.speculative.decode": ["DecodeStats", "speculative_generate", "autoregressive_generate",
                                "expected_tokens_per_call"],
    "dlfs.speculative.models": ["FunctionModel", "GPTModel", "CachedGPTModel"],
    "dlfs.speculative.exact": ["step_distribution", "sequence_distribution", "target_sequence_distribution"],
})
