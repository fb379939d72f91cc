"""NumPy's float32 matrix product on the shapes of ResNet-9's convolutions, per OpenBLAS kernel.

    python -m benchmarks.sgemm_shapes [--cores Haswell SkylakeX ...] [--repeats 5]

OpenBLAS picks its kernels for the CPU when it loads (``threadpoolctl`` reports the choice as
``architecture``); the environment variable ``OPENBLAS_CORETYPE`` overrides the choice. Each
kernel set is timed in a fresh process (default: the automatic choice, then every name given),
on the im2col products of Milestone 17's networks at batch 128, (B·H·W, 9·C_in) @ (9·C_in, C_out),
and on square products for the machine's ceiling. Prints GFLOP/s, the best of ``--repeats``
calls, with all of NumPy's BLAS threads. A name this OpenBLAS build lacks falls back to another
kernel set: the ``architecture`` column says which one ran.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

SHAPES = [(131072, 288, 64), (131072, 576, 64), (32768, 576, 128), (8192, 1152, 256), (2048, 2304, 256),
          (1024, 1024, 1024), (4096, 4096, 4096)]


def rates(repeats: int = 5) -> dict:
    """GFLOP/s of ``a @ b`` for every (M, K, N) of SHAPES in this process, best of ``repeats``."""
    import numpy as np
    import threadpoolctl

    from benchmarks.harness import _time

    rng = np.random.default_rng(0)
    out = {}
    for m, k, n in SHAPES:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        a @ b
        best_ms = min(_time(lambda: a @ b) for _ in range(repeats))
        out[f"{m}x{k}x{n}"] = round(2 * m * k * n / best_ms / 1e6, 1)
    blas = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    return {"architecture": blas[0].get("architecture") if blas else None, "gflops": out}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.sgemm_shapes", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cores", nargs="*", default=["Haswell", "SkylakeX"],
                    help="OPENBLAS_CORETYPE values to try after the automatic choice")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(rates(args.repeats)))
        return 0
    print("kernels asked | architecture | " + " | ".join(f"{m}x{k}x{n}" for m, k, n in SHAPES) + "  (GFLOP/s)")
    for core in [None, *args.cores]:
        env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
        if core:
            env["OPENBLAS_CORETYPE"] = core
        run = subprocess.run([sys.executable, "-m", "benchmarks.sgemm_shapes", "--child", "--repeats",
                              str(args.repeats)], env=env, capture_output=True, text=True, check=True)
        r = json.loads(run.stdout)
        print(f"{core or 'automatic'} | {r['architecture']} | " + " | ".join(f"{v:.0f}" for v in r["gflops"].values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
