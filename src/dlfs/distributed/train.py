"""Data-parallel training runs: one process, N processes over our shared-memory ring, or N MPI
ranks. The same seeded model and the same global batches everywhere, so the final parameters
can be compared across the three.

    python -m dlfs.distributed.train --backend single --model encoder --steps 20
    python -m dlfs.distributed.train --backend processes -n 2 --model gpt --steps 20 --dtype float32
    python -m dlfs.distributed.train --backend processes -n 2 --model encoder --steps 20
    mpiexec -n 2 python -m dlfs.distributed.train --backend mpi --allreduce mpi --model encoder --steps 20
    mpiexec -n 2 python -m dlfs.distributed.train --backend mpi --allreduce ring ...   # our ring over MPI

``--out params.npz`` writes rank 0's final parameters, ``--json run.json`` the run's record
(config, losses, samples/s, optimiser-state bytes per rank, bytes sent per rank).

Models (``--model``): ``mlp`` (Linear–GELU–Linear–GELU–Linear on (B, F) features),
``encoder`` (Linear(F, D), two pre-LN ``dlfs.transformer.encoder.EncoderBlock``\\ s without
dropout, Linear(D, C) on every position of (B, T, F) sequences) and ``gpt`` (Topic 30's
``dlfs.transformer.gpt.GPT``: ``--layers`` blocks of width ``--hidden`` with ``--heads`` heads,
context ``--seq-len``, vocabulary ``--vocab``, no dropout; next-token cross-entropy at every
position). Data, drawn from ``seed`` and the step number so that every rank sees the same
global batch: for ``mlp`` and ``encoder``, Gaussian inputs labelled by a fixed random linear
"teacher" (argmax of ``x @ W_teacher``; for sequences, of the position's input plus its
predecessor's); for ``gpt``, synthetic token sequences (no dataset): each starts at a random
token and follows a fixed random permutation of the vocabulary with probability 3/4, else a
uniformly random token, so the loss can fall from ln V towards the rule's entropy.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import partial

import numpy as np

from dlfs.nn.activations import GELU
from dlfs.nn.layers import Layer, Linear, Sequential
from dlfs.nn.losses import cross_entropy


@dataclass
class TrainConfig:
    model: str = "mlp"               # "mlp", "encoder" or "gpt"
    steps: int = 5
    batch: int = 16                  # global batch (rows), split over the ranks
    micro_batches: int = 1           # gradient accumulation within each rank
    dtype: str = "float64"
    optimizer: str = "adamw"         # "adamw", "sgd" (momentum 0.9) or "zero" (ZeRO-1 AdamW)
    lr: float = 1e-2
    weight_decay: float = 1e-2
    seed: int = 0
    features: int = 12
    hidden: int = 32                 # mlp hidden width / encoder and gpt d_model
    classes: int = 5
    seq_len: int = 8                 # encoder: sequence length; gpt: context (block_size)
    heads: int = 4                   # encoder and gpt
    vocab: int = 16                  # gpt only
    layers: int = 2                  # gpt only
    extra: dict = field(default_factory=dict)

    def dtype_(self):
        return np.dtype(self.dtype)


def build_model(cfg: TrainConfig) -> Layer:
    """The seeded model of the config (the same parameters in every process)."""
    rng = np.random.default_rng(cfg.seed)
    dt = cfg.dtype_()
    if cfg.model == "mlp":
        return Sequential(Linear(cfg.features, cfg.hidden, rng=rng, dtype=dt), GELU(),
                          Linear(cfg.hidden, cfg.hidden, rng=rng, dtype=dt), GELU(),
                          Linear(cfg.hidden, cfg.classes, rng=rng, dtype=dt))
    if cfg.model == "encoder":
        from dlfs.transformer.encoder import EncoderBlock
        blocks = [EncoderBlock(cfg.hidden, cfg.heads, dropout=0.0, norm_first=True, rng=rng, dtype=dt)
                  for _ in range(2)]
        return Sequential(Linear(cfg.features, cfg.hidden, rng=rng, dtype=dt), *blocks,
                          Linear(cfg.hidden, cfg.classes, rng=rng, dtype=dt))
    if cfg.model == "gpt":
        from dlfs.transformer.gpt import GPT, GPTConfig
        return GPT(GPTConfig(vocab_size=cfg.vocab, block_size=cfg.seq_len, n_layer=cfg.layers, n_head=cfg.heads,
                             n_embd=cfg.hidden, dropout=0.0), rng=rng, dtype=dt)
    raise ValueError(f"model must be 'mlp', 'encoder' or 'gpt', got {cfg.model!r}")


def global_batch(cfg: TrainConfig, step: int) -> tuple[np.ndarray, np.ndarray]:
    """The global batch of a step: x: (B, F) or (B, T, F) inputs, or (B, T) token ids for the
    GPT; y: (B,) or (B, T) int labels (for the GPT, the next token at every position)."""
    if cfg.model == "gpt":
        return token_batch(cfg, step)
    teacher = np.random.default_rng([cfg.seed, 1]).standard_normal((cfg.features, cfg.classes))
    rng = np.random.default_rng([cfg.seed, 2, step])
    if cfg.model == "mlp":
        x = rng.standard_normal((cfg.batch, cfg.features))
        y = np.argmax(x @ teacher, axis=-1)
    else:
        x = rng.standard_normal((cfg.batch, cfg.seq_len, cfg.features))
        mixed = x.copy()
        mixed[:, 1:] += x[:, :-1]
        y = np.argmax(mixed @ teacher, axis=-1)
    return x.astype(cfg.dtype_()), y.astype(np.int64)


def token_batch(cfg: TrainConfig, step: int) -> tuple[np.ndarray, np.ndarray]:
    """The GPT's global batch of a step: x, y: (B, T) int64, y the sequence shifted by one.
    Each row of T + 1 tokens starts at a random token; the next token is ``perm[previous]``
    (a fixed random permutation) with probability 3/4, else uniformly random."""
    perm = np.random.default_rng([cfg.seed, 1]).permutation(cfg.vocab)
    rng = np.random.default_rng([cfg.seed, 2, step])
    seq = np.empty((cfg.batch, cfg.seq_len + 1), dtype=np.int64)
    seq[:, 0] = rng.integers(0, cfg.vocab, cfg.batch)
    follow = rng.random((cfg.batch, cfg.seq_len)) < 0.75
    noise = rng.integers(0, cfg.vocab, (cfg.batch, cfg.seq_len))
    for t in range(cfg.seq_len):
        seq[:, t + 1] = np.where(follow[:, t], perm[seq[:, t]], noise[:, t])
    return seq[:, :-1], seq[:, 1:]


def make_optimizer(cfg: TrainConfig, params, comm=None):
    from dlfs.optim import SGD, AdamW
    if cfg.optimizer == "adamw":
        return AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return SGD(params, lr=cfg.lr, momentum=0.9)
    if cfg.optimizer == "zero":
        if comm is None:
            raise ValueError("the ZeRO optimiser needs a communicator")
        from dlfs.distributed.zero import ZeroAdamW
        return ZeroAdamW(params, comm, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"optimizer must be 'adamw', 'sgd' or 'zero', got {cfg.optimizer!r}")


def _state_bytes(opt) -> int:
    from dlfs.distributed.zero import optimizer_state_bytes
    return opt.state_bytes() if hasattr(opt, "state_bytes") else optimizer_state_bytes(opt)


def timed_steps(model, opt, batches, comm=None, micro_batches: int = 1) -> dict:
    """The training loop of every data-parallel run: for each (x, y) global batch, one step —
    with ``comm`` None the plain step (mean cross-entropy of the whole batch, backward, ``opt``),
    else Topic 34's ``data_parallel_step`` on this rank's share. Returns {"params" (the final
    state dict), "losses", "step_seconds", "step_cpu_seconds"} (wall and CPU time of each step)."""
    from dlfs.distributed.data_parallel import data_parallel_step

    loss_fn = partial(cross_entropy, reduction="sum")
    losses, times, cpu = [], [], []
    for x, y in batches:
        t0, c0 = time.perf_counter(), time.process_time()
        if comm is None:
            model.zero_grad()
            loss, dlogits = cross_entropy(model.forward(x), y)
            model.backward(dlogits)
            opt.step()
        else:
            loss = data_parallel_step(model, loss_fn, x, y, opt, comm, micro_batches=micro_batches)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        losses.append(float(loss))
    return {"params": model.state_dict(), "losses": losses, "step_seconds": times, "step_cpu_seconds": cpu}


def train_single(cfg: TrainConfig | dict) -> dict:
    """The reference: one process, the whole global batch, mean cross-entropy, one step per
    batch (``cfg.micro_batches`` and the ZeRO option do not apply). Returns the run record."""
    cfg = cfg if isinstance(cfg, TrainConfig) else TrainConfig(**cfg)
    if cfg.optimizer == "zero":
        cfg = TrainConfig(**{**asdict(cfg), "optimizer": "adamw"})
    model = build_model(cfg)
    opt = make_optimizer(cfg, model.parameters())
    run = timed_steps(model, opt, (global_batch(cfg, step) for step in range(cfg.steps)))
    return {**run, "state_bytes": [_state_bytes(opt)], "bytes_sent": [0]}


def train_rank(comm, cfg: TrainConfig | dict) -> dict:
    """One rank's data-parallel run (a rank program: ``ProcessGroup.run(train_rank, (cfg,))``
    or under mpiexec). Returns the run record; ``params`` is this rank's final state dict."""
    cfg = cfg if isinstance(cfg, TrainConfig) else TrainConfig(**cfg)
    model = build_model(cfg)
    opt = make_optimizer(cfg, model.parameters(), comm)
    run = timed_steps(model, opt, (global_batch(cfg, step) for step in range(cfg.steps)), comm,
                      cfg.micro_batches)
    return {**run, "state_bytes": [_state_bytes(opt)], "bytes_sent": [comm.bytes_sent]}


