"""Attention benchmarks (Topics 25–26): speed against PyTorch CPU and the memory of the scores.

    python -m benchmarks.bench_attention                 # speed and memory, 3 rounds of timing
    python -m benchmarks.bench_attention speed --rounds 5
    python -m benchmarks.bench_attention memory
    python -m benchmarks.bench_attention speed --threads 1   # one BLAS/torch thread each

speed: forward + backward of ``dlfs.attention.scaled_dot_product`` (float32, batched, no mask
and causal) against ``torch.nn.functional.scaled_dot_product_attention`` forward + backward at
a GPT-like size, B = 12 sequences, H = 4 heads, d = 32 per head, T = 64 and 256. Each round is
``benchmarks.harness.compare`` (ours and torch alternately, median of the repeats); the ratio
is ours / torch.

It also times the multi-head self-attention layer (Topic 26: fused QKV projection, heads,
attention, output projection) against ``torch.nn.MultiheadAttention`` at D = 128, H = 4.

memory: ``tracemalloc`` (which sees NumPy's array allocations) around one float32 forward,
and around forward + backward, at several T with B = 12, H = 4, d = 32: the peak of traced
memory above what was allocated before (the backward's peak includes what the forward kept),
next to the size of one (B, H, T, T) score matrix.

Results are printed and appended to ``benchmarks/attention-results.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
import tracemalloc
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.harness import BenchResult, compare, machine, try_torch
from dlfs.attention.scaled_dot_product import attention_backward, attention_forward, attention_mask
from dlfs.io import atomic_write_json

RESULTS = Path(__file__).with_name("attention-results.json")
GPT_SIZE = dict(B=12, H=4, d=32)
_THREADS: list[int] = []           # --threads: try_torch() resets torch's thread count on every call


def _inputs(B: int, H: int, T: int, d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal((B, H, T, d), dtype=np.float32) for _ in range(4))   # q, k, v, dout


def attention_step(T: int, causal: bool = False, *, B: int = 12, H: int = 4, d: int = 32,
                   repeats: int = 20, warmup: int = 3) -> BenchResult:
    """Forward + backward of batched attention, ours against torch's scaled_dot_product_attention."""
    q, k, v, dout = _inputs(B, H, T, d)
    mask = attention_mask(T, T, causal=True) if causal else None

    def ours():
        out, cache = attention_forward(q, k, v, mask)
        attention_backward(dout, cache)

    theirs = None
    torch = try_torch()
    if torch is not None:
        if _THREADS:
            torch.set_num_threads(_THREADS[0])
        tq, tk, tv = (torch.from_numpy(a.copy()).requires_grad_(True) for a in (q, k, v))
        tdout = torch.from_numpy(dout)

        def theirs():
            for t in (tq, tk, tv):
                t.grad = None
            out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)
            out.backward(tdout)

    # scores, p @ v in the forward; dv, dp, dq, dk in the backward: 6 products of 2·T·T·d flops
    flops = 6 * 2.0 * B * H * T * T * d
    name = f"attention fwd+bwd B={B} H={H} T={T} d={d}" + (" causal" if causal else "")
    return compare(name, ours, theirs, repeats=repeats, warmup=warmup, flops=flops)


def attention_t64() -> BenchResult:
    return attention_step(64, **GPT_SIZE)


def attention_t256() -> BenchResult:
    return attention_step(256, **GPT_SIZE)


def attention_t256_causal() -> BenchResult:
    return attention_step(256, causal=True, **GPT_SIZE)


