"""Milestone 34 — the systems topics (31–34) at work on the Milestone 30 GPT, in one table.

    dlfs milestone 34            # the trained Milestone 30 model (trained first when there is none)
    dlfs milestone 34 --smoke    # a tiny GPT trained for a few steps (seconds)

The model is the Milestone 30 training checkpoint of the run's seed in the checkpoint folder of
the run (``checkpoints/milestone-30-full-seed0.npz`` beside the project's ``results/`` for
``--record``, the workspace's otherwise). When that file is missing or its run unfinished, the
``quick`` preset's checkpoint is used, and when that is missing too, the quick preset is trained
first (about 2.5 minutes), into the file ``dlfs milestone 30 --preset quick`` writes. The smoke
run trains Milestone 30's smoke-sized GPT for a few steps instead.

Each row measures something and passes or fails:

1. **KV cache** (Topic 31). Logits of the cached forward (a prefill of 8 tokens, then one token
   per step to the whole context) against the full forward on validation windows: at most 1e-12
   in float64 and 1e-5 in float32 (Topic 31's tests, on logits of order 1) times the largest
   |logit| (rounding grows with it: the trained model's logits reach 15.9; measured in
   float32, 2.1e-5 against the full forward); sampling with the cache rebuilt at every
   step (``keep = block_size``) draws the same tokens as Topic 30's ``generate``; and the
   speed-up of ``generate_cached`` over ``generate`` at 256 new tokens (CPU time, median of 3,
   one BLAS thread; Topic 31's goal ≥ 5×).
2. **FlashAttention** (Topic 32). The tiled forward and backward against Topic 25's attention on
   the model's own queries, keys and values (its first block, validation windows, float64,
   causal, tiles of a quarter of the context): output and the three gradients within 1e-10;
   then the peak traced memory (``tracemalloc``) of one causal forward + backward, naive against
   tiled, at lengths up to 4,096 (one head of the model's width, float32, tiles of 128).
3. **Quantisation** (Topic 33). Validation loss (the whole split) of the float32 model, of int8
   weight-only per-channel PTQ and of int4 in groups of 32 (``dlfs.quant.ptq``), and their sizes
   (``model_bytes``): int8 must stay within 1% of the float loss; int4's change is reported.
4. **Distributed** (Topic 34). Ten AdamW steps of the model itself (in float64) on global
   batches of 16 training windows: in one process on the whole batch (the reference), with our
   shared-memory ring over 2 worker processes, and under ``mpiexec`` with 1 and 2 MPI ranks
   (MPI's ``Allreduce``), each twice, in alternating order. Every run must end with the
   reference's parameters to 1e-12; the throughput is global-batch tokens per second of the
   median step (each run's first left out), every rank on one BLAS thread; the record adds the
   median CPU time of a step on the busiest rank, which a shared machine's load disturbs less. Without mpi4py or ``mpiexec`` the MPI row is skipped with the
   reason and the install command, which does not fail the milestone.

The reported value is the fraction of the rows that ran and passed (target 100%); the table,
every figure, the checkpoint used, seconds per row and the load average go to the record, and
the run names every failing row.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from dlfs.course.milestones import DEFAULT, Measurement, MilestoneSpec, PresetInfo, RunOptions, Target

M30_FULL, M30_QUICK = "full", "quick"
PROMPT = "ROMEO:\n"


@dataclass(frozen=True)
class Config:
    """What each row measures. ``model_steps``: train Milestone 30's smoke GPT for that many steps
    instead of loading a trained model (the smoke run)."""

    model_steps: int | None = None
    # KV cache
    kv_windows: int = 4                     # validation windows compared with the full forward
    kv_prefill: int = 8
    kv_new_tokens: int = 256
    kv_repeats: int = 3
    kv_speedup_target: float = 5.0
    # FlashAttention
    flash_windows: int = 4
    flash_lengths: tuple[int, ...] = (1024, 4096)
    flash_block: int = 128
    flash_ratio_target: float = 10.0
    # quantisation
    quant_windows: int | None = None        # None: the whole validation split
    int8_tolerance: float = 0.01            # relative change of the validation loss
    # distributed
    dist_batch: int = 16                    # windows per global batch
    dist_steps: int = 10
    dist_lr: float = 3e-4
    dist_weight_decay: float = 0.1
    dist_tolerance: float = 1e-12
    dist_world: int = 2
    dist_rounds: int = 2                    # runs of each configuration (the order alternates)


FULL = Config()
SMOKE = Config(model_steps=40, kv_windows=2, kv_new_tokens=64, kv_repeats=3, kv_speedup_target=1.2,
               flash_windows=2, flash_lengths=(512,), flash_block=32, flash_ratio_target=2.0,
               quant_windows=40, dist_batch=4, dist_steps=3, dist_rounds=1)

TARGET = Target("checks_passed", 1.0)
SPEC = MilestoneSpec(
    milestone=34,
    title="KV cache, FlashAttention, quantisation and data-parallel training on the Milestone 30 GPT",
    dataset="shakespeare",
    presets={DEFAULT: PresetInfo("the trained Milestone 30 GPT (the quick preset trained first, about "
                                 "2.5 min, when there is none): cache at 256 new tokens, attention at "
                                 "T = 4,096, int8/int4 PTQ on the whole validation split, 10 data-parallel "
                                 "steps with the ring and MPI", TARGET)},
    default_preset=DEFAULT,
    full_target=TARGET,
    smoke_description="Milestone 30's smoke GPT (2 layers, width 64, context 32) trained 40 steps; "
                      "64 new tokens, attention at T = 512, 3 data-parallel steps (seconds)",
    smoke_target=TARGET,
)


@dataclass
class Row:
    """One line of the table. ``status``: "passed", "FAILED" or "skipped: <reason>"."""

    check: str
    measured: str
    target: str
    status: str
    figures: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def skipped(self) -> bool:
        return self.status.startswith("skipped")


def verdict(ok: bool) -> str:
    return "passed" if ok else "FAILED"


# -- the model ------------------------------------------------------------------------------------

def checkpoint_dir(opts: RunOptions) -> Path:
    """The checkpoint folder beside the run's ``results/`` (the project's with --record, else the
    workspace's)."""
    from dlfs.course.workspace import workspace_dir

    out = opts.output_dir
    if out is not None:
        for parent in Path(out).parents:
            if parent.name == "results":
                return parent.parent / "checkpoints"
    return workspace_dir() / "checkpoints"


