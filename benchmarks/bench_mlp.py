"""Module 1 benchmarks: the machine's matmul ceiling and an MLP training step."""

from __future__ import annotations

from functools import partial

import numpy as np

from benchmarks.harness import compare, our_step, torch_step, try_torch


def matmul(n: int = 1024, repeats: int | None = None):
    """The machine's real float32 GEMM rate at n×n×n: the best of several calls (the fastest
    call is the one the other load on the machine disturbed least)."""
    torch = try_torch()
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    ta, tb = (torch.from_numpy(a), torch.from_numpy(b)) if torch else (None, None)
    if repeats is None:
        repeats = 15 if n <= 1024 else 7 if n <= 2048 else 4
    return compare(f"matmul {n}x{n}x{n} float32, best of {repeats}", lambda: a @ b,
                   (lambda: ta @ tb) if torch else None, flops=2.0 * n ** 3, repeats=repeats,
                   warmup=1 if n > 2048 else 3, stat="best")


def mlp_step(batch: int = 128, sizes=(784, 256, 128, 10)):
    """Forward + backward + Adam on an MLP with ReLU and softmax cross-entropy."""
    from dlfs.nn.activations import ReLU
    from dlfs.nn.layers import Linear, Sequential
    from dlfs.nn.losses import CrossEntropyLoss
    from dlfs.optim.optimizers import Adam

    torch = try_torch()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], batch)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Linear(a, b, rng=rng))
        if i < len(sizes) - 2:
            layers.append(ReLU())
    model = Sequential(*layers)
    loss_fn = CrossEntropyLoss()
    opt = Adam(model.parameters(), lr=1e-3)

    ours = our_step(model, loss_fn, opt, x, y)

    theirs = None
    if torch:
        mods = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            mods.append(torch.nn.Linear(a, b))
            if i < len(sizes) - 2:
                mods.append(torch.nn.ReLU())
        tmodel = torch.nn.Sequential(*mods)
        topt = torch.optim.Adam(tmodel.parameters(), lr=1e-3)
        theirs = torch_step(torch, tmodel, topt, x, y)

    flops = 6.0 * batch * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    name = f"MLP {'-'.join(map(str, sizes))} step, batch {batch}"
    return compare(name, ours, theirs, repeats=50, warmup=10, flops=flops, goal="ratio <= 1.5")


# the machine's ceiling: the highest GFLOP/s of the three sizes (4096 is large enough to reach it)
BENCHMARKS = [partial(matmul, 1024), partial(matmul, 2048), partial(matmul, 4096), mlp_step]
