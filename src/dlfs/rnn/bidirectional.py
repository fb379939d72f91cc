"""Topic 21 — recurrent layers over variable-length batches, and bidirectional RNNs.

Both wrap any recurrent layer that follows the conventions of :mod:`dlfs.rnn`
(``forward(x, state=None) -> (out, state_n)``, ``backward(dout, dstate=None) -> (dx, dstate0)``,
a state that is one array ``(N, H)`` or a tuple of them such as the LSTM's ``(h, c)``): the
vanilla ``RNN``, the ``LSTM`` and the ``GRU``.

:class:`Packed` runs a layer over a padded batch ``x: (N, T, D)`` with ``lengths: (N,)`` exactly as
if each sequence ran alone, without its padding, the way PyTorch runs a *packed* sequence
(``torch.nn.utils.rnn.pack_padded_sequence``). Sort the distinct lengths L₁ < L₂ < … < L_k
(L₀ = 0): during the steps ``[L_{j−1}, L_j)`` exactly the sequences with ``length ≥ L_j`` are
still running. Each such *segment* is one call of the layer on those rows only, starting from the
state where the previous segment left them; the state of a sequence that has ended stays as it
was. So padded steps are never computed, and

* ``out[i, t]`` is 0 for every padded step ``t ≥ lengths[i]``;
* ``state_n[i]`` is the state after each sequence's own last real token;
* no gradient comes from or goes to a padded step: ``dx[i, t] = 0`` there, and the parameter
  gradients are those of the unpadded sequences.

The loop over time still makes T steps in all (each step belongs to one segment); the work of
a step shrinks with the batch, as in PyTorch's packed loop. Each segment keeps its own forward
cache for the backward pass, in a *replica* of the layer that shares its parameters.

:class:`Bidirectional` runs one layer forward in time and another backward, and concatenates:
``out: (N, T, 2H)`` with ``out[..., :H]`` the forward direction and ``out[..., H:]`` the reverse
one, ``state_n: (2, N, H)`` (forward first), as
``torch.nn.GRU/LSTM/RNN(bidirectional=True, batch_first=True)`` — including packed sequences:
the reverse direction reads each sequence from its own last real token (``reverse_padded``),
not from the end of the padding. Its parameters are named as PyTorch's, the reverse
direction's with the suffix ``_reverse`` (``weight_ih_l0_reverse``), so a state dict loads into
the PyTorch module unchanged.
"""

from __future__ import annotations

import copy
from typing import Callable, Iterator

import numpy as np

from dlfs.nn.layers import Layer, Parameter
from dlfs.rnn.masking import check_lengths, reverse_padded

__all__ = ["length_segments", "Packed", "Bidirectional"]


# -- a state is one array (N, H) or a tuple of them; stacked layers use (L, N, H) ----------------

def tree_map(fn: Callable, *states):
    """Apply ``fn`` to the arrays of one or more states of the same structure (array or tuple)."""
    if isinstance(states[0], tuple):
        return tuple(tree_map(fn, *parts) for parts in zip(*states))
    return fn(*states)


def take_rows(state, rows: np.ndarray):
    """The states of the sequences ``rows`` (a copy). The batch axis of an (…, N, H) array is
    its second-to-last one."""
    return tree_map(lambda a: np.take(a, rows, axis=a.ndim - 2), state)


def put_rows(full, rows: np.ndarray, part) -> None:
    """``full[..., rows, :] = part`` for every array of the state, in place."""
    def put(a, b):
        a[(slice(None),) * (a.ndim - 2) + (rows,)] = b
    tree_map(put, full, part)


