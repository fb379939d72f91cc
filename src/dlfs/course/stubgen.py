"""Generate a learner's exercise file from a reference module.

The reference marks each piece the learner writes::

    def relu(x):
        \"\"\"x: (N, D) -> (N, D)\"\"\"
        # BEGIN SOLUTION implement ReLU with np.maximum
        return np.maximum(x, 0)
        # END SOLUTION

and the stub keeps everything outside the markers (signatures, docstrings, TODO
notes) while each marked block becomes::

        raise NotImplementedError("Topic 07: implement ReLU with np.maximum")

The text after ``BEGIN SOLUTION`` says what to implement; without it the stub
names the enclosing function.
"""

from __future__ import annotations

import re

BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION(?P<what>.*)$")
END = re.compile(r"^[ \t]*# END SOLUTION\s*$")
DEF = re.compile(r"^(?P<indent>[ \t]*)(?:async\s+)?(?:def|class)\s+(?P<name>\w+)")


class MarkerError(ValueError):
    """The reference's solution markers are unbalanced or misplaced."""


def _enclosing_name(lines: list[str], index: int, indent: str) -> str:
    """Name of the innermost def/class that encloses line ``index``."""
    names = []
    width = len(indent)
    for line in reversed(lines[:index]):
        m = DEF.match(line)
        if m and len(m.group("indent")) < width:
            names.append(m.group("name"))
            width = len(m.group("indent"))
            if width == 0:
                break
    return ".".join(reversed(names)) or "this block"


def count_solution_blocks(source: str) -> int:
    return sum(1 for line in source.splitlines() if BEGIN.match(line))


def make_stub(source: str, topic: int, *, filename: str = "<reference>") -> str:
    """Return ``source`` with every solution block replaced by a NotImplementedError."""
    lines = source.splitlines()
    out: list[str] = []
    i = 0
    blocks = 0
    while i < len(lines):
        m = BEGIN.match(lines[i])
        if END.match(lines[i]):
            raise MarkerError(f"{filename}:{i + 1}: END SOLUTION without a BEGIN SOLUTION")
        if not m:
            out.append(lines[i])
            i += 1
            continue
        indent = m.group("indent")
        what = m.group("what").strip(" :-") or f"implement {_enclosing_name(lines, i, indent)}"
        j = i + 1
        while j < len(lines) and not END.match(lines[j]):
            if BEGIN.match(lines[j]):
                raise MarkerError(f"{filename}:{j + 1}: nested BEGIN SOLUTION (opened at line {i + 1})")
            j += 1
        if j == len(lines):
            raise MarkerError(f"{filename}:{i + 1}: BEGIN SOLUTION is never closed by END SOLUTION")
        message = f"Topic {topic:02d}: {what}".replace("\\", "\\\\").replace('"', '\\"')
        out.append(f'{indent}raise NotImplementedError("{message}")')
        blocks += 1
        i = j + 1
    if blocks == 0:
        raise MarkerError(f"{filename}: no BEGIN SOLUTION / END SOLUTION blocks found")
    header = (
        f"# Your exercise file for Topic {topic:02d}. Replace each `raise NotImplementedError`\n"
        f"# with your code, save, and run `dlfs check {topic}` (or keep `dlfs watch` open).\n"
    )
    return header + "\n".join(out) + "\n"
