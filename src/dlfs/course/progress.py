"""Progress state: a schema-versioned JSON file in the workspace, written atomically.

A state file that cannot be read is never silently reset: it is moved aside to a
timestamped backup (``progress.json.corrupt-<time>``, then ``-1``, ``-2``, ... within one
second), the user is told where and what is wrong with it, and the course continues with
empty progress. A state that cannot be written raises a DlfsError naming the file, why,
what was not recorded and how to record it; nothing is dropped silently.

The file::

    {"schema_version": 1,
     "topics":     {"3": {"status": "complete" | "skipped", "via": "check", "at": "<time>"}},
     "hints_seen": {"3": 2},                          # highest hint level shown, 1-3
     "checks":     {"3": {"passed": false, "at": "<time>"}}}   # last check of your file

A topic whose last check failed after it was completed stays complete (completions are
never lost) and is shown as "was complete, now failing" until its checks pass again.
Marks on topics that are not built yet never count.
"""

from __future__ import annotations

import errno
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from dlfs.course.registry import TOPICS, get_topic
from dlfs.errors import DlfsError
from dlfs.io import atomic_write_json, move_aside, why_not_writable

SCHEMA_VERSION = 1
COMPLETE, SKIPPED = "complete", "skipped"
STATUSES = (COMPLETE, SKIPPED)
HINT_LEVELS = (1, 2, 3)

# what record_check returns
COMPLETED, PASSING, FIXED, FAILING, REGRESSED = "completed", "passing", "fixed", "failing", "regressed"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class _Unreadable(Exception):
    """The file is not a valid progress file; the message says what is wrong with it."""


def _kind(value) -> str:
    """The JSON name of a value's type, with an article: 'an object', 'a string', ..."""
    if isinstance(value, bool):
        return f"{'true' if value else 'false'}"
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)


def _topic_number(section: str, key) -> int:
    try:
        n = int(key)
    except (TypeError, ValueError):
        raise _Unreadable(f"'{section}' has the key {key!r}, which is not a topic number") from None
    if n not in TOPICS:
        raise _Unreadable(f"'{section}' has an entry for topic {n}, but topics are numbered "
                          f"1-{len(TOPICS)}")
    return n


def _mapping(raw: dict, section: str, what: str) -> dict:
    value = raw.get(section, {})
    if not isinstance(value, dict):
        raise _Unreadable(f"'{section}' should be an object mapping topic numbers to {what}, "
                          f"found {_kind(value)}")
    return value


def _parse(raw, path: Path) -> tuple[dict, dict, dict]:
    """Validate a decoded progress file -> (topics, hints_seen, checks); _Unreadable if bad."""
    if not isinstance(raw, dict):
        raise _Unreadable(f"it should be a JSON object, found {_kind(raw)}")
    if "schema_version" not in raw:
        raise _Unreadable("it is not a dlfs progress file (it has no 'schema_version')")
    version = raw["schema_version"]
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise DlfsError(
            f"{path} was written by a newer dlfs (schema {version}; this one reads "
            f"{SCHEMA_VERSION}). Upgrade dlfs; the file was left untouched."
        )
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise _Unreadable(f"'schema_version' is {json.dumps(version)}; this dlfs reads "
                          f"{SCHEMA_VERSION}")
    topics = {}
    for key, entry in _mapping(raw, "topics", "entries like {\"status\": \"complete\"}").items():
        n = _topic_number("topics", key)
        if not isinstance(entry, dict):
            raise _Unreadable(f"the entry for topic {n} should be an object like "
                              f"{{\"status\": \"complete\"}}, found {_kind(entry)}")
        if entry.get("status") not in STATUSES:
            raise _Unreadable(f"the entry for topic {n} has status {json.dumps(entry.get('status'))}; "
                              "it should be \"complete\" or \"skipped\"")
        topics[n] = dict(entry)
    hints = {}
    for key, level in _mapping(raw, "hints_seen", "hint levels 1-3").items():
        n = _topic_number("hints_seen", key)
        if isinstance(level, bool) or level not in HINT_LEVELS:
            raise _Unreadable(f"'hints_seen' gives topic {n} the hint level {json.dumps(level)}; "
                              "levels are 1, 2 and 3")
        hints[n] = int(level)
    checks = {}
    for key, entry in _mapping(raw, "checks", "entries like {\"passed\": true}").items():
        n = _topic_number("checks", key)
        if not isinstance(entry, dict) or not isinstance(entry.get("passed"), bool):
            raise _Unreadable(f"the last check of topic {n} should be an object like "
                              f"{{\"passed\": true}}, found {json.dumps(entry)}")
        checks[n] = dict(entry)
    return topics, hints, checks


