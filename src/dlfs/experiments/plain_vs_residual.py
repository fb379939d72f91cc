"""Topic 14 — the degradation problem, measured: a deep plain network against the residual
network of the same depth.

Both networks are ``dlfs.conv.resnet.ResNet`` with ``blocks_per_stage`` basic blocks per stage
(depth 6n + 2: 56 layers by default) and the same widths; the plain one (``residual=False``)
only lacks the shortcuts. Both are trained on the same few thousand real MNIST digits (padded
to 32×32 and average-pooled to 16×16, which keeps the run short) from the same seed, with the
same optimiser, the same batches in the same order and the same number of steps. Before
training, one batch is back-propagated through each freshly initialised network to measure the
norm of the gradient that reaches each block.

    python -m dlfs.experiments.plain_vs_residual [--data-dir DIR] [--out DIR | --record]

Saves ``plain_vs_residual.png`` (training loss of both networks; gradient norm per block at
initialisation) and ``plain_vs_residual.json`` (the numbers) in ``--out``, and prints the final
numbers. About a minute and a half on one CPU core with the defaults.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dlfs.experiments import common

RESULTS = "topic-14"        # results/topic-14/ (see dlfs.experiments.common)


@dataclass(frozen=True)
class Config:
    blocks_per_stage: int = 9          # 6·9 + 2 = 56 layers
    widths: tuple[int, int, int] = (8, 16, 32)
    train_images: int = 4096
    test_images: int = 1000
    batch_size: int = 64
    steps: int = 120
    lr: float = 0.05
    momentum: float = 0.9
    grad_batch: int = 128              # images in the gradient-norm measurement
    seed: int = 0

    @property
    def depth(self) -> int:
        return 6 * self.blocks_per_stage + 2


# ----------------------------------------------------------------- data

def shrink_digits(images: np.ndarray) -> np.ndarray:
    """(N, 1, 28, 28) in [0, 1] -> (N, 1, 16, 16) float32: zero-pad to 32×32 (as LeNet did),
    then average each 2×2 block."""
    x = np.pad(np.asarray(images, dtype=np.float32), ((0, 0), (0, 0), (2, 2), (2, 2)))
    n, c = x.shape[:2]
    return x.reshape(n, c, 16, 2, 16, 2).mean(axis=(3, 5))


def load_digits(data_dir: str | None, cfg: Config):
    """A random subset of ``cfg.train_images`` MNIST training digits and the first
    ``cfg.test_images`` test digits, shrunk to 16×16 and standardised with the subset's mean
    and std. Returns x_train (N, 1, 16, 16) float32, y_train (N,) int64, x_test, y_test.
    Raises DataError (naming ``dlfs data get mnist`` and DLFS_DATA_DIR) when MNIST is missing."""
    from dlfs.data.mnist import load_mnist

    ds = load_mnist(data_dir)
    pick = np.random.default_rng(cfg.seed).permutation(len(ds.x_train))[:cfg.train_images]
    x_train, y_train = shrink_digits(ds.x_train[pick]), ds.y_train[pick]
    x_test, y_test = shrink_digits(ds.x_test[:cfg.test_images]), ds.y_test[:cfg.test_images]
    mean, std = x_train.mean(), x_train.std()
    return (x_train - mean) / std, y_train, (x_test - mean) / std, y_test


# ----------------------------------------------------------------- measurements

def block_gradient_norms(model, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """‖∂L/∂(output of block b)‖ for every BasicBlock b of ``model`` (a ResNet), input side
    first, for one batch (x: (N, C, H, W), y: (N,)) in training mode. The backward pass walks
    ``model.net`` layer by layer to read the gradient arriving at each block; parameter
    gradients are cleared afterwards."""
    from dlfs.conv.resnet import BasicBlock
    from dlfs.nn.losses import CrossEntropyLoss

    loss_fn = CrossEntropyLoss()
    model.train()
    loss_fn(model.forward(x), y)
    d = loss_fn.backward()
    norms = []
    for layer in reversed(model.net.layers):
        if isinstance(layer, BasicBlock):
            norms.append(float(np.linalg.norm(d.astype(np.float64))))
        d = layer.backward(d)
    model.zero_grad()
    return np.array(norms[::-1])


def accuracy(model, x: np.ndarray, y: np.ndarray, batch_size: int = 500) -> float:
    """Fraction of correct predictions in evaluation mode (running BatchNorm statistics)."""
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += int((model.forward(x[i:i + batch_size]).argmax(axis=1) == y[i:i + batch_size]).sum())
    model.train()
    return correct / max(len(x), 1)


def train(model, x: np.ndarray, y: np.ndarray, cfg: Config, bar=None) -> list[float]:
    """``cfg.steps`` steps of SGD with momentum on batches drawn (without replacement within an
    epoch) by a generator seeded with ``cfg.seed``: both networks see the same batches.
    Returns the training loss of every step."""
    from dlfs.nn.losses import CrossEntropyLoss
    from dlfs.optim.optimizers import SGD

    loss_fn = CrossEntropyLoss()
    opt = SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    rng = np.random.default_rng(cfg.seed + 1)
    per_epoch = len(x) // cfg.batch_size
    order = np.empty(0, dtype=np.int64)
    losses: list[float] = []
    model.train()
    for step in range(cfg.steps):
        if step % per_epoch == 0:
            order = rng.permutation(len(x))
        idx = order[(step % per_epoch) * cfg.batch_size:(step % per_epoch + 1) * cfg.batch_size]
        opt.zero_grad()
        loss = loss_fn(model.forward(x[idx]), y[idx])
        model.backward(loss_fn.backward())
        opt.step()
        if not np.isfinite(loss):
            raise FloatingPointError(f"the loss became {loss} at step {step}: lower --lr")
        losses.append(float(loss))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
    return losses


# ----------------------------------------------------------------- plot

def smooth(values, window: int = 10) -> np.ndarray:
    """Trailing moving average (the first points average what is available)."""
    v = np.asarray(values, dtype=np.float64)
    c = np.cumsum(np.insert(v, 0, 0.0))
    n = np.arange(1, len(v) + 1)
    lo = np.maximum(n - window, 0)
    return (c[n] - c[lo]) / (n - lo)


def plot(result: dict, path: str | Path) -> Path:
    """Two panels: training loss per step (raw and smoothed) of both networks; the gradient norm
    reaching each block at initialisation (log scale)."""
    from dlfs.viz.plots import _pyplot, _save

    plt = _pyplot()
    depth = result["config"]["depth"]
    fig, (ax_loss, ax_grad) = plt.subplots(1, 2, figsize=(11, 4))
    colours = {"plain": "tab:red", "residual": "tab:blue"}
    for name, run in result["runs"].items():
        losses = run["losses"]
        steps = np.arange(1, len(losses) + 1)
        label = f"{name}-{depth} (final {run['final_train_loss']:.3f}, test acc {run['test_accuracy']:.1%})"
        ax_loss.plot(steps, losses, color=colours[name], alpha=0.25, lw=0.8)
        ax_loss.plot(steps, smooth(losses), color=colours[name], lw=2, label=label)
        g = np.asarray(run["grad_norms_at_init"])
        ax_grad.semilogy(np.arange(1, len(g) + 1), g, marker="o", ms=3, color=colours[name],
                         label=f"{name}-{depth}")
    ax_loss.set_xlabel("training step")
    ax_loss.set_ylabel("training loss (cross-entropy)")
    ax_loss.set_title(f"Training loss, {depth} layers, same budget")
    ax_loss.set_ylim(bottom=0)
    ax_loss.grid(alpha=0.3)
    ax_loss.legend()
    n = result["config"]["blocks_per_stage"]
    for boundary in (n + 0.5, 2 * n + 0.5):
        ax_grad.axvline(boundary, color="grey", lw=0.8, ls=":")
    ax_grad.set_xlabel("block (1 = next to the input)")
    ax_grad.set_ylabel("‖∂L/∂ block output‖ at initialisation")
    ax_grad.set_title("Gradient reaching each block")
    ax_grad.grid(alpha=0.3, which="both")
    ax_grad.legend()
    fig.suptitle(f"Plain vs residual, {depth} layers, {result['data']}")
    return _save(fig, path)


# ----------------------------------------------------------------- run

def run(cfg: Config = Config(), data_dir: str | None = None, out_dir: str | Path = ".",
        progress: bool = True, log=print) -> dict:
    """Measure, train and evaluate both networks; save the figure and the numbers in
    ``out_dir``. Returns the result dict (also written as JSON)."""
    from tqdm import tqdm

    from dlfs.conv.resnet import ResNet

    x_train, y_train, x_test, y_test = load_digits(data_dir, cfg)
    data = f"{len(x_train):,} MNIST digits at 16×16"
    log(f"data: {data} for training, {len(x_test):,} test digits; {cfg.steps} steps of batch "
        f"{cfg.batch_size}, SGD lr {cfg.lr} momentum {cfg.momentum}")
    result = {"config": {**asdict(cfg), "depth": cfg.depth}, "data": data, "runs": {}}
    bar = tqdm(total=2 * cfg.steps, unit="step", disable=not progress or None)
    for name, residual in (("plain", False), ("residual", True)):
        model = ResNet(cfg.blocks_per_stage, cfg.widths, num_classes=10, in_channels=1,
                       residual=residual, rng=np.random.default_rng(cfg.seed))
        grads = block_gradient_norms(model, x_train[:cfg.grad_batch], y_train[:cfg.grad_batch])
        bar.set_description(f"{name}-{cfg.depth}")
        t0 = time.perf_counter()
        losses = train(model, x_train, y_train, cfg, bar)
        seconds = time.perf_counter() - t0
        acc = accuracy(model, x_test, y_test)
        result["runs"][name] = {
            "parameters": model.num_parameters(),
            "grad_norms_at_init": grads.tolist(),
            "grad_norm_ratio_first_to_last": float(grads[0] / grads[-1]),
            "losses": losses,
            "final_train_loss": float(np.mean(losses[-20:])),
            "test_accuracy": acc,
            "train_seconds": round(seconds, 1),
        }
    bar.close()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figure = plot(result, out / "plain_vs_residual.png")
    (out / "plain_vs_residual.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    for name, r in result["runs"].items():
        g = r["grad_norms_at_init"]
        log(f"{name}-{cfg.depth}: {r['parameters']:,} parameters; training loss (mean of the last 20 "
            f"steps) {r['final_train_loss']:.3f}; test accuracy {r['test_accuracy']:.1%}; gradient norm "
            f"at init: block 1 {g[0]:.3g}, block {len(g)} {g[-1]:.3g} (ratio "
            f"{r['grad_norm_ratio_first_to_last']:.3g}); {r['train_seconds']:.0f} s")
    log(f"saved {figure} and {out / 'plain_vs_residual.json'}")
    return result


def main(argv: list[str] | None = None) -> int:
    p = common.parser("plain_vs_residual", "Train a deep plain network and the residual network of the "
                                           "same depth on MNIST digits; plot both.", RESULTS, data="mnist/")
    d = Config()
    p.add_argument("--blocks-per-stage", type=int, default=d.blocks_per_stage,
                   help=f"n: depth 6n + 2 (default {d.blocks_per_stage})")
    p.add_argument("--steps", type=int, default=d.steps, help=f"training steps (default {d.steps})")
    p.add_argument("--train-images", type=int, default=d.train_images)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = p.parse_args(argv)
    cfg = Config(blocks_per_stage=args.blocks_per_stage, steps=args.steps, train_images=args.train_images,
                 batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    if cfg.blocks_per_stage < 1 or cfg.steps < 1 or cfg.train_images < cfg.batch_size or cfg.batch_size < 2:
        p.error("need --blocks-per-stage >= 1, --steps >= 1 and --train-images >= --batch-size >= 2")
    from dlfs.errors import DataError

    try:
        run(cfg, data_dir=args.data_dir, out_dir=common.output_dir(args), progress=not args.no_progress)
    except DataError as exc:
        message = str(exc)
        if "dlfs data get" not in message:
            message += ("\nThis experiment needs MNIST: run `dlfs data get mnist`, or set DLFS_DATA_DIR "
                        "(or pass --data-dir) to a folder that holds mnist/.")
        print(f"error: {message}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
