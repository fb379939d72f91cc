"""`dlfs check` explains itself: hangs, exits and failed imports in the learner's file, failures
in the order of the exercise, the failure text once, skips and what grading needs.

Each test writes a small learner file into a temporary workspace and grades it on Topic 01
(``-k`` narrows a run to the tests that matter, to keep this file fast)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import click
import pytest
from click.testing import CliRunner

from dlfs.cli import main
from dlfs.course import grading, live, results, timeouts, ui
from dlfs.course.registry import REPO_ROOT, get_topic
from dlfs.course.workspace import ensure_exercise
from dlfs.errors import DlfsError, UsageError

T1 = get_topic(1)
STRIDES_TODO = '    raise NotImplementedError("Topic 01: compute the C-order byte strides of `shape`")'
ONLY_STRIDES = ["-k", "contiguous_strides"]


def plain(text: str) -> str:
    return click.unstyle(text)


@pytest.fixture
def ws(tmp_path, monkeypatch):
    """A fresh workspace holding Topic 01's stub; ``ws.edit(old, new)`` changes the learner's file."""
    workspace = tmp_path / "workspace"
    monkeypatch.setenv("DLFS_WORKSPACE", str(workspace))
    monkeypatch.delenv(timeouts.ENV_VAR, raising=False)
    ensure_exercise(T1, workspace)
    path = T1.workspace_file(workspace, T1.modules[0])

    class Workspace:
        root = workspace
        file = path

        @staticmethod
        def edit(old: str, new: str) -> None:
            text = path.read_text()
            assert text.count(old) == 1, old
            path.write_text(text.replace(old, new))

        @staticmethod
        def at_import(code: str) -> int:
            """Put ``code`` after the file's imports; returns its first line number."""
            anchor = "from numpy.lib.stride_tricks import as_strided\n"
            text = path.read_text()
            line = text[:text.index(anchor)].count("\n") + 2
            path.write_text(text.replace(anchor, anchor + code, 1))
            return line

    return Workspace


def check(*args):
    return CliRunner().invoke(main, ["check", "1", *args], catch_exceptions=False)


def grade(ws, **options):
    return grading.run_learner(T1, ws.root, **options)


# -------------------------------------------------------------------------- endless loops

def test_an_endless_loop_is_stopped_named_and_shown_with_progress(ws):
    ws.edit(STRIDES_TODO, "    n = 0\n    while n >= 0:\n        n += 1\n    return n")
    start = time.monotonic()
    r = check("--timeout", "1")
    elapsed = time.monotonic() - start
    out = plain(r.output)
    assert r.exit_code == 1, out
    # the first failure is the hanging function, with the line it was running
    report = out[out.index("Topic 01 ·"):]
    assert "✘ test_contiguous_strides_example" in report
    assert "Stopped after 1 s, still running line" in report and "in contiguous_strides():" in report
    assert "while n >= 0:" in report and "--timeout 60" in report
    # progress streamed while it ran (plain lines without a terminal), naming each stopped test
    assert re.search(r"\[\s*\d+/\d+\] stopped test_contiguous_strides_example", out)
    # the Hypothesis test stopped too instead of re-running the loop while shrinking
    assert re.search(r"stopped test_contiguous_strides_match_numpy", out)
    assert elapsed < 90, f"the run took {elapsed:.0f} s"


def test_a_hang_the_timer_cannot_interrupt_is_killed_and_named(ws):
    if not hasattr(signal, "pthread_sigmask"):
        pytest.skip("needs signal.pthread_sigmask to block the timer")
    ws.edit(STRIDES_TODO, "    import signal\n    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})\n"
                          "    while True:\n        pass")
    start = time.monotonic()
    report = grade(ws, test_timeout=0.5, extra=ONLY_STRIDES)
    assert time.monotonic() - start < 60
    hung = report.failures[0]
    assert hung.name == "test_contiguous_strides_example" and hung.timed_out
    assert "could not be interrupted" in hung.message
    assert report.not_run and "The run stopped during test_contiguous_strides_example" in report.problem
    assert not report.all_passed


def test_the_timeout_comes_from_the_option_then_the_environment(monkeypatch):
    monkeypatch.delenv(timeouts.ENV_VAR, raising=False)
    assert timeouts.resolve() == timeouts.DEFAULT_SECONDS
    monkeypatch.setenv(timeouts.ENV_VAR, "2.5")
    assert timeouts.resolve() == 2.5
    assert timeouts.resolve(7) == 7.0
    for bad in ("soon", "0", "-3", "nan"):
        monkeypatch.setenv(timeouts.ENV_VAR, bad)
        with pytest.raises(UsageError, match=timeouts.ENV_VAR):
            timeouts.resolve()
    r = CliRunner().invoke(main, ["check", "1", "--timeout", "0"])
    assert r.exit_code == 2 and "positive number of seconds" in r.output


