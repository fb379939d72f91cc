"""Topic 18: clipping the global gradient norm of an RNN (Topic 03's clip_grad_norm on BPTT's gradients)."""

import numpy as np

from dlfs.optim.schedules import clip_grad_norm
from dlfs.rnn import vanilla as rv
from dlfs.testing import assert_close
from torch_oracle import to_numpy, to_torch, torch_or_skip

N, T, D, H = 3, 7, 5, 6


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def exploding_rnn():
    """Large recurrent weights: the gradient grows as it goes back through time."""
    layer = rv.RNN(D, H, rng=0, dtype=np.float64)
    layer.weight_hh_l0.data *= 4.0
    return layer


def bptt_gradients(layer):
    layer.zero_grad()
    layer.forward(randn(N, T, D, seed=1), randn(N, H, seed=2))
    layer.backward(randn(N, T, H, seed=3), randn(N, H, seed=4))
    return {n: p.grad.copy() for n, p in layer.named_parameters()}


def test_clipping_rescales_all_gradients_by_one_global_factor():
    layer = exploding_rnn()
    before = bptt_gradients(layer)
    norm = np.sqrt(sum(np.sum(g ** 2) for g in before.values()))
    assert norm > 5, f"expected a large BPTT gradient norm with weight_hh × 4, got {norm:.3g}"
    returned = clip_grad_norm(layer.parameters(), 1.0)
    assert_close(returned, norm, rtol=1e-12, atol=0, what="clip_grad_norm's return value (the norm before clipping)")
    scale = 1.0 / (norm + 1e-6)
    for n, p in layer.named_parameters():
        assert_close(p.grad, before[n] * scale, rtol=1e-12, atol=1e-15, what=f"{n}.grad after clipping")
    after = np.sqrt(sum(np.sum(p.grad ** 2) for p in layer.parameters()))
    assert_close(after, 1.0, rtol=1e-5, atol=0, what="global norm after clipping to 1")


def test_gradients_below_the_threshold_are_untouched():
    layer = exploding_rnn()
    before = bptt_gradients(layer)
    norm = np.sqrt(sum(np.sum(g ** 2) for g in before.values()))
    clip_grad_norm(layer.parameters(), 2 * norm)
    for n, p in layer.named_parameters():
        assert_close(p.grad, before[n], rtol=0, atol=0, what=f"{n}.grad after clipping above its norm")


def test_clipping_matches_torch_clip_grad_norm():
    torch = torch_or_skip()
    layer = exploding_rnn()
    bptt_gradients(layer)
    ours = clip_grad_norm(layer.parameters(), 0.5)
    module = torch.nn.RNN(D, H, batch_first=True).double()
    module.load_state_dict({k: to_torch(v) for k, v in layer.state_dict().items()})
    out, h_n = module(to_torch(randn(N, T, D, seed=1)), to_torch(randn(N, H, seed=2))[None])
    torch.autograd.backward([out, h_n], [to_torch(randn(N, T, H, seed=3)), to_torch(randn(N, H, seed=4))[None]])
    theirs = torch.nn.utils.clip_grad_norm_(module.parameters(), 0.5)
    assert_close(ours, float(theirs), rtol=1e-10, atol=0, what="global norm vs torch.nn.utils.clip_grad_norm_")
    for name, p in module.named_parameters():
        assert_close(dict(layer.named_parameters())[name].grad, to_numpy(p.grad), rtol=1e-8, atol=1e-12,
                     what=f"{name}.grad after clipping vs torch")
