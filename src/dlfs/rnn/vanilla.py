"""Topic 18 — the vanilla (Elman) RNN: one tanh cell, unrolled over time, and backpropagation
through time (BPTT).

One step reads the input ``x_t: (N, D)`` and the previous state ``h_{t-1}: (N, H)``:

    h_t = tanh(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh)          W_ih: (H, D), W_hh: (H, H)

The same weights serve every step. The layer computes the input projections of all T steps
in one matmul before the recurrence, ``xp = x @ W_ihᵀ + b_ih + b_hh: (N, T, H)``, so the loop
over T only does the (N, H) @ (H, H) product and the tanh.

BPTT runs the steps backwards. The gradient reaching ``h_t`` is the loss's own gradient at
step t plus what step t + 1 sends back; through the tanh it becomes the pre-activation's
gradient ``da_t = dh_t ⊙ (1 − h_t²)``, which goes to ``h_{t-1}`` through ``W_hh``
(``dh_{t-1} = da_t W_hh``) and to the weights, summed over every step:

    dW_ih = Σ_t da_tᵀ x_t      dW_hh = Σ_t da_tᵀ h_{t-1}      db_ih = db_hh = Σ_t Σ_n da_t

(one matmul each over all N·T rows after the loop). ``dh0`` is what is left after step 0.

:func:`truncated_bptt` trains on a long sequence in chunks: it carries the hidden state from one
chunk to the next (the forward is exact) but back-propagates only inside each chunk.

Parameters follow PyTorch (``torch.nn.RNN(D, H, batch_first=True)``): ``weight_ih_l0 (H, D)``,
``weight_hh_l0 (H, H)``, ``bias_ih_l0 (H,)``, ``bias_hh_l0 (H,)``; see ``dlfs.rnn``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from dlfs.nn.activations import tanh_backward
from dlfs.rnn.base import RecurrentLayer


def rnn_cell_forward(xp: np.ndarray, h_prev: np.ndarray, weight_hh: np.ndarray,
                     bias_hh: np.ndarray | None = None) -> np.ndarray:
    """One tanh step: ``h = tanh(xp + h_prev @ weight_hhᵀ + bias_hh)``.

    xp: (N, H), the step's input projection ``x_t @ weight_ihᵀ + bias_ih``; h_prev: (N, H);
    weight_hh: (H, H); bias_hh: (H,), or None when it is already part of xp.
    Returns h: (N, H), a new array in the inputs' dtype.
    """
    # BEGIN SOLUTION h_prev times weight_hh transposed, plus xp (and bias_hh when given), through tanh
    a = h_prev @ weight_hh.T
    a += xp
    if bias_hh is not None:
        a += bias_hh
    return np.tanh(a, out=a)
    # END SOLUTION


def rnn_cell_backward(dh: np.ndarray, h: np.ndarray, weight_hh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The step's backward. dh: (N, H), the whole gradient reaching h (the loss's at this step
    plus the next step's); h: (N, H), the step's output; weight_hh: (H, H).

    Returns ``(dxp, dh_prev)``, both (N, H): ``dxp = dh ⊙ (1 − h²)`` is the gradient of the
    pre-activation (of xp, of bias_hh and of ``h_prev @ weight_hhᵀ``), and
    ``dh_prev = dxp @ weight_hh``. The weight gradients are gathered by the caller:
    ``dweight_hh = dxpᵀ @ h_prev`` summed over the steps.
    """
    # TODO: tanh's derivative is written with its output: 1 − h² (Topic 07's tanh_backward).
    # BEGIN SOLUTION da = tanh_backward(dh, h); dh_prev = da @ weight_hh
    da = tanh_backward(dh, h)
    return da, da @ weight_hh
    # END SOLUTION


