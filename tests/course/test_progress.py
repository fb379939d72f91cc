import json

import pytest

from dlfs.course.progress import COMPLETE, SCHEMA_VERSION, SKIPPED, Progress
from dlfs.errors import DlfsError


def test_round_trip(tmp_path):
    path = tmp_path / "progress.json"
    p = Progress.load(path)
    p.mark(1)
    p.mark(2, SKIPPED, via="skip")
    p.saw_hint(1, 2)
    p.save()
    q = Progress.load(path)
    assert q.status(1) == COMPLETE and q.status(2) == SKIPPED and q.status(3) is None
    assert q.hints_seen == {1: 2}
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION


def test_save_leaves_no_temporary_files(tmp_path):
    p = Progress.load(tmp_path / "progress.json")
    p.mark(1)
    p.save()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["progress.json"]


@pytest.mark.parametrize("content", [
    "{not json", "[]", '{"topics": {}}', '{"schema_version": 1, "topics": {"99": {"status": "complete"}}}',
    '{"schema_version": 1, "topics": {"1": {"status": "bogus"}}}', "\xff\xfe",
])
def test_corrupt_file_is_backed_up_not_lost(tmp_path, content):
    path = tmp_path / "progress.json"
    path.write_bytes(content.encode("latin-1"))
    p = Progress.load(path)
    assert p.topics == {}
    assert len(p.warnings) == 1 and "could not be read" in p.warnings[0]
    backups = list(tmp_path.glob("progress.json.corrupt-*"))
    assert len(backups) == 1, "the unreadable file must be kept as a backup"
    assert backups[0].read_bytes() == content.encode("latin-1")
    assert str(backups[0]) in p.warnings[0]


def test_newer_schema_is_left_untouched(tmp_path):
    path = tmp_path / "progress.json"
    path.write_text('{"schema_version": 99, "topics": {}}')
    with pytest.raises(DlfsError, match="newer dlfs"):
        Progress.load(path)
    assert path.read_text() == '{"schema_version": 99, "topics": {}}'


# -- a state that cannot be written is reported, never dropped ------------------

def _marked(tmp_path, *numbers):
    path = tmp_path / "progress.json"
    p = Progress.load(path)
    for n in numbers:
        p.mark(n)
    p.save()
    return Progress.load(path)


def test_read_only_progress_file_is_reported_and_left_alone(tmp_path):
    p = _marked(tmp_path, 1)
    before = p.path.read_bytes()
    p.path.chmod(0o444)                 # no write bits: read-only, even for root
    p.mark(3)
    with pytest.raises(DlfsError) as err:
        p.save()
    msg = str(err.value)
    assert str(p.path) in msg and "read-only" in msg
    assert "Not recorded: Topic 03 complete." in msg and "`dlfs mark 3`" in msg
    assert "chmod u+w" in msg and "DLFS_WORKSPACE" in msg
    assert p.path.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["progress.json"]


