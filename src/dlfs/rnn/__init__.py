"""Recurrent networks (Module 3).

- ``dlfs.rnn.vanilla`` (Topic 18): the tanh cell, the unrolled ``RNN`` layer with its BPTT
  backward, truncated BPTT with a carried hidden state.
- ``dlfs.rnn.lstm`` (Topic 19): the LSTM cell (gates i, f, g, o), the ``LSTM`` layer, stacked
  layers (``num_layers``), the forget-gate bias option.
- ``dlfs.rnn.gru`` (Topic 20): the GRU step (gates r, z, n; PyTorch's formulation, the reset
  gate multiplying ``W_hn h + b_hn``), ``GRUCell``, the ``GRU`` layer, stacked layers.
- ``dlfs.rnn.masking`` (Topic 21): lengths and masks, reversal within each sequence's length,
  masked mean and last-state pooling with their backward.
- ``dlfs.rnn.bidirectional`` (Topic 21): ``Packed`` runs any of the layers above over a padded
  batch with ``lengths`` as PyTorch runs a packed sequence; ``Bidirectional`` (outputs
  ``(N, T, 2H)``, states ``(2, N, H)``, parameter names with ``_reverse``).

Conventions shared by every recurrent layer here
------------------------------------------------

Shapes (batch first, as ``torch.nn.RNN/LSTM/GRU(batch_first=True)``):

* input ``x: (N, T, D)`` — N sequences, T steps, D features per step;
* hidden state ``h: (N, H)``; the LSTM's state is the pair ``(h, c)``, both ``(N, H)``;
* a stack of ``num_layers = L > 1`` layers takes and returns states ``(L, N, H)``, layer 0
  first, as PyTorch does; a single layer uses ``(N, H)``;
* output ``out: (N, T, H)`` — the top layer's hidden state at every step.

Layer API (``dlfs.nn.layers.Layer``):

* ``forward(x, h0=None) -> (out, h_n)``; ``h0=None`` means zeros. The LSTM takes and returns
  the state as a tuple: ``forward(x, state=None) -> (out, (h_n, c_n))`` with
  ``state = (h0, c0)`` (either may be None, meaning zeros).
* ``backward(dout, dh_n=None) -> (dx, dh0)``; ``dout: (N, T, H)`` or None (no loss on the
  outputs), ``dh_n`` the gradient reaching the final state or None (zeros). The LSTM:
  ``backward(dout, dstate=None) -> (dx, (dh0, dc0))`` with ``dstate = (dh_n, dc_n)``.
  Parameter gradients are **accumulated** (``+=``) into ``Parameter.grad``; the input
  gradients are returned. Each backward belongs to the last forward (its cache).
* The dtype of the parameters is kept (float32 by default, float64 for gradient checks).

Parameters are named and laid out exactly as PyTorch's modules, so a state dict loads into
``torch.nn.RNN``/``LSTM``/``GRU(batch_first=True)`` unchanged and back
(``layer.load_state_dict(state)``, ``Layer.from_torch_state(state, ...)``). The base class
``dlfs.rnn.base.RecurrentLayer`` (given code) creates them, loads PyTorch state dicts and checks
inputs and states; a layer subclasses it and sets ``gates`` (G):

* ``weight_ih_l{k}: (G·H, D_k)``, ``weight_hh_l{k}: (G·H, H)``, ``bias_ih_l{k}: (G·H,)``,
  ``bias_hh_l{k}: (G·H,)`` for layer ``k`` (``D_0 = D``, ``D_k = H`` above it);
* G gate blocks stacked along the first axis: RNN G = 1; LSTM G = 4 in the order
  **i, f, g, o** (input, forget, cell candidate, output); GRU G = 3 in the order r, z, n;
* initialisation as PyTorch: every parameter ``~ U(-1/√H, 1/√H)``, drawn in the order
  weight_ih, weight_hh, bias_ih, bias_hh, layer by layer, from ``rng`` (a Generator or seed).

Cells are functions, and the layers use them:

* the input projection of every step is one matmul before the recurrence,
  ``xp = x @ weight_ihᵀ + bias_ih: (N, T, G·H)``; the recurrence is a loop over T that calls
  the cell on ``xp[:, t]``;
* ``rnn_cell_forward(xp_t, h_prev, weight_hh, bias_hh=None) -> h`` and
  ``lstm_cell_forward(xp_t, h_prev, c_prev, weight_hh, bias_hh=None) -> (h, c, cache)``;
  ``bias_hh=None`` when the layer has already folded it into ``xp``;
* ``*_cell_backward`` returns ``(dxp_t, dh_prev[, dc_prev])``: the gradient of the step's
  pre-activations, which for the RNN and LSTM is also the gradient of ``h_prev @ weight_hhᵀ +
  bias_hh``. The layer therefore gathers the weight gradients over all steps in single
  matmuls after the loop: ``dweight_ih = Σ dxpᵀ x``, ``dweight_hh = Σ dxpᵀ h_prev``,
  ``dbias_ih = dbias_hh = Σ dxp``.

The names below are exported lazily: importing ``dlfs.rnn`` loads no submodule until a name is
used, so a topic's exercise file can stand in for its module.
"""

from __future__ import annotations

from dlfs.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "dlfs.rnn.vanilla": ["rnn_cell_forward", "rnn_cell_backward", "RNN", "truncated_bptt"],
    "dlfs.rnn.lstm": ["lstm_cell_forward", "lstm_cell_backward", "LSTM"],
    "dlfs.rnn.gru": ["gru_cell_forward", "gru_cell_backward", "GRUCell", "GRU"],
    "dlfs.rnn.masking": [
        "length_mask", "lengths_from_mask", "reverse_padded", "masked_mean",
        "masked_mean_backward", "last_state", "last_state_backward",
    ],
    "dlfs.rnn.bidirectional": ["Packed", "Bidirectional"],
})