def finished_checkpoint(path: Path, steps: int) -> str:
    """Why ``path`` is not a finished Milestone 30 run of ``steps`` steps ("" when it is)."""
    from dlfs.errors import DataError
    from dlfs.train.recipe import read_checkpoint

    if not path.exists():
        return f"no {path}"
    try:
        doc, _ = read_checkpoint(path)
    except DataError as exc:
        return str(exc)
    return "" if doc["epoch"] == steps else f"{path} holds step {doc['epoch']} of {steps} (unfinished)"


def load_gpt(path: Path, preset: str, dtype=np.float32):
    """The GPT of Milestone 30's ``preset`` with the weights of the training checkpoint ``path``."""
    from dlfs.milestones.mini_gpt import PRESETS
    from dlfs.train.recipe import read_checkpoint
    from dlfs.transformer.gpt import GPT

    _, arrays = read_checkpoint(path)
    model = GPT(PRESETS[preset].model, rng=0, dtype=dtype)
    model.load_state_dict({k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")})
    return model.eval()


def with_dtype(model, dtype):
    """A copy of the GPT ``model`` with its parameters in ``dtype`` (eval mode)."""
    from dlfs.transformer.gpt import GPT

    copy = GPT(model.config, rng=0, dtype=dtype)
    copy.load_state_dict(model.state_dict())
    return copy.eval()


def trained_model(opts: RunOptions, cfg: Config, ds) -> tuple[object, dict]:
    """The model the rows measure and what it is: (model, info for the record)."""
    from dlfs.milestones.mini_gpt import PRESETS, with_steps
    from dlfs.milestones.mini_gpt import SMOKE as M30_SMOKE
    from dlfs.transformer.gpt import GPT
    from dlfs.transformer.training import fit

    if cfg.model_steps is not None:
        p = with_steps(M30_SMOKE, cfg.model_steps)
        model = GPT(p.model, rng=np.random.default_rng(opts.seed))
        t0 = time.perf_counter()
        fit(model, ds.train, ds.val, p.train, seed=opts.seed, progress=False, log=lambda s: None)
        opts.log(f"model: Milestone 30's smoke GPT trained {cfg.model_steps} steps here "
                 f"({time.perf_counter() - t0:.1f} s)")
        return model.eval(), {"checkpoint": None, "trained_here": f"smoke GPT, {cfg.model_steps} steps",
                              "model": p.model.as_dict(), "parameters": model.num_parameters()}
    folder = checkpoint_dir(opts)
    full = folder / f"milestone-30-{M30_FULL}-seed{opts.seed}.npz"
    why_not = finished_checkpoint(full, PRESETS[M30_FULL].train.max_steps)
    if not why_not:
        preset, path, trained = M30_FULL, full, None
    else:
        preset, path = M30_QUICK, folder / f"milestone-30-{M30_QUICK}-seed{opts.seed}.npz"
        p = PRESETS[M30_QUICK]
        if finished_checkpoint(path, p.train.max_steps):
            opts.log(f"no trained Milestone 30 model ({why_not}): training the quick preset first "
                     f"({p.description}) into {path}")
            model = GPT(p.model, rng=np.random.default_rng(opts.seed))
            t0 = time.perf_counter()
            fit(model, ds.train, ds.val, p.train, seed=opts.seed, checkpoint=path, resume=True,
                progress=opts.progress, log=opts.log, meta={"preset": M30_QUICK, "seed": opts.seed})
            trained = f"quick preset trained here in {time.perf_counter() - t0:.0f} s"
        else:
            opts.log(f"no trained full Milestone 30 model ({why_not}); using the quick preset's")
            trained = None
    model = load_gpt(path, preset)
    opts.log(f"model: Milestone 30 {preset} preset, {path} ({model.num_parameters():,} parameters)")
    return model, {"checkpoint": _relative(path), "preset": preset, "trained_here": trained,
                   "full_checkpoint_missing": why_not or None, "model": model.config.as_dict(),
                   "parameters": model.num_parameters()}


def _relative(path: Path) -> str:
    from dlfs.course.registry import REPO_ROOT

    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def val_windows(ds, T: int, count: int) -> np.ndarray:
    """``count`` evenly spread windows of T ids of the validation split: (count, T)."""
    starts = np.linspace(0, len(ds.val) - T - 1, count).round().astype(np.int64)
    return ds.val[starts[:, None] + np.arange(T)]


# -- 1. KV cache ----------------------------------------------------------------------------------

def cached_logits_error(model, ids: np.ndarray, prefill: int) -> tuple[float, float]:
    """Largest |cached − full| logit and the largest |logit|: ``gpt_step`` over a prefill, then one
    token per step, against ``model.forward`` of the whole window. ids: (B, T)."""
    from dlfs.transformer.kv_cache import cache_for, gpt_step

    full = model.forward(ids)
    cache = cache_for(model, ids.shape[0])
    got = [gpt_step(model, ids[:, :prefill], cache)]
    got += [gpt_step(model, ids[:, t:t + 1], cache) for t in range(prefill, ids.shape[1])]
    return float(np.max(np.abs(np.concatenate(got, axis=1) - full))), float(np.max(np.abs(full)))


def cpu_seconds(fn: Callable[[], object], repeats: int) -> tuple[float, float, object]:
    """Median CPU and wall seconds of ``repeats`` calls of fn, and its last result."""
    cpu, wall, out = [], [], None
    for _ in range(repeats):
        c, w = time.process_time(), time.perf_counter()
        out = fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return statistics.median(cpu), statistics.median(wall), out


def kv_cache_row(model, ds, cfg: Config, seed: int) -> Row:
    from threadpoolctl import threadpool_limits

    from dlfs.transformer.decoding import generate_cached
    from dlfs.transformer.sampling import generate

    T = model.config.block_size
    ids = val_windows(ds, T, cfg.kv_windows)
    measured = {np.dtype(dt).name: cached_logits_error(with_dtype(model, dt), ids, cfg.kv_prefill)
                for dt in (np.float64, np.float32)}
    errors = {k: e for k, (e, _) in measured.items()}
    # Topic 31's tolerances hold for logits of order 1; rounding grows with the logits' size
    scale = max(1.0, *(top for _, top in measured.values()))
    tol = {"float64": 1e-12 * scale, "float32": 1e-5 * scale}
    prompt = ds.encode(PROMPT)
    n = cfg.kv_new_tokens
    with threadpool_limits(1, user_api="blas"):
        same = np.array_equal(generate(model, prompt, n, rng=seed), generate_cached(model, prompt, n, rng=seed, keep=T))
        plain_cpu, plain_wall, _ = cpu_seconds(lambda: generate(model, prompt, n, rng=seed), cfg.kv_repeats)
        cached_cpu, cached_wall, _ = cpu_seconds(lambda: generate_cached(model, prompt, n, rng=seed), cfg.kv_repeats)
    speedup = plain_cpu / cached_cpu
    exact = all(errors[k] <= tol[k] for k in tol)
    ok = exact and same and speedup >= cfg.kv_speedup_target
    return Row("KV cache",
               f"logits identical (max diff {errors['float64']:.1e} f64, {errors['float32']:.1e} f32), "
               f"same tokens {'yes' if same else 'NO'}; {speedup:.1f}× faster at {n} tokens",
               f"≤ (1e-12 / 1e-5)·{scale:.0f}; same; ≥ {cfg.kv_speedup_target:g}×", verdict(ok),
               {"max_abs_logit_error": errors, "max_abs_logit": scale, "tolerance": tol,
                "tolerance_rule": "Topic 31's 1e-12 (float64) / 1e-5 (float32) times max(1, largest |logit|)", "windows": int(ids.shape[0]), "prefill": cfg.kv_prefill,
                "same_tokens_keep_block_as_no_cache": bool(same), "new_tokens": n, "repeats": cfg.kv_repeats,
                "no_cache_cpu_s": round(plain_cpu, 4), "cache_cpu_s": round(cached_cpu, 4),
                "no_cache_wall_s": round(plain_wall, 4), "cache_wall_s": round(cached_wall, 4),
                "speedup_cpu": round(speedup, 2), "speedup_wall": round(plain_wall / cached_wall, 2),
                "speedup_target": cfg.kv_speedup_target, "blas_threads": 1, "keep": T // 2})


# -- 2. FlashAttention ----------------------------------------------------------------------------

def model_qkv(model, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first block's queries, keys and values on ids (B, T): each (B, H, T, d_head)."""
    from dlfs.transformer.kv_cache import project_heads

    T = ids.shape[1]
    x = model.wte.forward(ids) + model.wpe.data[:T]
    block = model.blocks[0]
    return project_heads(block.self_attn, block.sublayer1.norm.forward(x))


def attention_pair(q, k, v, dout, block: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Causal attention forward + backward by Topic 25 and by the tiled kernel:
    {name: (naive, tiled)} for out, dq, dk, dv."""
    from dlfs.attention.flash import flash_attention_backward, flash_attention_forward
    from dlfs.attention.scaled_dot_product import attention_backward, attention_forward, attention_mask

    T = q.shape[-2]
    out1, c1 = attention_forward(q, k, v, attention_mask(T, T, causal=True))
    grads1 = attention_backward(dout, c1)
    out2, c2 = flash_attention_forward(q, k, v, causal=True, block_q=block, block_k=block)
    grads2 = flash_attention_backward(dout, c2)
    return {"out": (out1, out2), **{n: (a, b) for n, a, b in zip(("dq", "dk", "dv"), grads1, grads2, strict=True)}}


def peak_bytes(fn: Callable[[], object]) -> tuple[int, float]:
    """Peak traced bytes above the start (``tracemalloc``) and seconds of fn()."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        fn()
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - base, seconds


def attention_memory(T: int, d: int, block: int) -> dict:
    """Peak memory of one causal forward + backward at length T (one head of width d, float32),
    Topic 25's attention against the tiled one; the inputs and the upstream gradient excluded."""
    from dlfs.attention.flash import flash_attention_backward, flash_attention_forward
    from dlfs.attention.scaled_dot_product import attention_backward, attention_forward, attention_mask

    rng = np.random.default_rng(T)
    q, k, v, dout = (rng.standard_normal((1, 1, T, d), dtype=np.float32) for _ in range(4))
    naive, naive_s = peak_bytes(lambda: attention_backward(
        dout, attention_forward(q, k, v, attention_mask(T, T, causal=True))[1]))
    tiled, tiled_s = peak_bytes(lambda: flash_attention_backward(
        dout, flash_attention_forward(q, k, v, causal=True, block_q=block, block_k=block)[1]))
    return {"T": T, "d": d, "block": block, "naive_peak_bytes": naive, "tiled_peak_bytes": tiled,
            "ratio": naive / tiled, "naive_seconds": round(naive_s, 3), "tiled_seconds": round(tiled_s, 3)}


def flash_row(model, ds, cfg: Config, seed: int, log: Callable[[str], None] = print) -> Row:
    m64 = with_dtype(model, np.float64)
    T = model.config.block_size
    q, k, v = model_qkv(m64, val_windows(ds, T, cfg.flash_windows))
    dout = np.random.default_rng(seed).standard_normal(q.shape)
    tile = max(1, T // 4)
    diffs = {name: float(np.max(np.abs(a - b))) for name, (a, b) in attention_pair(q, k, v, dout, tile).items()}
    worst = max(diffs.values())
    d = q.shape[-1]
    memory = []
    for length in cfg.flash_lengths:
        memory.append(attention_memory(length, d, cfg.flash_block))
        r = memory[-1]
        log(f"  attention at T = {length}: peak {r['naive_peak_bytes'] / 2**20:.1f} MiB naive, "
            f"{r['tiled_peak_bytes'] / 2**20:.2f} MiB tiled")
    top = memory[-1]
    ok = worst <= 1e-10 and top["ratio"] >= cfg.flash_ratio_target
    return Row("FlashAttention",
               f"fwd+bwd max diff {worst:.1e}; memory naive/tiled {top['ratio']:.1f}× at T = {top['T']:,} "
               f"({top['naive_peak_bytes'] / 2**20:.1f} / {top['tiled_peak_bytes'] / 2**20:.2f} MiB)",
               f"≤ 1e-10; ≥ {cfg.flash_ratio_target:g}×", verdict(ok),
               {"equality": {"source": "the model's first block, float64, causal", "shape": list(q.shape),
                             "tile": tile, "max_abs_difference": diffs, "tolerance": 1e-10},
                "memory": memory, "memory_dtype": "float32", "ratio_target": cfg.flash_ratio_target})


# -- 3. quantisation -----------------------------------------------------------------------------

def quant_row(model, ds, cfg: Config) -> Row:
    from dlfs.quant.ptq import WEIGHT_INT4_G32, WEIGHT_INT8, model_bytes, quantize_weights
    from dlfs.transformer.training import evaluate

    T = model.config.block_size
    loss = {"float32": float(evaluate(model, ds.val, T, cfg.quant_windows))}
    size = {"float32": model_bytes(model)}
    for name, scheme in (("int8", WEIGHT_INT8), ("int4", WEIGHT_INT4_G32)):
        loss[name] = float(evaluate(quantize_weights(model, scheme)[0], ds.val, T, cfg.quant_windows))
        size[name] = model_bytes(model, scheme)
    change = {k: (loss[k] - loss["float32"]) / loss["float32"] for k in ("int8", "int4")}
    ratio = {k: size["float32"] / size[k] for k in ("int8", "int4")}
    ok = abs(change["int8"]) <= cfg.int8_tolerance
    return Row("Quantisation",
               f"loss {loss['float32']:.4f}; int8 {change['int8']:+.3%} ({ratio['int8']:.1f}× smaller), "
               f"int4 g32 {change['int4']:+.2%} ({ratio['int4']:.1f}× smaller)",
               f"int8 within {cfg.int8_tolerance:.0%}", verdict(ok),
               {"val_loss": loss, "bytes": size, "relative_change": change, "size_ratio": ratio,
                "schemes": {"int8": "weight-only, symmetric, per output channel",
                            "int4": "weight-only, symmetric, groups of 32 along the input"},
                "windows": cfg.quant_windows or "the whole validation split", "int8_tolerance": cfg.int8_tolerance})


# -- 4. data-parallel training -------------------------------------------------------------------

def distributed_rows(model, ds, cfg: Config, seed: int, log: Callable[[str], None] = print) -> list[Row]:
    """The ring row and the MPI row. Each configuration runs ``dist_rounds`` times, in the order
    one process, ring, MPI 1, MPI N and then back (so that a change of the machine's load
    between runs weighs on every configuration alike); throughput is the median step over the
    rounds, equality the worst round."""
    from threadpoolctl import threadpool_limits

    from dlfs.milestones import gpt_data_parallel as dp

    t0 = time.perf_counter()
    job = dp.make_job(model, ds.train, cfg.dist_steps, cfg.dist_batch, cfg.dist_lr, cfg.dist_weight_decay, seed)
    B, T1 = job["batches"].shape[1:]
    tokens = B * (T1 - 1)
    what = {"model": f"the measured GPT in float64 ({model.num_parameters():,} parameters)",
            "global_batch": f"{B} windows × {T1 - 1} tokens", "steps": cfg.dist_steps, "rounds": cfg.dist_rounds,
            "optimizer": f"AdamW, lr {cfg.dist_lr:g}, weight decay {cfg.dist_weight_decay:g} on every parameter",
            "blas_threads_per_rank": 1, "tolerance": cfg.dist_tolerance}
    reason = dp.mpi_unavailable()
    world = cfg.dist_world

    def single():
        with threadpool_limits(1, user_api="blas"):
            return [dp.train_single(job)]

    launch = {"single_process": single, f"ring_{world}_processes": lambda: dp.run_processes(job, world)}
    tmp = tempfile.TemporaryDirectory(prefix="dlfs-m34-")
    if not reason:
        launch.update({f"mpi_{n}": (lambda n=n: dp.run_mpi(job, n, Path(tmp.name))) for n in (1, world)})
    rounds = {name: [] for name in launch}
    seconds = dict.fromkeys(launch, 0.0)
    loads = {name: [] for name in launch}
    mpi_error = ""
    with tmp:
        for r in range(cfg.dist_rounds):
            for name in (list(launch) if r % 2 == 0 else list(launch)[::-1]):
                if name.startswith("mpi") and mpi_error:
                    continue
                t1 = time.perf_counter()
                loads[name].append(round(os.getloadavg()[0], 2))
                try:
                    rounds[name].append(launch[name]())
                except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                    if not name.startswith("mpi"):
                        raise
                    mpi_error = f"{type(exc).__name__}: {exc}"
                seconds[name] += time.perf_counter() - t1
    reference = rounds["single_process"][0][0]
    figures = {name: {**dp.run_summary(runs, reference, tokens), "load_average_1min": loads[name]}
               for name, runs in rounds.items() if not (name.startswith("mpi") and mpi_error)}
    one, ring = figures["single_process"], figures[f"ring_{world}_processes"]
    log(f"  one process {one['tokens_per_s']:,.0f} tokens/s; ring over {world} processes "
        f"{ring['tokens_per_s']:,.0f} tokens/s, parameters within {ring['max_abs_param_difference']:.1e}")
    ok = ring["max_abs_param_difference"] <= cfg.dist_tolerance and one["max_abs_param_difference"] == 0
    rows = [Row("Distributed: ring",
                f"{world} processes = 1 process (max diff {ring['max_abs_param_difference']:.1e}); "
                f"{one['tokens_per_s']:,.0f} → {ring['tokens_per_s']:,.0f} tokens/s",
                f"≤ {cfg.dist_tolerance:g}", verdict(ok),
                {**what, "single_process": one, f"ring_{world}_processes": ring,
                 "speedup": round(ring["tokens_per_s"] / one["tokens_per_s"], 2)},
                time.perf_counter() - t0 - sum(v for k, v in seconds.items() if k.startswith("mpi")))]
    if reason:
        rows.append(Row("Distributed: MPI", "—", f"≤ {cfg.dist_tolerance:g}", f"skipped: {reason}",
                        {"reason": reason}, 0.0))
        return rows
    if mpi_error:
        rows.append(Row("Distributed: MPI", f"did not run: {mpi_error[:300]}", f"≤ {cfg.dist_tolerance:g}",
                        "FAILED", {"error": mpi_error}, seconds["mpi_1"] + seconds[f"mpi_{world}"]))
        return rows
    m1, mn = figures["mpi_1"], figures[f"mpi_{world}"]
    worst = max(m1["max_abs_param_difference"], mn["max_abs_param_difference"])
    rows.append(Row("Distributed: MPI",
                    f"1 and {world} ranks = 1 process (max diff {worst:.1e}); "
                    f"{m1['tokens_per_s']:,.0f} → {mn['tokens_per_s']:,.0f} tokens/s",
                    f"≤ {cfg.dist_tolerance:g}", verdict(worst <= cfg.dist_tolerance),
                    {**what, "mpi_1": m1, f"mpi_{world}": mn, "allreduce": "MPI Allreduce",
                     "mpiexec": shutil.which("mpiexec"), "mpiexec_args": os.environ.get(dp.MPIEXEC_ARGS, ""),
                     "speedup": round(mn["tokens_per_s"] / m1["tokens_per_s"], 2)},
                    seconds["mpi_1"] + seconds[f"mpi_{world}"]))
    return rows


# -- the table ------------------------------------------------------------------------------------

def table(rows: list[Row]) -> str:
    """The rows as a text table: check | measured | target | result | seconds."""
    head = ("check", "measured", "target", "result", "s")
    cells = [head] + [(r.check, r.measured, r.target, r.status, f"{r.seconds:.1f}") for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(head))).rstrip() for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def timed(fn: Callable[[], Row | list[Row]]) -> list[Row]:
    """The row(s) of fn, each with its seconds (a list of rows keeps the seconds it set)."""
    t0 = time.perf_counter()
    out = fn()
    if isinstance(out, Row):
        out.seconds = time.perf_counter() - t0
        return [out]
    return out


def run(opts: RunOptions) -> Measurement:
    from threadpoolctl import threadpool_limits

    from dlfs.data.text import load_shakespeare
    from dlfs.milestones.mini_gpt import blas_threads
    from dlfs.memory import keep_freed_memory

    cfg = SMOKE if opts.smoke else FULL
    load_start = os.getloadavg()
    ds = load_shakespeare(opts.data_dir)
    keep_freed_memory()
    with threadpool_limits(blas_threads(), user_api="blas"):
        t0 = time.perf_counter()
        model, info = trained_model(opts, cfg, ds)
        model_seconds = time.perf_counter() - t0
        parts = [("KV cache", lambda: kv_cache_row(model, ds, cfg, opts.seed)),
                 ("FlashAttention", lambda: flash_row(model, ds, cfg, opts.seed, opts.log)),
                 ("Quantisation", lambda: quant_row(model, ds, cfg)),
                 ("Distributed", lambda: distributed_rows(model, ds, cfg, opts.seed, opts.log))]
        rows = []
        for name, part in parts:
            opts.log(f"{name} …")
            for row in timed(part):
                rows.append(row)
                opts.log(f"  {row.check}: {row.measured} — {row.status}")
    failed = [r for r in rows if not r.passed and not r.skipped]
    ran = [r for r in rows if not r.skipped]
    value = (len(ran) - len(failed)) / len(ran) if ran else 0.0
    opts.log("\n" + table(rows))
    if failed:
        opts.log("Milestone 34 FAILED: " + "; ".join(f"{r.check} ({r.measured}; target {r.target})" for r in failed))
    load_end = os.getloadavg()
    return Measurement(value=value, details={
        "command": "dlfs " + " ".join(sys.argv[1:]) if Path(sys.argv[0]).name == "dlfs" else " ".join(sys.argv),
        **info,
        "model_seconds": round(model_seconds, 1),
        "config": asdict(cfg),
        "rows": [{**asdict(r), "seconds": round(r.seconds, 1)} for r in rows],
        "table": table(rows),
        "failed_rows": [r.check for r in failed],
        "skipped_rows": {r.check: r.status for r in rows if r.skipped},
        "blas_threads": blas_threads(),
        "load_average": {"start": [round(x, 2) for x in load_start], "end": [round(x, 2) for x in load_end]},
        "cpu_count": os.cpu_count(),
    })

