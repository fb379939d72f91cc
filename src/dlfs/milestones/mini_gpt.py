"""Milestone 30 — a GPT trained from scratch on Tiny Shakespeare, character by character.

The model is Topic 30's :class:`dlfs.transformer.gpt.GPT` (token and learned position
embeddings, pre-LN causal blocks of Topic 28, a final LayerNorm, the output head tied to the
token embedding, GPT-2's initialisation), trained by :func:`dlfs.transformer.training.fit`:
AdamW (decay on the 2-D weights only), linear warm-up and cosine decay, gradient clipping,
random windows of the training text. The text is split as nanoGPT's ``shakespeare_char``: the
first 90% of the characters for training, the last 10% for validation, one id per character
of the 65-character vocabulary.

The reported value is the validation loss (mean cross-entropy in nats per character) of the
final model over the **whole** validation split, cut into consecutive windows of the context
length. The record also keeps the training curves, the tokens seen, a generated sample and a
measure of its coherence: of the words (maximal runs of letters, lower-cased) in 2,000
characters generated from a fixed prompt, the fraction that occur in the training text.

Matrix products (and the GELU's blocks, ``dlfs.parallel.limit_workers``) run on
``DLFS_NUM_THREADS`` threads, 1 when it is not set: on the shared
2-core machine this was measured, a GPT step with 2 OpenBLAS threads took 10× as long as with
one (2.35 s against 204 ms, 4 layers of width 128, batch 12 × 64).
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from dlfs.course.milestones import Measurement, MilestoneSpec, PresetInfo, RunOptions, Target
from dlfs.transformer.gpt import GPTConfig
from dlfs.transformer.training import TrainConfig

PROMPT = "ROMEO:\n"
SAMPLE_CHARS = 2000
TEMPERATURE = 0.8
TOP_P = 0.95
COHERENCE_TARGET = 0.80          # fraction of generated words found in the training text (full preset)


@dataclass(frozen=True)
class Preset:
    description: str              # one line for `dlfs milestone 30 --list-presets`
    model: GPTConfig
    train: TrainConfig
    target: float                 # validation loss, at most
    max_seconds: float | None = None


def _model(**kw) -> GPTConfig:
    return GPTConfig(vocab_size=65, activation="gelu_tanh", **kw)


# Chosen by measurement (results/milestone-30-search.json, the Topic 30 lesson §8): with 10-12
# minutes of CPU time each, 4 layers of width 128 with context 128 reached 1.568 (6.8 M tokens),
# width 192 1.601 (4.0 M tokens) and 6 layers of width 128 1.652 (4.4 M tokens): on one core, the
# small model that sees more tokens wins. The full preset trains it 2.4 times as long (measured:
# 1.511 in 24.9 min); quick is nanoGPT's CPU configuration at lr 2e-3 (1.797, median of 3 seeds,
# 138-157 s).
PRESETS = {
    "full": Preset("4 layers, width 128, context 128, 8,000 steps of 16 windows (16.4 M tokens; "
                   "25 minutes measured)",
                   _model(block_size=128, n_layer=4, n_head=4, n_embd=128),
                   TrainConfig(max_steps=8000, batch_size=16, lr=2e-3, min_lr=2e-4, warmup_steps=200,
                               eval_every=500, checkpoint_every=500),
                   target=1.60, max_seconds=3600),
    "quick": Preset("4 layers, width 128, context 64, 2,000 steps of 12 windows (1.5 M tokens; "
                    "2.5 minutes measured)",
                    _model(block_size=64, n_layer=4, n_head=4, n_embd=128),
                    TrainConfig(max_steps=2000, batch_size=12, lr=2e-3, min_lr=2e-4, warmup_steps=100,
                                eval_every=250, checkpoint_every=250),
                    target=1.90, max_seconds=300),
}
DEFAULT_PRESET = "full"
SMOKE = Preset("2 layers, width 64, context 32, 200 steps of 16 windows (seconds)",
               _model(block_size=32, n_layer=2, n_head=2, n_embd=64),
               TrainConfig(max_steps=200, batch_size=16, lr=3e-3, min_lr=3e-4, warmup_steps=20,
                           eval_every=100, eval_windows=100, checkpoint_every=200),
               target=2.60)

SPEC = MilestoneSpec(
    milestone=30,
    title="a mini-GPT on Tiny Shakespeare",
    dataset="shakespeare",
    presets={name: PresetInfo(p.description, Target("val_loss", p.target, higher_is_better=False,
                                                    max_seconds=p.max_seconds, percent=False))
             for name, p in PRESETS.items()},
    default_preset=DEFAULT_PRESET,
    full_target=Target("val_loss", 1.60, higher_is_better=False, max_seconds=3600, percent=False),
    smoke_description=SMOKE.description,
    smoke_target=Target("val_loss", SMOKE.target, higher_is_better=False, percent=False),
    resumable=True,
)


def blas_threads() -> int:
    """``$DLFS_NUM_THREADS`` when set, else 1 (see the module docstring)."""
    value = os.environ.get("DLFS_NUM_THREADS", "").strip()
    return max(1, int(value)) if value else 1


def words(text: str) -> list[str]:
    """The maximal runs of letters of ``text``, lower-cased."""
    return re.findall(r"[a-z]+", text.lower())


def known_word_fraction(generated: str, reference_words: set[str]) -> float:
    """Of the words of ``generated`` (with repetitions), the fraction in ``reference_words``."""
    found = words(generated)
    return float(np.mean([w in reference_words for w in found])) if found else 0.0


def run(opts: RunOptions) -> Measurement:
    from threadpoolctl import threadpool_limits

    from dlfs.data.text import load_shakespeare
    from dlfs.parallel import limit_workers
    from dlfs.train.recipe import read_checkpoint
    from dlfs.transformer.gpt import GPT
    from dlfs.transformer.sampling import generate
    from dlfs.memory import keep_freed_memory
    from dlfs.transformer.training import evaluate, fit

    p = SMOKE if opts.smoke else PRESETS[opts.preset]
    ds = load_shakespeare(opts.data_dir)
    if ds.vocab_size != p.model.vocab_size:
        raise ValueError(f"the text has {ds.vocab_size} distinct characters; the model expects {p.model.vocab_size}")
    keep_freed_memory()
    threads = blas_threads()
    model = GPT(p.model, rng=np.random.default_rng(opts.seed))
    ckpt = opts.checkpoint
    resumed_after = (read_checkpoint(ckpt)[0]["epoch"] if opts.resume and ckpt is not None and ckpt.exists()
                     else None)
    opts.log(f"model: {model!r}; {ds.train.size:,} training and {ds.val.size:,} validation characters; "
             f"{p.train.max_steps:,} steps of {p.train.batch_size} × {p.model.block_size} tokens; "
             f"{threads} BLAS thread(s)")
    with threadpool_limits(threads, user_api="blas"), limit_workers(threads):
        history = fit(model, ds.train, ds.val, p.train, seed=opts.seed, checkpoint=ckpt, resume=opts.resume,
                      progress=opts.progress, log=opts.log, meta={"preset": opts.preset, "seed": opts.seed})
        val_loss = evaluate(model, ds.val, p.model.block_size)
        sample_ids = generate(model, ds.encode(PROMPT), SAMPLE_CHARS, temperature=TEMPERATURE, top_p=TOP_P,
                              rng=np.random.default_rng([opts.seed, 30]))
    sample = ds.decode(sample_ids)
    train_text = ds.decode(ds.train)
    coherence = known_word_fraction(sample[len(PROMPT):], set(words(train_text)))
    opts.log(f"validation loss over the whole split: {val_loss:.4f} nats/char")
    opts.log(f"sample (temperature {TEMPERATURE}, top-p {TOP_P}), first 600 characters:\n"
             f"{sample[:600]}\n…")
    opts.log(f"words of the {SAMPLE_CHARS:,} generated characters found in the training text: {coherence:.1%}"
             + ("" if opts.smoke else f" (target ≥ {COHERENCE_TARGET:.0%})"))

    artifacts = []
    if opts.output_dir is not None:
        artifacts = write_artifacts(opts.output_dir, history, sample, opts.seed)
    return Measurement(
        value=float(val_loss),
        details={
            "model": p.model.as_dict(),
            "parameters": model.num_parameters(),
            "train": asdict(p.train),
            "data": {"source": str(ds.source), "train_chars": int(ds.train.size), "val_chars": int(ds.val.size),
                     "vocab_size": ds.vocab_size, "split": "first 90% / last 10% (nanoGPT shakespeare_char)"},
            "blas_threads": threads,
            "steps": history["steps_done"],
            "tokens_seen": history["tokens_seen"],
            "train_time_s": round(history["train_time_s"], 1),
            "tokens_per_s": round(history["tokens_seen"] / max(history["train_time_s"], 1e-9), 1),
            "resumed_after_step": resumed_after,
            "val_loss_estimate_windows": p.train.eval_windows,
            "history": {k: history[k] for k in ("step", "train_loss", "val_loss", "lr", "tokens", "time_s")},
            "sample": {"prompt": PROMPT, "temperature": TEMPERATURE, "top_p": TOP_P, "chars": SAMPLE_CHARS,
                       "text": sample},
            "known_word_fraction": round(coherence, 4),
            "known_word_target": None if opts.smoke else COHERENCE_TARGET,
        },
        artifacts=artifacts,
    )


def write_artifacts(out: Path, history: dict, sample: str, seed: int) -> list[str]:
    """learning_curves-seed<seed>.png (train and validation loss against tokens seen) and
    sample-seed<seed>.txt, written atomically."""
    import matplotlib

    from dlfs.io import atomic_write_bytes

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    tokens = np.asarray(history["tokens"], dtype=float) / 1e6
    ax.plot(tokens, history["train_loss"], marker="o", ms=3, label="train (mean since the previous point)")
    ax.plot(tokens, history["val_loss"], marker="o", ms=3, label="validation (estimate)")
    ax.set_xlabel("tokens seen (millions)")
    ax.set_ylabel("cross-entropy (nats / character)")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Mini-GPT on Tiny Shakespeare")
    png = out / f"learning_curves-seed{seed}.png"
    tmp = png.with_name(f".{png.stem}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(png)
    txt = out / f"sample-seed{seed}.txt"
    atomic_write_bytes(txt, sample.encode("utf-8"))
    return [str(png), str(txt)]


def with_steps(preset: Preset, steps: int) -> Preset:
    """The preset with another number of steps (the schedule follows)."""
    return replace(preset, train=replace(preset.train, max_steps=steps))


def search_point(n_layer: int, n_embd: int, block_size: int, batch_size: int, steps: int, lr: float,
                 seed: int = 0, data_dir: str | None = None, log=print) -> dict:
    """One point of the architecture search behind the presets: a GPT with heads of width 32
    trained for ``steps`` steps (warm-up min(200, steps/10), cosine to lr/10, no dropout, one BLAS
    thread), then its validation loss over the whole split. Returns the measurements, with the
    process's CPU time and the wall time."""
    import time

    from threadpoolctl import threadpool_limits

    from dlfs.data.text import load_shakespeare
    from dlfs.parallel import limit_workers
    from dlfs.transformer.gpt import GPT
    from dlfs.transformer.training import evaluate, fit

    ds = load_shakespeare(data_dir)
    model_cfg = _model(block_size=block_size, n_layer=n_layer, n_head=max(1, n_embd // 32), n_embd=n_embd)
    train_cfg = TrainConfig(max_steps=steps, batch_size=batch_size, lr=lr, min_lr=lr / 10,
                            warmup_steps=min(200, steps // 10), eval_every=max(steps // 6, 1),
                            checkpoint_every=steps)
    model = GPT(model_cfg, rng=seed)
    wall, cpu = time.perf_counter(), time.process_time()
    with threadpool_limits(1, user_api="blas"), limit_workers(1):
        history = fit(model, ds.train, ds.val, train_cfg, seed=seed, progress=False, log=log)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        val = evaluate(model, ds.val, block_size)
    return {"model": model_cfg.as_dict(), "train": asdict(train_cfg), "parameters": model.num_parameters(),
            "tokens": steps * batch_size * block_size, "val_loss": val, "cpu_s": round(cpu, 1),
            "wall_s": round(wall, 1), "val_curve": history["val_loss"],
            "load_average": open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else None}


if __name__ == "__main__":
    import json
    import sys

    # python -m dlfs.milestones.mini_gpt n_layer n_embd block_size batch_size steps lr
    args = sys.argv[1:]
    if len(args) != 6:
        sys.exit("usage: python -m dlfs.milestones.mini_gpt n_layer n_embd block_size batch_size steps lr")
    print(json.dumps(search_point(*map(int, args[:5]), float(args[5]))))
