"""Run independent chunks of array work on all cores, and size the chunks.

NumPy releases the GIL inside copies and matrix products, so Python threads can work on
different chunks of a batch at the same time. For the small matrix products of a
convolution (a few hundred columns per sample) this is much faster than letting the BLAS
library split each product across its own threads: while the chunks run, BLAS is limited
to one thread each (``threadpoolctl``), and the library's usual setting is restored after.

``DLFS_NUM_THREADS`` sets the number of workers (default: the number of CPUs; 1 turns the
thread pool off).

This is the speed scaffolding of the layers, given in the exercises around the per-chunk
functions the learner writes: the convolutions split the batch into chunks whose working
arrays fit in the CPU cache (:func:`items_per_chunk`, about ``CHUNK_BYTES`` each), and the
batch norms split their channels into one block per worker (:func:`map_blocks`).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, TypeVar

T = TypeVar("T")

_pool: ThreadPoolExecutor | None = None
_controller = None
_lock = threading.Lock()
_inside = threading.local()
_CPUS = os.cpu_count() or 1          # looked up once: num_workers() runs on every conv and batch norm

CHUNK_BYTES = 4 * 2 ** 20            # aim for working arrays of about 4 MiB per chunk


_limit: int | None = None            # set by limit_workers()


@contextmanager
def limit_workers(n: int):
    """Within the block, :func:`map_chunks` uses at most ``n`` workers (1: everything runs on
    the calling thread). For runs that promise a number of threads, such as the one-thread GPT
    training of Milestone 30 and its benchmark."""
    global _limit
    old, _limit = _limit, max(1, int(n))
    try:
        yield
    finally:
        _limit = old


def num_workers() -> int:
    """Worker threads used by :func:`map_chunks`: ``$DLFS_NUM_THREADS`` or the CPU count, at most
    the limit of an enclosing :func:`limit_workers`."""
    n = _configured_workers()
    return n if _limit is None else min(n, _limit)


def _configured_workers() -> int:
    value = os.environ.get("DLFS_NUM_THREADS", "")
    try:
        n = int(value) if value.strip() else _CPUS
    except ValueError:
        raise ValueError(f"DLFS_NUM_THREADS must be a positive integer, got {value!r}") from None
    return max(1, n)


def _resources():
    global _pool, _controller
    with _lock:
        if _pool is None:
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
            _pool = ThreadPoolExecutor(max_workers=_configured_workers(), thread_name_prefix="dlfs")
    return _pool, _controller


def map_chunks(fn: Callable[[int, int], T], n: int, step: int) -> list[T]:
    """``[fn(lo, hi) for each chunk [lo, hi) of range(n) of size step]``, in parallel threads.

    ``fn`` must only write to its own chunk of any shared output. Results come back in chunk
    order. Runs sequentially when there is one chunk or one worker, and inside a worker (no
    nested pools).
    """
    bounds = [(lo, min(lo + step, n)) for lo in range(0, n, step)]
    if len(bounds) <= 1 or num_workers() == 1 or getattr(_inside, "active", False):
        return [fn(lo, hi) for lo, hi in bounds]
    pool, controller = _resources()

    def run(b):
        _inside.active = True
        try:
            return fn(*b)
        finally:
            _inside.active = False

    with controller.limit(limits=1, user_api="blas"):
        return list(pool.map(run, bounds))


def map_blocks(fn: Callable[[int, int], T], n: int) -> list[T]:
    """:func:`map_chunks` over ``range(n)`` split into one block per worker (the last may be
    shorter): for work whose items (e.g. the channels of a batch norm) are few and large."""
    return map_chunks(fn, n, max(1, -(-n // num_workers())))


def items_per_chunk(n: int, bytes_per_item: int) -> int:
    """How many of ``n`` items (the samples of a batch) to process at once so that a chunk's
    working array, ``bytes_per_item`` per item, is about ``CHUNK_BYTES``: small enough to stay
    in the CPU cache between the copy that fills it and the product that reads it.
    Returns an int in [1, max(n, 1)]."""
    return int(max(1, min(max(n, 1), CHUNK_BYTES // max(1, bytes_per_item))))
