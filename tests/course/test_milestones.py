"""The milestone harness: the runner contract, where output goes, records and summaries."""

import json
import sys
import types

import pytest

from dlfs.course import milestones, redirect, registry
from dlfs.course.milestones import Measurement, MilestoneResult, MilestoneSpec, PresetInfo, Target
from dlfs.errors import NotBuiltError, UsageError

FAKE_SPEC = MilestoneSpec(
    milestone=10, title="a fake model", dataset="mnist",
    presets={"base": PresetInfo("the base configuration"),
             "big": PresetInfo("a bigger configuration", Target("accuracy", 0.7))},
    default_preset="base",
    full_target=Target("accuracy", 0.55),
    smoke_description="a tiny configuration",
    smoke_target=Target("accuracy", 0.3),
    resumable=True,
)


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """Milestone 10 served by a fake runner; the project's folders and the workspace in tmp."""
    calls = []

    def runner(opts):
        calls.append(opts)
        artifacts = []
        if opts.output_dir is not None:
            opts.output_dir.mkdir(parents=True, exist_ok=True)
            plot = opts.output_dir / "plot.png"
            plot.write_bytes(b"png")
            artifacts.append(str(plot))
        return Measurement(0.5 + opts.seed / 10, {"preset_seen": opts.preset}, artifacts)

    mod = types.ModuleType("fake_runner_mod")
    mod.run, mod.SPEC = runner, FAKE_SPEC
    monkeypatch.setitem(sys.modules, "fake_runner_mod", mod)
    monkeypatch.setitem(registry.MILESTONES, 10, registry.Milestone(10, "Fake", "≥ 0.55", "fake_runner_mod:run"))
    monkeypatch.setattr(milestones, "PROJECT_ROOT", tmp_path / "project")
    monkeypatch.setenv("DLFS_WORKSPACE", str(tmp_path / "ws"))
    return types.SimpleNamespace(calls=calls, project=tmp_path / "project", ws=tmp_path / "ws", mod=mod)


def records(path):
    return json.loads(path.read_text())["runs"]


def test_full_runs_append_a_record_with_measured_numbers(fake):
    result, rec = milestones.run(10, seed=1)
    assert result.passed and rec["value"] == pytest.approx(0.6)
    milestones.run(10, seed=0)
    runs = records(fake.ws / "results" / "milestone-10.json")
    assert [r["seed"] for r in runs] == [1, 0]
    assert [r["passed"] for r in runs] == [True, False]
    for key in ("metric", "target", "wall_time_s", "machine", "commit", "seed", "date", "preset"):
        assert key in runs[0]


def test_a_learners_run_goes_to_the_workspace_and_leaves_the_project_alone(fake):
    milestones.run(10, seed=1)
    ws_results = fake.ws / "results"
    assert (ws_results / "milestone-10.json").exists()
    assert (ws_results / "milestone-10" / "base" / "plot.png").exists(), list(ws_results.rglob("*"))
    assert not fake.project.exists(), f"a run without record=True wrote {list(fake.project.rglob('*'))}"
    assert fake.calls[-1].checkpoint.parent == fake.ws / "checkpoints", fake.calls[-1].checkpoint


def test_only_record_writes_the_projects_records(fake):
    milestones.run(10, seed=1, record=True)
    assert len(records(fake.project / "results" / "milestone-10.json")) == 1
    assert (fake.project / "results" / "milestone-10" / "base" / "plot.png").exists()
    assert fake.calls[-1].checkpoint.parent == fake.project / "checkpoints"
    assert not (fake.ws / "results").exists()


def test_smoke_runs_apply_the_smoke_target_and_write_nothing(fake):
    p = milestones.plan(10, smoke=True)
    assert p.target == FAKE_SPEC.smoke_target and "≥ 30.0%" in p.header() and "55" not in p.header()
    result, _ = milestones.execute(p, p.runs[0])
    opts = fake.calls[-1]
    assert opts.smoke and opts.output_dir is None and opts.checkpoint is None, opts
    assert result.target.value == 0.3 and result.passed, result
    assert not fake.ws.exists() and not fake.project.exists()


def test_a_presets_own_target_is_the_one_applied_and_printed(fake):
    p = milestones.plan(10, preset="big")
    assert p.target.value == 0.7 and "≥ 70.0%" in p.header(), p.header()
    result, rec = milestones.execute(p, p.runs[0])
    assert rec["target"] == 0.7 and rec["preset"] == "big" and not result.passed


