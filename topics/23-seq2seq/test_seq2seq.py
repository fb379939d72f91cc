"""Topic 23: the GRU encoder–decoder without attention, against its definition (each source run
alone), finite differences and PyTorch, and a short training run."""

import numpy as np
import pytest

from dlfs.optim import Adam
from dlfs.rnn.gru import GRU
from dlfs.seq2seq.beam import decode
from dlfs.seq2seq.encoder_decoder import Seq2Seq, decoder_inputs, sequence_loss
from dlfs.testing import assert_close, check_layer
from seq2seq_data import assert_source_padding_changes_nothing
from torch_oracle import torch_or_skip

BOS = 1


def make(seed=0, dtype=np.float64):
    return Seq2Seq(7, 6, embed_dim=3, hidden_size=4, rng=seed, dtype=dtype)


def gru_from(model_gru):
    """A GRU layer holding the same weights, for running the definition by hand."""
    return GRU.from_torch_state(model_gru.state_dict())


def test_the_decoder_starts_from_the_encoders_state_after_each_sources_last_real_token(batch):
    src, lengths, tgt = batch(0)
    model = make(1)
    got = model.forward(src, lengths, decoder_inputs(tgt, BOS))
    enc, dec = gru_from(model.encoder.layer), gru_from(model.decoder)
    E_src, E_tgt = model.src_embed.W.data, model.tgt_embed.W.data
    for i, n in enumerate(lengths):
        _, h = enc.forward(E_src[src[i:i + 1, :n]])                      # the source alone, unpadded
        out, _ = dec.forward(E_tgt[decoder_inputs(tgt[i:i + 1], BOS)], h)
        assert_close(got[i], out[0] @ model.out.W.data + model.out.b.data, rtol=1e-12, atol=1e-13,
                     what=f"logits of sequence {i} (source length {n})")


def test_source_padding_changes_nothing(batch):
    src, lengths, tgt = batch(2)
    assert_source_padding_changes_nothing(make(3), src, lengths, tgt, fill=5, bos=BOS)


def test_padded_target_positions_contribute_no_gradient_through_the_model(batch):
    """What the decoder reads after a target's end token changes no loss and no gradient."""
    src, lengths, tgt = batch(4)
    model = make(5)
    tgt_in = decoder_inputs(tgt, BOS)
    other = tgt_in.copy()
    after_end = np.cumsum(np.concatenate([np.zeros((3, 1), int), (tgt == 2)[:, :-1]], axis=1), axis=1) > 0
    other[after_end] = 4
    assert after_end.any()
    runs = []
    for t_in in (tgt_in, other):
        model.zero_grad()
        loss, dlogits = sequence_loss(model.forward(src, lengths, t_in), tgt, 0)
        model.backward(dlogits)
        runs.append((loss, {n: p.grad.copy() for n, p in model.named_parameters()}))
    assert_close(runs[1][0], runs[0][0], rtol=0, atol=0, what="loss with other inputs after the end token")
    for name, g in runs[0][1].items():
        assert_close(runs[1][1][name], g, rtol=1e-13, atol=1e-15, what=f"{name}.grad with other inputs after the end token")


# Central differences of this many-layer model are accurate to about 1e-10 (absolute), so a
# gradient entry near 1e-5 cannot be checked to 1e-6 relative error. The batches and weights of
# the two checks below have no entry that small (their largest relative error is about 2e-8);
# PyTorch agrees with every gradient to 1e-10 for any of them.

def test_every_gradient_of_the_full_model_matches_finite_differences(batch):
    src, lengths, tgt = batch(22)
    check_layer(make(23), (src, lengths, decoder_inputs(tgt, BOS)), h=1e-5)


def torch_seq2seq(torch, src, lengths, tgt_in, **p):
    """The same model in torch: embeddings by indexing, torch.nn.GRU on the packed source and on
    the decoder inputs (weights through functional_call), then the output layer."""
    from torch.func import functional_call
    from torch.nn.utils.rnn import pack_padded_sequence

    E, H = p["src_embed.W"].shape[1], p["encoder.layer.weight_hh_l0"].shape[1]
    gru = torch.nn.GRU(E, H, batch_first=True).double()
    weights = lambda prefix: {k: p[f"{prefix}.{k}"] for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")}  # noqa: E731
    packed = pack_padded_sequence(p["src_embed.W"][src], lengths, batch_first=True, enforce_sorted=False)
    _, h = functional_call(gru, weights("encoder.layer"), (packed,))
    out, _ = functional_call(gru, weights("decoder"), (p["tgt_embed.W"][tgt_in], h))
    return out @ p["out.W"] + p["out.b"]


def test_every_gradient_of_the_full_model_matches_pytorch(batch):
    src, lengths, tgt = batch(28)
    check_layer(make(29), (src, lengths, decoder_inputs(tgt, BOS)), torch_fn=torch_seq2seq, oracle=torch_or_skip,
                h=1e-5, rtol=1e-10, atol=1e-12)


def test_one_step_at_a_time_reproduces_the_teacher_forced_logits(batch):
    src, lengths, tgt = batch(10)
    model = make(11)
    tgt_in = decoder_inputs(tgt, BOS)
    logits = model.forward(src, lengths, tgt_in)
    state, memory = model.start(src, lengths)
    for t in range(tgt.shape[1]):
        logp, state, _ = model.step(tgt_in[:, t], state, memory)
        z = logits[:, t]
        expected = z - z.max(axis=1, keepdims=True)
        expected -= np.log(np.exp(expected).sum(axis=1, keepdims=True))
        assert_close(logp, expected, rtol=1e-12, atol=1e-12, what=f"step {t}: log_softmax of the forward's logits")


def test_float32_in_float32_out(batch):
    src, lengths, tgt = batch(12)
    model = make(13, dtype=np.float32)
    logits = model.forward(src, lengths, decoder_inputs(tgt, BOS))
    model.backward(sequence_loss(logits, tgt, 0)[1].astype(np.float32))
    assert logits.dtype == np.float32, logits.dtype
    assert all(p.grad.dtype == np.float32 for p in model.parameters())
    assert model.step(np.ones(3, dtype=np.int64), *model.start(src, lengths))[0].dtype == np.float32


@pytest.mark.dlfs_timeout(30)
def test_it_learns_to_copy_short_sequences():
    """Copy 3 tokens out of 4: after 250 steps of 32 examples greedy decoding gets most right."""
    rng = np.random.default_rng(0)
    model = Seq2Seq(6, 7, embed_dim=8, hidden_size=32, rng=0)
    opt = Adam(model.parameters(), lr=1e-2)

    def examples(n):
        x = rng.integers(1, 5, (n, 3))                            # source ids 1..4
        y = np.concatenate([x + 2, np.full((n, 1), 2)], axis=1)   # target ids 3..6, then EOS
        return x, np.full(n, 3), y

    losses = []
    for _ in range(250):
        x, n, y = examples(32)
        opt.zero_grad(set_to_none=False)
        loss, dlogits = sequence_loss(model.forward(x, n, decoder_inputs(y, BOS)), y, 0)
        model.backward(dlogits)
        opt.step()
        losses.append(loss)
    x, n, y = examples(200)
    out = decode(model, x, n, max_len=4)
    acc = np.mean(np.all(out.tokens == y, axis=1))
    assert np.mean(losses[-20:]) < 0.3 * np.mean(losses[:20]), f"the loss fell from {np.mean(losses[:20]):.3f} to {np.mean(losses[-20:]):.3f}"
    assert acc > 0.8, f"greedy decoding copied {acc:.1%} of 200 new sequences exactly (expected > 80%)"
