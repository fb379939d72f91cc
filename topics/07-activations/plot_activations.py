"""Plot the activations with their derivatives, and watch ReLU units die during training.

    python topics/07-activations/plot_activations.py [OUT_DIR]

writes ``activations.png`` (each function and the derivative its backward pass computes) and
``dead_relu.png`` (the fraction of dead ReLU units while a small network trains; one batch with
absurd targets at step 20 kills most of them, and none ever comes back) to OUT_DIR (default:
the current directory). Run directly, it uses the library's ``dlfs.nn.activations``; the
tests (``dlfs check 7``) run the same functions on your exercise file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from dlfs.nn import activations as A
from dlfs.nn.layers import Linear, Sequential
from dlfs.optim.optimizers import SGD

CURVES = {
    "ReLU": (A.relu, lambda dy, x: A.relu_backward(dy, x)),
    "LeakyReLU(0.1)": (lambda x: A.leaky_relu(x, 0.1), lambda dy, x: A.leaky_relu_backward(dy, x, 0.1)),
    "ELU(1)": (A.elu, lambda dy, x: A.elu_backward(dy, x)),
    "GELU": (A.gelu, lambda dy, x: A.gelu_backward(dy, x)),
    "GELU (tanh)": (lambda x: A.gelu(x, "tanh"), lambda dy, x: A.gelu_backward(dy, x, "tanh")),
    "SiLU": (A.silu, lambda dy, x: A.silu_backward(dy, x)),
    "sigmoid": (A.sigmoid, lambda dy, x: A.sigmoid_backward(dy, A.sigmoid(x))),
    "tanh": (A.tanh, lambda dy, x: A.tanh_backward(dy, A.tanh(x))),
}


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=90)
    FigureCanvasAgg(fig)
    return fig


def plot_activations(path, lo: float = -4.0, hi: float = 4.0) -> Path:
    """Write a PNG with every activation (left) and its derivative from the backward pass (right)."""
    x = np.linspace(lo, hi, 801)
    fig = _figure(11, 4.5)
    ax_f, ax_d = fig.subplots(1, 2)
    for name, (f, f_backward) in CURVES.items():
        ax_f.plot(x, f(x), label=name, lw=1.4)
        ax_d.plot(x, f_backward(np.ones_like(x), x), label=name, lw=1.4)
    for ax, title in ((ax_f, "f(x)"), (ax_d, "f'(x) from the backward pass")):
        ax.axhline(0, color="k", lw=0.5)
        ax.axvline(0, color="k", lw=0.5)
        ax.set_xlabel("x")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    ax_f.set_ylim(-1.5, 4)
    ax_d.set_ylim(-0.2, 1.3)
    ax_f.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


def dead_relu_curve(steps: int = 120, spike_at: int = 20, seed: int = 0) -> list[float]:
    """Fraction of dead ReLU units (on the training batch) before each SGD step.

    A 10-64-1 ReLU network regresses a smooth target from non-negative inputs with SGD
    (lr 0.05); at step ``spike_at`` one batch has targets of -1000 (an outlier, or a bug in the
    data pipeline) and is taken with lr 0.1. Returns ``steps + 1`` fractions.
    """
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (256, 10))
    t = np.sin(3 * x @ rng.standard_normal((10, 1)))
    init_rng = np.random.default_rng(seed + 1)
    l1 = Linear(10, 64, rng=init_rng, dtype=np.float64)
    l2 = Linear(64, 1, rng=init_rng, dtype=np.float64)
    l2.W.data[...] = np.abs(l2.W.data)
    net = Sequential(l1, A.ReLU(), l2)
    opt = SGD(net.parameters(), lr=0.05)
    fractions = []
    for step in range(steps):
        fractions.append(A.dead_relu_fraction(l1.forward(x)))
        target, opt.lr = (np.full_like(t, -1000.0), 0.1) if step == spike_at else (t, 0.05)
        opt.zero_grad()
        y = net.forward(x)
        net.backward(2 * (y - target) / len(x))
        opt.step()
    fractions.append(A.dead_relu_fraction(l1.forward(x)))
    return fractions


def plot_dead_relu(path, steps: int = 120, spike_at: int = 20) -> Path:
    """Write a PNG of :func:`dead_relu_curve`."""
    fractions = dead_relu_curve(steps, spike_at)
    fig = _figure(6, 4)
    ax = fig.add_subplot()
    ax.plot(np.arange(len(fractions)), fractions, lw=1.8)
    ax.axvline(spike_at, color="r", ls="--", lw=1, label="one outlier batch")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("SGD step")
    ax.set_ylabel("fraction of dead ReLU units")
    ax.set_title("Dead ReLUs never come back")
    ax.grid(alpha=0.3)
    ax.legend(loc="center right")
    return _save(fig, path)


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    return path


def main(argv: list[str]) -> None:
    out = Path(argv[0]) if argv else Path(".")
    for p in (plot_activations(out / "activations.png"), plot_dead_relu(out / "dead_relu.png")):
        print("wrote", p)


if __name__ == "__main__":
    main(sys.argv[1:])
