"""The benchmark harness: a timed step is a real training step, and the comparison is honest."""

import numpy as np
import pytest

from benchmarks.harness import compare, our_step, torch_step
from dlfs.nn.layers import Linear
from dlfs.nn.losses import CrossEntropyLoss
from dlfs.optim.optimizers import SGD


def _tiny_problem():
    """A linearly separable problem, so 20 steps lower the loss from any initialisation."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 5)).astype(np.float32)
    y = (x @ rng.standard_normal((5, 3))).argmax(axis=1)
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
    with torch.random.fork_rng():                        # the same start whatever ran before
        torch.manual_seed(1)
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


def test_compare_with_stat_best_reports_the_fastest_of_several_runs(monkeypatch):
    from benchmarks import harness

    times = iter([50.0, 9.0, 30.0, 7.0, 20.0, 8.0, 40.0, 6.0])     # ours, theirs, ours, theirs, ...
    monkeypatch.setattr(harness, "_time", lambda fn: next(times))
    r = compare("peak", lambda: None, lambda: None, repeats=4, warmup=0, stat="best", flops=2e9)
    assert (r.ours_ms, r.torch_ms) == (20.0, 6.0), f"best of 4: expected ours 20 ms, torch 6 ms, got {r}"
    assert r.ours_gflops == pytest.approx(100.0), r.ours_gflops
    times = iter([50.0, 9.0, 30.0, 7.0, 20.0, 8.0])
    median = compare("typical", lambda: None, lambda: None, repeats=3, warmup=0)
    assert (median.ours_ms, median.torch_ms) == (30.0, 8.0), f"median of 3: got {median}"
    with pytest.raises(ValueError, match="stat must be one of"):
        compare("bad", lambda: None, None, stat="mean")


def test_the_matmul_benchmark_takes_the_best_of_several_calls_up_to_4096(monkeypatch):
    from benchmarks import bench_mlp, harness

    seen = []

    def fake_compare(name, ours, theirs, **kw):
        seen.append((name, kw))

    monkeypatch.setattr(bench_mlp, "compare", fake_compare)
    monkeypatch.setattr(bench_mlp, "try_torch", lambda: None)
    for bench in bench_mlp.BENCHMARKS[:3]:
        bench()
    sizes = [int(name.split()[1].split("x")[0]) for name, _ in seen]
    assert sizes == [1024, 2048, 4096], f"matmul sizes: {sizes}"
    assert all(kw["stat"] == "best" and kw["repeats"] >= 3 for _, kw in seen), seen
    assert harness.STATS["best"]([3.0, 1.0, 2.0]) == 1.0


def test_the_torch_airbench_twin_has_our_layers_and_parameter_count():
    from torch_oracle import torch_or_skip

    torch = torch_or_skip()
    from benchmarks.bench_resnet import torch_airbench
    from dlfs.conv.airbench import AirbenchNet

    ours = AirbenchNet((8, 16, 16), rng=0)
    theirs = torch_airbench(torch, (8, 16, 16))
    frozen = ours.whiten_W.size                     # trained in torch's, a buffer in ours
    n_theirs = sum(p.numel() for p in theirs.parameters() if p.requires_grad)
    assert n_theirs == ours.num_parameters() + frozen, \
        f"expected {ours.num_parameters()} + {frozen} trained parameters in the torch twin, got {n_theirs}"
    out = theirs(torch.zeros(2, 3, 32, 32))
    assert tuple(out.shape) == (2, 10), f"expected logits (2, 10), got {tuple(out.shape)}"


@pytest.mark.parametrize("N, C_in, C_out, H, W, pad", [(2, 3, 4, 5, 5, 1), (3, 5, 2, 6, 7, 0), (2, 4, 6, 7, 4, 2),
                                                       (1, 2, 3, 3, 3, 0), (2, 3, 3, 1, 1, 1), (2, 8, 8, 9, 9, 1)])
def test_the_winograd_and_shifted_view_convolutions_equal_im2col(N, C_in, C_out, H, W, pad):
    from benchmarks.conv_algorithms import (
        conv3x3_backward_winograd,
        conv3x3_forward_shifted,
        conv3x3_forward_winograd,
    )
    from dlfs.conv.fast import conv2d_backward_batched, conv2d_forward_batched
    from dlfs.testing import assert_close

    rng = np.random.default_rng(N * 100 + C_in * 10 + H)
    x = rng.standard_normal((N, C_in, H, W))
    w = rng.standard_normal((C_out, C_in, 3, 3))
    b = rng.standard_normal(C_out)
    y = conv2d_forward_batched(x, w, b, (pad, pad))
    assert_close(conv3x3_forward_winograd(x, w, b, (pad, pad)), y, rtol=1e-12, atol=1e-12, what="Winograd forward")
    assert_close(conv3x3_forward_shifted(x, w, (pad, pad)) + b[:, None, None], y, rtol=1e-12, atol=1e-12,
                 what="shifted-view forward")
    dout = rng.standard_normal(y.shape)
    for got, expected, what in zip(conv3x3_backward_winograd(dout, x, w, (pad, pad)),
                                   conv2d_backward_batched(dout, x, w, (pad, pad)), ("dx", "dw", "db")):
        assert_close(got, expected, rtol=1e-12, atol=1e-12, what=f"Winograd {what}")
    none, dw, _ = conv3x3_backward_winograd(dout, x, w, (pad, pad), need_dx=False)
    assert none is None
    assert_close(dw, conv2d_backward_batched(dout, x, w, (pad, pad))[1], rtol=1e-12, atol=1e-12, what="dw without dx")


def test_the_convolution_algorithms_benchmark_reports_every_method(monkeypatch, capsys):
    from benchmarks import conv_algorithms

    monkeypatch.setattr(conv_algorithms, "LAYERS", [("tiny", 2, 3, 4, 6)])
    rows = conv_algorithms.main(["--repeats", "1"])
    assert len(rows) == 1, rows
    row = rows[0]
    for key in ("im2col_fwd_ms", "im2col_copy_ms", "im2col_product_ms", "im2col_bwd_ms", "winograd_fwd_ms",
                "winograd_bwd_ms", "shifted_fwd_ms"):
        assert row[key] >= 0, (key, row)
    for key in ("im2col_error", "winograd_error", "shifted_error"):
        assert row[key] < 1e-5, (key, row[key])
    assert "tiny" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        conv_algorithms.main(["--repeats", "0"])


def test_sgemm_shapes_reports_a_rate_per_shape_and_the_kernels_that_ran(monkeypatch):
    from benchmarks import sgemm_shapes

    monkeypatch.setattr(sgemm_shapes, "SHAPES", [(64, 32, 16), (8, 8, 8)])
    r = sgemm_shapes.rates(repeats=2)
    assert list(r["gflops"]) == ["64x32x16", "8x8x8"], r
    assert all(v > 0 for v in r["gflops"].values()), r
    assert "architecture" in r, r
