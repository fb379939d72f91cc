"""Milestone harness: ``dlfs milestone N`` for milestones 10, 17, 24, 30, 34 (and named entries).

The runner contract
    A runner module (named by ``Milestone.runner`` in the registry, ``"module:function"``, or
    by :data:`EXTRA_ENTRIES`) exposes ``SPEC``, a :class:`MilestoneSpec` declaring its presets,
    its smoke and full targets, its dataset and whether it resumes, and the function
    ``run(options: RunOptions) -> Measurement``. :func:`plan` checks a request against the spec
    before anything runs (unknown preset, ``--resume`` without a checkpoint, ...);
    :func:`execute` runs one seed and judges the measurement against the target that applies
    (the smoke target for smoke runs, the preset's target otherwise).

Where output goes
    A run writes into the learner's workspace: the record is appended to
    ``<workspace>/results/milestone-NN.json``, plots go beside it in ``milestone-NN/<preset>/``
    and checkpoints to ``<workspace>/checkpoints/``. Only ``record=True`` (``--record``) writes
    the project's ``results/`` and ``checkpoints/`` instead. Smoke runs write no record and no
    plots.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlfs.course.registry import REPO_ROOT, get_milestone
from dlfs.errors import DataError, NotBuiltError, UsageError
from dlfs.io import atomic_write_json

PROJECT_ROOT = REPO_ROOT        # holds the project's records: results/ and checkpoints/
SMOKE = "smoke"                 # RunOptions.preset of a smoke run
DEFAULT = "default"             # the preset name of a runner with a single configuration

# Entries of `dlfs milestone` that are not a registry milestone: name -> runner.
EXTRA_ENTRIES = {"mnist-cnn": "dlfs.milestones.mnist_cnn:run"}


# -- the contract -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """What a run must reach: ``metric`` at least (or at most) ``value``, optionally within
    ``max_seconds`` of wall time."""

    metric: str                       # e.g. "test_accuracy"
    value: float
    higher_is_better: bool = True
    max_seconds: float | None = None
    percent: bool = True              # show values as percentages

    def show(self, value: float, digits: int = 2) -> str:
        return f"{value:.{digits}%}" if self.percent else f"{value:.{digits + 2}g}"

    def short(self) -> str:
        """E.g. ``≥ 98.0% in ≤ 60 s``."""
        text = f"{'≥' if self.higher_is_better else '≤'} {self.show(self.value, 1)}"
        return text + (f" in ≤ {self.max_seconds:g} s" if self.max_seconds is not None else "")

    def describe(self) -> str:
        """E.g. ``test accuracy ≥ 98.0% in ≤ 60 s``."""
        return f"{self.metric.replace('_', ' ')} {self.short()}"

    def value_met(self, value: float) -> bool:
        return value >= self.value if self.higher_is_better else value <= self.value

    def met(self, value: float, wall_time_s: float) -> bool:
        return self.value_met(value) and (self.max_seconds is None or wall_time_s <= self.max_seconds)


@dataclass(frozen=True)
class PresetInfo:
    """A named configuration: one line saying what it trains, and its target when it differs
    from the spec's ``full_target``."""

    description: str
    target: Target | None = None


