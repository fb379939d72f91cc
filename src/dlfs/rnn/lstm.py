"""Topic 19 — the LSTM: a cell state with gates that decide what to forget, what to write and
what to show, forward and backward through time, stacked layers.

One step reads ``x_t: (N, D)`` and the state ``(h_{t-1}, c_{t-1})``, both (N, H). The four gate
pre-activations come from one product with the stacked weights (gate order **i, f, g, o**, as
PyTorch):

    z = x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh        (N, 4H)    W_ih: (4H, D), W_hh: (4H, H)
    i = σ(z_i)    f = σ(z_f)    g = tanh(z_g)    o = σ(z_o)        each (N, H)
    c_t = f ⊙ c_{t-1} + i ⊙ g                                      the cell state: a gated sum
    h_t = o ⊙ tanh(c_t)

Backward through one step, with ``dh`` and ``dc`` the whole gradients reaching ``h_t`` and
``c_t`` (``tc = tanh(c_t)``):

    dc_t   = dc + dh ⊙ o ⊙ (1 − tc²)           the cell state's total gradient
    dz_o   = dh ⊙ tc ⊙ o(1 − o)
    dz_i   = dc_t ⊙ g ⊙ i(1 − i)       dz_g = dc_t ⊙ i ⊙ (1 − g²)       dz_f = dc_t ⊙ c_{t-1} ⊙ f(1 − f)
    dc_{t-1} = dc_t ⊙ f                dh_{t-1} = dz @ W_hh

``dc_{t-1} = dc_t ⊙ f``: along the cell state the gradient is only multiplied by the forget
gate — no weight matrix, no squashing derivative — which is why an LSTM can carry a gradient
over many steps when f stays near 1. ``forget_bias`` initialises the forget gate's bias to a
positive value (f = σ(1) ≈ 0.73 at the start instead of ≈ 0.5) for that reason.

The layer computes all input projections in one matmul before the loop, keeps every step's
activated gates in one preallocated buffer, time-major (T, N, 4H) so that each step's slice is
contiguous, runs the recurrence of blocks of the batch in parallel threads, and after the
backward loop gathers the weight gradients in one matmul each. ``num_layers = L`` stacks layers: layer k reads the hidden
states of layer k − 1; the state is then (L, N, H), layer 0 first, as ``torch.nn.LSTM``.
"""

from __future__ import annotations

import numpy as np

from dlfs.nn.activations import sigmoid
from dlfs.parallel import map_chunks, num_workers
from dlfs.rnn.base import RecurrentLayer

# The batch is split into blocks that run in parallel threads only when each block keeps at least
# this many sequences: for smaller batches, starting the threads costs more than it saves.
MIN_ROWS_PER_BLOCK = 16


