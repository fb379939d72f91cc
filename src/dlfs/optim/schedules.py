"""Topic 03 — Controlling the size of each step: learning-rate schedules and gradient clipping.

A schedule is a pure function of the step count, ``lr_at(step)``, plus a little machinery
(written for you in ``LRScheduler``) that writes ``optimizer.lr = lr_at(step)``. The
training loop follows the PyTorch convention::

    scheduler = CosineWithWarmup(optimizer, warmup_steps=100, total_steps=1000)
    for batch in batches:            # optimizer.lr == lr_at(0) for the first step
        ...backward...
        clip_grad_norm(params, 1.0)  # optional: bound the size of this step's gradient
        optimizer.step()
        scheduler.step()             # step k of the optimiser uses lr_at(k)

Schedules only need an object with an ``lr`` attribute, so this module does not import
``dlfs.optim.optimizers``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np


class LRScheduler(ABC):
    """Base class. On construction it records ``base_lr = optimizer.lr`` and sets
    ``optimizer.lr = lr_at(0)``; each ``step()`` advances ``last_step`` by one and sets
    ``optimizer.lr = lr_at(last_step)``. Subclasses define ``lr_at``."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lr = float(optimizer.lr)
        self.last_step = 0
        self.optimizer.lr = self.lr_at(0)

    @abstractmethod
    def lr_at(self, step: int) -> float:
        """The learning rate for optimiser step ``step`` (0-based); no side effects.
        Each schedule below defines it."""

    def step(self) -> float:
        """Advance one step, set the optimiser's learning rate, and return it."""
        self.last_step += 1
        lr = self.lr_at(self.last_step)
        self.optimizer.lr = lr
        return lr

    def state_dict(self) -> dict:
        return {"base_lr": self.base_lr, "last_step": self.last_step}

    def load_state_dict(self, state_dict: dict) -> None:
        self.base_lr = float(state_dict["base_lr"])
        self.last_step = int(state_dict["last_step"])
        self.optimizer.lr = self.lr_at(self.last_step)


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` steps, as
    ``torch.optim.lr_scheduler.StepLR``:

        lr(s) = base_lr · gamma^⌊s / step_size⌋
    """

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        if step_size < 1:
            raise ValueError(f"step_size must be >= 1, got {step_size}")
        self.step_size = int(step_size)
        self.gamma = float(gamma)
        super().__init__(optimizer)

    def lr_at(self, step: int) -> float:
        # BEGIN SOLUTION base_lr times gamma to the power (number of completed step_size blocks)
        return self.base_lr * self.gamma ** (step // self.step_size)
        # END SOLUTION


class CosineWithWarmup(LRScheduler):
    """Linear warmup from 0 to ``base_lr``, then a half cosine from ``base_lr`` down to
    ``min_lr``, then constant at ``min_lr``:

        lr(s) = base_lr · s / W                                        for s < W
        lr(s) = min_lr + (base_lr - min_lr) · ½ (1 + cos(π p))         for s ≥ W,
                p = min(1, (s - W) / (T - W))

    with W = warmup_steps and T = total_steps, so lr(0) = 0, lr(W) = base_lr and
    lr(s) = min_lr for every s ≥ T. (With W = 0 there is no warmup: lr(0) = base_lr.)
    """

    def __init__(self, optimizer, warmup_steps: int, total_steps: int, min_lr: float = 0.0):
        if warmup_steps < 0 or total_steps <= warmup_steps:
            raise ValueError(f"need 0 <= warmup_steps < total_steps, got {warmup_steps} and {total_steps}")
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.min_lr = float(min_lr)
        super().__init__(optimizer)

    def lr_at(self, step: int) -> float:
        # TODO: three regimes: warmup (s < W), cosine (W <= s < T), floor (s >= T).
        # BEGIN SOLUTION linear warmup, then cosine decay to min_lr, then stay at min_lr
        if step < self.warmup_steps:
            return self.base_lr * step / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
        # END SOLUTION


class Triangular(LRScheduler):
    """airbench's schedule (Jordan 2024): linear from ``start`` · base_lr up to base_lr at step
    P = ⌊peak_at · T⌋, then linear down to ``end`` · base_lr at T = ``total_steps``, then constant:

        lr(s) = base_lr · (start + (1 − start) · s / P)             for s < P
        lr(s) = base_lr · (1 + (end − 1) · min(s − P, T − P) / (T − P))   for s ≥ P

    airbench94 uses start 0.2, peak_at 0.23, end 0.07: no warm-up from zero, and a learning
    rate that never quite reaches zero.
    """

    def __init__(self, optimizer, total_steps: int, start: float = 0.2, peak_at: float = 0.23, end: float = 0.07):
        if int(total_steps) < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        if not 0.0 <= peak_at < 1.0:
            raise ValueError(f"peak_at is a fraction of the steps in [0, 1), got {peak_at}")
        if start < 0 or end < 0:
            raise ValueError(f"start and end are fractions of the peak learning rate (>= 0), got {start} and {end}")
        self.total_steps = int(total_steps)
        self.start, self.peak_at, self.end = float(start), float(peak_at), float(end)
        self.peak_step = int(self.peak_at * self.total_steps)
        super().__init__(optimizer)

    def lr_at(self, step: int) -> float:
        p, t = self.peak_step, self.total_steps
        if step < p:
            return self.base_lr * (self.start + (1.0 - self.start) * step / p)
        return self.base_lr * (1.0 + (self.end - 1.0) * min(step - p, t - p) / (t - p))


def clip_grad_norm(params, max_norm: float) -> float:
    """Rescale all gradients together so their global L2 norm is at most ``max_norm``,
    as ``torch.nn.utils.clip_grad_norm_``.

    params: iterable of parameters; those whose ``.grad`` is None are ignored.
    The global norm is ‖(g₁, g₂, ...)‖₂ = sqrt(Σ_i Σ g_i²) over every gradient array. When
    c = max_norm / (norm + 1e-6) is below 1, every gradient is multiplied by c **in place**
    (same arrays, same dtype); otherwise the gradients are left untouched.
    Returns the norm measured *before* clipping, as a float (0.0 when there are no gradients).
    """
    # TODO: one norm over all arrays together, not one per array.
    # BEGIN SOLUTION compute the global norm, scale every gradient in place by max_norm / (norm + 1e-6) when that is < 1
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    total = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads))
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            g *= coef
    return total
    # END SOLUTION