@dataclass(frozen=True)
class MilestoneSpec:
    """What a runner accepts. ``milestone``: the registry milestone whose record file
    (``milestone-NN.json``) holds its runs. ``aliases``: preset names that stand for another
    entry of ``dlfs milestone`` (preset -> entry key)."""

    milestone: int
    title: str                                # one line: what is trained on what
    dataset: str                              # the dlfs.data dataset the runner reads
    presets: Mapping[str, PresetInfo]
    default_preset: str
    full_target: Target
    smoke_description: str
    smoke_target: Target
    resumable: bool = False
    aliases: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.default_preset not in self.presets:
            raise ValueError(f"default preset {self.default_preset!r} is not one of {list(self.presets)}")
        if SMOKE in self.presets or set(self.aliases) & set(self.presets):
            raise ValueError(f"preset names must differ from {SMOKE!r} and from the aliases")

    def target(self, preset: str) -> Target:
        """The target applied to a run of ``preset`` (:data:`SMOKE` for a smoke run)."""
        if preset == SMOKE:
            return self.smoke_target
        return self.presets[preset].target or self.full_target

    def preset_lines(self) -> list[str]:
        """One line per preset (and the smoke run): name, target, description."""
        several = len(self.presets) > 1
        rows = [(name + (" (default)" if several and name == self.default_preset else ""),
                 self.target(name).short(), info.description) for name, info in self.presets.items()]
        rows += [(name, "", f"the same as `dlfs milestone {key}`") for name, key in self.aliases.items()]
        rows.append(("--smoke", self.smoke_target.short(), self.smoke_description))
        w0, w1 = (max(len(r[i]) for r in rows) for i in (0, 1))
        return [f"  {a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows]


@dataclass(frozen=True)
class RunOptions:
    """One run, as the harness hands it to a runner (already checked against its spec)."""

    preset: str                           # a key of SPEC.presets, or SMOKE
    seed: int = 0
    data_dir: str | None = None           # None: $DLFS_DATA_DIR, then the cache
    checkpoint: Path | None = None        # per-epoch checkpoint file; None: keep none
    resume: bool = False                  # continue from ``checkpoint`` (which then exists)
    output_dir: Path | None = None        # where plots go; None: write none
    progress: bool = True                 # progress bars
    log: Callable[[str], None] = print

    @property
    def smoke(self) -> bool:
        return self.preset == SMOKE


@dataclass
class Measurement:
    """What a runner returns: the measured value of its spec's metric, details for the record
    (JSON-serialisable) and the files it wrote."""

    value: float
    details: dict = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)
    # a resumed run: the seconds the earlier runs spent on the epochs its checkpoint holds, which
    # the harness adds to this run's own wall time (a time bound applies to the whole training)
    earlier_wall_time_s: float = 0.0


@dataclass
class MilestoneResult:
    """A measurement judged against the target that was applied."""

    target: Target
    value: float
    wall_time_s: float
    details: dict = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)

    @property
    def metric(self) -> str:
        return self.target.metric

    @property
    def passed(self) -> bool:
        return self.target.met(self.value, self.wall_time_s)

    def verdict(self) -> str:
        """E.g. ``test accuracy = 98.55% (target ≥ 98.0% in ≤ 60 s) in 47.1 s``, plus the reason
        when a time bound was missed."""
        text = (f"{self.metric.replace('_', ' ')} = {self.target.show(self.value)} "
                f"(target {self.target.short()}) in {self.wall_time_s:.1f} s")
        if self.target.value_met(self.value) and not self.passed:
            text += f", over the {self.target.max_seconds:g} s bound"
        return text


Runner = Callable[[RunOptions], Measurement]


# -- entries ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    key: str             # what `dlfs milestone KEY` takes: "10", "17", "mnist-cnn"
    label: str           # "Milestone 10 · First Neural Network"
    spec: MilestoneSpec
    runner: Runner


def entry_keys() -> list[str]:
    from dlfs.course.registry import MILESTONES

    return [str(n) for n in MILESTONES] + list(EXTRA_ENTRIES)


def resolve(key: int | str) -> Entry:
    """The runner behind ``dlfs milestone KEY``; UsageError for an unknown key, NotBuiltError
    for a milestone that is not built yet."""
    key = str(key).strip()
    if key in EXTRA_ENTRIES:
        spec, runner = _load(EXTRA_ENTRIES[key])
        return Entry(key, f"{key} (with Milestone {spec.milestone})", spec, runner)
    try:
        milestone = get_milestone(key)
    except UsageError as exc:
        raise UsageError(f"{exc} Other entries: {', '.join(EXTRA_ENTRIES)}.") from None
    if not milestone.built:
        raise NotBuiltError(
            f"Milestone {milestone.topic} ({milestone.name}: {milestone.target}) is not built yet.")
    spec, runner = _load(milestone.runner)
    return Entry(str(milestone.topic), f"Milestone {milestone.topic} · {milestone.name}", spec, runner)


