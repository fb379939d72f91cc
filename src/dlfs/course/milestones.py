"""Milestone harness: ``dlfs milestone N [--smoke]`` for milestones 10, 17, 24, 30, 34.

A milestone's runner (``Milestone.runner`` in the registry, ``"module:function"``)
trains the real model on the real dataset and returns a :class:`MilestoneResult`.
Full runs append a record (metric, target, wall time, machine, commit, seed) to
``results/milestone-NN.json`` in the repository; smoke runs are small real runs
whose results are only printed.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlfs.course.registry import REPO_ROOT, Milestone, get_milestone
from dlfs.errors import NotBuiltError
from dlfs.io import atomic_write_json

RESULTS_DIR = REPO_ROOT / "results"


@dataclass
class MilestoneResult:
    metric: str                 # e.g. "test_accuracy"
    value: float
    target: float
    higher_is_better: bool = True
    details: dict = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)   # plots, checkpoints

    @property
    def passed(self) -> bool:
        return self.value >= self.target if self.higher_is_better else self.value <= self.target


def machine_info() -> dict:
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
    }


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        # recorded results and plots do not make the code "dirty"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)results", ":(exclude)benchmarks/results.json"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (sha or "unknown") + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def load_runner(milestone: Milestone):
    if not milestone.built:
        raise NotBuiltError(
            f"Milestone {milestone.topic} ({milestone.name}: {milestone.target}) is not built yet."
        )
    module_name, func = milestone.runner.split(":")
    return getattr(importlib.import_module(module_name), func)


def run(number: int, *, smoke: bool = False, data_dir: str | None = None, seed: int = 0,
        record: bool = True, **options) -> tuple[MilestoneResult, dict]:
    """Run milestone ``number`` and return (result, record)."""
    milestone = get_milestone(number)
    learner_topics = options.pop("learner_topics", None)
    used = use_learner_code(learner_topics) if learner_topics is not None else []
    runner = load_runner(milestone)
    commit = git_commit()                 # the code as it was when the run started
    start = time.perf_counter()
    result: MilestoneResult = runner(smoke=smoke, data_dir=data_dir, seed=seed, **options)
    wall = time.perf_counter() - start
    if learner_topics is not None:
        result.details["learner_topics"] = used
    rec = {
        "milestone": milestone.topic,
        "name": milestone.name,
        "smoke": smoke,
        "metric": result.metric,
        "value": result.value,
        "target": result.target,
        "passed": result.passed,
        "higher_is_better": result.higher_is_better,
        "wall_time_s": round(wall, 2),
        "seed": seed,
        "commit": commit,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(),
        "details": result.details,
        "artifacts": [_relative(a) for a in result.artifacts],
    }
    preset = options.get("preset") or result.details.get("preset")
    if preset:
        rec["preset"] = preset
    if record and not smoke:
        append_record(milestone.topic, rec)
    return result, rec


def use_learner_code(topics: list[int]) -> list[int]:
    """Serve the learner's files for the given completed topics in place of the reference.

    Topics whose files are missing or do not compile keep the reference (and are left
    out of the returned list, which the record stores).
    """
    from dlfs.course import redirect
    from dlfs.course.registry import get_topic
    from dlfs.course.workspace import check_syntax, learner_files
    from dlfs.errors import DlfsError

    mapping, used = {}, []
    for number in topics:
        files = learner_files(get_topic(number, require_built=False))
        try:
            for path in files.values():
                if not path.exists():
                    raise DlfsError(f"{path} is missing")
                check_syntax(path)
        except DlfsError:
            continue
        mapping.update({m: str(p) for m, p in files.items()})
        used.append(number)
    redirect.install(mapping)
    return used


def append_record(number: int, rec: dict) -> Path:
    path = RESULTS_DIR / f"milestone-{number:02d}.json"
    runs = []
    if path.exists():
        try:
            runs = json.loads(path.read_text())["runs"]
        except (ValueError, KeyError, TypeError):
            path.replace(path.with_suffix(f".json.corrupt-{time.strftime('%Y%m%d-%H%M%S')}"))
    runs.append(rec)
    presets = dict.fromkeys(r.get("preset") or "default" for r in runs if not r.get("smoke"))
    summary = {name: summarize([r for r in runs if (r.get("preset") or "default") == name])
               for name in presets}
    atomic_write_json(path, {"summary": summary, "runs": runs})
    return path


def summarize(runs: list[dict]) -> dict:
    """Median over seeds of the newest configuration: the last run of each seed that shares
    the newest run's commit and preset (so an old or smaller run never mixes in).
    ``append_record`` stores one summary per preset."""
    newest = runs[-1]
    same = [r for r in runs if r.get("commit") == newest.get("commit")
            and r.get("preset") == newest.get("preset") and not r.get("smoke")]
    by_seed = {r["seed"]: r for r in same}
    chosen = [by_seed[s] for s in sorted(by_seed)]
    values = [r["value"] for r in chosen]
    return {
        "metric": newest["metric"],
        "target": newest["target"],
        "preset": newest.get("preset"),
        "commit": newest.get("commit"),
        "seeds": sorted(by_seed),
        "values": values,
        "median": statistics.median(values),
        "median_wall_time_s": statistics.median(r["wall_time_s"] for r in chosen),
        "max_wall_time_s": max(r["wall_time_s"] for r in chosen),
        "passed": bool(statistics.median(values) >= newest["target"]
                       if newest.get("higher_is_better", True) else statistics.median(values) <= newest["target"]),
    }


def _relative(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)




def run_all(*, smoke: bool, data_dir: str | None = None, seed: int = 0, echo=print) -> int:
    """Run every milestone; print one line each. Returns an exit code (0 = no built one failed)."""
    from dlfs.course.registry import MILESTONES
    from dlfs.errors import DataError

    failed = 0
    for number, milestone in MILESTONES.items():
        label = f"M{number:<3} {milestone.name:<22}"
        if not milestone.built:
            echo(f"{label} not built yet")
            continue
        try:
            result, rec = run(number, smoke=smoke, data_dir=data_dir, seed=seed)
        except DataError as exc:
            if smoke:
                echo(f"{label} SKIPPED (no data): {exc}")
                continue
            echo(f"{label} FAILED: {exc}")
            failed += 1
            continue
        verdict = "passed" if result.passed else "BELOW TARGET"
        echo(f"{label} {result.metric} = {result.value:.4f} (target {result.target}) "
             f"in {rec['wall_time_s']:.1f} s: {verdict}")
        failed += not result.passed
    return 1 if failed else 0
