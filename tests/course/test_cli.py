"""The learner loop end to end, through the real `dlfs` command line."""

import json

import pytest
from click.testing import CliRunner

from dlfs.cli import main
from dlfs.course.registry import get_topic

T1 = get_topic(1)


@pytest.fixture
def dlfs(tmp_path, monkeypatch):
    ws = tmp_path / "workspace"
    monkeypatch.setenv("DLFS_WORKSPACE", str(ws))
    runner = CliRunner()

    def run(*args, input=None):
        return runner.invoke(main, list(args), input=input, catch_exceptions=False)

    run.workspace = ws
    return run


def learner_file(ws):
    return T1.workspace_file(ws, T1.modules[0])


def test_new_learner_sees_progress_and_gets_an_exercise_file(dlfs):
    r = dlfs()
    assert r.exit_code == 0, r.output
    assert "Module 0" in r.output and "Next: Topic 01" in r.output
    text = learner_file(dlfs.workspace).read_text()
    assert 'raise NotImplementedError("Topic 01:' in text
    assert "# BEGIN SOLUTION" not in text


def test_generation_never_overwrites_the_learners_edits(dlfs):
    dlfs("start", "1")
    f = learner_file(dlfs.workspace)
    f.write_text(f.read_text() + "\n# my notes\n")
    r = dlfs("start", "1")
    assert "kept as it is" in r.output
    assert f.read_text().endswith("# my notes\n")


def test_a_learner_completes_topic_01_and_reveals_the_reference(dlfs):
    r = dlfs("check", "1")
    assert r.exit_code == 1
    assert "0/" in r.output and "Not implemented yet" in r.output
    r = dlfs("solution", "1")
    assert r.exit_code == 1 and "not complete yet" in r.output

    reference = T1.reference_path(T1.modules[0]).read_text()
    learner_file(dlfs.workspace).write_text(reference)          # the learner's finished work
    r = dlfs("check", "1")
    assert r.exit_code == 0, r.output
    assert "all checks pass" in r.output and "Topic 01 complete" in r.output
    state = json.loads((dlfs.workspace / "progress.json").read_text())
    assert state["topics"]["1"]["status"] == "complete"

    r = dlfs("solution", "1")
    assert r.exit_code == 0 and "def unbroadcast" in r.output
    r = dlfs("status", "--json")
    data = json.loads(r.output)
    assert data["complete"] == 1 and data["next_topic"] == 2


def test_syntax_error_is_one_clear_paragraph_and_loses_nothing(dlfs):
    dlfs("start", "1")
    f = learner_file(dlfs.workspace)
    broken = f.read_text() + "\ndef oops(:\n    pass\n"
    f.write_text(broken)
    r = dlfs("check", "1")
    assert r.exit_code != 0
    assert "syntax error on line" in r.output and "Traceback" not in r.output
    assert f.read_text() == broken


@pytest.mark.parametrize("args, code, words", [
    (("check", "99"), 2, "There is no Topic 99"),
    (("check", "0"), 2, "There is no Topic 0"),
    (("hint", "x"), 2, "not a topic number"),
    (("check", "20"), 3, "not built yet"),
    (("milestone", "24"), 3, "not built yet"),
    (("milestone", "11"), 2, "There is no Milestone 11"),
    (("mark",), 2, "at least one topic"),
])
def test_bad_input_gets_a_clear_message_and_nonzero_exit(dlfs, coming_topic, coming_milestone, args, code,
                                                         words):
    r = dlfs(*args)
    assert r.exit_code == code, r.output
    assert words in r.output and "Traceback" not in r.output


def test_corrupt_progress_is_backed_up_and_the_course_continues(dlfs):
    dlfs.workspace.mkdir(parents=True)
    (dlfs.workspace / "progress.json").write_text("{broken")
    r = dlfs("status")
    assert r.exit_code == 0
    assert "could not be read" in r.output
    backups = list(dlfs.workspace.glob("progress.json.corrupt-*"))
    assert len(backups) == 1 and backups[0].read_text() == "{broken"


