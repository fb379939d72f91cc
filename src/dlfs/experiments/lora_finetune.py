"""Topic 35 — fine-tuning the Milestone 30 GPT (trained on Tiny Shakespeare) on a different English
text: full fine-tuning against LoRA (several ranks) and QLoRA, with the same steps and batches.

The new text is the Lee news corpus (``lee_background.cor`` of the word2vec data,
``dlfs.data.load_word2vec``): 300 Australian news stories, one a line. The model knows 65
characters; the text is mapped to them by one declared rule (:func:`to_vocab`): the double quote
becomes the apostrophe, every other character outside the vocabulary (digits other than 3,
brackets, ``/ < >``) is dropped; the fractions mapped and dropped are recorded. The first 90% is
trained on, the last 10% held out (``dlfs.data.text.split_ids``).

Variants, each from the same base model, ``--steps`` AdamW steps on the same batches
(``dlfs.transformer.training.get_batch`` with ``step_rng(seed, step, 0)``), linear warm-up then
cosine to a tenth of the peak, gradient clipping at 1:

* full fine-tuning: every parameter, weight decay 0.1 on the matrices (``adamw_groups``),
  peak learning rate ``--full-lr``;
* LoRA, r ∈ ``--ranks``, α = ``--alpha``: ``apply_lora`` on the four projections of every
  block (QKV, attention output, both MLP layers), only A and B trained, no weight decay, peak
  ``--lora-lr``; embeddings, LayerNorms and biases frozen;
* LoRA on the attention only, r ∈ ``--attention-ranks``: adapters on the QKV and attention
  output projections alone (the LoRA paper adapts only attention weights), fewer parameters;
* QLoRA, r = ``--qlora-rank``: the same as LoRA with the frozen projection weights in NF4 with
  double quantisation, dequantised on the fly.

Recorded for the base model: how well NF4 stores its projection weights (:func:`nf4_error`).
Recorded per variant: trainable parameters (and their share of the model's), bytes of the frozen
projection weights as stored (and by the formula), the validation loss on the held-out part
before and after (mean next-character cross-entropy over all of it, ``evaluate``), the time;
and for the run the command, the commit, the machine, its load average at the start and the end,
and the wall time. The base model comes from ``--checkpoint`` (a ``dlfs milestone 30`` training
checkpoint; the preset is read from it); without one, the ``--preset`` model is trained on Tiny
Shakespeare first (the quick preset: about 5 minutes) and saved to ``--train-checkpoint``.

    python -m dlfs.experiments.lora_finetune --checkpoint checkpoints/milestone-30-full-seed0.npz [--steps 300] [--out DIR | --record]

Saves ``lora_finetune.json`` and ``lora_finetune.png``.
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

import numpy as np

from dlfs.experiments import common

DEFAULT_TRAIN_CHECKPOINT = Path("checkpoints") / "m30-quick.npz"
RULE = "'\"' becomes \"'\"; every other character outside the model's vocabulary is dropped"
ATTENTION = ("self_attn.qkv", "self_attn.out_proj")


def to_vocab(text: str, chars) -> tuple[str, dict]:
    """The rule: '"' -> "'", characters outside ``chars`` dropped. Returns (text, counts)."""
    allowed = set(chars)
    mapped = text.count('"') if "'" in allowed and '"' not in allowed else 0
    if mapped:
        text = text.replace('"', "'")
    kept = "".join(c for c in text if c in allowed)
    dropped = len(text) - len(kept)
    return kept, {"original_chars": len(text), "mapped_double_quotes": mapped, "dropped": dropped,
                  "mapped_fraction": mapped / len(text), "dropped_fraction": dropped / len(text),
                  "dropped_chars": "".join(sorted(set(text) - allowed))}


def nf4_error(model) -> dict:
    """The relative RMS error ‖Ŵ − W‖ / ‖W‖ over all the projection matrices of ``model``'s
    blocks (the weights LoRA freezes), stored in NF4 with double quantisation and, for
    comparison, in symmetric int4 with the same blocks of 64 (Topic 33's
    ``QScheme(4, axis=0, group_size=64)``, 15 levels); and the share of the weights on each of the
    16 NF4 levels."""
    from dlfs.lora.adapter import TARGETS
    from dlfs.lora.nf4 import BLOCK_SIZE, dequantize_nf4, quantize_nf4, unpack_nibbles
    from dlfs.quant.quantize import QScheme, compute_qparams, dequantize, quantize

    scheme = QScheme(4, axis=0, group_size=BLOCK_SIZE)
    sq_nf4 = sq_int4 = sq_w = 0.0
    n, uses = 0, np.zeros(16)
    for block in model.blocks:
        for target in TARGETS:
            layer = block
            for attr in target.split("."):
                layer = getattr(layer, attr)
            w = np.asarray(layer.W.data, dtype=np.float64)
            t = quantize_nf4(w)
            sq_nf4 += float(((dequantize_nf4(t) - w) ** 2).sum())
            flat = w.reshape(-1)
            params = compute_qparams(flat, scheme)
            sq_int4 += float(((dequantize(quantize(flat, params), params) - flat) ** 2).sum())
            sq_w += float((w ** 2).sum())
            uses += np.bincount(unpack_nibbles(t.packed)[:w.size], minlength=16)
            n += w.size
    return {"weights": n, "nf4_relative_rms_error": float(np.sqrt(sq_nf4 / sq_w)),
            "int4_relative_rms_error": float(np.sqrt(sq_int4 / sq_w)),
            "nf4_level_use": (uses / uses.sum()).round(4).tolist()}


def load_base(checkpoint: Path | None, preset: str, train_checkpoint: Path, data_dir, seed: int, log):
    """(model, preset name, where it came from): the GPT of a Milestone 30 checkpoint, or the
    preset's model trained here (resuming ``train_checkpoint`` if it exists)."""
    from dlfs.data.text import load_shakespeare
    from dlfs.milestones.mini_gpt import PRESETS
    from dlfs.train.recipe import read_checkpoint
    from dlfs.transformer.gpt import GPT
    from dlfs.transformer.training import fit

    if checkpoint is not None:
        header, arrays = read_checkpoint(checkpoint)
        preset = header.get("meta", {}).get("preset", preset)
        model = GPT(PRESETS[preset].model, rng=np.random.default_rng(seed))
        model.load_state_dict({k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")})
        return model, preset, f"checkpoint {checkpoint} (step {header.get('epoch')})"
    p = PRESETS[preset]
    ds = load_shakespeare(data_dir)
    model = GPT(p.model, rng=np.random.default_rng(seed))
    train_checkpoint.parent.mkdir(parents=True, exist_ok=True)
    log(f"no checkpoint given: training the {preset} preset's model ({p.description}) into {train_checkpoint}")
    fit(model, ds.train, ds.val, p.train, seed=seed, checkpoint=train_checkpoint, resume=True, progress=False,
        log=log, meta={"preset": preset, "seed": seed})
    return model, preset, f"trained here ({preset} preset, {p.train.max_steps} steps) -> {train_checkpoint}"


def finetune(model, train, T: int, batch_size: int, steps: int, params_or_groups, lr: float, seed: int, log,
             name: str) -> list[float]:
    """``steps`` AdamW steps on ``model``; returns the training losses."""
    from dlfs.optim.schedules import CosineWithWarmup
    from dlfs.transformer.training import get_batch, step_rng, train_step

    opt = params_or_groups
    sched = CosineWithWarmup(opt, warmup_steps=max(1, steps // 10), total_steps=steps, min_lr=lr / 10)
    losses = []
    model.train()
    for step in range(steps):
        x, y = get_batch(train, T, batch_size, step_rng(seed, step, 0))
        loss, _ = train_step(model, x, y, opt, grad_clip=1.0)
        if not np.isfinite(loss):
            raise FloatingPointError(f"{name}: the training loss became {loss} at step {step}")
        sched.step()
        losses.append(loss)
        if (step + 1) % max(1, steps // 4) == 0:
            log(f"  {name}: step {step + 1}/{steps} train {np.mean(losses[-50:]):.4f}")
    model.eval()
    return losses


def main(argv: list[str] | None = None) -> dict:
    from threadpoolctl import threadpool_limits

    from dlfs.data import load_word2vec
    from dlfs.data.text import load_shakespeare, read_text, split_ids
    from dlfs.io import atomic_write_json
    from dlfs.lora.adapter import (
        TARGETS,
        apply_lora,
        frozen_weight_bytes,
        lora_layers,
        lora_parameters,
    )
    from dlfs.lora.nf4 import nf4_bits_per_param
    from dlfs.milestones.mini_gpt import PRESETS, blas_threads
    from dlfs.optim.optimizers import AdamW
    from dlfs.memory import keep_freed_memory
    from dlfs.transformer.training import TrainConfig, adamw_groups, evaluate

    p = common.parser("lora_finetune", __doc__.split("\n\n")[0], "topic-35", data="word2vec/ and tinyshakespeare/")
    p.add_argument("--checkpoint", type=Path, default=None, help="a Milestone 30 training checkpoint (.npz)")
    p.add_argument("--preset", default="quick", choices=sorted(PRESETS), help="model to train without --checkpoint")
    p.add_argument("--train-checkpoint", type=Path, default=DEFAULT_TRAIN_CHECKPOINT)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 4, 8, 16])
    p.add_argument("--attention-ranks", type=int, nargs="*", default=[4],
                   help="ranks of LoRA on the attention projections only (QKV and output)")
    p.add_argument("--alpha", type=float, default=8.0)
    p.add_argument("--qlora-rank", type=int, default=8)
    p.add_argument("--full-lr", type=float, default=3e-4)
    p.add_argument("--lora-lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    log = lambda s: print(s, flush=True)
    keep_freed_memory()
    out = common.output_dir(args)
    info = common.RunInfo("lora_finetune", argv)

    with threadpool_limits(blas_threads(), user_api="blas"):
        t_start = time.perf_counter()
        base, preset, origin = load_base(args.checkpoint, args.preset, args.train_checkpoint, args.data_dir,
                                         args.seed, log)
        base.eval()
        T = base.config.block_size
        vocab = load_shakespeare(args.data_dir).vocab
        raw = read_text(load_word2vec(args.data_dir).folder / "lee_background.cor")
        text, counts = to_vocab(raw, vocab.chars)
        train, val = split_ids(vocab.encode(text))
        log(f"base: {origin}; Lee corpus {len(text):,} characters after the rule "
            f"({counts['dropped_fraction']:.2%} dropped, {counts['mapped_fraction']:.2%} mapped): "
            f"{train.size:,} train, {val.size:,} held out")
        n_total = base.num_parameters()
        storage = nf4_error(base)
        log(f"projection weights ({storage['weights']:,}): relative RMS error NF4 "
            f"{storage['nf4_relative_rms_error']:.2%}, int4 {storage['int4_relative_rms_error']:.2%}")
        base_loss = float(evaluate(base, val, T))
        log(f"base model on the held-out news: {base_loss:.4f} nats/char")

        rows = []
        variants = [("full fine-tuning", None, False, TARGETS)] \
            + [(f"LoRA r={r}", r, False, TARGETS) for r in args.ranks] \
            + [(f"LoRA r={r} (attention only)", r, False, ATTENTION) for r in args.attention_ranks] \
            + [(f"QLoRA r={args.qlora_rank} (NF4 + double quant.)", args.qlora_rank, True, TARGETS)]
        for name, r, quant, targets in variants:
            t0 = time.perf_counter()
            m = copy.deepcopy(base)
            if r is None:
                cfg = TrainConfig(lr=args.full_lr, weight_decay=0.1)
                opt, lr, trainable = adamw_groups(m, cfg), args.full_lr, n_total
                frozen, formula = 0, 0.0
            else:
                apply_lora(m, r, args.alpha, rng=args.seed, quantize=quant, targets=targets)
                params = lora_parameters(m)
                opt, lr = AdamW(params, lr=args.lora_lr, betas=(0.9, 0.99), weight_decay=0.0), args.lora_lr
                trainable = sum(q.size for q in params)
                frozen = frozen_weight_bytes(m)
                n_frozen = sum(layer.in_features * layer.out_features for _, layer in lora_layers(m))
                formula = n_frozen * (nf4_bits_per_param() if quant else 32) / 8
            before = float(evaluate(m, val, T))
            losses = finetune(m, train, T, args.batch_size, args.steps, opt, lr, args.seed, log, name)
            after = float(evaluate(m, val, T))
            rows.append({"variant": name, "rank": r, "nf4": quant,
                         "adapted": None if r is None else list(targets), "trainable_params": int(trainable),
                         "trainable_fraction": trainable / n_total, "frozen_projection_bytes": int(frozen),
                         "frozen_projection_bytes_formula": formula, "val_loss_before": before,
                         "val_loss_after": after, "train_loss_last50": float(np.mean(losses[-50:])),
                         "seconds": round(time.perf_counter() - t0, 1)})
            log(f"{name}: {trainable:,} trainable ({trainable / n_total:.2%}), frozen projections "
                f"{frozen:,} B; held-out {before:.4f} -> {after:.4f} ({rows[-1]['seconds']} s)")

    full = rows[0]
    gain = full["val_loss_before"] - full["val_loss_after"]
    for row in rows[1:]:
        row["share_of_full_improvement"] = (row["val_loss_before"] - row["val_loss_after"]) / gain if gain else None
    record = {**info.fields(blas_threads=blas_threads()),
              "base": origin, "preset": preset,
              "model": base.config.as_dict(), "parameters": int(n_total), "text": {"rule": RULE, **counts},
              "train_chars": int(train.size), "heldout_chars": int(val.size), "base_val_loss": base_loss,
              "steps": args.steps, "batch_size": args.batch_size, "block_size": T, "alpha": args.alpha,
              "full_lr": args.full_lr, "lora_lr": args.lora_lr, "seed": args.seed,
              "nf4_bits_per_param_formula": nf4_bits_per_param(), "nf4_storage": storage, "rows": rows,
              "total_seconds": round(time.perf_counter() - t_start, 1)}
    atomic_write_json(out / "lora_finetune.json", record)
    plot(record, out / "lora_finetune.png")
    log(f"wrote {out / 'lora_finetune.json'} ({record['total_seconds']} s)")
    return record


def plot(record: dict, path: Path) -> None:
    from dlfs.viz.plots import _pyplot, _save
    plt = _pyplot()
    rows = record["rows"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    names = [r["variant"] for r in rows]
    y = np.arange(len(rows))
    ax1.barh(y, [r["val_loss_after"] for r in rows],
             color=["C0" if r["rank"] is None else "C2" if r["nf4"] else "C3" if "attention" in r["variant"]
                    else "C1" for r in rows])
    ax1.axvline(record["base_val_loss"], color="k", ls="--", lw=1, label="before fine-tuning")
    ax1.set_yticks(y, names, fontsize=8)
    ax1.invert_yaxis()
    lo = min(r["val_loss_after"] for r in rows)
    ax1.set_xlim(lo * 0.97, record["base_val_loss"] * 1.02)
    for i, r in enumerate(rows):
        ax1.text(r["val_loss_after"], i, f" {r['val_loss_after']:.3f}", va="center", fontsize=7)
    ax1.set_xlabel("held-out loss after fine-tuning (nats/char)")
    ax1.legend(fontsize=7, loc="lower right")
    ax1.set_title(f"{record['steps']} steps on the Lee news corpus")
    ax2.scatter([100 * r["trainable_fraction"] for r in rows], [r["val_loss_after"] for r in rows])
    for r in rows:
        ax2.annotate(r["variant"].replace(" (NF4 + double quant.)", "").replace("attention only", "attn"), (100 * r["trainable_fraction"], r["val_loss_after"]), fontsize=7)
    ax2.set_xscale("log")
    ax2.set_xlabel("trainable parameters (% of the model)")
    ax2.set_ylabel("held-out loss after")
    _save(fig, path)


if __name__ == "__main__":
    sys.exit(common.report_data_errors(main))
