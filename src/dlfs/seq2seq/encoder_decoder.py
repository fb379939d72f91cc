"""Topic 23 — sequence to sequence: an encoder reads the source, a decoder writes the target.

The model of Sutskever et al. (2014) and Cho et al. (2014), with GRUs (``dlfs.rnn``):

    src: (N, S) token ids, src_lengths: (N,)
      -> src_embed -> (N, S, E) -> encoder GRU, packed by the lengths -> h_n: (N, H)
    tgt_in: (N, T) = [BOS, y_0, ..., y_{T-2}]         (teacher forcing: the true previous token)
      -> tgt_embed -> (N, T, E) -> decoder GRU starting from h_n -> (N, T, H)
      -> out (Linear H -> V) -> logits: (N, T, V), logits[:, t] predicts y_t

Everything the decoder knows about the source passes through **one vector**, the encoder's
final state h_n (N, H): the bottleneck that Topic 24's attention removes. The encoder runs
through :class:`dlfs.rnn.Packed`, so h_n is each source's state after its own last real
character, whatever the padding.

Training is **teacher forcing**: the decoder reads the true previous token at every step, so
the T steps of the decoder are one call of the GRU layer, and the loss is the mean
cross-entropy over the real target tokens only (:func:`sequence_loss`: targets padded with
``pad_id`` contribute neither loss nor gradient). At test time the decoder reads its own
previous output instead, one step at a time (:meth:`Seq2Seq.start` / :meth:`Seq2Seq.step`,
used by the greedy and beam-search decoders of :mod:`dlfs.seq2seq.beam`).

Token conventions: ``pad_id`` (0), ``bos_id`` (1) and ``eos_id`` (2) by default; a target is
``y_0 ... y_{L-1} EOS`` followed by padding. Parameters keep ``dtype`` (float32 for training,
float64 for gradient checks).
"""

from __future__ import annotations

import numpy as np

from dlfs.nn.embedding import Embedding
from dlfs.nn.layers import Layer, Linear
from dlfs.nn.losses import cross_entropy
from dlfs.numerics import log_softmax
from dlfs.rnn.bidirectional import Packed
from dlfs.rnn.gru import GRU, gru_cell_forward

__all__ = ["decoder_inputs", "sequence_loss", "Seq2Seq"]


def decoder_inputs(targets: np.ndarray, bos_id: int) -> np.ndarray:
    """Teacher forcing: the decoder's input at step t is the true token of step t − 1.

    targets: (N, T) int -> (N, T) int ``[bos_id, targets[:, 0], ..., targets[:, T-2]]`` (the
    targets shifted right by one, the begin token in front; the last target is never an input).
    """
    # BEGIN SOLUTION a column of bos_id, then every target column but the last
    out = np.empty_like(targets)
    out[:, 0] = bos_id
    out[:, 1:] = targets[:, :-1]
    return out
    # END SOLUTION


def sequence_loss(logits: np.ndarray, targets: np.ndarray, pad_id: int) -> tuple[float, np.ndarray]:
    """The mean cross-entropy over the real target tokens.

    logits: (N, T, V); targets: (N, T) int, ``pad_id`` at padded positions -> (loss, dlogits)
    with dlogits (N, T, V). Padded positions contribute neither loss nor gradient (their rows of
    dlogits are exactly 0), and the mean divides by the number of real tokens, not by N·T.
    """
    # TODO: this is the library's cross-entropy (Topic 08) with the right option.
    # BEGIN SOLUTION cross_entropy over every (n, t) position, ignoring the pad_id targets
    return cross_entropy(logits, targets, ignore_index=pad_id)
    # END SOLUTION


