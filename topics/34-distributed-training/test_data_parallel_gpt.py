"""Topic 34 — data-parallel training of Topic 30's GPT: two processes over the ring give the
parameters of one process trained on the combined batch, with and without gradient
accumulation (float64, synthetic token sequences of ``dlfs.distributed.train.token_batch``)."""

from dataclasses import replace

import numpy as np
import pytest

from dlfs.distributed.train import TrainConfig, token_batch, train_single
from dlfs.testing import assert_close
from data_parallel_runs import max_param_diff, run

# 2 blocks of width 16, 2 heads, context 8, 11 tokens: seconds for a few steps
GPT_CFG = TrainConfig(model="gpt", steps=3, batch=6, hidden=16, heads=2, layers=2, seq_len=8, vocab=11,
                      optimizer="adamw", lr=1e-2)


@pytest.mark.parametrize("optimizer, lr", [("adamw", 1e-2), ("sgd", 0.5)])
def test_gpt_over_two_processes_equals_one_process_float64(groups, optimizer, lr):
    cfg = replace(GPT_CFG, optimizer=optimizer, lr=lr)
    x, y = token_batch(cfg, 0)
    assert x.shape == y.shape == (6, 8) and np.array_equal(x[:, 1:], y[:, :-1]), \
        f"the GPT's batch: expected (6, 8) ids with y = x shifted by one, got {x.shape} and {y.shape}"
    single = train_single(cfg)
    got = run(groups, 2, cfg)
    dtype = got["params"]["wte.W"].dtype
    assert dtype == np.float64, f"expected float64 parameters, got {dtype}"
    d = max_param_diff(got["params"], single["params"])
    assert d <= 1e-12, (f"GPT, {optimizer}, N=2: parameters differ from one process on the combined batch "
                        f"by {d:.3g} (> 1e-12)")
    assert_close(np.array(got["losses"]), np.array(single["losses"]), rtol=1e-12, what="mean loss per step")
    assert max_param_diff(single["params"], train_single(replace(cfg, steps=0))["params"]) > 1e-3, \
        "the parameters did not move: the comparison would prove nothing"


@pytest.mark.parametrize("n, micro", [(1, 3), (2, 3)])
def test_gpt_gradient_accumulation_equals_the_large_batch(groups, n, micro):
    d = max_param_diff(run(groups, n, replace(GPT_CFG, micro_batches=micro))["params"],
                       train_single(GPT_CFG)["params"])
    assert d <= 1e-12, f"GPT, N={n}, {micro} micro-batches per rank: parameters differ from the 6-row batch by {d:.3g}"


def test_gpt_learns_the_synthetic_rule_data_parallel(groups):
    """The sequences follow a fixed permutation 3/4 of the time: two ranks bring the loss from
    ln 11 ≈ 2.40 towards the rule's entropy, 1.06 nats, in 40 steps (measured: 1.26 for the
    mean of the last 5)."""
    cfg = replace(GPT_CFG, steps=40, batch=16, dtype="float32", lr=1e-2)
    losses = run(groups, 2, cfg)["losses"]
    assert losses[0] > 2.2 and np.mean(losses[-5:]) < 1.5, \
        f"loss: expected to fall from ≈ 2.4 to < 1.5, got {losses[0]:.3f} -> {np.mean(losses[-5:]):.3f}"
