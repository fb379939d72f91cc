"""Run independent chunks of array work on all cores.

NumPy releases the GIL inside copies and matrix products, so Python threads can work on
different chunks of a batch at the same time. For the small matrix products of a
convolution (a few hundred columns per sample) this is much faster than letting the BLAS
library split each product across its own threads: while the chunks run, BLAS is limited
to one thread each (``threadpoolctl``), and the library's usual setting is restored after.

``DLFS_NUM_THREADS`` sets the number of workers (default: the number of CPUs; 1 turns the
thread pool off).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

T = TypeVar("T")

_pool: ThreadPoolExecutor | None = None
_controller = None
_lock = threading.Lock()
_inside = threading.local()
_CPUS = os.cpu_count() or 1          # looked up once: num_workers() runs on every conv and batch norm


def num_workers() -> int:
    """Worker threads used by :func:`map_chunks`: ``$DLFS_NUM_THREADS`` or the CPU count."""
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
            _pool = ThreadPoolExecutor(max_workers=num_workers(), thread_name_prefix="dlfs")
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

