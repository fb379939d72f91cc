"""Topic 33 experiment: post-training quantisation and quantisation-aware training of a GPT on
Tiny Shakespeare.

    python -m dlfs.quant.experiment                       # the smoke-sized GPT, 1,000 steps
    python -m dlfs.quant.experiment --preset quick        # Milestone 30's `quick` preset
    python -m dlfs.quant.experiment --preset full --checkpoint runs/m30.npz   # the Milestone 30 model

1. The float model: with ``--checkpoint`` naming an existing training checkpoint (e.g. the one
   ``dlfs milestone 30`` wrote), its weights, read and never written: the checkpoint must belong
   to the preset's model and have finished the preset's steps, else the run stops with the
   reason. Otherwise ``dlfs.transformer.training.fit`` trains a preset of ``dlfs milestone 30``
   here (``smoke``: 2 layers, width 64, context 32; ``--steps`` replaces the preset's step
   count), into ``--checkpoint`` when it is given (a path that does not exist yet).
2. PTQ (``dlfs.quant.ptq``): weight-only int8 per output channel, int4 in groups of 32 along the
   input, int4 per output channel; int8 weights with int8 activations (asymmetric, per tensor)
   calibrated on 16 training batches by min-max and by the 99.99th percentile.
3. QAT (``dlfs.quant.qat``): from the float model, ``--qat-steps`` more steps with int4
   per-channel fake-quantised weights (learning rate 10× lower than the preset's peak, warm-up
   and cosine); and, as the control, the same steps without fake quantisation, both quantised
   to int4 per channel afterwards.

Every loss is the mean next-character cross-entropy over the whole validation split
(``dlfs.transformer.training.evaluate``, nats/char); sizes by ``dlfs.quant.ptq.model_bytes``.
Writes ``quantization.json`` (with the command, the checkpoint, the commit, the machine's load
average and the wall time) and ``quantization.png`` to the workspace's ``results/topic-33/``, or
with ``--record`` the project's.
"""

from __future__ import annotations

import copy
import hashlib
import os
import sys
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
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a finished training checkpoint to quantise (read only); a path that does "
                             "not exist yet: train the preset here and write it")
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
    load_start = [round(x, 2) for x in os.getloadavg()]
    wall0 = time.perf_counter()
    with threadpool_limits(blas_threads(), user_api="blas"):
        t0 = time.perf_counter()
        model = GPT(p.model, rng=np.random.default_rng(args.seed))
        if args.checkpoint is not None and args.checkpoint.exists():
            source = load_trained(model, args.checkpoint, p.train.max_steps)
            log(f"float model: {source['checkpoint']} (step {source['step']}), read only")
        else:
            fit(model, ds.train, ds.val, p.train, seed=args.seed, checkpoint=args.checkpoint, resume=True,
                progress=False, log=log, meta={"preset": args.preset, "seed": args.seed})
            source = {"checkpoint": str(args.checkpoint) if args.checkpoint else None, "step": p.train.max_steps,
                      "trained_here": True}
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
    from dlfs.course.milestones import git_commit, machine_info
    record = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "command": "python -m dlfs.quant.experiment " + " ".join(sys.argv[1:] if argv is None else argv),
              "commit": git_commit(), "machine": machine_info(), "blas_threads": blas_threads(),
              "load_average": {"start": load_start, "end": [round(x, 2) for x in os.getloadavg()]},
              "wall_time_s": round(time.perf_counter() - wall0, 1),
              "preset": args.preset, "seed": args.seed, "model": p.model.as_dict(),
              "train": asdict(p.train), "checkpoint": source["checkpoint"], "float_model": source,
              "parameters": model.num_parameters(), "qat": asdict(qat_cfg), "rows": rows,
              "control_fine_tune_float_loss": control_float,
              "int4_gap_recovered_by_qat": (ptq4 - qat4) / max(ptq4 - control_float, 1e-12)}
    out = common.output_dir(args)
    atomic_write_json(out / "quantization.json", record)
    plot(rows, out / "quantization.png", f"Quantised GPT ({args.preset} preset, {model.num_parameters():,} "
         f"parameters) on Tiny Shakespeare")
    log(f"QAT recovered {record['int4_gap_recovered_by_qat']:.0%} of the int4 per-channel gap")
    return record


def load_trained(model, checkpoint: Path, steps: int) -> dict:
    """Load the weights of the training checkpoint ``checkpoint`` into ``model``, reading the file
    only. Raises :class:`dlfs.errors.DataError` when the checkpoint holds another model or stopped
    before ``steps`` steps. Returns where the weights came from: path, step, the training run's
    settings and the file's SHA-256."""
    from dlfs.errors import DataError
    from dlfs.train.recipe import read_checkpoint

    doc, arrays = read_checkpoint(checkpoint)
    run = doc["meta"].get("run", {})
    if run.get("model") not in (None, model.config.as_dict()):
        raise DataError(f"checkpoint {checkpoint} holds the model {run['model']}, not the preset's "
                        f"{model.config.as_dict()}; pass the matching --preset")
    if doc["epoch"] < steps:
        raise DataError(f"checkpoint {checkpoint} stopped after step {doc['epoch']} of {steps}; finish it "
                        f"(dlfs milestone 30 --resume) before quantising it")
    model.load_state_dict({k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")})
    digest = hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()
    return {"checkpoint": str(checkpoint), "step": int(doc["epoch"]), "run": run, "sha256": digest,
            "trained_here": False}


def plot(rows: list[dict], path: Path, title: str = "Quantised GPT on Tiny Shakespeare") -> None:
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
    ax.set_title(title)
    _save(fig, path)


if __name__ == "__main__":
    raise SystemExit(common.report_data_errors(main))
