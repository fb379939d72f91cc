"""Seed-compatible milestone runner: every milestone, built or not.

    python3 utils/milestone_eval.py --smoke   # small real runs (CI)
    python3 utils/milestone_eval.py           # the full milestone runs (long)

Milestones that are not built yet are reported as such, never as passing. The exit
code is 0 when every built milestone reached its target (or, in a smoke run, was
skipped for lack of data), 1 otherwise.
"""

import argparse
import sys

import _bootstrap  # noqa: F401

from dlfs.course.milestones import run_all


def run(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="small real runs instead of full ones")
    parser.add_argument("--data-dir", default=None, help="folder with the datasets")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    return run_all(smoke=args.smoke, data_dir=args.data_dir, seed=args.seed)


if __name__ == "__main__":
    sys.exit(run())
