"""Seed-compatible progress command; a thin wrapper around `dlfs status/mark/unmark`.

    python3 utils/progress.py                      # same as `dlfs status`
    python3 utils/progress.py --mark-topic 1 2 3   # same as `dlfs mark 1 2 3`
    python3 utils/progress.py --unmark-topic 2     # same as `dlfs unmark 2`
"""

import argparse

import _bootstrap  # noqa: F401

from dlfs.cli import main


def run(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mark-topic", nargs="+", metavar="N", help="mark topics complete")
    parser.add_argument("--unmark-topic", nargs="+", metavar="N", help="remove completion marks")
    parser.add_argument("--json", action="store_true", help="machine-readable status")
    args = parser.parse_args(argv)
    if args.mark_topic:
        main(["mark", *args.mark_topic])
    elif args.unmark_topic:
        main(["unmark", *args.unmark_topic])
    else:
        main(["status"] + (["--json"] if args.json else []))


if __name__ == "__main__":
    run()
