"""Topic 32 measurements: the memory of tiled attention, and gradient checkpointing's memory and time.

    python -m benchmarks.bench_flash                    # both; writes <workspace>/results/topic-32/
    python -m benchmarks.bench_flash attention --lengths 1024 2048 4096 8192
    python -m benchmarks.bench_flash checkpointing
    python -m benchmarks.bench_flash checkpointing --checkpoint checkpoints/milestone-30-full-seed0.npz --record

attention: peak traced memory (``tracemalloc``, which sees NumPy's array allocations) of one
float32 forward + backward at length T (B = 1, H = 1, d = 64, causal), for Topic 25's
``attention_forward`` / ``attention_backward`` and for ``flash_attention_forward`` /
``flash_attention_backward`` (tiles of 128 × 128): the peak above what was allocated
before, inputs and the upstream gradient excluded, the forward's kept arrays included.
Also the wall time of each (one run) and the largest difference between the two outputs.

checkpointing: a GPT (``dlfs.transformer.gpt``, float32, L = 6 blocks, D = 128, 4 heads,
B = 4, T = 256, vocabulary 65, no dropout, random weights; with ``--checkpoint``, the trained
model of a Milestone 30 training checkpoint instead — the ``full`` preset's 4 blocks, D = 128,
4 heads, T = 128 — at the preset's batch, B = 16) one forward + backward with the first n blocks
checkpointed (``dlfs.transformer.checkpointing.checkpoint_blocks``), n = 0 … L: the peak
traced memory of forward + backward (parameters and their gradient arrays excluded: a warm-up
step creates them first) and the median wall and CPU time (``time.process_time``) of 3 runs
without tracemalloc, with one BLAS thread (CPU time is then steady on a shared machine, where wall time is not; with several
threads, waiting BLAS threads spin and count as CPU time). The gradients are compared with n = 0 (bit for bit).

Writes ``attention_memory.json`` / ``.png`` and ``checkpointing.json`` / ``.png`` to
``<workspace>/results/topic-32/``, with ``--record`` to the project's ``results/topic-32/``, with
``--out DIR`` to DIR.

``BENCHMARKS`` (run by ``python -m benchmarks.run flash``): the tiled causal forward + backward
against ``torch.nn.functional.scaled_dot_product_attention`` at B = 1, H = 4, T = 1024, d = 64,
float32 (median of 5 after 1 warm-up each).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

from benchmarks.harness import BenchResult, compare, machine, try_torch
from dlfs.attention.flash import flash_attention_backward, flash_attention_forward
from dlfs.attention.scaled_dot_product import attention_backward, attention_forward, attention_mask
from dlfs.io import atomic_write_json

RESULTS = "topic-32"        # results/topic-32/ (see dlfs.experiments.common)
MiB = 2 ** 20


def _header() -> dict:
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(),
            "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                     text=True).stdout.strip()}


def _peak(fn) -> tuple[int, float, object]:
    """(peak traced bytes above the start, seconds, result) of fn()."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - base, seconds, result


def attention_memory(T: int, *, d: int = 64, block: int = 128) -> dict:
    """Peak memory and time of causal forward + backward at length T, naive and tiled."""
    rng = np.random.default_rng(0)
    q, k, v, dout = (rng.standard_normal((1, 1, T, d), dtype=np.float32) for _ in range(4))

    def naive():
        out, cache = attention_forward(q, k, v, attention_mask(T, T, causal=True))
        attention_backward(dout, cache)
        return out

    def tiled():
        out, cache = flash_attention_forward(q, k, v, causal=True, block_q=block, block_k=block)
        flash_attention_backward(dout, cache)
        return out

    naive_bytes, naive_s, out1 = _peak(naive)
    flash_bytes, flash_s, out2 = _peak(tiled)
    return {"T": T, "d": d, "block": block, "naive_peak_bytes": naive_bytes, "flash_peak_bytes": flash_bytes,
            "naive_seconds": round(naive_s, 3), "flash_seconds": round(flash_s, 3),
            "score_matrix_bytes": T * T * 4, "max_abs_difference": float(np.max(np.abs(out1 - out2)))}


def flash_step(T: int = 1024, *, H: int = 4, d: int = 64, block: int = 128, repeats: int = 5) -> BenchResult:
    """Tiled causal attention forward + backward, ours against torch's scaled_dot_product_attention."""
    rng = np.random.default_rng(0)
    q, k, v, dout = (rng.standard_normal((1, H, T, d), dtype=np.float32) for _ in range(4))

    def ours():
        out, cache = flash_attention_forward(q, k, v, causal=True, block_q=block, block_k=block)
        flash_attention_backward(dout, cache)

    theirs = None
    torch = try_torch()
    if torch is not None:
        tq, tk, tv = (torch.from_numpy(a.copy()).requires_grad_(True) for a in (q, k, v))
        tdout = torch.from_numpy(dout)

        def theirs():
            for t in (tq, tk, tv):
                t.grad = None
            torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True).backward(tdout)

    # causal: about half of the 2 (forward) + 5 (backward, with the recomputed scores) products of 2·T·T·d
    flops = 7 * 2.0 * H * T * T * d / 2
    return compare(f"tiled attention fwd+bwd H={H} T={T} d={d} causal", ours, theirs, repeats=repeats,
                   warmup=1, flops=flops)


BENCHMARKS = [flash_step]


