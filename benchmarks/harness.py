"""Benchmark harness: ours (NumPy) vs PyTorch CPU on the same workload, in the same run.

Each benchmark gives two zero-argument callables doing identical work. They are run
alternately (ours, torch, ours, torch, ...) after a warm-up, so that machine noise hits
both alike, and the ratio of medians ``ours / torch`` is reported (lower is better;
1.0 means as fast as PyTorch). A machine's peak rate (the matmul ceiling) is the best of the
repeats instead (``stat="best"``): on a shared machine the median measures the other load. Results are appended to ``benchmarks/results.json``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

RESULTS = Path(__file__).with_name("results.json")


@dataclass
class BenchResult:
    name: str
    ours_ms: float
    torch_ms: float | None
    ratio: float | None            # ours / torch
    flops: float | None = None     # per call, for GFLOP/s
    goal: str = ""

    @property
    def ours_gflops(self) -> float | None:
        return self.flops / self.ours_ms / 1e6 if self.flops else None

    @property
    def torch_gflops(self) -> float | None:
        return self.flops / self.torch_ms / 1e6 if self.flops and self.torch_ms else None

    def line(self) -> str:
        s = f"{self.name:<44} ours {self.ours_ms:9.2f} ms"
        if self.torch_ms is not None:
            s += f" | torch {self.torch_ms:9.2f} ms | ratio {self.ratio:5.2f}x"
        if self.flops:
            s += f" | {self.ours_gflops:6.1f} GFLOP/s"
            if self.torch_gflops:
                s += f" (torch {self.torch_gflops:6.1f})"
        return s + (f"   goal: {self.goal}" if self.goal else "")


def try_torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    return torch


def our_step(model, loss_fn, opt, x: np.ndarray, y: np.ndarray) -> Callable[[], None]:
    """One training step of a dlfs model on a fixed batch, as a closure to time."""
    def step():
        opt.zero_grad()
        loss_fn.forward(model.forward(x), y)
        model.backward(loss_fn.backward())
        opt.step()
    return step


def torch_step(torch, model, opt, x: np.ndarray, y: np.ndarray, **loss_kwargs) -> Callable[[], None]:
    """The same training step in PyTorch (cross-entropy with ``loss_kwargs``)."""
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(tx), ty, **loss_kwargs).backward()
        opt.step()
    return step


def _time(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


STATS = {"median": statistics.median, "best": min}


def compare(name: str, ours: Callable[[], object], theirs: Callable[[], object] | None, *,
            repeats: int = 15, warmup: int = 3, flops: float | None = None, goal: str = "",
            stat: str = "median") -> BenchResult:
    """Time ``ours`` and ``theirs`` alternately, ``warmup`` untimed calls then ``repeats`` timed
    ones each; report each side's ``stat`` of its times in ms: "median" (the usual figure) or
    "best" (the fastest call, for a peak rate)."""
    if stat not in STATS:
        raise ValueError(f"stat must be one of {sorted(STATS)}, got {stat!r}")
    reduce = STATS[stat]
    for _ in range(warmup):
        ours()
        if theirs is not None:
            theirs()
    ours_t, theirs_t = [], []
    for _ in range(repeats):
        ours_t.append(_time(ours))
        if theirs is not None:
            theirs_t.append(_time(theirs))
    o = reduce(ours_t)
    t = reduce(theirs_t) if theirs_t else None
    return BenchResult(name, o, t, (o / t) if t else None, flops, goal)


def machine() -> dict:
    torch = try_torch()
    return {
        "python": platform.python_version(), "numpy": np.__version__,
        "torch": getattr(torch, "__version__", None), "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }


def save(results: list[BenchResult], commit: str = "") -> None:
    runs = json.loads(RESULTS.read_text())["runs"] if RESULTS.exists() else []
    runs.append({
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "commit": commit, "machine": machine(),
        "results": [asdict(r) | {"ours_gflops": r.ours_gflops, "torch_gflops": r.torch_gflops} for r in results],
    })
    tmp = RESULTS.with_suffix(".tmp")
    tmp.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    tmp.replace(RESULTS)
