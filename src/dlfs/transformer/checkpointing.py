"""Topic 32 — gradient checkpointing: keep a block's input, drop its activations, recompute them
in the backward pass.

A layer's ``forward`` caches what its ``backward`` needs (inputs of every Linear, attention
weights, normalised activations...): for a transformer block, many (B, T, D)-sized arrays and
the (B, H, T, T) attention weights. :class:`Checkpoint` wraps any layer with the ``Layer``
API (``forward(x, *args, **kwargs)``, ``backward(dy)``) in place and keeps only ``x``:

    forward(x):   y = layer.forward(x);  keep x (and the random state);  free the layer's caches
    backward(dy): layer.forward(x) again (same random state: same dropout masks);
                  dx = layer.backward(dy);  free the caches again

The recomputation runs the same operations on the same inputs, so the gradients are
*exactly* (bit for bit) those of the plain backward. The price: one more forward per
checkpointed block, about a third more compute for a block whose backward costs two forwards.

**Freeing the caches, for any layer.** Before the forward, :class:`Checkpoint` notes the
attributes of the layer and of every sublayer (a shallow snapshot); after it, every attribute
the forward rebound (``self.cache = ...``) is set back to what it was, which drops the
references to the new activations. Layers that update state in place during a forward (batch
norm's running statistics) would see it twice: transformers have none.

**Randomness.** Dropout draws its masks from a ``np.random.Generator``. The states of the
generators found in the layer are saved before the forward and restored for the
recomputation (and put back afterwards), so the recomputed masks are the forward's.

The layer is not replaced: :func:`checkpoint` puts the checkpointing ``forward`` and
``backward`` on the layer object itself, so a model's ``named_parameters``, ``state_dict``
and saved checkpoints are the same with and without it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from dlfs.nn.layers import Layer


def layer_tree(layer: Layer) -> list[Layer]:
    """The layer and every sublayer reachable from it (each once)."""
    return [layer] + [sub for _, sub in layer._named_sublayers()]


def generators(layer: Layer) -> list[np.random.Generator]:
    """Every ``np.random.Generator`` held by the layer or a sublayer (each once)."""
    found: dict[int, np.random.Generator] = {}
    for sub in layer_tree(layer):
        for value in vars(sub).values():
            if isinstance(value, np.random.Generator):
                found.setdefault(id(value), value)
    return list(found.values())


def snapshot(layer: Layer) -> list[tuple[Layer, dict]]:
    """A shallow copy of the attributes of the layer and of each sublayer."""
    return [(sub, dict(vars(sub))) for sub in layer_tree(layer)]


def restore(snap: list[tuple[Layer, dict]]) -> None:
    """Put back every attribute the snapshot recorded; delete the ones added since. Arrays that
    only the dropped attributes referenced (the caches) are freed."""
    for sub, before in snap:
        attrs = vars(sub)
        for key in [k for k in attrs if k not in before]:
            del attrs[key]
        for key, value in before.items():
            if attrs.get(key, None) is not value:
                attrs[key] = value


class Checkpoint:
    """Gradient checkpointing of one layer: its ``forward`` keeps only the inputs, its
    ``backward`` recomputes the forward and then runs the layer's own backward.

    ``Checkpoint(layer)`` installs itself on the layer (:func:`checkpoint`): ``layer.forward``
    and ``layer.backward`` become :meth:`forward` and :meth:`backward` below, which call the
    layer class's own methods. The layer stays where it was, with the same parameters under
    the same names; :func:`uncheckpoint` takes the wrapper off.

    forward(x, *args, **kwargs): the layer's output (x: e.g. (B, T, D));
    backward(dy): dx and the parameter gradients, the same arrays the plain backward gives.
    """

    def __init__(self, layer: Layer):
        if not isinstance(layer, Layer):
            raise TypeError(f"checkpointing wraps a Layer, got {type(layer).__name__}")
        self.layer = layer
        self._saved = None
        layer.forward, layer.backward, layer._checkpoint = self.forward, self.backward, self

    def _forward(self, x, *args, **kwargs):
        return type(self.layer).forward(self.layer, x, *args, **kwargs)

    def _backward(self, dy):
        return type(self.layer).backward(self.layer, dy)

    def forward(self, x: np.ndarray, *args, **kwargs) -> np.ndarray:
        """Run the layer, keep (x, args, kwargs, random states), free the layer's caches."""
        # TODO: save the generators' states *before* the forward (bit_generator.state), take a
        #       snapshot of the layer tree, run the plain forward (self._forward), then restore
        #       the snapshot.
        # BEGIN SOLUTION save the random states and a snapshot, forward, restore the snapshot, keep the inputs
        states = [(g, g.bit_generator.state) for g in generators(self.layer)]
        snap = snapshot(self.layer)
        y = self._forward(x, *args, **kwargs)
        restore(snap)
        self._saved = (x, args, kwargs, states)
        return y
        # END SOLUTION

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Recompute the forward from the saved input with the saved random states, then the
        layer's backward; free the recomputed caches. dy, dx: shaped like the output and x."""
        if self._saved is None:
            raise RuntimeError(f"{type(self.layer).__name__}.backward (checkpointed) called before forward")
        # TODO: the generators must give the forward's draws again, and then continue from where
        #       they are now (the next forward must not repeat the masks).
        # BEGIN SOLUTION set the saved random states, recompute the forward, put the current states back, backward, free
        x, args, kwargs, states = self._saved
        now = [(g, g.bit_generator.state) for g, _ in states]
        for g, state in states:
            g.bit_generator.state = state
        snap = snapshot(self.layer)
        self._forward(x, *args, **kwargs)
        for g, state in now:
            g.bit_generator.state = state
        dx = self._backward(dy)
        restore(snap)
        self._saved = None
        return dx
        # END SOLUTION


def checkpoint(layer: Layer) -> Layer:
    """Turn on checkpointing for ``layer`` (in place; no-op if it is on). Returns the layer."""
    if not is_checkpointed(layer):
        Checkpoint(layer)
    return layer


def uncheckpoint(layer: Layer) -> Layer:
    """Turn checkpointing off for ``layer`` (in place; no-op if it is off). Returns the layer."""
    for key in ("forward", "backward", "_checkpoint"):
        vars(layer).pop(key, None)
    return layer


def is_checkpointed(layer: Layer) -> bool:
    return "_checkpoint" in vars(layer)


def checkpoint_blocks(blocks: Sequence[Layer], n: int | None = None) -> None:
    """Checkpoint the first ``n`` of ``blocks`` (all when n is None) and not the others, in
    place: e.g. ``checkpoint_blocks(gpt.blocks, 4)``; ``n = 0`` turns checkpointing off."""
    n = len(blocks) if n is None else int(n)
    if not 0 <= n <= len(blocks):
        raise ValueError(f"n must be between 0 and {len(blocks)} (the number of blocks), got {n}")
    for i, block in enumerate(blocks):
        checkpoint(block) if i < n else uncheckpoint(block)
