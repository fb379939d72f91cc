"""Topic 21: a recurrent layer over a padded batch, run as PyTorch runs a packed sequence —
padded steps change neither the outputs nor the gradients."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.rnn.bidirectional import Packed, length_segments
from dlfs.rnn.gru import GRU
from dlfs.rnn.lstm import LSTM
from dlfs.rnn.vanilla import RNN
from dlfs.testing import assert_close, check_layer
from torch_oracle import torch_or_skip

D, H = 3, 4
LENGTHS = np.array([5, 2, 4, 2, 1])
KINDS = {"gru": GRU, "rnn": RNN, "lstm": LSTM}


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def make(kind, seed=0):
    return KINDS[kind](D, H, rng=seed, dtype=np.float64)


def initial(kind, N, seed):
    h = 0.5 * randn(N, H, seed=seed)
    return (h, 0.5 * randn(N, H, seed=seed + 1)) if kind == "lstm" else h


def test_length_segments():
    got = [(a, b, r.tolist()) for a, b, r in length_segments(np.array([3, 1, 3, 2]))]
    assert got == [(0, 1, [0, 1, 2, 3]), (1, 2, [0, 2, 3]), (2, 3, [0, 2])], f"length_segments([3, 1, 3, 2]) = {got}"
    got = [(a, b, r.tolist()) for a, b, r in length_segments(np.array([4, 4]))]
    assert got == [(0, 4, [0, 1])], f"equal lengths make one segment, got {got}"


@pytest.mark.parametrize("kind", list(KINDS))
def test_padded_batch_equals_each_sequence_alone(kind, rnn_helpers):
    """Outputs, final states, input gradients and parameter gradients, against every sequence
    run alone without its padding; padding filled with NaN (it must never be read)."""
    N, T = len(LENGTHS), LENGTHS.max()
    x = randn(N, T, D, seed=1)
    h0 = initial(kind, N, seed=2)
    dout, dh_n = randn(N, T, H, seed=3), initial(kind, N, seed=4)
    out_ref, h_ref, dx_ref, dh0_ref, grads_ref = rnn_helpers.run_alone(make(kind), x, LENGTHS, h0, dout, dh_n)

    layer = Packed(make(kind))
    for i, n in enumerate(LENGTHS):
        x[i, n:] = np.nan
    out, h_n = layer.forward(x, h0, LENGTHS)
    layer.zero_grad()
    dx, dh0 = layer.backward(dout, dh_n)
    assert_close(out, out_ref, rtol=1e-12, atol=1e-14, what=f"Packed({kind}) out (0 at padded steps)")
    rnn_helpers.tree(lambda a, b: assert_close(a, b, rtol=1e-12, atol=1e-14, what="h_n: the state after each "
                                               "sequence's last real token"), h_n, h_ref)
    assert_close(dx, dx_ref, rtol=1e-10, atol=1e-13, what="dx (0 at padded steps)")
    rnn_helpers.tree(lambda a, b: assert_close(a, b, rtol=1e-10, atol=1e-13, what="dh0"), dh0, dh0_ref)
    for name, p in layer.named_parameters():
        assert_close(p.grad, grads_ref[name], rtol=1e-10, atol=1e-13, what=f"{name}.grad")


def test_gru_final_state_is_the_output_at_the_last_real_step():
    x = randn(len(LENGTHS), 5, D, seed=5)
    out, h_n = Packed(make("gru", seed=6)).forward(x, None, LENGTHS)
    assert_close(h_n, out[np.arange(len(LENGTHS)), LENGTHS - 1], rtol=0, atol=0, what="h_n[i] = out[i, lengths[i] − 1]")
    assert not out[1, 2:].any() and out[1, :2].all(), "out is 0 exactly at the padded steps"


@settings(max_examples=20)
@given(lengths=st.lists(st.integers(1, 6), min_size=1, max_size=5), seed=st.integers(0, 1000))
def test_padding_values_do_not_matter(lengths, seed):
    lengths = np.array(lengths)
    N, T = len(lengths), 6
    layer = Packed(make("gru", seed=seed))
    x = randn(N, T, D, seed=seed)
    dout = randn(N, T, H, seed=seed + 1)
    out, h_n = layer.forward(x, None, lengths)
    dx, dh0 = layer.backward(dout, None)
    padded = ~(np.arange(T)[None, :] < lengths[:, None])
    x2 = x.copy()
    x2[padded] = 1e3 * randn(int(padded.sum()), D, seed=seed + 2)
    out2, h_n2 = layer.forward(x2, None, lengths)
    dx2, dh02 = layer.backward(dout, None)
    assert_close(out2, out, rtol=0, atol=0, what="out with other padding")
    assert_close(h_n2, h_n, rtol=0, atol=0, what="h_n with other padding")
    assert_close(dx2, dx, rtol=0, atol=0, what="dx with other padding")
    assert not dx[padded].any() and not out[padded].any(), "padded steps: out and dx exactly 0"
    full = Packed(make("gru", seed=seed)).forward(x, None, None)[0]
    assert_close(out[~padded], full[~padded], rtol=1e-12, atol=1e-14,
                 what="real steps: the same as running the padded batch without lengths (a causal layer)")


@pytest.mark.parametrize("kind", ["gru", "rnn"])
def test_backward_matches_finite_differences(kind):
    check_layer(Packed(make(kind, seed=7)), (randn(4, 5, D, seed=8), 0.5 * randn(4, H, seed=9), np.array([5, 2, 3, 2])),
                input_names=("x", "h0", "lengths"))


def test_lstm_backward_matches_finite_differences(rnn_helpers):
    check_layer(rnn_helpers.StateArrays(Packed(make("lstm", seed=10))),
                (randn(3, 4, D, seed=11), 0.5 * randn(3, H, seed=12), 0.5 * randn(3, H, seed=13), np.array([1, 4, 3])),
                input_names=("x", "h0", "c0", "lengths"))


@pytest.mark.parametrize("kind", ["gru", "rnn"])
def test_matches_torch_on_a_packed_sequence(kind, rnn_helpers):
    lengths = np.array([5, 2, 3, 2])
    module = {"gru": "GRU", "rnn": "RNN"}[kind]

    def run(m, x, h0, lengths):
        out, h_n = rnn_helpers.torch_packed(torch_or_skip(), m, x, lengths, h0[None])
        return out, h_n[0]
    check_layer(Packed(make(kind, seed=14)), (randn(4, 5, D, seed=15), 0.5 * randn(4, H, seed=16), lengths),
                input_names=("x", "h0", "lengths"), torch_layer=lambda torch: getattr(torch.nn, module)(D, H, batch_first=True),
                torch_forward=run, oracle=torch_or_skip)


def test_lstm_matches_torch_on_a_packed_sequence(rnn_helpers):
    def run(m, x, h0, c0, lengths):
        out, (h_n, c_n) = rnn_helpers.torch_packed(torch_or_skip(), m, x, lengths, (h0[None], c0[None]))
        return out, h_n[0], c_n[0]
    check_layer(rnn_helpers.StateArrays(Packed(make("lstm", seed=17))),
                (randn(3, 4, D, seed=18), 0.5 * randn(3, H, seed=19), 0.5 * randn(3, H, seed=20), np.array([1, 4, 3])),
                input_names=("x", "h0", "c0", "lengths"), torch_layer=lambda torch: torch.nn.LSTM(D, H, batch_first=True),
                torch_forward=run, oracle=torch_or_skip)


def test_bad_lengths_are_refused():
    layer = Packed(make("gru", seed=21))
    out, _ = layer.forward(randn(2, 3, D, seed=22), None, [3, 1])
    assert out[0].all() and out[1, 0].all() and not out[1, 1:].any(), "lengths may be a list"
    for bad in ([3, 0], [4, 1], [3], [2.0, 1.0]):
        with pytest.raises(ValueError):
            layer.forward(randn(2, 3, D), None, bad)
