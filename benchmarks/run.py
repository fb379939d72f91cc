"""Run the benchmarks and record them: ``python -m benchmarks.run [name ...]``.

Prints one line per benchmark (ours vs PyTorch CPU, ratio of medians) and appends the
run to ``benchmarks/results.json``. BENCHMARKS.md holds the table of recorded ratios.
"""

from __future__ import annotations

import subprocess
import sys

from benchmarks import bench_conv, bench_lstm, bench_mlp, bench_resnet
from benchmarks.harness import machine, save

SUITES = {"mlp": bench_mlp.BENCHMARKS, "conv": bench_conv.BENCHMARKS, "resnet": bench_resnet.BENCHMARKS,
          "lstm": bench_lstm.BENCHMARKS}


def main(argv: list[str]) -> None:
    chosen = argv or list(SUITES)
    print("machine:", machine())
    results = []
    for suite in chosen:
        for bench in SUITES[suite]:
            r = bench()
            print(r.line(), flush=True)
            results.append(r)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    save(results, commit)


if __name__ == "__main__":
    main(sys.argv[1:])
