"""Milestone 17's runner end to end on a tiny CIFAR-10 folder in the canonical binary layout."""

import json

import numpy as np
import pytest

from dlfs.course import milestones
from dlfs.course.milestones import RunOptions
from dlfs.milestones import cifar_resnet
from dlfs.train.recipe import TrainConfig
from linear_model import LinearModel

PER_BATCH = 20


def write_tiny_cifar(root):
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = np.arange(PER_BATCH, dtype=np.uint8) % 10
        images = rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8)
        images[:, :1024] = labels[:, None] * 25          # the red channel encodes the class
        records = np.concatenate([labels[:, None], images], axis=1)
        (folder / f"{name}.bin").write_bytes(records.tobytes())
    return root


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    from dlfs.data import cifar

    monkeypatch.setattr(cifar, "RECORDS_PER_BATCH", PER_BATCH)
    add_tiny_preset(monkeypatch, cifar_resnet.Preset(
        "tiny", 1, (4, 8, 8), TrainConfig(epochs=2, batch_size=25, eval_batch_size=10, warmup_epochs=0.5),
        target=0.0))
    monkeypatch.setattr(milestones, "PROJECT_ROOT", tmp_path / "project")
    monkeypatch.setenv("DLFS_WORKSPACE", str(tmp_path / "ws"))
    return {"data": str(write_tiny_cifar(tmp_path / "data")), "ckpt": tmp_path / "ckpt",
            "out": tmp_path / "plots"}


def add_tiny_preset(monkeypatch, preset):
    monkeypatch.setitem(cifar_resnet.PRESETS, "tiny", preset)
    monkeypatch.setattr(cifar_resnet, "SPEC", cifar_resnet.spec_for(cifar_resnet.PRESETS))


def run_tiny(tiny, seed=0, resume=False):
    return cifar_resnet.run(RunOptions(
        "tiny", seed, tiny["data"], tiny["ckpt"] / f"milestone-17-tiny-seed{seed}.npz", resume,
        tiny["out"], progress=False, log=lambda s: None))


def test_a_run_trains_records_details_plots_and_a_checkpoint(tiny):
    result = run_tiny(tiny)
    d = result.details
    assert d["train_images"] == 5 * PER_BATCH and d["test_images"] == PER_BATCH, d
    assert d["epochs_trained"] == 2 and len(d["history"]["test_acc"]) == 2, d["history"]
    assert 0.0 <= result.value <= 1.0 and result.value == d["history"]["test_acc"][-1]
    assert set(d["per_class_accuracy"]) == {"airplane", "automobile", "bird", "cat", "deer", "dog",
                                           "frog", "horse", "ship", "truck"}
    assert np.array(d["confusion_matrix"]).sum() == PER_BATCH
    for name in ("learning_curves.png", "confusion_matrix.png", "per_class_accuracy.png"):
        assert (tiny["out"] / name).stat().st_size > 1000, f"{name} was not written"
    assert (tiny["ckpt"] / "milestone-17-tiny-seed0.npz").exists()


def test_resuming_a_finished_run_gives_the_same_model_without_training(tiny):
    first = run_tiny(tiny)
    again = run_tiny(tiny, resume=True)
    assert again.value == first.value, f"expected {first.value} after resuming, got {again.value}"
    assert again.details["history"] == first.details["history"]
    assert again.details["resumed_after_epoch"] == 2


def test_a_killed_run_resumed_ends_like_an_uninterrupted_one_and_says_so(tiny, monkeypatch):
    from dlfs.train import recipe

    straight = run_tiny(tiny)
    assert straight.details["resumed_after_epoch"] is None
    fit = recipe.fit
    monkeypatch.setattr(recipe, "fit", lambda *a, **kw: fit(*a, **kw, stop_after_epoch=1))
    tiny["ckpt"] = tiny["ckpt"].parent / "other-ckpt"
    run_tiny(tiny)                                            # "killed" after epoch 1
    monkeypatch.setattr(recipe, "fit", fit)
    resumed = run_tiny(tiny, resume=True)
    assert resumed.details["resumed_after_epoch"] == 1, resumed.details["resumed_after_epoch"]
    assert resumed.details["history"]["test_loss"] == straight.details["history"]["test_loss"], \
        "the resumed run's history differs from the uninterrupted run's"
    assert resumed.value == straight.value, f"expected {straight.value} after resuming, got {resumed.value}"


def test_same_seed_same_result_other_seed_other_weights(tiny):
    a, b = run_tiny(tiny, seed=3), run_tiny(tiny, seed=3)
    for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
        assert a.details["history"][key] == b.details["history"][key], f"{key} differs between equal seeds"
    c = run_tiny(tiny, seed=4)
    assert c.details["history"]["train_loss"] != a.details["history"]["train_loss"]


