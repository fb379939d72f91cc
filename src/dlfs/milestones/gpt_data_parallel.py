"""Milestone 34's data-parallel runs of a GPT: one process on the whole batch (the reference),
our shared-memory ring over N worker processes, and N MPI ranks under ``mpiexec``.

Every run trains the same *job* — a GPT's weights in float64, AdamW's settings, the global
batches of token windows (steps, B, T + 1) — so their final parameters can be compared. The
ranks run Topic 34's ``data_parallel_step`` (each rank back-propagates its shard's summed loss
over B·T, one all-reduce of the flat gradients, the same AdamW step everywhere); the reference
is the plain training step on the whole batch with the mean cross-entropy. Each rank, the single
process included, runs on one BLAS thread.

    # the Milestone 30 model, 10 steps on 2 ranks, compared with one process at the end
    mpiexec -n 2 python -m dlfs.milestones.gpt_data_parallel --checkpoint checkpoints/milestone-30-full-seed0.npz --check
    # the same ranks on several machines (MPICH: one host name per line, this machine first)
    mpiexec -f hosts -n 4 python -m dlfs.milestones.gpt_data_parallel --checkpoint ...

Rank 0 reads every file and broadcasts the job, so the other machines need the same Python
environment with dlfs installed, and no data. ``dlfs milestone 34`` passes
``$DLFS_MPIEXEC_ARGS`` (e.g. ``"-f hosts"``) to its own mpiexec runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

INSTALL_MPI = 'pip install -e ".[dist]"   (mpi4py and the mpich wheel, which provides mpiexec)'


def make_job(model, data: np.ndarray, steps: int, batch: int, lr: float, weight_decay: float, seed: int) -> dict:
    """What every run trains: the GPT's weights (trained in float64), its config, AdamW's settings
    and ``steps`` global batches of ``batch`` random windows of ``data`` (N,) ids: (steps, B, T + 1)."""
    T = model.config.block_size
    rng = np.random.default_rng([seed, 34])
    starts = rng.integers(0, len(data) - T - 1, size=(steps, batch))
    return {"config": model.config.as_dict(), "state": model.state_dict(),
            "batches": data[starts[..., None] + np.arange(T + 1)], "lr": lr, "weight_decay": weight_decay}


def _job_model(job: dict):
    from dlfs.optim.optimizers import AdamW
    from dlfs.transformer.gpt import GPT, GPTConfig

    model = GPT(GPTConfig(**job["config"]), rng=0, dtype=np.float64)
    model.load_state_dict(job["state"])
    model.train()
    return model, AdamW(model.parameters(), lr=job["lr"], weight_decay=job["weight_decay"])


def train_single(job: dict) -> dict:
    """The reference: one process, the whole global batch, the mean cross-entropy, one AdamW step
    per batch (Topic 34's ``timed_steps``). Returns {"params", "losses", "step_seconds", ...}."""
    from dlfs.distributed.train import timed_steps

    model, opt = _job_model(job)
    return timed_steps(model, opt, ((b[:, :-1], b[:, 1:]) for b in job["batches"]))


def train_rank(comm, job: dict) -> dict:
    """A rank program (``ProcessGroup.run`` or under mpiexec): Topic 34's ``data_parallel_step``
    on every global batch. Returns this rank's {"params", "losses", "step_seconds", ...}."""
    from dlfs.distributed.train import timed_steps

    model, opt = _job_model(job)
    return timed_steps(model, opt, ((b[:, :-1], b[:, 1:]) for b in job["batches"]), comm)


def run_summary(rounds: list[list[dict]], reference: dict, tokens_per_step: int) -> dict:
    """Of one or more rounds of the same run (each a list of every rank's record): the largest
    parameter and loss difference of rank 0 from the reference, and the throughput — tokens per
    second of the median step over the rounds (a step ends with its slowest rank; the first step
    of each round is left out), and the median CPU time of a step on the busiest rank (steadier
    than wall time on a shared machine: it leaves out the time a rank waits for a core)."""
    steps, cpu, diffs, loss_diffs = [], [], [], []
    ref = reference["params"]
    for runs in rounds:
        s = np.max(np.array([r["step_seconds"] for r in runs]), axis=0)
        c = np.max(np.array([r["step_cpu_seconds"] for r in runs]), axis=0)
        steps.extend(s[1:] if len(s) > 1 else s)
        cpu.extend(c[1:] if len(c) > 1 else c)
        diffs.append(max(float(np.max(np.abs(runs[0]["params"][k] - ref[k]))) for k in ref))
        loss_diffs.append(float(np.max(np.abs(np.subtract(runs[0]["losses"], reference["losses"])))))
    median = float(np.median(steps))
    return {"max_abs_param_difference": max(diffs), "max_abs_loss_difference": max(loss_diffs),
            "rounds": len(rounds), "median_step_s": round(median, 4),
            "tokens_per_s": round(tokens_per_step / median, 1),
            "median_step_cpu_s": round(float(np.median(cpu)), 4)}


def run_processes(job: dict, world: int) -> list[dict]:
    """``world`` worker processes joined by our shared-memory ring, each running :func:`train_rank`;
    mailboxes large enough for a ring step's chunk of the gradients in one message."""
    from dlfs.distributed.comm import DEFAULT_CAPACITY, ProcessGroup

    grad_bytes = 8 * sum(np.size(v) for v in job["state"].values())
    with ProcessGroup(world, capacity=max(DEFAULT_CAPACITY, -(-grad_bytes // world) + 64)) as group:
        runs, _ = group.run(train_rank, (job,))
    return runs


def mpi_unavailable() -> str:
    """Why the MPI runs cannot start here ("" when they can), with the install command. Does not
    import mpi4py (importing it initialises MPI in this process)."""
    import importlib.util

    try:
        found = importlib.util.find_spec("mpi4py") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return f"mpi4py is not installed: {INSTALL_MPI}"
    if shutil.which("mpiexec") is None:
        return f"no mpiexec on PATH: {INSTALL_MPI}"
    return ""


# the ranks import this module under the learner's redirect when the run has one
MPI_LAUNCH = ("from dlfs.course import redirect; redirect.install_from_env(); "
              "from dlfs.milestones.gpt_data_parallel import mpi_main; raise SystemExit(mpi_main())")


def _redirect_env() -> dict:
    from dlfs.course import redirect

    env = os.environ.copy()
    mapping = {}
    for finder in sys.meta_path:
        if isinstance(finder, redirect.RedirectFinder):
            mapping.update(finder.mapping)
    if mapping:
        env[redirect.ENV_VAR] = json.dumps(mapping)
    return env


def save_job(job: dict, path: Path) -> None:
    meta = {k: job[k] for k in ("config", "lr", "weight_decay")}
    np.savez(path, batches=job["batches"], meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
             **{f"state/{k}": v for k, v in job["state"].items()})


def load_job(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        job = json.loads(bytes(z["meta"]).decode())
        job["batches"] = z["batches"]
        job["state"] = {k[len("state/"):]: z[k] for k in z.files if k.startswith("state/")}
    return job


def mpi_main(argv: list[str] | None = None) -> int:
    """Under mpiexec, every rank: rank 0 reads the job (``--job``, or built from a Milestone 30
    ``--checkpoint`` and Tiny Shakespeare) and broadcasts it, so the other ranks need no files;
    every rank trains it; rank 0 writes ``--out`` (its parameters and every rank's losses and step
    times) and prints the throughput, and with ``--check`` the largest difference from the same
    training in one process."""
    import argparse

    from dlfs.distributed.comm import share_cores
    from dlfs.distributed.mpi import MPICommunicator

    parser = argparse.ArgumentParser(prog="mpiexec -n N python -m dlfs.milestones.gpt_data_parallel",
                                     description=mpi_main.__doc__.split(";")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--job", type=Path, help="a job file (what `dlfs milestone 34` writes)")
    source.add_argument("--checkpoint", type=Path, help="a Milestone 30 training checkpoint")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=16, help="windows per global batch")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--check", action="store_true", help="rank 0 also trains in one process and compares")
    args = parser.parse_args(argv)
    comm = MPICommunicator("mpi")
    share_cores(max(comm.world_size, 2))              # one core per rank, as the other runs
    job = None
    if comm.rank == 0:
        job = load_job(args.job) if args.job else checkpoint_job(args)
    job = comm.comm.bcast(job, root=0)
    run = train_rank(comm, job)
    times = comm.comm.gather({k: run[k] for k in ("losses", "step_seconds", "step_cpu_seconds")}, root=0)
    if comm.rank != 0:
        return 0
    if args.out is not None:
        np.savez(args.out, timing=np.frombuffer(json.dumps(times).encode(), dtype=np.uint8),
                 **{f"params/{k}": v for k, v in run["params"].items()})
    if args.job is None:
        B, T1 = job["batches"].shape[1:]
        runs = [{"params": run["params"] if r == 0 else {}, **t} for r, t in enumerate(times)]
        reference = train_single(job) if args.check else {"params": run["params"], "losses": run["losses"]}
        summary = run_summary([runs], reference, B * (T1 - 1))
        if not args.check:
            summary = {k: v for k, v in summary.items() if not k.startswith("max_abs")}
        print(json.dumps({"ranks": comm.world_size, "steps": len(run["losses"]), "global_batch": [int(B), int(T1 - 1)],
                          "loss_first": run["losses"][0], "loss_last": run["losses"][-1], **summary}))
    return 0


def checkpoint_job(args) -> dict:
    """The job of a Milestone 30 training checkpoint (its preset from the checkpoint) on Tiny
    Shakespeare's training split."""
    from dlfs.data.text import load_shakespeare
    from dlfs.milestones.mini_gpt import PRESETS
    from dlfs.train.recipe import read_checkpoint
    from dlfs.transformer.gpt import GPT

    doc, arrays = read_checkpoint(args.checkpoint)
    model = GPT(PRESETS[doc["meta"].get("preset", "full")].model, rng=0)
    model.load_state_dict({k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")})
    ds = load_shakespeare(args.data_dir)
    return make_job(model, ds.train, args.steps, args.batch, args.lr, args.weight_decay, args.seed)


MPIEXEC_ARGS = "DLFS_MPIEXEC_ARGS"      # more arguments for mpiexec, e.g. "-f hosts" (machines to run on)


def run_mpi(job: dict, world: int, folder: Path, timeout: float = 900) -> list[dict]:
    """``mpiexec [$DLFS_MPIEXEC_ARGS] -n world`` over :func:`mpi_main`; the runs as
    :func:`run_processes` returns them (parameters of rank 0 only)."""
    import shlex

    job_path, out_path = folder / "job.npz", folder / f"mpi-{world}.npz"
    if not job_path.exists():
        save_job(job, job_path)
    cmd = [shutil.which("mpiexec"), *shlex.split(os.environ.get(MPIEXEC_ARGS, "")), "-n", str(world),
           sys.executable, "-c", MPI_LAUNCH, "--job", str(job_path), "--out", str(out_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_redirect_env(), check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:-6])} … failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    with np.load(out_path, allow_pickle=False) as z:
        timing = json.loads(bytes(z["timing"]).decode())
        params = {k[len("params/"):]: z[k] for k in z.files if k.startswith("params/")}
    return [{"params": params if r == 0 else {}, **t} for r, t in enumerate(timing)]


if __name__ == "__main__":
    raise SystemExit(mpi_main())
