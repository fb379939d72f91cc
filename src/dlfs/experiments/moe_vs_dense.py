"""Topic 37 — a mixture-of-experts GPT against the dense GPT with the same active parameters per
token, on Tiny Shakespeare (characters).

The dense model is Topic 30's ``GPT``. The MoE model is the same GPT with every block's MLP
replaced by a ``MoELayer`` of E experts, each a ``FeedForward(D, 4D)`` like the dense MLP, top-1
routing (Switch): every token runs one expert, so the active parameters per token are the dense
model's plus the router's D·E weights, while the MoE holds E times the MLP parameters. Three
runs with the same seed, batches and optimiser (AdamW, nanoGPT's settings at a constant
learning rate): dense; MoE with the load-balancing loss (coefficient 0.01, Switch's); MoE
without it. All use the router z-loss at 0.001 and capacity factor 1.25.

Recorded: the validation loss (nats per character, on evenly spread validation windows) along
training, the share of tokens each expert received in every layer along training (from the
training batches), the dropped assignments, and the times.

    python -m dlfs.experiments.moe_vs_dense [--steps N] [--out DIR | --record]

Saves ``moe_vs_dense.json`` and ``moe_vs_dense.png`` (validation curves and expert
utilisation) in ``--out``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dlfs.experiments import common

from dlfs.moe.layer import MoELayer
from dlfs.nn.layers import Layer
from dlfs.transformer.gpt import GPT, GPTConfig, INIT_STD


@dataclass
class Config:
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    block_size: int = 64
    batch_size: int = 16
    steps: int = 500
    lr: float = 2e-3
    num_experts: int = 4
    capacity_factor: float = 1.25
    balance_coef: float = 0.01
    z_coef: float = 0.001
    eval_every: int = 50
    eval_windows: int = 100
    seed: int = 0


class MoEFeedForward(Layer):
    """A block's MLP slot filled by a ``MoELayer``: forward returns y and keeps the auxiliary
    loss (``aux``); backward sends the aux loss's gradient (weight 1: the coefficients are in the
    layer) along with dy."""

    def __init__(self, moe: MoELayer):
        self.moe = moe
        self.aux = 0.0

    def forward(self, x: np.ndarray) -> np.ndarray:
        y, aux = self.moe.forward(x)
        self.aux = float(aux)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return self.moe.backward(dy, 1.0)


def build(cfg: Config, vocab: int, moe: bool, balance_coef: float = 0.0) -> GPT:
    rng = np.random.default_rng(cfg.seed)
    model = GPT(GPTConfig(vocab_size=vocab, block_size=cfg.block_size, n_layer=cfg.n_layer,
                          n_head=cfg.n_head, n_embd=cfg.n_embd), rng=rng)
    if moe:
        D = cfg.n_embd
        for block in model.blocks:
            layer = MoELayer(D, 4 * D, cfg.num_experts, k=1, capacity_factor=cfg.capacity_factor,
                             balance_coef=balance_coef, z_coef=cfg.z_coef, rng=rng)
            for name, p in layer.named_parameters():      # GPT-2's initialisation, as the dense MLP's
                std = INIT_STD / np.sqrt(2 * cfg.n_layer) if name.endswith("linear2.W") else INIT_STD
                p.data[...] = rng.normal(0.0, std, p.shape) if name.endswith(".W") else 0
            block.ff = MoEFeedForward(layer)
    return model


def active_parameters(model: GPT, cfg: Config) -> int:
    """Parameters a token uses: all but the experts it is not routed to (top-1)."""
    total = model.num_parameters()
    for block in model.blocks:
        if isinstance(block.ff, MoEFeedForward):
            per_expert = block.ff.moe.experts[0].num_parameters()
            total -= per_expert * (cfg.num_experts - 1)
    return total


def run(cfg: Config, data, name: str, moe: bool, balance_coef: float, progress=print) -> dict:
    from dlfs.nn.losses import cross_entropy
    from dlfs.optim import clip_grad_norm
    from dlfs.transformer.training import TrainConfig, adamw_groups, evaluate, get_batch

    model = build(cfg, data.vocab_size, moe, balance_coef)
    opt = adamw_groups(model, TrainConfig(lr=cfg.lr))
    rng = np.random.default_rng(cfg.seed + 1)
    curve = {"step": [], "val_loss": [], "train_loss": [], "utilisation": [], "dropped_fraction": []}
    window_losses, loads, dropped, assignments = [], [], 0, 0
    t0, c0 = time.perf_counter(), time.process_time()
    for step in range(1, cfg.steps + 1):
        x, y = get_batch(data.train, cfg.block_size, cfg.batch_size, rng)
        opt.zero_grad(set_to_none=False)
        loss, dlogits = cross_entropy(model.forward(x), y)
        model.backward(dlogits)
        clip_grad_norm(opt.params, 1.0)
        opt.step()
        window_losses.append(float(loss))
        if moe:
            loads.append([b.ff.moe.stats["load"] / b.ff.moe.stats["assignments"] for b in model.blocks])
            dropped += sum(b.ff.moe.stats["dropped"] for b in model.blocks)
            assignments += sum(b.ff.moe.stats["assignments"] for b in model.blocks)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            curve["step"].append(step)
            curve["train_loss"].append(float(np.mean(window_losses)))
            curve["val_loss"].append(float(evaluate(model, data.val, cfg.block_size, cfg.eval_windows)))
            if moe:
                # share of the tokens each expert *received* (before capacity), per layer
                shares = [[float(v) for v in b.ff.moe.stats["f"]] for b in model.blocks]
                curve["utilisation"].append(shares)
                curve["dropped_fraction"].append(dropped / max(assignments, 1))
                dropped, assignments = 0, 0
            window_losses = []
            progress(f"{name} step {step}: train {curve['train_loss'][-1]:.3f}, val {curve['val_loss'][-1]:.3f}"
                     + (f", shares {np.round(curve['utilisation'][-1], 2).tolist()}" if moe else ""))
    return {"name": name, "moe": moe, "balance_coef": balance_coef, "parameters": model.num_parameters(),
            "active_parameters_per_token": active_parameters(model, cfg),
            "final_val_loss": curve["val_loss"][-1], "curve": curve,
            "wall_seconds": round(time.perf_counter() - t0, 1), "cpu_seconds": round(time.process_time() - c0, 1)}


def plot(result: dict, path: Path) -> None:
    from dlfs.viz.plots import _pyplot, _save

    plt = _pyplot()
    moe_runs = [r for r in result["runs"] if r["moe"]]
    fig, axes = plt.subplots(1, 1 + len(moe_runs), figsize=(5 * (1 + len(moe_runs)), 4))
    for r in result["runs"]:
        axes[0].plot(r["curve"]["step"], r["curve"]["val_loss"], label=r["name"])
    axes[0].set(xlabel="step", ylabel="validation loss (nats/char)", title="dense vs MoE (same active parameters)")
    axes[0].legend()
    for ax, r in zip(axes[1:], moe_runs):
        shares = np.array(r["curve"]["utilisation"])           # (evals, layers, E)
        for layer in range(shares.shape[1]):
            for e in range(shares.shape[2]):
                ax.plot(r["curve"]["step"], shares[:, layer, e], ls="-" if layer == 0 else "--",
                        label=f"layer {layer} expert {e}")
        ax.axhline(1 / shares.shape[2], color="gray", ls=":")
        ax.set(xlabel="step", ylabel="share of tokens", ylim=(0, 1), title=f"expert utilisation: {r['name']}")
        ax.legend(fontsize=6, ncol=2)
    _save(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = common.parser("moe_vs_dense", __doc__.split("\n\n")[0], "topic-37", data="tinyshakespeare/")
    defaults = Config()
    for name, value in asdict(defaults).items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = p.parse_args(argv)
    cfg = Config(**{k: getattr(args, k) for k in asdict(defaults)})
    from threadpoolctl import threadpool_limits

    from dlfs.data import load_shakespeare
    from dlfs.io import atomic_write_json

    data = load_shakespeare(args.data_dir)
    out = common.output_dir(args)
    info = common.RunInfo("moe_vs_dense", argv)
    with threadpool_limits(1):
        runs = [run(cfg, data, "dense", False, 0.0, progress=lambda s: print(s, flush=True)),
                run(cfg, data, "MoE, balance loss 0.01", True, cfg.balance_coef, lambda s: print(s, flush=True)),
                run(cfg, data, "MoE, no balance loss", True, 0.0, lambda s: print(s, flush=True))]
    result = {"config": asdict(cfg), "data": "Tiny Shakespeare, characters, 90/10 split", "runs": runs,
              **info.fields(blas_threads=1)}
    atomic_write_json(out / "moe_vs_dense.json", result)
    plot(result, out / "moe_vs_dense.png")
    for r in runs:
        print(f"{r['name']}: val {r['final_val_loss']:.3f}, {r['parameters']} parameters "
              f"({r['active_parameters_per_token']} active per token), {r['wall_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
