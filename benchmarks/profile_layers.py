"""Per-layer profile of a CIFAR-10 training step: time per layer, forward and backward, ours
against the same layer in PyTorch CPU, on the activations the network really sees.

    python -m benchmarks.profile_layers airbench-45min        # or resnet9, airbench-2h, ...
    python -m benchmarks.profile_layers resnet9 --batch 256 --repeats 5
    python -m benchmarks.profile_layers airbench-45min --threads 1   # CPU time, one thread each

Every leaf layer of the network (through ``Sequential`` and ``Residual``) is run on its
real input: a random batch goes through the network once to collect each layer's input and
output gradient. Then, for each layer, our forward and backward and the same module in
PyTorch (built from the layer's own weights and settings) are timed alternately, ``repeats``
times after one warm-up, and the medians are reported. A residual add shows as its own row.
The table ends with the sum of the rows.

``--threads 1`` runs both sides on one thread and measures CPU time instead of wall time:
on a machine shared with other work, the CPU time of a one-thread run is not inflated by the
other processes, so the ratios stay meaningful (they are one-core ratios).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from benchmarks.harness import try_torch


def leaves(layer, out: list | None = None) -> list:
    """The leaf layers of ``layer`` in forward order; a ``Residual`` adds an ``("add", body)``
    marker after its body's leaves."""
    from dlfs.conv.resnet9 import Residual
    from dlfs.nn.layers import Sequential

    out = [] if out is None else out
    if isinstance(layer, Sequential):
        for sub in layer:
            leaves(sub, out)
    elif isinstance(layer, Residual):
        out.append(("residual-in", layer))
        leaves(layer.body, out)
        out.append(("residual-add", layer))
    elif isinstance(getattr(layer, "net", None), Sequential):         # ResNet9, AirbenchNet
        if hasattr(layer, "whiten"):
            out.append(layer.whiten)
        leaves(layer.net, out)
    else:
        out.append(layer)
    return out


def torch_twin(torch, layer):
    """The PyTorch module computing what ``layer`` computes, with its weights; None if unknown."""
    from dlfs.conv.im2col import Conv2d
    from dlfs.conv.pooling import MaxPool2d
    from dlfs.conv.resnet9 import Scale
    from dlfs.nn.activations import GELU, ReLU
    from dlfs.nn.batchnorm import BatchNorm2d
    from dlfs.nn.layers import Flatten, Linear

    nn = torch.nn
    if isinstance(layer, Conv2d):
        m = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                      layer.padding, layer.dilation, bias=layer.b is not None)
        with torch.no_grad():
            m.weight.copy_(torch.from_numpy(layer.W.data))
        return m
    if isinstance(layer, MaxPool2d):
        return nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding)
    if isinstance(layer, BatchNorm2d):
        return nn.BatchNorm2d(layer.num_features, eps=layer.eps, momentum=layer.momentum)
    if isinstance(layer, GELU):
        return nn.GELU(approximate=layer.approximate)
    if isinstance(layer, ReLU):
        return nn.ReLU()
    if isinstance(layer, Flatten):
        return nn.Flatten()
    if isinstance(layer, Linear):
        return nn.Linear(layer.in_features, layer.out_features, bias=layer.b is not None)
    if isinstance(layer, Scale):
        f = layer.factor
        return type("Scale", (nn.Module,), {"forward": lambda self, x: x * f})()
    return None


clock = time.perf_counter          # time.process_time with --threads 1
threads: int | None = None         # torch's thread count when set (--threads)


def label(layer) -> str:
    """A short name for a table row: "conv 3×3 24→32", "max-pool 2", "BatchNorm2d(32)", ..."""
    from dlfs.conv.im2col import Conv2d
    from dlfs.conv.pooling import MaxPool2d
    from dlfs.nn.activations import GELU
    from dlfs.nn.batchnorm import BatchNorm2d

    if isinstance(layer, Conv2d):
        (kh, kw), s = layer.kernel_size, layer.stride
        stride = f" stride {s[0]}" if s != (1, 1) else ""
        return f"conv {kh}×{kw} {layer.in_channels}→{layer.out_channels}{stride}"
    if isinstance(layer, MaxPool2d):
        return f"max-pool {layer.kernel_size[0]}"
    if isinstance(layer, GELU):
        return f"GELU ({layer.approximate})"
    if isinstance(layer, BatchNorm2d):
        return f"BatchNorm2d({layer.num_features})"
    return repr(layer).split("\n")[0]


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = clock()
        fn()
        times.append(clock() - t)
    return 1e3 * statistics.median(times)


