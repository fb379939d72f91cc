"""`dlfs milestone` and `utils/milestone_eval.py` through their command lines: requests are
checked before anything runs, the header shows the target applied, a learner's run stays in
the workspace, and a refused dataset is a failure, not a skip."""

import os
import pickle
import subprocess
import sys

import pytest
from click.testing import CliRunner

from dlfs.cli import main
from dlfs.course import milestones, registry
from dlfs.milestones.cifar_resnet import DEFAULT_PRESET as DEFAULT_17


@pytest.fixture
def dlfs(tmp_path, monkeypatch):
    ws, empty = tmp_path / "workspace", tmp_path / "no-data"
    empty.mkdir()
    monkeypatch.setenv("DLFS_WORKSPACE", str(ws))
    monkeypatch.setenv("DLFS_DATA_DIR", str(empty))
    monkeypatch.setattr(milestones, "PROJECT_ROOT", tmp_path / "project")
    runner = CliRunner()

    def run(*args):
        return runner.invoke(main, list(args), catch_exceptions=False)

    run.workspace, run.project = ws, tmp_path / "project"
    return run


@pytest.mark.parametrize("args, words", [
    (("10", "--smoke", "--preset", "quick"), ["no preset 'quick'", "default", "MLP 784-512-512-10", "--smoke"]),
    (("10", "--preset", "nope"), ["no preset 'nope'", "≥ 98.0% in ≤ 60 s"]),
    (("17", "--preset", "nope"), ["no preset 'nope'", f"{DEFAULT_17} (default)", "quick", "≥ 80.0%",
                                  "dlfs milestone mnist-cnn"]),
    (("10", "--resume"), ["keeps no checkpoints"]),
    (("17", "--smoke", "--record"), ["never recorded"]),
])
def test_bad_requests_are_clear_usage_errors(dlfs, args, words):
    r = dlfs("milestone", *args)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and "TypeError" not in r.output, r.output
    for w in words:
        assert w in r.output, f"{w!r} missing from:\n{r.output}"


def test_resume_without_a_checkpoint_stops_and_says_where_it_looked(dlfs):
    r = dlfs("milestone", "17", "--resume")
    assert r.exit_code == 2, r.output
    expected = dlfs.workspace / "checkpoints" / f"milestone-17-{DEFAULT_17}-seed0.npz"
    assert f"no checkpoint at {expected}" in r.output, r.output
    assert "epoch" not in r.output and "model:" not in r.output


def test_list_presets_shows_names_descriptions_and_targets(dlfs):
    r = dlfs("milestone", "17", "--list-presets")
    assert r.exit_code == 0, r.output
    for w in (f"{DEFAULT_17} (default)", "≥ 90.0%", "quick", "≥ 80.0%", "--smoke", "≥ 30.0%", "mnist-cnn"):
        assert w in r.output, f"{w!r} missing from:\n{r.output}"
    r = dlfs("milestone", "mnist-cnn", "--list-presets")
    assert r.exit_code == 0 and "≥ 99.0%" in r.output and "MNIST" in r.output, r.output


def test_a_smoke_header_shows_the_smoke_target(dlfs):
    r = dlfs("milestone", "10", "--smoke")
    assert r.exit_code == 4, r.output               # no MNIST in the empty data dir
    header = r.output.split("error:")[0]
    assert "smoke run" in header and "test accuracy ≥ 95.0%" in header, header
    assert "98" not in header and "60 s" not in header, f"the full target printed for a smoke run:\n{header}"


def test_the_mnist_cnn_is_its_own_entry(dlfs):
    r = dlfs("milestone", "mnist-cnn", "--smoke")
    assert r.exit_code == 4, r.output
    assert r.output.startswith("mnist-cnn (with Milestone 17)") and "≥ 95.0%" in r.output, r.output
    r = dlfs("milestone", "17", "--preset", "mnist-cnn")
    assert r.exit_code == 4 and "`dlfs milestone mnist-cnn`" in r.output and "≥ 99.0%" in r.output, r.output


