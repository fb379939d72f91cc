"""Topic 21: bidirectional recurrent layers over variable-length batches, as
torch.nn.GRU/LSTM/RNN(bidirectional=True, batch_first=True) on packed sequences."""

import numpy as np
import pytest

from dlfs.rnn.bidirectional import Bidirectional
from dlfs.rnn.gru import GRU
from dlfs.rnn.lstm import LSTM
from dlfs.rnn.vanilla import RNN
from dlfs.testing import assert_close, check_layer
from torch_oracle import torch_or_skip

D, H = 3, 4
LENGTHS = np.array([5, 2, 4, 1])
KINDS = {"gru": GRU, "rnn": RNN, "lstm": LSTM}
TORCH = {"gru": "GRU", "rnn": "RNN", "lstm": "LSTM"}


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def make(kind, seed=0):
    return Bidirectional.of(KINDS[kind], D, H, rng=seed, dtype=np.float64)


def initial(kind, N, seed):
    h = 0.5 * randn(2, N, H, seed=seed)
    return (h, 0.5 * randn(2, N, H, seed=seed + 1)) if kind == "lstm" else h


@pytest.mark.parametrize("kind", list(KINDS))
def test_equals_both_directions_run_on_each_sequence_alone(kind, rnn_helpers):
    """Forward direction on x[i, :n], reverse direction on x[i, n−1::−1], each from its own
    initial state: outputs, final states, every gradient."""
    tree = rnn_helpers.tree
    N, T = len(LENGTHS), LENGTHS.max()
    x, h0 = randn(N, T, D, seed=1), initial(kind, N, seed=2)
    dout, dh_n = randn(N, T, 2 * H, seed=3), initial(kind, N, seed=4)
    bi = make(kind, seed=5)
    fwd, rev = bi.forward_rnn.layer, bi.reverse_rnn.layer
    direction = lambda s, d: tree(lambda a: a[d], s)        # noqa: E731
    ref_f = rnn_helpers.run_alone(fwd, x, LENGTHS, direction(h0, 0), dout[..., :H], direction(dh_n, 0))
    ref_r = rnn_helpers.run_alone(rev, x, LENGTHS, direction(h0, 1), dout[..., H:], direction(dh_n, 1), reverse=True)

    x_nan = x.copy()
    for i, n in enumerate(LENGTHS):
        x_nan[i, n:] = np.nan
    out, h_n = bi.forward(x_nan, h0, LENGTHS)
    bi.zero_grad()
    dx, dh0 = bi.backward(dout, dh_n)
    assert_close(out, np.concatenate([ref_f[0], ref_r[0]], axis=-1), rtol=1e-12, atol=1e-14,
                 what=f"Bidirectional({kind}) out = [forward | reverse], 0 at padded steps")
    tree(lambda a, b, c: assert_close(a, np.stack([b, c]), rtol=1e-12, atol=1e-14, what="h_n: (2, N, H), forward first"),
         h_n, ref_f[1], ref_r[1])
    assert_close(dx, ref_f[2] + ref_r[2], rtol=1e-10, atol=1e-13, what="dx: the sum of both directions, 0 at padding")
    tree(lambda a, b, c: assert_close(a, np.stack([b, c]), rtol=1e-10, atol=1e-13, what="dh0"), dh0, ref_f[3], ref_r[3])
    params = dict(bi.named_parameters())
    for name, g in ref_f[4].items():
        assert_close(params[name].grad, g, rtol=1e-10, atol=1e-13, what=f"{name}.grad")
    for name, g in ref_r[4].items():
        assert_close(params[name + "_reverse"].grad, g, rtol=1e-10, atol=1e-13, what=f"{name}_reverse.grad")


def test_the_reverse_direction_starts_at_each_sequences_last_real_token():
    bi = make("gru", seed=6)
    x = randn(len(LENGTHS), 5, D, seed=7)
    out, h_n = bi.forward(x, None, LENGTHS)
    rows = np.arange(len(LENGTHS))
    assert_close(h_n[0], out[rows, LENGTHS - 1, :H], rtol=0, atol=0,
                 what="h_n[0]: the forward direction's state at the last real step")
    assert_close(h_n[1], out[:, 0, H:], rtol=0, atol=0,
                 what="h_n[1]: the reverse direction's state after reading back to step 0")
    i, n = 1, LENGTHS[1]
    _, h_first = bi.reverse_rnn.layer.forward(x[i:i + 1, n - 1:n])        # the reverse direction's first step
    assert_close(out[i, n - 1, H:], h_first[0], rtol=1e-12, atol=1e-14,
                 what=f"out[{i}, {n - 1}, H:]: the reverse direction's first step reads the last real token alone")


