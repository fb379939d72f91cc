"""Shared by Topic 24's tests (as fixtures): a padded batch (``tests/helpers/seq2seq_data.py``),
additive attention and the attention decoder written out from the paper's equations with loops
(independent of the code under test), and the same model in PyTorch ops."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from seq2seq_data import padded_batch


def attention_by_hand(s, h, mask, W_q, W_k, b_k, v):
    """s: (N, Dq), h: (N, S, Dv), mask: (N, S) -> (context (N, Dv), weights (N, S)), position
    by position: e_j = v·tanh(s W_q + h_j W_k + b_k) over the real j, softmax, Σ α_j h_j."""
    N, S, Dv = h.shape
    context, weights = np.zeros((N, Dv)), np.zeros((N, S))
    for n in range(N):
        real = [j for j in range(S) if mask[n, j]]
        e = np.array([v @ np.tanh(s[n] @ W_q + h[n, j] @ W_k + b_k) for j in real])
        a = np.exp(e - e.max())
        a /= a.sum()
        for j, w in zip(real, a):
            weights[n, j] = w
            context[n] += w * h[n, j]
    return context, weights


def gru_step_by_hand(x, h, W_ih, W_hh, b_ih, b_hh):
    """torch.nn.GRUCell's documented equations, gate blocks r, z, n."""
    H = h.shape[1]
    gx, gh = x @ W_ih.T + b_ih, h @ W_hh.T + b_hh
    sig = lambda a: 1.0 / (1.0 + np.exp(-a))      # noqa: E731
    r, z = sig(gx[:, :H] + gh[:, :H]), sig(gx[:, H:2 * H] + gh[:, H:2 * H])
    n = np.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
    return (1 - z) * n + z * h


def decoder_by_hand(model, src, lengths, tgt_in):
    """The attention decoder of Bahdanau et al. from the model's weights, one step at a time:
    s_0 = tanh(←h_1 W_s + b_s); c_i, α_i = attention(s_{i−1}, h); s_i = GRU([E y_{i−1}; c_i],
    s_{i−1}); logits_i = [s_i; c_i] W_o + b_o. The encoder is the model's (Topic 21's layer).
    Returns (logits (N, T, V), weights (N, T, S))."""
    h, h_n = model.encoder.forward(model.src_embed.W.data[src], None, lengths)
    mask = np.arange(src.shape[1])[None, :] < lengths[:, None]
    s = np.tanh(h_n[1] @ model.init.W.data + model.init.b.data)
    a, c = model.attention, model.cell
    logits, weights = [], []
    for t in range(tgt_in.shape[1]):
        ctx, w = attention_by_hand(s, h, mask, a.W_q.data, a.W_k.data, a.b_k.data, a.v.data)
        x = np.concatenate([model.tgt_embed.W.data[tgt_in[:, t]], ctx], axis=1)
        s = gru_step_by_hand(x, s, c.weight_ih.data, c.weight_hh.data, c.bias_ih.data, c.bias_hh.data)
        logits.append(np.concatenate([s, ctx], axis=1) @ model.out.W.data + model.out.b.data)
        weights.append(w)
    return np.stack(logits, axis=1), np.stack(weights, axis=1)


def torch_attention(torch, s, h, mask, W_q, W_k, b_k, v):
    """Additive attention in torch ops: -> (context, weights)."""
    e = torch.tanh((h @ W_k + b_k) + (s @ W_q)[:, None, :]) @ v
    a = torch.softmax(e.masked_fill(~mask, float("-inf")), dim=-1)
    return (a[:, :, None] * h).sum(dim=1), a


def torch_attention_seq2seq(torch, src, lengths, tgt_in, **p):
    """The whole model in torch: torch.nn.GRU(bidirectional=True) on the packed source and
    torch.nn.GRUCell for the decoder (weights through functional_call), attention in torch ops."""
    from torch.func import functional_call
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    E, He = p["src_embed.W"].shape[1], p["encoder.forward_rnn.layer.weight_hh_l0"].shape[1]
    Hd = p["cell.weight_hh"].shape[1]
    names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
    weights = {k: p[f"encoder.forward_rnn.layer.{k}"] for k in names}
    weights.update({f"{k}_reverse": p[f"encoder.reverse_rnn.layer.{k}"] for k in names})
    gru = torch.nn.GRU(E, He, batch_first=True, bidirectional=True).double()
    packed = pack_padded_sequence(p["src_embed.W"][src], lengths, batch_first=True, enforce_sorted=False)
    out, h_n = functional_call(gru, weights, (packed,))
    h, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
    mask = torch.arange(src.shape[1])[None, :] < lengths[:, None]
    s = torch.tanh(h_n[1] @ p["init.W"] + p["init.b"])
    cell = torch.nn.GRUCell(E + 2 * He, Hd).double()
    cell_weights = {k: p[f"cell.{k}"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    emb = p["tgt_embed.W"][tgt_in]
    logits = []
    for t in range(tgt_in.shape[1]):
        c, _ = torch_attention(torch, s, h, mask, p["attention.W_q"], p["attention.W_k"], p["attention.b_k"],
                               p["attention.v"])
        s = functional_call(cell, cell_weights, (torch.cat([emb[:, t], c], dim=-1), s))
        logits.append(torch.cat([s, c], dim=-1) @ p["out.W"] + p["out.b"])
    return torch.stack(logits, dim=1)


@pytest.fixture(scope="session")
def by_hand():
    return SimpleNamespace(attention=attention_by_hand, decoder=decoder_by_hand, torch_attention=torch_attention,
                           torch_model=torch_attention_seq2seq)


@pytest.fixture(scope="session")
def batch():
    return padded_batch
