"""The seed roadmap's documented commands keep working."""

import json
import subprocess
import sys

from dlfs.course.registry import REPO_ROOT


def run(*args, env_ws):
    return subprocess.run([sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          env={**__import__("os").environ, "DLFS_WORKSPACE": str(env_ws)}, timeout=120)


def test_progress_wrapper_marks_and_unmarks(tmp_path):
    assert run("utils/progress.py", "--mark-topic", "1", "2", "3", env_ws=tmp_path).returncode == 0
    assert run("utils/progress.py", "--unmark-topic", "2", env_ws=tmp_path).returncode == 0
    state = json.loads((tmp_path / "progress.json").read_text())
    assert sorted(state["topics"]) == ["1", "3"]
    out = run("utils/progress.py", env_ws=tmp_path)
    assert out.returncode == 0 and "2/3" in out.stdout


def test_progress_wrapper_rejects_unknown_topics(tmp_path):
    out = run("utils/progress.py", "--mark-topic", "99", env_ws=tmp_path)
    assert out.returncode == 2 and "There is no Topic 99" in out.stderr
    assert not (tmp_path / "progress.json").exists()


def test_autograd_escape_hatch_gives_a_working_value():
    code = ("import sys; sys.path.insert(0, 'utils'); from autograd_stub import Value; "
            "a = Value(2.0); b = Value(-3.0); c = a * b + a.tanh(); c.backward(); print(a.grad, b.grad)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    ga, gb = map(float, out.stdout.split())
    import math
    assert abs(ga - (-3.0 + 1 - math.tanh(2.0) ** 2)) < 1e-12 and abs(gb - 2.0) < 1e-12
