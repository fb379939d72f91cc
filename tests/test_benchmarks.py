"""The benchmark harness: a timed step is a real training step, and the comparison is honest."""

import numpy as np
import pytest

from benchmarks.harness import compare, our_step, torch_step
from dlfs.nn.layers import Linear
from dlfs.nn.losses import CrossEntropyLoss
from dlfs.optim.optimizers import SGD


def _tiny_problem():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 5)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    return x, y


def test_our_step_trains_the_model():
    x, y = _tiny_problem()
    model, loss_fn = Linear(5, 3, rng=np.random.default_rng(1)), CrossEntropyLoss()
    opt = SGD(model.parameters(), lr=0.5)
    first = loss_fn.forward(model.forward(x), y)
    step = our_step(model, loss_fn, opt, x, y)
    for _ in range(20):
        step()
    last = loss_fn.forward(model.forward(x), y)
    assert last < 0.9 * first, f"20 timed steps should lower the loss: {first:.4f} -> {last:.4f}"


def test_torch_step_trains_the_model():
    torch = pytest.importorskip("torch", reason="PyTorch is the optional benchmark baseline")
    x, y = _tiny_problem()
    model = torch.nn.Linear(5, 3, dtype=torch.float32)     # the oracle tests may set float64 as default
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    first = torch.nn.functional.cross_entropy(model(tx), ty).item()
    step = torch_step(torch, model, opt, x, y, label_smoothing=0.1)
    for _ in range(20):
        step()
    last = torch.nn.functional.cross_entropy(model(tx), ty).item()
    assert last < 0.9 * first, f"20 timed steps should lower the loss: {first:.4f} -> {last:.4f}"


def test_compare_reports_the_ratio_of_medians():
    calls = {"ours": 0, "theirs": 0}

    def ours():
        calls["ours"] += 1

    def theirs():
        calls["theirs"] += 1

    r = compare("noop", ours, theirs, repeats=5, warmup=2, flops=1e6)
    assert calls == {"ours": 7, "theirs": 7}, f"warmup 2 + repeats 5 calls each, got {calls}"
    assert r.ratio == pytest.approx(r.ours_ms / r.torch_ms), (r.ratio, r.ours_ms, r.torch_ms)
    alone = compare("noop", ours, None, repeats=3, warmup=0)
    assert alone.torch_ms is None and alone.ratio is None, alone


def test_benchmark_runner_explains_itself_and_refuses_unknown_suites():
    import subprocess
    import sys

    help_run = subprocess.run([sys.executable, "-m", "benchmarks.run", "--help"], capture_output=True, text=True)
    assert help_run.returncode == 0 and "SUITE" in help_run.stdout, \
        f"expected usage text, got exit {help_run.returncode}: {help_run.stderr[-300:]}"
    bad = subprocess.run([sys.executable, "-m", "benchmarks.run", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown suite 'nope'" in bad.stderr, \
        f"expected a usage error naming the suite, got exit {bad.returncode}: {bad.stderr[-300:]}"
