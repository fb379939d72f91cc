"""Topic 34's measurements: all-reduce throughput over buffer sizes, and training throughput
with 1 and 2 processes (our ring over shared memory, and MPI's Allreduce under mpiexec).

    python -m dlfs.distributed.scaling                 # writes <workspace>/results/topic-34/{allreduce,scaling}.json and .png
    python -m dlfs.distributed.scaling --part allreduce
    python -m dlfs.distributed.scaling --part training --model gpt --record   # the project's results/topic-34/scaling-gpt.json

Like every experiment (``dlfs.experiments.common``), a run writes the workspace's results unless
``--record`` (the project's ``results/topic-34/``) or ``--out DIR``.

All-reduce: each rank times ``repeats`` all-reduces of a float32 buffer of S bytes after a
warm-up; a repeat's time is the slowest rank's. Reported: the median time, the *algorithm*
bandwidth S / t and the *bus* bandwidth 2(N-1)/N · S / t (what each rank actually sends per
second, comparable across N). Training: ``dlfs.distributed.train`` in float32 with AdamW, the
encoder model (``--model encoder``, batches of 32 sequences of 32) or the GPT of Milestone 30's
full preset on synthetic token batches (``--model gpt``: 4 layers, width 128, 4 heads, context
128, vocabulary 65, batches of 16 × 128 tokens, as the milestone trains); samples/s and tokens/s
from the median step time (the first step left out), scaling efficiency
``throughput(N) / (N · throughput(1))``; the same from the busiest rank's CPU time per step
(``tokens_per_cpu_second``, ``cpu_scaling_efficiency``): what the ranks would reach with a core
each, which the wall time on a machine shared with other work does not show. Every rank, the
single process included, runs with one BLAS thread and one chunk thread (one core per rank), so
that the comparison is of ranks, not of thread pools competing for the two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = [2 ** k for k in range(10, 27, 2)]          # 1 KiB .. 64 MiB


def time_allreduce(comm, nbytes: int, repeats: int) -> list[float]:
    """Rank program: the seconds of each of ``repeats`` all-reduces of ``nbytes`` of float32."""
    buf = np.ones(nbytes // 4, dtype=np.float32)
    comm.allreduce(buf)                               # warm-up: page faults, first messages
    times = []
    for _ in range(repeats):
        buf[...] = 1.0
        t0 = time.perf_counter()
        comm.allreduce(buf)
        times.append(time.perf_counter() - t0)
    if buf[0] != comm.world_size:
        raise RuntimeError(f"all-reduce gave {buf[0]}, expected {comm.world_size}")
    return times


def allreduce_record(times_per_rank: list[list[float]], nbytes: int, n: int, backend: str) -> dict:
    t = float(np.median(np.max(np.array(times_per_rank), axis=0)))
    return {"backend": backend, "world_size": n, "bytes": nbytes, "median_seconds": t,
            "algbw_GBps": nbytes / t / 1e9, "busbw_GBps": 2 * (n - 1) / n * nbytes / t / 1e9}


def repeats_for(nbytes: int) -> int:
    return int(min(50, max(5, 2 ** 24 // max(nbytes, 1))))


def measure_allreduce_processes(n: int = 2, sizes=SIZES) -> list[dict]:
    from dlfs.distributed.comm import ProcessGroup
    out = []
    with ProcessGroup(n, capacity=4 << 20) as group:
        for s in sizes:
            times, _ = group.run(time_allreduce, (s, repeats_for(s)))
            out.append(allreduce_record(times, s, n, "ring (shared memory)"))
    return out


def _mpi_allreduce_main(argv) -> int:
    """Under mpiexec: time MPI's Allreduce (or our ring over MPI) and print JSON lines on rank 0."""
    from dlfs.distributed.mpi import MPICommunicator
    mode = argv[0]
    sizes = [int(s) for s in argv[1:]] or SIZES
    from dlfs.distributed.comm import share_cores
    comm = MPICommunicator(mode)
    share_cores(comm.world_size)
    for s in sizes:
        times = comm.comm.gather(time_allreduce(comm, s, repeats_for(s)), root=0)
        if comm.rank == 0:
            name = "MPI Allreduce (mpich)" if mode == "mpi" else "ring over MPI Sendrecv"
            print(json.dumps(allreduce_record(times, s, comm.world_size, name)), flush=True)
    return 0