def test_the_harness_records_the_preset_and_resumes_from_the_workspace(tiny, tmp_path):
    result, rec = milestones.run(17, data_dir=tiny["data"], preset="tiny", progress=False,
                                 log=lambda s: None)
    results = tmp_path / "ws" / "results"
    stored = json.loads((results / "milestone-17.json").read_text())
    assert stored["runs"][-1]["preset"] == "tiny" and "tiny" in stored["summary"], stored["summary"]
    assert stored["summary"]["tiny"]["median"] == rec["value"]
    assert (results / "milestone-17" / "tiny" / "learning_curves.png").exists()
    assert (tmp_path / "ws" / "checkpoints" / "milestone-17-tiny-seed0.npz").exists()
    again, _ = milestones.run(17, data_dir=tiny["data"], preset="tiny", resume=True, progress=False,
                              log=lambda s: None)
    assert again.details["resumed_after_epoch"] == 2 and again.value == result.value
    assert not (tmp_path / "project").exists()


def test_a_resumed_run_is_timed_with_the_epochs_its_checkpoint_holds(tiny, monkeypatch):
    from dlfs.train import recipe

    fit = recipe.fit
    monkeypatch.setattr(recipe, "fit", lambda *a, **kw: fit(*a, **kw, stop_after_epoch=1))
    milestones.run(17, data_dir=tiny["data"], preset="tiny", progress=False, log=lambda s: None)  # "killed"
    monkeypatch.setattr(recipe, "fit", fit)
    result, rec = milestones.run(17, data_dir=tiny["data"], preset="tiny", resume=True, progress=False,
                                 log=lambda s: None)
    d = rec["details"]
    first_epoch = d["history"]["epoch_time_s"][0]
    assert d["resumed_after_epoch"] == 1 and d["wall_time_before_resume_s"] == round(first_epoch, 2), d
    assert rec["wall_time_s"] == pytest.approx(d["wall_time_this_run_s"] + first_epoch, abs=0.02), \
        f"expected this run's {d['wall_time_this_run_s']} s plus epoch 1's {first_epoch} s, got {rec['wall_time_s']}"
    assert result.wall_time_s == pytest.approx(rec["wall_time_s"], abs=0.01)
    straight, rec = milestones.run(17, data_dir=tiny["data"], preset="tiny", seed=1, progress=False,
                                   log=lambda s: None)
    assert "wall_time_before_resume_s" not in rec["details"], "an uninterrupted run has no earlier part"


def test_the_data_note_comes_from_the_data_layer(tiny, monkeypatch):
    import dlfs.data

    seen = []

    def describe_copy(name, folder):
        seen.append((name, str(folder)))
        return "a note from the data layer"

    monkeypatch.setattr(dlfs.data, "describe_copy", describe_copy)
    result = run_tiny(tiny)
    assert result.details["data_note"] == "a note from the data layer", result.details["data_note"]
    assert seen == [("cifar10", result.details["data_source"])], seen


def test_the_runner_knows_nothing_of_folders_beside_the_repository():
    import inspect

    source = inspect.getsource(cifar_resnet)
    assert "shared" not in source and "REPO_ROOT" not in source


def test_the_resnet9_preset_builds_resnet9_and_reports_flip_tta(tiny, monkeypatch):
    from dlfs.conv.resnet9 import ResNet9

    preset = cifar_resnet.PRESETS["resnet9"]
    assert isinstance(preset.build(np.random.default_rng(0)), ResNet9) and preset.flip_tta
    assert preset.name == "ResNet-9 base width 32", preset.name
    add_tiny_preset(monkeypatch, cifar_resnet.Preset(
        "tiny", 0, (2,), TrainConfig(epochs=1, batch_size=25, eval_batch_size=10, warmup_epochs=0.5),
        target=0.0, arch="resnet9", flip_tta=True))
    result = run_tiny(tiny)
    d = result.details
    assert d["model"] == "ResNet-9 base width 2" and "flip" in d["evaluation"], d
    assert d["test_accuracy_without_tta"] == d["history"]["test_acc"][-1], d
    assert np.trace(np.array(d["confusion_matrix"])) == round(result.value * PER_BATCH), \
        "the confusion matrix must come from the same (TTA) predictions as the reported accuracy"


def test_predict_flip_tta_averages_the_logits_of_each_image_and_its_mirror():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 2, 3, 4))
    model = LinearModel(rng.standard_normal((24, 5)))
    expected = np.argmax(model.forward(x) + model.forward(x[..., ::-1]), axis=1)
    for batch in (1, 3, 100):
        got = cifar_resnet.predict_flip_tta(model, x, batch)
        assert np.array_equal(got, expected), f"batch {batch}: expected {expected}, got {got}"
    plain = np.argmax(model.forward(x), axis=1)
    assert not np.array_equal(expected, plain), "the example should tell TTA from plain prediction"


def test_the_default_preset_is_a_real_preset_with_the_90_percent_target():
    default = cifar_resnet.PRESETS[cifar_resnet.DEFAULT_PRESET]
    assert default.target == 0.90 and default.train_limit is None and default.test_limit is None, default
    spec = cifar_resnet.SPEC
    assert spec.default_preset == cifar_resnet.DEFAULT_PRESET and spec.resumable
    assert spec.target(spec.default_preset).value == 0.90 and spec.smoke_target.value == cifar_resnet.SMOKE.target
    assert list(spec.presets) == list(cifar_resnet.PRESETS), "every preset is declared, with its description"