class Seq2Seq(Layer):
    """A GRU encoder–decoder without attention.

    forward(src (N, S) int, src_lengths (N,) int, tgt_in (N, T) int) -> logits (N, T, V_tgt);
    backward(dlogits (N, T, V_tgt)) -> None (accumulates every parameter's gradient; token ids
    have none).

    Layers (created in this order from ``rng``): ``src_embed`` Embedding(V_src, E),
    ``encoder`` Packed(GRU(E, H)), ``tgt_embed`` Embedding(V_tgt, E), ``decoder`` GRU(E, H),
    ``out`` Linear(H, V_tgt).
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, embed_dim: int = 32, hidden_size: int = 128, *,
                 pad_id: int = 0, bos_id: int = 1, eos_id: int = 2,
                 rng: np.random.Generator | int | None = None, dtype=np.float32):
        rng = np.random.default_rng(rng)
        self.pad_id, self.bos_id, self.eos_id = int(pad_id), int(bos_id), int(eos_id)
        self.hidden_size = int(hidden_size)
        self.src_embed = Embedding(src_vocab, embed_dim, rng=rng, dtype=dtype)
        self.encoder = Packed(GRU(embed_dim, hidden_size, rng=rng, dtype=dtype))
        self.tgt_embed = Embedding(tgt_vocab, embed_dim, rng=rng, dtype=dtype)
        self.decoder = GRU(embed_dim, hidden_size, rng=rng, dtype=dtype)
        self.out = Linear(hidden_size, tgt_vocab, rng=rng, dtype=dtype)

    def extra_repr(self) -> str:
        return (f"src_vocab={self.src_embed.num_embeddings}, tgt_vocab={self.tgt_embed.num_embeddings}, "
                f"embed_dim={self.src_embed.embedding_dim}, hidden_size={self.hidden_size}")

    # -- training: the whole target at once ---------------------------------------------------

    def encode(self, src: np.ndarray, src_lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """src: (N, S) int, src_lengths: (N,) -> (outputs (N, S, H), 0 at padded steps;
        h_n (N, H), the state after each source's last real token)."""
        # BEGIN SOLUTION embed the source ids, run the packed encoder with the lengths
        return self.encoder.forward(self.src_embed.forward(src), None, src_lengths)
        # END SOLUTION

    def forward(self, src: np.ndarray, src_lengths: np.ndarray, tgt_in: np.ndarray) -> np.ndarray:
        """src: (N, S), src_lengths: (N,), tgt_in: (N, T) (from :func:`decoder_inputs`) ->
        logits (N, T, V_tgt)."""
        # TODO: the decoder starts from the encoder's final state; its T steps are one GRU call.
        # BEGIN SOLUTION encode; embed tgt_in; decoder GRU from h_n; the output layer on every step
        _, h_n = self.encode(src, src_lengths)
        dec_out, _ = self.decoder.forward(self.tgt_embed.forward(tgt_in), h_n)
        return self.out.forward(dec_out)
        # END SOLUTION

    def backward(self, dlogits: np.ndarray) -> None:
        """dlogits: (N, T, V_tgt) -> None; accumulates the gradients of every parameter."""
        # TODO: the reverse order of forward. The only path from the decoder back to the encoder
        #       is the decoder's initial state: its gradient is the encoder's dh_n.
        # BEGIN SOLUTION out, decoder (its dh0 is the encoder's dh_n), both embeddings, the encoder with no output gradient
        d_dec = self.out.backward(dlogits)
        d_tgt_emb, dh_n = self.decoder.backward(d_dec)
        self.tgt_embed.backward(d_tgt_emb)
        d_src_emb, _ = self.encoder.backward(None, dh_n)
        self.src_embed.backward(d_src_emb)
        # END SOLUTION
        return None

    # -- inference: one step at a time -----------------------------------------------------------

    def start(self, src: np.ndarray, src_lengths: np.ndarray) -> tuple[np.ndarray, None]:
        """The decoder's state before its first step, and what every step reads of the source
        (nothing but the state, here): ``(h_n (N, H), None)``."""
        _, h_n = self.encode(src, src_lengths)
        return h_n, None

    def step(self, tokens: np.ndarray, state: np.ndarray, memory: None = None
             ) -> tuple[np.ndarray, np.ndarray, None]:
        """One decoding step. tokens: (B,) the previous output tokens (``bos_id`` first);
        state: (B, H) -> ``(log_probs (B, V_tgt) of the next token, the new state (B, H), None)``.
        Leaves the caches of training untouched."""
        W_ih, W_hh, b_ih, b_hh = self.decoder.layer_parameters(0)
        # BEGIN SOLUTION embed the tokens (index W directly), project with W_ih, one gru_cell_forward, the output layer, log_softmax
        gx = self.tgt_embed.W.data[tokens] @ W_ih.data.T + b_ih.data
        h, _ = gru_cell_forward(gx, state, W_hh.data, b_hh.data)
        logits = h @ self.out.W.data + self.out.b.data
        return log_softmax(logits, axis=-1), h, None
        # END SOLUTION
