"""Real OS processes that talk to their ring neighbours through shared memory.

This is the transport under Topic 34's ring all-reduce, given code (no exercise here):

* :class:`ShmCommunicator` — what a rank sees: ``rank``, ``world_size``, ``bytes_sent`` and
  ``sendrecv(send, recv)``, which sends ``send`` to rank ``(rank + 1) % N`` and receives what
  rank ``(rank - 1) % N`` sends into ``recv``. ``allreduce(buf)`` sums ``buf`` over the ranks
  in place with the ring all-reduce of :mod:`dlfs.distributed.ring`.
* :class:`ProcessGroup` — starts N worker processes once and runs a function on every rank:
  ``group.run(fn, args)`` calls ``fn(comm, *args)`` in each worker and returns the N results
  with the bytes each rank sent. Start-up costs a fork per worker; tests keep one group per
  module.

The link from rank r to rank r+1 is one mailbox of ``capacity`` bytes in a shared array
and two semaphores (``empty`` and ``full``). A message longer than the mailbox goes in pieces;
each rank alternates "send my piece i" and "receive piece i", which cannot deadlock: sending
piece i only waits for the right neighbour to have read piece i-1. A rank that waits longer
than ``timeout`` seconds raises :class:`TimeoutError` (a neighbour crashed or a bug left the
ranks out of step) instead of hanging forever.

Workers are forked where the platform allows it, so they run exactly the modules the parent
has loaded (a learner's exercise file included); elsewhere they are spawned.
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
from typing import Any, Callable, Sequence

import numpy as np

DEFAULT_CAPACITY = 1 << 20         # bytes per mailbox
DEFAULT_TIMEOUT = 60.0             # seconds a rank waits for a neighbour


class ShmCommunicator:
    """One rank's end of the ring: send to the right neighbour, receive from the left one."""

    def __init__(self, rank: int, world_size: int, boxes, capacity: int,
                 empty: Sequence, full: Sequence, timeout: float = DEFAULT_TIMEOUT):
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.capacity = int(capacity)
        self.timeout = float(timeout)
        self._box = np.frombuffer(boxes, dtype=np.uint8).reshape(world_size, capacity)
        self._empty, self._full = empty, full
        self.bytes_sent = 0

    def _wait(self, sem, what: str) -> None:
        if not sem.acquire(timeout=self.timeout):
            raise TimeoutError(f"rank {self.rank} of {self.world_size} waited {self.timeout:.0f} s to {what}; "
                               "a neighbour stopped or the ranks are out of step (every rank must make the "
                               "same sequence of sendrecv calls with matching sizes)")

    def sendrecv(self, send: np.ndarray, recv: np.ndarray) -> None:
        """Send ``send`` to rank+1 and receive rank-1's message into ``recv`` (written in place).

        send, recv: C-contiguous arrays; ``recv.nbytes`` must equal what the left neighbour sends.
        """
        if not (send.flags.c_contiguous and recv.flags.c_contiguous):
            raise ValueError("sendrecv needs C-contiguous arrays (slices of a 1-D buffer are)")
        out = send.reshape(-1).view(np.uint8)
        into = recv.reshape(-1).view(np.uint8)
        right, left = self.rank, (self.rank - 1) % self.world_size
        cap = self.capacity
        n_send, n_recv = -(-out.size // cap), -(-into.size // cap)
        for i in range(max(n_send, n_recv)):
            if i < n_send:
                piece = out[i * cap:(i + 1) * cap]
                self._wait(self._empty[right], f"send to rank {(self.rank + 1) % self.world_size}")
                self._box[right, :piece.size] = piece
                self._full[right].release()
            if i < n_recv:
                piece = into[i * cap:(i + 1) * cap]
                self._wait(self._full[left], f"receive from rank {left}")
                piece[...] = self._box[left, :piece.size]
                self._empty[left].release()
        self.bytes_sent += out.size

    def allreduce(self, buf: np.ndarray) -> np.ndarray:
        """Sum ``buf`` (1-D) over all ranks in place with the ring all-reduce; returns buf."""
        from dlfs.distributed.ring import ring_allreduce
        return ring_allreduce(buf, self)

    def close(self) -> None:
        self._box = None


class LocalCommunicator:
    """A world of one rank, in this process: every collective leaves the buffer as it is."""

    rank, world_size, bytes_sent = 0, 1, 0

    def sendrecv(self, send: np.ndarray, recv: np.ndarray) -> None:
        recv[...] = send

    def allreduce(self, buf: np.ndarray) -> np.ndarray:
        return buf


def share_cores(world_size: int) -> None:
    """In a rank's process: give it its share of the CPU cores, so that N ranks on one machine
    do not each start a BLAS thread per core (BLAS threads: cores // N; the library's own
    chunk threads, ``DLFS_NUM_THREADS``: 1)."""
    import os

    from threadpoolctl import threadpool_limits
    os.environ["DLFS_NUM_THREADS"] = "1"
    threadpool_limits(max(1, (os.cpu_count() or 1) // world_size), user_api="blas")


def _worker(rank, world_size, boxes, capacity, empty, full, timeout, conn) -> None:
    share_cores(world_size)
    comm = ShmCommunicator(rank, world_size, boxes, capacity, empty, full, timeout)
    try:
        while True:
            task = conn.recv()
            if task is None:
                break
            fn, args = task
            comm.bytes_sent = 0
            try:
                result = fn(comm, *args)
                conn.send(("ok", result, comm.bytes_sent))
            except BaseException as exc:          # noqa: BLE001 - reported to the parent
                text = traceback.format_exc()
                try:
                    conn.send(("error", exc, text))
                except Exception:                  # an exception that does not pickle
                    conn.send(("error", RuntimeError(str(exc)), text))
    finally:
        comm.close()


class RemoteError(Exception):
    """The traceback of an exception raised in a worker (the cause of the re-raised one)."""


class ProcessGroup:
    """N worker processes joined in a ring. Use as a context manager, or call ``close()``.

    ``run(fn, args)``: ``fn(comm, *args[r])`` on every rank r (``args`` is one tuple per rank,
    or one tuple for all); returns ``(results, bytes_sent)``, two lists indexed by rank.
    ``fn`` and its arguments are pickled to the workers: ``fn`` must be a module-level function.
    An exception on any rank is re-raised here (the first rank's), and the workers are
    restarted so that the next ``run`` starts from clean mailboxes.
    """

    def __init__(self, world_size: int, capacity: int = DEFAULT_CAPACITY, timeout: float = DEFAULT_TIMEOUT):
        if world_size < 1:
            raise ValueError(f"world_size must be >= 1, got {world_size}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1 byte, got {capacity}")
        self.world_size, self.capacity, self.timeout = int(world_size), int(capacity), float(timeout)
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        self._ctx = mp.get_context(method)
        self._procs: list = []
        self._conns: list = []
        self._start()

    def _start(self) -> None:
        n, ctx = self.world_size, self._ctx
        boxes = ctx.RawArray("B", n * self.capacity)       # one mailbox per link, shared by the workers
        empty = [ctx.Semaphore(1) for _ in range(n)]
        full = [ctx.Semaphore(0) for _ in range(n)]
        for rank in range(n):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_worker, daemon=True, name=f"dlfs-rank-{rank}",
                            args=(rank, n, boxes, self.capacity, empty, full, self.timeout, child))
            p.start()
            child.close()
            self._procs.append(p)
            self._conns.append(parent)

    def _stop(self) -> None:
        for conn in self._conns:
            try:
                conn.send(None)
            except OSError:
                pass
        for p in self._procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join()
        for conn in self._conns:
            conn.close()
        self._procs, self._conns = [], []

    def run(self, fn: Callable, args: Sequence[tuple] | tuple = ()) -> tuple[list[Any], list[int]]:
        per_rank = list(args) if args and isinstance(args[0], tuple) else [tuple(args)] * self.world_size
        if len(per_rank) != self.world_size:
            raise ValueError(f"{len(per_rank)} argument tuples for {self.world_size} ranks")
        for conn, a in zip(self._conns, per_rank):
            conn.send((fn, a))
        replies = []
        for rank, conn in enumerate(self._conns):
            try:
                replies.append(conn.recv())
            except EOFError:
                replies.append(("error", RuntimeError(f"rank {rank} exited"), ""))
        errors = [(r, rep) for r, rep in enumerate(replies) if rep[0] == "error"]
        if errors:
            self._stop()
            self._start()
            rank, (_, exc, text) = errors[0]
            raise exc from RemoteError(f"rank {rank} of {self.world_size}:\n{text}")
        return [rep[1] for rep in replies], [rep[2] for rep in replies]

    def close(self) -> None:
        self._stop()

    def __enter__(self) -> "ProcessGroup":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_collective(comm, name: str, buf: np.ndarray) -> np.ndarray:
    """A rank program for :meth:`ProcessGroup.run`: apply the ring collective ``name``
    (``"ring_allreduce"``, ``"reduce_scatter"`` or ``"all_gather"`` of
    :mod:`dlfs.distributed.ring`) to ``buf`` and return the buffer."""
    from dlfs.distributed import ring
    if name not in ("ring_allreduce", "reduce_scatter", "all_gather"):
        raise ValueError(f"unknown collective {name!r}")
    getattr(ring, name)(buf, comm)
    return buf