def test_a_test_marked_dlfs_timeout_gets_longer(tmp_path):
    (tmp_path / "test_slow.py").write_text(
        "import time, pytest\n"
        f"@pytest.mark.{timeouts.MARKER}(5)\n"
        "def test_marked():\n    time.sleep(1)\n"
        "def test_unmarked():\n    time.sleep(1)\n")
    events = tmp_path / "events.jsonl"
    env = dict(os.environ, **{results.EVENTS_ENV: str(events)})
    env.pop("DLFS_REDIRECT", None)
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "dlfs.course.pytest_plugin",
                    "-p", "no:cacheprovider", "--dlfs-timeout", "0.3", str(tmp_path)],
                   cwd=tmp_path, env=env, capture_output=True, timeout=120)
    outcomes = {e["nodeid"].split("::")[-1]: e for e in map(json.loads, events.read_text().splitlines())
                if e["event"] == "result"}
    assert outcomes["test_marked"]["outcome"] == "passed"
    assert outcomes["test_unmarked"]["outcome"] == "failed" and outcomes["test_unmarked"]["timed_out"]


# ------------------------------------------------------------ a file that exits or fails to import

def test_sys_exit_at_import_says_which_file_and_line(ws):
    line = ws.at_import("import sys\nsys.exit(0)\n") + 1
    r = check()
    out = plain(r.output)
    assert r.exit_code == 1
    assert "no check could run on your code" in out and "0/0" not in out
    assert f"{ws.file.name} exited (SystemExit, exit code 0) while it was being imported" in out
    assert f"on line {line}:\n    sys.exit(0)" in out


def test_os_exit_at_import_says_which_file_and_line(ws):
    line = ws.at_import("import os\nos._exit(0)\n") + 1
    r = check()
    out = plain(r.output)
    assert r.exit_code == 1
    assert "pytest exit code" not in out
    assert f"{ws.file.name} ended the Python process while it was being imported" in out
    assert f"Line {line} ends the program:\n    os._exit(0)" in out


@pytest.mark.parametrize("module, advice", [("no_such_module_here", "Fix or remove this import."),
                                            ("torch", "The exercises use NumPy only")])
def test_a_failed_import_names_the_import_and_its_line(ws, tmp_path, monkeypatch, module, advice):
    hidden = tmp_path / "hidden"          # a `torch` that cannot be imported, as on a learner's machine
    (hidden / "torch").mkdir(parents=True)
    (hidden / "torch" / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    monkeypatch.setenv("PYTHONPATH", str(hidden))
    line = ws.at_import(f"import {module}\n")
    r = check()
    out = plain(r.output)
    assert r.exit_code == 1
    assert "valid Python names" not in out
    assert f"{ws.file.name} could not be imported: an import failed on line {line}:\n    import {module}" in out
    assert f"No module named '{module}'" in out and advice in out


@pytest.mark.parametrize("code, says", [
    ("x = undefined_name + 1\n", "raised an error while it was being imported on line {line}:\n"
                                  "    x = undefined_name + 1\nNameError"),
    ("while True:\n    pass\n", "did not finish within 1 s; it was stopped on line {line}:\n"
                                 "    while True:"),
])
def test_an_error_or_endless_loop_at_import_says_which_line(ws, code, says):
    line = ws.at_import(code)
    report = grade(ws, test_timeout=1)
    assert not report.results and not report.all_passed
    assert says.format(line=line) in report.problem and ws.file.name in report.problem


def test_a_crash_during_a_test_is_named(ws):
    ws.edit(STRIDES_TODO, "    import ctypes\n    return ctypes.string_at(0)")
    report = grade(ws, extra=ONLY_STRIDES)
    first = report.failures[0]
    assert first.name == "test_contiguous_strides_example" and first.ended_run
    assert re.search(r"killed by SIG(SEGV|BUS)", first.message) and "os._exit" not in first.message


def test_os_exit_during_a_test_is_named(ws):
    ws.edit(STRIDES_TODO, "    import os\n    os._exit(3)")
    report = grade(ws, extra=ONLY_STRIDES)
    first = report.failures[0]
    assert first.name == "test_contiguous_strides_example"
    assert "ended with exit code 3 during this test" in first.message
    assert report.not_run and not report.all_passed


def test_exit_calls_finds_the_statements_that_run_on_import():
    source = ("import os, sys\nif True:\n    sys.exit(2)\ndef f():\n    os._exit(1)\n"
              "raise SystemExit\nos._exit(0)\n")
    assert results.exit_calls(source) == [(3, "sys.exit(2)"), (6, "raise SystemExit"), (7, "os._exit(0)")]


# ------------------------------------------------------------------- what a failure shows

WRONG_STRIDES = ('    print("strides for", shape)\n'
                 "    return tuple(itemsize for _ in shape)")


@pytest.fixture
def wrong_strides(ws):
    """contiguous_strides written (wrongly, with a print), the rest not started."""
    ws.edit(STRIDES_TODO, WRONG_STRIDES)
    return ws


def test_the_first_failure_follows_the_learners_file(wrong_strides):
    report = grade(wrong_strides)
    first = report.failures[0]
    # contiguous_strides comes first in the file; its tests live in the last test file
    assert first.name == "test_contiguous_strides_example"
    assert "test_strides.py" in first.nodeid
    names = [f.name for f in report.failures]
    assert names.index("test_is_contiguous_examples") < names.index(
        "test_broadcast_shapes_examples[shapes0-expected0]"), "is_contiguous comes before broadcast_shapes"


def test_a_failure_shows_its_text_once_and_what_the_code_printed(wrong_strides):
    report = grade(wrong_strides, extra=ONLY_STRIDES)
    out = plain(ui.render_report(report))
    assert out.count("expected (96, 32, 8), got (8, 8, 8)") == 1
    assert "Use -v to get more diff" not in out
    assert "Your code printed:\n  │ strides for (2, 3, 4)" in out


def test_verbose_shows_pytests_full_output(wrong_strides):
    report = grade(wrong_strides, verbose=True, extra=ONLY_STRIDES)
    out = plain(ui.render_report(report, verbose=True))
    assert "test session starts" in out and "Full diff" in out
    assert "test_strides.py::test_contiguous_strides_example FAILED" in out


def test_a_hypothesis_failure_shows_the_falsifying_example(ws):
    # two distinct bugs: Hypothesis reports both, as an ExceptionGroup
    ws.edit(STRIDES_TODO, "    if len(shape) == 1:\n        return (shape[3],)\n"
                          "    return tuple(itemsize for _ in shape)")
    report = grade(ws, extra=["-k", "contiguous_strides_match_numpy"])
    out = plain(ui.render_report(report))
    assert "ExceptionGroup" not in out
    assert "Falsifying example: test_contiguous_strides_match_numpy(" in out
    assert "Hypothesis found 1 more distinct failure in this test" in out


def test_topic_02_starts_where_its_lesson_starts():
    report = grading.run_stub(get_topic(2), extra=["-k", "test_value or test_stable"])
    first = report.failures[0]
    assert "test_value.py" in first.nodeid
    assert first.where["function"] == "__add__" and first.where["file"].endswith("value.py")


def test_skipped_comparisons_with_pytorch_are_explained(tmp_path, monkeypatch):
    hidden = tmp_path / "hidden" / "torch"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('PyTorch hidden for this test')\n")
    monkeypatch.setenv("PYTHONPATH", str(hidden.parent))
    report = grading.run_reference(T1, extra=["-k", "torch"])
    skipped = report.count("skipped")
    assert skipped > 0 and not report.failures
    out = plain(ui.render_report(report))
    assert f"{skipped} comparisons with PyTorch skipped" in out
    assert 'pip install -e ".[oracle]"' in out


# ------------------------------------------------------------------ what grading needs

def test_grading_needs_are_core_dependencies():
    text = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    core = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M).group(1)
    names = {re.split(r"[<>=!~ ;\[]", dep, maxsplit=1)[0].lower() for dep in re.findall(r'"([^"]+)"', core)}
    assert {"pytest", "hypothesis"} <= names


