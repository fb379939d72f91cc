"""Topic 19: truncated BPTT (Topic 18's helper) carries the LSTM's (h, c) across chunks."""

import numpy as np

from dlfs.rnn import lstm as rl
from dlfs.rnn.vanilla import truncated_bptt
from dlfs.testing import assert_close
from torch_oracle import to_numpy, to_torch, torch_or_skip

N, T, D, H, K = 2, 9, 4, 5, 4


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def run(layer, x, state, dout):
    layer.zero_grad()
    out, (h_n, c_n), dx = truncated_bptt(layer, x, K, lambda out, steps: dout[:, steps], state)
    return np.array(out), h_n, c_n, dx, {n: p.grad.copy() for n, p in layer.named_parameters()}


def test_chunks_carry_both_states():
    layer = rl.LSTM(D, H, rng=0, dtype=np.float64)
    x, dout = randn(N, T, D, seed=1), randn(N, T, H, seed=2)
    state = (randn(N, H, seed=3), randn(N, H, seed=4))
    out, h_n, c_n, dx, _ = run(layer, x, state, dout)
    full_out, (full_h, full_c) = layer.forward(x, state)
    assert_close(out, full_out, rtol=1e-12, atol=1e-14, what="concatenated chunk outputs vs the full forward")
    assert_close(c_n, full_c, rtol=1e-12, atol=1e-14, what="c after the last chunk vs the full forward")
    full_dx, _ = layer.backward(dout)
    assert_close(dx[:, 8:], full_dx[:, 8:], rtol=1e-12, atol=1e-14, what="dx of the last chunk vs full BPTT")
    assert np.abs(dx[:, :4] - full_dx[:, :4]).max() > 1e-6, "dx of the first chunk equals full BPTT's: not truncated"


def test_truncated_lstm_matches_torch_with_detached_state():
    torch = torch_or_skip()
    layer = rl.LSTM(D, H, rng=0, dtype=np.float64, forget_bias=1.0)
    x, dout = randn(N, T, D, seed=1), randn(N, T, H, seed=2)
    _, h_n, c_n, dx, grads = run(layer, x, None, dout)
    module = torch.nn.LSTM(D, H, batch_first=True).double()
    module.load_state_dict({k: to_torch(v) for k, v in layer.state_dict().items()})
    tx = to_torch(x, requires_grad=True)
    state = None
    for s in range(0, T, K):
        out, (h, c) = module(tx[:, s:s + K], state)
        (out * to_torch(dout[:, s:s + K])).sum().backward()
        state = (h.detach(), c.detach())
    assert_close(c_n, to_numpy(state[1])[0], rtol=1e-10, atol=1e-12, what="final c vs torch")
    assert_close(dx, to_numpy(tx.grad), rtol=1e-8, atol=1e-10, what="dx vs torch with detached (h, c)")
    for name, p in module.named_parameters():
        assert_close(grads[name], to_numpy(p.grad), rtol=1e-8, atol=1e-10, what=f"{name}.grad vs torch, detached (h, c)")
