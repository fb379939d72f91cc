"""Milestone 24's runner end to end with a tiny preset: record details, plots, checkpoints,
exact resumption, seeds, the harness."""

import json

import pytest

from dlfs.course import milestones
from dlfs.course.milestones import DEFAULT, RunOptions
from dlfs.milestones import date_attention as m24
from dlfs.seq2seq.dates import FORMATS

TINY = m24.Preset("tiny", m24.Config(embed_dim=4, enc_hidden=4, dec_hidden=8, attn_dim=4, epochs=2,
                                      steps_per_epoch=4, batch_size=16, warmup_steps=2, val_examples=40,
                                      test_limit=60, beam_size=2), target=0.0)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setitem(m24.PRESETS, "tiny", TINY)
    monkeypatch.setattr(m24, "SPEC", m24.spec_for(m24.PRESETS))
    monkeypatch.setattr(milestones, "PROJECT_ROOT", tmp_path / "project")
    monkeypatch.setenv("DLFS_WORKSPACE", str(tmp_path / "ws"))
    return {"ckpt": tmp_path / "ckpt", "out": tmp_path / "plots"}


def run_tiny(tiny, seed=0, resume=False, plots=False):
    return m24.run(RunOptions("tiny", seed, None, tiny["ckpt"] / f"milestone-24-tiny-seed{seed}.npz", resume,
                              tiny["out"] if plots else None, progress=False, log=lambda s: None))


def test_a_run_trains_records_details_plots_and_a_checkpoint(tiny):
    result = run_tiny(tiny, plots=True)
    d = result.details
    assert d["test_examples"] == 60 and d["test_dates"] == 10_000 and d["attention"] is True, d
    assert d["train_examples_seen"] == 2 * 4 * 16 and len(d["history"]["val_exact_match"]) == 2, d["history"]
    assert 0.0 <= result.value <= 1.0 and result.value == d["test_exact_match"]
    assert set(d["test_exact_match_by_format"]) <= {f.name for f in FORMATS}
    assert "test_exact_match_beam2" in d and 0.0 <= d["test_token_accuracy"] <= 1.0
    assert len(d["test_errors"]) == min(20, round((1 - result.value) * 60)), d["test_errors"][:2]
    assert {"cpu_time_s", "load_average_1min", "blas_threads", "config"} <= set(d)
    for name in ("learning_curves-seed0.png", "attention-seed0.png"):
        assert (tiny["out"] / name).stat().st_size > 1000, f"{name} was not written"
    assert (tiny["ckpt"] / "milestone-24-tiny-seed0.npz").exists()
    json.dumps(d)                                                  # the record is JSON


def test_a_killed_run_resumed_ends_like_an_uninterrupted_one(tiny, monkeypatch):
    from dlfs.seq2seq import training

    straight = run_tiny(tiny)
    step, calls = training.train_step, []

    def killed_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) > TINY.config.steps_per_epoch:
            raise KeyboardInterrupt
        return step(*args, **kwargs)

    tiny["ckpt"] = tiny["ckpt"].parent / "other-ckpt"
    monkeypatch.setattr(training, "train_step", killed_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        run_tiny(tiny)
    monkeypatch.setattr(training, "train_step", step)
    resumed = run_tiny(tiny, resume=True)
    assert resumed.details["resumed_after_epoch"] == 1
    assert resumed.details["history"]["train_loss"] == straight.details["history"]["train_loss"], \
        "the resumed run's history differs from the uninterrupted run's"
    assert resumed.value == straight.value and resumed.details["test_errors"] == straight.details["test_errors"]


def test_resuming_with_other_settings_is_refused(tiny, monkeypatch):
    from dlfs.errors import DataError

    run_tiny(tiny)
    monkeypatch.setitem(m24.PRESETS, "tiny", m24.Preset("tiny", m24.Config(**{**TINY.config.__dict__, "lr": 1e-2})))
    with pytest.raises(DataError, match="other settings"):
        run_tiny(tiny, resume=True)


def test_same_seed_same_result_other_seed_other_training(tiny):
    a, b, c = run_tiny(tiny, seed=3), run_tiny(tiny, seed=3), run_tiny(tiny, seed=4)
    assert a.details["history"]["train_loss"] == b.details["history"]["train_loss"] and a.value == b.value
    assert c.details["history"]["train_loss"] != a.details["history"]["train_loss"]


def test_the_no_attention_preset_trains_topic_23s_model(tiny, monkeypatch):
    cfg = m24.Config(**{**TINY.config.__dict__, "attention": False, "hidden": 8})
    monkeypatch.setitem(m24.PRESETS, "tiny", m24.Preset("tiny", cfg, target=0.0))
    result = run_tiny(tiny, plots=True)
    assert result.details["model"].startswith("Seq2Seq(") and result.details["attention"] is False
    assert (tiny["out"] / "learning_curves-seed0.png").exists() and not (tiny["out"] / "attention-seed0.png").exists()


def test_the_harness_records_the_preset_and_resumes_from_the_workspace(tiny, tmp_path):
    result, rec = milestones.run(24, preset="tiny", progress=False, log=lambda s: None)
    results = tmp_path / "ws" / "results"
    stored = json.loads((results / "milestone-24.json").read_text())
    assert stored["runs"][-1]["preset"] == "tiny" and stored["summary"]["tiny"]["median"] == rec["value"]
    assert (results / "milestone-24" / "tiny" / "attention-seed0.png").exists()
    again, _ = milestones.run(24, preset="tiny", resume=True, progress=False, log=lambda s: None)
    assert again.details["resumed_after_epoch"] == 2 and again.value == result.value
    assert not (tmp_path / "project").exists()


def test_the_default_preset_is_the_milestone():
    spec = m24.SPEC
    assert spec.default_preset == DEFAULT and spec.resumable
    target = spec.target(DEFAULT)
    assert target.value == 0.995 and target.max_seconds == 600 and target.metric == "test_exact_match"
    cfg = m24.PRESETS[DEFAULT].config
    assert cfg.attention and cfg.test_limit is None, "the full run is measured on the whole held-out test set"
    assert m24.SMOKE.config.test_limit is not None and m24.SMOKE.max_seconds is None


def test_the_projects_record_is_consistent():
    """The recorded summary is what the harness computes from the recorded runs, and every run
    names its plots, which exist."""
    from dlfs.course.registry import REPO_ROOT

    stored = json.loads((REPO_ROOT / "results" / "milestone-24.json").read_text())
    for name, summary in stored["summary"].items():
        mine = [r for r in stored["runs"] if (r.get("preset") or DEFAULT) == name]
        assert milestones.summarize(mine) == summary, f"summary {name!r} of milestone-24.json"
    for run in stored["runs"]:
        assert run["details"]["test_examples"] == 10_000 and not run["smoke"]
        for artifact in run["artifacts"]:
            assert (REPO_ROOT / artifact).exists(), artifact