class RNN(RecurrentLayer):
    """A single-layer tanh RNN over a batch of sequences, batch first.

    ``forward(x, h0=None) -> (out, h_n)``: x: (N, T, D); h0: (N, H) or None (zeros);
    out: (N, T, H), the state after every step; h_n: (N, H), the last state (``out[:, -1]``).
    ``backward(dout, dh_n=None) -> (dx, dh0)``: dout: (N, T, H) or None; dh_n: (N, H) or None;
    accumulates the four parameter gradients. Parameters and initialisation as
    ``torch.nn.RNN(input_size, hidden_size, batch_first=True)`` (see :mod:`dlfs.rnn.base`).
    """

    gates = 1
    max_layers = 1

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 rng: np.random.Generator | int | None = None, dtype=np.float32):
        super().__init__(input_size, hidden_size, num_layers, bias, rng, dtype)
        self.x: np.ndarray | None = None          # the input of the last forward
        self.hs: np.ndarray | None = None         # (N, T + 1, H): h0, then the state after each step

    def forward(self, x: np.ndarray, h0: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """x: (N, T, D); h0: (N, H) or None -> (out (N, T, H), h_n (N, H)).

        out and h_n are views of the cache (``hs[:, 1:]`` and ``hs[:, T]``): copy them before
        writing into them. The cache is new at every call, so earlier outputs stay valid.
        """
        N, T, _ = self.check_input(x)
        W_ih, W_hh, b_ih, b_hh = self.layer_parameters(0)
        dtype = W_ih.data.dtype
        hs = np.empty((N, T + 1, self.hidden_size), dtype=dtype)
        hs[:, 0] = self.initial_state(h0, N, dtype)[0]
        self.x, self.hs = x, hs
        # TODO: all T input projections in one matmul (view x as (N·T, D)); fold both biases into
        # them once; then the loop over t writes hs[:, t + 1] from hs[:, t].
        # BEGIN SOLUTION xp = x @ weight_ihᵀ + bias_ih + bias_hh for every step at once; then for each t, hs[:, t+1] = rnn_cell_forward(xp[:, t], hs[:, t], weight_hh)
        H = self.hidden_size
        xp = (x.reshape(N * T, -1) @ W_ih.data.T).reshape(N, T, H)
        if b_ih is not None:
            xp += b_ih.data + b_hh.data
        for t in range(T):
            hs[:, t + 1] = rnn_cell_forward(xp[:, t], hs[:, t], W_hh.data)
        # END SOLUTION
        return hs[:, 1:], hs[:, T]

    def backward(self, dout: np.ndarray | None, dh_n: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """dout: (N, T, H) or None; dh_n: (N, H) or None -> (dx (N, T, D), dh0 (N, H)).

        Accumulates weight_ih_l0.grad, weight_hh_l0.grad, bias_ih_l0.grad, bias_hh_l0.grad.
        """
        if self.hs is None:
            raise RuntimeError("RNN.backward called before forward")
        x, hs = self.x, self.hs
        N, T, D = x.shape
        H = self.hidden_size
        self.check_upstream(dout, (N, T, H), "dout")
        self.check_upstream(dh_n, (N, H), "dh_n")
        W_ih, W_hh, b_ih, b_hh = self.layer_parameters(0)
        das = np.empty((N, T, H), dtype=hs.dtype)        # the pre-activation gradient of every step
        # TODO: walk t from T − 1 down to 0; the gradient reaching h_t is dout[:, t] plus what step
        # t + 1 sent back. After the loop every weight gradient is one matmul over all N·T rows.
        # BEGIN SOLUTION BPTT: loop back over the steps with rnn_cell_backward, store each da; then dx, the weight and bias gradients from all steps at once; return (dx, dh0)
        dh = np.zeros((N, H), dtype=hs.dtype) if dh_n is None else np.array(dh_n, dtype=hs.dtype)
        for t in range(T - 1, -1, -1):
            if dout is not None:
                dh += dout[:, t]
            das[:, t], dh = rnn_cell_backward(dh, hs[:, t + 1], W_hh.data)
        da2 = das.reshape(N * T, H)
        dx = (da2 @ W_ih.data).reshape(N, T, D)
        W_ih.accumulate_grad(da2.T @ x.reshape(N * T, D))
        W_hh.accumulate_grad(da2.T @ hs[:, :T].reshape(N * T, H))
        if b_ih is not None:
            db = da2.sum(axis=0)
            b_ih.accumulate_grad(db)
            b_hh.accumulate_grad(db)
        return dx, dh
        # END SOLUTION


def truncated_bptt(layer, x: np.ndarray, chunk_len: int,
                   grad_fn: Callable[[np.ndarray, slice], np.ndarray | None], state=None):
    """Forward a long sequence chunk by chunk, carrying the state, with backward inside each chunk only.

    layer: a recurrent layer of ``dlfs.rnn`` (``forward(x, state) -> (out, state)``,
    ``backward(dout) -> (dx, dstate0)``); x: (N, T, D); chunk_len: K ≥ 1 steps per chunk (the
    last chunk may be shorter); grad_fn: ``(out_chunk (N, K, H), steps: slice) -> dout_chunk``,
    the loss's gradient for that chunk's outputs (it may also record the loss), or None;
    state: the initial state (None: zeros).

    The state after chunk j is the initial state of chunk j + 1, so the concatenated outputs
    equal one forward over the whole sequence. Each chunk's backward runs right after its
    forward with no gradient arriving at its last state and the gradient of its initial state
    dropped: no gradient crosses a chunk boundary (the carried state is a constant, like
    ``h.detach()`` in PyTorch). Parameter gradients accumulate over the chunks.
    Returns ``(out (N, T, H), final state, dx (N, T, D))``.
    """
    if int(chunk_len) != chunk_len or chunk_len < 1:
        raise ValueError(f"truncated_bptt: chunk_len must be a positive integer, got {chunk_len!r}")
    if not isinstance(x, np.ndarray) or x.ndim != 3:
        raise ValueError(f"truncated_bptt: x must be an (N, T, D) array, got shape {np.shape(x)}")
    # TODO: the state passed on is the forward's output state; backward gets no state gradient.
    # BEGIN SOLUTION for each chunk of at most chunk_len steps: forward with the carried state, grad_fn, backward(dout) (dropping dstate0); concatenate outputs and input gradients
    T = x.shape[1]
    outs, dxs = [], []
    for start in range(0, T, int(chunk_len)):
        steps = slice(start, min(start + int(chunk_len), T))
        out, next_state = layer.forward(x[:, steps], state)
        dx, _ = layer.backward(grad_fn(out, steps))
        outs.append(out)
        dxs.append(dx)
        state = next_state
    return np.concatenate(outs, axis=1), state, np.concatenate(dxs, axis=1)
    # END SOLUTION
