"""All-reduce throughput: our ring between 2 processes over shared memory, over buffer sizes
(float32). No PyTorch counterpart: the MPI comparison is in ``python -m dlfs.distributed.scaling``
(results/topic-34/allreduce.json)."""

from __future__ import annotations

from benchmarks.harness import BenchResult
from dlfs.distributed.scaling import measure_allreduce_processes

SIZES = [2 ** 12, 2 ** 16, 2 ** 20, 2 ** 24]


def bench_ring_allreduce() -> list[BenchResult]:
    out = []
    for r in measure_allreduce_processes(2, SIZES):
        out.append(BenchResult(f"ring all-reduce N=2 {r['bytes']} B (bus {r['busbw_GBps']:.2f} GB/s)",
                               r["median_seconds"] * 1e3, None, None))
    return out


def _make(i):
    cache: dict = {}

    def bench() -> BenchResult:
        if "results" not in cache:
            cache["results"] = bench_ring_allreduce()
        return cache["results"][i]
    return bench


BENCHMARKS = [_make(i) for i in range(len(SIZES))]