def test_missing_pytest_is_a_clear_error(monkeypatch):
    real = grading.importlib.util.find_spec
    monkeypatch.setattr(grading.importlib.util, "find_spec",
                        lambda name, *a: None if name == "pytest" else real(name, *a))
    with pytest.raises(DlfsError, match=r"Grading needs pytest.*pip install -e \."):
        grading.run_reference(T1)


def test_progress_in_a_terminal_is_a_bar_naming_the_running_test():
    import io

    stream = io.StringIO()
    show = live.LiveProgress(T1, stream=stream, tty=True)
    show({"event": "collected", "nodeids": ["a.py::test_one", "a.py::test_two"]})
    show({"event": "start", "nodeid": "a.py::test_one", "timeout": 10})
    assert "test_one" in stream.getvalue() and "0/2" in stream.getvalue()
    show({"event": "result", "nodeid": "a.py::test_one", "outcome": "failed", "timed_out": True,
          "duration": 10.0})
    show.close()
    assert "⏱ test_one: stopped after 10 s" in stream.getvalue()


def test_pytorch_comparisons_inside_shared_checks_are_counted_and_the_tests_pass(tmp_path, monkeypatch):
    """check_layer / check_op without PyTorch: the test passes on its finite differences and
    the comparison it left out is counted with the skipped ones."""
    hidden = tmp_path / "hidden" / "torch"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('PyTorch hidden for this test')\n")
    monkeypatch.setenv("PYTHONPATH", str(hidden.parent))
    report = grading.run_reference(get_topic(6), extra=["-k", "test_linear_layer_matches_torch_linear"])
    passed = [r for r in report.results if r.outcome == "passed"]
    assert passed and not report.failures, \
        f"the finite-difference checks pass without PyTorch, got {[(r.name, r.outcome) for r in report.results]}"
    assert report.oracle_skipped >= len(passed), \
        f"expected each passing check_layer test to count its left-out comparison, got {report.oracle_skipped}"
    out = plain(ui.render_report(report))
    assert f"{report.count('skipped') + report.oracle_skipped} comparisons with PyTorch skipped" in out
