"""Pytest plugin used by the grader (``pytest -p dlfs.course.pytest_plugin``).

- Installs the module redirect from ``DLFS_REDIRECT`` before any test module is imported,
  then imports the redirected modules (the learner's files) itself, so that a file that
  fails to import, exits or hangs while being imported is reported as such, with its line.
- Stops a test that runs longer than its timeout (``--dlfs-timeout``, default
  ``$DLFS_TEST_TIMEOUT`` or ``dlfs.course.timeouts.DEFAULT_SECONDS``; a test may ask for
  more with ``@pytest.mark.dlfs_timeout(seconds)``), pointing at the line it was running.
- Streams one JSON object per line to the file named by ``DLFS_EVENTS`` while the run goes,
  so the grader can show progress and knows where a run that died was:
  ``importing``, ``imported``, ``import_failed``, ``collected``, ``collect_error``,
  ``start``, ``phase``, ``result``, ``end``, ``finish`` (see ``dlfs.course.grading`` for the fields).
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import json
import linecache
import os
import signal
import threading
from pathlib import Path

import pytest

from dlfs.course import redirect, timeouts

_finder = redirect.install_from_env()
_LEARNER: dict[str, str] = dict(_finder.mapping) if _finder else {}     # module -> file
_LEARNER_FILES = {os.path.realpath(f): i for i, f in enumerate(_LEARNER.values())}

EVENTS_ENV = "DLFS_EVENTS"
_events = None
_import_failed = False
_collect_errors: dict[str, dict] = {}


class TimedOut(BaseException):
    """Raised by the timer. A BaseException, not an Exception: Hypothesis would take an
    Exception for a failing example and re-run (shrink) the very code that hung."""


def _emit(**event) -> None:
    if _events is not None:
        _events.write(json.dumps(event) + "\n")
        _events.flush()


@contextlib.contextmanager
def _time_limit(seconds: float, what: str):
    """Raise TimedOut in the main thread after ``seconds`` (where SIGALRM exists)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise TimedOut(f"{what} did not finish within {seconds:g} s and was stopped")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ------------------------------------------------------------------ explaining an exception

def _learner_index(filename: str) -> int | None:
    return _LEARNER_FILES.get(os.path.realpath(filename)) if _LEARNER_FILES else None


def _frames(tb):
    while tb is not None:
        yield tb.tb_frame, tb.tb_lineno
        tb = tb.tb_next


def _first_of_group(exc: BaseException) -> tuple[BaseException, int]:
    """The first leaf of an exception group (Hypothesis reports several distinct failures as
    one) and how many other failures the group held."""
    others = 0
    while isinstance(getattr(exc, "exceptions", None), (tuple, list)) and exc.exceptions:
        others += len(exc.exceptions) - 1
        exc = exc.exceptions[0]
    return exc, others


def _message(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, (TimedOut, pytest.fail.Exception)):
        return text
    name = type(exc).__qualname__
    lines = [ln for ln in f"{name}: {text}".rstrip().splitlines()
             if ln.strip() and "Use -v to get more diff" not in ln]
    return "\n".join(lines) if text else name


def _trace(exc: BaseException, test_dir: Path | None) -> list[dict]:
    """The traceback reduced to the frames in the learner's files and in the topic's tests."""
    out = []
    for frame, lineno in _frames(exc.__traceback__):
        filename = frame.f_code.co_filename
        mine = _learner_index(filename) is not None
        ours = test_dir is not None and Path(filename).parent == test_dir
        if not (mine or ours):
            continue
        code = linecache.getline(filename, lineno).strip()
        if code.startswith("@"):          # a decorator line, e.g. Hypothesis' @given(...)
            continue
        out.append({"file": filename, "line": lineno, "function": frame.f_code.co_name,
                    "code": code, "mine": mine})
    return out


def _deepest_learner_frame(exc: BaseException):
    found = None
    for frame, lineno in _frames(exc.__traceback__):
        index = _learner_index(frame.f_code.co_filename)
        if index is not None:
            found = (index, frame, lineno)
    return found


def explain(exc: BaseException, test_dir: Path | None = None) -> dict:
    """What the grader shows of a failure: the message once, the falsifying example, where
    in the learner's file it happened, and a position for ordering (module, line)."""
    exc, others = _first_of_group(exc)
    trace = _trace(exc, test_dir)
    mine = [t for t in trace if t["mine"]]
    deepest = _deepest_learner_frame(exc)
    notes = [str(n) for n in getattr(exc, "__notes__", ()) or ()]
    return {
        "message": _message(exc),
        "example": "\n".join(notes).strip(),
        "others": others,
        "trace": trace,
        "where": mine[-1] if mine else None,
        "position": [deepest[0], deepest[1].f_code.co_firstlineno] if deepest else None,
        "timed_out": isinstance(exc, TimedOut),
        "exc_type": type(exc).__name__,
    }


# ------------------------------------------------------------ ordering by the learner's file

_defs_cache: list[tuple[int, str, int]] | None = None


