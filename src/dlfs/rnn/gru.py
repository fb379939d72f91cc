"""Topic 20 — the gated recurrent unit (GRU): a cell, a layer, and backpropagation through time.

PyTorch's formulation (``torch.nn.GRU``), gates in the order r, z, n. For one step, with
x_t: (N, D), h: (N, H) the previous state, and σ the logistic sigmoid:

    gx = x_t W_ihᵀ + b_ih                     (N, 3H)   = [gx_r | gx_z | gx_n]
    gh = h   W_hhᵀ + b_hh                     (N, 3H)   = [gh_r | gh_z | gh_n]
    r  = σ(gx_r + gh_r)                       reset gate
    z  = σ(gx_z + gh_z)                       update gate
    n  = tanh(gx_n + r ⊙ gh_n)                candidate; r multiplies W_hn h + b_hn, bias included
    h' = (1 − z) ⊙ n + z ⊙ h  =  n + z ⊙ (h − n)

Parameters are named and laid out as PyTorch's, so a state dict loads into
``torch.nn.GRU(D, H, batch_first=True)`` (and the cell's into ``torch.nn.GRUCell``):

    weight_ih_l0: (3H, D)   weight_hh_l0: (3H, H)   bias_ih_l0: (3H,)   bias_hh_l0: (3H,)

The layer projects the inputs of all T steps with one matrix product, ``x @ W_ihᵀ + b_ih``
(the only part that does not depend on the previous state), then loops over time. Its
backward (backpropagation through time) walks the steps in reverse, collects the gradient of
every step's two projections, and forms the four parameter gradients with one matrix product
each at the end. Everything keeps the input's floating dtype.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from dlfs.nn.activations import sigmoid, sigmoid_backward, tanh, tanh_backward
from dlfs.nn.layers import Layer, Parameter
from dlfs.rnn.base import RecurrentLayer

__all__ = ["GRUStepCache", "gru_cell_forward", "gru_cell_backward", "GRUCell", "GRU"]


class GRUStepCache(NamedTuple):
    """What one step keeps for its backward. h_prev, r, z, n, gh_n: (N, H) each
    (``gh_n = h_prev W_hnᵀ + b_hn``, which the reset gate multiplied)."""
    h_prev: np.ndarray
    r: np.ndarray
    z: np.ndarray
    n: np.ndarray
    gh_n: np.ndarray


def gru_cell_forward(gx: np.ndarray, h_prev: np.ndarray, W_hh: np.ndarray, b_hh: np.ndarray | None = None
                     ) -> tuple[np.ndarray, GRUStepCache]:
    """One GRU step from the input projection ``gx`` of this step.

    gx: (N, 3H) = x_t W_ihᵀ + b_ih, gate blocks [r | z | n]; h_prev: (N, H);
    W_hh: (3H, H); b_hh: (3H,) or None. Returns ``(h, cache)``: h (N, H) and the
    :class:`GRUStepCache` for :func:`gru_cell_backward`.
    """
    H = h_prev.shape[-1]
    # TODO: one product h_prev @ W_hhᵀ for the three gates; r and z can share one sigmoid call
    #       (their blocks are side by side); r multiplies gh_n *including* its bias b_hn.
    # BEGIN SOLUTION gh = h_prev W_hhᵀ + b_hh; r, z = σ(gx[:, :2H] + gh[:, :2H]); n = tanh(gx_n + r ⊙ gh_n); h = n + z ⊙ (h_prev − n)
    gh = h_prev @ W_hh.T
    if b_hh is not None:
        gh += b_hh
    rz = sigmoid(gx[:, :2 * H] + gh[:, :2 * H])
    r, z = rz[:, :H], rz[:, H:]
    gh_n = gh[:, 2 * H:]
    n = tanh(gx[:, 2 * H:] + r * gh_n)
    h = n + z * (h_prev - n)
    return h, GRUStepCache(h_prev, r, z, n, gh_n)
    # END SOLUTION


def gru_cell_backward(dh: np.ndarray, cache: GRUStepCache, W_hh: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The backward of :func:`gru_cell_forward` given dh = dL/dh: (N, H).

    Returns ``(dgx, dgh, dh_prev)``: dgx (N, 3H) the gradient of the input projection gx
    (so of x_t W_ihᵀ + b_ih), dgh (N, 3H) the gradient of gh = h_prev W_hhᵀ + b_hh, and
    dh_prev (N, H), which collects both paths from h_prev: through z ⊙ h_prev and through gh.
    The parameter gradients follow from dgx and dgh: ``dW_hh = dghᵀ h_prev``, ``db_hh = Σ dgh``.
    """
    # TODO: the n block of dgh is the n block of dgx times r (r ⊙ gh_n); the r and z blocks
    #       of dgh and dgx are equal. Use sigmoid_backward / tanh_backward with the outputs.
    # BEGIN SOLUTION dn, dz, the direct path dh ⊙ z; back through tanh and the two sigmoids; dh_prev += dgh @ W_hh
    h_prev, r, z, n, gh_n = cache
    H = h_prev.shape[-1]
    da_n = tanh_backward(dh * (1 - z), n)               # through h = (1 − z) n + z h_prev, then tanh
    dgx = np.empty(dh.shape[:-1] + (3 * H,), dtype=np.result_type(dh, n))
    dgx[:, :H] = sigmoid_backward(da_n * gh_n, r)
    dgx[:, H:2 * H] = sigmoid_backward(dh * (h_prev - n), z)
    dgx[:, 2 * H:] = da_n
    dgh = dgx.copy()
    dgh[:, 2 * H:] *= r
    dh_prev = dh * z + dgh @ W_hh
    return dgx, dgh, dh_prev
    # END SOLUTION


