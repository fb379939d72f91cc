"""Topic 23: teacher forcing (the decoder's inputs) and the masked sequence loss."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.seq2seq.encoder_decoder import decoder_inputs, sequence_loss
from dlfs.testing import assert_close, check_op
from torch_oracle import torch_or_skip

PAD = 0


def padded_logits_and_targets(seed=0, N=3, T=5, V=7):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((N, T, V))
    targets = rng.integers(1, V, (N, T))
    targets[1, 2:] = PAD
    targets[2, 4:] = PAD
    return logits, targets


def loss_written_out(logits, targets):
    """−log softmax(logits)[target], averaged over the real (non-pad) positions, one at a time."""
    total, count = 0.0, 0
    for n in range(targets.shape[0]):
        for t in range(targets.shape[1]):
            if targets[n, t] == PAD:
                continue
            z = logits[n, t]
            total -= z[targets[n, t]] - np.log(np.sum(np.exp(z)))
            count += 1
    return total / count


def test_decoder_inputs_are_the_targets_shifted_right_behind_the_begin_token():
    targets = np.array([[5, 6, 7, 2], [8, 2, 0, 0]])
    got = decoder_inputs(targets, bos_id=1)
    assert_close(got, np.array([[1, 5, 6, 7], [1, 8, 2, 0]]), rtol=0, atol=0,
                 what="decoder inputs: [BOS, y_0, ..., y_{T-2}]")
    assert got.dtype.kind in "iu" and targets[0, 0] == 5, "integer ids, and the targets left as they were"


@settings(deadline=None, max_examples=25)
@given(N=st.integers(1, 4), T=st.integers(1, 6), bos=st.integers(1, 3), seed=st.integers(0, 1000))
def test_decoder_inputs_property(N, T, bos, seed):
    targets = np.random.default_rng(seed).integers(0, 9, (N, T))
    got = decoder_inputs(targets, bos)
    assert got.shape == (N, T) and np.all(got[:, 0] == bos) and np.array_equal(got[:, 1:], targets[:, :-1])


def test_the_loss_is_the_mean_over_the_real_tokens():
    logits, targets = padded_logits_and_targets()
    loss, dlogits = sequence_loss(logits, targets, PAD)
    assert_close(loss, loss_written_out(logits, targets), rtol=1e-12, atol=1e-12,
                 what="masked mean cross-entropy (divided by the 12 real tokens, not by N·T = 15)")
    assert dlogits.shape == logits.shape and dlogits.dtype == logits.dtype


def test_padded_positions_contribute_neither_loss_nor_gradient():
    logits, targets = padded_logits_and_targets(1)
    pad = targets == PAD
    loss, dlogits = sequence_loss(logits, targets, PAD)
    assert np.all(dlogits[pad] == 0.0), "the gradient at padded positions must be exactly 0"
    changed = logits.copy()
    changed[pad] = 1e4 * np.random.default_rng(2).standard_normal(changed[pad].shape)
    loss2, dlogits2 = sequence_loss(changed, targets, PAD)
    assert_close(loss2, loss, rtol=0, atol=0, what="loss after changing the logits at padded positions")
    assert_close(dlogits2, dlogits, rtol=0, atol=0, what="dlogits after changing the logits at padded positions")


def test_the_gradient_matches_finite_differences():
    logits, targets = padded_logits_and_targets(3)
    check_op(lambda z: np.array(sequence_loss(z, targets, PAD)[0]),
             lambda dy, z: dy * sequence_loss(z, targets, PAD)[1], logits, what="sequence_loss")


def test_the_loss_matches_pytorch_cross_entropy_with_ignore_index():
    torch = torch_or_skip()
    logits, targets = padded_logits_and_targets(4)
    loss, dlogits = sequence_loss(logits, targets, PAD)
    z = torch.tensor(logits, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(z.reshape(-1, logits.shape[-1]), torch.tensor(targets).reshape(-1),
                                            ignore_index=PAD)
    ref.backward()
    assert_close(loss, ref.item(), rtol=1e-12, atol=1e-12, what="loss vs torch cross_entropy(ignore_index=0)")
    assert_close(dlogits, z.grad.numpy(), rtol=1e-10, atol=1e-12, what="dlogits vs torch")
