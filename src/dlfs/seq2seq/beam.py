"""Topic 23 — decoding: greedy search and beam search over a step function.

A decoder is used through one function, whatever the model behind it::

    step(tokens (B,), state, memory) -> (log_probs (B, V), new_state, aux)

``tokens`` are the previous output tokens (the begin token at the first step), ``state`` what
changes from step to step (a GRU's hidden state (B, H), or a tuple of arrays), ``memory`` what
every step reads and never changes (the attention keys and values of the source; None without
attention), both with the batch on axis 0. ``aux`` is anything per row the caller wants to
keep (the attention weights (B, S)), or None. :meth:`dlfs.seq2seq.Seq2Seq.start` returns the
first ``(state, memory)`` and :meth:`~dlfs.seq2seq.Seq2Seq.step` is such a function.

The score of an output y_1 … y_L is its log-probability ``Σ_t log p(y_t | y_<t, source)``.
An output ends with its end token (included in L and in the score), or is cut at ``max_len``.

* **Greedy**: take the most probable token at every step. Fast, but a locally best token can
  lead to a globally worse sequence.
* **Beam search** keeps the ``k`` best partial outputs (*hypotheses*) of every source: each
  step extends each of them by every token (k·V candidates), keeps the k best, and reorders
  the decoder states accordingly. A hypothesis that has produced the end token is *finished*:
  it stays in the beam with its score, extended only by padding at cost 0, and competes with
  the live ones. The search stops when all k hypotheses of every source are finished, or at
  ``max_len``. With ``length_penalty`` α > 0 the final choice divides each score by GNMT's
  ``((5 + L) / 6)^α`` (Wu et al., 2016), which favours longer outputs; α = 0 compares raw
  log-probabilities. With k = 1 beam search is greedy search; with k at least the number of
  all possible outputs nothing is ever dropped and it returns the exact best output (the tests
  compare it with brute-force enumeration).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from dlfs.rnn.bidirectional import tree_map

__all__ = ["Decoded", "length_normalizer", "greedy_decode", "beam_search", "decode"]

StepFn = Callable[[np.ndarray, object, object], tuple[np.ndarray, object, object]]


@dataclass
class Decoded:
    """The outputs of a decoder, one per source.

    tokens: (N, L) int, the output tokens (without the begin token), ``pad_id`` after the end
    token; lengths: (N,) tokens produced, the end token included; scores: (N,) float64, the
    sum of their log-probabilities (before any length penalty); finished: (N,) bool, whether the
    output ended with the end token (False: cut at max_len); aux: (N, L, ...) what the step
    function returned per step (greedy search), or None.
    """

    tokens: np.ndarray
    lengths: np.ndarray
    scores: np.ndarray
    finished: np.ndarray
    aux: np.ndarray | None = None


def _map(fn, tree):
    """fn on every array of a state or memory (an array, a tuple of arrays, or None)."""
    return None if tree is None else tree_map(fn, tree)


def length_normalizer(lengths: np.ndarray, alpha: float) -> np.ndarray:
    """GNMT's length penalty ``((5 + L) / 6)^α``: (…) lengths -> (…) float64 (1 for α = 0)."""
    # BEGIN SOLUTION ((5 + L) / 6) ** alpha in float64
    return ((5.0 + np.asarray(lengths, dtype=np.float64)) / 6.0) ** float(alpha)
    # END SOLUTION


def greedy_decode(step: StepFn, state, memory, batch_size: int, *, bos_id: int, eos_id: int,
                  max_len: int, pad_id: int = 0) -> Decoded:
    """The most probable token at every step, for ``batch_size`` sources at once.

    state, memory: from the model's ``start`` (batch on axis 0). Stops when every output has its
    end token, or after ``max_len`` steps. Returns a :class:`Decoded` with ``aux`` stacked per
    step when the step function returns one.
    """
    N = int(batch_size)
    tokens = np.full((N, max_len), pad_id, dtype=np.int64)
    lengths = np.zeros(N, dtype=np.int64)
    scores = np.zeros(N, dtype=np.float64)
    finished = np.zeros(N, dtype=bool)
    aux = []
    last = np.full(N, bos_id, dtype=np.int64)
    # TODO: a finished row keeps producing pad_id, which adds nothing to its score or length.
    # BEGIN SOLUTION loop over steps: step, argmax, freeze finished rows, record token, score, length; stop when all finished
    t = 0
    for t in range(max_len):
        log_probs, state, extra = step(last, state, memory)
        if extra is not None:
            aux.append(extra)
        tok = np.where(finished, pad_id, np.argmax(log_probs, axis=-1))
        scores += np.where(finished, 0.0, log_probs[np.arange(N), tok])
        lengths += ~finished
        tokens[:, t] = tok
        finished |= tok == eos_id
        last = tok
        if finished.all():
            break
    tokens = tokens[:, :t + 1]
    # END SOLUTION
    return Decoded(tokens, lengths, scores, finished, np.stack(aux, axis=1) if aux else None)