def _write_failure(exc: OSError, path: Path) -> str:
    """Why writing ``path`` failed, in words."""
    if exc.errno == errno.EPERM:
        return (f"the system refused to replace {path} ({exc.strerror}); an immutable file "
                f"(`lsattr {path}` shows an 'i') refuses every change")
    if exc.errno == errno.EROFS:
        return f"{path.parent} is on a read-only file system"
    if exc.errno == errno.ENOSPC:
        return f"the disk holding {path.parent} is full"
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


@dataclass
class Progress:
    path: Path
    topics: dict[int, dict] = field(default_factory=dict)      # number -> {"status", "via", "at"}
    hints_seen: dict[int, int] = field(default_factory=dict)   # number -> highest hint level shown
    checks: dict[int, dict] = field(default_factory=dict)      # number -> {"passed", "at"}
    warnings: list[str] = field(default_factory=list)
    _saved: dict = field(default_factory=dict, repr=False)     # what the file holds

    # -- persistence -------------------------------------------------------------
    @classmethod
    def load(cls, path: Path) -> "Progress":
        state = cls(path)
        if not path.exists():
            return state
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DlfsError(f"Your progress file {path} cannot be read ({exc.strerror or exc}). "
                            "Nothing was changed; make it readable and try again.") from None
        try:
            try:
                raw = json.loads(data.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise _Unreadable(f"it is not UTF-8 text (byte {exc.start} is "
                                  f"0x{data[exc.start]:02x})") from None
            except json.JSONDecodeError as exc:
                raise _Unreadable(f"it is not valid JSON ({exc.msg} at line {exc.lineno}, "
                                  f"column {exc.colno})") from None
            state.topics, state.hints_seen, state.checks = _parse(raw, path)
        except _Unreadable as exc:
            return cls._set_aside(path, str(exc))
        state._saved = state._snapshot()
        return state

    @classmethod
    def _set_aside(cls, path: Path, reason: str) -> "Progress":
        target = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            backup = move_aside(path, target)
        except OSError as exc:
            raise DlfsError(
                f"Your progress file {path} could not be read: {reason}. It could not be moved "
                f"aside either ({exc.strerror or exc}), so nothing was changed. Fix or move the "
                "file yourself, or point DLFS_WORKSPACE at another folder."
            ) from None
        state = cls(path)
        state.warnings.append(
            f"Your progress file {path} could not be read: {reason}. It was moved to {backup} "
            "and nothing in it was deleted; continuing with empty progress. Your exercise files "
            "are untouched: `dlfs check N` marks a topic again, `dlfs mark N` marks it by hand."
        )
        return state

    def _snapshot(self) -> dict:
        return {"topics": {n: e.get("status") for n, e in self.topics.items()},
                "checks": {n: e.get("passed") for n, e in self.checks.items()},
                "hints_seen": dict(self.hints_seen)}

    def save(self) -> None:
        """Write the state atomically; DlfsError (naming the file, why, what was not recorded
        and how to record it) when it cannot be written."""
        problem = why_not_writable(self.path)
        if problem is None:
            try:
                atomic_write_json(self.path, {
                    "schema_version": SCHEMA_VERSION,
                    "topics": {str(n): e for n, e in sorted(self.topics.items())},
                    "hints_seen": {str(n): v for n, v in sorted(self.hints_seen.items())},
                    "checks": {str(n): e for n, e in sorted(self.checks.items())},
                })
            except OSError as exc:
                problem = _write_failure(exc, self.path)
            else:
                self._saved = self._snapshot()
                return
        raise DlfsError(self._not_saved(problem))

    def unsaved(self) -> list[tuple[str, str]]:
        """The changes the file does not hold yet: (what, the command that records it)."""
        saved = self._saved or {"topics": {}, "checks": {}, "hints_seen": {}}
        out, named = [], set()
        for n in sorted(set(self.topics) | set(saved["topics"])):
            now, before = self.topics.get(n, {}).get("status"), saved["topics"].get(n)
            if now == before:
                continue
            named.add(n)
            tid = TOPICS[n].id
            if now == COMPLETE:
                out.append((f"Topic {tid} complete", f"dlfs mark {n}"))
            elif now == SKIPPED:
                out.append((f"Topic {tid} skipped", f"dlfs skip {n}"))
            else:
                out.append((f"Topic {tid} unmarked", f"dlfs unmark {n}"))
        changed = {n for n in set(self.checks) | set(saved["checks"])
                   if self.checks.get(n, {}).get("passed") != saved["checks"].get(n)}
        for n in sorted(changed - named):
            outcome = "passing" if self.checks.get(n, {}).get("passed") else "failing"
            out.append((f"Topic {TOPICS[n].id}'s last check ({outcome})", f"dlfs check {n}"))
        return out

    def _not_saved(self, problem: str) -> str:
        lost = self.unsaved()
        if lost:
            what = "Not recorded: " + ", ".join(w for w, _ in lost) + "."
            redo = (" Then " + " and ".join(f"`{c}`" for _, c in lost) + " records it"
                    + ("." if len(lost) == 1 else " all."))
        else:
            what = "Not recorded: only which hints you have seen."
            redo = ""
        return (f"Your progress could not be saved to {self.path}: {problem}. {what}\n"
                f"To fix it, make {self.path} and its folder writable (for example "
                f"`chmod u+w {self.path} {self.path.parent}`; `chattr -i {self.path}` if the "
                "file is immutable), or point DLFS_WORKSPACE at a writable folder." + redo)

    # -- queries (topics that are not built yet never count) ---------------------
    def status(self, number: int) -> str | None:
        topic = TOPICS.get(number)
        entry = self.topics.get(number)
        return entry["status"] if entry and topic is not None and topic.built else None

    def is_done(self, number: int) -> bool:
        return self.status(number) in STATUSES

    def completed(self) -> list[int]:
        return sorted(n for n in self.topics if self.status(n) == COMPLETE)

    def last_check(self, number: int) -> bool | None:
        """True/False: the last check of the learner's file passed/failed; None: never checked."""
        entry = self.checks.get(number)
        return entry["passed"] if entry else None

    def now_failing(self, number: int) -> bool:
        """Complete, but the last check of the learner's file failed."""
        return self.status(number) == COMPLETE and self.last_check(number) is False

    # -- changes -----------------------------------------------------------------
    def mark(self, number: int, status: str = COMPLETE, via: str = "manual") -> None:
        """Mark a built topic complete or skipped (NotBuiltError for a coming one). A mark by
        hand overrides a failing last check."""
        get_topic(number)
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        self.topics[number] = {"status": status, "via": via, "at": _now()}
        if via != "check":
            self.checks.pop(number, None)

    def unmark(self, number: int) -> bool:
        self.checks.pop(number, None)
        return self.topics.pop(number, None) is not None

    def record_check(self, number: int, passed: bool) -> str:
        """Remember the outcome of a check of the learner's file (all tests passed or not).

        A first pass marks the topic complete. Returns what happened: COMPLETED (newly
        complete), PASSING (complete and still passing), FIXED (passing again after failing),
        REGRESSED (was complete, now failing) or FAILING (not complete, failing)."""
        before = self.last_check(number)
        was_complete = self.status(number) == COMPLETE
        if passed and not was_complete:
            self.mark(number, COMPLETE, via="check")
        self.checks[number] = {"passed": bool(passed), "at": _now()}
        if passed:
            if not was_complete:
                return COMPLETED
            return FIXED if before is False else PASSING
        return REGRESSED if was_complete else FAILING

    def saw_hint(self, number: int, level: int) -> None:
        self.hints_seen[number] = max(level, self.hints_seen.get(number, 0))
