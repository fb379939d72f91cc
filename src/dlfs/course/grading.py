"""Run a topic's tests against the reference, the learner's files or generated stubs.

Tests run in a fresh ``python -m pytest`` process, so state never leaks between runs and a
run that hangs or dies can be stopped and explained. The pytest plugin
``dlfs.course.pytest_plugin`` redirects the topic's modules, stops a test that runs past its
timeout, and streams events (one JSON object per line) that are read here while the tests
run: they drive the progress display and tell where a run that died was.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dlfs.course import redirect as redirect_mod
from dlfs.course import timeouts
from dlfs.course.registry import REPO_ROOT, Topic
from dlfs.course.workspace import check_syntax, learner_files, stub_source
from dlfs.errors import DlfsError

EVENTS_ENV = "DLFS_EVENTS"          # read by dlfs.course.pytest_plugin
IDLE_LIMIT = 120.0                  # seconds without any event outside a test (collection)

EventHandler = Callable[[dict], None]


@dataclass
class TestResult:
    __test__ = False      # not a pytest test class

    nodeid: str
    outcome: str                    # passed | failed | error | skipped
    message: str = ""               # the failure, once; a skip's reason
    details: str = ""               # pytest's own report of the failure (full traceback)
    stdout: str = ""                # what the test printed (the learner's print() calls)
    example: str = ""               # Hypothesis' falsifying example
    others: int = 0                 # further distinct failures Hypothesis found in the test
    trace: list = field(default_factory=list)    # frames in the learner's files and the tests
    where: dict | None = None       # the deepest frame in the learner's files
    position: list | None = None    # [module index, line] in the learner's files (ordering)
    timed_out: bool = False
    duration: float = 0.0
    index: int = 0                  # order of collection

    @property
    def name(self) -> str:
        return self.nodeid.split("::", 1)[-1]

    @property
    def is_collection_error(self) -> bool:
        return "::" not in self.nodeid


@dataclass
class RunReport:
    topic: Topic
    target: str
    results: list[TestResult]
    output: str = ""                # everything pytest printed
    problem: str = ""               # why the run as a whole went wrong, if it did
    not_run: list[str] = field(default_factory=list)
    timeout: float = timeouts.DEFAULT_SECONDS

    def count(self, outcome: str) -> int:
        return sum(r.outcome == outcome for r in self.results)

    @property
    def ran(self) -> list[TestResult]:
        return [r for r in self.results if r.outcome != "skipped"]

    @property
    def failures(self) -> list[TestResult]:
        """Failing tests in the order of the exercise: collection errors first, then by the
        position in the learner's files of the function that failed, then in test order."""
        bad = [r for r in self.results if r.outcome in ("failed", "error")]
        return sorted(bad, key=lambda r: (not r.is_collection_error, r.position is None,
                                          r.position or [], r.index))

    @property
    def skip_reasons(self) -> Counter:
        return Counter(r.message for r in self.results if r.outcome == "skipped")

    @property
    def all_passed(self) -> bool:
        return bool(self.ran) and not self.failures and not self.problem


# ----------------------------------------------------------------------------- running

def _require_test_tools() -> None:
    missing = [m for m in ("pytest", "hypothesis") if importlib.util.find_spec(m) is None]
    if missing:
        raise DlfsError(
            f"Grading needs {' and '.join(missing)}, which this Python ({sys.executable}) does "
            f"not have. Run `pip install -e .` again in the course folder (they are part of the "
            f"course's requirements), or `pip install {' '.join(missing)}`."
        )