def _uniform(rng: np.random.Generator, shape: tuple[int, ...], bound: float, dtype) -> np.ndarray:
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def _check_state(h: np.ndarray | None, N: int, H: int, what: str, dtype) -> np.ndarray:
    """h: (N, H) or None (zeros) -> (N, H) in ``dtype``; a clear error for another shape."""
    if h is None:
        return np.zeros((N, H), dtype=dtype)
    h = np.asarray(h)
    if h.shape != (N, H):
        raise ValueError(f"{what}: expected a state of shape (N, H) = ({N}, {H}), got {h.shape}")
    return h


class GRUCell(Layer):
    """One GRU step, as ``torch.nn.GRUCell(input_size, hidden_size)``.

    forward(x: (N, D), h: (N, H) or None) -> h': (N, H); backward(dh') -> (dx, dh).
    Parameters (PyTorch's names and layouts): weight_ih (3H, D), weight_hh (3H, H),
    bias_ih (3H,), bias_hh (3H,) (no biases with ``bias=False``), all ~ U(−1/√H, 1/√H).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 rng: np.random.Generator | int | None = None, dtype=np.float32):
        if input_size < 1 or hidden_size < 1:
            raise ValueError(f"GRUCell needs positive sizes, got ({input_size}, {hidden_size})")
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        D, H = self.input_size, self.hidden_size
        rng = np.random.default_rng(rng)
        k = 1.0 / math.sqrt(H)
        self.weight_ih = Parameter(_uniform(rng, (3 * H, D), k, dtype), name="weight_ih")
        self.weight_hh = Parameter(_uniform(rng, (3 * H, H), k, dtype), name="weight_hh")
        self.bias_ih = Parameter(_uniform(rng, (3 * H,), k, dtype), name="bias_ih") if bias else None
        self.bias_hh = Parameter(_uniform(rng, (3 * H,), k, dtype), name="bias_hh") if bias else None
        self._cache: tuple[np.ndarray, GRUStepCache] | None = None

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias_ih is not None}"

    def forward(self, x: np.ndarray, h: np.ndarray | None = None) -> np.ndarray:
        """x: (N, D), h: (N, H) or None (zeros) -> h': (N, H)."""
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"GRUCell expects x of shape (N, {self.input_size}), got {x.shape}")
        h = _check_state(h, x.shape[0], self.hidden_size, "GRUCell", x.dtype)
        # BEGIN SOLUTION gx = x W_ihᵀ (+ b_ih); one gru_cell_forward; cache x and the step's cache
        gx = x @ self.weight_ih.data.T
        if self.bias_ih is not None:
            gx += self.bias_ih.data
        h_new, step = gru_cell_forward(gx, h, self.weight_hh.data,
                                       None if self.bias_hh is None else self.bias_hh.data)
        self._cache = (x, step)
        return h_new
        # END SOLUTION

    def backward(self, dh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """dh: (N, H) -> (dx (N, D), dh_prev (N, H)); accumulates the four parameter gradients."""
        if self._cache is None:
            raise RuntimeError("GRUCell.backward called before forward")
        # BEGIN SOLUTION gru_cell_backward; dW_ih = dgxᵀ x, dW_hh = dghᵀ h_prev, biases sum over N; dx = dgx W_ih
        x, step = self._cache
        dgx, dgh, dh_prev = gru_cell_backward(dh, step, self.weight_hh.data)
        self.weight_ih.accumulate_grad(dgx.T @ x)
        self.weight_hh.accumulate_grad(dgh.T @ step.h_prev)
        if self.bias_ih is not None:
            self.bias_ih.accumulate_grad(dgx.sum(axis=0))
            self.bias_hh.accumulate_grad(dgh.sum(axis=0))
        return dgx @ self.weight_ih.data, dh_prev
        # END SOLUTION


class GRU(RecurrentLayer):
    """A GRU over a batch of sequences, as ``torch.nn.GRU(D, H, num_layers, batch_first=True)``.

    forward(x: (N, T, D), h0=None) -> (out: (N, T, H), h_n); backward(dout, dh_n=None) -> (dx, dh0).

    * out[:, t] is the top layer's state after step t; h_n is the state after the last step;
    * states (h0, h_n, dh_n, dh0) are (N, H) for one layer and (L, N, H), layer 0 first, for
      ``num_layers = L > 1`` (PyTorch always uses (L, N, H): for one layer, theirs is ours
      with ``[None]``); h0=None means zeros; dout=None means no loss on the outputs;
    * layer k > 0 reads the outputs of layer k − 1 (D_k = H);
    * parameters ``weight_ih_l{k}: (3H, D_k)``, ``weight_hh_l{k}: (3H, H)``, ``bias_ih_l{k}``,
      ``bias_hh_l{k}: (3H,)``, gate blocks r, z, n, created and initialised by
      :class:`dlfs.rnn.base.RecurrentLayer` as PyTorch does; backward accumulates their gradients.
    """

    gates = 3

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 rng: np.random.Generator | int | None = None, dtype=np.float32):
        super().__init__(input_size, hidden_size, num_layers, bias, rng, dtype)
        self._caches: list | None = None          # one (x_tm, steps) per layer, from the last forward

    # -- forward and backward --------------------------------------------------------------
    def forward(self, x: np.ndarray, h0: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """x: (N, T, D), h0: (N, H) / (L, N, H) or None -> (out (N, T, H), h_n like h0)."""
        N, _, _ = self.check_input(x)
        h0s = self.initial_state(h0, N, np.result_type(x, self.dtype))
        caches, h_n = [], []
        for layer in range(self.num_layers):
            x, h, cache = self.layer_forward(layer, x, h0s[layer])
            caches.append(cache)
            h_n.append(h)
        self._caches = caches
        return x, self.final_state(np.stack(h_n))

    def backward(self, dout: np.ndarray | None, dh_n: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """dout: (N, T, H) or None, dh_n: like h_n or None -> (dx (N, T, D), dh0 like h0)."""
        if self._caches is None:
            raise RuntimeError("GRU.backward called before forward")
        x_tm, steps = self._caches[-1]
        T, N = x_tm.shape[:2]
        self.check_upstream(dout, (N, T, self.hidden_size), "dout")
        dhs = self.initial_state(dh_n, N, steps[0].n.dtype, what="dh_n")
        dh0 = [None] * self.num_layers
        for layer in reversed(range(self.num_layers)):
            dout, dh0[layer] = self.layer_backward(layer, dout, dhs[layer], self._caches[layer])
        return dout, self.final_state(np.stack(dh0))

    def layer_forward(self, layer: int, x: np.ndarray, h0: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple]:
        """One layer over all T steps. x: (N, T, D_k), h0: (N, H) ->
        ``(out (N, T, H), h_n (N, H), cache)``; cache = ``(x_tm, steps)`` with x_tm the time-major
        view (T, N, D_k) of x and steps the T :class:`GRUStepCache` s."""
        W_ih, W_hh, b_ih, b_hh = self.layer_parameters(layer)
        N, T, _ = x.shape
        # TODO: the input projection of every step at once, time-major: x.transpose(1, 0, 2) @ W_ihᵀ
        #       gives (T, N, 3H); then one gru_cell_forward per step, keeping each step's cache.
        # BEGIN SOLUTION project all steps with one product, loop t = 0..T−1 with gru_cell_forward, return the states batch first
        x_tm = x.transpose(1, 0, 2)                              # (T, N, D), a view
        gx = x_tm @ W_ih.data.T                                  # (T, N, 3H), one BLAS call
        if b_ih is not None:
            gx += b_ih.data
        h = h0
        out = np.empty((T, N, self.hidden_size), dtype=np.result_type(gx, h))
        steps = []
        for t in range(T):
            h, step = gru_cell_forward(gx[t], h, W_hh.data, None if b_hh is None else b_hh.data)
            out[t] = h
            steps.append(step)
        return out.transpose(1, 0, 2), h, (x_tm, steps)
        # END SOLUTION

    def layer_backward(self, layer: int, dout: np.ndarray | None, dh_n: np.ndarray, cache: tuple
                       ) -> tuple[np.ndarray, np.ndarray]:
        """Backpropagation through time for one layer. dout: (N, T, H) or None, dh_n: (N, H),
        cache from :meth:`layer_forward` -> ``(dx (N, T, D_k), dh0 (N, H))``; accumulates the
        layer's four parameter gradients."""
        W_ih, W_hh, b_ih, b_hh = self.layer_parameters(layer)
        x_tm, steps = cache
        T, N, _ = x_tm.shape
        H = self.hidden_size
        # TODO: in reverse time, the state's gradient is what comes from out[:, t] plus what the
        #       next step sent back. Keep every step's dgx and dgh in (T, N, 3H) arrays, then one
        #       product per weight: dW_ih = Σ_t dgx_tᵀ x_t, dW_hh = Σ_t dgh_tᵀ h_{t−1}.
        # BEGIN SOLUTION loop t = T−1..0 with gru_cell_backward; then dW_ih, dW_hh, the biases and dx from the stacked dgx, dgh
        dtype = steps[0].n.dtype
        dgx = np.empty((T, N, 3 * H), dtype=dtype)
        dgh = np.empty((T, N, 3 * H), dtype=dtype)
        h_prev = np.empty((T, N, H), dtype=dtype)
        dh = dh_n
        for t in reversed(range(T)):
            if dout is not None:
                dh = dh + dout[:, t]
            dgx[t], dgh[t], dh = gru_cell_backward(dh, steps[t], W_hh.data)
            h_prev[t] = steps[t].h_prev
        gx2, gh2 = dgx.reshape(T * N, 3 * H), dgh.reshape(T * N, 3 * H)
        W_ih.accumulate_grad(gx2.T @ x_tm.reshape(T * N, -1))
        W_hh.accumulate_grad(gh2.T @ h_prev.reshape(T * N, H))
        if b_ih is not None:
            b_ih.accumulate_grad(gx2.sum(axis=0))
            b_hh.accumulate_grad(gh2.sum(axis=0))
        return (dgx @ W_ih.data).transpose(1, 0, 2), dh
        # END SOLUTION
