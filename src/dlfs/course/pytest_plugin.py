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
  ``start``, ``phase``, ``result``, ``end``, ``oracle_skipped``, ``finish`` (read by ``dlfs.course.results``).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
from pathlib import Path

import pytest

from dlfs.course import redirect, timeouts
from dlfs.course.explain import LearnerFiles
from dlfs.course.results import EVENTS_ENV

_finder = redirect.install_from_env()
_learner = LearnerFiles(_finder.mapping if _finder else {})

_events = None
_import_failed = False
_collect_errors: dict[str, dict] = {}


def _emit(**event) -> None:
    if _events is not None:
        _events.write(json.dumps(event) + "\n")
        _events.flush()


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
    for module, path in _learner.mapping.items():
        _emit(event="importing", module=module, file=path)
        try:
            with timeouts.time_limit(seconds, "Importing your file"):
                importlib.import_module(module)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:        # SystemExit, ImportError, TimedOut, anything
            info = _learner.explain(exc)
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
    if "torch_oracle" in sys.modules:
        # The tests compare against PyTorch: import it now, so that its import (seconds, more
        # from a cold disk) is not counted against the first test that uses it.
        try:
            importlib.import_module("torch")
        except Exception:         # not installed: those comparisons skip, as they say
            pass


def pytest_exception_interact(node, call, report):
    if isinstance(node, pytest.Collector) and call.excinfo is not None:
        exc = call.excinfo.value
        cause = exc.__cause__ if isinstance(exc, pytest.Collector.CollectError) and exc.__cause__ else exc
        test_dir = Path(str(node.path)).parent if getattr(node, "path", None) else None
        _collect_errors[report.nodeid] = _learner.explain(cause, test_dir)


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
    with timeouts.time_limit(_timeout(item.config, item), "The test"):
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
        info = _learner.explain(call.excinfo.value, Path(str(item.path)).parent)
        if info["position"] is None:
            info["position"] = _learner.position_of_test(getattr(item, "originalname", item.name),
                                                         getattr(item, "obj", None))
        report._dlfs = info
    return report


def pytest_warning_recorded(warning_message, when, nodeid, location):
    """A PyTorch comparison that ``check_layer`` / ``check_op`` left out (the test itself
    passed on its finite-difference checks); recorded after the test's result."""
    if type(warning_message.message).__name__ == "OracleSkipped" and nodeid:
        _emit(event="oracle_skipped", nodeid=nodeid)


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