def mha_step(T: int, *, B: int = 12, H: int = 4, D: int = 128, repeats: int = 20, warmup: int = 3) -> BenchResult:
    """Forward + backward of the multi-head self-attention layer (Topic 26), ours against
    torch.nn.MultiheadAttention(D, H, batch_first=True) with the same weights, no mask."""
    from dlfs.attention.multi_head import MultiHeadAttention

    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, D), dtype=np.float32)
    dy = rng.standard_normal((B, T, D), dtype=np.float32)
    layer = MultiHeadAttention(D, H, rng=0)

    def ours():
        layer.zero_grad()
        layer.forward(x)
        layer.backward(dy)

    theirs = None
    torch = try_torch()
    if torch is not None:
        if _THREADS:
            torch.set_num_threads(_THREADS[0])
        tmha = torch.nn.MultiheadAttention(D, H, batch_first=True, dtype=torch.float32)
        tx = torch.from_numpy(x.copy()).requires_grad_(True)
        tdy = torch.from_numpy(dy)

        def theirs():
            tmha.zero_grad()
            tx.grad = None
            tmha(tx, tx, tx, need_weights=False)[0].backward(tdy)

    # projections: 3 products of 2·B·T·D·(3D or D) flops (forward, dx, dW) = 24·B·T·D²; attention as above
    flops = 24.0 * B * T * D * D + 6 * 2.0 * B * T * T * D
    return compare(f"multi-head attention layer fwd+bwd B={B} T={T} D={D} H={H}", ours, theirs,
                   repeats=repeats, warmup=warmup, flops=flops)


def mha_t64() -> BenchResult:
    return mha_step(64)


def mha_t256() -> BenchResult:
    return mha_step(256)


BENCHMARKS = [attention_t64, attention_t256, attention_t256_causal, mha_t64, mha_t256]


def score_memory(T: int, *, B: int = 12, H: int = 4, d: int = 32) -> dict:
    """Peak traced memory (bytes) of one forward, and of forward + backward, at length T."""
    q, k, v, dout = _inputs(B, H, T, d)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        out, cache = attention_forward(q, k, v)
        kept, fwd_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        attention_backward(dout, cache)
        bwd_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return {"T": T, "B": B, "H": H, "d": d, "score_matrix_bytes": B * H * T * T * 4,
            "forward_peak_bytes": fwd_peak - base, "kept_after_forward_bytes": kept - base,
            "backward_peak_bytes": bwd_peak - base, "forward_backward_peak_bytes": max(fwd_peak, bwd_peak) - base}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="*", metavar="speed|memory", help="what to measure (default: both)")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds per size (default 3)")
    parser.add_argument("--threads", type=int, default=None,
                        help="limit NumPy's BLAS and torch to this many threads (default: every core)")
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 256, 512, 1024],
                        help="sequence lengths for the memory measurement")
    args = parser.parse_args(argv)
    chosen = args.what or ["speed", "memory"]
    unknown = sorted(set(chosen) - {"speed", "memory"})
    if unknown:
        parser.error(f"unknown measurement(s) {unknown}: choose speed and/or memory")
    if args.threads:
        threadpool_limits(args.threads)
        _THREADS[:] = [args.threads]
    record: dict = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(), "threads": args.threads,
                    "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                             text=True).stdout.strip()}
    print("machine:", record["machine"])
    if "speed" in chosen:
        record["speed"] = []
        for bench in BENCHMARKS:
            rounds = [bench() for _ in range(args.rounds)]
            for r in rounds:
                print(r.line(), flush=True)
            ratios = [r.ratio for r in rounds if r.ratio is not None]
            if ratios:
                print(f"  ratio range over {len(ratios)} rounds: {min(ratios):.2f}x - {max(ratios):.2f}x")
            record["speed"].append({"name": rounds[0].name,
                                    "rounds": [{"ours_ms": r.ours_ms, "torch_ms": r.torch_ms, "ratio": r.ratio}
                                               for r in rounds]})
    if "memory" in chosen:
        record["memory"] = []
        for T in args.lengths:
            m = score_memory(T, **GPT_SIZE)
            record["memory"].append(m)
            mb = 1024 * 1024
            print(f"T={T:5d}: score matrix {m['score_matrix_bytes'] / mb:8.1f} MiB | forward peak "
                  f"{m['forward_peak_bytes'] / mb:8.1f} MiB | kept for backward {m['kept_after_forward_bytes'] / mb:8.1f} MiB"
                  f" | backward peak {m['backward_peak_bytes'] / mb:8.1f} MiB", flush=True)
    runs = json.loads(RESULTS.read_text())["runs"] if RESULTS.exists() else []
    atomic_write_json(RESULTS, {"runs": [*runs, record]})
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