def summarize(cfg: TrainConfig, runs: list[dict], backend: str, world_size: int) -> dict:
    """The JSON record of a run from every rank's record (rank 0's losses and parameters)."""
    # a step ends when the slowest rank's all-reduce returns: take each step's maximum over ranks
    steps = np.max(np.array([r["step_seconds"] for r in runs]), axis=0)
    timed = steps[1:] if len(steps) > 1 else steps          # the first step pays for warm-up
    # CPU time of the busiest rank (its process, one BLAS thread): what a step costs when every
    # rank has a core of its own, as on an idle machine; wall time also counts waiting for a core
    cpu = np.max(np.array([r.get("step_cpu_seconds", r["step_seconds"]) for r in runs]), axis=0)
    cpu = cpu[1:] if len(cpu) > 1 else cpu
    per_step = cfg.batch * (cfg.seq_len if cfg.model != "mlp" else 1)
    return {
        "backend": backend, "world_size": world_size, "config": asdict(cfg),
        "losses": runs[0]["losses"],
        "median_step_seconds": float(np.median(timed)),
        "samples_per_second": float(cfg.batch / np.median(timed)),
        "tokens_per_second": float(per_step / np.median(timed)),   # sequences: every position is a target
        "median_step_cpu_seconds": float(np.median(cpu)),
        "tokens_per_cpu_second": float(per_step / np.median(cpu)),
        "state_bytes_per_rank": [r["state_bytes"][0] for r in runs],
        "bytes_sent_per_rank": [r["bytes_sent"][0] for r in runs],
    }