def _load(target: str) -> tuple[MilestoneSpec, Runner]:
    module_name, func = target.split(":")
    module = importlib.import_module(module_name)
    return module.SPEC, getattr(module, func)


# -- the learner's code -------------------------------------------------------------------------

@dataclass(frozen=True)
class TopicSource:
    """Whose code a run uses for one topic: the learner's ``files`` (module -> path) when
    ``reason`` is empty, else the reference, for that reason."""

    topic: int
    files: Mapping[str, Path]
    reason: str = ""

    @property
    def used(self) -> bool:
        return not self.reason


def learner_sources(milestone: int, completed: list[int], failing: Collection[int] = ()
                    ) -> tuple[TopicSource, ...]:
    """For each built topic up to ``milestone`` that has code: the learner's files if the
    topic is completed, its last check did not fail (``failing``) and its files exist and
    compile, else why the reference is used."""
    from dlfs.course.registry import built_topics
    from dlfs.course.workspace import learner_files

    sources = []
    for topic in built_topics():
        if topic.number <= milestone and topic.modules:
            files = learner_files(topic)
            if topic.number not in completed:
                reason = "not completed"
            elif topic.number in failing:
                reason = f"was complete, now failing its checks: `dlfs check {topic.number}`"
            else:
                reason = _unusable(files)
            sources.append(TopicSource(topic.number, files, reason))
    return tuple(sources)


def _unusable(files: Mapping[str, Path]) -> str:
    """Why the learner's files cannot be used ("" when they can)."""
    from dlfs.course.workspace import check_syntax
    from dlfs.errors import DlfsError

    for path in files.values():
        if not path.exists():
            return f"{path} is missing"
        try:
            check_syntax(path)
        except DlfsError as exc:
            return str(exc).splitlines()[0]
    return ""


def describe_sources(sources: tuple[TopicSource, ...]) -> list[str]:
    used = [f"{s.topic:02d}" for s in sources if s.used]
    lines = [f"your code:      {'topics ' + ', '.join(used) if used else 'none'}"]
    lines += [f"reference code: topic {s.topic:02d} ({s.reason})" for s in sources if not s.used]
    return lines


# -- planning and running -------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """A checked request: one RunOptions per seed, the target applied, where records go."""

    entry: Entry
    target: Target
    runs: tuple[RunOptions, ...]
    records_file: Path | None             # None: smoke runs are not recorded
    learner: tuple[TopicSource, ...] | None = None
    notes: tuple[str, ...] = ()

    @property
    def spec(self) -> MilestoneSpec:
        return self.entry.spec

    @property
    def preset(self) -> str:
        return self.runs[0].preset

    def header(self) -> str:
        what = ("smoke run: " + self.spec.smoke_description if self.preset == SMOKE
                else f"preset {self.preset}: {self.spec.presets[self.preset].description}")
        return f"{self.entry.label} — {what}\ntarget: {self.target.describe()}"


def output_root(record: bool) -> Path:
    """Where records, plots and checkpoints go: the project's folders with ``record``, else the
    learner's workspace."""
    from dlfs.course.workspace import workspace_dir

    return PROJECT_ROOT if record else workspace_dir()


