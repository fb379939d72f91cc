"""Topic 38 — the numbers the lesson quotes about discretisation and the scan, measured with the
topic's own functions (``dlfs.ssm.discretize``, ``dlfs.ssm.scan``, ``dlfs.ssm.mamba``).

1. Discretisation: Mamba's simplified B̄ = ΔB against zero-order hold's
   B̄ = expm1(ΔA)/(ΔA)·ΔB, one state with A = −1, B = 1, at several steps Δ: how far above
   ZOH the simplified value is (relative), and how the absolute gap shrinks when Δ halves.
2. Scan agreement: ``parallel_linear_recurrence`` (Hillis–Steele) against
   ``linear_recurrence`` (the loop) in float64, a ~ U[0.5, 1], b ~ N(0, 1), shape
   (4, L, 16, 8): the largest absolute difference of the states, and the largest state.
3. Scan speed: a ``MambaBlock`` forward + backward on x: (Bt, L, M) (float32, as the block
   trains) with the parallel scan and with the loop, for several state sizes N. One thread
   (threadpoolctl), CPU time of the process (``time.process_time``), the median of
   ``--repeats`` runs after one warm-up run: the other jobs on a shared machine slow the wall
   clock but add little to this process's CPU time.

    python -m dlfs.experiments.ssm_numerics [--repeats 11] [--out DIR | --record]

Writes ``ssm_numerics.json`` in the output folder and prints the figures.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from dlfs.experiments import common

DELTAS = (0.01, 0.1, 0.5)
SCAN_LENGTHS = (64, 1024)
STATE_SIZES = (16, 8)


def discretisation_gap(deltas=DELTAS, A: float = -1.0, B: float = 1.0) -> list[dict]:
    """For each Δ: ZOH's B̄, the simplified ΔB, their relative gap (simplified/ZOH − 1), and the
    ratio of the absolute gap at Δ to the gap at Δ/2 (4 for an O(Δ²) error)."""
    from dlfs.ssm.discretize import discretize_simplified, discretize_zoh

    A_ = np.array([[A]])                                          # (D=1, N=1)
    B_ = np.array([B])                                            # (N=1,)

    def gap(delta: float) -> tuple[float, float]:
        _, zoh = discretize_zoh(np.array([delta]), A_, B_)
        _, simple = discretize_simplified(np.array([delta]), A_, B_)
        return float(zoh[0, 0]), float(simple[0, 0])

    rows = []
    for delta in deltas:
        zoh, simple = gap(delta)
        zoh_half, simple_half = gap(delta / 2)
        rows.append({"delta": delta, "zoh_B_bar": zoh, "simplified_B_bar": simple,
                     "relative_gap": simple / zoh - 1.0,
                     "gap_ratio_when_delta_halves": (simple - zoh) / (simple_half - zoh_half)})
    return rows


def scan_agreement(lengths=SCAN_LENGTHS, seed: int = 0) -> list[dict]:
    """Parallel scan against the loop in float64 on (4, L, 16, 8): largest |difference| and |h|."""
    from dlfs.ssm.scan import linear_recurrence, parallel_linear_recurrence

    rng = np.random.default_rng(seed)
    rows = []
    for L in lengths:
        a = rng.uniform(0.5, 1.0, (4, L, 16, 8))
        b = rng.standard_normal((4, L, 16, 8))
        loop = linear_recurrence(a, b)
        par = parallel_linear_recurrence(a, b)
        rows.append({"L": L, "shape": [4, L, 16, 8], "max_abs_difference": float(np.max(np.abs(par - loop))),
                     "max_abs_state": float(np.max(np.abs(loop)))})
    return rows


def block_seconds(shape: tuple[int, int, int], d_state: int, parallel: bool, repeats: int,
                  seed: int = 0) -> tuple[list[float], list[float]]:
    """``(cpu, wall)``: the CPU and wall-clock seconds of ``repeats`` MambaBlock forward + backward
    passes on x: shape (Bt, L, M), after one warm-up pass."""
    from dlfs.ssm.mamba import MambaBlock

    rng = np.random.default_rng(seed)
    block = MambaBlock(shape[2], d_state=d_state, parallel=parallel, rng=rng)
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    cpu, wall = [], []
    for i in range(repeats + 1):
        c0, w0 = time.process_time(), time.perf_counter()
        block.forward(x)
        block.backward(dy)
        if i:
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
        block.zero_grad()
    return cpu, wall


def scan_timing(shape: tuple[int, int, int], state_sizes=STATE_SIZES, repeats: int = 7) -> list[dict]:
    """For each N: the median CPU (and wall-clock) seconds with the parallel scan and with the loop,
    one thread."""
    from threadpoolctl import threadpool_limits

    rows = []
    with threadpool_limits(1):
        for n in state_sizes:
            par, par_wall = block_seconds(shape, n, True, repeats)
            loop, loop_wall = block_seconds(shape, n, False, repeats)
            rows.append({"d_state": n, "parallel_cpu_s_median": float(np.median(par)),
                         "loop_cpu_s_median": float(np.median(loop)),
                         "parallel_over_loop": float(np.median(par) / np.median(loop)),
                         "parallel_wall_s_median": float(np.median(par_wall)),
                         "loop_wall_s_median": float(np.median(loop_wall)),
                         "parallel_cpu_s": [round(t, 4) for t in par], "loop_cpu_s": [round(t, 4) for t in loop]})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = common.parser("ssm_numerics", __doc__.split("\n\n")[0], "topic-38")
    p.add_argument("--repeats", type=int, default=11, help="timed runs per configuration (median reported)")
    p.add_argument("--shape", default="32,68,32", help="the Mamba block's input (Bt, L, M) for the timings")
    args = p.parse_args(argv)
    shape = tuple(int(s) for s in args.shape.split(","))
    if len(shape) != 3 or min(shape) < 1 or args.repeats < 1:
        p.error(f"--shape needs three positive sizes Bt,L,M and --repeats ≥ 1, got {args.shape!r}, {args.repeats}")
    from dlfs.io import atomic_write_json

    out = common.output_dir(args)
    info = common.RunInfo("ssm_numerics", argv)
    gaps = discretisation_gap()
    agreement = scan_agreement()
    timing = scan_timing(shape, repeats=args.repeats)
    result = {
        "discretisation": {"what": "one state, A = -1, B = 1: ZOH B̄ = expm1(ΔA)/(ΔA)·ΔB against the "
                                   "simplified B̄ = ΔB; relative_gap = simplified/ZOH - 1; "
                                   "gap_ratio_when_delta_halves = (simplified - ZOH) at Δ over the same at Δ/2",
                           "rows": gaps},
        "scan_agreement": {"what": "parallel_linear_recurrence against linear_recurrence, float64, "
                                   "a ~ U[0.5, 1], b ~ N(0, 1), h0 = 0, seed 0",
                           "rows": agreement},
        "scan_timing": {"what": "MambaBlock (selective, float32) forward + backward on x: (Bt, L, M) = "
                                f"{shape}, parallel scan (Hillis–Steele) against the loop over time",
                        "shape": list(shape), "repeats": args.repeats,
                        "method": "one thread (threadpoolctl.threadpool_limits(1)); CPU time of the process "
                                  "(time.process_time), median of the repeats after one warm-up run, so that "
                                  "other jobs on the shared machine do not inflate it; the wall-clock medians "
                                  "are recorded beside it for comparison",
                        "rows": timing},
        **info.fields(note="2 CPU cores shared with other jobs"),
    }
    atomic_write_json(out / "ssm_numerics.json", result)

    print("discretisation, A = -1, B = 1:")
    print(f"  {'Δ':>6} {'ZOH B̄':>9} {'ΔB':>7} {'ΔB above ZOH':>13} {'gap ratio Δ/(Δ/2)':>18}")
    for r in gaps:
        print(f"  {r['delta']:>6} {r['zoh_B_bar']:>9.5f} {r['simplified_B_bar']:>7.3f} "
              f"{r['relative_gap']:>12.2%} {r['gap_ratio_when_delta_halves']:>18.3f}")
    print("parallel scan vs loop, float64:")
    for r in agreement:
        print(f"  L = {r['L']:>5}: max |difference| {r['max_abs_difference']:.1e}, max |h| {r['max_abs_state']:.2f}")
    print(f"MambaBlock forward + backward on {shape}, one thread, median CPU s of {args.repeats}:")
    for r in timing:
        print(f"  N = {r['d_state']:>2}: parallel {r['parallel_cpu_s_median']:.3f} s, loop "
              f"{r['loop_cpu_s_median']:.3f} s ({r['parallel_over_loop']:.1f}x)")
    la = result["load_average_1_5_15min"]
    print(f"load average {la['start'][0]} -> {la['end'][0]}, {result['wall_time_s']} s; wrote {out / 'ssm_numerics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