def _parse(argv):
    p = argparse.ArgumentParser(prog="python -m dlfs.distributed.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=["single", "processes", "mpi"], default="processes")
    p.add_argument("-n", "--world-size", type=int, default=2, help="processes (backend 'processes')")
    p.add_argument("--allreduce", choices=["mpi", "ring"], default="mpi", help="backend 'mpi': whose all-reduce")
    for name, default in asdict(TrainConfig()).items():
        if name != "extra":
            p.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    p.add_argument("--out", help="write rank 0's final parameters here (.npz)")
    p.add_argument("--json", help="write the run record here (.json)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    cfg = TrainConfig(**{k: getattr(args, k) for k in asdict(TrainConfig()) if k != "extra"})
    if args.backend == "single":
        runs, n = [train_single(cfg)], 1
    elif args.backend == "processes":
        from dlfs.distributed.comm import DEFAULT_CAPACITY, ProcessGroup
        # mailboxes that hold a ring step's chunk of the flat gradients in one message
        grad_bytes = sum(p.size for p in build_model(cfg).parameters()) * cfg.dtype_().itemsize
        with ProcessGroup(args.world_size, capacity=max(DEFAULT_CAPACITY, -(-grad_bytes // args.world_size) + 64)) \
                as group:
            runs, _ = group.run(train_rank, (asdict(cfg),))
        n = args.world_size
    else:
        from dlfs.distributed.comm import share_cores
        from dlfs.distributed.mpi import MPICommunicator
        comm = MPICommunicator(args.allreduce)
        share_cores(max(comm.world_size, 2))          # one core per rank (the single process included)
        run = train_rank(comm, cfg)
        gathered = comm.comm.gather(run, root=0)
        if comm.rank != 0:
            return 0
        runs, n = gathered, comm.world_size
    record = summarize(cfg, runs, args.backend if args.backend != "mpi" else f"mpi-{args.allreduce}", n)
    from dlfs.io import atomic_write_bytes, atomic_write_json
    if args.out:
        import io
        buf = io.BytesIO()
        np.savez(buf, **runs[0]["params"])
        atomic_write_bytes(args.out, buf.getvalue())
    if args.json:
        atomic_write_json(args.json, record)
    print(json.dumps({k: v for k, v in record.items() if k != "config"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
