"""Topic 24 — Bahdanau (additive) attention and the attention decoder of Bahdanau et al. (2015).

**Additive attention.** At decoder step i the previous decoder state s = s_{i−1}: (N, Dq)
looks at every encoder output h_j: (N, S, Dv) and takes a weighted average of them:

    q   = s W_q                              (N, A)       W_q: (Dq, A)
    k_j = h_j W_k + b_k                      (N, S, A)    W_k: (Dv, A); once per source
    e_j = vᵀ tanh(q + k_j)                   (N, S)       v: (A,)   the alignment scores
    α   = softmax_j(e_j) over the real positions only; padded positions get α_j = 0 exactly
    c   = Σ_j α_j h_j                        (N, Dv)      the context vector

The keys k_j do not depend on the decoder step: they are computed once per source
(:meth:`BahdanauAttention.project_keys`) and every step adds its own q to them. Padded
positions get the score −∞ before the softmax (``dlfs.numerics.softmax`` gives them 0).

**The attention decoder.** The encoder is a bidirectional GRU (``dlfs.rnn.Bidirectional``, as in
the paper), so h_j = [→h_j; ←h_j] summarises the source around position j. The decoder is a GRU
whose input at step i is the previous output token *and* the context:

    s_0 = tanh(←h_1 W_s + b_s)                 the reverse direction's final state (the paper's choice)
    for i = 1..T:
        c_i, α_i = attention(s_{i−1}, h)        the previous state attends
        s_i = GRU([E y_{i−1}; c_i], s_{i−1})    the token embedding and the context, side by side
        logits_i = [s_i; c_i] W_o + b_o         (N, V)

The paper's output layer is a maxout over ``U_o s_{i−1} + V_o E y_{i−1} + C_o c_i``; here the
logits are a linear function of [s_i; c_i], a common simplification (Luong et al., 2015 use
the same inputs). Training uses teacher forcing and the masked loss of Topic 23
(:func:`dlfs.seq2seq.encoder_decoder.sequence_loss`); decoding uses the same
``start``/``step`` interface as Topic 23's :class:`~dlfs.seq2seq.encoder_decoder.Seq2Seq`, and the
step returns the attention weights (B, S) for plotting.

Everything keeps the parameters' dtype (float32 for training, float64 for gradient checks).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from dlfs.nn.activations import softmax_backward, tanh_backward
from dlfs.nn.embedding import Embedding
from dlfs.nn.layers import Layer, Linear, Parameter
from dlfs.numerics import log_softmax, softmax
from dlfs.rnn.bidirectional import Bidirectional
from dlfs.rnn.gru import GRU, GRUCell, gru_cell_backward, gru_cell_forward
from dlfs.rnn.masking import length_mask

__all__ = ["AttentionCache", "additive_attention", "additive_attention_backward", "BahdanauAttention",
           "AttentionSeq2Seq"]


class AttentionCache(NamedTuple):
    """What one attention step keeps for its backward: query (N, Dq), tanh_out (N, S, A) =
    tanh(q + k), weights (N, S), values (N, S, Dv)."""
    query: np.ndarray
    tanh_out: np.ndarray
    weights: np.ndarray
    values: np.ndarray


def additive_attention(query: np.ndarray, keys: np.ndarray, values: np.ndarray, mask: np.ndarray,
                       W_q: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, AttentionCache]:
    """One step of additive attention.

    query: (N, Dq) the decoder's previous state; keys: (N, S, A) = values W_k + b_k (precomputed);
    values: (N, S, Dv) the encoder outputs; mask: (N, S) bool, True = real position (at least
    one per row); W_q: (Dq, A); v: (A,) -> ``(context (N, Dv), weights (N, S), cache)``.
    ``weights`` sum to 1 over the real positions of each row and are exactly 0 at the others.
    """
    # TODO: broadcast q (N, 1, A) against the keys (N, S, A); masked scores are −∞ before
    #       dlfs.numerics.softmax; the context is a batched weighted sum: (N, 1, S) @ (N, S, Dv)
    #       is faster than einsum here (one small matrix product per row).
    # BEGIN SOLUTION q = query W_q; t = tanh(keys + q); scores = t v; weights = softmax over real positions; context = Σ_j weights_j values_j
    q = query @ W_q
    t = np.tanh(keys + q[:, None, :])
    scores = t @ v
    weights = softmax(np.where(mask, scores, -np.inf), axis=-1)
    context = (weights[:, None, :] @ values)[:, 0]                # (N, 1, S) @ (N, S, Dv): batched
    return context, weights, AttentionCache(query, t, weights, values)
    # END SOLUTION


def additive_attention_backward(dcontext: np.ndarray, dweights: np.ndarray | None, cache: AttentionCache,
                                W_q: np.ndarray, v: np.ndarray
                                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The backward of :func:`additive_attention`.

    dcontext: (N, Dv); dweights: (N, S) or None (no loss on the weights themselves) ->
    ``(dquery (N, Dq), dkeys (N, S, A), dvalues (N, S, Dv), dW_q (Dq, A), dv (A,))``.
    Padded positions get exactly 0 in dkeys and dvalues (their weight is 0).
    """
    # TODO: the weights receive dcontext · h_j from the context, then go back through the softmax
    #       (dlfs.nn.activations.softmax_backward) and tanh (tanh_backward, from its output).
    #       q was broadcast over the S positions: its gradient sums over them.
    # BEGIN SOLUTION dweights += dcontext·values; dvalues = weights ⊗ dcontext; dscores by softmax_backward; da = tanh_backward(dscores ⊗ v, t); dkeys = da, dq = Σ_j da
    query, t, weights, values = cache
    dw = (values @ dcontext[:, :, None])[:, :, 0]                 # dcontext · h_j for every j
    if dweights is not None:
        dw = dw + dweights
    dvalues = weights[:, :, None] * dcontext[:, None, :]
    dscores = softmax_backward(dw, weights)
    da = tanh_backward(dscores[:, :, None] * v, t)
    dq = da.sum(axis=1)
    dv = dscores.reshape(1, -1) @ t.reshape(-1, t.shape[-1])     # Σ_n Σ_j dscores_nj t_nj
    return dq @ W_q.T, da, dvalues, query.T @ dq, dv[0]
    # END SOLUTION


