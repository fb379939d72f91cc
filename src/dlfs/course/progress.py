"""Progress state: a schema-versioned JSON file in the workspace, written atomically.

A state file that cannot be read is never silently reset: it is moved aside to a
timestamped backup, the user is told where, and the course continues with empty
progress.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from dlfs.course.registry import TOPICS
from dlfs.errors import DlfsError
from dlfs.io import atomic_write_json

SCHEMA_VERSION = 1
COMPLETE, SKIPPED = "complete", "skipped"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


@dataclass
class Progress:
    path: Path
    topics: dict[int, dict] = field(default_factory=dict)      # number -> {"status", "via", "at"}
    hints_seen: dict[int, int] = field(default_factory=dict)   # number -> highest hint level shown
    warnings: list[str] = field(default_factory=list)

    # -- persistence -------------------------------------------------------------
    @classmethod
    def load(cls, path: Path) -> "Progress":
        state = cls(path)
        if not path.exists():
            return state
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict) or "schema_version" not in raw:
                raise ValueError("it is not a dlfs progress file (no schema_version)")
            version = raw["schema_version"]
            if isinstance(version, int) and version > SCHEMA_VERSION:
                raise DlfsError(
                    f"{path} was written by a newer dlfs (schema {version}; this one reads "
                    f"{SCHEMA_VERSION}). Upgrade dlfs; the file was left untouched."
                )
            if version != SCHEMA_VERSION:
                raise ValueError(f"unknown schema_version {version!r}")
            for key, entry in raw.get("topics", {}).items():
                n = int(key)
                if n not in TOPICS or entry.get("status") not in (COMPLETE, SKIPPED):
                    raise ValueError(f"bad entry for topic {key!r}: {entry!r}")
                state.topics[n] = dict(entry)
            state.hints_seen = {int(k): int(v) for k, v in raw.get("hints_seen", {}).items()}
        except DlfsError:
            raise
        except (OSError, UnicodeDecodeError, ValueError, TypeError, AttributeError) as exc:
            backup = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            path.replace(backup)
            state = cls(path)
            state.warnings.append(
                f"Your progress file {path} could not be read ({exc}). It was moved to {backup} "
                "and nothing in it was deleted; continuing with empty progress. Your exercise files "
                "are untouched: `dlfs check N` marks a topic again, `dlfs mark N` marks it by hand."
            )
        return state

    def save(self) -> None:
        atomic_write_json(self.path, {
            "schema_version": SCHEMA_VERSION,
            "topics": {str(n): e for n, e in sorted(self.topics.items())},
            "hints_seen": {str(n): v for n, v in sorted(self.hints_seen.items())},
        })

    # -- queries -----------------------------------------------------------------
    def status(self, number: int) -> str | None:
        entry = self.topics.get(number)
        return entry["status"] if entry else None

    def is_done(self, number: int) -> bool:
        return self.status(number) in (COMPLETE, SKIPPED)

    def completed(self) -> list[int]:
        return sorted(n for n, e in self.topics.items() if e["status"] == COMPLETE)

    # -- changes -----------------------------------------------------------------
    def mark(self, number: int, status: str = COMPLETE, via: str = "manual") -> None:
        self.topics[number] = {"status": status, "via": via, "at": _now()}

    def unmark(self, number: int) -> bool:
        return self.topics.pop(number, None) is not None

    def saw_hint(self, number: int, level: int) -> None:
        self.hints_seen[number] = max(level, self.hints_seen.get(number, 0))
