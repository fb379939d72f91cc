"""Topic 18: truncated BPTT — the state is carried across chunks, the gradient is not."""

import numpy as np
import pytest

from dlfs.rnn import vanilla as rv
from dlfs.testing import assert_close, check_gradients
from torch_oracle import to_numpy, to_torch, torch_or_skip

N, T, D, H, K = 3, 10, 5, 6, 4         # chunks of 4, 4 and 2 steps


def randn(*shape, seed=0, scale=1.0):
    return scale * np.random.default_rng(seed).standard_normal(shape)


def setup(seed=0):
    layer = rv.RNN(D, H, rng=seed, dtype=np.float64)
    layer.weight_hh_l0.data *= 2.5        # long memory: gradients cross the boundaries noticeably
    return layer, randn(N, T, D, seed=1), randn(N, H, seed=2), randn(N, T, H, seed=3)


def definition(params, x, h0):
    """The RNN written out from its definition (not the layer under test): (out, h_n)."""
    h, outs = h0, []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ params["weight_ih_l0"].T + params["bias_ih_l0"]
                    + h @ params["weight_hh_l0"].T + params["bias_hh_l0"])
        outs.append(h)
    return np.stack(outs, axis=1), h


def run_truncated(layer, x, h0, dout, k=K):
    layer.zero_grad()
    seen = []

    def grad_fn(out, steps):
        seen.append((steps.start, steps.stop))
        return dout[:, steps]

    out, h_n, dx = rv.truncated_bptt(layer, x, k, grad_fn, h0)
    return out, h_n, dx, {n: p.grad.copy() for n, p in layer.named_parameters()}, seen


def run_full(layer, x, h0, dout):
    layer.zero_grad()
    layer.forward(x, h0)
    dx, _ = layer.backward(dout)
    return dx, {n: p.grad.copy() for n, p in layer.named_parameters()}


def test_chunked_forward_equals_the_full_forward():
    layer, x, h0, dout = setup()
    out, h_n, _, _, seen = run_truncated(layer, x, h0, dout)
    assert seen == [(0, 4), (4, 8), (8, 10)], f"expected chunks [0, 4), [4, 8), [8, 10), got {seen}"
    exp_out, exp_h = definition(dict(layer.state_dict()), x, h0)
    assert out.shape == (N, T, H), f"expected out (N, T, H) = {(N, T, H)}, got {out.shape}"
    assert_close(out, exp_out, rtol=1e-12, atol=1e-14, what="concatenated chunk outputs vs one full forward")
    assert_close(h_n, exp_h, rtol=1e-12, atol=1e-14, what="state after the last chunk vs the full forward's h_n")


def test_gradients_equal_those_with_the_carried_state_held_constant():
    """Finite differences of the chunked loss in which each chunk starts from a *fixed* state
    (the value the full forward gives there): no term crosses a boundary."""
    layer, x, h0, dout = setup()
    _, _, dx, grads, _ = run_truncated(layer, x, h0, dout)
    params = {n: p.data.copy() for n, p in layer.named_parameters()}
    full_out, _ = definition(params, x, h0)
    starts = list(range(0, T, K))
    fixed = {s: h0 if s == 0 else full_out[:, s - 1].copy() for s in starts}

    def f():
        return np.concatenate([definition(params, x[:, s:s + K], fixed[s])[0] for s in starts], axis=1)

    check_gradients(f, {"x": x, **params}, {"x": dx, **grads}, dout=dout)


def test_gradients_differ_from_full_bptt_only_by_the_cross_boundary_terms():
    layer, x, h0, dout = setup()
    _, _, dx, grads, _ = run_truncated(layer, x, h0, dout)
    full_dx, full_grads = run_full(layer, x, h0, dout)
    # the last chunk has nothing after it: its input gradients are the full BPTT's
    assert_close(dx[:, 8:], full_dx[:, 8:], rtol=1e-12, atol=1e-14, what="dx of the last chunk vs full BPTT")
    # earlier chunks lose what later steps sent back across the boundary
    gap = np.abs(dx[:, :4] - full_dx[:, :4]).max()
    assert gap > 1e-3, f"dx of the first chunk equals full BPTT's (max difference {gap:.2e}): the gradient crossed a boundary"
    gap = np.abs(grads["weight_hh_l0"] - full_grads["weight_hh_l0"]).max()
    assert gap > 1e-3, f"weight_hh_l0.grad equals full BPTT's (max difference {gap:.2e}): the gradient crossed a boundary"


def test_one_chunk_covering_the_sequence_is_full_bptt():
    layer, x, h0, dout = setup()
    with pytest.raises(ValueError, match="chunk_len"):
        rv.truncated_bptt(layer, x, 0, lambda out, s: dout[:, s], h0)
    out, _, dx, grads, seen = run_truncated(layer, x, h0, dout, k=T + 3)
    assert seen == [(0, T)], f"expected one chunk [0, {T}), got {seen}"
    full_dx, full_grads = run_full(layer, x, h0, dout)
    assert_close(dx, full_dx, rtol=1e-12, atol=1e-14, what="dx with one chunk vs full BPTT")
    for n in grads:
        assert_close(grads[n], full_grads[n], rtol=1e-12, atol=1e-14, what=f"{n}.grad with one chunk vs full BPTT")


def test_truncated_bptt_matches_torch_with_detached_state():
    torch = torch_or_skip()
    layer, x, h0, dout = setup()
    _, h_n, dx, grads, _ = run_truncated(layer, x, h0, dout)
    module = torch.nn.RNN(D, H, batch_first=True).double()
    module.load_state_dict({k: to_torch(v) for k, v in layer.state_dict().items()})
    tx = to_torch(x, requires_grad=True)
    h = to_torch(h0)[None]
    for s in range(0, T, K):
        out, h = module(tx[:, s:s + K], h)
        (out * to_torch(dout[:, s:s + K])).sum().backward()
        h = h.detach()                          # the carried state is a constant
    assert_close(h_n, to_numpy(h)[0], rtol=1e-10, atol=1e-12, what="final state vs torch")
    assert_close(dx, to_numpy(tx.grad), rtol=1e-8, atol=1e-10, what="dx vs torch with h.detach()")
    for name, p in module.named_parameters():
        assert_close(grads[name], to_numpy(p.grad), rtol=1e-8, atol=1e-10, what=f"{name}.grad vs torch with h.detach()")
