"""Lookahead: an exponential moving average of the weights pulled back every k steps
(Zhang et al. 2019; the "lookahead EMA" of Jordan's airbench).

Wraps any optimiser of ``dlfs.optim``. The wrapped ("fast") optimiser steps as usual; every
``every`` steps the slow copy of the weights moves towards the fast ones and the fast
weights restart from it:

    slow ← slow + alpha · (fast − slow)        fast ← slow

alpha = 1 is the plain optimiser; smaller alpha averages away the noise of the last steps.
Given ``total_steps`` T, alpha follows airbench's schedule instead of staying constant: at
step t, ``alpha_t = 1 − (1 − alpha) · (t / T)³``, no averaging early in training (where it
would only slow progress) and the full ``alpha`` at the end.
The wrapper behaves like an optimiser (``params``, ``lr``, ``step``, ``zero_grad``,
``state_dict``, ``load_state_dict``), so schedules and ``dlfs.train.recipe``'s checkpoints
work unchanged: the slow weights are saved as one more per-parameter array
(``"lookahead_slow"``) and the step count as a scalar of parameter 0 (``"lookahead_steps"``).

Only the optimiser's parameters are averaged (not BatchNorm's running statistics, which
airbench also averages).
"""

from __future__ import annotations

import numpy as np

SLOW, STEPS = "lookahead_slow", "lookahead_steps"


class Lookahead:
    """``Lookahead(optimizer, every=5, alpha=0.5, total_steps=None)``; slow weights start as
    copies of the parameters (same shapes and dtypes)."""

    def __init__(self, optimizer, every: int = 5, alpha: float = 0.5, total_steps: int | None = None):
        if int(every) < 1:
            raise ValueError(f"every must be a positive number of steps, got {every}")
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.optimizer = optimizer
        if total_steps is not None and int(total_steps) < 1:
            raise ValueError(f"total_steps must be positive, got {total_steps}")
        self.every, self.alpha = int(every), float(alpha)
        self.total_steps = None if total_steps is None else int(total_steps)
        self.steps = 0
        self.slow = [p.data.copy() for p in optimizer.params]

    @property
    def params(self) -> list:
        return self.optimizer.params

    @property
    def lr(self) -> float:
        return self.optimizer.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self.optimizer.lr = value

    def zero_grad(self, *args, **kwargs) -> None:
        self.optimizer.zero_grad(*args, **kwargs)

    def alpha_at(self, step: int) -> float:
        """The averaging weight of the exchange after step ``step`` (1-based)."""
        if self.total_steps is None:
            return self.alpha
        return 1.0 - (1.0 - self.alpha) * min(step / self.total_steps, 1.0) ** 3

    def step(self) -> None:
        """One step of the wrapped optimiser; every ``every``-th, the slow/fast exchange."""
        self.optimizer.step()
        self.steps += 1
        if self.steps % self.every == 0:
            alpha = self.alpha_at(self.steps)
            for p, slow in zip(self.params, self.slow):
                slow += alpha * (p.data - slow)
                p.data[...] = slow

    def state_dict(self) -> dict:
        """The wrapped optimiser's ``state_dict()`` with the slow weights (copies) added to
        every parameter's state and the step count to parameter 0's."""
        inner = self.optimizer.state_dict()
        state = {int(i): dict(st) for i, st in inner["state"].items()}
        for i, slow in enumerate(self.slow):
            state.setdefault(i, {})[SLOW] = slow.copy()
        state[0][STEPS] = self.steps
        return {"lr": inner["lr"], "state": state}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a snapshot of :meth:`state_dict`. ValueError (nothing changed) when a
        parameter's slow weights are missing or of the wrong shape."""
        state = {int(i): dict(st) for i, st in state_dict["state"].items()}
        slow = []
        for i, p in enumerate(self.params):
            value = state.get(i, {}).pop(SLOW, None)
            if not isinstance(value, np.ndarray) or value.shape != p.data.shape:
                raise ValueError(f"lookahead state of parameter {i}: expected slow weights of shape "
                                 f"{p.data.shape}, got {getattr(value, 'shape', value)!r}")
            slow.append(np.array(value, dtype=p.data.dtype, copy=True))
        steps = int(state.get(0, {}).pop(STEPS, 0))
        self.optimizer.load_state_dict({"lr": state_dict["lr"],
                                        "state": {i: st for i, st in state.items() if st}})
        self.slow, self.steps = slow, steps
