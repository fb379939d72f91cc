"""Plot optimiser paths on a 2-D valley and the learning-rate schedules of Topic 03.

    python topics/03-optimizers/plot_trajectories.py [--mine] [out.png]

Saves a PNG (default ``optimizer_trajectories.png`` in the current folder). By default it
plots the reference implementation; with ``--mine`` it uses your exercise files in the
workspace instead.
"""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

if "--mine" in sys.argv:                      # load the learner's files under the library's names
    from dlfs.course import redirect
    from dlfs.course.registry import get_topic
    from dlfs.course.workspace import learner_files

    redirect.install({m: str(f) for m, f in learner_files(get_topic(3)).items() if f.exists()})

from dlfs.optim import optimizers as optim  # noqa: E402
from dlfs.optim import schedules as sched  # noqa: E402


def valley(x, y):
    """A narrow curved valley (Rosenbrock with b = 10), minimum at (1, 1)."""
    return (1 - x) ** 2 + 10 * (y - x * x) ** 2


def valley_grad(p):
    x, y = p
    return np.array([-2 * (1 - x) - 40 * x * (y - x * x), 20 * (y - x * x)])


class Point:
    def __init__(self, xy):
        self.data = np.array(xy, dtype=np.float64)
        self.grad = None


OPTIMISERS = {
    "SGD lr=0.01": lambda ps: optim.SGD(ps, lr=0.01),
    "momentum 0.9": lambda ps: optim.SGD(ps, lr=0.01, momentum=0.9),
    "Nesterov 0.9": lambda ps: optim.SGD(ps, lr=0.01, momentum=0.9, nesterov=True),
    "RMSprop lr=0.01": lambda ps: optim.RMSprop(ps, lr=0.01),
    "Adam lr=0.05": lambda ps: optim.Adam(ps, lr=0.05),
}


def path(make, start=(-1.5, 2.0), steps=300):
    p = Point(start)
    opt = make([p])
    out = [p.data.copy()]
    for _ in range(steps):
        p.grad = valley_grad(p.data)
        opt.step()
        out.append(p.data.copy())
    return np.array(out)


def main(out="optimizer_trajectories.png"):
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5))

    xs, ys = np.meshgrid(np.linspace(-2, 2, 300), np.linspace(-1, 3, 300))
    ax.contour(xs, ys, np.log1p(valley(xs, ys)), levels=30, cmap="Greys", linewidths=0.6)
    for name, make in OPTIMISERS.items():
        pts = path(make)
        ax.plot(pts[:, 0], pts[:, 1], ".-", ms=2, lw=1, label=f"{name} (f = {valley(*pts[-1]):.1e})")
    ax.plot([1], [1], "k*", ms=12)
    ax.set(title="300 steps on a curved valley, start (-1.5, 2)", xlabel="x", ylabel="y",
           xlim=(-2, 2), ylim=(-1, 3))
    ax.legend(fontsize=8, loc="lower right")

    steps = np.arange(0, 1200)
    for label, make in {
        "StepLR(step_size=300, gamma=0.5)": lambda o: sched.StepLR(o, 300, 0.5),
        "CosineWithWarmup(100, 1000)": lambda o: sched.CosineWithWarmup(o, 100, 1000),
        "CosineWithWarmup(100, 1000, min_lr=1e-4)": lambda o: sched.CosineWithWarmup(o, 100, 1000, 1e-4),
    }.items():
        s = make(optim.SGD([Point([0.0])], lr=1e-3))
        bx.plot(steps, [s.lr_at(int(k)) for k in steps], label=label)
    bx.set(title="learning-rate schedules (base lr 1e-3)", xlabel="step", ylabel="lr")
    bx.legend(fontsize=8)

    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"saved {out}")


if __name__ == "__main__":
    main(*[a for a in sys.argv[1:] if a != "--mine"][:1])