def length_segments(lengths: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
    """The segments of a packed run. lengths: (N,) ints ≥ 1 ->
    ``[(start, stop, rows), ...]``, one per distinct length L_j in increasing order: the steps
    ``start = L_{j−1} ≤ t < stop = L_j`` (L₀ = 0) and the (sorted) indices ``rows`` of the
    sequences still running during them, those with ``length ≥ L_j``.

    Example: lengths [3, 1, 3, 2] -> [(0, 1, [0, 1, 2, 3]), (1, 2, [0, 2, 3]), (2, 3, [0, 2])].
    """
    # BEGIN SOLUTION walk the sorted distinct lengths; each one closes a segment of the sequences at least that long
    segments = []
    start = 0
    for stop in np.unique(lengths):
        segments.append((start, int(stop), np.flatnonzero(lengths >= stop)))
        start = int(stop)
    return segments
    # END SOLUTION


class Packed(Layer):
    """A recurrent layer run over a padded batch as over a packed one.

    forward(x: (N, T, D), h0=None, lengths=None) -> (out: (N, T, H), h_n);
    backward(dout: (N, T, H) or None, dh_n=None) -> (dx: (N, T, D), dh0).

    h0, h_n, dh_n, dh0 are states of the wrapped layer (``(N, H)``, ``(L, N, H)`` or a tuple
    of those); lengths: (N,) ints in [1, T] (None: every sequence has length T). Outputs and
    input gradients are 0 at padded steps; h_n holds each sequence's state after its last real
    token. The parameters are the wrapped layer's, under its names.
    """

    def __init__(self, layer: Layer):
        if not isinstance(layer, Layer):
            raise TypeError(f"Packed wraps a recurrent Layer, got {type(layer).__name__}")
        self.layer = layer
        self._replicas: list[Layer] = []
        self._replica_params: tuple[int, ...] = ()
        self._run: tuple | None = None

    def extra_repr(self) -> str:
        return repr(self.layer)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        return self.layer.named_parameters(prefix)

    def replica(self, j: int) -> Layer:
        """A copy of the layer for segment ``j`` that shares its Parameter objects (so the
        gradients of every segment accumulate into the same ``.grad``) and has its own cache."""
        ids = tuple(id(p) for p in self.layer.parameters())
        if ids != self._replica_params:                 # parameters replaced: start again
            self._replicas, self._replica_params = [], ids
        while len(self._replicas) <= j:
            memo = {id(p): p for p in self.layer.parameters()}
            self._replicas.append(copy.deepcopy(self.layer, memo))
        replica = self._replicas[j]
        replica.train(self.layer.training)
        return replica

    def forward(self, x: np.ndarray, h0=None, lengths=None):
        """x: (N, T, D), h0: a state or None (zeros), lengths: (N,) or None -> (out, h_n)."""
        if not isinstance(x, np.ndarray) or x.ndim != 3:
            raise ValueError(f"Packed expects x of shape (N, T, D) (batch first), got "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        N, T, _ = x.shape
        lengths = np.full(N, T, dtype=np.int64) if lengths is None else check_lengths(lengths, N, T)
        segments = length_segments(lengths)
        # TODO: one call of a replica per segment on x[rows, start:stop], starting from the
        #       state of those rows (take_rows) and writing its end state back (put_rows into a
        #       copy of the full state, which you own); outputs go to out[rows, start:stop].
        #       The first segment holds every row: give it h0 as it is (None stays None).
        # BEGIN SOLUTION run the segments in order through self.replica(j); zeros at padded outputs; keep (segments, shapes) for backward
        out = state = None
        for j, (start, stop, rows) in enumerate(segments):
            h_start = h0 if j == 0 else take_rows(state, rows)
            out_seg, h_end = self.replica(j).forward(x[rows, start:stop], h_start)
            if j == 0:                                        # every row runs in the first segment
                out = np.zeros((N, T, out_seg.shape[-1]), dtype=out_seg.dtype)
                state = tree_map(np.copy, h_end)
            else:
                put_rows(state, rows, h_end)
            out[rows, start:stop] = out_seg
        self._run = (segments, x.shape, state)
        return out, state
        # END SOLUTION

    def backward(self, dout: np.ndarray | None, dh_n=None):
        """dout: (N, T, H) or None, dh_n: a state or None (zeros) -> (dx (N, T, D), dh0)."""
        if self._run is None:
            raise RuntimeError("Packed.backward called before forward")
        segments, x_shape, state = self._run
        # TODO: the segments in reverse order, each through the replica that ran it: its
        #       upstream is dout[rows, start:stop] and the state gradient of its rows; the dh0 it
        #       returns replaces the state gradient of those rows (that is where they started).
        # BEGIN SOLUTION the segments last to first: take the rows' state gradient, backward, scatter dx and put the new state gradient back
        dstate = tree_map(np.zeros_like, state) if dh_n is None else tree_map(np.array, dh_n)
        dx = None
        for j in reversed(range(len(segments))):
            start, stop, rows = segments[j]
            dout_seg = None if dout is None else dout[rows, start:stop]
            dx_seg, dh_start = self.replica(j).backward(dout_seg, take_rows(dstate, rows))
            if dx is None:
                dx = np.zeros(x_shape, dtype=dx_seg.dtype)
            dx[rows, start:stop] = dx_seg
            put_rows(dstate, rows, dh_start)
        return dx, dstate
        # END SOLUTION


class Bidirectional(Layer):
    """Two recurrent layers, one reading each sequence forward and one backward, side by side.

    forward(x: (N, T, D), h0=None, lengths=None) -> (out: (N, T, 2H), h_n);
    backward(dout: (N, T, 2H) or None, dh_n=None) -> (dx: (N, T, D), dh0).

    States stack the two directions on a new first axis, forward first: ``(2, N, H)`` (the
    LSTM: a tuple ``(h, c)`` of two such arrays), as PyTorch's one-layer bidirectional modules.
    ``out[i, t, :H]`` is the forward direction's state after reading steps 0..t;
    ``out[i, t, H:]`` the reverse direction's after reading steps lengths[i]−1 down to t.
    Padded steps are 0 in ``out`` and ``dx``. Both layers must be one-layer recurrent layers of
    the same kind and sizes; parameter names are the forward layer's, then the reverse
    layer's with ``_reverse`` appended (PyTorch's names).
    """

    def __init__(self, forward_layer: Layer, reverse_layer: Layer):
        for layer in (forward_layer, reverse_layer):
            if getattr(layer, "num_layers", 1) != 1:
                raise ValueError(f"Bidirectional wraps one-layer recurrent layers; {layer!r} has "
                                 f"num_layers={layer.num_layers} (stack Bidirectional layers instead)")
        if type(forward_layer) is not type(reverse_layer) or \
                getattr(forward_layer, "hidden_size", None) != getattr(reverse_layer, "hidden_size", None) or \
                getattr(forward_layer, "input_size", None) != getattr(reverse_layer, "input_size", None):
            raise ValueError(f"Bidirectional needs two layers of the same kind and sizes, got "
                             f"{forward_layer!r} and {reverse_layer!r}")
        self.forward_rnn = Packed(forward_layer)
        self.reverse_rnn = Packed(reverse_layer)
        self._lengths: np.ndarray | None = None
        self._hidden: int | None = None

    @classmethod
    def of(cls, layer_cls: type, *args, rng: np.random.Generator | int | None = None, **kwargs) -> "Bidirectional":
        """Both directions built as ``layer_cls(*args, rng=rng, **kwargs)`` from one generator,
        the forward one first (the order in which PyTorch draws a bidirectional layer's weights)."""
        rng = np.random.default_rng(rng)
        return cls(layer_cls(*args, rng=rng, **kwargs), layer_cls(*args, rng=rng, **kwargs))

    def extra_repr(self) -> str:
        return repr(self.forward_rnn.layer)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        yield from self.forward_rnn.named_parameters(prefix)
        for name, p in self.reverse_rnn.named_parameters(prefix):
            yield f"{name}_reverse", p

    @staticmethod
    def _direction(state, d: int):
        """The state of direction d (0 forward, 1 reverse) from a (2, N, H) state (or tuple)."""
        if state is None:
            return None
        def pick(a):
            a = np.asarray(a)
            if a.ndim != 3 or a.shape[0] != 2:
                raise ValueError(f"Bidirectional: a state has shape (2, N, H), forward direction "
                                 f"first, got {a.shape}")
            return a[d]
        return tree_map(pick, state)

    def forward(self, x: np.ndarray, h0=None, lengths=None):
        """x: (N, T, D), h0: (2, N, H) (or a tuple of them) or None, lengths: (N,) or None
        -> (out (N, T, 2H), h_n like h0)."""
        if not isinstance(x, np.ndarray) or x.ndim != 3:
            raise ValueError(f"Bidirectional expects x of shape (N, T, D) (batch first), got "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        N, T, _ = x.shape
        lengths = np.full(N, T, dtype=np.int64) if lengths is None else check_lengths(lengths, N, T)
        # TODO: the reverse layer reads reverse_padded(x, lengths), and its outputs are put back
        #       in the original order with reverse_padded again. Padded outputs stay 0.
        # BEGIN SOLUTION run both directions through their Packed wrappers; un-reverse the reverse outputs; concatenate outputs, stack states
        out_f, h_f = self.forward_rnn.forward(x, self._direction(h0, 0), lengths)
        out_r, h_r = self.reverse_rnn.forward(reverse_padded(x, lengths), self._direction(h0, 1), lengths)
        self._lengths, self._hidden = lengths, out_f.shape[-1]
        out = np.concatenate([out_f, reverse_padded(out_r, lengths)], axis=-1)
        return out, tree_map(lambda a, b: np.stack([a, b]), h_f, h_r)
        # END SOLUTION

    def backward(self, dout: np.ndarray | None, dh_n=None):
        """dout: (N, T, 2H) or None, dh_n: like h_n or None -> (dx (N, T, D), dh0 like h0)."""
        if self._lengths is None:
            raise RuntimeError("Bidirectional.backward called before forward")
        lengths, H = self._lengths, self._hidden
        # BEGIN SOLUTION split dout in the two halves; the reverse half goes through reverse_padded before and after its backward; add the two dx
        dout_f = None if dout is None else dout[..., :H]
        dout_r = None if dout is None else reverse_padded(dout[..., H:], lengths)
        dx_f, dh_f = self.forward_rnn.backward(dout_f, self._direction(dh_n, 0))
        dx_r, dh_r = self.reverse_rnn.backward(dout_r, self._direction(dh_n, 1))
        dx = dx_f + reverse_padded(dx_r, lengths)
        return dx, tree_map(lambda a, b: np.stack([a, b]), dh_f, dh_r)
        # END SOLUTION
