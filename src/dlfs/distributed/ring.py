"""Topic 34 — the ring all-reduce: reduce-scatter, then all-gather.

N ranks each hold a buffer ``buf: (S,)`` of the same size; afterwards every rank holds the sum
of the N buffers. The ranks form a ring: rank r only ever sends to rank ``(r + 1) % N`` and
receives from rank ``(r - 1) % N``, through ``comm.sendrecv(send, recv)`` (a
:class:`dlfs.distributed.comm.ShmCommunicator`, or MPI's Sendrecv in
:class:`dlfs.distributed.mpi.MPICommunicator`).

The buffer is cut into N chunks (:func:`chunk_bounds`; sizes differ by at most one element
when N does not divide S). Chunk c is the c-th of those slices.

* **reduce-scatter**, N-1 steps: at step s = 0 .. N-2 rank r sends its partial sum of chunk
  ``(r - s - 1) % N`` and receives the left neighbour's partial sum of chunk ``(r - s - 2) % N``,
  which it adds into its own. After the last step rank r holds the full sum of chunk r.
* **all-gather**, N-1 steps: at step s rank r sends chunk ``(r - s) % N`` (complete) and
  receives chunk ``(r - s - 1) % N``, which it copies into place.

Each step moves one chunk per rank, so each rank sends 2(N-1) chunks: ``2(N-1)/N · S``
elements, independent of N for large N, where sending every buffer to one rank and back costs
that rank ``2(N-1) · S``. Exactly, rank r sends every chunk but its own in the reduce-scatter
and every chunk but chunk r+1 in the all-gather: ``2·S - c_r - c_{r+1}`` elements.

Summation order: chunk c is summed starting at rank c+1 and going round the ring,
``x_c + (x_{c-1} + ... + (x_{c+2} + x_{c+1}))``, so float results equal ``np.sum`` up to
rounding, and equal the sum in this order bit for bit.
"""

from __future__ import annotations

import numpy as np


def chunk_bounds(size: int, world_size: int) -> list[tuple[int, int]]:
    """Cut ``range(size)`` into ``world_size`` contiguous chunks, as ``np.array_split`` does:
    the first ``size % world_size`` chunks have one element more. Returns ``[(lo, hi), ...]``
    (``world_size`` pairs; a chunk may be empty when size < world_size)."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    # BEGIN SOLUTION split range(size) into world_size (lo, hi) pairs, the first size % world_size one longer
    base, extra = divmod(size, world_size)
    bounds, lo = [], 0
    for c in range(world_size):
        hi = lo + base + (1 if c < extra else 0)
        bounds.append((lo, hi))
        lo = hi
    return bounds
    # END SOLUTION


def _check(buf: np.ndarray) -> None:
    if not isinstance(buf, np.ndarray) or buf.ndim != 1 or not buf.flags.c_contiguous:
        raise ValueError("the all-reduce works on a 1-D C-contiguous array (flatten the gradients into one), "
                         f"got {type(buf).__name__} with shape {getattr(buf, 'shape', None)}")


def reduce_scatter(buf: np.ndarray, comm) -> tuple[int, int]:
    """Reduce-scatter in place. buf: (S,), the same size on every rank.

    Afterwards ``buf[lo:hi]`` (the returned bounds of chunk ``comm.rank``) holds the sum of
    that chunk over all ranks; the rest of ``buf`` holds partial sums. N = 1: nothing to do.
    """
    _check(buf)
    N, r = comm.world_size, comm.rank
    bounds = chunk_bounds(buf.size, N)
    # TODO: one scratch array of the largest chunk size for receiving; at step s send chunk
    # (r - s - 1) % N, receive chunk (r - s - 2) % N into the scratch, add it into buf.
    # BEGIN SOLUTION N-1 sendrecv steps, each adding the received partial sum into buf
    scratch = np.empty(bounds[0][1] - bounds[0][0], dtype=buf.dtype)
    for s in range(N - 1):
        slo, shi = bounds[(r - s - 1) % N]
        rlo, rhi = bounds[(r - s - 2) % N]
        got = scratch[:rhi - rlo]
        comm.sendrecv(buf[slo:shi], got)
        buf[rlo:rhi] += got
    # END SOLUTION
    return bounds[r]


def all_gather(buf: np.ndarray, comm) -> np.ndarray:
    """All-gather in place. buf: (S,); on entry rank r's chunk r is final (what
    :func:`reduce_scatter` leaves, or a parameter shard a rank updated); afterwards every rank
    holds every chunk. Returns buf."""
    _check(buf)
    N, r = comm.world_size, comm.rank
    bounds = chunk_bounds(buf.size, N)
    # BEGIN SOLUTION N-1 sendrecv steps: send chunk (r - s) % N, receive chunk (r - s - 1) % N straight into buf
    for s in range(N - 1):
        slo, shi = bounds[(r - s) % N]
        rlo, rhi = bounds[(r - s - 1) % N]
        comm.sendrecv(buf[slo:shi], buf[rlo:rhi])
    return buf
    # END SOLUTION


def ring_allreduce(buf: np.ndarray, comm) -> np.ndarray:
    """Sum ``buf: (S,)`` over all ranks, in place: every rank ends with the same sum.
    Returns buf."""
    # BEGIN SOLUTION reduce-scatter, then all-gather
    reduce_scatter(buf, comm)
    return all_gather(buf, comm)
    # END SOLUTION


def ring_bytes_per_rank(size: int, world_size: int, itemsize: int) -> list[int]:
    """What each rank sends in :func:`ring_allreduce` of ``size`` items of ``itemsize`` bytes:
    ``(2·S - c_r - c_{r+1}) · itemsize`` for rank r (0 for one rank). Their mean is
    ``2(N-1)/N · S · itemsize`` exactly."""
    if world_size == 1:
        return [0]
    sizes = [hi - lo for lo, hi in chunk_bounds(size, world_size)]
    return [(2 * size - sizes[r] - sizes[(r + 1) % world_size]) * itemsize for r in range(world_size)]
