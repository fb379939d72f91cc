"""Run a topic's tests against the reference, the learner's files or generated stubs.

Tests run in a fresh ``python -m pytest`` process, so state never leaks between runs and a
run that hangs or dies can be stopped and explained. The pytest plugin
``dlfs.course.pytest_plugin`` redirects the topic's modules, stops a test that runs past its
timeout, and streams events (one JSON object per line) that are read here while the tests
run: they drive the progress display and tell where a run that died was.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dlfs.course import redirect as redirect_mod
from dlfs.course import timeouts
from dlfs.course.registry import REPO_ROOT, Topic
from dlfs.course.results import EVENTS_ENV, RunReport, TestResult, build_report
from dlfs.course.workspace import check_syntax, learner_files, stub_source
from dlfs.errors import DlfsError

__all__ = ["RunReport", "TestResult", "run_learner", "run_reference", "run_stub"]

IDLE_LIMIT = 120.0                  # seconds without any event outside a test (collection)

EventHandler = Callable[[dict], None]


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
    return build_report(topic, state.events, running=state.running, importing=state.importing,
                        stopped=state.stopped, returncode=proc.returncode, output=output, seconds=seconds)


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
