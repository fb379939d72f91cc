"""Topic 33 experiment: post-training quantisation and quantisation-aware training of a GPT on
Tiny Shakespeare.

    python -m dlfs.quant.experiment                       # the smoke-sized GPT, 1,000 steps
    python -m dlfs.quant.experiment --preset quick        # Milestone 30's `quick` preset
    python -m dlfs.quant.experiment --preset full --checkpoint runs/m30.npz   # the Milestone 30 model

1. The float model: ``dlfs.transformer.training.fit`` with a preset of ``dlfs milestone 30``
   (``smoke``: 2 layers, width 64, context 32; ``--steps`` replaces the preset's step count;
   ``--checkpoint``: the training checkpoint, resumed, so a finished Milestone 30 run is loaded
   and not retrained; without it the model is trained here).
2. PTQ (``dlfs.quant.ptq``): weight-only int8 per output channel, int4 in groups of 32 along the
   input, int4 per output channel; int8 weights with int8 activations (asymmetric, per tensor)
   calibrated on 16 training batches by min-max and by the 99.99th percentile.
3. QAT (``dlfs.quant.qat``): from the float model, ``--qat-steps`` more steps with int4
   per-channel fake-quantised weights (learning rate 10× lower than the preset's peak, warm-up
   and cosine); and, as the control, the same steps without fake quantisation, both quantised
   to int4 per channel afterwards.

Every loss is the mean next-character cross-entropy over the whole validation split
(``dlfs.transformer.training.evaluate``, nats/char); sizes by ``dlfs.quant.ptq.model_bytes``.
Writes ``results/topic-33/quantization.json`` and ``quantization.png``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from dlfs.experiments import common
from dlfs.io import atomic_write_json
from dlfs.quant.ptq import ACT_INT8, WEIGHT_INT4_G32, WEIGHT_INT8, calibrate, model_bytes, quantize_weights
from dlfs.quant.qat import finish_qat, prepare_qat
from dlfs.quant.quantize import QScheme

RESULTS = "topic-33"        # results/topic-33/ (see dlfs.experiments.common)
WEIGHT_INT4_CHANNEL = QScheme(4, symmetric=True, axis=1)


def main(argv: list[str] | None = None) -> dict:
    from threadpoolctl import threadpool_limits

    from dlfs.data.text import load_shakespeare
    from dlfs.milestones.mini_gpt import PRESETS, SMOKE, blas_threads, with_steps
    from dlfs.transformer.gpt import GPT
    from dlfs.transformer.training import evaluate, fit, get_batch

    parser = common.parser("dlfs.quant.experiment", __doc__.split("\n\n")[0], RESULTS, data="tinyshakespeare/")
    parser.add_argument("--preset", default="smoke", choices=sorted(PRESETS) + ["smoke"])
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: 1,000 for smoke, "
                        "else the preset's)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="training checkpoint to resume / write")
    parser.add_argument("--qat-steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    p = SMOKE if args.preset == "smoke" else PRESETS[args.preset]
    steps = args.steps or (1000 if args.preset == "smoke" else None)
    if steps:
        p = with_steps(p, steps)
    ds = load_shakespeare(args.data_dir)
    T = p.model.block_size
    log = lambda s: print(s, flush=True)                       # noqa: E731
    with threadpool_limits(blas_threads(), user_api="blas"):
        t0 = time.perf_counter()
        model = GPT(p.model, rng=np.random.default_rng(args.seed))
        fit(model, ds.train, ds.val, p.train, seed=args.seed, checkpoint=args.checkpoint, resume=True,
            progress=False, log=log, meta={"preset": args.preset, "seed": args.seed})
        model.eval()
        val = lambda m: float(evaluate(m, ds.val, T))          # noqa: E731
        float_loss = val(model)
        log(f"float32: {float_loss:.4f} nats/char ({time.perf_counter() - t0:.0f} s)")
        rows = [{"variant": "float32", "val_loss": float_loss, "bytes": model_bytes(model)}]

        def add(name, m, scheme, **extra):
            loss = val(m)
            rows.append({"variant": name, "val_loss": loss, "bytes": model_bytes(model, scheme),
                         "change_vs_float_pct": 100 * (loss - float_loss) / float_loss, **extra})
            log(f"{name}: {loss:.4f} ({rows[-1]['change_vs_float_pct']:+.2f}%), {rows[-1]['bytes']:,} bytes")

        for name, scheme in (("int8 weights, per channel", WEIGHT_INT8),
                             ("int4 weights, groups of 32", WEIGHT_INT4_G32),
                             ("int4 weights, per channel", WEIGHT_INT4_CHANNEL)):
            add(name, quantize_weights(model, scheme)[0], scheme)
        calib_rng = np.random.default_rng([args.seed, 33])
        calib = [get_batch(ds.train, T, 16, calib_rng)[0] for _ in range(16)]
        for method in ("minmax", "percentile"):
            m = quantize_weights(model, WEIGHT_INT8)[0]
            calibrate(m, calib, ACT_INT8, method=method)
            add(f"int8 weights + int8 activations ({method})", m, WEIGHT_INT8)

        qat_cfg = replace(p.train, max_steps=args.qat_steps, lr=p.train.lr / 10, min_lr=p.train.min_lr / 10,
                          warmup_steps=min(20, args.qat_steps - 1), eval_every=args.qat_steps)
        finetuned = {}
        for name, fake in (("float fine-tune (control)", False), ("QAT int4 per channel", True)):
            m = copy.deepcopy(model)
            m.train()
            if fake:
                prepare_qat(m, WEIGHT_INT4_CHANNEL)
            t1 = time.perf_counter()
            fit(m, ds.train, ds.val, qat_cfg, seed=args.seed + 1, progress=False, log=log)
            finish_qat(m)
            m.eval()
            finetuned[name] = m
            add(f"{name}, then int4 per channel", quantize_weights(m, WEIGHT_INT4_CHANNEL)[0], WEIGHT_INT4_CHANNEL,
                steps=args.qat_steps, seconds=round(time.perf_counter() - t1, 1))
        control_float = val(finetuned["float fine-tune (control)"])
        log(f"control fine-tune in float32: {control_float:.4f}")

    by = {r["variant"]: r["val_loss"] for r in rows}
    ptq4 = by["float fine-tune (control), then int4 per channel"]
    qat4 = by["QAT int4 per channel, then int4 per channel"]
    record = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "preset": args.preset, "seed": args.seed,
              "model": p.model.as_dict(),
              "train": asdict(p.train), "checkpoint": str(args.checkpoint) if args.checkpoint else None,
              "parameters": model.num_parameters(), "qat": asdict(qat_cfg), "rows": rows,
              "control_fine_tune_float_loss": control_float,
              "int4_gap_recovered_by_qat": (ptq4 - qat4) / max(ptq4 - control_float, 1e-12)}
    out = common.output_dir(args)
    atomic_write_json(out / "quantization.json", record)
    plot(rows, out / "quantization.png")
    log(f"QAT recovered {record['int4_gap_recovered_by_qat']:.0%} of the int4 per-channel gap")
    return record


def plot(rows: list[dict], path: Path) -> None:
    from dlfs.viz.plots import _pyplot, _save
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    names = [r["variant"] for r in rows]
    ax.barh(range(len(rows)), [r["val_loss"] for r in rows], color=["C0"] + ["C1"] * (len(rows) - 1))
    ax.set_yticks(range(len(rows)), names, fontsize=8)
    ax.invert_yaxis()
    lo = min(r["val_loss"] for r in rows)
    ax.set_xlim(lo * 0.97, max(r["val_loss"] for r in rows) * 1.01)
    for i, r in enumerate(rows):
        ax.text(r["val_loss"], i, f" {r['val_loss']:.4f}  {r['bytes'] / 1024:.0f} KiB", va="center", fontsize=7)
    ax.set_xlabel("validation loss (nats/char)")
    ax.set_title("Quantised GPT on Tiny Shakespeare")
    _save(fig, path)


if __name__ == "__main__":
    main()
