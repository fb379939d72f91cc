"""Topic 34 — ZeRO stage 1: AdamW state sharded over the ranks gives the same parameters
with less optimiser memory per rank (measured in bytes)."""

from dataclasses import asdict

import numpy as np
import pytest

from dlfs.distributed.train import TrainConfig, build_model, train_rank, train_single
from dlfs.distributed.zero import ZeroAdamW


class FakeRank:
    def __init__(self, rank, world_size):
        self.rank, self.world_size = rank, world_size


def test_the_shard_is_chunk_rank_of_the_flat_parameters():
    model = build_model(TrainConfig(model="mlp"))
    params = model.parameters()
    flat = np.concatenate([p.data.ravel() for p in params])
    lo, hi = [(int(a[0]), int(a[-1]) + 1) for a in np.array_split(np.arange(flat.size), 3)][1]
    opt = ZeroAdamW(params, FakeRank(1, 3), lr=1e-2)
    np.testing.assert_array_equal(opt.shard.data, flat[lo:hi], err_msg="rank 1 of 3: the shard of the flat parameters")
    assert not np.shares_memory(opt.shard.data, params[0].data), "the shard must be a copy"


@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("model", ["mlp", "encoder"])
def test_zero_gives_the_parameters_of_plain_data_parallel(groups, n, model):
    cfg = TrainConfig(model=model, steps=3, batch=8, optimizer="adamw", hidden=16)
    plain, _ = groups(n).run(train_rank, (asdict(cfg),))
    cfg.optimizer = "zero"
    zero, _ = groups(n).run(train_rank, (asdict(cfg),))
    for r in range(n):
        for k, v in plain[0]["params"].items():
            np.testing.assert_array_equal(zero[r]["params"][k], v, err_msg=f"{model}, N={n}, rank {r}: {k} differs")
    np.testing.assert_array_equal(zero[0]["losses"], plain[0]["losses"], err_msg="losses")


@pytest.mark.parametrize("n", [2, 3, 4])
def test_zero_state_per_rank_is_its_chunk(groups, n):
    cfg = TrainConfig(model="mlp", steps=2, batch=8, optimizer="zero")
    runs, _ = groups(n).run(train_rank, (asdict(cfg),))
    full = train_single(cfg)["state_bytes"][0]
    P = sum(p.size for p in build_model(cfg).parameters())
    assert full == 2 * P * 8, f"plain AdamW holds exp_avg and exp_avg_sq: expected {2 * P * 8} bytes, got {full}"
    chunks = [a.size for a in np.array_split(np.arange(P), n)]
    got = [r["state_bytes"][0] for r in runs]
    assert got == [2 * c * 8 for c in chunks], f"N={n}: expected state bytes per rank {[2 * c * 8 for c in chunks]}, got {got}"
    assert sum(got) == full, f"the shards add up to {sum(got)}, the full state is {full}"
