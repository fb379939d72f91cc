"""Helpers of Topic 34's data-parallel tests: run a training config on N ranks and compare
parameter dicts."""

from dataclasses import asdict

import numpy as np


def max_param_diff(a: dict, b: dict) -> float:
    """The largest absolute difference between two state dicts with the same names."""
    assert set(a) == set(b), f"parameter names differ: {sorted(set(a) ^ set(b))}"
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in b)


def run(groups, n: int, cfg) -> dict:
    """``dlfs.distributed.train.train_rank`` on ``groups(n)`` (the topic's process-group
    fixture); checks that every rank ends with rank 0's parameters and returns rank 0's record."""
    from dlfs.distributed.train import train_rank

    runs, _ = groups(n).run(train_rank, (asdict(cfg),))
    for r in range(1, n):
        for k, v in runs[0]["params"].items():
            np.testing.assert_array_equal(runs[r]["params"][k], v, err_msg=f"rank {r} drifted from rank 0 on {k}")
    return runs[0]