def plan(key: int | str, *, smoke: bool = False, preset: str | None = None,
         seeds: tuple[int, ...] = (0,), data_dir: str | None = None, resume: bool = False,
         record: bool = False, learner_topics: list[int] | None = None,
         failing_topics: Collection[int] = (), progress: bool = True,
         log: Callable[[str], None] = print) -> Plan:
    """Check a request against the entry's spec and return its plan; raises UsageError (naming
    the valid choices) before anything runs."""
    entry = resolve(key)
    notes = []
    if preset in entry.spec.aliases:
        alias, preset = preset, None
        entry = resolve(entry.spec.aliases[alias])
        notes.append(f"note: preset {alias} is its own entry, `dlfs milestone {entry.key}`")
    spec = entry.spec
    if preset is not None and preset not in spec.presets:
        raise UsageError(f"{entry.label} has no preset {preset!r}. Its presets:\n"
                         + "\n".join(spec.preset_lines()))
    if smoke and preset is not None:
        raise UsageError(f"--smoke runs its own small configuration ({spec.smoke_description}); "
                         "leave out --preset.")
    if record and smoke:
        raise UsageError("Smoke runs are never recorded; --record is for full runs.")
    if record and learner_topics is not None:
        raise UsageError("--record writes the project's records, which are measured with the "
                         "reference code; a --learner run is kept in your workspace.")
    if resume and not spec.resumable:
        raise UsageError(f"{entry.label} keeps no checkpoints, so there is nothing to --resume.")
    if resume and smoke:
        raise UsageError("Smoke runs keep no checkpoints, so there is nothing to --resume.")
    name = SMOKE if smoke else (preset or spec.default_preset)
    root = output_root(record)
    runs = []
    for seed in seeds:
        ckpt = None
        if spec.resumable and not smoke:
            ckpt = root / "checkpoints" / f"milestone-{spec.milestone:02d}-{name}-seed{seed}.npz"
            if resume and not ckpt.exists():
                raise UsageError(_no_checkpoint(ckpt, record))
            if ckpt.exists() and not resume:
                notes.append(f"note: starting afresh; {ckpt} will be overwritten "
                             "(use --resume to continue it)")
        out = None if smoke else root / "results" / f"milestone-{spec.milestone:02d}" / (
            "" if name == DEFAULT else name)
        runs.append(RunOptions(name, seed, data_dir, ckpt, resume, out, progress, log))
    return Plan(entry, spec.target(name), tuple(runs),
                None if smoke else root / "results" / f"milestone-{spec.milestone:02d}.json",
                None if learner_topics is None else learner_sources(spec.milestone, learner_topics,
                                                                   failing_topics),
                tuple(notes))


def _no_checkpoint(path: Path, record: bool) -> str:
    other = output_root(not record) / "checkpoints" / path.name
    hint = ""
    if other.exists():
        hint = (f" There is one at {other}: " + ("leave out --record to continue your own run."
                                                  if record else "add --record to continue the project's run."))
    return f"--resume: no checkpoint at {path}.{hint} Leave out --resume to start afresh."


def execute(plan: Plan, options: RunOptions) -> tuple[MilestoneResult, dict]:
    """Run one seed of ``plan``; append its record unless it is a smoke run. Returns (result,
    record)."""
    from dlfs.course import redirect

    entry = plan.entry
    used = [s for s in plan.learner or () if s.used]
    finder = redirect.install({m: str(p) for s in used for m, p in s.files.items()})
    commit = git_commit()                 # the code as it was when the run started
    start = time.perf_counter()
    try:
        measurement = entry.runner(options)
    finally:
        redirect.uninstall(finder)
    wall = time.perf_counter() - start
    details = dict(measurement.details)
    if measurement.earlier_wall_time_s:
        details["wall_time_this_run_s"] = round(wall, 2)
        details["wall_time_before_resume_s"] = round(measurement.earlier_wall_time_s, 2)
        wall += measurement.earlier_wall_time_s
    if plan.learner is not None:
        details["learner_topics"] = [s.topic for s in used]
    result = MilestoneResult(plan.target, float(measurement.value), wall, details,
                             list(measurement.artifacts))
    rec = {
        "milestone": entry.spec.milestone,
        "name": get_milestone(entry.spec.milestone).name,
        "preset": options.preset,
        "smoke": options.smoke,
        "metric": result.metric,
        "value": result.value,
        "target": plan.target.value,
        **({"target_wall_time_s": plan.target.max_seconds} if plan.target.max_seconds else {}),
        "passed": result.passed,
        "higher_is_better": plan.target.higher_is_better,
        "wall_time_s": round(wall, 2),
        "seed": options.seed,
        "commit": commit,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(),
        "details": details,
        "artifacts": [_relative(a) for a in result.artifacts],
    }
    if plan.records_file is not None:
        append_record(plan.records_file, rec)
    return result, rec


