"""Small padded batches for the encoder–decoder tests of Topics 23 and 24 (on the test path:
``from seq2seq_data import padded_batch``)."""

from __future__ import annotations

import numpy as np


def padded_batch(seed: int = 0, vocab: int = 7, tgt_vocab: int = 6):
    """``(src (3, 5), lengths (3,), targets (3, 4))``: sources of lengths [5, 2, 4] with ids in
    [1, vocab) padded with 0; targets with ids in [3, tgt_vocab) ending with the end token 2
    after 4, 2 and 3 tokens, padded with 0 (pad 0, begin 1, end 2, as the models use them)."""
    rng = np.random.default_rng(seed)
    lengths = np.array([5, 2, 4])
    src = rng.integers(1, vocab, (3, 5))
    src[np.arange(5)[None, :] >= lengths[:, None]] = 0
    tgt = rng.integers(3, tgt_vocab, (3, 4))
    tgt[0, 3] = 2
    tgt[1, 1], tgt[1, 2:] = 2, 0
    tgt[2, 2], tgt[2, 3] = 2, 0
    return src, lengths, tgt


def assert_source_padding_changes_nothing(model, src, lengths, tgt, fill: int, bos: int) -> None:
    """Run ``model`` forward and backward (masked sequence loss) on ``src`` and on a copy whose
    padded steps hold the real id ``fill``: logits and every parameter gradient must be equal."""
    from dlfs.seq2seq.encoder_decoder import decoder_inputs, sequence_loss
    from dlfs.testing import assert_close

    other = src.copy()
    other[np.arange(src.shape[1])[None, :] >= lengths[:, None]] = fill     # padding holds real ids now
    runs = []
    for s in (src, other):
        model.zero_grad()
        logits = model.forward(s, lengths, decoder_inputs(tgt, bos))
        model.backward(sequence_loss(logits, tgt, 0)[1])
        runs.append((logits, {n: p.grad.copy() for n, p in model.named_parameters()}))
    assert_close(runs[1][0], runs[0][0], rtol=0, atol=0, what="logits with other ids at padded source steps")
    for name, g in runs[0][1].items():
        assert_close(runs[1][1][name], g, rtol=0, atol=0, what=f"{name}.grad with other padding")