def checkpointing_memory(*, n_layer: int = 6, B: int = 4, T: int = 256, repeats: int = 3, model=None) -> dict:
    """``model``: a GPT to measure (its own n_layer and block_size T then apply), else a random
    one of ``n_layer`` blocks and context ``T``."""
    from dlfs.transformer.checkpointing import checkpoint_blocks
    from dlfs.transformer.gpt import GPT, GPTConfig

    if model is None:
        model = GPT(GPTConfig(vocab_size=65, block_size=T, n_layer=n_layer, n_head=4, n_embd=128), rng=0)
    model.eval()                                                 # no dropout masks either way
    cfg = model.config
    n_layer, T = cfg.n_layer, cfg.block_size
    idx = np.random.default_rng(1).integers(0, 65, (B, T))
    dlogits = np.random.default_rng(2).standard_normal((B, T, 65), dtype=np.float32) / (B * T)

    def step():
        model.zero_grad()
        model.backward(dlogits) if model.forward(idx) is not None else None
        return {name: p.grad.copy() for name, p in model.named_parameters()}

    rows, reference = [], None
    for n in range(n_layer + 1):
        checkpoint_blocks(model.blocks, n)
        step()                                                   # warm up (gradient arrays exist)
        peak, _, grads = _peak(step)
        times, cpu = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            step()
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        reference = grads if reference is None else reference
        exact = all(np.array_equal(grads[k], reference[k]) for k in reference)
        rows.append({"checkpointed_blocks": n, "peak_bytes": peak, "seconds": round(float(np.median(times)), 3),
                     "cpu_seconds": round(float(np.median(cpu)), 3),
                     "gradients_identical_to_plain": bool(exact)})
        r = rows[-1]
        print(f"n={n}  peak {r['peak_bytes'] / MiB:7.1f} MiB  {r['seconds']:.3f} s "
              f"(CPU {r['cpu_seconds']:.3f} s)  identical={exact}", flush=True)
    checkpoint_blocks(model.blocks, 0)
    return {"config": cfg.as_dict(), "B": B, "T": T, "dtype": "float32", "repeats": repeats, "rows": rows}


def plot_attention(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    T = [r["T"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.loglog(T, [r["naive_peak_bytes"] / MiB for r in rows], "o-", label="Topic 25 attention (T² scores)")
    ax.loglog(T, [r["flash_peak_bytes"] / MiB for r in rows], "s-", label="tiled, online softmax (128×128 tiles)")
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("peak traced memory, forward + backward (MiB)")
    ax.set_title("Causal attention, float32, B = H = 1, d = 64")
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xticks(T, [str(t) for t in T])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_checkpointing(record: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = record["rows"]
    n = [r["checkpointed_blocks"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(n, [r["peak_bytes"] / MiB for r in rows], "o-", color="C0")
    ax.set_xlabel("checkpointed blocks (of %d)" % record["config"]["n_layer"])
    ax.set_ylabel("peak traced memory (MiB)", color="C0")
    ax2 = ax.twinx()
    ax2.plot(n, [r["cpu_seconds"] for r in rows], "s--", color="C1")
    ax2.set_ylabel("forward + backward CPU time (s)", color="C1")
    ax.set_title(f"GPT, B = {record['B']}, T = {record['T']}, D = {record['config']['n_embd']}, float32")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    from dlfs.experiments import common

    parser = common.parser("benchmarks.bench_flash", __doc__.split("\n\n")[0], RESULTS)
    parser.add_argument("what", nargs="*", metavar="attention|checkpointing")
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048, 4096, 8192])
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="checkpointing: a Milestone 30 training checkpoint (its trained GPT, at the "
                             "preset's batch)")
    parser.add_argument("--preset", default="full", help="the Milestone 30 preset of --checkpoint (default full)")
    args = parser.parse_args(argv)
    chosen = args.what or ["attention", "checkpointing"]
    unknown = sorted(set(chosen) - {"attention", "checkpointing"})
    if unknown:
        parser.error(f"unknown measurement(s) {unknown}")
    if "attention" in chosen:
        rows = []
        for T in args.lengths:
            r = attention_memory(T)
            print(f"T={T:5d}  naive {r['naive_peak_bytes'] / MiB:8.1f} MiB {r['naive_seconds']:6.2f} s   "
                  f"tiled {r['flash_peak_bytes'] / MiB:7.2f} MiB {r['flash_seconds']:6.2f} s   "
                  f"max |diff| {r['max_abs_difference']:.1e}", flush=True)
            rows.append(r)
        out = common.output_dir(args)
        atomic_write_json(out / "attention_memory.json", {**_header(), "rows": rows})
        plot_attention(rows, out / "attention_memory.png")
    if "checkpointing" in chosen:
        from threadpoolctl import threadpool_limits

        from benchmarks.bench_kv_cache import milestone_model
        load_start = [round(x, 2) for x in os.getloadavg()]
        wall0 = time.perf_counter()
        extra = {"weights": "random (seed 0)"}
        if args.checkpoint is not None:
            from dlfs.milestones.mini_gpt import PRESETS
            extra = {"weights": str(args.checkpoint), "preset": args.preset}
            model = milestone_model(args.checkpoint, args.preset)
        with threadpool_limits(1):
            if args.checkpoint is not None:
                record = checkpointing_memory(model=model, B=PRESETS[args.preset].train.batch_size)
            else:
                record = checkpointing_memory()
        record.update(extra, blas_threads=1,
                      command="python -m benchmarks.bench_flash " + " ".join(sys.argv[1:] if argv is None else argv),
                      load_average={"start": load_start, "end": [round(x, 2) for x in os.getloadavg()]},
                      wall_time_s=round(time.perf_counter() - wall0, 1))
        out = common.output_dir(args)
        atomic_write_json(out / "checkpointing.json", {**_header(), **record})
        plot_checkpointing(record, out / "checkpointing.png")
        print(f"wrote {out / 'checkpointing.json'}")


if __name__ == "__main__":
    main()
