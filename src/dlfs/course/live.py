"""Progress of a grading run while it goes, fed by the events of ``dlfs.course.grading``.

In a terminal: a tqdm bar naming the test now running (so a test that hangs is named while
it hangs), with a line above it for every test that had to be stopped. Elsewhere (a pipe, a
log, an editor's output pane): one plain line per test.
"""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm

from dlfs.course.registry import Topic


def _name(nodeid: str) -> str:
    return nodeid.split("::", 1)[-1]


class LiveProgress:
    """Call it with each event; close it (or use it as a context manager) at the end."""

    def __init__(self, topic: Topic, stream: TextIO | None = None, tty: bool | None = None):
        self.topic = topic
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.total = 0
        self.done: set[str] = set()
        self.bar: tqdm | None = None

    def __enter__(self) -> LiveProgress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def __call__(self, ev: dict) -> None:
        kind = ev.get("event")
        if kind == "collected":
            self.total = len(ev["nodeids"])
            if self.tty:
                self.bar = tqdm(total=self.total, desc=f"Topic {self.topic.id}", unit="check",
                                file=self.stream, leave=False, dynamic_ncols=True)
            elif self.total:
                self._say(f"Running {self.total} checks of Topic {self.topic.id}")
        elif kind == "start" and self.bar is not None:
            self.bar.set_postfix_str(_name(ev["nodeid"]), refresh=True)
        elif kind == "result" and ev["nodeid"] not in self.done:
            self.done.add(ev["nodeid"])
            outcome = "stopped" if ev.get("timed_out") else ev["outcome"]
            if self.bar is not None:
                self.bar.update(1)
                if outcome == "stopped":
                    self._say(f"⏱ {_name(ev['nodeid'])}: stopped after {ev.get('duration', 0):.0f} s")
            else:
                width = len(str(self.total))
                self._say(f"[{len(self.done):>{width}}/{self.total}] {outcome:<7} {_name(ev['nodeid'])}")
