"""Topic 38 — the selective-copying task of Gu & Dao (2023, Table 1): a selective SSM (Mamba,
input-dependent Δ, B, C) against the same network with a time-invariant SSM (S4-like).

The task: a sequence of ``length`` positions holds ``n_memorize`` data tokens (from
``n_tokens`` symbols) at random positions, every other position a noise token; ``n_memorize``
marker tokens follow, and at each marker the model must output the next data token in order.
The spacing is random, so a fixed convolution kernel (which is what a time-invariant SSM
computes) cannot know where to look: the model has to *select* by content. Accuracy is the
fraction of the ``n_memorize`` answers that are right, on a fixed set of fresh sequences.

The paper uses length 4,096, 16 symbols and 16 tokens to memorise; here the sizes are smaller
(defaults: length 48, 8 symbols, 4 tokens, state size 8) so that both models train in a few minutes of NumPy
on two CPU cores.

The model, the same for both (only ``MambaBlock(selective=...)`` differs):

    ids (Bt, T) -> one-hot -> Linear(V, M) -> n_layers × [x + MambaBlock(LayerNorm(x))]
                -> LayerNorm -> Linear(M, V) -> logits; loss: cross-entropy at the marker positions

The residual connection is Topic 28's pre-LN ``SublayerConnection``. Adam, gradient norm
clipped at 1, float32. The blocks run the scan as the loop over time: at these sizes it is
faster in NumPy than the Hillis–Steele scan, whose log L rounds each rewrite the whole
(Bt, T, Di, N) arrays.

    python -m dlfs.experiments.selective_copying [--steps N] [--out results/topic-38]

Saves ``selective_copying.json`` (configuration, final accuracies, curves, times) and
``selective_copying.png`` (loss and accuracy curves) in ``--out``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dlfs.experiments import common

from dlfs.experiments.char_lm import one_hot
from dlfs.nn.layers import Layer, Linear
from dlfs.nn.normalization import LayerNorm
from dlfs.ssm.mamba import MambaBlock
from dlfs.transformer.encoder import SublayerConnection


@dataclass
class Config:
    length: int = 48            # positions holding data and noise
    n_tokens: int = 8           # data symbols
    n_memorize: int = 4         # data tokens to copy
    d_model: int = 32
    d_state: int = 8
    n_layers: int = 2
    batch: int = 32
    steps: int = 1500
    lr: float = 3e-3
    eval_every: int = 100
    eval_size: int = 256
    seed: int = 0


def make_batch(cfg: Config, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """ids: (n, length + n_memorize); targets: (n, n_memorize). Token 0 is noise, 1..n_tokens are
    data, n_tokens + 1 is the marker."""
    T = cfg.length + cfg.n_memorize
    ids = np.zeros((n, T), dtype=np.int64)
    data = rng.integers(1, cfg.n_tokens + 1, (n, cfg.n_memorize))
    pos = np.sort(np.argsort(rng.random((n, cfg.length)), axis=1)[:, :cfg.n_memorize], axis=1)
    np.put_along_axis(ids, pos, data, axis=1)
    ids[:, cfg.length:] = cfg.n_tokens + 1
    return ids, data


class CopyModel(Layer):
    """Embedding, residual Mamba blocks, final norm and head. ids: (Bt, T) -> logits (Bt, T, V)."""

    def __init__(self, cfg: Config, selective: bool, rng: np.random.Generator):
        self.vocab = cfg.n_tokens + 2
        self.embed = Linear(self.vocab, cfg.d_model, bias=False, rng=rng)
        self.blocks = [MambaBlock(cfg.d_model, d_state=cfg.d_state, selective=selective,
                                  parallel=False, rng=rng)
                       for _ in range(cfg.n_layers)]
        self.res = [SublayerConnection(cfg.d_model, norm_first=True) for _ in range(cfg.n_layers)]
        self.norm = LayerNorm(cfg.d_model)
        self.head = Linear(cfg.d_model, self.vocab, rng=rng)

    def forward(self, ids: np.ndarray) -> np.ndarray:
        h = self.embed.forward(one_hot(ids, self.vocab))
        for block, res in zip(self.blocks, self.res):
            h = res.forward(h, block.forward)
        return self.head.forward(self.norm.forward(h))

    def backward(self, dlogits: np.ndarray) -> None:
        dh = self.norm.backward(self.head.backward(dlogits))
        for block, res in zip(reversed(self.blocks), reversed(self.res)):
            dh = res.backward(dh, block.backward)
        self.embed.backward(dh)


def accuracy(model: CopyModel, cfg: Config, ids: np.ndarray, data: np.ndarray) -> float:
    logits = model.forward(ids)[:, cfg.length:]
    return float(np.mean(logits.argmax(-1) == data))


def train(cfg: Config, selective: bool, progress=None) -> dict:
    from dlfs.nn.losses import cross_entropy
    from dlfs.optim import Adam, clip_grad_norm

    rng = np.random.default_rng(cfg.seed)
    model = CopyModel(cfg, selective, rng)
    opt = Adam(model.parameters(), lr=cfg.lr)
    data_rng = np.random.default_rng(cfg.seed + 1)
    eval_ids, eval_data = make_batch(cfg, cfg.eval_size, np.random.default_rng(10_000 + cfg.seed))
    curve = {"step": [], "train_loss": [], "eval_accuracy": []}
    losses = []
    t0, c0 = time.perf_counter(), time.process_time()
    for step in range(1, cfg.steps + 1):
        ids, data = make_batch(cfg, cfg.batch, data_rng)
        logits = model.forward(ids)
        loss, dsel = cross_entropy(logits[:, cfg.length:], data)
        dlogits = np.zeros_like(logits)
        dlogits[:, cfg.length:] = dsel
        model.zero_grad()
        model.backward(dlogits)
        clip_grad_norm(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss))
        if step % cfg.eval_every == 0 or step == cfg.steps:
            curve["step"].append(step)
            curve["train_loss"].append(float(np.mean(losses[-cfg.eval_every:])))
            curve["eval_accuracy"].append(accuracy(model, cfg, eval_ids, eval_data))
            if progress:
                progress(f"{'selective' if selective else 'time-invariant'} step {step}: "
                         f"loss {curve['train_loss'][-1]:.3f}, accuracy {curve['eval_accuracy'][-1]:.3f}")
    return {"selective": selective, "parameters": model.num_parameters(),
            "final_accuracy": curve["eval_accuracy"][-1], "final_train_loss": curve["train_loss"][-1],
            "curve": curve, "wall_seconds": round(time.perf_counter() - t0, 1),
            "cpu_seconds": round(time.process_time() - c0, 1)}


def plot(result: dict, path: Path) -> None:
    from dlfs.viz.plots import _pyplot, _save

    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for run in result["runs"]:
        label = "selective (Mamba, S6)" if run["selective"] else "time-invariant (S4-like)"
        ax1.plot(run["curve"]["step"], run["curve"]["train_loss"], label=label)
        ax2.plot(run["curve"]["step"], run["curve"]["eval_accuracy"], label=label)
    chance = 1.0 / result["config"]["n_tokens"]
    ax2.axhline(chance, color="gray", ls=":", label=f"chance ({chance:.3f})")
    ax1.set(xlabel="step", ylabel="training loss (nats)", title="loss at the answer positions")
    ax2.set(xlabel="step", ylabel="accuracy", title="selective copying: held-out accuracy", ylim=(0, 1.02))
    ax1.legend(); ax2.legend()
    _save(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = common.parser("selective_copying", __doc__.split("\n\n")[0], "topic-38")
    defaults = Config()
    for name, value in asdict(defaults).items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = p.parse_args(argv)
    cfg = Config(**{k: getattr(args, k) for k in asdict(defaults)})
    from threadpoolctl import threadpool_limits

    from dlfs.io import atomic_write_json

    out = common.output_dir(args)
    info = common.RunInfo("selective_copying", argv)
    with threadpool_limits(1):
        runs = [train(cfg, sel, progress=lambda s: print(s, flush=True)) for sel in (True, False)]
    result = {"task": "selective copying (Gu & Dao 2023, Table 1), smaller sizes",
              "config": asdict(cfg), "chance_accuracy": 1.0 / cfg.n_tokens, "runs": runs,
              **info.fields(blas_threads=1)}
    atomic_write_json(out / "selective_copying.json", result)
    plot(result, out / "selective_copying.png")
    for run in runs:
        print(f"{'selective' if run['selective'] else 'time-invariant'}: accuracy {run['final_accuracy']:.3f}, "
              f"{run['parameters']} parameters, {run['wall_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