def test_unknown_preset_is_a_usage_error_listing_the_presets_before_anything_runs(fake):
    with pytest.raises(UsageError) as info:
        milestones.plan(10, preset="fastest")
    msg = str(info.value)
    for words in ("'fastest'", "base", "the base configuration", "big", "≥ 70.0%", "--smoke"):
        assert words in msg, f"{words!r} missing from: {msg}"
    assert fake.calls == []


@pytest.mark.parametrize("request_, words", [
    ({"smoke": True, "preset": "big"}, "leave out --preset"),
    ({"smoke": True, "record": True}, "never recorded"),
    ({"record": True, "learner_topics": [1]}, "reference code"),
    ({"smoke": True, "resume": True}, "no checkpoints"),
])
def test_contradictory_requests_are_refused(fake, request_, words):
    with pytest.raises(UsageError, match=words):
        milestones.plan(10, **request_)


def test_resume_on_a_runner_that_keeps_no_checkpoints_is_refused(fake, monkeypatch):
    from dataclasses import replace

    monkeypatch.setattr(fake.mod, "SPEC", replace(FAKE_SPEC, resumable=False))
    with pytest.raises(UsageError, match="keeps no checkpoints"):
        milestones.plan(10, resume=True)


def test_resume_without_a_checkpoint_says_where_it_looked(fake):
    expected = fake.ws / "checkpoints" / "milestone-10-base-seed3.npz"
    with pytest.raises(UsageError) as info:
        milestones.plan(10, resume=True, seeds=(3,))
    assert str(expected) in str(info.value), str(info.value)
    project_ckpt = fake.project / "checkpoints" / expected.name
    project_ckpt.parent.mkdir(parents=True)
    project_ckpt.write_bytes(b"ckpt")
    with pytest.raises(UsageError, match="add --record"):
        milestones.plan(10, resume=True, seeds=(3,))
    assert fake.calls == []


def test_resume_with_a_checkpoint_hands_it_to_the_runner(fake):
    ckpt = fake.ws / "checkpoints" / "milestone-10-big-seed0.npz"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"ckpt")
    fresh = milestones.plan(10, preset="big")
    assert any("will be overwritten" in n for n in fresh.notes), fresh.notes
    p = milestones.plan(10, preset="big", resume=True)
    milestones.execute(p, p.runs[0])
    assert fake.calls[-1].resume and fake.calls[-1].checkpoint == ckpt


def test_learner_sources_say_which_topics_use_whose_code_and_why(fake):
    from dlfs.course.workspace import ensure_exercise

    t1, t2 = registry.get_topic(1), registry.get_topic(2)
    ensure_exercise(t1)
    ensure_exercise(t2)
    broken = t2.workspace_file(fake.ws, t2.modules[0])
    broken.write_text("def oops(:\n    pass\n")
    sources = {s.topic: s for s in milestones.learner_sources(10, completed=[1, 2, 3])}
    assert sources[1].used, sources[1]
    assert "syntax error on line 1" in sources[2].reason, sources[2].reason
    assert "missing" in sources[3].reason and "03-" in sources[3].reason, sources[3].reason
    assert sources[4].reason == "not completed", sources[4].reason
    assert max(sources) <= 10, "topics after the milestone are not part of it"
    lines = milestones.describe_sources(tuple(sources.values()))
    assert lines[0] == "your code:      topics 01", lines
    assert any(line.startswith("reference code: topic 04 (not completed)") for line in lines), lines


def test_a_learner_run_records_the_topics_used_and_removes_its_redirect(fake):
    from dlfs.course.workspace import ensure_exercise

    ensure_exercise(registry.get_topic(1))
    seen = []
    fake.mod.run = lambda opts: (seen.append([type(f) for f in sys.meta_path]), Measurement(0.9))[1]
    _, rec = milestones.run(10, learner_topics=[1])
    assert redirect.RedirectFinder in seen[0], "the learner's code was not served during the run"
    assert rec["details"]["learner_topics"] == [1]
    assert not any(isinstance(f, redirect.RedirectFinder) for f in sys.meta_path)