def _learner_defs() -> list[tuple[int, str, int]]:
    """(module index, name, line) of every top-level function and class of the learner's files."""
    global _defs_cache
    if _defs_cache is None:
        _defs_cache = []
        for index, path in enumerate(_LEARNER.values()):
            try:
                tree = ast.parse(Path(path).read_text(encoding="utf-8"))
            except (OSError, SyntaxError, ValueError):
                continue
            _defs_cache += [(index, node.name, node.lineno) for node in tree.body
                            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    return _defs_cache


def _code_names(code) -> list[str]:
    names = list(code.co_names)
    for const in code.co_consts:
        if inspect.iscode(const):
            names += _code_names(const)
    return names


def _position_from_names(item) -> list[int] | None:
    """The learner function a test is about, when its failure went through none of the
    learner's frames (a wrong value): the one named in the test's name, else the first one
    its code uses."""
    defs = _learner_defs()
    if not defs:
        return None
    name = f"_{getattr(item, 'originalname', item.name)}_"
    named = [d for d in defs if f"_{d[1]}_" in name]
    if named:
        index, _, line = max(named, key=lambda d: len(d[1]))
        return [index, line]
    fn = getattr(item, "obj", None)
    fn = getattr(getattr(fn, "hypothesis", None), "inner_test", None) or fn
    code = getattr(inspect.unwrap(fn), "__code__", None) if callable(fn) else None
    if code is None:
        return None
    by_name = {d[1]: d for d in defs}
    for used in _code_names(code):
        if used in by_name:
            index, _, line = by_name[used]
            return [index, line]
    return None


# ---------------------------------------------------------------------------- pytest hooks

def pytest_addoption(parser):
    parser.addoption("--dlfs-timeout", dest="dlfs_timeout", type=float, default=None,
                     help=f"seconds one test may run (default ${timeouts.ENV_VAR} or "
                          f"{timeouts.DEFAULT_SECONDS:g})")


def pytest_configure(config):
    global _events
    config.addinivalue_line("markers", f"{timeouts.MARKER}(seconds): this test may run up to "
                                       "`seconds` when graded (more than the default timeout)")
    path = os.environ.get(EVENTS_ENV)
    if path and _events is None:
        _events = open(path, "a", encoding="utf-8")


def pytest_unconfigure(config):
    global _events
    if _events is not None:
        _events.close()
        _events = None


def _timeout(config, item=None) -> float:
    seconds = timeouts.resolve(config.getoption("dlfs_timeout"))
    marker = item.get_closest_marker(timeouts.MARKER) if item is not None else None
    if marker is not None and marker.args:
        seconds = max(seconds, float(marker.args[0]))
    return seconds


def pytest_sessionstart(session):
    """Import the learner's modules before any test does."""
    global _import_failed
    seconds = _timeout(session.config)
    for module, path in _LEARNER.items():
        _emit(event="importing", module=module, file=path)
        try:
            with _time_limit(seconds, "Importing your file"):
                importlib.import_module(module)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:        # SystemExit, ImportError, TimedOut, anything
            info = explain(exc)
            _emit(event="import_failed", module=module, file=path,
                  line=info["where"]["line"] if info["where"] else None,
                  code=info["where"]["code"] if info["where"] else "",
                  exc_type=type(exc).__name__, message=info["message"],
                  missing=getattr(exc, "name", None) if isinstance(exc, ImportError) else None,
                  exit_code=exc.code if isinstance(exc, SystemExit) else None,
                  timed_out=info["timed_out"])
            _import_failed = True
            return
        _emit(event="imported", module=module)


def pytest_ignore_collect(collection_path, config):
    if _import_failed:
        return True          # nothing can run: the learner's file did not import
    return None


def pytest_collection_finish(session):
    _emit(event="collected", nodeids=[item.nodeid for item in session.items])


def pytest_exception_interact(node, call, report):
    if isinstance(node, pytest.Collector) and call.excinfo is not None:
        exc = call.excinfo.value
        cause = exc.__cause__ if isinstance(exc, pytest.Collector.CollectError) and exc.__cause__ else exc
        test_dir = Path(str(node.path)).parent if getattr(node, "path", None) else None
        _collect_errors[report.nodeid] = explain(cause, test_dir)


def pytest_collectreport(report):
    if report.failed:
        info = _collect_errors.get(report.nodeid) or {"message": _last_line(report.longreprtext)}
        _emit(event="collect_error", nodeid=report.nodeid or "<collection>",
              details=report.longreprtext, **info)


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _emit(event="start", nodeid=item.nodeid, timeout=_timeout(item.config, item))
    try:
        return (yield)
    finally:
        _emit(event="end", nodeid=item.nodeid)


@contextlib.contextmanager
def _phase(item, when: str):
    """Each phase (setup, call, teardown) of a test gets the test's timeout."""
    _emit(event="phase", nodeid=item.nodeid, when=when)
    with _time_limit(_timeout(item.config, item), "The test"):
        yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    with _phase(item, "setup"):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    with _phase(item, "call"):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    with _phase(item, "teardown"):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and call.excinfo is not None:
        info = explain(call.excinfo.value, Path(str(item.path)).parent)
        if info["position"] is None:
            info["position"] = _position_from_names(item)
        report._dlfs = info
    return report


def pytest_runtest_logreport(report):
    if not (report.when == "call" or (report.when in ("setup", "teardown") and report.outcome != "passed")):
        return
    outcome = report.outcome
    if report.when != "call" and outcome == "failed":
        outcome = "error"
    event = {"event": "result", "nodeid": report.nodeid, "outcome": outcome, "when": report.when,
             "duration": report.duration, "message": "", "details": "", "stdout": ""}
    if outcome == "skipped":
        longrepr = report.longrepr
        event["message"] = str(longrepr[2]) if isinstance(longrepr, tuple) else _last_line(str(longrepr))
    elif outcome != "passed":
        event.update(getattr(report, "_dlfs", None) or {"message": _last_line(report.longreprtext)})
        event["details"] = report.longreprtext
        event["stdout"] = report.capstdout + report.capstderr
    _emit(**event)


def pytest_sessionfinish(session, exitstatus):
    _emit(event="finish", exitstatus=int(exitstatus))
