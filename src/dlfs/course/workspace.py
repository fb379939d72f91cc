"""The learner's workspace: generated exercise files that generation never overwrites.

Default location ``<course root>/workspace/`` (outside version control); ``DLFS_WORKSPACE``
overrides it. Layout: ``workspace/NN-slug/<module>.py`` plus ``progress.json`` and
``.backups/``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from dlfs.course.registry import Topic, course_root
from dlfs.course.stubgen import make_stub
from dlfs.errors import DlfsError
from dlfs.io import atomic_write_text, unused_path

ENV_VAR = "DLFS_WORKSPACE"


def workspace_dir() -> Path:
    """$DLFS_WORKSPACE, else ``<course root>/workspace`` (CourseNotFoundError without a course)."""
    return Path(os.environ.get(ENV_VAR) or course_root() / "workspace").expanduser().resolve()


def stub_source(topic: Topic, module: str) -> str:
    path = topic.reference_path(module)
    return make_stub(path.read_text(encoding="utf-8"), topic.number, filename=str(path))


def learner_files(topic: Topic, workspace: Path | None = None) -> dict[str, Path]:
    """module name -> the learner's file for it (which may not exist yet)."""
    ws = workspace or workspace_dir()
    return {m: topic.workspace_file(ws, m) for m in topic.modules}


def ensure_exercise(topic: Topic, workspace: Path | None = None) -> list[Path]:
    """Create any missing exercise files of ``topic``; never touch existing ones.

    Returns the files created.
    """
    created = []
    for module, path in learner_files(topic, workspace).items():
        if not path.exists():
            atomic_write_text(path, stub_source(topic, module))
            created.append(path)
    return created


def reset_exercise(topic: Topic, workspace: Path | None = None) -> list[tuple[Path, Path | None]]:
    """Restore the stubs of ``topic``, backing each existing learner file up first.

    Returns (file, backup or None) pairs.
    """
    ws = workspace or workspace_dir()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    done = []
    for module, path in learner_files(topic, ws).items():
        backup = None
        if path.exists():
            backup = unused_path(ws / ".backups" / topic.folder_name / f"{path.stem}.{stamp}.py")
            atomic_write_text(backup, path.read_text(encoding="utf-8"))
        atomic_write_text(path, stub_source(topic, module))
        done.append((path, backup))
    return done


def check_syntax(path: Path) -> None:
    """Raise a one-paragraph DlfsError if ``path`` does not compile."""
    try:
        source = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DlfsError(f"{path} is not valid UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    try:
        compile(source, str(path), "exec")
    except SyntaxError as exc:
        line = (exc.text or "").rstrip("\n")
        pointer = " " * max((exc.offset or 1) - 1, 0) + "^"
        raise DlfsError(
            f"Your file {path} has a syntax error on line {exc.lineno}: {exc.msg}.\n"
            f"    {line}\n    {pointer}\n"
            "Fix it and save; nothing else was changed."
        ) from None
