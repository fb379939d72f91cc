"""Topic 27 — length extrapolation: train at context T, evaluate at 2T, with each positional encoding.

Four small causal transformer character models on Tiny Shakespeare, identical except for how
they are told the positions (``dlfs.transformer.positional``):

    ids (B, T) -> token embedding (B, T, D) [+ sinusoidal or learned positions]
               -> L pre-LN blocks, causal (``dlfs.transformer.encoder.EncoderBlock``; for RoPE
                  and ALiBi its self-attention is ``PositionalSelfAttention``)
               -> LayerNorm -> Linear head -> logits (B, T, V)

Every model is trained on random windows of ``train_len`` characters (the same batches in the
same order, the same initialisation of the shared parts, Adam with a cosine schedule, gradient
norm clipped), then evaluated on the whole validation split cut into consecutive windows of
``train_len`` and of ``2·train_len`` characters: the mean cross-entropy at every position of the
window. Positions ≥ train_len were never seen in training. A learned table has no row for them:
the learned model is *not evaluable* there as trained; the run also reports it with those
positions **clamped** to the last learned row (train_len − 1), one common workaround.

    python -m dlfs.experiments.length_extrapolation [--data-dir DIR] [--out DIR | --record] [--steps N]

Saves ``length_extrapolation.json`` (configuration, per-position losses, summaries, wall times)
and ``length_extrapolation.png`` (loss per position at 2·train_len) in ``--out``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dlfs.experiments import common

from dlfs.nn.layers import Layer, Linear
from dlfs.nn.normalization import LayerNorm
from dlfs.transformer.encoder import EncoderBlock
from dlfs.transformer.positional import (LearnedPositionalEmbedding, PositionalSelfAttention,
                                         SinusoidalPositionalEncoding)

RESULTS = "topic-27"        # results/topic-27/ (see dlfs.experiments.common)
ENCODINGS = ("sinusoidal", "learned", "rope", "alibi")


@dataclass(frozen=True)
class Config:
    d_model: int = 64
    num_heads: int = 4
    num_layers: int = 2
    train_len: int = 64
    batch_size: int = 32
    steps: int = 1000
    lr: float = 3e-3
    warmup: int = 50
    min_lr: float = 3e-4
    clip: float = 1.0
    seed: int = 0
    encodings: tuple[str, ...] = ENCODINGS


# ----------------------------------------------------------------- the model

def one_hot(ids: np.ndarray, vocab: int, dtype=np.float32) -> np.ndarray:
    """ids: (B, T) ints in [0, V) -> (B, T, V) one-hot rows."""
    return np.eye(vocab, dtype=dtype)[ids]


class CharTransformer(Layer):
    """ids (B, T) -> logits (B, T, V): a small causal pre-LN transformer with one positional
    encoding, ``encoding`` in :data:`ENCODINGS`.

    The token embedding is ``tok: Linear(V, D, bias=False)`` applied to one-hot rows (row c of its
    W is the embedding of character c), drawn N(0, 1) like ``torch.nn.Embedding``. Sublayers:
    ``pos`` (sinusoidal or learned, else None), ``blocks`` (EncoderBlocks, norm_first, no dropout),
    ``ln_f`` and ``head``. The parts every encoding shares start from the same weights for the
    same ``rng`` seed (the learned table is drawn last). ``backward(dlogits)`` accumulates every
    gradient.
    """

    def __init__(self, vocab: int, cfg: Config, encoding: str, rng=None, dtype=np.float32):
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
        rng = np.random.default_rng(rng)
        D, H = cfg.d_model, cfg.num_heads
        self.encoding, self.vocab, self.max_len = encoding, int(vocab), cfg.train_len
        self.dtype = np.dtype(dtype)
        self.tok = Linear(vocab, D, bias=False, rng=rng, dtype=dtype)
        self.tok.W.data[...] = rng.standard_normal(self.tok.W.shape)
        self.blocks = [EncoderBlock(D, H, 4 * D, dropout=0.0, norm_first=True, rng=rng, dtype=dtype)
                       for _ in range(cfg.num_layers)]
        self.ln_f = LayerNorm(D, dtype=dtype)
        self.head = Linear(D, vocab, rng=rng, dtype=dtype)
        if encoding in ("rope", "alibi"):              # the same initial weights, another attention
            for block in self.blocks:
                attn = PositionalSelfAttention(D, H, rope=encoding == "rope", alibi=encoding == "alibi", dtype=dtype)
                attn.load_state_dict(block.self_attn.state_dict())
                block.self_attn = attn
        self.pos = {"sinusoidal": lambda: SinusoidalPositionalEncoding(D),
                    "learned": lambda: LearnedPositionalEmbedding(cfg.train_len, D, rng=rng, dtype=dtype)
                    }.get(encoding, lambda: None)()

    def extra_repr(self) -> str:
        return f"{self.encoding}, vocab={self.vocab}, blocks={len(self.blocks)}"

    def forward(self, ids: np.ndarray, clamp_positions: bool = False) -> np.ndarray:
        """ids: (B, T) -> logits (B, T, V). clamp_positions (learned only, evaluation): positions
        ≥ max_len use the last learned row instead of raising."""
        x = self.tok.forward(one_hot(ids, self.vocab, self.dtype))
        T = ids.shape[1]
        if self.encoding == "learned" and clamp_positions and T > self.max_len:
            x = x + self.pos.W.data[np.minimum(np.arange(T), self.max_len - 1)]
        elif self.pos is not None:
            x = self.pos.forward(x)
        for block in self.blocks:
            x = block.forward(x, causal=True)
        return self.head.forward(self.ln_f.forward(x))

    def backward(self, dlogits: np.ndarray) -> None:
        dx = self.ln_f.backward(self.head.backward(dlogits))
        for block in reversed(self.blocks):
            dx = block.backward(dx)
        if self.pos is not None:
            dx = self.pos.backward(dx)
        self.tok.backward(dx)


# ----------------------------------------------------------------- training and evaluation

def train(model: CharTransformer, train_ids: np.ndarray, cfg: Config) -> list[float]:
    """Adam with warmup and cosine decay on random windows (the same batches for every model,
    from ``cfg.seed``), the global gradient norm clipped. Returns the training loss per step."""
    from dlfs.data.batching import sample_blocks
    from dlfs.nn.losses import cross_entropy
    from dlfs.optim import Adam, CosineWithWarmup, clip_grad_norm

    params = model.parameters()
    opt = Adam(params, lr=cfg.lr)
    schedule = CosineWithWarmup(opt, cfg.warmup, cfg.steps, min_lr=cfg.min_lr)
    rng = np.random.default_rng([cfg.seed, 1])
    losses = []
    for _ in range(cfg.steps):
        x, y = sample_blocks(train_ids, cfg.train_len, cfg.batch_size, rng)
        loss, dlogits = cross_entropy(model.forward(x), y)
        opt.zero_grad(set_to_none=False)
        model.backward(dlogits)
        clip_grad_norm(params, cfg.clip)
        opt.step()
        schedule.step()
        losses.append(float(loss))
    return losses


def loss_per_position(model: CharTransformer, ids: np.ndarray, length: int, batch_size: int = 64,
                      clamp_positions: bool = False) -> tuple[np.ndarray, int]:
    """The split cut into consecutive windows of ``length`` characters (the tail that does not
    fill one is left out), each read on its own: the mean cross-entropy (nats) at each position
    of the window over all windows, (length,), and the number of windows."""
    from dlfs.numerics import log_softmax

    n = (len(ids) - 1) // length
    x = ids[:n * length].reshape(n, length)
    y = ids[1:n * length + 1].reshape(n, length)
    total = np.zeros(length)
    for i in range(0, n, batch_size):
        logp = log_softmax(model.forward(x[i:i + batch_size], clamp_positions=clamp_positions).astype(np.float64))
        total -= np.take_along_axis(logp, y[i:i + batch_size, :, None], axis=-1)[..., 0].sum(axis=0)
    return total / n, n


def summarise(per_position: np.ndarray, train_len: int) -> dict:
    """Mean loss over the trained positions 0 … T−1 and the unseen ones T … 2T−1, and at the last position."""
    out = {"positions_seen": float(per_position[:train_len].mean())}
    if per_position.size > train_len:
        out["positions_unseen"] = float(per_position[train_len:].mean())
        out["last_position"] = float(per_position[-1])
    return out


# ----------------------------------------------------------------- plot and run

LABELS = {"sinusoidal": "sinusoidal", "learned": "learned (positions ≥ T clamped to T−1)",
          "rope": "RoPE", "alibi": "ALiBi"}
COLOURS = {"sinusoidal": "tab:blue", "learned": "tab:orange", "rope": "tab:green", "alibi": "tab:red"}


def plot(result: dict, path: str | Path) -> Path:
    """Validation loss per position of windows of 2T characters, one line per encoding."""
    from dlfs.viz.plots import _pyplot, _save

    plt = _pyplot()
    cfg = result["config"]
    T = cfg["train_len"]
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    for name, run in result["runs"].items():
        curve = np.asarray(run["eval_2T"]["per_position"])
        s = run["eval_2T"]["summary"]
        ax.plot(np.arange(curve.size), curve, color=COLOURS[name], lw=1.6,
                label=f"{LABELS[name]}: {s['positions_seen']:.3f} → {s['positions_unseen']:.3f}")
    ax.axvline(T - 0.5, color="k", ls=":", lw=1)
    ax.text(T + 1, ax.get_ylim()[1], f" longer than training (T = {T})", va="top", fontsize=9)
    ax.set_xlabel("position in the window (characters of context + 1)")
    ax.set_ylabel("validation cross-entropy (nats per character)")
    ax.set_title(f"Trained at T = {T}, evaluated at 2T = {2 * T}: Tiny Shakespeare, "
                 f"{cfg['num_layers']} layers, D = {cfg['d_model']}, {cfg['steps']} steps\n"
                 f"legend: mean over positions 0–{T - 1} → mean over positions {T}–{2 * T - 1}")
    lo = min(np.min(r["eval_2T"]["per_position"][4:]) for r in result["runs"].values())
    ax.set_ylim(lo - 0.1, min(4.5, max(np.max(r["eval_2T"]["per_position"][4:]) for r in result["runs"].values())
                              + 0.1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    return _save(fig, path)


def run_one(name: str, data, cfg: Config, log=print) -> dict:
    model = CharTransformer(data.vocab_size, cfg, name, rng=cfg.seed)
    t0, c0 = time.perf_counter(), time.process_time()
    losses = train(model, data.train, cfg)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    T = cfg.train_len
    c1 = time.process_time()
    at_T, n_T = loss_per_position(model, data.val, T)
    at_2T, n_2T = loss_per_position(model, data.val, 2 * T, clamp_positions=name == "learned")
    out = {"parameters": model.num_parameters(), "train_seconds": round(seconds, 1),
           "train_cpu_seconds": round(cpu, 1), "eval_cpu_seconds": round(time.process_time() - c1, 1),
           "final_train_loss": float(np.mean(losses[-50:])),
           "train_loss_every_50": [round(float(np.mean(losses[i:i + 50])), 4) for i in range(0, len(losses), 50)],
           "eval_T": {"length": T, "windows": n_T, "per_position": at_T.round(5).tolist(),
                      "summary": summarise(at_T, T)},
           "eval_2T": {"length": 2 * T, "windows": n_2T, "per_position": at_2T.round(5).tolist(),
                       "summary": summarise(at_2T, T)}}
    if name == "learned":
        out["eval_2T"]["note"] = (f"a learned table has rows for positions 0 … {T - 1} only: positions ≥ {T} are "
                                  f"not evaluable as trained; here they use row {T - 1} (clamped)")
    s = out["eval_2T"]["summary"]
    log(f"{name}: {out['parameters']:,} parameters, trained in {seconds:.0f} s; validation loss at T={T}: "
        f"{out['eval_T']['summary']['positions_seen']:.4f}; at 2T: positions 0-{T - 1} {s['positions_seen']:.4f}, "
        f"positions {T}-{2 * T - 1} {s['positions_unseen']:.4f}")
    return out


def run(cfg: Config = Config(), data_dir: str | None = None, out_dir: str | Path = ".",
        log=print) -> dict:
    """Train and evaluate one model per encoding of ``cfg.encodings``; save the JSON and the
    figure in ``out_dir``. Returns the result dict."""
    from threadpoolctl import threadpool_limits

    from dlfs.data import load_shakespeare
    from dlfs.io import atomic_write_json

    data = load_shakespeare(data_dir)
    result = {
        "config": asdict(cfg),
        "data": {"name": "tinyshakespeare", "vocab": data.vocab_size, "train_chars": int(data.train.size),
                 "val_chars": int(data.val.size)},
        "measured_on": (f"the whole validation split cut into consecutive windows of {cfg.train_len} (eval_T) and "
                        f"{2 * cfg.train_len} (eval_2T) characters, each read on its own; per_position[t] is the "
                        "mean cross-entropy (nats) of predicting character t + 1 of a window from characters 0 … t"),
        "same_for_every_model": "initialisation seed, training batches and their order, optimiser, schedule, clipping",
        "runs": {},
    }
    t0, c0 = time.perf_counter(), time.process_time()
    for name in cfg.encodings:
        with threadpool_limits(limits=1, user_api="blas"):
            result["runs"][name] = run_one(name, data, cfg, log)
    result["total_seconds"] = round(time.perf_counter() - t0, 1)
    result["total_cpu_seconds"] = round(time.process_time() - c0, 1)
    result["threads"] = "one BLAS thread (threadpoolctl); the models run one after the other"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "length_extrapolation.json", result)
    figure = plot(result, out / "length_extrapolation.png")
    log(f"saved {out / 'length_extrapolation.json'} and {figure} ({result['total_seconds']:.0f} s in all, "
        f"{result['total_cpu_seconds']:.0f} s of CPU time)")
    return result


def main(argv: list[str] | None = None) -> int:
    d = Config()
    p = common.parser("length_extrapolation", "Train small character transformers at context T with each "
                                              "positional encoding and evaluate them at T and 2T.",
                      RESULTS, data="tinyshakespeare/")
    p.add_argument("--steps", type=int, default=d.steps, help=f"training steps per model (default {d.steps})")
    p.add_argument("--train-len", type=int, default=d.train_len, help=f"training context T (default {d.train_len})")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--encodings", default=",".join(d.encodings), help="comma-separated: " + ",".join(ENCODINGS))
    args = p.parse_args(argv)
    encodings = tuple(e.strip() for e in args.encodings.split(",") if e.strip())
    unknown = [e for e in encodings if e not in ENCODINGS]
    if unknown or not encodings:
        p.error(f"--encodings takes names from {', '.join(ENCODINGS)}, got {args.encodings!r}")
    if min(args.steps, args.train_len, args.batch_size) < 1 or args.steps <= d.warmup:
        p.error(f"--train-len and --batch-size must be positive and --steps above the warmup ({d.warmup})")
    cfg = Config(steps=args.steps, train_len=args.train_len, batch_size=args.batch_size, seed=args.seed,
                 encodings=encodings)
    return common.report_data_errors(lambda: run(cfg, data_dir=args.data_dir, out_dir=common.output_dir(args)))


if __name__ == "__main__":
    sys.exit(main())
