"""Topic 34 — ZeRO stage 1: shard the optimiser state across the data-parallel ranks.

Plain data parallelism keeps a full copy of AdamW's two moment buffers (``exp_avg`` and
``exp_avg_sq``, 2 × the parameter count) on every rank. AdamW is elementwise, so the update of
element i needs only element i of the gradient, the moments and the parameters. ZeRO stage 1
(Rajbhandari et al., 2020) gives rank r the moments of chunk r of the flat parameter vector
only (``chunk_bounds(P, N)[r]``), and replaces the all-reduce of the gradients by its two
halves with the update in between:

    reduce-scatter(grads)          rank r now holds the summed gradient of chunk r
    AdamW on chunk r               with the moments of chunk r only
    all-gather(params)             every rank gets every updated chunk

The traffic is that of one all-reduce (a reduce-scatter and an all-gather), the optimiser
state per rank shrinks from 2P to about 2P/N numbers, and the parameters are bit-identical to
plain data parallelism with the same gradients: same sums (the reduce-scatter is the first
half of the ring all-reduce), same elementwise AdamW.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from dlfs.distributed.ring import all_gather, chunk_bounds, reduce_scatter
from dlfs.nn.layers import Parameter
from dlfs.optim.optimizers import AdamW


class ZeroAdamW:
    """AdamW (``dlfs.optim.AdamW``) whose moments cover this rank's chunk of the parameters.

    params: the model's parameters (same order on every rank); comm: the rank's communicator
    (``rank``, ``world_size``, ``sendrecv``). ``self.shard`` is a :class:`Parameter` holding a
    copy of chunk ``comm.rank`` of the flat parameter vector; ``self.inner`` the AdamW that
    updates it. Use through :func:`dlfs.distributed.data_parallel.data_parallel_step`.
    """

    sharded = True

    def __init__(self, params: Sequence[Parameter], comm, lr: float = 1e-3, betas=(0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2):
        self.params = list(params)
        self.comm = comm
        self.dtype = np.result_type(*[p.dtype for p in self.params])
        self.size = sum(p.size for p in self.params)
        self.lo, self.hi = chunk_bounds(self.size, comm.world_size)[comm.rank]
        # BEGIN SOLUTION self.shard = Parameter(copy of chunk rank of the flat parameters); self.inner = AdamW([self.shard], ...)
        flat = np.concatenate([p.data.reshape(-1) for p in self.params]).astype(self.dtype, copy=False)
        self.shard = Parameter(flat[self.lo:self.hi].copy(), name=f"zero.shard{comm.rank}")
        self.shard.grad = None
        self.inner = AdamW([self.shard], lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        # END SOLUTION

    @property
    def lr(self) -> float:
        return self.inner.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self.inner.lr = float(value)

    def step_sharded(self, flat_grads: np.ndarray) -> None:
        """flat_grads: (P,), this rank's local gradients (flattened, overwritten).
        Reduce-scatter them, update chunk ``rank`` with AdamW, all-gather the parameters into
        every ``p.data`` (in place)."""
        if flat_grads.shape != (self.size,):
            raise ValueError(f"expected flat gradients of shape ({self.size},), got {flat_grads.shape}")
        # TODO: the summed gradient of this rank's chunk is flat_grads[lo:hi] after the
        # reduce-scatter; the all-gather needs a flat parameter buffer with the new chunk in place.
        # BEGIN SOLUTION reduce-scatter, AdamW step on the shard, all-gather the flat parameters, write them back
        reduce_scatter(flat_grads, self.comm)
        self.shard.grad = flat_grads[self.lo:self.hi]
        self.inner.step()
        self.shard.grad = None
        flat = np.empty(self.size, dtype=self.dtype)
        flat[self.lo:self.hi] = self.shard.data
        all_gather(flat, self.comm)
        offset = 0
        for p in self.params:
            p.data[...] = flat[offset:offset + p.size].reshape(p.shape)
            offset += p.size
        # END SOLUTION

    def zero_grad(self) -> None:
        for p in self.params:
            p.zero_grad()

    def state_bytes(self) -> int:
        """Bytes of optimiser state held by this rank (the moment buffers of its chunk)."""
        return optimizer_state_bytes(self.inner)


def optimizer_state_bytes(optimizer) -> int:
    """Bytes of the arrays in ``optimizer.state`` (a ``dlfs.optim`` optimiser after a step)."""
    return int(sum(v.nbytes for st in optimizer.state for v in st.values() if isinstance(v, np.ndarray)))
