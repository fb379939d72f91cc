"""Topic 03 — Optimization algorithms: SGD, momentum, Nesterov, RMSprop, Adam and AdamW.

A *parameter* is any object with two attributes:

- ``.data``: an ``np.ndarray`` holding the weights; the optimiser updates it **in place**
  (``data -= ...``), so every layer holding a reference to the array sees the new values;
- ``.grad``: an ``np.ndarray`` of the same shape, or ``None`` when the parameter received no
  gradient this step (it is then skipped, and no state is created for it).

Every optimiser keeps, per parameter, a small ``state`` dict (momentum buffers, moment
estimates, step counts). ``Optimizer.step`` is written for you: it walks the parameters and
calls ``self.update(data, grad, state)`` for each one that has a gradient. You write the
``update`` of each optimiser, ``zero_grad`` and the checkpoint pair ``state_dict`` /
``load_state_dict``.

Rules every ``update`` follows (they match ``torch.optim``):

- change ``data`` in place and never change ``grad`` (``grad = grad + ...`` makes a new
  array; ``grad += ...`` would overwrite the caller's gradient);
- keep the parameter's dtype: buffers are ``np.zeros_like(data)``, and float32 stays float32;
- read the learning rate from ``self.lr`` at every step: schedules change it between steps.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class Optimizer(ABC):
    """Base class: holds the parameters, the learning rate and the per-parameter state.

    params: an iterable of parameters (objects with ``.data`` and ``.grad``);
    lr: the learning rate, a float stored as ``self.lr`` (schedules overwrite it).
    ``self.state[i]`` is the state dict of ``self.params[i]``; it starts empty and each
    optimiser fills it on the parameter's first update.
    """

    def __init__(self, params, lr: float):
        self.params = list(params)
        if not self.params:
            raise ValueError("the optimiser got an empty parameter list")
        if lr < 0:
            raise ValueError(f"learning rate must be >= 0, got {lr}")
        self.lr = float(lr)
        self.state: list[dict] = [{} for _ in self.params]

    def step(self) -> None:
        """Update every parameter that has a gradient; skip those whose ``.grad`` is None."""
        for p, state in zip(self.params, self.state):
            if p.grad is None:
                continue
            self.update(p.data, p.grad, state)

    @abstractmethod
    def update(self, data: np.ndarray, grad: np.ndarray, state: dict) -> None:
        """Apply one update to ``data`` in place. data, grad: same shape; state: this
        parameter's state dict (empty before its first update). Each optimiser below defines it."""

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients before the next backward pass.

        set_to_none=True (the default, as in PyTorch): set every ``p.grad`` to ``None``, so
        the next backward pass writes fresh arrays and a parameter that receives no gradient
        is skipped by ``step``. set_to_none=False: fill each existing gradient array with
        zeros in place (same array object); gradients that are ``None`` stay ``None``.
        """
        # TODO: loop over self.params; either assign None or zero the array in place.
        # BEGIN SOLUTION set every p.grad to None, or (set_to_none=False) zero it in place
        for p in self.params:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad[...] = 0
        # END SOLUTION

    def state_dict(self) -> dict:
        """A snapshot for checkpoints: ``{"lr": float, "state": {i: {name: value}}}``.

        ``state`` maps the index of each parameter that has state to a **copy** of its state
        dict (arrays copied, step counts as ints), so stepping on afterwards does not change
        the snapshot. Parameters with empty state are left out.
        """
        # TODO: copy every array; a snapshot that shares arrays with the optimiser changes
        # when the optimiser steps.
        # BEGIN SOLUTION return {"lr": ..., "state": {index: copied state dict}}
        return {
            "lr": self.lr,
            "state": {
                i: {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in st.items()}
                for i, st in enumerate(self.state) if st
            },
        }
        # END SOLUTION

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a snapshot from ``state_dict()`` so training continues bit-identically.

        Sets ``self.lr`` and replaces ``self.state`` with copies of the saved entries
        (parameters missing from ``state_dict["state"]`` get empty state). Copies, so the
        same snapshot can be loaded again later. Raises ValueError when an index is out of
        range or a saved array's shape differs from its parameter's.
        """
        # BEGIN SOLUTION restore self.lr and a copy of every saved state dict
        new_state: list[dict] = [{} for _ in self.params]
        for i, st in state_dict["state"].items():
            i = int(i)
            if not 0 <= i < len(self.params):
                raise ValueError(f"state for parameter {i}, but the optimiser has {len(self.params)}")
            for k, v in st.items():
                if isinstance(v, np.ndarray):
                    if v.shape != self.params[i].data.shape:
                        raise ValueError(f"state '{k}' of parameter {i} has shape {v.shape}, "
                                         f"the parameter has shape {self.params[i].data.shape}")
                    new_state[i][k] = v.copy()
                else:
                    new_state[i][k] = v
        self.lr = float(state_dict["lr"])
        self.state = new_state
        # END SOLUTION


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight
    decay, exactly as ``torch.optim.SGD`` (dampening 0):

        g  = grad + weight_decay * θ
        b  = g                    on the first step,  b = μ b + g  afterwards
        g' = g + μ b  (Nesterov)   or   g' = b  (classical momentum)   or   g' = g  (μ = 0)
        θ  = θ - lr g'

    State: ``"momentum_buffer"`` (shape of θ) when momentum > 0.
    """

    def __init__(self, params, lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0):
        super().__init__(params, lr)
        if momentum < 0 or weight_decay < 0:
            raise ValueError("momentum and weight_decay must be >= 0")
        if nesterov and momentum <= 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.weight_decay = float(weight_decay)

    def update(self, data, grad, state):
        # TODO: weight decay -> momentum buffer (a copy of g on the first step) -> step.
        # BEGIN SOLUTION apply weight decay, the momentum buffer (Nesterov or classical) and the step
        if self.weight_decay:
            grad = grad + self.weight_decay * data
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(grad, dtype=data.dtype, copy=True)
            else:
                buf *= self.momentum
                buf += grad
            grad = grad + self.momentum * buf if self.nesterov else buf
        data -= self.lr * grad
        # END SOLUTION


class RMSprop(Optimizer):
    """RMSprop as ``torch.optim.RMSprop`` (not centered):

        g  = grad + weight_decay * θ
        s  = α s + (1 - α) g²                 (s starts at 0)
        u  = g / (√s + ε)                     ε is added *outside* the square root
        b  = μ b + u,  θ = θ - lr b           when momentum μ > 0 (b starts at 0)
        θ  = θ - lr u                          otherwise

    State: ``"square_avg"``, and ``"momentum_buffer"`` when momentum > 0.
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__(params, lr)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if eps < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError("eps, momentum and weight_decay must be >= 0")
        self.alpha = float(alpha)
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)

    def update(self, data, grad, state):
        # TODO: on the first update create the buffers with np.zeros_like(data).
        # BEGIN SOLUTION update the running mean of g², divide by its root plus eps, then step
        if self.weight_decay:
            grad = grad + self.weight_decay * data
        if not state:
            state["square_avg"] = np.zeros_like(data)
            if self.momentum:
                state["momentum_buffer"] = np.zeros_like(data)
        square_avg = state["square_avg"]
        square_avg *= self.alpha
        square_avg += (1.0 - self.alpha) * grad * grad
        direction = grad / (np.sqrt(square_avg) + self.eps)
        if self.momentum:
            buf = state["momentum_buffer"]
            buf *= self.momentum
            buf += direction
            direction = buf
        data -= self.lr * direction
        # END SOLUTION


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction and optional *L2* weight decay, as
    ``torch.optim.Adam``:

        g  = grad + weight_decay * θ          (L2: the decay goes through the moments)
        t  = t + 1                            (per parameter, starts at 0)
        m  = β1 m + (1 - β1) g                v = β2 v + (1 - β2) g²
        m̂  = m / (1 - β1^t)                   v̂ = v / (1 - β2^t)
        θ  = θ - lr m̂ / (√v̂ + ε)

    State: ``"step"`` (int), ``"exp_avg"`` (m) and ``"exp_avg_sq"`` (v).
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, lr)
        beta1, beta2 = betas
        if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        if eps < 0 or weight_decay < 0:
            raise ValueError("eps and weight_decay must be >= 0")
        self.betas = (float(beta1), float(beta2))
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)

    def update(self, data, grad, state):
        # BEGIN SOLUTION add the L2 term weight_decay * data to the gradient, then call self.adam_step
        if self.weight_decay:
            grad = grad + self.weight_decay * data
        self.adam_step(data, grad, state)
        # END SOLUTION

    def adam_step(self, data: np.ndarray, grad: np.ndarray, state: dict) -> None:
        """The Adam update proper (moments, bias correction, step) for a gradient ``grad``
        that already includes any L2 term. Shared by Adam and AdamW."""
        # TODO: the step count t lives in state["step"] and is incremented *before* use,
        # so the first update has t = 1.
        # BEGIN SOLUTION update m and v, bias-correct them with t, and step
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(data)
            state["exp_avg_sq"] = np.zeros_like(data)
        beta1, beta2 = self.betas
        state["step"] += 1
        t = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= beta1
        m += (1.0 - beta1) * grad
        v *= beta2
        v += (1.0 - beta2) * grad * grad
        m_hat = m / (1.0 - beta1 ** t)
        v_hat = v / (1.0 - beta2 ** t)
        data -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
        # END SOLUTION


class AdamW(Adam):
    """Adam with *decoupled* weight decay (Loshchilov & Hutter, 2019), as
    ``torch.optim.AdamW``:

        θ = θ (1 - lr λ)                      decay the weights directly ...
        θ = Adam step with the raw gradient   ... and keep λθ out of m and v

    Note the default weight_decay is 0.01 (PyTorch's), not 0.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)

    def update(self, data, grad, state):
        # BEGIN SOLUTION shrink data in place by (1 - lr * weight_decay), then call self.adam_step with the raw gradient
        if self.weight_decay:
            data *= 1.0 - self.lr * self.weight_decay
        self.adam_step(data, grad, state)
        # END SOLUTION