class BahdanauAttention(Layer):
    """Additive attention as a layer (given code around the two functions above).

    Parameters: ``W_q`` (Dq, A), ``W_k`` (Dv, A), ``b_k`` (A,), ``v`` (A,), each drawn from
    U(−1/√fan_in, 1/√fan_in) (fan_in Dq, Dv, Dv and A) in that order from ``rng``.

    forward(query (N, Dq), values (N, S, Dv), mask (N, S) bool) -> (context (N, Dv), weights (N, S));
    backward(dcontext, dweights=None) -> (dquery, dvalues), dvalues including the path through
    the keys. A decoder that runs many steps calls :meth:`project_keys` once, :meth:`attend`
    each step, :meth:`attend_backward` for each step in reverse, then :meth:`keys_backward` once.
    """

    def __init__(self, query_dim: int, value_dim: int, attn_dim: int,
                 rng: np.random.Generator | int | None = None, dtype=np.float32):
        rng = np.random.default_rng(rng)
        self.query_dim, self.value_dim, self.attn_dim = int(query_dim), int(value_dim), int(attn_dim)

        def uniform(shape, fan_in):
            bound = 1.0 / math.sqrt(fan_in)
            return rng.uniform(-bound, bound, shape).astype(dtype)

        self.W_q = Parameter(uniform((query_dim, attn_dim), query_dim), name="W_q")
        self.W_k = Parameter(uniform((value_dim, attn_dim), value_dim), name="W_k")
        self.b_k = Parameter(uniform((attn_dim,), value_dim), name="b_k")
        self.v = Parameter(uniform((attn_dim,), attn_dim), name="v")
        self._values: np.ndarray | None = None
        self._cache: AttentionCache | None = None

    def extra_repr(self) -> str:
        return f"query_dim={self.query_dim}, value_dim={self.value_dim}, attn_dim={self.attn_dim}"

    def project_keys(self, values: np.ndarray) -> np.ndarray:
        """values: (N, S, Dv) -> keys (N, S, A) = values W_k + b_k, one matmul for every position."""
        self._values = values
        N, S, D = values.shape
        return (values.reshape(N * S, D) @ self.W_k.data + self.b_k.data).reshape(N, S, -1)

    def keys_backward(self, dkeys: np.ndarray) -> np.ndarray:
        """dkeys: (N, S, A) summed over the decoder steps -> the gradient reaching values through
        the keys (N, S, Dv); accumulates W_k.grad and b_k.grad."""
        N, S, A = dkeys.shape
        d2, v2 = dkeys.reshape(N * S, A), self._values.reshape(N * S, -1)
        self.W_k.accumulate_grad(v2.T @ d2)
        self.b_k.accumulate_grad(d2.sum(axis=0))
        return (d2 @ self.W_k.data.T).reshape(N, S, -1)

    def attend(self, query: np.ndarray, keys: np.ndarray, values: np.ndarray, mask: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, AttentionCache]:
        """One step: :func:`additive_attention` with this layer's W_q and v."""
        return additive_attention(query, keys, values, mask, self.W_q.data, self.v.data)

    def attend_backward(self, dcontext: np.ndarray, dweights: np.ndarray | None, cache: AttentionCache
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """-> (dquery, dkeys, dvalues) of one step; accumulates W_q.grad and v.grad."""
        dq, dkeys, dvalues, dW_q, dv = additive_attention_backward(dcontext, dweights, cache,
                                                                   self.W_q.data, self.v.data)
        self.W_q.accumulate_grad(dW_q)
        self.v.accumulate_grad(dv)
        return dq, dkeys, dvalues

    def forward(self, query: np.ndarray, values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        context, weights, self._cache = self.attend(query, self.project_keys(values), values, mask)
        return context, weights

    def backward(self, dcontext: np.ndarray, dweights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        if self._cache is None:
            raise RuntimeError("BahdanauAttention.backward called before forward")
        dq, dkeys, dvalues = self.attend_backward(dcontext, dweights, self._cache)
        return dq, dvalues + self.keys_backward(dkeys)


class AttentionSeq2Seq(Layer):
    """The encoder–decoder with attention of Bahdanau et al. (2015), GRUs throughout.

    forward(src (N, S) int, src_lengths (N,), tgt_in (N, T) int) -> logits (N, T, V_tgt), and
    ``self.attention_weights`` (N, T, S): row t is where step t looked;
    backward(dlogits (N, T, V_tgt)) -> None (accumulates every parameter's gradient).

    Layers (created in this order from ``rng``): ``src_embed`` Embedding(V_src, E); ``encoder``
    Bidirectional GRU(E, He) (outputs 2He); ``init`` Linear(He, Hd) (s_0 from ←h_1);
    ``attention`` BahdanauAttention(Hd, 2He, A); ``tgt_embed`` Embedding(V_tgt, E); ``cell`` a
    GRUCell(E + 2He, Hd) holding the decoder's weights (input columns: embedding, then context);
    ``out`` Linear(Hd + 2He, V_tgt) on [s_i; c_i].
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, embed_dim: int = 32, enc_hidden: int = 64,
                 dec_hidden: int = 128, attn_dim: int = 64, *, pad_id: int = 0, bos_id: int = 1,
                 eos_id: int = 2, rng: np.random.Generator | int | None = None, dtype=np.float32):
        rng = np.random.default_rng(rng)
        self.pad_id, self.bos_id, self.eos_id = int(pad_id), int(bos_id), int(eos_id)
        self.embed_dim, self.enc_hidden, self.dec_hidden = int(embed_dim), int(enc_hidden), int(dec_hidden)
        self.src_embed = Embedding(src_vocab, embed_dim, rng=rng, dtype=dtype)
        self.encoder = Bidirectional.of(GRU, embed_dim, enc_hidden, rng=rng, dtype=dtype)
        self.init = Linear(enc_hidden, dec_hidden, rng=rng, dtype=dtype)
        self.attention = BahdanauAttention(dec_hidden, 2 * enc_hidden, attn_dim, rng=rng, dtype=dtype)
        self.tgt_embed = Embedding(tgt_vocab, embed_dim, rng=rng, dtype=dtype)
        self.cell = GRUCell(embed_dim + 2 * enc_hidden, dec_hidden, rng=rng, dtype=dtype)
        self.out = Linear(dec_hidden + 2 * enc_hidden, tgt_vocab, rng=rng, dtype=dtype)
        self.attention_weights: np.ndarray | None = None
        self._run: dict | None = None

    def extra_repr(self) -> str:
        return (f"src_vocab={self.src_embed.num_embeddings}, tgt_vocab={self.tgt_embed.num_embeddings}, "
                f"embed_dim={self.embed_dim}, enc_hidden={self.enc_hidden}, dec_hidden={self.dec_hidden}, "
                f"attn_dim={self.attention.attn_dim}")

    def encode(self, src: np.ndarray, src_lengths: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(given) src: (N, S), src_lengths: (N,) -> ``(h (N, S, 2He), s0 (N, Hd), keys (N, S, A),
        mask (N, S))``: the encoder outputs (0 at padding), the decoder's initial state
        tanh(←h_1 W_s + b_s), the attention keys and the mask (True = real position)."""
        h, h_n = self.encoder.forward(self.src_embed.forward(src), None, src_lengths)
        s0 = np.tanh(self.init.forward(h_n[1]))
        return h, s0, self.attention.project_keys(h), length_mask(src_lengths, src.shape[1])

    def forward(self, src: np.ndarray, src_lengths: np.ndarray, tgt_in: np.ndarray) -> np.ndarray:
        """src: (N, S), src_lengths: (N,), tgt_in: (N, T) -> logits (N, T, V_tgt); keeps the
        attention weights (N, T, S) in ``self.attention_weights``."""
        h, s, keys, mask = self.encode(src, src_lengths)
        E = self.embed_dim
        W_ih, W_hh = self.cell.weight_ih.data, self.cell.weight_hh.data
        b_ih, b_hh = self.cell.bias_ih.data, self.cell.bias_hh.data
        emb = self.tgt_embed.forward(tgt_in)                                  # (N, T, E)
        N, T, _ = emb.shape
        # TODO: the embedding part of every step's GRU input projection does not depend on the
        #       loop: one matmul emb @ W_ih[:, :E]ᵀ + b_ih for all T steps first. In the loop:
        #       attend with the *previous* state, add c @ W_ih[:, E:]ᵀ, one gru_cell_forward.
        #       Keep every step's s_i, c_i and α_i in arrays ``states`` (N, T, Hd), ``contexts``
        #       (N, T, 2He) and ``weights`` (N, T, S), its two caches in lists ``att_caches`` and
        #       ``gru_caches``; then ``logits`` = self.out on [states; contexts].
        # BEGIN SOLUTION precompute the embedding projection; loop: attend with s_{i−1}, GRU step on [emb; c]; keep states, contexts, weights, caches; the output layer on [S; C]
        gx_emb = (emb.reshape(N * T, E) @ W_ih[:, :E].T + b_ih).reshape(N, T, -1)
        W_c = W_ih[:, E:]
        states = np.empty((N, T, self.dec_hidden), dtype=gx_emb.dtype)
        contexts = np.empty((N, T, 2 * self.enc_hidden), dtype=gx_emb.dtype)
        weights = np.empty((N, T, h.shape[1]), dtype=gx_emb.dtype)
        att_caches, gru_caches = [], []
        for t in range(T):
            c, alpha, att_cache = self.attention.attend(s, keys, h, mask)
            s, gru_cache = gru_cell_forward(gx_emb[:, t] + c @ W_c.T, s, W_hh, b_hh)
            states[:, t], contexts[:, t], weights[:, t] = s, c, alpha
            att_caches.append(att_cache)
            gru_caches.append(gru_cache)
        logits = self.out.forward(np.concatenate([states, contexts], axis=-1))
        # END SOLUTION
        self.attention_weights = weights
        self._run = dict(h=h, emb=emb, contexts=contexts, att_caches=att_caches, gru_caches=gru_caches)
        return logits

    def backward(self, dlogits: np.ndarray) -> None:
        """dlogits: (N, T, V_tgt) -> None; accumulates the gradients of every parameter."""
        if self._run is None:
            raise RuntimeError("AttentionSeq2Seq.backward called before forward")
        run = self._run
        h, emb, contexts = run["h"], run["emb"], run["contexts"]
        E, Hd = self.embed_dim, self.dec_hidden
        W_ih, W_hh = self.cell.weight_ih.data, self.cell.weight_hh.data
        N, T, _ = emb.shape
        # TODO: in reverse time, the state's gradient is what the output layer sent to s_i plus
        #       what step i + 1 sent back (through its GRU step and its attention query). The
        #       context c_i gets gradient from the output layer and from the GRU input. dkeys and
        #       dvalues add up over all steps; the keys go back once (keys_backward) at the end.
        #       The weight gradients of the cell: one matmul each over all steps, as in Topic 20.
        #       s_0 = tanh(init(←h_1)): its gradient reaches the reverse direction's final state.
        # BEGIN SOLUTION split dlogits through out into dS, dC; reverse loop through gru_cell_backward and attend_backward; the cell's weight gradients; embeddings; keys; s_0 through tanh and init; the encoder
        dSC = self.out.backward(dlogits)
        dS, dC = dSC[..., :Hd], dSC[..., Hd:]
        dgx = np.empty((N, T, 3 * Hd), dtype=dSC.dtype)
        dgh = np.empty((N, T, 3 * Hd), dtype=dSC.dtype)
        s_prev = np.empty((N, T, Hd), dtype=dSC.dtype)
        dkeys = np.zeros(h.shape[:2] + (self.attention.attn_dim,), dtype=dSC.dtype)
        dh = np.zeros_like(h)
        ds = np.zeros((N, Hd), dtype=dSC.dtype)
        for t in reversed(range(T)):
            cache = run["gru_caches"][t]
            dgx[:, t], dgh[:, t], ds_prev = gru_cell_backward(ds + dS[:, t], cache, W_hh)
            s_prev[:, t] = cache.h_prev
            dc = dC[:, t] + dgx[:, t] @ W_ih[:, E:]
            dq, dk, dv = self.attention.attend_backward(dc, None, run["att_caches"][t])
            dkeys += dk
            dh += dv
            ds = ds_prev + dq
        gx2, gh2 = dgx.reshape(N * T, -1), dgh.reshape(N * T, -1)
        inputs = np.concatenate([emb, contexts], axis=-1).reshape(N * T, -1)
        self.cell.weight_ih.accumulate_grad(gx2.T @ inputs)
        self.cell.weight_hh.accumulate_grad(gh2.T @ s_prev.reshape(N * T, Hd))
        self.cell.bias_ih.accumulate_grad(gx2.sum(axis=0))
        self.cell.bias_hh.accumulate_grad(gh2.sum(axis=0))
        self.tgt_embed.backward((gx2 @ W_ih[:, :E]).reshape(N, T, E))
        dh += self.attention.keys_backward(dkeys)
        s0 = run["gru_caches"][0].h_prev
        dh_rev = self.init.backward(tanh_backward(ds, s0))
        dh_n = np.zeros((2,) + dh_rev.shape, dtype=dh_rev.dtype)
        dh_n[1] = dh_rev
        dx, _ = self.encoder.backward(dh, dh_n)
        self.src_embed.backward(dx)
        # END SOLUTION
        return None

    # -- inference -------------------------------------------------------------------------------

    def start(self, src: np.ndarray, src_lengths: np.ndarray) -> tuple[np.ndarray, tuple]:
        """(given) ``(s0 (N, Hd), memory = (keys (N, S, A), h (N, S, 2He), mask (N, S)))``."""
        h, s0, keys, mask = self.encode(src, src_lengths)
        return s0, (keys, h, mask)

    def step(self, tokens: np.ndarray, state: np.ndarray, memory: tuple
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One decoding step. tokens: (B,), state: s_{i−1} (B, Hd), memory from :meth:`start` ->
        ``(log_probs (B, V_tgt), s_i (B, Hd), attention weights (B, S))``."""
        keys, h, mask = memory
        E = self.embed_dim
        W_ih = self.cell.weight_ih.data
        # BEGIN SOLUTION attend with the state; GRU step on [embedding; context]; logits from [s; c]; log_softmax
        c, alpha, _ = self.attention.attend(state, keys, h, mask)
        gx = self.tgt_embed.W.data[tokens] @ W_ih[:, :E].T + c @ W_ih[:, E:].T + self.cell.bias_ih.data
        s, _ = gru_cell_forward(gx, state, self.cell.weight_hh.data, self.cell.bias_hh.data)
        logits = np.concatenate([s, c], axis=-1) @ self.out.W.data + self.out.b.data
        return log_softmax(logits, axis=-1), s, alpha
        # END SOLUTION
