"""What the grader shows of a failure, worked out from the live exception in the test process.

The message once (without pytest's "Use -v to get more diff"), Hypothesis' falsifying
example (the first failure of an exception group, and how many others there were), the
traceback reduced to the learner's files and the topic's tests, and a position in the
learner's files that orders failures the way the exercise is written.
"""

from __future__ import annotations

import ast
import inspect
import linecache
import os
from pathlib import Path

import pytest

from dlfs.course.timeouts import TimedOut


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


def message(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, (TimedOut, pytest.fail.Exception)):
        return text
    name = type(exc).__qualname__
    lines = [ln for ln in f"{name}: {text}".rstrip().splitlines()
             if ln.strip() and "Use -v to get more diff" not in ln]
    return "\n".join(lines) if text else name


def _code_names(code) -> list[str]:
    names = list(code.co_names)
    for const in code.co_consts:
        if inspect.iscode(const):
            names += _code_names(const)
    return names


class LearnerFiles:
    """The files a run grades: module name -> path, in the order of the topic's modules."""

    def __init__(self, mapping: dict[str, str]):
        self.mapping = dict(mapping)
        self._index = {os.path.realpath(f): i for i, f in enumerate(self.mapping.values())}
        self._defs: list[tuple[int, str, int]] | None = None

    def index_of(self, filename: str) -> int | None:
        return self._index.get(os.path.realpath(filename)) if self._index else None

    def trace(self, exc: BaseException, test_dir: Path | None) -> list[dict]:
        """The traceback reduced to the frames in these files and in the topic's tests."""
        out = []
        for frame, lineno in _frames(exc.__traceback__):
            filename = frame.f_code.co_filename
            mine = self.index_of(filename) is not None
            ours = test_dir is not None and Path(filename).parent == test_dir
            if not (mine or ours):
                continue
            code = linecache.getline(filename, lineno).strip()
            if code.startswith("@"):          # a decorator line, e.g. Hypothesis' @given(...)
                continue
            out.append({"file": filename, "line": lineno, "function": frame.f_code.co_name,
                        "code": code, "mine": mine})
        return out

    def explain(self, exc: BaseException, test_dir: Path | None = None) -> dict:
        """The failure as the grader shows it; ``position`` is [module index, first line of the
        function] of the deepest frame in these files, or None."""
        exc, others = _first_of_group(exc)
        trace = self.trace(exc, test_dir)
        mine = [t for t in trace if t["mine"]]
        position = None
        for frame, _ in _frames(exc.__traceback__):
            index = self.index_of(frame.f_code.co_filename)
            if index is not None:
                position = [index, frame.f_code.co_firstlineno]
        notes = [str(n) for n in getattr(exc, "__notes__", ()) or ()]
        return {
            "message": message(exc),
            "example": "\n".join(notes).strip(),
            "others": others,
            "trace": trace,
            "where": mine[-1] if mine else None,
            "position": position,
            "timed_out": isinstance(exc, TimedOut),
            "exc_type": type(exc).__name__,
        }

    def defs(self) -> list[tuple[int, str, int]]:
        """(module index, name, line) of every top-level function and class in these files."""
        if self._defs is None:
            self._defs = []
            for index, path in enumerate(self.mapping.values()):
                try:
                    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
                except (OSError, SyntaxError, ValueError):
                    continue
                self._defs += [(index, node.name, node.lineno) for node in tree.body
                               if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        return self._defs

    def position_of_test(self, test_name: str, function) -> list[int] | None:
        """The learner function a test is about, for a failure that went through none of the
        learner's frames (a wrong value): the one named in the test's name (the longest such
        name), else the first one the test's code uses."""
        defs = self.defs()
        if not defs:
            return None
        padded = f"_{test_name}_"
        named = [d for d in defs if f"_{d[1]}_" in padded]
        if named:
            index, _, line = max(named, key=lambda d: len(d[1]))
            return [index, line]
        function = getattr(getattr(function, "hypothesis", None), "inner_test", None) or function
        code = getattr(inspect.unwrap(function), "__code__", None) if callable(function) else None
        if code is None:
            return None
        by_name = {d[1]: d for d in defs}
        for used in _code_names(code):
            if used in by_name:
                index, _, line = by_name[used]
                return [index, line]
        return None