def test_read_only_workspace_folder_is_reported(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    p = Progress.load(ws / "progress.json")
    p.mark(2, SKIPPED, via="skip")
    ws.chmod(0o555)
    try:
        with pytest.raises(DlfsError, match=r"(?s)the folder .*ws is read-only\. Not recorded: "
                                             r"Topic 02 skipped\..*`dlfs skip 2`"):
            p.save()
    finally:
        ws.chmod(0o755)
    assert not (ws / "progress.json").exists()


def test_workspace_under_a_file_is_reported(tmp_path):
    (tmp_path / "notes").write_text("a file where a folder should be")
    p = Progress.load(tmp_path / "notes" / "ws" / "progress.json")
    p.mark(1)
    with pytest.raises(DlfsError, match=r"notes is a file, not a folder\. Not recorded: "
                                         r"Topic 01 complete\."):
        p.save()


def test_immutable_file_is_reported(tmp_path, monkeypatch):
    """chattr +i cannot be set in every test environment; os.replace fails as it would."""
    import errno

    from dlfs import io

    p = _marked(tmp_path, 1)
    p.unmark(1)

    def refuse(src, dst):
        raise PermissionError(errno.EPERM, "Operation not permitted", str(dst))

    monkeypatch.setattr(io.os, "replace", refuse)
    with pytest.raises(DlfsError) as err:
        p.save()
    msg = str(err.value)
    assert "immutable" in msg and "Not recorded: Topic 01 unmarked." in msg
    assert "`dlfs unmark 1`" in msg and "chattr -i" in msg
    monkeypatch.undo()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["progress.json"]   # no temp file
    assert Progress.load(p.path).status(1) == COMPLETE


def test_a_saved_change_is_not_reported_again(tmp_path):
    p = _marked(tmp_path, 1)
    assert p.unsaved() == []
    p.mark(2)
    assert p.unsaved() == [("Topic 02 complete", "dlfs mark 2")]
    p.save()
    assert p.unsaved() == []


def test_save_keeps_the_files_permission_bits(tmp_path):
    p = _marked(tmp_path, 1)
    p.path.chmod(0o640)
    p.mark(2)
    p.save()
    assert p.path.stat().st_mode & 0o777 == 0o640


# -- corrupt files: every backup kept, reasons in words --------------------------

def test_two_corruptions_in_one_second_keep_both_backups(tmp_path, monkeypatch):
    from dlfs.course import progress

    monkeypatch.setattr(progress.time, "strftime", lambda fmt, *a: "20250101-120000")
    path = tmp_path / "progress.json"
    for content in ("{first", "{second", "{third"):
        path.write_text(content)
        assert len(Progress.load(path).warnings) == 1
    backups = sorted(tmp_path.glob("progress.json.corrupt-*"))
    assert [b.name for b in backups] == ["progress.json.corrupt-20250101-120000",
                                         "progress.json.corrupt-20250101-120000-1",
                                         "progress.json.corrupt-20250101-120000-2"]
    assert [b.read_text() for b in backups] == ["{first", "{second", "{third"]


@pytest.mark.parametrize("content, reason", [
    ('{"schema_version": 1, "topics": "1,2,3"}',
     "'topics' should be an object mapping topic numbers to entries like {\"status\": "
     "\"complete\"}, found a string"),
    ('{"schema_version": 1, "topics": {"1": "complete"}}',
     "the entry for topic 1 should be an object like {\"status\": \"complete\"}, found a string"),
    ('{"schema_version": 1, "topics": {"1": {"status": "bogus"}}}',
     "the entry for topic 1 has status \"bogus\"; it should be \"complete\" or \"skipped\""),
    ('{"schema_version": 1, "topics": {"one": {"status": "complete"}}}',
     "'topics' has the key 'one', which is not a topic number"),
    ('{"schema_version": 1, "topics": {"99": {"status": "complete"}}}',
     "'topics' has an entry for topic 99, but topics are numbered 1-38"),
    ('{"schema_version": 1, "hints_seen": [1, 2]}',
     "'hints_seen' should be an object mapping topic numbers to hint levels 1-3, found a list"),
    ('{"schema_version": 1, "hints_seen": {"1": "two"}}',
     "'hints_seen' gives topic 1 the hint level \"two\"; levels are 1, 2 and 3"),
    ('{"schema_version": 1, "checks": {"1": {"passed": "yes"}}}',
     "the last check of topic 1 should be an object like {\"passed\": true}"),
    ('{"schema_version": "1"}', "'schema_version' is \"1\"; this dlfs reads 1"),
    ("[]", "it should be a JSON object, found a list"),
    ('{"topics": {}}', "it is not a dlfs progress file (it has no 'schema_version')"),
    ("{not json", "it is not valid JSON (Expecting property name enclosed in double quotes at "
                  "line 1, column 2)"),
])
def test_corruption_reasons_say_what_is_wrong_with_the_file(tmp_path, content, reason):
    path = tmp_path / "progress.json"
    path.write_text(content)
    warning = Progress.load(path).warnings[0]
    assert f"could not be read: {reason}" in warning
    assert "object has no attribute" not in warning and "invalid literal" not in warning


def test_an_unreadable_file_that_cannot_be_moved_aside_is_left_alone(tmp_path, monkeypatch):
    import errno

    from dlfs.course import progress

    def refuse(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied", str(dst))

    monkeypatch.setattr(progress, "move_aside", refuse)
    (tmp_path / "progress.json").write_text("{broken")
    with pytest.raises(DlfsError, match=r"could not be read: it is not valid JSON .* could not "
                                         r"be moved aside either \(Permission denied\)"):
        Progress.load(tmp_path / "progress.json")
    assert (tmp_path / "progress.json").read_text() == "{broken"


# -- the last check of the learner's file ----------------------------------------

def test_a_completed_topic_that_fails_again_stays_complete_and_is_flagged(tmp_path):
    from dlfs.course import progress

    p = Progress.load(tmp_path / "progress.json")
    assert p.record_check(1, False) == progress.FAILING and p.status(1) is None
    assert p.record_check(1, True) == progress.COMPLETED and p.status(1) == COMPLETE
    assert p.record_check(1, True) == progress.PASSING
    assert p.record_check(1, False) == progress.REGRESSED
    assert p.status(1) == COMPLETE and p.completed() == [1] and p.now_failing(1)
    p.save()
    q = Progress.load(p.path)
    assert q.now_failing(1) and q.last_check(1) is False and q.completed() == [1]
    assert q.record_check(1, True) == progress.FIXED and not q.now_failing(1)


def test_marking_by_hand_overrides_a_failing_check_and_unmark_forgets_it(tmp_path):
    p = Progress.load(tmp_path / "progress.json")
    p.record_check(2, True)
    p.record_check(2, False)
    assert p.now_failing(2)
    p.mark(2)
    assert not p.now_failing(2) and p.last_check(2) is None
    p.record_check(2, False)
    assert p.unmark(2) and p.last_check(2) is None and p.status(2) is None


def test_a_file_without_checks_still_loads(tmp_path):
    path = tmp_path / "progress.json"
    path.write_text('{"schema_version": 1, "topics": {"1": {"status": "complete"}}}')
    p = Progress.load(path)
    assert p.status(1) == COMPLETE and p.last_check(1) is None and not p.now_failing(1)


# -- topics that are not built yet never count -----------------------------------

def test_coming_topics_cannot_be_marked(tmp_path, coming_topic):
    from dlfs.errors import NotBuiltError

    p = Progress.load(tmp_path / "progress.json")
    with pytest.raises(NotBuiltError, match="Topic 20 .* not built yet"):
        p.mark(20)
    assert p.topics == {}


def test_a_coming_topic_marked_in_an_old_file_does_not_count(tmp_path, coming_topic):
    path = tmp_path / "progress.json"
    path.write_text('{"schema_version": 1, "topics": {"20": {"status": "complete"}, '
                    '"1": {"status": "complete"}}}')
    p = Progress.load(path)
    assert p.warnings == [] and p.completed() == [1] and p.status(20) is None
    assert p.unmark(20)                 # and it can be removed
