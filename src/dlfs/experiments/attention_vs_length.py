"""Why attention matters (Bahdanau et al., 2015, Figure 2): accuracy against the length of the
input, for an encoder–decoder without attention (Topic 23) and with it (Topic 24), trained with
the same budget.

The task is **copying**: the source is a string of L random symbols (``--symbols`` of them, each
drawn uniformly), the target the same string, L uniform in [``--min-len``, ``--max-len``]. Every
symbol must pass from the encoder to the decoder, so the information to carry grows with L: the
model without attention must hold it all in its final state h_n (one vector of ``--hidden``
numbers), the model with attention can read each source position again when it writes it.

Both models see the same batches in the same order (drawn from one seeded generator), with the
same number of steps, batch size, learning-rate schedule (Adam, linear warm-up, cosine decay),
gradient clipping and seed; the model without attention has the *larger* recurrent state
(GRU 256 against the attention model's bidirectional 2×64 encoder and GRU 128 decoder) and more
parameters. After training, each length from ``--min-len`` to ``--max-len`` is measured on
``--per-length`` fresh strings: the exact-match accuracy of greedy decoding (the whole string
and the end token right, nothing after it) and the fraction of target symbols (and end tokens)
produced at their position.

    python -m dlfs.experiments.attention_vs_length [--steps N] [--record | --out DIR]

Saves ``attention_vs_length.json`` (configuration, accuracies per length, training curves, wall
and CPU times, the load average) and ``attention_vs_length.png`` in
``<workspace>/results/milestone-24/`` (``--record``: the project's ``results/milestone-24/``, where
the recorded run is; ``--out``: any folder). The defaults take about 6 minutes of CPU time.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

PAD, BOS, EOS = 0, 1, 2


@dataclass(frozen=True)
class Config:
    symbols: int = 20
    min_len: int = 5
    max_len: int = 40
    steps: int = 1500
    batch_size: int = 64
    lr: float = 3e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    clip: float = 1.0
    hidden: int = 256               # the model without attention: GRU encoder and decoder
    embed_dim: int = 32
    enc_hidden: int = 64            # the attention model: per direction
    dec_hidden: int = 128
    attn_dim: int = 64
    per_length: int = 100
    seed: int = 0


def copy_examples(rng: np.random.Generator, n: int, cfg: Config, length: int | None = None):
    """n strings -> (src (n, S) ids 1..symbols padded with 0, lengths (n,), targets (n, S + 1):
    the same symbols as target ids 3..symbols+2, then EOS, padded with 0)."""
    lengths = (np.full(n, length) if length is not None
               else rng.integers(cfg.min_len, cfg.max_len + 1, size=n)).astype(np.int64)
    S = int(lengths.max())
    real = np.arange(S)[None, :] < lengths[:, None]
    src = np.where(real, rng.integers(1, cfg.symbols + 1, size=(n, S)), 0)
    tgt = np.zeros((n, S + 1), dtype=np.int64)
    tgt[:, :S] = np.where(real, src + 2, 0)
    tgt[np.arange(n), lengths] = EOS
    return src, lengths, tgt


def build(kind: str, cfg: Config):
    rng = np.random.default_rng(cfg.seed)
    ids = dict(src_vocab=cfg.symbols + 1, tgt_vocab=cfg.symbols + 3, pad_id=PAD, bos_id=BOS, eos_id=EOS, rng=rng)
    if kind == "attention":
        from dlfs.seq2seq.bahdanau import AttentionSeq2Seq

        return AttentionSeq2Seq(embed_dim=cfg.embed_dim, enc_hidden=cfg.enc_hidden, dec_hidden=cfg.dec_hidden,
                                attn_dim=cfg.attn_dim, **ids)
    from dlfs.seq2seq.encoder_decoder import Seq2Seq

    return Seq2Seq(embed_dim=cfg.embed_dim, hidden_size=cfg.hidden, **ids)


def train(kind: str, cfg: Config, progress: bool = True, log=print) -> dict:
    """Train one model on the copying task; returns its results (accuracy per length, curve, times)."""
    from tqdm import tqdm

    from dlfs.optim.optimizers import Adam
    from dlfs.optim.schedules import CosineWithWarmup
    from dlfs.seq2seq.training import exact_match, train_step

    model = build(kind, cfg)
    opt = Adam(model.parameters(), lr=cfg.lr)
    sched = CosineWithWarmup(opt, warmup_steps=min(cfg.warmup_steps, cfg.steps - 1), total_steps=cfg.steps,
                             min_lr=cfg.min_lr)
    data = np.random.default_rng([cfg.seed, 24])         # the same batches for both models
    t0, c0 = time.perf_counter(), time.process_time()
    curve, losses = [], []
    bar = tqdm(range(cfg.steps), desc=kind, unit="step", disable=not progress or None, leave=False)
    for step in bar:
        src, lengths, tgt = copy_examples(data, cfg.batch_size, cfg)
        loss, acc = train_step(model, opt, src, lengths, tgt, cfg.clip)
        sched.step()
        losses.append(loss)
        if (step + 1) % 100 == 0:
            curve.append({"step": step + 1, "loss": float(np.mean(losses[-100:]))})
            bar.set_postfix(loss=f"{curve[-1]['loss']:.4f}")
    bar.close()
    train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0

    test = np.random.default_rng([cfg.seed, 2015])
    per_length = {}
    for L in range(cfg.min_len, cfg.max_len + 1):
        src, lengths, tgt = copy_examples(test, cfg.per_length, cfg, length=L)
        scores = exact_match(model, src, lengths, tgt, batch_size=cfg.per_length)
        per_length[L] = {"exact_match": scores.accuracy, "token_accuracy": scores.token_accuracy}
    log(f"{kind}: {model.num_parameters():,} parameters, trained in {train_s:.0f} s ({train_cpu:.0f} s CPU); "
        "exact match by length " + ", ".join(f"{L}: {r['exact_match']:.0%}" for L, r in per_length.items()
                                            if L % 5 == 0))
    return {"model": repr(model), "parameters": model.num_parameters(), "train_time_s": round(train_s, 1),
            "train_cpu_s": round(train_cpu, 1), "curve": curve, "per_length": per_length}


def plot(results: dict, cfg: Config, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_em, ax_ch) = plt.subplots(1, 2, figsize=(11, 4))
    names = {"seq2seq": "without attention (Topic 23, GRU 256)",
             "attention": "with attention (Topic 24, bi-GRU 2×64 + GRU 128)"}
    for kind, res in results.items():
        lengths = sorted(int(L) for L in res["per_length"])
        em = [res["per_length"][L]["exact_match"] * 100 for L in lengths]
        ch = [res["per_length"][L]["token_accuracy"] * 100 for L in lengths]
        ax_em.plot(lengths, em, marker="o", ms=3, label=names[kind])
        ax_ch.plot(lengths, ch, marker="o", ms=3, label=names[kind])
    ax_em.set_ylabel("whole string right (%)")
    ax_ch.set_ylabel("symbols right, at their position (%)")
    for ax in (ax_em, ax_ch):
        ax.set_xlabel("input length (symbols)")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=8)
    fig.suptitle(f"Copying {cfg.symbols}-symbol strings: {cfg.steps:,} steps of {cfg.batch_size} "
                 f"(lengths {cfg.min_len}–{cfg.max_len}), {cfg.per_length} test strings per length")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    from threadpoolctl import threadpool_limits

    from dlfs.experiments.common import output_dir, parser
    from dlfs.io import atomic_write_json

    p = parser("attention_vs_length", __doc__.split("\n\n")[0], "milestone-24")
    defaults = Config()
    for name in ("steps", "batch_size", "min_len", "max_len", "symbols", "per_length", "hidden", "seed"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    cfg = Config(**{k: getattr(args, k) for k in ("steps", "batch_size", "min_len", "max_len", "symbols",
                                                 "per_length", "hidden", "seed")})
    out = output_dir(args)
    threads = int(os.environ.get("DLFS_NUM_THREADS", "").strip() or 1)
    load = os.getloadavg()
    results = {}
    with threadpool_limits(threads, user_api="blas"):
        for kind in ("seq2seq", "attention"):
            results[kind] = train(kind, cfg, progress=not args.no_progress)
    doc = {"config": asdict(cfg), "results": results, "blas_threads": threads,
           "load_average_1min": {"start": round(load[0], 2), "end": round(os.getloadavg()[0], 2)},
           "cpu_count": os.cpu_count()}
    atomic_write_json(out / "attention_vs_length.json", doc)
    png = plot(results, cfg, out / "attention_vs_length.png")
    print(f"wrote {out / 'attention_vs_length.json'} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
