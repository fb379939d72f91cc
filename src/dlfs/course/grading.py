"""Run a topic's tests against the reference, the learner's files or generated stubs.

Tests run in a fresh ``python -m pytest`` process so a learner's infinite loop can be
stopped by a timeout and state never leaks between runs. The pytest plugin
``dlfs.course.pytest_plugin`` redirects the topic's modules and reports per-test results.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dlfs.course.registry import REPO_ROOT, Topic
from dlfs.course.workspace import check_syntax, learner_files, stub_source
from dlfs.errors import DlfsError


@dataclass
class TestResult:
    nodeid: str
    outcome: str          # passed | failed | error | skipped
    message: str = ""
    details: str = ""

    @property
    def name(self) -> str:
        return self.nodeid.split("::", 1)[-1]


@dataclass
class RunReport:
    topic: Topic
    target: str
    results: list[TestResult]
    output: str = ""

    def count(self, outcome: str) -> int:
        return sum(r.outcome == outcome for r in self.results)

    @property
    def ran(self) -> list[TestResult]:
        return [r for r in self.results if r.outcome != "skipped"]

    @property
    def failures(self) -> list[TestResult]:
        return [r for r in self.results if r.outcome in ("failed", "error")]

    @property
    def all_passed(self) -> bool:
        return bool(self.ran) and not self.failures


def _run_pytest(topic: Topic, redirect: dict[str, str], timeout: float, extra: list[str]) -> RunReport:
    if not topic.test_files:
        raise DlfsError(f"Topic {topic.id} has no tests in {topic.folder}.")
    with tempfile.TemporaryDirectory(prefix="dlfs-report-") as tmp:
        report_path = Path(tmp) / "report.json"
        env = dict(os.environ, DLFS_REPORT=str(report_path), PYTHONDONTWRITEBYTECODE="1")
        env.pop("DLFS_REDIRECT", None)
        if redirect:
            env["DLFS_REDIRECT"] = json.dumps(redirect)
        cmd = [sys.executable, "-m", "pytest", str(topic.folder), "-p", "dlfs.course.pytest_plugin",
               "-q", "--no-header", "-p", "no:cacheprovider", "--tb=short", *extra]
        try:
            proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            raise DlfsError(
                f"Topic {topic.id}'s tests did not finish within {timeout:.0f} s and were stopped. "
                "Look for an infinite loop or a Python loop over a large array in your code."
            ) from None
        if not report_path.exists():
            raise DlfsError(
                f"The tests of Topic {topic.id} could not run (pytest exit code {proc.returncode}).\n"
                + (proc.stdout + proc.stderr).strip()[-3000:]
            )
        data = json.loads(report_path.read_text())
    results = [TestResult(**r) for r in data["results"]]
    return RunReport(topic, "", results, proc.stdout + proc.stderr)


def run_reference(topic: Topic, timeout: float = 600, extra: list[str] = ()) -> RunReport:
    report = _run_pytest(topic, {}, timeout, list(extra))
    report.target = "reference"
    return report


def run_learner(topic: Topic, workspace: Path | None = None, timeout: float = 600,
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
    report = _run_pytest(topic, {m: str(p) for m, p in files.items()}, timeout, list(extra))
    report.target = "learner"
    return report


def run_stub(topic: Topic, timeout: float = 600, extra: list[str] = ()) -> RunReport:
    with tempfile.TemporaryDirectory(prefix=f"dlfs-stub-{topic.id}-") as tmp:
        redirect = {}
        for module in topic.modules:
            path = Path(tmp) / (module.rsplit(".", 1)[-1] + ".py")
            path.write_text(stub_source(topic, module), encoding="utf-8")
            check_syntax(path)
            redirect[module] = str(path)
        report = _run_pytest(topic, redirect, timeout, list(extra))
    report.target = "stub"
    return report
