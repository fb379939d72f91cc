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
