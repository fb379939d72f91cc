import re

import pytest

from click.testing import CliRunner

from dlfs.cli import main
from dlfs.course import registry
from dlfs.course.registry import (
    COURSE_DIR_ENV, MILESTONES, PART_TITLES, REPO_ROOT, TOPICS, CourseNotFoundError, all_topics, built_topics,
    course_root, get_topic,
)
from dlfs.course.workspace import workspace_dir
from dlfs.errors import NotBuiltError, UsageError


def test_the_registry_holds_all_38_topics_in_6_modules():
    assert sorted(TOPICS) == list(range(1, 39))
    assert sorted({t.part for t in all_topics()}) == sorted(PART_TITLES) == [0, 1, 2, 3, 4, 5]
    assert sorted(MILESTONES) == [10, 17, 24, 30, 34]
    assert len({t.slug for t in all_topics()}) == 38


@pytest.mark.parametrize("topic", built_topics(), ids=lambda t: t.id)
def test_every_built_topic_has_its_content(topic):
    for path in [topic.lesson, topic.folder / "questions.md", *(topic.hint(i) for i in (1, 2, 3))]:
        assert path.exists(), f"Topic {topic.id}: missing {path}"
        assert len(path.read_text().strip()) > 50, f"Topic {topic.id}: {path} is nearly empty"
    assert topic.test_files, f"Topic {topic.id}: no test_*.py in {topic.folder}"
    assert topic.modules and all(p.exists() for p in topic.reference_paths().values())


def test_unknown_and_unbuilt_topics_raise_clear_errors(coming_topic):
    with pytest.raises(UsageError, match="There is no Topic 39"):
        get_topic(39)
    with pytest.raises(NotBuiltError, match="coming"):
        get_topic(coming_topic)


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


# ----------------------------------------------------------------- where the course content is found

@pytest.fixture
def no_course_env(monkeypatch):
    monkeypatch.delenv(COURSE_DIR_ENV, raising=False)
    monkeypatch.delenv("DLFS_WORKSPACE", raising=False)
    return monkeypatch


def test_the_course_root_is_the_checkout_the_package_is_loaded_from(no_course_env):
    checkout = registry.PACKAGE_CHECKOUT
    assert course_root() == checkout and (checkout / "src" / "dlfs").is_dir()
    assert TOPICS[1].folder == checkout / "topics" / "01-tensors-broadcasting"
    assert workspace_dir() == (checkout / "workspace").resolve()


def test_dlfs_course_dir_points_at_another_clone(no_course_env, tmp_path):
    (tmp_path / "topics" / "01-tensors-broadcasting").mkdir(parents=True)
    no_course_env.setenv(COURSE_DIR_ENV, str(tmp_path))
    assert course_root() == tmp_path.resolve()
    assert TOPICS[1].folder == tmp_path.resolve() / "topics" / "01-tensors-broadcasting"
    assert workspace_dir() == tmp_path.resolve() / "workspace", "the workspace follows the course"


def test_dlfs_course_dir_without_topics_is_a_clear_error(no_course_env, tmp_path):
    no_course_env.setenv(COURSE_DIR_ENV, str(tmp_path))
    with pytest.raises(CourseNotFoundError, match=rf"{COURSE_DIR_ENV} is .*{tmp_path.name}, which has no topics/"):
        TOPICS[1].lesson


def wheel_install(monkeypatch, tmp_path):
    """The package as a wheel installs it: .../site-packages/dlfs, with no topics/ anywhere near."""
    package = tmp_path / "lib" / "python3.11" / "site-packages" / "dlfs"
    package.mkdir(parents=True)
    monkeypatch.setattr(registry, "SRC_ROOT", package)
    monkeypatch.setattr(registry, "PACKAGE_CHECKOUT", package.parents[1])


def test_an_install_without_the_course_says_what_to_do(no_course_env, tmp_path):
    wheel_install(no_course_env, tmp_path)
    assert registry.find_course_root() is None
    for needs_course in (course_root, lambda: TOPICS[1].test_files, workspace_dir):
        with pytest.raises(CourseNotFoundError, match=r"(?s)pip install -e \.`.*DLFS_COURSE_DIR"):
            needs_course()
    assert get_topic(1).reference_paths(), "the library itself (the reference modules) is still found"


@pytest.mark.parametrize("args", [["info", "1"], ["hint", "1"], ["check", "1"], ["status"]])
def test_course_commands_without_the_course_fail_with_that_message(no_course_env, tmp_path, args):
    wheel_install(no_course_env, tmp_path)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == CourseNotFoundError.exit_code != 0, result.output
    assert "topics/" in result.output and "pip install -e ." in result.output and COURSE_DIR_ENV in result.output
    assert not list(tmp_path.rglob("workspace")), "nothing may be written beside the installed package"
