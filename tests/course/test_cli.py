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
    (("check", "30"), 3, "not built yet"),
    (("milestone", "24"), 3, "not built yet"),
    (("milestone", "11"), 2, "There is no Milestone 11"),
    (("mark",), 2, "at least one topic"),
])
def test_bad_input_gets_a_clear_message_and_nonzero_exit(dlfs, args, code, words):
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


def test_mark_unmark_skip_move_the_next_topic(dlfs):
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