def beam_search(step: StepFn, state, memory, batch_size: int, *, beam_size: int, bos_id: int,
                eos_id: int, max_len: int, pad_id: int = 0, length_penalty: float = 0.0) -> Decoded:
    """The best of ``beam_size`` hypotheses per source, for ``batch_size`` sources at once.

    The k hypotheses of source n are rows ``n·k … n·k + k − 1`` of the states the step function
    sees (state and memory are repeated k times on entry; only the state is reordered after each
    step). Returns a :class:`Decoded` (``aux`` None): per source the hypothesis with the best
    ``score / length_normalizer(length, length_penalty)``.
    """
    N, k = int(batch_size), int(beam_size)
    if k < 1 or max_len < 1:
        raise ValueError(f"beam_size and max_len must be at least 1, got {beam_size} and {max_len}")
    state = _map(lambda a: np.repeat(a, k, axis=0), state)
    memory = _map(lambda a: np.repeat(a, k, axis=0), memory)
    scores = np.full((N, k), -np.inf)
    scores[:, 0] = 0.0                          # k copies of the empty output: expand one only
    tokens = np.full((N, k, max_len), pad_id, dtype=np.int64)
    lengths = np.zeros((N, k), dtype=np.int64)
    finished = np.zeros((N, k), dtype=bool)
    last = np.full(N * k, bos_id, dtype=np.int64)
    rows0 = (np.arange(N) * k)[:, None]
    # TODO: candidates = scores[..., None] + log_probs, (N, k, V) -> (N, k·V); a finished
    #       hypothesis's only candidate is pad_id at cost 0. The k best: parent = index // V,
    #       token = index % V; gather tokens, lengths, finished and the state by parent.
    # BEGIN SOLUTION per step: candidates, top k per source, gather by parent, update finished; stop when nothing is live
    for t in range(max_len):
        log_probs, state, _ = step(last, state, memory)
        V = log_probs.shape[-1]
        log_probs = log_probs.reshape(N, k, V).astype(np.float64)
        frozen = np.full(V, -np.inf)
        frozen[pad_id] = 0.0
        log_probs = np.where(finished[..., None], frozen, log_probs)
        cand = (scores[..., None] + log_probs).reshape(N, k * V)
        top = np.argsort(-cand, axis=1, kind="stable")[:, :k]
        parent, tok = top // V, top % V
        scores = np.take_along_axis(cand, top, axis=1)
        was_finished = np.take_along_axis(finished, parent, axis=1)
        tokens = np.take_along_axis(tokens, parent[..., None], axis=1)
        tokens[:, :, t] = tok
        lengths = np.take_along_axis(lengths, parent, axis=1) + ~was_finished
        finished = was_finished | (tok == eos_id)
        rows = (rows0 + parent).reshape(-1)
        state = _map(lambda a: a[rows], state)
        last = tok.reshape(-1)
        if (finished | np.isneginf(scores)).all():
            break
    tokens = tokens[:, :, :t + 1]
    # END SOLUTION
    final = scores / length_normalizer(np.maximum(lengths, 1), length_penalty)
    best = np.argmax(final, axis=1)
    pick = lambda a: a[np.arange(N), best]          # noqa: E731
    return Decoded(pick(tokens), pick(lengths), pick(scores), pick(finished))


def decode(model, src: np.ndarray, src_lengths: np.ndarray, *, max_len: int, beam_size: int = 1,
           length_penalty: float = 0.0) -> Decoded:
    """Decode a batch of sources with a model that has ``start``, ``step``, ``bos_id``,
    ``eos_id`` and ``pad_id``: greedy search for ``beam_size=1``, beam search otherwise."""
    state, memory = model.start(src, src_lengths)
    ids = dict(bos_id=model.bos_id, eos_id=model.eos_id, pad_id=model.pad_id, max_len=max_len)
    if beam_size == 1:
        return greedy_decode(model.step, state, memory, len(src), **ids)
    return beam_search(model.step, state, memory, len(src), beam_size=beam_size,
                       length_penalty=length_penalty, **ids)
