"""Shared by Topic 21's tests (as fixtures): each sequence of a padded batch run alone, without
its padding, through a recurrent layer; PyTorch's packed-sequence run; and an adapter that
gives a layer with an (h, c) state array inputs and outputs, as the shared layer check needs."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from dlfs.nn.layers import Layer


def tree(fn, *states):
    """fn over the arrays of states that are an array, a tuple of arrays, or None."""
    if states[0] is None:
        return None
    if isinstance(states[0], tuple):
        return tuple(tree(fn, *parts) for parts in zip(*states))
    return fn(*states)


def run_alone(layer, x, lengths, h0=None, dout=None, dh_n=None, reverse=False):
    """Sequence i alone: ``layer`` on ``x[i, :lengths[i]]`` (reversed in time when ``reverse``),
    from ``h0[i]``, then its backward with ``dout[i, :lengths[i]]`` and ``dh_n[i]``.
    States are (N, H) arrays or tuples of them (one layer). Returns out (N, T, H) and dx
    (N, T, D), zero at padded steps, h_n and dh0 with a row per sequence, and the parameter
    gradients summed over the sequences."""
    N, T, _ = x.shape
    flip = (lambda a: a[:, ::-1]) if reverse else (lambda a: a)
    layer.zero_grad()
    out = dx = None
    h_rows, d_rows = [], []
    for i, n in enumerate(lengths):
        o, h = layer.forward(np.ascontiguousarray(flip(x[i:i + 1, :n])), tree(lambda a: a[i:i + 1], h0))
        d_out = None if dout is None else np.ascontiguousarray(flip(dout[i:i + 1, :n]))
        g, d0 = layer.backward(d_out, tree(lambda a: a[i:i + 1], dh_n))
        if out is None:
            out, dx = np.zeros((N, T, o.shape[-1])), np.zeros(x.shape)
        out[i, :n], dx[i, :n] = flip(o)[0], flip(g)[0]
        h_rows.append(tree(np.copy, h))
        d_rows.append(tree(np.copy, d0))
    grads = {name: p.grad.copy() for name, p in layer.named_parameters()}
    return out, tree(lambda *r: np.concatenate(r), *h_rows), dx, tree(lambda *r: np.concatenate(r), *d_rows), grads


def torch_packed(torch, module, x, lengths, state):
    """PyTorch's run of ``module`` (batch_first) over the padded batch packed by ``lengths``;
    outputs padded back to x's length with zeros."""
    pack = torch.nn.utils.rnn.pack_padded_sequence(x, torch.as_tensor(np.asarray(lengths)), batch_first=True,
                                                   enforce_sorted=False)
    out, h_n = module(pack, state)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return out, h_n


class StateArrays(Layer):
    """``forward(x, h0, c0, lengths) -> (out, h_n, c_n)`` around a layer whose state is the
    tuple (h, c): the layer check differentiates array inputs and outputs only."""

    def __init__(self, inner):
        self.inner = inner

    def named_parameters(self, prefix=""):
        return self.inner.named_parameters(prefix)

    def forward(self, x, h0, c0, lengths):
        out, (h, c) = self.inner.forward(x, (h0, c0), lengths)
        return out, h, c

    def backward(self, dout, dh, dc):
        dx, (dh0, dc0) = self.inner.backward(dout, (dh, dc))
        return dx, dh0, dc0


@pytest.fixture(scope="session")
def rnn_helpers():
    return SimpleNamespace(tree=tree, run_alone=run_alone, torch_packed=torch_packed, StateArrays=StateArrays)
