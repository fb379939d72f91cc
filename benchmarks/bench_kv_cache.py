"""Topic 31 measurements: generation with and without the key/value cache, and the cache's bytes.

    python -m benchmarks.bench_kv_cache                         # writes <workspace>/results/topic-31/
    python -m benchmarks.bench_kv_cache --checkpoint checkpoints/milestone-30-full-seed0.npz --record
                                        # the trained Milestone 30 model; the project's results/topic-31/
    python -m benchmarks.run kv_cache

speed: the GPT of Milestone 30's ``full`` preset (``dlfs.milestones.mini_gpt.PRESETS``: 4 layers,
width 128, 4 heads, context 128, vocabulary 65), float32, **randomly initialised** unless a
checkpoint is given (the time of a forward pass does not depend on the values of the weights;
the sampled tokens do, and sampling costs the same for any of them). From a prompt of 7 tokens,
``n`` new tokens are sampled (temperature 1) by

- *no cache*: Topic 30's ``dlfs.transformer.sampling.generate``, the whole window of the last
  ``block_size`` tokens through the model at every step;
- *cache*: ``dlfs.transformer.decoding.generate_cached``, one token per step through
  ``gpt_step``; when the 128 positions are full, the cache is rebuilt from the last
  ``keep = 64`` tokens (the default, ``block_size // 2``);
- *cache, keep = 128*: rebuilt at every step once full — Topic 30's exact sliding window,
  the same tokens as *no cache* (checked).

CPU time of the process (``time.process_time``; steady on a shared machine, where wall time is
not) and wall time, median of ``--repeats`` runs taken in turn, one BLAS thread; batch 1 with 256
and 1,024 new tokens, batch 8 with 256 (``--runs``).

bytes: ``KVCache.nbytes`` of the cache for the whole context (T = 128), batch 1 and 8, with 4
(multi-head), 2 and 1 (multi-query) key/value heads (``use_grouped_query``), against the formula
2·L·B·T·H_kv·d_head·itemsize.

exactness: the largest difference between the cached logits and the full forward's over a whole
context (prefill of 8, then one token per step), randomly initialised, float64 and float32.

Past the context (7 + n > 128 tokens): *no cache* runs the last 128 tokens at every step (a
window sliding by one); *cache* keeps the last 64 tokens when the 128 positions are full,
prefills them again at positions 0…63 and goes on one token per step, so a step sees between
64 and 128 tokens (``dlfs.transformer.decoding``); with 1,024 new tokens that rebuild happens
(7 + 1,024 − 128) / 65 ≈ 14 times.

Writes ``kv_cache.json`` (with the command, the weights, the commit, the load average before and
after, and the wall time) and ``kv_cache.png`` to ``<workspace>/results/topic-31/``, with
``--record`` to the project's ``results/topic-31/``, with ``--out DIR`` to DIR.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import BenchResult, machine
from dlfs.io import atomic_write_json

RESULTS = "topic-31"        # results/topic-31/ (see dlfs.experiments.common)
PROMPT_LEN = 7


def milestone_model(checkpoint: Path | None = None, preset: str = "full"):
    """The GPT of a Milestone 30 preset: random (seed 0), or the weights of a training checkpoint."""
    from dlfs.milestones.mini_gpt import PRESETS
    from dlfs.transformer.gpt import GPT

    model = GPT(PRESETS[preset].model, rng=0)
    if checkpoint is not None:
        from dlfs.train.recipe import read_checkpoint
        _, arrays = read_checkpoint(checkpoint)
        model.load_state_dict({k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")})
    return model.eval()


def _timed(fn) -> tuple[float, float, object]:
    c, t = time.process_time(), time.perf_counter()
    out = fn()
    return time.process_time() - c, time.perf_counter() - t, out


def speed(model, new_tokens: int, batch: int = 1, repeats: int = 3) -> dict:
    """CPU and wall seconds (medians) of generating ``new_tokens`` without and with the cache."""
    from dlfs.transformer.decoding import generate_cached
    from dlfs.transformer.sampling import generate

    prompt = np.random.default_rng(1).integers(0, model.config.vocab_size, (batch, PROMPT_LEN))
    block = model.config.block_size
    ways = {"no_cache": lambda: generate(model, prompt, new_tokens, rng=0),
            "cache": lambda: generate_cached(model, prompt, new_tokens, rng=0),
            "cache_keep_block": lambda: generate_cached(model, prompt, new_tokens, rng=0, keep=block)}
    cpu = {k: [] for k in ways}
    wall = {k: [] for k in ways}
    outs = {}
    for _ in range(repeats):
        for name, fn in ways.items():
            c, w, outs[name] = _timed(fn)
            cpu[name].append(c)
            wall[name].append(w)
    row = {"new_tokens": new_tokens, "batch": batch, "prompt_tokens": PROMPT_LEN, "repeats": repeats,
           "keep": block // 2,
           "same_tokens_keep_block_as_no_cache": bool(np.array_equal(outs["cache_keep_block"], outs["no_cache"]))}
    for name in ways:
        row[f"{name}_cpu_s"] = round(statistics.median(cpu[name]), 4)
        row[f"{name}_wall_s"] = round(statistics.median(wall[name]), 4)
    row["speedup_cpu"] = round(row["no_cache_cpu_s"] / row["cache_cpu_s"], 2)
    row["speedup_wall"] = round(row["no_cache_wall_s"] / row["cache_wall_s"], 2)
    row["speedup_keep_block_cpu"] = round(row["no_cache_cpu_s"] / row["cache_keep_block_cpu_s"], 2)
    return row


def cache_sizes(model) -> list[dict]:
    """Bytes of the cache for the whole context, with 4, 2 and 1 key/value heads, against the formula."""
    from dlfs.transformer.gpt import GPT
    from dlfs.transformer.grouped_query import use_grouped_query
    from dlfs.transformer.kv_cache import cache_bytes, cache_for

    c = model.config
    rows = []
    for kv_heads in (c.n_head, 2, 1):
        m = model if kv_heads == c.n_head else use_grouped_query(GPT(c, rng=0), kv_heads, rng=0)
        for batch in (1, 8):
            cache = cache_for(m, batch)
            formula = cache_bytes(c.n_layer, batch, c.block_size, kv_heads, c.n_embd // c.n_head,
                                  cache.k.itemsize)
            rows.append({"n_kv_head": kv_heads, "batch": batch, "T": c.block_size, "bytes": cache.nbytes,
                         "formula_bytes": formula, "equal": cache.nbytes == formula,
                         "attention_parameters": sum(p.size for n, p in m.named_parameters() if "self_attn" in n)})
    return rows


def exactness(config, batch: int = 4) -> list[dict]:
    """Largest |cached − full| logit at every step (a prefill of 8 tokens, then one token per step
    to the whole context) for a random GPT of ``config`` in float64 and float32, and the largest
    logit for scale."""
    from dlfs.transformer.gpt import GPT
    from dlfs.transformer.kv_cache import cache_for, gpt_step

    rows = []
    for dtype in (np.float64, np.float32):
        model = GPT(config, rng=0, dtype=dtype).eval()
        ids = np.random.default_rng(2).integers(0, config.vocab_size, (batch, config.block_size))
        full = model.forward(ids)
        cache = cache_for(model, batch)
        got = [gpt_step(model, ids[:, :8], cache)]
        got += [gpt_step(model, ids[:, t:t + 1], cache) for t in range(8, config.block_size)]
        err = np.abs(np.concatenate(got, axis=1) - full)
        rows.append({"dtype": np.dtype(dtype).name, "batch": batch, "steps": config.block_size - 8,
                     "max_abs_error": float(err.max()), "max_abs_logit": float(np.abs(full).max())})
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['new_tokens']} tokens\nbatch {r['batch']}" for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (key, name) in enumerate([("no_cache", "no cache (whole window each step)"),
                                     ("cache_keep_block", "cache, rebuilt every step once full (keep = 128)"),
                                     ("cache", "cache, rebuilt from 64 when full")]):
        ms = [1000 * r[f"{key}_cpu_s"] / r["new_tokens"] for r in rows]
        ax.bar(x + (i - 1) * 0.27, ms, 0.27, label=name)
    for j, r in enumerate(rows):
        ax.annotate(f"{r['speedup_cpu']:.1f}×", (x[j] + 0.27, 1000 * r["cache_cpu_s"] / r["new_tokens"]),
                    ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, labels)
    ax.set_ylabel("CPU ms per new token")
    ax.set_title("Milestone 30 GPT (4 × 128, context 128), float32, one thread")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def bench_generation(new_tokens: int = 256) -> BenchResult:
    """For ``python -m benchmarks.run kv_cache``: cached generation, the uncached time in the goal."""
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1):
        r = speed(milestone_model(), new_tokens, repeats=3)
    return BenchResult(f"GPT M30 generate {new_tokens} tokens, KV cache", 1000 * r["cache_wall_s"], None, None,
                       goal=f"≥ 5× faster than no cache ({1000 * r['no_cache_wall_s']:.0f} ms): "
                            f"{r['speedup_wall']:.1f}× wall, {r['speedup_cpu']:.1f}× CPU")


BENCHMARKS = [bench_generation]


def main(argv: list[str] | None = None) -> None:
    from threadpoolctl import threadpool_limits

    from dlfs.course.milestones import git_commit
    from dlfs.experiments import common

    parser = common.parser("benchmarks.bench_kv_cache", __doc__.split("\n\n")[0], RESULTS)
    parser.add_argument("--checkpoint", type=Path, default=None, help="a Milestone 30 training checkpoint")
    parser.add_argument("--preset", default="full", help="the Milestone 30 preset of the model (default full)")
    parser.add_argument("--runs", nargs="+", default=["1x256", "1x1024", "8x256"], metavar="BxN",
                        help="batch size x new tokens (default 1x256 1x1024 8x256)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    load_start = [round(x, 2) for x in os.getloadavg()]
    wall0 = time.perf_counter()
    model = milestone_model(args.checkpoint, args.preset)
    rows = []
    with threadpool_limits(1):
        for run in args.runs:
            batch, n = (int(v) for v in run.split("x"))
            r = speed(model, n, batch, args.repeats)
            rows.append(r)
            print(f"B={batch} n={n:5d}  no cache {r['no_cache_cpu_s']:7.3f} s  cache {r['cache_cpu_s']:6.3f} s "
                  f"({r['speedup_cpu']:.1f}× CPU, {r['speedup_wall']:.1f}× wall)  keep=block "
                  f"{r['cache_keep_block_cpu_s']:7.3f} s  same tokens {r['same_tokens_keep_block_as_no_cache']}",
                  flush=True)
    exact = exactness(model.config)
    for e in exact:
        print(f"{e['dtype']}: max |cached − full| logit {e['max_abs_error']:.1e} (logits up to {e['max_abs_logit']:.2f})")
    sizes = cache_sizes(model)
    for s in sizes:
        print(f"H_kv={s['n_kv_head']} B={s['batch']}  {s['bytes']:,} bytes (formula {s['formula_bytes']:,})")
    block = model.config.block_size
    record = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "command": "python -m benchmarks.bench_kv_cache " + " ".join(sys.argv[1:] if argv is None else argv),
              "machine": machine(), "commit": git_commit(),
              "load_average": {"start": load_start, "end": [round(x, 2) for x in os.getloadavg()]},
              "wall_time_s": round(time.perf_counter() - wall0, 1),
              "model": model.config.as_dict(), "weights": str(args.checkpoint) if args.checkpoint else "random (seed 0)",
              "dtype": "float32", "blas_threads": 1,
              "past_the_context": f"no cache: the last {block} tokens at every step (a window sliding by one); "
                                  f"cache: when its {block} positions are full it is rebuilt from the last "
                                  f"{block // 2} tokens at positions 0..{block // 2 - 1} (one batched prefill), "
                                  f"so a step sees {block // 2} to {block} tokens; keep = {block}: rebuilt at "
                                  f"every step once full, the same tokens as no cache",
              "speed": rows, "cache_bytes": sizes, "exactness": exact}
    out = common.output_dir(args)
    atomic_write_json(out / "kv_cache.json", record)
    plot(rows, out / "kv_cache.png")
    print(f"wrote {out / 'kv_cache.json'}")


if __name__ == "__main__":
    main()
