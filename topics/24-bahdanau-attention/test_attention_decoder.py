"""Topic 24: the attention decoder of Bahdanau et al. (2015) over a bidirectional encoder,
against its equations run step by step, finite differences and PyTorch; decoding with the
attention weights; a short training run."""

import numpy as np
import pytest

from dlfs.optim import Adam
from dlfs.seq2seq.bahdanau import AttentionSeq2Seq
from dlfs.seq2seq.beam import decode
from dlfs.seq2seq.encoder_decoder import decoder_inputs, sequence_loss
from dlfs.testing import assert_close, check_layer
from seq2seq_data import assert_source_padding_changes_nothing
from torch_oracle import torch_or_skip

BOS = 1


def make(seed=0, dtype=np.float64):
    return AttentionSeq2Seq(7, 6, embed_dim=2, enc_hidden=2, dec_hidden=3, attn_dim=2, rng=seed, dtype=dtype)


def test_forward_follows_the_papers_recurrence(batch, by_hand):
    src, lengths, tgt = batch(0)
    model = make(1)
    tgt_in = decoder_inputs(tgt, BOS)
    logits = model.forward(src, lengths, tgt_in)
    ref_logits, ref_weights = by_hand.decoder(model, src, lengths, tgt_in)
    assert_close(model.attention_weights, ref_weights, rtol=1e-12, atol=1e-14,
                 what="attention weights (N, T, S): the previous state s_{i-1} attends")
    assert_close(logits, ref_logits, rtol=1e-12, atol=1e-13, what="logits from [s_i; c_i]")


def test_attention_weights_are_distributions_over_each_sources_real_characters(batch):
    src, lengths, tgt = batch(2)
    model = make(3)
    model.forward(src, lengths, decoder_inputs(tgt, BOS))
    w = model.attention_weights
    pad = np.arange(src.shape[1])[None, :] >= lengths[:, None]
    assert w.shape == (3, 4, 5)
    assert np.all(w.transpose(0, 2, 1)[pad] == 0.0), "padded source positions get weight exactly 0"
    assert_close(w.sum(axis=-1), np.ones((3, 4)), rtol=1e-13, atol=1e-13, what="each step's weights sum to 1")


def test_source_padding_changes_nothing(batch):
    src, lengths, tgt = batch(4)
    assert_source_padding_changes_nothing(make(5), src, lengths, tgt, fill=6, bos=BOS)


# Central differences of this many-layer model are accurate to about 1e-10 (absolute); the
# batches and weights below have no gradient entry near that noise (largest relative error about
# 2e-8), and PyTorch agrees with every gradient to 1e-10.

def test_every_gradient_matches_finite_differences(batch):
    src, lengths, tgt = batch(1)
    check_layer(make(2), (src, lengths, decoder_inputs(tgt, BOS)), h=1e-5)


@pytest.mark.dlfs_timeout(20)
def test_every_gradient_matches_pytorch(batch, by_hand):
    src, lengths, tgt = batch(13)
    check_layer(make(14), (src, lengths, decoder_inputs(tgt, BOS)), torch_fn=by_hand.torch_model,
                oracle=torch_or_skip, h=1e-5, rtol=1e-10, atol=1e-12)


def test_one_step_at_a_time_reproduces_the_forward_and_its_attention(batch):
    src, lengths, tgt = batch(6)
    model = make(7)
    tgt_in = decoder_inputs(tgt, BOS)
    logits = model.forward(src, lengths, tgt_in)
    state, memory = model.start(src, lengths)
    for t in range(tgt.shape[1]):
        logp, state, weights = model.step(tgt_in[:, t], state, memory)
        z = logits[:, t] - logits[:, t].max(axis=1, keepdims=True)
        assert_close(logp, z - np.log(np.exp(z).sum(axis=1, keepdims=True)), rtol=1e-12, atol=1e-12,
                     what=f"step {t}: log_softmax of the forward's logits")
        assert_close(weights, model.attention_weights[:, t], rtol=1e-12, atol=1e-14, what=f"step {t}: attention weights")


def test_greedy_decoding_returns_where_each_output_looked(batch):
    src, lengths, _ = batch(8)
    model = make(9)
    out = decode(model, src, lengths, max_len=5)
    assert out.aux.shape == (3, out.tokens.shape[1], 5), out.aux.shape
    model.forward(src, lengths, decoder_inputs(out.tokens, BOS))        # the outputs fed back in
    for n in range(3):
        L = out.lengths[n]
        assert_close(out.aux[n, :L], model.attention_weights[n, :L], rtol=1e-12, atol=1e-14,
                     what=f"source {n}: decoding's attention weights vs the forward on its own output")


def test_float32_in_float32_out(batch):
    src, lengths, tgt = batch(10)
    model = make(11, dtype=np.float32)
    logits = model.forward(src, lengths, decoder_inputs(tgt, BOS))
    model.backward(sequence_loss(logits, tgt, 0)[1])
    assert logits.dtype == np.float32 and model.attention_weights.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in model.parameters())


@pytest.mark.dlfs_timeout(30)
def test_it_learns_to_reverse_sequences_and_looks_at_the_right_place():
    """Reverse 5 tokens: after 200 steps of 32 examples the output is right and output i looks
    at source position 4 − i (the anti-diagonal)."""
    rng = np.random.default_rng(0)
    model = AttentionSeq2Seq(7, 9, embed_dim=8, enc_hidden=16, dec_hidden=32, attn_dim=16, rng=0)
    opt = Adam(model.parameters(), lr=1e-2)

    def examples(n):
        x = rng.integers(1, 7, (n, 5))
        y = np.concatenate([x[:, ::-1] + 2, np.full((n, 1), 2)], axis=1)
        return x, np.full(n, 5), y

    for _ in range(200):
        x, n, y = examples(32)
        opt.zero_grad(set_to_none=False)
        loss, dlogits = sequence_loss(model.forward(x, n, decoder_inputs(y, BOS)), y, 0)
        model.backward(dlogits)
        opt.step()
    x, n, y = examples(200)
    out = decode(model, x, n, max_len=6)
    acc = np.mean(np.all(out.tokens == y, axis=1))
    assert acc > 0.9, f"greedy decoding reversed {acc:.1%} of 200 new sequences exactly (expected > 90%)"
    looked = np.argmax(out.aux[:, :5], axis=-1)                       # (200, 5): most attended position
    assert np.mean(looked == 4 - np.arange(5)) > 0.8, f"most attended positions: {looked[:3]}"
