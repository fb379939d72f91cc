"""Training and evaluating the encoder–decoders of Topics 23–24 (given code, no exercise).

Shared by Milestone 24 (``dlfs.milestones.date_attention``) and the experiment
``dlfs.experiments.attention_vs_length``:

* :func:`length_batches` — batches of similar source lengths (fewer padded steps to compute,
  fewer packed segments), in a random order;
* :func:`train_step` — teacher forcing, the masked loss, backward, gradient clipping, one
  optimiser step;
* :func:`exact_match` — decode (greedy or beam search) and compare whole outputs.

A model here is :class:`~dlfs.seq2seq.encoder_decoder.Seq2Seq` or
:class:`~dlfs.seq2seq.bahdanau.AttentionSeq2Seq`: ``forward(src, src_lengths, tgt_in) ->
logits``, ``backward(dlogits)``, ``start``/``step`` for decoding, ``pad_id``/``bos_id``/``eos_id``.
Targets are ``(N, T)`` ids ending with the end token and padded with ``pad_id``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["length_batches", "train_step", "Scores", "exact_match"]


def length_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                   group: int = 16) -> list[np.ndarray]:
    """Indices of ``len(lengths)`` examples cut into batches of ``batch_size`` (the last may be
    smaller). The examples are shuffled, then sorted by length within groups of ``group``
    batches, so a batch holds similar lengths; the batches come in a random order."""
    order = rng.permutation(len(lengths))
    span = batch_size * group
    batches = []
    for lo in range(0, len(order), span):
        chunk = order[lo:lo + span]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def train_step(model, optimizer, src: np.ndarray, src_lengths: np.ndarray, targets: np.ndarray,
               clip: float | None = 1.0) -> tuple[float, float]:
    """One step of teacher-forced training on a batch. src: (N, S) (trimmed here to the longest
    source), src_lengths: (N,), targets: (N, T). Returns ``(loss, token accuracy)``: the masked
    mean cross-entropy and the fraction of real target tokens predicted right (teacher forced)."""
    from dlfs.optim.schedules import clip_grad_norm
    from dlfs.seq2seq.encoder_decoder import decoder_inputs, sequence_loss

    src = src[:, :int(src_lengths.max())]
    optimizer.zero_grad(set_to_none=False)
    logits = model.forward(src, src_lengths, decoder_inputs(targets, model.bos_id))
    loss, dlogits = sequence_loss(logits, targets, model.pad_id)
    model.backward(dlogits)
    if clip is not None:
        clip_grad_norm(optimizer.params, clip)
    optimizer.step()
    real = targets != model.pad_id
    acc = float(np.mean(np.argmax(logits, axis=-1)[real] == targets[real]))
    return float(loss), acc


class Scores(NamedTuple):
    """What :func:`exact_match` measured. accuracy: the fraction of outputs equal to their target
    (every real token, the end token included, and nothing after it); correct: (N,) bool, which
    ones; token_accuracy: the fraction of real target tokens (the end token included) produced
    at their position; attention: (N, L, S) the attention weights of greedy decoding, or None
    (beam search, or a model without attention)."""

    accuracy: float
    correct: np.ndarray
    token_accuracy: float
    attention: np.ndarray | None


def exact_match(model, src: np.ndarray, src_lengths: np.ndarray, targets: np.ndarray, *,
                batch_size: int = 1000, beam_size: int = 1, max_len: int | None = None) -> Scores:
    """Decode every source (greedy, or beam search with ``beam_size`` > 1) and compare each output
    with its target. max_len: default the targets' length T. Returns :class:`Scores`."""
    from dlfs.seq2seq.beam import decode

    N, T = targets.shape
    max_len = T if max_len is None else int(max_len)
    correct = np.zeros(N, dtype=bool)
    right_tokens = 0
    attention = None
    for lo in range(0, N, batch_size):
        hi = min(lo + batch_size, N)
        lengths = src_lengths[lo:hi]
        out = decode(model, src[lo:hi, :int(lengths.max())], lengths, max_len=max_len, beam_size=beam_size)
        want = targets[lo:hi]
        got = np.full(want.shape, -1, dtype=np.int64)
        L = min(out.tokens.shape[1], T)
        got[:, :L] = out.tokens[:, :L]
        real = want != model.pad_id
        same = got == want
        right_tokens += int(same[real].sum())
        # every real target token produced, and the output ends where the target does
        correct[lo:hi] = np.where(real, same, True).all(axis=1) & (out.lengths == real.sum(axis=1))
        if out.aux is not None:
            if attention is None:
                attention = np.zeros((N, max_len, src.shape[1]), dtype=out.aux.dtype)
            attention[lo:hi, :out.aux.shape[1], :out.aux.shape[2]] = out.aux
    total = int((targets != model.pad_id).sum())
    return Scores(float(correct.mean()), correct, right_tokens / max(total, 1), attention)