def _batch_blocks(fn, n: int) -> None:
    """Run ``fn(lo, hi)`` over row blocks of ``range(n)``: one per worker thread, each of at least
    ``MIN_ROWS_PER_BLOCK`` rows (a single block, in this thread, for small batches)."""
    blocks = max(1, min(num_workers(), n // MIN_ROWS_PER_BLOCK))
    map_chunks(fn, n, -(-n // blocks))


def lstm_cell_forward(xp: np.ndarray, h_prev: np.ndarray, c_prev: np.ndarray, weight_hh: np.ndarray,
                      bias_hh: np.ndarray | None = None, *, out=None):
    """One LSTM step.

    xp: (N, 4H), the step's input projection ``x_t @ weight_ihᵀ + bias_ih``; h_prev, c_prev:
    (N, H); weight_hh: (4H, H); bias_hh: (4H,), or None when it is already part of xp;
    out: None, or preallocated ``(h, c, gates, tanh_c)`` arrays of shapes (N, H), (N, H),
    (N, 4H), (N, H) to write into (views are fine).
    Returns ``(h, c, cache)``: h, c: (N, H); cache = ``(gates, c_prev, tanh_c)`` with gates the
    activated [i | f | g | o]: (N, 4H) and tanh_c = tanh(c): (N, H), what the backward needs.
    """
    N, H = h_prev.shape
    if out is None:
        dtype = np.result_type(xp, h_prev)
        out = (np.empty((N, H), dtype), np.empty((N, H), dtype), np.empty((N, 4 * H), dtype),
               np.empty((N, H), dtype))
    h, c, gates, tanh_c = out
    # TODO: write into the given buffers (matmul(..., out=gates), np.tanh(..., out=...)); the
    # stable sigmoid of dlfs.nn.activations for i, f, o; tanh for g.
    # BEGIN SOLUTION gates = xp + h_prev @ weight_hhᵀ (+ bias_hh); sigmoid on the i, f, o blocks, tanh on g; c = f c_prev + i g; h = o tanh(c)
    np.matmul(h_prev, weight_hh.T, out=gates)
    gates += xp
    if bias_hh is not None:
        gates += bias_hh
    gates[:, :2 * H] = sigmoid(gates[:, :2 * H])
    gates[:, 3 * H:] = sigmoid(gates[:, 3 * H:])
    np.tanh(gates[:, 2 * H:3 * H], out=gates[:, 2 * H:3 * H])
    i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
    np.multiply(f, c_prev, out=c)
    np.multiply(i, g, out=tanh_c)          # tanh_c holds i g for a moment
    c += tanh_c
    np.tanh(c, out=tanh_c)
    np.multiply(o, tanh_c, out=h)
    # END SOLUTION
    return h, c, (gates, c_prev, tanh_c)


def lstm_cell_backward(dh: np.ndarray, dc: np.ndarray, cache, weight_hh: np.ndarray, *, out=None):
    """The step's backward.

    dh, dc: (N, H), the whole gradients reaching h and c (the loss's plus the next step's);
    cache: ``(gates, c_prev, tanh_c)`` from :func:`lstm_cell_forward`; weight_hh: (4H, H);
    out: None or a preallocated (N, 4H) array (a view is fine) for dxp.
    Returns ``(dxp, dh_prev, dc_prev)``: dxp: (N, 4H), the gradient of the gate
    pre-activations [dz_i | dz_f | dz_g | dz_o] (of xp, of bias_hh and of ``h_prev @
    weight_hhᵀ``); dh_prev, dc_prev: (N, H). dh and dc are left unchanged.
    """
    gates, c_prev, tanh_c = cache
    N, H = dh.shape
    dz = np.empty_like(gates) if out is None else out
    # TODO: derivatives from the outputs: σ' = s(1 − s), tanh' = 1 − y². Fuse them into as few
    # passes as possible, writing into the blocks of dz (out= arguments) rather than new arrays.
    # BEGIN SOLUTION dc_t = dc + dh o (1 − tanh_c²); the four pre-activation gradients into dz; dc_prev = dc_t f; dh_prev = dz @ weight_hh
    i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
    dz_i, dz_f, dz_g, dz_o = dz[:, :H], dz[:, H:2 * H], dz[:, 2 * H:3 * H], dz[:, 3 * H:]
    # dz_o = dh tc o (1 - o); dz_g holds dh o for a moment
    np.multiply(dh, o, out=dz_g)
    np.multiply(dz_g, tanh_c, out=dz_o)
    np.subtract(1, o, out=dz_i)
    dz_o *= dz_i
    # dc_t = dc + dh o (1 - tc^2)
    dct = np.multiply(tanh_c, tanh_c)
    np.subtract(1, dct, out=dct)
    dct *= dz_g
    dct += dc
    # dz_f = dc_t c_prev f (1 - f)
    np.subtract(1, f, out=dz_f)
    dz_f *= f
    dz_f *= c_prev
    dz_f *= dct
    # dz_i = dc_t g i (1 - i)
    np.subtract(1, i, out=dz_i)
    dz_i *= i
    dz_i *= g
    dz_i *= dct
    # dz_g = dc_t i (1 - g^2)
    np.multiply(g, g, out=dz_g)
    np.subtract(1, dz_g, out=dz_g)
    dz_g *= i
    dz_g *= dct
    dct *= f
    return dz, dz @ weight_hh, dct
    # END SOLUTION


def lstm_steps_forward(xp: np.ndarray, hs: np.ndarray, cs: np.ndarray, gates: np.ndarray,
                       tanh_c: np.ndarray, weight_hh: np.ndarray) -> None:
    """The recurrence of one layer over all T steps, for a block of n sequences, into buffers.

    Time-major, so that each step's slice is one contiguous block: xp: (T, n, 4H), every step's
    input projection with both biases; hs, cs: (T + 1, n, H), the initial state in ``[0]``,
    filled with the state after step t in ``[t + 1]``; gates: (T, n, 4H) and tanh_c: (T, n, H),
    filled with each step's activated gates and tanh(c); weight_hh: (4H, H). Writes only into
    the given arrays (they may be blocks of the layer's buffers: the layer runs blocks of its
    batch in parallel).
    """
    # TODO: one lstm_cell_forward per step, with out= the step's slices of the buffers.
    # BEGIN SOLUTION for each t, lstm_cell_forward(xp[t], hs[t], cs[t], weight_hh) writing into hs[t+1], cs[t+1], gates[t], tanh_c[t]
    for t in range(xp.shape[0]):
        lstm_cell_forward(xp[t], hs[t], cs[t], weight_hh, out=(hs[t + 1], cs[t + 1], gates[t], tanh_c[t]))
    # END SOLUTION


def lstm_steps_backward(dout: np.ndarray | None, dh: np.ndarray, dc: np.ndarray, cs: np.ndarray,
                        gates: np.ndarray, tanh_c: np.ndarray, weight_hh: np.ndarray,
                        dz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BPTT through one layer's T steps, for a block of n sequences (time-major, as the forward).

    dout: (T, n, H) or None; dh, dc: (n, H), the gradients reaching the last state (they may be
    overwritten); cs: (T + 1, n, H), gates: (T, n, 4H), tanh_c: (T, n, H), the forward's
    buffers; weight_hh: (4H, H); dz: (T, n, 4H), filled with every step's gate pre-activation
    gradient. Returns ``(dh0, dc0)``, the gradients of the initial state: (n, H) each.
    """
    # TODO: walk t from T − 1 down to 0; the loss's gradient dout[t] joins dh before step t.
    # BEGIN SOLUTION for t from T-1 to 0: dh += dout[t]; dz[t], dh, dc = lstm_cell_backward(dh, dc, step t's cache, weight_hh, out=dz[t]); return (dh, dc)
    for t in range(gates.shape[0] - 1, -1, -1):
        if dout is not None:
            dh += dout[t]
        _, dh, dc = lstm_cell_backward(dh, dc, (gates[t], cs[t], tanh_c[t]), weight_hh, out=dz[t])
    return dh, dc
    # END SOLUTION


class LSTM(RecurrentLayer):
    """An LSTM over a batch of sequences, batch first, with ``num_layers`` stacked layers.

    ``forward(x, state=None) -> (out, (h_n, c_n))``: x: (N, T, D); state = (h0, c0), each
    (N, H) for one layer or (L, N, H) for a stack (either may be None: zeros; so may state);
    out: (N, T, H), the top layer's h at every step; h_n, c_n: the last states, shaped like h0.
    ``backward(dout, dstate=None) -> (dx, (dh0, dc0))``: dout: (N, T, H) or None; dstate =
    (dh_n, dc_n), each like h_n or None; accumulates every parameter's gradient.

    Parameters and initialisation as ``torch.nn.LSTM(input_size, hidden_size, num_layers,
    batch_first=True)`` (see :mod:`dlfs.rnn.base`); gate blocks i, f, g, o.
    forget_bias: None (PyTorch's initialisation), or a value b_f: the forget block of every
    layer's bias_ih is set to b_f and that of bias_hh to 0, so that f = σ(b_f + …) starts near
    σ(b_f) (needs bias=True).
    """

    gates = 4

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 rng: np.random.Generator | int | None = None, dtype=np.float32,
                 forget_bias: float | None = None):
        super().__init__(input_size, hidden_size, num_layers, bias, rng, dtype)
        self.forget_bias = forget_bias
        if forget_bias is not None:
            if not bias:
                raise ValueError("LSTM: forget_bias needs bias=True (it sets the forget gate's bias)")
            H = self.hidden_size
            for layer in range(self.num_layers):
                _, _, b_ih, b_hh = self.layer_parameters(layer)
                b_ih.data[H:2 * H] = forget_bias
                b_hh.data[H:2 * H] = 0
        self.caches: list[dict] | None = None      # one per layer, from the last forward

    def extra_repr(self) -> str:
        fb = f", forget_bias={self.forget_bias}" if self.forget_bias is not None else ""
        return super().extra_repr() + fb

    # -- one layer (time-major inside: each step's slice of a buffer is contiguous) -----------

    def _layer_forward(self, layer: int, x: np.ndarray, h0: np.ndarray, c0: np.ndarray) -> dict:
        """x: (T, N, D_k), time-major and contiguous; h0, c0: (N, H) -> the layer's cache
        (x, hs, cs, gates, tanh_c), whose ``hs[1:]``: (T, N, H) is the layer's output."""
        W_ih, W_hh, b_ih, b_hh = self.layer_parameters(layer)
        T, N, D = x.shape
        H = self.hidden_size
        dtype = W_ih.data.dtype
        # TODO: all steps' input projections in one matmul (x viewed as (T·N, D)), both biases
        # added once: xp: (T, N, 4H).
        # BEGIN SOLUTION xp = x @ weight_ihᵀ + bias_ih + bias_hh for all steps at once, (T, N, 4H)
        xp = (x.reshape(T * N, D) @ W_ih.data.T).reshape(T, N, 4 * H)
        if b_ih is not None:
            xp += b_ih.data + b_hh.data
        # END SOLUTION
        # given: buffers for every step, and the batch split into blocks that run in parallel
        hs = np.empty((T + 1, N, H), dtype=dtype)       # h0, then h after each step
        cs = np.empty((T + 1, N, H), dtype=dtype)       # c0, then c after each step
        gates = np.empty((T, N, 4 * H), dtype=dtype)
        tanh_c = np.empty((T, N, H), dtype=dtype)
        hs[0] = h0
        cs[0] = c0
        _batch_blocks(lambda lo, hi: lstm_steps_forward(xp[:, lo:hi], hs[:, lo:hi], cs[:, lo:hi],
                                                     gates[:, lo:hi], tanh_c[:, lo:hi], W_hh.data), N)
        return {"x": x, "hs": hs, "cs": cs, "gates": gates, "tanh_c": tanh_c}

    def _layer_backward(self, layer: int, cache: dict, dout: np.ndarray | None, dh_n: np.ndarray,
                        dc_n: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """dout: (T, N, H) or None (time-major); dh_n, dc_n: (N, H) (they may be overwritten)
        -> (dx (T, N, D_k), dh0, dc0); accumulates the layer's parameter gradients."""
        W_ih, W_hh, b_ih, b_hh = self.layer_parameters(layer)
        x, hs, cs, gates, tanh_c = cache["x"], cache["hs"], cache["cs"], cache["gates"], cache["tanh_c"]
        T, N, D = x.shape
        H = self.hidden_size
        # given: the recurrence runs on blocks of the batch in parallel and fills dz
        dz = np.empty_like(gates)                       # (T, N, 4H): every step's dxp
        dh0, dc0 = np.empty_like(dh_n), np.empty_like(dc_n)

        def block(lo, hi):
            d = None if dout is None else dout[:, lo:hi]
            dh0[lo:hi], dc0[lo:hi] = lstm_steps_backward(d, dh_n[lo:hi], dc_n[lo:hi], cs[:, lo:hi],
                                                         gates[:, lo:hi], tanh_c[:, lo:hi], W_hh.data,
                                                         dz[:, lo:hi])
        _batch_blocks(block, N)
        # TODO: every step's dz is known: dx and the weight gradients are one matmul each over all
        # T·N rows (h_prev of step t is hs[t], so all of them are hs[:T]).
        # BEGIN SOLUTION dx = dz @ weight_ih; accumulate dweight_ih = dzᵀ x, dweight_hh = dzᵀ h_prev, dbias_ih = dbias_hh = Σ dz; return (dx, dh0, dc0)
        dz2 = dz.reshape(T * N, 4 * H)
        dx = (dz2 @ W_ih.data).reshape(T, N, D)
        W_ih.accumulate_grad(dz2.T @ x.reshape(T * N, D))
        W_hh.accumulate_grad(dz2.T @ hs[:T].reshape(T * N, H))
        if b_ih is not None:
            db = dz2.sum(axis=0)
            b_ih.accumulate_grad(db)
            b_hh.accumulate_grad(db)
        return dx, dh0, dc0
        # END SOLUTION

    # -- the stack (given) -----------------------------------------------------------------------

    def forward(self, x: np.ndarray, state=None):
        """x: (N, T, D); state: (h0, c0) or None -> (out (N, T, H), (h_n, c_n)).

        out is a view of the cache (``hs[1:]`` of the top layer, transposed), new at every call:
        copy it before writing into it.
        """
        N, T, _ = self.check_input(x)
        h0, c0 = (None, None) if state is None else state
        dtype = self.dtype
        h0 = self.initial_state(h0, N, dtype, "h0")
        c0 = self.initial_state(c0, N, dtype, "c0")
        self.caches = []
        inp = np.ascontiguousarray(x.transpose(1, 0, 2), dtype=dtype)        # (T, N, D)
        for layer in range(self.num_layers):
            cache = self._layer_forward(layer, inp, h0[layer], c0[layer])
            self.caches.append(cache)
            inp = cache["hs"][1:]
        h_n = np.stack([c["hs"][T] for c in self.caches])
        c_n = np.stack([c["cs"][T] for c in self.caches])
        return inp.transpose(1, 0, 2), (self.final_state(h_n), self.final_state(c_n))

    def backward(self, dout: np.ndarray | None, dstate=None):
        """dout: (N, T, H) or None; dstate: (dh_n, dc_n) or None -> (dx (N, T, D), (dh0, dc0)).

        dx is a transposed view of a time-major (T, N, D) array."""
        if self.caches is None:
            raise RuntimeError("LSTM.backward called before forward")
        T, N, _ = self.caches[0]["x"].shape
        dh_n, dc_n = (None, None) if dstate is None else dstate
        shape = self.state_shape(N)
        self.check_upstream(dout, (N, T, self.hidden_size), "dout")
        self.check_upstream(dh_n, shape, "dh_n")
        self.check_upstream(dc_n, shape, "dc_n")
        dtype = self.dtype
        # copies: the loop accumulates into them
        dh_n = self.initial_state(dh_n, N, dtype, "dh_n").astype(dtype, copy=True)
        dc_n = self.initial_state(dc_n, N, dtype, "dc_n").astype(dtype, copy=True)
        dh0 = np.empty_like(dh_n)
        dc0 = np.empty_like(dc_n)
        d = None if dout is None else np.ascontiguousarray(dout.transpose(1, 0, 2), dtype=dtype)
        for layer in range(self.num_layers - 1, -1, -1):
            d, dh0[layer], dc0[layer] = self._layer_backward(layer, self.caches[layer], d, dh_n[layer],
                                                             dc_n[layer])
        return d.transpose(1, 0, 2), (self.final_state(dh0), self.final_state(dc0))