def test_mark_unmark_skip_move_the_next_topic(dlfs, coming_topic):
    assert dlfs("mark", "1", "2").exit_code == 0
    assert json.loads(dlfs("status", "--json").output)["next_topic"] == 3
    dlfs("unmark", "2")
    assert json.loads(dlfs("status", "--json").output)["next_topic"] == 2
    dlfs("skip", "2")
    data = json.loads(dlfs("status", "--json").output)
    assert data["next_topic"] == 3 and data["topics"][1]["status"] == "skipped"
    listing = dlfs("list").output
    assert "coming" in listing and "Topic" not in listing.splitlines()[0]


def test_reset_restores_the_stub_and_backs_up_the_learners_file(dlfs):
    dlfs("start", "1")
    f = learner_file(dlfs.workspace)
    f.write_text("# my attempt\n")
    r = dlfs("reset", "1", "--yes")
    assert r.exit_code == 0
    assert "NotImplementedError" in f.read_text()
    backups = list((dlfs.workspace / ".backups").rglob("*.py"))
    assert [b.read_text() for b in backups] == ["# my attempt\n"]


def test_hints_come_in_three_tiers(dlfs):
    first = dlfs("hint", "1")
    assert first.exit_code == 0 and "hint 1/3" in first.output
    assert "hint 2/3" in dlfs("hint", "1").output          # the next unseen tier
    assert "hint 3/3" in dlfs("hint", "1", "3").output
    assert dlfs("hint", "1", "4").exit_code == 2


# -- progress that follows the learner's file -----------------------------------

@pytest.fixture
def fake_grading(monkeypatch):
    """`dlfs check` without running pytest: set ``.passed`` to choose the outcome."""
    from dlfs.course import grading

    outcome = {"passed": True}

    def run_learner(topic, *args, **kwargs):
        result = "passed" if outcome["passed"] else "failed"
        return grading.RunReport(topic, "learner", [grading.TestResult(
            "test_x.py::test_values", result, "" if outcome["passed"] else "AssertionError: no")])

    monkeypatch.setattr(grading, "run_learner", run_learner)
    return outcome


def _status(dlfs):
    return json.loads(dlfs("status", "--json").output)


def test_mark_refuses_a_topic_that_is_not_built(dlfs, coming_topic):
    r = dlfs("mark", "1", "20")
    assert r.exit_code == 3 and "Topic 20" in r.output and "not built yet" in r.output
    assert _status(dlfs)["complete"] == 0              # nothing marked, not even Topic 01
    assert dlfs("mark", "20").exit_code == 3
    assert dlfs("unmark", "20").exit_code == 0          # removing an old mark stays possible


def test_mark_with_a_read_only_progress_file_says_so_and_loses_nothing(dlfs):
    assert dlfs("mark", "1").exit_code == 0
    path = dlfs.workspace / "progress.json"
    before = path.read_bytes()
    path.chmod(0o444)
    r = dlfs("mark", "2")
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert f"error: Your progress could not be saved to {path}: {path} is read-only." in r.output
    assert "Not recorded: Topic 02 complete." in r.output and "`dlfs mark 2`" in r.output
    assert path.read_bytes() == before


def test_a_workspace_that_cannot_be_written(tmp_path, monkeypatch):
    (tmp_path / "notes").write_text("a file where the workspace's folder should be")
    monkeypatch.setenv("DLFS_WORKSPACE", str(tmp_path / "notes" / "workspace"))
    runner = CliRunner()
    r = runner.invoke(main, ["mark", "1"], catch_exceptions=False)
    assert r.exit_code == 1 and "notes is a file, not a folder" in r.output
    assert "Not recorded: Topic 01 complete." in r.output
    r = runner.invoke(main, ["skip", "1"], catch_exceptions=False)
    assert r.exit_code == 1 and "Not recorded: Topic 01 skipped." in r.output
    r = runner.invoke(main, ["hint", "1"], catch_exceptions=False)    # the hint is still shown
    assert r.exit_code == 0 and "hint 1/3" in r.output
    assert "warning: Your progress could not be saved" in r.output
    assert "only which hints you have seen" in r.output


