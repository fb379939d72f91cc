"""Topic 34 — data-parallel training over N processes equals one process on the combined
batch; gradient accumulation equals the large batch."""

from dataclasses import replace
from functools import partial

import numpy as np
import pytest

from dlfs.distributed import data_parallel as dp
from dlfs.distributed.comm import LocalCommunicator
from dlfs.distributed.train import TrainConfig, build_model, global_batch, train_rank, train_single
from dlfs.nn.layers import Parameter
from dlfs.nn.losses import cross_entropy
from dlfs.testing import assert_close
from data_parallel_runs import max_param_diff, run


def test_shard_bounds_cover_the_batch_unevenly():
    assert [dp.shard_bounds(10, r, 4) for r in range(4)] == [(0, 3), (3, 6), (6, 8), (8, 10)], \
        "shards of 10 rows over 4 ranks: expected [(0, 3), (3, 6), (6, 8), (8, 10)]"
    with pytest.raises(ValueError):
        dp.shard_bounds(3, 0, 4)


def test_flatten_and_unflatten_round_trip():
    a, b = Parameter(np.zeros((2, 3))), Parameter(np.zeros(4))
    a.grad = np.arange(6.0).reshape(2, 3)
    b.grad = None
    flat = dp.flatten_grads([a, b])
    np.testing.assert_array_equal(flat, [0, 1, 2, 3, 4, 5, 0, 0, 0, 0], err_msg="flat gradients (None -> zeros)")
    x, y = np.empty((2, 3)), np.empty(4)
    dp.unflatten_into(np.arange(10.0), [x, y])
    np.testing.assert_array_equal(x, np.arange(6.0).reshape(2, 3), err_msg="first array after unflatten")
    np.testing.assert_array_equal(y, np.arange(6.0, 10.0), err_msg="second array after unflatten")


def test_local_gradients_of_the_whole_batch_are_the_mean_gradient():
    cfg = TrainConfig(model="mlp", batch=12)
    x, y = global_batch(cfg, 0)
    ref = build_model(cfg)
    loss, d = cross_entropy(ref.forward(x), y)
    ref.zero_grad()
    ref.backward(d)
    model = build_model(cfg)
    model.zero_grad()
    got = dp.local_gradients(model, partial(cross_entropy, reduction="sum"), x, y, 0, 12, 1 / 12, micro_batches=3)
    assert_close(got, loss, rtol=1e-12, what="scaled loss sum over 3 micro-batches")
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        assert_close(p.grad, q.grad, rtol=1e-12, atol=1e-14, what=f"accumulated gradient of {name}")


@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("model", ["mlp", "encoder"])
def test_data_parallel_equals_one_process_float64(groups, n, model):
    cfg = TrainConfig(model=model, steps=3, batch=10, optimizer="sgd", lr=0.1, hidden=16)
    single = train_single(cfg)
    got = run(groups, n, cfg)
    d = max_param_diff(got["params"], single["params"])
    assert d <= 1e-12, f"{model}, N={n}: parameters differ from one process on the combined batch by {d:.3g} (> 1e-12)"
    assert_close(np.array(got["losses"]), np.array(single["losses"]), rtol=1e-12, what="mean loss per step")


@pytest.mark.parametrize("n", [2, 3])
def test_data_parallel_adamw_equals_one_process_float64(groups, n):
    cfg = TrainConfig(model="mlp", steps=4, batch=11, optimizer="adamw")
    d = max_param_diff(run(groups, n, cfg)["params"], train_single(cfg)["params"])
    assert d <= 1e-12, f"AdamW, N={n}: parameters differ by {d:.3g} (> 1e-12)"


@pytest.mark.parametrize("n", [2, 4])
def test_data_parallel_float32_is_close(groups, n):
    cfg = TrainConfig(model="mlp", steps=3, batch=12, optimizer="sgd", lr=0.1, dtype="float32")
    got, single = run(groups, n, cfg), train_single(cfg)
    for k, v in single["params"].items():
        assert got["params"][k].dtype == np.float32, f"{k}: expected float32, got {got['params'][k].dtype}"
        assert_close(got["params"][k], v, rtol=1e-5, atol=1e-6, what=f"float32 {k}, N={n}")


@pytest.mark.parametrize("n, micro", [(1, 4), (2, 2), (3, 2)])
def test_gradient_accumulation_equals_the_large_batch(groups, n, micro):
    cfg = TrainConfig(model="mlp", steps=3, batch=12, optimizer="sgd", lr=0.1)
    d = max_param_diff(run(groups, n, replace(cfg, micro_batches=micro))["params"], train_single(cfg)["params"])
    assert d <= 1e-12, f"N={n}, {micro} micro-batches: parameters differ from the 12-row batch by {d:.3g}"


def test_single_rank_step_in_process():
    cfg = TrainConfig(model="mlp", steps=2, batch=8, optimizer="sgd", lr=0.1)
    got = train_rank(LocalCommunicator(), cfg)
    d = max_param_diff(got["params"], train_single(cfg)["params"])
    assert d <= 1e-12, f"one rank in this process: parameters differ by {d:.3g}"
