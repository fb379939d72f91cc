"""What every experiment's command line shares: where its data comes from, where its results
go, and how a missing dataset is reported.

Results go to the learner's workspace (``<workspace>/results/topic-NN/``) by default, so that a
learner's run never overwrites the project's records; ``--record`` writes the project's
``results/topic-NN/`` (as ``dlfs milestone N --record`` does), and ``--out DIR`` any folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable


def _qualified(module: str) -> str:
    """The importable name of an experiment: ``module`` itself when dotted, else
    ``dlfs.experiments.<module>``."""
    return module if "." in module else f"dlfs.experiments.{module}"


def parser(module: str, description: str, results: str, *, data: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``python -m dlfs.experiments.<module>`` (or of ``module`` when it
    is a dotted name, e.g. ``dlfs.quant.experiment``) with ``--out`` and
    ``--record``, and ``--data-dir`` when the experiment reads a dataset (``data``: the folder
    it needs, e.g. ``"tinyshakespeare/"``). ``results``: the results folder, e.g. ``"topic-20"``."""
    p = argparse.ArgumentParser(prog=f"python -m {_qualified(module)}", description=description)
    if data:
        p.add_argument("--data-dir", default=None,
                       help=f"folder holding {data} (default: $DLFS_DATA_DIR, then the cache dir)")
    p.add_argument("--out", type=Path, default=None,
                   help=f"output folder (default: <workspace>/results/{results}; with --record, the "
                        f"project's results/{results})")
    p.add_argument("--record", action="store_true",
                   help=f"(maintainers) write the project's results/{results} instead of your workspace's")
    p.set_defaults(results=results)
    return p


class RunInfo:
    """Where a recorded result came from. Made when the run starts (the commit, the load
    average, the clock); :meth:`fields` at the end gives the record's ``date``, ``command``,
    ``commit``, ``machine``, ``load_average_1_5_15min`` (start and end) and ``wall_time_s``.

    ``module``: as for :func:`parser`; ``argv``: the arguments the run was given (None: the
    process's own)."""

    def __init__(self, module: str, argv: list[str] | None = None):
        from dlfs.course.milestones import git_commit

        args = sys.argv[1:] if argv is None else list(argv)
        self.command = " ".join(["python -m", _qualified(module), *args])
        self.commit = git_commit()
        self.load_start = os.getloadavg()
        self.t_start = time.perf_counter()

    def fields(self, **machine_notes) -> dict:
        """The provenance fields of the record; ``machine_notes`` are added to ``machine``
        (e.g. ``note="2 CPU cores shared with other jobs"``, ``blas_threads=1``)."""
        from dlfs.course.milestones import machine_info

        return {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "command": self.command,
                "commit": self.commit,
                "machine": {**machine_info(), **machine_notes},
                "load_average_1_5_15min": {"start": [round(x, 2) for x in self.load_start],
                                           "end": [round(x, 2) for x in os.getloadavg()]},
                "wall_time_s": round(time.perf_counter() - self.t_start, 1)}


def output_dir(args: argparse.Namespace) -> Path:
    """The folder this run writes to (created): ``--out``, else the workspace's or, with
    ``--record``, the project's ``results/<results>``."""
    from dlfs.course.milestones import output_root

    out = Path(args.out) if args.out is not None else output_root(args.record) / "results" / args.results
    out.mkdir(parents=True, exist_ok=True)
    return out


def report_data_errors(run: Callable[[], object]) -> int:
    """Call ``run``; a DataError (a missing or invalid dataset) becomes one clear message on
    stderr and its exit code instead of a traceback. Returns the exit code."""
    from dlfs.errors import DataError

    try:
        run()
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0