def test_parameters_are_named_as_torch_and_drawn_in_its_order():
    torch = torch_or_skip()
    bi = make("gru", seed=8)
    module = torch.nn.GRU(D, H, batch_first=True, bidirectional=True)
    assert [n for n, _ in bi.named_parameters()] == [n for n, _ in module.named_parameters()], \
        f"names: {[n for n, _ in bi.named_parameters()]}"
    module.load_state_dict({k: torch.from_numpy(v) for k, v in bi.state_dict().items()})
    x = randn(2, 3, D, seed=9)
    out, h_n = bi.forward(x)
    tout, th_n = module(torch.from_numpy(x))
    assert_close(out, tout.detach().numpy(), rtol=1e-10, atol=1e-12, what="out vs torch without packing (full lengths)")
    assert_close(h_n, th_n.detach().numpy(), rtol=1e-10, atol=1e-12, what="h_n vs torch")
    rng = np.random.default_rng(8)
    again = GRU(D, H, rng=rng, dtype=np.float64), GRU(D, H, rng=rng, dtype=np.float64)
    assert_close(bi.state_dict()["weight_hh_l0_reverse"], again[1].weight_hh_l0.data, rtol=0, atol=0,
                 what="Bidirectional.of: the reverse layer is drawn after the forward one, from the same generator")


@pytest.mark.parametrize("kind", ["gru", "rnn"])
def test_backward_matches_finite_differences(kind):
    check_layer(make(kind, seed=10), (randn(4, 5, D, seed=11), 0.5 * randn(2, 4, H, seed=12), np.array([5, 2, 3, 1])),
                input_names=("x", "h0", "lengths"))


def test_lstm_backward_matches_finite_differences(rnn_helpers):
    check_layer(rnn_helpers.StateArrays(make("lstm", seed=13)),
                (randn(3, 4, D, seed=14), 0.5 * randn(2, 3, H, seed=15), 0.5 * randn(2, 3, H, seed=16), np.array([2, 4, 1])),
                input_names=("x", "h0", "c0", "lengths"))


@pytest.mark.parametrize("kind", ["gru", "rnn"])
def test_matches_torch_on_packed_sequences(kind, rnn_helpers):
    check_layer(make(kind, seed=17), (randn(4, 5, D, seed=18), 0.5 * randn(2, 4, H, seed=19), np.array([5, 2, 3, 2])),
                input_names=("x", "h0", "lengths"),
                torch_layer=lambda torch: getattr(torch.nn, TORCH[kind])(D, H, batch_first=True, bidirectional=True),
                torch_forward=lambda m, x, h0, lengths: rnn_helpers.torch_packed(torch_or_skip(), m, x, lengths, h0),
                oracle=torch_or_skip)


def test_lstm_matches_torch_on_packed_sequences(rnn_helpers):
    def run(m, x, h0, c0, lengths):
        out, (h_n, c_n) = rnn_helpers.torch_packed(torch_or_skip(), m, x, lengths, (h0, c0))
        return out, h_n, c_n
    check_layer(rnn_helpers.StateArrays(make("lstm", seed=20)),
                (randn(3, 4, D, seed=21), 0.5 * randn(2, 3, H, seed=22), 0.5 * randn(2, 3, H, seed=23), np.array([2, 4, 1])),
                input_names=("x", "h0", "c0", "lengths"),
                torch_layer=lambda torch: torch.nn.LSTM(D, H, batch_first=True, bidirectional=True),
                torch_forward=run, oracle=torch_or_skip)


def test_float32_and_bad_arguments():
    bi = Bidirectional.of(GRU, D, H, rng=24)
    out, h_n = bi.forward(randn(2, 3, D, seed=25).astype(np.float32), None, [3, 2])
    assert out.dtype == np.float32 and out.shape == (2, 3, 2 * H) and h_n.shape == (2, 2, H), \
        f"expected float32 out (2, 3, {2 * H}) and h_n (2, 2, {H}), got {out.dtype} {out.shape}, {h_n.shape}"
    assert not out[1, 2].any() and out[1, 1].all(), "the padded step of sequence 1 is 0, its real steps are not"
    with pytest.raises(ValueError):
        bi.forward(randn(2, 3, D).astype(np.float32), np.zeros((2, H), np.float32))       # h0 must be (2, N, H)
    with pytest.raises(ValueError):
        Bidirectional(GRU(D, H), GRU(D, H + 1))
    with pytest.raises(ValueError):
        Bidirectional(GRU(D, H, num_layers=2), GRU(D, H, num_layers=2))
