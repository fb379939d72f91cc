"""Topic 34 — data-parallel training: every rank holds the whole model, computes gradients on
its own slice of the batch, and the ranks sum those gradients before the same optimiser step.

With a global batch of B targets, a mean loss ``L = (1/B) Σ_i ℓ_i`` has the gradient
``∇L = Σ_r (1/B) Σ_{i ∈ shard r} ∇ℓ_i``: each rank back-propagates its *sum* of losses scaled
by 1/B (not the mean over its shard: shards may differ in size), and one all-reduce (a sum)
gives every rank ∇L. Every rank then takes the same optimiser step from the same parameters,
so the replicas stay identical without ever sending parameters. Gradient accumulation is the
same sum taken over micro-batches in one process: gradients accumulate (``+=``) through
several backward passes before one step.

The gradients of all parameters travel in one flat buffer (one all-reduce per step instead of
one per parameter; frameworks call these buckets).

``loss_fn(pred, target) -> (loss_sum, dpred)`` returns the **sum** of the per-target losses
and its gradient, e.g. ``functools.partial(dlfs.nn.losses.cross_entropy, reduction="sum")``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from dlfs.distributed.ring import chunk_bounds
from dlfs.nn.layers import Layer, Parameter


def shard_bounds(batch_size: int, rank: int, world_size: int) -> tuple[int, int]:
    """The rows ``[lo, hi)`` of a global batch of ``batch_size`` rows that ``rank`` trains on:
    the rank-th of :func:`dlfs.distributed.ring.chunk_bounds` (sizes differ by at most one)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, {world_size})")
    if batch_size < world_size:
        raise ValueError(f"a batch of {batch_size} cannot give each of {world_size} ranks a sample")
    return chunk_bounds(batch_size, world_size)[rank]


def flatten_grads(params: Sequence[Parameter], out: np.ndarray | None = None) -> np.ndarray:
    """Concatenate every ``p.grad`` (raveled, in order) into one 1-D array: ``(Σ p.size,)``.
    A parameter whose grad is None contributes zeros. ``out``: a buffer to fill instead."""
    total = sum(p.size for p in params)
    dtype = np.result_type(*[p.dtype for p in params])
    flat = np.empty(total, dtype=dtype) if out is None else out
    # BEGIN SOLUTION copy each gradient (or zeros) into its slice of flat, in parameter order
    offset = 0
    for p in params:
        n = p.size
        if p.grad is None:
            flat[offset:offset + n] = 0
        else:
            flat[offset:offset + n] = p.grad.reshape(-1)
        offset += n
    return flat
    # END SOLUTION


def unflatten_into(flat: np.ndarray, arrays: Sequence[np.ndarray]) -> None:
    """Copy consecutive slices of ``flat: (Σ a.size,)`` into the given arrays, in place
    (their shapes and dtypes are kept)."""
    # BEGIN SOLUTION write each slice of flat back into its array, in place
    offset = 0
    for a in arrays:
        n = a.size
        a[...] = flat[offset:offset + n].reshape(a.shape)
        offset += n
    if offset != flat.size:
        raise ValueError(f"the flat buffer has {flat.size} elements, the arrays {offset}")
    # END SOLUTION


def local_gradients(model: Layer, loss_fn: Callable, x: np.ndarray, y: np.ndarray, lo: int, hi: int,
                    scale: float, micro_batches: int = 1) -> float:
    """Forward and backward over the rows ``[lo, hi)`` of ``x: (B, ...)``, ``y: (B, ...)``,
    in ``micro_batches`` pieces (gradient accumulation), each backward seeded with
    ``scale · dloss_sum`` so that the accumulated gradient is ``scale · Σ ∇ℓ_i`` over the rows.

    The model's gradients must be zero on entry (they accumulate). Returns ``scale · Σ ℓ_i``.
    """
    if micro_batches < 1 or micro_batches > hi - lo:
        raise ValueError(f"micro_batches must be in [1, {hi - lo}] for {hi - lo} rows, got {micro_batches}")
    # TODO: split [lo, hi) with chunk_bounds(hi - lo, micro_batches); the model must not be
    # stepped between micro-batches.
    # BEGIN SOLUTION forward, loss and scaled backward per micro-batch; return the scaled loss sum
    total = 0.0
    for mlo, mhi in chunk_bounds(hi - lo, micro_batches):
        xb, yb = x[lo + mlo:lo + mhi], y[lo + mlo:lo + mhi]
        pred = model.forward(xb)
        loss, dpred = loss_fn(pred, yb)
        model.backward(dpred * np.asarray(scale, dtype=dpred.dtype))
        total += scale * float(loss)
    return total
    # END SOLUTION


def data_parallel_step(model: Layer, loss_fn: Callable, x: np.ndarray, y: np.ndarray, optimizer, comm,
                       micro_batches: int = 1) -> float:
    """One synchronous data-parallel step on the global batch ``x: (B, ...)``, ``y: (B, ...)``
    (every rank is given the same global batch and trains on its own shard of it).

    1. zero the gradients; :func:`local_gradients` over this rank's shard with scale ``1 / y.size``;
    2. flatten the gradients into one buffer, sum it over the ranks (``comm.allreduce``), copy
       the summed gradients back into every ``p.grad``;
    3. ``optimizer.step()``;
    4. sum the scaled local losses over the ranks (a one-element all-reduce).

    With a :class:`dlfs.distributed.zero.ZeroAdamW` steps 2 and 3 are the optimiser's
    (``optimizer.step_sharded(flat_grads)``): the same sums, so the same parameters.
    Returns the mean loss over the global batch (the same on every rank).
    """
    lo, hi = shard_bounds(len(x), comm.rank, comm.world_size)
    params = model.parameters()
    # BEGIN SOLUTION local gradients, sum the flat gradients (all-reduce, or the ZeRO step), write back, step; sum the loss
    for p in params:
        p.zero_grad()
    local = local_gradients(model, loss_fn, x, y, lo, hi, 1.0 / y.size, micro_batches)
    flat = flatten_grads(params)
    if getattr(optimizer, "sharded", False):
        optimizer.step_sharded(flat)
    else:
        comm.allreduce(flat)
        unflatten_into(flat, [p.grad for p in params])
        optimizer.step()
    return float(comm.allreduce(np.array([local], dtype=np.float64))[0])
    # END SOLUTION