def measure_allreduce_mpi(n: int = 2, mode: str = "mpi", sizes=SIZES) -> list[dict]:
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        return []
    cmd = [mpiexec, "-n", str(n), sys.executable, "-m", "dlfs.distributed.scaling", "--mpi-allreduce", mode,
           *map(str, sizes)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


MODELS = {   # dlfs.distributed.train's options of each measured model
    "encoder": ["--model", "encoder", "--batch", "32", "--hidden", "64", "--seq-len", "32", "--features", "16"],
    "gpt": ["--model", "gpt", "--batch", "16", "--hidden", "128", "--heads", "4", "--layers", "4",
            "--seq-len", "128", "--vocab", "65"],          # Milestone 30's full preset, synthetic tokens
}


def measure_training(steps: int = 12, batch: int = 32, model: str = "encoder") -> list[dict]:
    """float32, AdamW: one process; 2 processes (our ring); 1 and 2 MPI ranks (when mpiexec
    exists). ``batch`` applies to the encoder; the GPT trains on the milestone's 16 × 128."""
    from dlfs.distributed.train import main as train_main
    opts = [*MODELS[model]]
    if model == "encoder":
        opts[opts.index("--batch") + 1] = str(batch)
    base = [*opts, "--dtype", "float32", "--steps", str(steps), "--lr", "0.001"]
    records = []

    from threadpoolctl import threadpool_limits
    os.environ["DLFS_NUM_THREADS"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("single", ["--backend", "single"]), ("processes", ["--backend", "processes", "-n", "2"])]
        for name, extra in runs:
            path = Path(tmp) / f"{name}.json"
            with threadpool_limits(1, user_api="blas"):     # one core per rank, the single process included
                train_main([*extra, *base, "--json", str(path)])
            records.append(json.loads(path.read_text()))
        mpiexec = shutil.which("mpiexec")
        if mpiexec is not None:
            for n in (1, 2):
                path = Path(tmp) / f"mpi{n}.json"
                subprocess.run([mpiexec, "-n", str(n), sys.executable, "-m", "dlfs.distributed.train",
                                "--backend", "mpi", "--allreduce", "mpi", *base, "--json", str(path)],
                               check=True, capture_output=True)
                records.append(json.loads(path.read_text()))
    for key, eff in (("samples_per_second", "scaling_efficiency"), ("tokens_per_cpu_second", "cpu_scaling_efficiency")):
        one = {r["backend"]: r[key] for r in records if r["world_size"] == 1}
        for r in records:
            ref = one.get("single") if r["backend"] != "mpi-mpi" else one.get("mpi-mpi", one.get("single"))
            r[eff] = r[key] / (r["world_size"] * ref) if ref else None
    return records


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--mpi-allreduce":
        return _mpi_allreduce_main(argv[1:])
    from dlfs.experiments.common import output_dir, parser

    p = parser("dlfs.distributed.scaling", "Topic 34: all-reduce and data-parallel training throughput "
               "with 1 and 2 processes.", "topic-34")
    p.add_argument("--part", choices=["allreduce", "training", "all"], default="all")
    p.add_argument("--model", choices=sorted(MODELS), default="encoder", help="the training part's model")
    args = p.parse_args(argv)
    from dlfs.io import atomic_write_json
    out = output_dir(args)
    machine = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "numpy": np.__version__,
               "note": "a shared 2-core machine: other work ran at the same time"}
    if args.part in ("allreduce", "all"):
        recs = measure_allreduce_processes(2) + measure_allreduce_mpi(2, "mpi") + measure_allreduce_mpi(2, "ring")
        for r in recs:
            print(f"{r['backend']:<24} N={r['world_size']} {r['bytes']:>10} B  {r['median_seconds'] * 1e3:9.3f} ms  "
                  f"alg {r['algbw_GBps']:6.3f} GB/s  bus {r['busbw_GBps']:6.3f} GB/s", flush=True)
        atomic_write_json(out / "allreduce.json", {"machine": machine, "records": recs})
        _plot(recs, out / "allreduce.png")
    if args.part in ("training", "all"):
        from dlfs.course.milestones import git_commit
        load_start, wall0 = [round(x, 2) for x in os.getloadavg()], time.perf_counter()
        recs = measure_training(model=args.model)
        for r in recs:
            print(f"{r['backend']:<10} N={r['world_size']} {r['samples_per_second']:8.1f} samples/s "
                  f"{r['tokens_per_second']:9.0f} tokens/s (efficiency {r['scaling_efficiency']:.2f}); "
                  f"per CPU second of the busiest rank {r['tokens_per_cpu_second']:9.0f} tokens/s "
                  f"(efficiency {r['cpu_scaling_efficiency']:.2f})", flush=True)
        name = "scaling.json" if args.model == "encoder" else f"scaling-{args.model}.json"
        atomic_write_json(out / name, {
            "machine": machine, "command": "python -m dlfs.distributed.scaling " + " ".join(argv),
            "commit": git_commit(), "wall_time_s": round(time.perf_counter() - wall0, 1),
            "load_average": {"start": load_start, "end": [round(x, 2) for x in os.getloadavg()]},
            "records": recs})
    return 0


def _plot(recs: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for backend in dict.fromkeys(r["backend"] for r in recs):
        rs = [r for r in recs if r["backend"] == backend]
        ax.plot([r["bytes"] for r in rs], [r["busbw_GBps"] for r in rs], marker="o", label=f"{backend}, N={rs[0]['world_size']}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("buffer size (bytes, float32)")
    ax.set_ylabel("bus bandwidth 2(N-1)/N·S/t (GB/s)")
    ax.set_title("All-reduce throughput, 2 ranks, shared 2-core machine")
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    from dlfs.io import atomic_write_bytes
    atomic_write_bytes(path, buf.getvalue())


if __name__ == "__main__":
    raise SystemExit(main())