def run(key: int | str, *, seed: int = 0, **request) -> tuple[MilestoneResult, dict]:
    """Plan and run one seed of ``dlfs milestone KEY`` (``request``: the keywords of
    :func:`plan`). Returns (result, record)."""
    p = plan(key, seeds=(seed,), **request)
    return execute(p, p.runs[0])


def dataset_present(name: str, data_dir: str | None) -> bool:
    """Whether any file of dataset ``name`` is in the data dir (a present but invalid copy counts:
    it is a failure, not a skip)."""
    from dlfs.data.paths import resolve_data_dir
    from dlfs.data.store import locate

    return locate(name, resolve_data_dir(data_dir)) is not None


def run_all(*, smoke: bool, data_dir: str | None = None, seed: int = 0, record: bool = False,
            echo=print) -> int:
    """Run every registry milestone; print one line each. Returns an exit code: 0 when no built
    one failed. In a smoke run a milestone whose dataset is absent is skipped with the reason;
    a dataset that is present but invalid or refused is a failure."""
    from dlfs.course.registry import MILESTONES

    failed = 0
    for number, milestone in MILESTONES.items():
        label = f"M{number:<3} {milestone.name:<22}"
        if not milestone.built:
            echo(f"{label} not built yet")
            continue
        try:
            result, _ = run(number, smoke=smoke, data_dir=data_dir, seed=seed, record=record,
                            progress=False, log=lambda s: None)
        except DataError as exc:
            if smoke and not dataset_present(resolve(number).spec.dataset, data_dir):
                echo(f"{label} SKIPPED (no data): {exc}")
                continue
            echo(f"{label} FAILED: {exc}")
            failed += 1
            continue
        echo(f"{label} {result.verdict()}: {'passed' if result.passed else 'BELOW TARGET'}")
        failed += not result.passed
    return 1 if failed else 0


# -- records ------------------------------------------------------------------------------------

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


def append_record(path: Path, rec: dict) -> Path:
    """Append ``rec`` to the record file ``path`` (``{"summary": ..., "runs": [...]}``) and
    recompute one summary per preset; written atomically. An unreadable file is moved aside."""
    runs = []
    if path.exists():
        try:
            runs = json.loads(path.read_text())["runs"]
        except (ValueError, KeyError, TypeError):
            path.replace(path.with_suffix(f".json.corrupt-{time.strftime('%Y%m%d-%H%M%S')}"))
    runs.append(rec)
    presets = dict.fromkeys(r.get("preset") or DEFAULT for r in runs if not r.get("smoke"))
    summary = {name: summarize([r for r in runs if (r.get("preset") or DEFAULT) == name])
               for name in presets}
    atomic_write_json(path, {"summary": summary, "runs": runs})
    return path


def summarize(runs: list[dict]) -> dict:
    """Median over seeds of the newest configuration: the last run of each seed that shares
    the newest run's commit and preset (so an old or smaller run never mixes in).
    ``append_record`` stores one summary per preset. A wall-time bound, when the newest run has
    one, applies to the median wall time."""
    newest = runs[-1]
    same = [r for r in runs if r.get("commit") == newest.get("commit")
            and r.get("preset") == newest.get("preset") and not r.get("smoke")]
    by_seed = {r["seed"]: r for r in same}
    chosen = [by_seed[s] for s in sorted(by_seed)]
    values = [r["value"] for r in chosen]
    median, median_wall = statistics.median(values), statistics.median(r["wall_time_s"] for r in chosen)
    target = Target(newest["metric"], newest["target"], newest.get("higher_is_better", True),
                    newest.get("target_wall_time_s"))
    return {
        "metric": newest["metric"],
        "target": newest["target"],
        "preset": newest.get("preset"),
        "commit": newest.get("commit"),
        "seeds": sorted(by_seed),
        "values": values,
        "median": median,
        "median_wall_time_s": median_wall,
        "max_wall_time_s": max(r["wall_time_s"] for r in chosen),
        "passed": bool(target.met(median, median_wall)),
    }


def _relative(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)

