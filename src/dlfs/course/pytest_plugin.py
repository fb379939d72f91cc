"""Pytest plugin used by the grader (``pytest -p dlfs.course.pytest_plugin``).

It installs the module redirect from ``DLFS_REDIRECT`` before any test module is
imported, and writes one JSON record per test to the file named by
``DLFS_REPORT``: ``{"nodeid", "outcome", "message", "details"}``.
"""

from __future__ import annotations

import json
import os

from dlfs.course import redirect
from dlfs.io import atomic_write_json

redirect.install_from_env()

_results: list[dict] = []


def _short_message(report) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        return crash.message
    text = getattr(report, "longreprtext", "") or str(report.longrepr or "")
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def pytest_runtest_logreport(report):
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        outcome = report.outcome
        if report.when == "setup" and outcome == "failed":
            outcome = "error"
        _results.append({
            "nodeid": report.nodeid,
            "outcome": outcome,
            "message": "" if outcome == "passed" else (
                str(report.longrepr[2]) if outcome == "skipped" and isinstance(report.longrepr, tuple)
                else _short_message(report)
            ),
            "details": "" if outcome in ("passed", "skipped") else report.longreprtext,
        })


def pytest_collectreport(report):
    if report.failed:
        _results.append({
            "nodeid": report.nodeid or "<collection>",
            "outcome": "error",
            "message": _short_message(report),
            "details": report.longreprtext,
        })


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("DLFS_REPORT")
    if path:
        atomic_write_json(path, {"exitstatus": int(exitstatus), "results": _results})
