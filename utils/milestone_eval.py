"""Seed-compatible milestone runner: every milestone, built or not.

    python3 utils/milestone_eval.py --smoke   # small real runs (CI)
    python3 utils/milestone_eval.py           # the full milestone runs (long), kept in the workspace
    python3 utils/milestone_eval.py --record  # the same, recorded in the project's results/

Milestones that are not built yet are reported as such, never as passing. In a smoke run a
milestone whose dataset is absent is skipped, with the reason; a dataset that is present but
invalid (truncated, failing validation, a refused pickle) is a failure. The exit code is 0
when every built milestone reached its target or was skipped, 1 otherwise.
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
    parser.add_argument("--record", action="store_true",
                        help="append full runs to the project's results/ (default: the workspace's)")
    args = parser.parse_args(argv)
    if args.record and args.smoke:
        parser.error("smoke runs are never recorded; --record is for full runs")
    return run_all(smoke=args.smoke, data_dir=args.data_dir, seed=args.seed, record=args.record)


if __name__ == "__main__":
    sys.exit(run())
