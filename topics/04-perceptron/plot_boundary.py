"""Draw a trained 2-D classifier's decision regions and its training points as a PNG.

    python topics/04-perceptron/plot_boundary.py [OUT_DIR]

trains a Perceptron and a LogisticUnit on two Gaussian blobs and writes
``perceptron_boundary.png`` and ``logistic_boundary.png`` to OUT_DIR (default: the current
directory). It trains the reference classes from ``dlfs.nn.perceptron``; to look at your own
model, fit it and pass it to ``plot_decision_boundary(model, X, y, path)``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def plot_decision_boundary(model, X, y, path, *, resolution: int = 200, title: str | None = None) -> Path:
    """Write a PNG of ``model``'s decision regions over the points ``X`` coloured by ``y``.

    model: anything with ``predict(X: (M, 2)) -> (M,)`` (labels -1/+1 or 0/1; a label > 0 is
    the positive class) and, optionally, ``decision_function`` (its zero level is drawn as the
    boundary line). X: (N, 2); y: (N,). Returns the path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y).reshape(-1)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"plot_decision_boundary needs 2-D points, X of shape (N, 2); got {X.shape}")
    pad = 0.1 * (X.max(axis=0) - X.min(axis=0)) + 0.5
    lo, hi = X.min(axis=0) - pad, X.max(axis=0) + pad
    xx, yy = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
    grid = np.column_stack([xx.ravel(), yy.ravel()]).astype(X.dtype)
    positive = (np.asarray(model.predict(grid)) > 0).reshape(xx.shape)

    fig = Figure(figsize=(5, 5), dpi=80)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(positive, origin="lower", extent=(lo[0], hi[0], lo[1], hi[1]), aspect="auto",
              cmap=ListedColormap(["#f4c7c3", "#c6dbef"]), vmin=0, vmax=1, interpolation="nearest")
    if hasattr(model, "decision_function"):
        scores = np.asarray(model.decision_function(grid), dtype=np.float64).reshape(xx.shape)
        if scores.min() < 0 < scores.max():
            ax.contour(xx, yy, scores, levels=[0.0], colors="k", linewidths=1.5)
    pos = y > 0
    ax.scatter(X[~pos, 0], X[~pos, 1], c="#d62728", marker="o", s=18, edgecolors="k", linewidths=0.4,
               label="negative")
    ax.scatter(X[pos, 0], X[pos, 1], c="#1f77b4", marker="s", s=18, edgecolors="k", linewidths=0.4,
               label="positive")
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_title(title or f"{type(model).__name__}: decision regions")
    ax.legend(loc="upper right", fontsize=8)
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.11, top=0.93)
    path = Path(path)
    fig.savefig(path, format="png")
    return path


def two_blobs(n: int = 100, seed: int = 0, distance: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian blobs in 2-D, ``n`` points each: X (2n, 2) float64, y (2n,) in {0, 1}."""
    rng = np.random.default_rng(seed)
    centre = np.array([2.0, 1.0]) * (distance / 2 / np.sqrt(5.0))     # the centres are `distance` apart
    X = np.concatenate([rng.normal(size=(n, 2)) - centre, rng.normal(size=(n, 2)) + centre])
    y = np.repeat([0, 1], n)
    return X, y


def main(out_dir: str = ".") -> None:
    from dlfs.nn.perceptron import LogisticUnit, Perceptron

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    X, y = two_blobs()
    perceptron = Perceptron(max_epochs=1000).fit(X, y)
    logistic = LogisticUnit(lr=0.5, epochs=500).fit(X, y)
    for model, name in [(perceptron, "perceptron"), (logistic, "logistic")]:
        written = plot_decision_boundary(model, X, y, out / f"{name}_boundary.png")
        acc = np.mean((model.predict(X) > 0) == (y > 0))
        print(f"{name}: training accuracy {acc:.1%} -> {written}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