def profile(model, batch: int, repeats: int = 5, seed: int = 0) -> list[dict]:
    """Rows ``{"layer", "shape", "fwd_ms", "bwd_ms", "torch_fwd_ms", "torch_bwd_ms"}``."""
    from dlfs.nn.losses import CrossEntropyLoss

    torch = try_torch()
    if torch and threads:
        torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 3, 32, 32), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    items = leaves(model)

    # forward once, keeping each leaf's input; then backward, keeping each leaf's output gradient
    inputs, skip = [], []
    a = x
    for item in items:
        if isinstance(item, tuple):
            if item[0] == "residual-in":
                skip.append(a)
                inputs.append(None)
            else:
                inputs.append((a, skip[-1]))
                a = a + skip.pop()
            continue
        inputs.append(a)
        a = item.forward(a)
    loss = CrossEntropyLoss(label_smoothing=0.2)
    loss.forward(a, y)
    d = loss.backward()
    grads = [None] * len(items)
    dskip = []
    for i in range(len(items) - 1, -1, -1):
        item = items[i]
        if isinstance(item, tuple):
            if item[0] == "residual-add":
                grads[i] = d
                dskip.append(d)
            else:
                d = d + dskip.pop()
            continue
        grads[i] = d
        d = item.backward(d)

    rows = []
    for i, item in enumerate(items):
        if isinstance(item, tuple):
            if item[0] == "residual-add":
                (h, s), g = inputs[i], grads[i]
                fwd = _median_ms(lambda: h + s, repeats)
                row = {"layer": "residual add", "shape": tuple(h.shape), "fwd_ms": fwd, "bwd_ms": 0.0}
                if torch:
                    th, ts = torch.from_numpy(h), torch.from_numpy(s)
                    row.update(torch_fwd_ms=_median_ms(lambda: th + ts, repeats), torch_bwd_ms=0.0)
                rows.append(row)
            continue
        xin, g = inputs[i], grads[i]
        item.forward(xin)
        item.backward(g)                                  # warm-up
        row = {"layer": label(item), "shape": tuple(xin.shape)}
        fwd, bwd, tf, tb = [], [], [], []
        twin = torch_twin(torch, item) if torch else None
        if twin is not None:
            tx = torch.from_numpy(xin).requires_grad_(True)
            tg = torch.from_numpy(np.ascontiguousarray(g))
            ty = twin(tx)
            ty.backward(tg)
        for _ in range(repeats):
            t0 = clock()
            item.forward(xin)
            t1 = clock()
            item.backward(g)
            t2 = clock()
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
            if twin is not None:
                tx.grad = None
                t0 = clock()
                ty = twin(tx)
                t1 = clock()
                ty.backward(tg)
                t2 = clock()
                tf.append(t1 - t0)
                tb.append(t2 - t1)
        row["fwd_ms"] = 1e3 * statistics.median(fwd)
        row["bwd_ms"] = 1e3 * statistics.median(bwd)
        if tf:
            row["torch_fwd_ms"] = 1e3 * statistics.median(tf)
            row["torch_bwd_ms"] = 1e3 * statistics.median(tb)
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    """A Markdown table of the rows, with the total and each row's share of our time."""
    total = sum(r["fwd_ms"] + r["bwd_ms"] for r in rows)
    ttotal = sum(r.get("torch_fwd_ms", 0) + r.get("torch_bwd_ms", 0) for r in rows)
    lines = ["| layer | input | ours fwd ms | ours bwd ms | torch fwd ms | torch bwd ms | ratio | share of ours |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ours = r["fwd_ms"] + r["bwd_ms"]
        theirs = r.get("torch_fwd_ms", 0) + r.get("torch_bwd_ms", 0)
        ratio = f"{ours / theirs:.2f}×" if theirs else "–"
        tf = f"{r['torch_fwd_ms']:.1f}" if "torch_fwd_ms" in r else "–"
        tb = f"{r['torch_bwd_ms']:.1f}" if "torch_bwd_ms" in r else "–"
        shape = "×".join(str(s) for s in r["shape"])
        lines.append(f"| {r['layer']} | {shape} | {r['fwd_ms']:.1f} | {r['bwd_ms']:.1f} | {tf} | {tb} | "
                     f"{ratio} | {100 * ours / total:.0f}% |")
    ratio = f"{total / ttotal:.2f}×" if ttotal else "–"
    lines.append(f"| **sum of layers** | | | | | | {ratio} | {total:.0f} ms (torch {ttotal:.0f} ms) |")
    return "\n".join(lines)


def build(name: str):
    from dlfs.milestones.cifar_resnet import PRESETS

    return PRESETS[name].build(np.random.default_rng(0))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("preset", help="a Milestone 17 preset whose network to profile (e.g. resnet9, airbench-45min)")
    ap.add_argument("--batch", type=int, default=None, help="batch size (default: the preset's)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for both sides (1: CPU time of one thread; default: all cores, wall time)")
    args = ap.parse_args(argv)
    if args.threads:
        global clock, threads
        import os

        threads = args.threads
        os.environ["DLFS_NUM_THREADS"] = str(args.threads)
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
        if args.threads == 1:
            clock = time.process_time
    from dlfs.milestones.cifar_resnet import PRESETS

    batch = args.batch or PRESETS[args.preset].train.batch_size
    rows = profile(build(args.preset), batch, args.repeats)
    kind = "one thread, CPU time" if clock is time.process_time else f"{args.threads or 'all'} threads, wall time"
    print(f"{args.preset}, batch {batch}, median of {args.repeats} ({kind})")
    print(table(rows))


if __name__ == "__main__":
    main()