def test_learner_says_whose_code_each_topic_uses_and_why(dlfs):
    from dlfs.course.workspace import ensure_exercise

    assert dlfs("mark", "1", "2", "3").exit_code == 0
    t2 = registry.get_topic(2)
    ensure_exercise(registry.get_topic(1))
    ensure_exercise(t2)
    t2.workspace_file(dlfs.workspace, t2.modules[0]).write_text("def oops(:\n")
    r = dlfs("milestone", "10", "--smoke", "--learner")
    assert r.exit_code == 4, r.output
    assert "your code:      topics 01\n" in r.output, r.output
    assert "topic 02 (Your file" in r.output and "syntax error on line 1" in r.output, r.output
    assert "topic 03 (" in r.output and "is missing)" in r.output, r.output
    assert "topic 04 (not completed)" in r.output, r.output


@pytest.fixture
def fake_runner(monkeypatch):
    import types

    from dlfs.course.milestones import Measurement

    def run(opts):
        opts.output_dir.mkdir(parents=True, exist_ok=True)
        (opts.output_dir / "plot.png").write_bytes(b"png")
        return Measurement(0.99, {}, [str(opts.output_dir / "plot.png")])

    mod = types.ModuleType("fake_m10")
    mod.run = run
    mod.SPEC = __import__("dlfs.milestones.mnist_mlp", fromlist=["SPEC"]).SPEC
    monkeypatch.setitem(sys.modules, "fake_m10", mod)
    monkeypatch.setitem(registry.MILESTONES, 10, registry.Milestone(10, "Fake", "≥ 98%", "fake_m10:run"))


def test_a_run_is_kept_in_the_workspace_unless_recorded(dlfs, fake_runner):
    r = dlfs("milestone", "10")
    assert r.exit_code == 0, r.output
    assert (dlfs.workspace / "results" / "milestone-10.json").exists()
    assert (dlfs.workspace / "results" / "milestone-10" / "plot.png").exists()
    assert "recorded in" in r.output and "PASSED" in r.output, r.output
    assert not dlfs.project.exists()
    r = dlfs("milestone", "10", "--record")
    assert r.exit_code == 0, r.output
    assert (dlfs.project / "results" / "milestone-10.json").exists()
    assert (dlfs.project / "results" / "milestone-10" / "plot.png").exists()
    r = dlfs("milestone", "10", "--learner", "--record")
    assert r.exit_code == 2 and "reference code" in r.output, r.output


class Evil:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


def refused_cifar(root):
    """A CIFAR-10 python-version folder whose every batch is a pickle that calls os.system."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps(Evil()))
    return root


def test_run_all_skips_absent_data_and_fails_refused_data(tmp_path, monkeypatch):
    monkeypatch.setenv("DLFS_WORKSPACE", str(tmp_path / "ws"))
    lines = []
    code = milestones.run_all(smoke=True, data_dir=str(refused_cifar(tmp_path / "data")), echo=lines.append)
    m10 = next(line for line in lines if line.startswith("M10"))
    m17 = next(line for line in lines if line.startswith("M17"))
    assert "SKIPPED (no data): " in m10 and len(m10.split("SKIPPED (no data): ")[1]) > 10, m10
    assert "FAILED" in m17 and "refusing to unpickle" in m17, m17
    assert code == 1


def test_milestone_eval_exits_nonzero_on_a_refused_dataset(tmp_path):
    data = refused_cifar(tmp_path / "data")
    out = subprocess.run([sys.executable, "utils/milestone_eval.py", "--smoke", "--data-dir", str(data)],
                         cwd=registry.REPO_ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "DLFS_WORKSPACE": str(tmp_path / "ws")})
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAILED" in out.stdout and "SKIPPED (no data)" in out.stdout, out.stdout
    assert "should-never-run" not in out.stdout + out.stderr


def test_learner_leaves_out_a_completed_topic_that_now_fails_its_checks(dlfs):
    from dlfs.course.progress import Progress
    from dlfs.course.workspace import ensure_exercise

    assert dlfs("mark", "1").exit_code == 0
    ensure_exercise(registry.get_topic(1))
    state = Progress.load(dlfs.workspace / "progress.json")
    state.record_check(1, passed=False)
    state.save()
    assert Progress.load(dlfs.workspace / "progress.json").now_failing(1)
    r = dlfs("milestone", "10", "--smoke", "--learner")
    assert "your code:      none" in r.output, r.output
    assert "topic 01 (was complete, now failing its checks" in r.output, r.output