def test_a_missed_time_bound_fails_and_says_so():
    target = Target("test_accuracy", 0.98, max_seconds=60)
    assert target.describe() == "test accuracy ≥ 98.0% in ≤ 60 s"
    fast, slow = MilestoneResult(target, 0.985, 47.0), MilestoneResult(target, 0.985, 61.0)
    assert fast.passed and not slow.passed
    assert "over the 60 s bound" in slow.verdict() and "bound" not in fast.verdict(), slow.verdict()
    assert not MilestoneResult(Target("loss", 1.5, higher_is_better=False, percent=False), 1.6, 1).passed


def test_unbuilt_milestones_say_so(coming_milestone):
    with pytest.raises(NotBuiltError, match="not built yet"):
        milestones.run(coming_milestone, smoke=True)


def test_every_entry_declares_a_consistent_spec():
    for key in milestones.entry_keys():
        if key.isdigit() and not registry.MILESTONES[int(key)].built:
            continue
        entry = milestones.resolve(key)
        spec = entry.spec
        assert spec.milestone in registry.MILESTONES, (key, spec.milestone)
        if key.isdigit():
            assert spec.milestone == int(key), f"Milestone {key}'s runner records as {spec.milestone}"
        assert spec.default_preset in spec.presets and spec.smoke_target.metric == spec.full_target.metric
        for alias, other in spec.aliases.items():
            assert milestones.resolve(other).spec.presets, (alias, other)


def test_the_mnist_cnn_has_its_own_entry_and_the_milestone_17_alias_leads_there(tmp_path, monkeypatch):
    monkeypatch.setenv("DLFS_WORKSPACE", str(tmp_path))
    own = milestones.plan("mnist-cnn")
    via = milestones.plan(17, preset="mnist-cnn")
    for p in (own, via):
        assert p.entry.key == "mnist-cnn" and p.preset == "mnist-cnn" and p.target.value == 0.99
        assert p.records_file == tmp_path / "results" / "milestone-17.json"
        assert p.runs[0].output_dir == tmp_path / "results" / "milestone-17" / "mnist-cnn"
    assert any("dlfs milestone mnist-cnn" in n for n in via.notes), via.notes
    assert "mnist-cnn" not in milestones.resolve(17).spec.presets


def test_run_all_reports_unbuilt_milestones_without_failing(fake, coming_milestone):
    lines = []
    code = milestones.run_all(smoke=True, seed=1, echo=lines.append)
    assert code == 0
    assert any("not built yet" in line for line in lines)
    assert any(line.startswith("M10") and "passed" in line for line in lines)


def test_run_all_fails_when_a_built_milestone_misses_its_target(fake, monkeypatch):
    monkeypatch.setattr(fake.mod, "run", lambda opts: Measurement(0.1))
    assert milestones.run_all(smoke=True, seed=0, echo=lambda s: None) == 1


def test_summary_takes_the_median_of_the_newest_configuration_per_seed():
    base = {"metric": "test_accuracy", "target": 0.98, "higher_is_better": True, "smoke": False,
            "wall_time_s": 40.0}
    runs = [
        {**base, "commit": "old", "seed": 0, "value": 0.50},
        {**base, "commit": "new", "seed": 0, "value": 0.981},
        {**base, "commit": "new", "seed": 1, "value": 0.979, "wall_time_s": 50.0},
        {**base, "commit": "new", "seed": 2, "value": 0.985},
    ]
    s = milestones.summarize(runs)
    assert s["seeds"] == [0, 1, 2], s
    assert s["median"] == 0.981, f"expected the median 0.981 of the three new runs, got {s['median']}"
    assert s["max_wall_time_s"] == 50.0 and s["passed"] is True
    bounded = [{**r, "target_wall_time_s": 45.0} for r in runs]
    assert milestones.summarize(bounded)["passed"] is True          # median wall time 40 s
    slow = [{**r, "target_wall_time_s": 30.0} for r in runs]
    assert milestones.summarize(slow)["passed"] is False


@pytest.mark.parametrize("number", [10, 17])
def test_the_projects_recorded_results_stay_valid(number):
    """Every stored summary is what the current code computes from the stored runs."""
    stored = json.loads((registry.REPO_ROOT / "results" / f"milestone-{number:02d}.json").read_text())
    runs = stored["runs"]
    for name, summary in stored["summary"].items():
        mine = [r for r in runs if (r.get("preset") or "default") == name]
        assert milestones.summarize(mine) == summary, f"summary {name!r} of milestone-{number:02d}.json"