class _EventReader:
    """Complete lines appended to the events file since the last read."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.partial = ""

    def read(self) -> list[dict]:
        with open(self.path, encoding="utf-8") as f:
            f.seek(self.offset)
            chunk = f.read()
            self.offset = f.tell()
        text = self.partial + chunk
        *lines, self.partial = text.split("\n")
        return [json.loads(line) for line in lines if line.strip()]


def _kill(proc: subprocess.Popen) -> None:
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


@dataclass
class _Follow:
    """What the events said so far, and whether the run had to be stopped."""

    events: list[dict] = field(default_factory=list)
    running: dict | None = None     # the "start" event of the test now running
    importing: dict | None = None   # the "importing" event of the file now being imported
    since: float = 0.0              # when the current phase (import, setup, call...) began
    stopped: str = ""               # "test", "import" or "idle" when the run was killed

    def handle(self, ev: dict, now: float) -> None:
        self.events.append(ev)
        kind = ev.get("event")
        if kind in ("start", "phase", "end", "importing", "imported", "import_failed"):
            self.since = now
        if kind == "start":
            self.running = ev
        elif kind == "end":
            self.running = None
        elif kind == "importing":
            self.importing = ev
        elif kind in ("imported", "import_failed"):
            self.importing = None


def _follow(proc: subprocess.Popen, reader: _EventReader, seconds: float,
            on_event: EventHandler | None) -> _Follow:
    """Read events until the process ends; kill it when a phase overruns its timeout by
    far (a hang the plugin's timer cannot interrupt, e.g. inside compiled code)."""
    state = _Follow()
    last_event = time.monotonic()
    grace = max(5.0, seconds)
    while True:
        exited = proc.poll() is not None
        now = time.monotonic()
        for ev in reader.read():
            last_event = now
            state.handle(ev, now)
            if on_event is not None:
                on_event(ev)
        if exited:
            return state
        if state.running is not None:
            if now - state.since > state.running.get("timeout", seconds) + grace:
                state.stopped = "test"
        elif state.importing is not None:
            if now - state.since > seconds + grace:
                state.stopped = "import"
        elif now - last_event > max(IDLE_LIMIT, seconds + grace):
            state.stopped = "idle"
        if state.stopped:
            _kill(proc)
            for ev in reader.read():
                state.handle(ev, now)
            return state
        time.sleep(0.05)


def _run_pytest(topic: Topic, redirect: dict[str, str], *, test_timeout: float | None = None,
                verbose: bool = False, on_event: EventHandler | None = None,
                extra: list[str] = ()) -> RunReport:
    if not topic.test_files:
        raise DlfsError(f"Topic {topic.id} has no tests in {topic.folder}.")
    _require_test_tools()
    seconds = timeouts.resolve(test_timeout)
    with tempfile.TemporaryDirectory(prefix="dlfs-run-") as tmp:
        events_path = Path(tmp) / "events.jsonl"
        events_path.touch()
        output_path = Path(tmp) / "output.txt"
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        env[EVENTS_ENV] = str(events_path)
        env.pop(redirect_mod.ENV_VAR, None)
        if redirect:
            env[redirect_mod.ENV_VAR] = json.dumps(redirect)
        detail = ["-vv", "--tb=long"] if verbose else ["-q", "--tb=short"]
        cmd = [sys.executable, "-m", "pytest", str(topic.folder), "-p", "dlfs.course.pytest_plugin",
               "--no-header", "-p", "no:cacheprovider", "--continue-on-collection-errors",
               f"--dlfs-timeout={seconds:g}", *detail, *extra]
        with open(output_path, "w", encoding="utf-8") as out:
            proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=hasattr(os, "setsid"))
            try:
                state = _follow(proc, _EventReader(events_path), seconds, on_event)
            finally:
                if proc.poll() is None:
                    _kill(proc)
        output = output_path.read_text(encoding="utf-8", errors="replace")
    return _build_report(topic, state, proc.returncode, output, seconds)


# ------------------------------------------------------------------------ making sense of it

_RESULT_FIELDS = set(TestResult.__dataclass_fields__)


