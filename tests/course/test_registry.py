import re

import pytest

from dlfs.course.registry import MILESTONES, REPO_ROOT, TOPICS, all_topics, built_topics, get_topic
from dlfs.errors import NotBuiltError, UsageError


def test_the_registry_holds_all_38_topics_in_6_modules():
    assert sorted(TOPICS) == list(range(1, 39))
    assert sorted({t.module for t in all_topics()}) == [0, 1, 2, 3, 4, 5]
    assert sorted(MILESTONES) == [10, 17, 24, 30, 34]
    assert len({t.slug for t in all_topics()}) == 38


@pytest.mark.parametrize("topic", built_topics(), ids=lambda t: t.id)
def test_every_built_topic_has_its_content(topic):
    for path in [topic.lesson, topic.folder / "questions.md", *(topic.hint(i) for i in (1, 2, 3))]:
        assert path.exists(), f"Topic {topic.id}: missing {path}"
        assert len(path.read_text().strip()) > 50, f"Topic {topic.id}: {path} is nearly empty"
    assert topic.test_files, f"Topic {topic.id}: no test_*.py in {topic.folder}"
    assert topic.modules and all(p.exists() for p in topic.reference_paths().values())


def test_unknown_and_unbuilt_topics_raise_clear_errors():
    with pytest.raises(UsageError, match="There is no Topic 39"):
        get_topic(39)
    unbuilt = next(t for t in all_topics() if not t.built)
    with pytest.raises(NotBuiltError, match="coming"):
        get_topic(unbuilt.number)


def test_roadmap_states_what_is_built():
    text = (REPO_ROOT / "ROADMAP.md").read_text()
    rows = dict(re.findall(r"^\| (\d\d) \| .*\| (built|coming) \|$", text, flags=re.M))
    assert sorted(int(n) for n in rows) == list(range(1, 39)), "ROADMAP.md must list all 38 topics"
    for n, status in rows.items():
        expected = "built" if TOPICS[int(n)].built else "coming"
        assert status == expected, f"ROADMAP.md says Topic {n} is {status}, the registry says {expected}"
    for number, ms in MILESTONES.items():
        row = re.search(rf"^\| {re.escape(ms.name)} \| {number} \|.*\| (.+) \|$", text, flags=re.M)
        assert row, f"ROADMAP.md has no milestone row for M{number}"
        assert (row.group(1) == "not built yet") == (not ms.built), \
            f"ROADMAP.md milestone M{number} status {row.group(1)!r} disagrees with the registry"


def test_issue_templates_and_seed_commands_exist():
    for name in ("stuck-on-topic.md", "bug_report.md", "curriculum-gap.md"):
        assert (REPO_ROOT / ".github" / "ISSUE_TEMPLATE" / name).exists()
    for name in ("progress.py", "milestone_eval.py", "autograd_stub.py"):
        assert (REPO_ROOT / "utils" / name).exists()
