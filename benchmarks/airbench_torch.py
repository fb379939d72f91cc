"""airbench's published recipe, trained by PyTorch on this machine and this copy of CIFAR-10.

    python -m benchmarks.airbench_torch [--epochs 9.9] [--seed 0] [--data-dir DIR]

The baseline for Milestone 17: what the published state of the art reaches on the same data
copy and CPU as ``dlfs milestone 17``, so a gap between our accuracy and airbench's published
one can be split into "the data copy" and "our reproduction". airbench94 (K. Jordan, 2024,
arXiv 2404.00498) reports 94.01% (mean of 1,000 runs, original CIFAR-10, GPU, 9.9 epochs).

The network is ``benchmarks.bench_resnet.torch_airbench`` at widths (64, 256, 256) with exact
GELU, BatchNorm eps 1e-12 and momentum 0.4, the first C_in filters of every 3×3 convolution set to
the identity, and the 2×2 whitening filters of ``dlfs.train.whitening.patch_whitening_filters``
(first 5,000 training images, eps 5e-4; frozen; the bias trains for 3 epochs). The recipe follows
airbench94's published hyperparameters: batches of 1,024 (the last partial one dropped), summed
label-smoothed (0.2) cross-entropy, Nesterov SGD with momentum 0.85, lr 11.5 and weight decay
0.0153 per 1,024 examples in airbench's decoupled form (BatchNorm shifts at 64× the learning
rate), a triangular schedule (0.2 → 1 at 23% of the steps → 0.07), lookahead from epoch 3
(every 5 steps, decay 0.95⁵ · (t/T)³, copied back after each epoch), 2-pixel translations
with mirrored borders, alternating flips (a random flip once, then the whole set flipped every
other epoch), and flip-and-translate test-time augmentation (``tta_logits``).

float32 on the CPU (airbench runs float16 on a GPU). The run appends a record (accuracies,
per-epoch figures, times, provenance) to ``benchmarks/airbench-torch-results.json``; with
``--out`` somewhere else. Needs torch (``pip install -e ".[oracle]"``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).with_name("airbench-torch-results.json")
PUBLISHED = {"accuracy": 0.9401, "source": "airbench94.py: 94.01% mean of n=1000 runs, 9.9 epochs, A100"}
HYP = {"batch_size": 1024, "lr": 11.5, "momentum": 0.85, "weight_decay": 0.0153, "bias_scaler": 64.0,
       "label_smoothing": 0.2, "lookahead_start_epoch": 3, "lookahead_decay": 0.95, "lookahead_pow": 3.0,
       "lookahead_every": 5, "whiten_bias_epochs": 3, "translate": 2, "widths": (64, 256, 256),
       "schedule": {"start": 0.2, "peak_at": 0.23, "end": 0.07}}


def triangle(total_steps: int, start: float = 0.2, peak_at: float = 0.23, end: float = 0.07) -> np.ndarray:
    """The learning-rate multiplier for steps 0..total_steps, from ``dlfs.optim.schedules.Triangular``
    (linear from ``start`` up to 1 at step ⌊peak_at · T⌋, then down to ``end`` at T). (T + 1,) float64."""
    from types import SimpleNamespace

    from dlfs.optim.schedules import Triangular

    schedule = Triangular(SimpleNamespace(lr=1.0), total_steps, start, peak_at, end)
    return np.array([schedule.lr_at(s) for s in range(total_steps + 1)])


def lookahead_decay(step: int, total_steps: int, decay: float = 0.95, every: int = 5, power: float = 3.0) -> float:
    """airbench's lookahead weight on the slow copy at ``step``: decay^every · (step / T)^power
    (little averaging early, strong averaging at the end)."""
    return decay ** every * (step / total_steps) ** power


def build_net(torch, x_whiten: np.ndarray, widths=(64, 256, 256), num_classes: int = 10):
    """The airbench network in PyTorch, set up as airbench94 (see the module docstring).
    x_whiten: (N, 3, H, W) normalised training images for the whitening filters."""
    from benchmarks.bench_resnet import torch_airbench
    from dlfs.train.whitening import patch_whitening_filters

    before = torch.get_default_dtype()          # float32 weights and draws, whatever the default
    torch.set_default_dtype(torch.float32)
    try:
        net = torch_airbench(torch, widths, num_classes, gelu="none")
    finally:
        torch.set_default_dtype(before)
    nn = torch.nn
    for layer in net:
        if isinstance(layer, nn.BatchNorm2d):
            layer.eps, layer.momentum = 1e-12, 0.4
        elif isinstance(layer, nn.Conv2d) and layer.kernel_size == (3, 3):
            with torch.no_grad():
                nn.init.dirac_(layer.weight[:layer.in_channels])
    whiten = net[0]
    filters, _ = patch_whitening_filters(x_whiten, kernel_size=2, eps=5e-4)
    with torch.no_grad():
        whiten.weight.copy_(torch.from_numpy(filters.astype(np.float32)))
        whiten.bias.zero_()
    whiten.weight.requires_grad_(False)
    return net


def crop(torch, padded, shifts, size: int):
    """Crop size×size windows from mirrored-border images. padded: (N, C, size+2r, size+2r);
    shifts: (N, 2) integers in [-r, r] (rows, columns). Returns (N, C, size, size): image n
    moved by shifts[n]."""
    n, c, hp, _ = padded.shape
    r = (hp - size) // 2
    rows = (torch.arange(size) + r)[None, :] + shifts[:, :1]      # (N, size)
    cols = (torch.arange(size) + r)[None, :] + shifts[:, 1:]      # (N, size)
    batch = torch.arange(n)[:, None, None, None]
    chan = torch.arange(c)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


def tta_logits(torch, net, x):
    """airbench's flip-and-translate test-time augmentation: half the mean logits of x and its
    mirror, half the same for x shifted one pixel up-left and down-right (mirrored borders).
    x: (N, C, H, W) -> (N, classes)."""
    F = torch.nn.functional

    def mirror(v):
        return 0.5 * net(v) + 0.5 * net(v.flip(-1))

    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = 0.5 * mirror(padded[..., :h, :w]) + 0.5 * mirror(padded[..., 2:h + 2, 2:w + 2])
    return 0.5 * mirror(x) + 0.5 * shifted


def _accuracy(torch, net, x, y, batch=2000, tta=False):
    net.eval()
    with torch.no_grad():
        logits = torch.cat([tta_logits(torch, net, x[i:i + batch]) if tta else net(x[i:i + batch])
                            for i in range(0, len(x), batch)])
    return float((logits.argmax(1) == y).float().mean())


def train(torch, x_train, y_train, x_test, y_test, epochs: float = 9.9, seed: int = 0, log=print,
          hyp: dict = HYP) -> dict:
    """Train and evaluate; returns the record's figures. x_*: (N, 3, H, W) float32 normalised
    NumPy arrays; y_*: (N,) int64."""
    F = torch.nn.functional
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = build_net(torch, x_train[:5000], hyp["widths"])
    xtr, ytr = torch.from_numpy(x_train), torch.from_numpy(y_train)
    xte, yte = torch.from_numpy(x_test), torch.from_numpy(y_test)

    bs, momentum = hyp["batch_size"], hyp["momentum"]
    steps_per_epoch = len(xtr) // bs
    total = math.ceil(steps_per_epoch * epochs)
    kilostep = 1024 * (1 + 1 / (1 - momentum))     # airbench's decoupled form -> torch's SGD
    lr = hyp["lr"] / kilostep
    wd = hyp["weight_decay"] * bs / kilostep
    lr_bias = lr * hyp["bias_scaler"]
    norms = [p for m in net if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters() if p.requires_grad]
    others = [p for m in net if not isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters()
              if p.requires_grad]
    opt = torch.optim.SGD([{"params": norms, "lr": lr_bias, "weight_decay": wd / lr_bias},
                           {"params": others, "lr": lr, "weight_decay": wd / lr}],
                          momentum=momentum, nesterov=True)
    schedule = triangle(total, **{k: hyp["schedule"][k] for k in ("start", "peak_at", "end")})
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: float(schedule[min(i, total)]))

    r = hyp["translate"]
    flip_once = torch.rand(len(xtr), generator=gen, dtype=torch.float32) < 0.5
    padded = F.pad(torch.where(flip_once[:, None, None, None], xtr.flip(-1), xtr), (r,) * 4, mode="reflect")
    slow, step, per_epoch, train_time = None, 0, [], 0.0
    for epoch in range(math.ceil(epochs)):
        t0 = time.perf_counter()
        net[0].bias.requires_grad_(epoch < hyp["whiten_bias_epochs"])
        net.train()
        order = torch.randperm(len(xtr), generator=gen)
        shifts = torch.randint(-r, r + 1, (len(xtr), 2), generator=gen)
        loss_sum = correct = seen = 0.0
        for b in range(steps_per_epoch):
            idx = order[b * bs:(b + 1) * bs]
            x = crop(torch, padded[idx], shifts[idx], xtr.shape[-1])
            if epoch % 2 == 1:
                x = x.flip(-1)
            out = net(x)
            loss = F.cross_entropy(out, ytr[idx], label_smoothing=hyp["label_smoothing"], reduction="sum")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            loss_sum += loss.item()
            correct += float((out.argmax(1) == ytr[idx]).sum())
            seen += len(idx)
            if epoch >= hyp["lookahead_start_epoch"] and step % hyp["lookahead_every"] == 0:
                if slow is None:
                    slow = {k: v.detach().clone() for k, v in net.state_dict().items()}
                else:
                    _lookahead(net, slow, lookahead_decay(step, total, hyp["lookahead_decay"],
                                                          hyp["lookahead_every"], hyp["lookahead_pow"]))
            if step >= total:
                break
        if slow is not None:
            _lookahead(net, slow, 1.0)
        epoch_s = time.perf_counter() - t0
        train_time += epoch_s
        test_acc = _accuracy(torch, net, xte, yte)
        per_epoch.append({"epoch": epoch + 1, "train_loss": round(loss_sum / seen, 4),
                          "train_acc": round(correct / seen, 4), "test_acc": round(test_acc, 4),
                          "epoch_time_s": round(epoch_s, 1)})
        log(f"epoch {epoch + 1:2d}/{math.ceil(epochs)}  train loss {loss_sum / seen:.4f} acc {correct / seen:.4f}  "
            f"test acc {test_acc:.4f}  ({epoch_s:.0f} s)")
    t0 = time.perf_counter()
    tta_acc = _accuracy(torch, net, xte, yte, tta=True)
    return {"test_accuracy": round(per_epoch[-1]["test_acc"], 4), "tta_accuracy": round(tta_acc, 4),
            "train_time_s": round(train_time, 1), "tta_time_s": round(time.perf_counter() - t0, 1),
            "steps": step, "per_epoch": per_epoch}


def _lookahead(net, slow: dict, decay: float) -> None:
    """Move the slow copy towards the weights (weight 1 − decay), then copy it into the network;
    the floating-point state only (BatchNorm's running statistics included, its step count not)."""
    for name, value in net.state_dict().items():
        if value.is_floating_point():
            slow[name].lerp_(value, 1 - decay)
            value.copy_(slow[name])


def main(argv: list[str] | None = None) -> int:
    from benchmarks.harness import try_torch
    from dlfs.data.cifar import load_cifar10
    from dlfs.data.checksums import describe_copy
    from dlfs.experiments.common import RunInfo
    from dlfs.io import atomic_write_text

    ap = argparse.ArgumentParser(prog="python -m benchmarks.airbench_torch", description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=float, default=9.9, help="training epochs (airbench94: 9.9)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default=None, help="folder holding cifar-10-batches-py (default: DLFS_DATA_DIR)")
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"the JSON file to append to (default {RESULTS.name})")
    args = ap.parse_args(argv)
    if not args.epochs > 0:
        ap.error(f"--epochs must be > 0, got {args.epochs}")
    torch = try_torch()
    if torch is None:
        print("PyTorch is not installed: pip install -e '.[oracle]'", file=sys.stderr)
        return 2
    info = RunInfo("benchmarks.airbench_torch", argv)
    ds = load_cifar10(args.data_dir, normalize=True)
    print(f"airbench94's recipe in PyTorch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.epochs:g} epochs, seed {args.seed}")
    figures = train(torch, ds.x_train, ds.y_train, ds.x_test, ds.y_test, epochs=args.epochs, seed=args.seed)
    print(f"test accuracy {figures['test_accuracy']:.4f}, with flip-and-translate TTA "
          f"{figures['tta_accuracy']:.4f}; training {figures['train_time_s']:.0f} s")
    record = {"epochs": args.epochs, "seed": args.seed, **figures, "published": PUBLISHED,
              "hyperparameters": {**HYP, "widths": list(HYP["widths"])},
              "data": describe_copy("cifar10", ds.source) if getattr(ds, "source", None) else None,
              **info.fields(torch=torch.__version__, torch_threads=torch.get_num_threads())}
    runs = json.loads(args.out.read_text())["runs"] if args.out.exists() else []
    atomic_write_text(args.out, json.dumps({"runs": runs + [record]}, indent=1) + "\n")
    print(f"appended to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