def _display(path: str | Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _how_it_ended(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        crash = " (a crash: reading memory outside an array, e.g. with wrong as_strided strides?)" \
            if name in ("SIGSEGV", "SIGBUS") else ""
        return f"was killed by {name}{crash}"
    return f"ended with exit code {returncode}"


def exit_calls(source: str) -> list[tuple[int, str]]:
    """(line, code) of the statements that run on import and end the program:
    ``sys.exit``, ``exit``, ``quit``, ``os._exit``, ``os.abort``, ``raise SystemExit``."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    lines = source.splitlines()
    found = []

    def visit(node):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return                              # a body that does not run on import
        hit = False
        if isinstance(node, ast.Call):
            f = node.func
            hit = (isinstance(f, ast.Name) and f.id in ("exit", "quit")) or (
                isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)
                and (f.value.id, f.attr) in (("sys", "exit"), ("os", "_exit"), ("os", "abort")))
        elif isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            hit = isinstance(target, ast.Name) and target.id == "SystemExit"
        if hit:
            found.append((node.lineno, lines[node.lineno - 1].strip()))
        for child in ast.iter_child_nodes(node):
            visit(child)

    for stmt in tree.body:
        visit(stmt)
    return sorted(set(found))


_NUMPY_ONLY = {"torch", "tensorflow", "jax", "keras", "mxnet", "paddle"}


def _import_problem(ev: dict, seconds: float) -> str:
    where = _display(ev["file"])
    line, code = ev.get("line"), ev.get("code") or ""
    at = f" on line {line}:\n    {code}" if line else "."
    if ev.get("timed_out"):
        return (f"Importing your file {where} did not finish within {seconds:g} s; it was stopped"
                f"{at}\nCode at the top level of a file runs when it is imported: an endless loop there?")
    if ev["exc_type"] == "SystemExit":
        return (f"Your file {where} exited (SystemExit, exit code {ev.get('exit_code')!r}) while it "
                f"was being imported, so no check could run. It exits{at}\n"
                "Remove that line, or move it under `if __name__ == \"__main__\":`.")
    if ev.get("missing") is not None or ev["exc_type"] in ("ImportError", "ModuleNotFoundError"):
        missing = ev.get("missing") or ""
        advice = ("The exercises use NumPy only: remove this import."
                  if missing.split(".")[0] in _NUMPY_ONLY else "Fix or remove this import.")
        return (f"Your file {where} could not be imported: an import failed{at}\n"
                f"{ev['message']}\n{advice}")
    return (f"Your file {where} raised an error while it was being imported{at}\n{ev['message']}")


def _build_report(topic: Topic, state: _Follow, returncode: int | None, output: str,
                  seconds: float) -> RunReport:
    collected: list[str] = []
    by_id: dict[str, TestResult] = {}
    problems: list[str] = []
    finished = False
    for ev in state.events:
        kind = ev.get("event")
        if kind == "collected":
            collected = ev["nodeids"]
        elif kind in ("result", "collect_error"):
            data = {k: v for k, v in ev.items() if k in _RESULT_FIELDS}
            if kind == "collect_error":
                data["outcome"] = "error"
            r = TestResult(**data)
            old = by_id.get(r.nodeid)
            if old is None or old.outcome in ("passed", "skipped"):    # a teardown error wins
                by_id[r.nodeid] = r
        elif kind == "import_failed":
            problems.append(_import_problem(ev, seconds))
        elif kind == "finish":
            finished = True
    order = {nodeid: i for i, nodeid in enumerate(collected)}
    for r in by_id.values():
        r.index = order.get(r.nodeid, -1)

    not_run: list[str] = []
    if not finished:
        if state.running is not None and state.running["nodeid"] not in by_id:
            nodeid = state.running["nodeid"]
            if state.stopped == "test":
                message = (f"The test did not finish within {state.running.get('timeout', seconds):g} s "
                           "and could not be interrupted (busy inside NumPy or another compiled "
                           "library?), so the run was stopped.")
            else:
                message = (f"The Python process running the tests {_how_it_ended(returncode)} during "
                           "this test. Does your code call os._exit() or exit the interpreter?")
            by_id[nodeid] = TestResult(nodeid, "error", message=message, timed_out=state.stopped == "test",
                                       index=order.get(nodeid, -1))
            not_run = [n for n in collected if n not in by_id]
            problems.append(f"The run stopped during {nodeid.split('::', 1)[-1]}"
                            + (f"; {len(not_run)} tests did not run." if not_run else "."))
        elif state.importing is not None:
            path = state.importing["file"]
            text = f"Your file {_display(path)} ended the Python process while it was being " \
                   f"imported (the process {_how_it_ended(returncode)})"
            if state.stopped == "import":
                text = (f"Importing your file {_display(path)} did not finish within {seconds:g} s "
                        "and could not be interrupted, so it was stopped")
            try:
                calls = exit_calls(Path(path).read_text(encoding="utf-8"))
            except OSError:
                calls = []
            text += ", so no check could run."
            if calls and state.stopped != "import":
                text += "".join(f"\nLine {n} ends the program:\n    {code}" for n, code in calls)
                text += "\nRemove it, or move it under `if __name__ == \"__main__\":`."
            problems.append(text)
        elif not problems:
            problems.append(f"The tests of Topic {topic.id} could not run: pytest {_how_it_ended(returncode)}"
                            + (" after a long silence" if state.stopped == "idle" else "")
                            + ".\n" + output.strip()[-3000:])
    elif not by_id and not problems:
        problems.append(f"No test of Topic {topic.id} ran (pytest exit code {returncode}).\n"
                        + output.strip()[-3000:])
    results = sorted(by_id.values(), key=lambda r: r.index)
    return RunReport(topic, "", results, output, "\n".join(problems), not_run, seconds)


# ---------------------------------------------------------------------------- entry points

def run_reference(topic: Topic, *, test_timeout: float | None = None, verbose: bool = False,
                  on_event: EventHandler | None = None, extra: list[str] = ()) -> RunReport:
    report = _run_pytest(topic, {}, test_timeout=test_timeout, verbose=verbose,
                         on_event=on_event, extra=list(extra))
    report.target = "reference"
    return report


def run_learner(topic: Topic, workspace: Path | None = None, *, test_timeout: float | None = None,
                verbose: bool = False, on_event: EventHandler | None = None,
                extra: list[str] = ()) -> RunReport:
    files = learner_files(topic, workspace)
    missing = [p for p in files.values() if not p.exists()]
    if missing:
        raise DlfsError(
            f"Your exercise file {missing[0]} does not exist. Run `dlfs start {topic.number}` "
            f"to create it (existing files are never overwritten), or `dlfs reset {topic.number}`."
        )
    for path in files.values():
        check_syntax(path)
    report = _run_pytest(topic, {m: str(p) for m, p in files.items()}, test_timeout=test_timeout,
                         verbose=verbose, on_event=on_event, extra=list(extra))
    report.target = "learner"
    return report


def run_stub(topic: Topic, *, test_timeout: float | None = None, verbose: bool = False,
             on_event: EventHandler | None = None, extra: list[str] = ()) -> RunReport:
    with tempfile.TemporaryDirectory(prefix=f"dlfs-stub-{topic.id}-") as tmp:
        redirect = {}
        for module in topic.modules:
            path = Path(tmp) / (module.rsplit(".", 1)[-1] + ".py")
            path.write_text(stub_source(topic, module), encoding="utf-8")
            check_syntax(path)
            redirect[module] = str(path)
        report = _run_pytest(topic, redirect, test_timeout=test_timeout, verbose=verbose,
                             on_event=on_event, extra=list(extra))
    report.target = "stub"
    return report