def test_a_passing_check_that_cannot_be_recorded_is_an_error(dlfs, fake_grading, monkeypatch):
    import errno

    from dlfs import io

    def refuse(src, dst):               # what an immutable progress.json does (chattr +i)
        raise PermissionError(errno.EPERM, "Operation not permitted", str(dst))

    dlfs("start", "1")
    monkeypatch.setattr(io.os, "replace", refuse)
    r = dlfs("check", "1")
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "all checks pass" in r.output and "Topic 01 complete!" not in r.output
    assert "Topic 01 passes every check, but its completion could not be recorded." in r.output
    assert "immutable" in r.output and "`dlfs mark 1`" in r.output
    monkeypatch.undo()
    assert _status(dlfs)["complete"] == 0


def test_a_completed_topic_that_fails_again_is_shown_as_now_failing(dlfs, fake_grading):
    assert dlfs("check", "1").exit_code == 0
    fake_grading["passed"] = False
    r = dlfs("check", "1")
    assert r.exit_code == 1 and 'shows as "was complete, now failing"' in r.output
    data = _status(dlfs)
    t1 = data["topics"][0]
    assert t1["status"] == "complete" and t1["now_failing"] and t1["last_check"] == "failed"
    assert data["now_failing"] == [1] and data["complete"] == 1 and data["next_topic"] == 2
    assert "Topic 01 · Tensor Operations & Broadcasting: was complete, now failing" in \
        dlfs("status").output
    line = next(ln for ln in dlfs("list").output.splitlines() if "Tensor Operations" in ln)
    assert "✘ failing" in line and "(was complete, now failing)" in line
    fake_grading["passed"] = True
    r = dlfs("check", "1")
    assert r.exit_code == 0 and "Topic 01 passes again." in r.output
    assert _status(dlfs)["now_failing"] == [] and "✔ done" in dlfs("list").output


def test_reset_unmarks_the_topic(dlfs, fake_grading):
    assert dlfs("check", "1").exit_code == 0
    r = dlfs("reset", "1", "--yes")
    assert r.exit_code == 0 and "Topic 01 is no longer marked complete" in r.output
    data = _status(dlfs)
    assert data["topics"][0]["status"] == "todo" and data["next_topic"] == 1
    dlfs("skip", "2")
    assert "no longer marked skipped" in dlfs("reset", "2", "--yes").output
    assert _status(dlfs)["topics"][1]["status"] == "todo"


def test_hint_names_its_tier_and_the_next_one(dlfs):
    r = dlfs("hint", "1")
    assert "hint 1/3: direction" in r.output
    assert "`dlfs hint 1` again shows hint 2, pseudocode" in r.output
    r = dlfs("hint", "1")
    assert "hint 2/3: pseudocode" in r.output
    assert "hint 3/3: the tricky detail" in dlfs("hint", "1").output
    r = dlfs("hint", "1")
    assert "hint 3/3" in r.output and "that was the last hint" in r.output
    assert "hint 1/3: direction" in dlfs("hint", "1", "1").output


def test_docs_describe_hint_as_it_behaves():
    """`dlfs hint N` without a level shows the next hint not seen yet; the README and every
    lesson that shows the command say so, not that it shows the first ("direction") one."""
    import re

    from dlfs.course.registry import REPO_ROOT

    docs = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "topics").glob("*/README.md"))]
    bare = re.compile(r"dlfs hint (\d+|N)( \[1\|2\|3\])?\s+#(.*)")
    seen = 0
    for doc in docs:
        for line in doc.read_text(encoding="utf-8").splitlines():
            m = bare.search(line)
            if m:
                seen += 1
                assert "next" in m.group(3), f"{doc}: {line.strip()!r} should say it shows the next hint"
    assert seen >= 10
