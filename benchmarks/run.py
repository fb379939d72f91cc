"""Run the benchmarks and record them: ``python -m benchmarks.run [name ...]``.

Prints one line per benchmark (ours vs PyTorch CPU, ratio of medians; word2vec against
gensim) and appends the run to ``benchmarks/results.json``. BENCHMARKS.md holds the table of
recorded ratios.
"""

from __future__ import annotations

import subprocess
import sys

from benchmarks import bench_allreduce, bench_conv, bench_flash, bench_lstm, bench_mlp, bench_resnet, bench_word2vec
from benchmarks import bench_gpt, bench_kv_cache
from benchmarks.harness import machine, save

SUITES = {"mlp": bench_mlp.BENCHMARKS, "conv": bench_conv.BENCHMARKS, "resnet": bench_resnet.BENCHMARKS,
          "lstm": bench_lstm.BENCHMARKS, "word2vec": bench_word2vec.BENCHMARKS,
          "allreduce": bench_allreduce.BENCHMARKS, "flash": bench_flash.BENCHMARKS,
          "kv_cache": bench_kv_cache.BENCHMARKS, "gpt": bench_gpt.BENCHMARKS}


def parse_args(argv: list[str]):
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Time our training steps and kernels against PyTorch CPU (and word2vec against "
                    "gensim) in the same process, print the ratios and append them to "
                    "benchmarks/results.json.")
    parser.add_argument("suites", nargs="*", metavar="SUITE",
                        help=f"suites to run (default: all): {', '.join(SUITES)}")
    args = parser.parse_args(argv)
    unknown = [s for s in args.suites if s not in SUITES]
    if unknown:
        parser.error(f"unknown suite {', '.join(map(repr, unknown))}; choose from {', '.join(SUITES)}")
    return args


def main(argv: list[str]) -> None:
    chosen = parse_args(argv).suites or list(SUITES)
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
