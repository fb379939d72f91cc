"""What a grading run found: each test's result and the run's own problem, if it had one.

``build_report`` turns the events streamed by ``dlfs.course.pytest_plugin`` into a
``RunReport``, explaining a run that ended early: a learner's file that exited, failed to
import or hung while being imported, a test that had to be killed, a crash.
"""

from __future__ import annotations

import ast
import signal
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from dlfs.course import timeouts
from dlfs.course.registry import Topic

EVENTS_ENV = "DLFS_EVENTS"      # the file the plugin streams its events to, one JSON per line

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
    ended_run: bool = False         # the run ended (was killed, crashed) during this test
    timeout: float = 0.0            # the seconds this test was allowed
    duration: float = 0.0
    oracle_skipped: int = 0         # PyTorch comparisons left out of a test that passed
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
        """Failing tests in the order of the exercise: the test the run ended in and
        collection errors first, then by the position in the learner's files of the function
        that failed, then in test order."""
        bad = [r for r in self.results if r.outcome in ("failed", "error")]
        return sorted(bad, key=lambda r: (not (r.ended_run or r.is_collection_error),
                                          r.position is None, r.position or [], r.index))

    @property
    def skip_reasons(self) -> Counter:
        return Counter(r.message for r in self.results if r.outcome == "skipped")

    @property
    def oracle_skipped(self) -> int:
        """PyTorch comparisons left out of tests that ran (and passed on their numeric part)."""
        return sum(r.oracle_skipped for r in self.results if r.outcome != "skipped")

    @property
    def all_passed(self) -> bool:
        return bool(self.ran) and not self.failures and not self.problem


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


def build_report(topic: Topic, events: list[dict], *, running: dict | None, importing: dict | None,
                 stopped: str, returncode: int | None, output: str, seconds: float) -> RunReport:
    """Results and the run's problem from the plugin's events.

    running / importing: the test or file the run was in when it ended, if it had not
    finished; stopped: "test", "import" or "idle" if the grader had to kill the run.
    """
    collected: list[str] = []
    by_id: dict[str, TestResult] = {}
    problems: list[str] = []
    oracle_skipped: dict[str, int] = {}
    finished = False
    for ev in events:
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
        elif kind == "oracle_skipped":
            oracle_skipped[ev["nodeid"]] = oracle_skipped.get(ev["nodeid"], 0) + 1
        elif kind == "import_failed":
            problems.append(_import_problem(ev, seconds))
        elif kind == "finish":
            finished = True
    order = {nodeid: i for i, nodeid in enumerate(collected)}
    allowed = {ev["nodeid"]: ev.get("timeout", seconds) for ev in events if ev.get("event") == "start"}
    for r in by_id.values():
        r.oracle_skipped = oracle_skipped.get(r.nodeid, 0)
        r.index = order.get(r.nodeid, -1)
        r.timeout = allowed.get(r.nodeid, seconds)

    not_run: list[str] = []
    if not finished:
        if running is not None and running["nodeid"] not in by_id:
            nodeid = running["nodeid"]
            if stopped == "test":
                message = (f"The test did not finish within {running.get('timeout', seconds):g} s "
                           "and could not be interrupted (busy inside NumPy or another compiled "
                           "library?), so the run was stopped.")
            else:
                message = (f"The Python process running the tests {_how_it_ended(returncode)} during "
                           "this test.")
                if returncode is None or returncode >= 0:
                    message += " Does your code call os._exit() or otherwise end the interpreter?"
            by_id[nodeid] = TestResult(nodeid, "error", message=message, timed_out=stopped == "test",
                                       ended_run=True, timeout=allowed.get(nodeid, seconds),
                                       index=order.get(nodeid, -1))
            not_run = [n for n in collected if n not in by_id]
            problems.append(f"The run stopped during {nodeid.split('::', 1)[-1]}"
                            + (f"; {len(not_run)} tests did not run." if not_run else "."))
        elif importing is not None:
            path = importing["file"]
            text = f"Your file {_display(path)} ended the Python process while it was being " \
                   f"imported (the process {_how_it_ended(returncode)})"
            if stopped == "import":
                text = (f"Importing your file {_display(path)} did not finish within {seconds:g} s "
                        "and could not be interrupted, so it was stopped")
            try:
                calls = exit_calls(Path(path).read_text(encoding="utf-8"))
            except OSError:
                calls = []
            text += ", so no check could run."
            if calls and stopped != "import":
                text += "".join(f"\nLine {n} ends the program:\n    {code}" for n, code in calls)
                text += "\nRemove it, or move it under `if __name__ == \"__main__\":`."
            problems.append(text)
        elif not problems:
            problems.append(f"The tests of Topic {topic.id} could not run: pytest {_how_it_ended(returncode)}"
                            + (" after a long silence" if stopped == "idle" else "")
                            + ".\n" + output.strip()[-3000:])
    elif not by_id and not problems:
        problems.append(f"No test of Topic {topic.id} ran (pytest exit code {returncode}).\n"
                        + output.strip()[-3000:])
    results = sorted(by_id.values(), key=lambda r: r.index)
    return RunReport(topic, "", results, output, "\n".join(problems), not_run, seconds)
