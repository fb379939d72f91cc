"""Topic 09 — Regularization: L2 penalty, dropout, early stopping (and batch normalization).

* :func:`l2_penalty` / :func:`add_l2_grad` — the L2 term (λ/2) Σ‖θ‖² added to the loss and
  its gradient λθ. With plain SGD this *is* weight decay; with Adam it is not (AdamW's
  decoupled decay in ``dlfs.optim.optimizers`` is), which the lesson shows numerically.
* :class:`Dropout` — inverted dropout: zero each activation with probability p in training
  and scale the survivors by 1/(1 - p), so evaluation is the identity.
* ``BatchNorm1d`` — normalise each feature with the batch's statistics in training and
  with running averages in evaluation; learnable scale γ and shift β. It lives with the
  other batch norm in ``dlfs.nn.batchnorm``, Topic 09's second exercise file.
* :class:`EarlyStopping` — stop when the validation metric has not improved for
  ``patience`` epochs, and remember the best one.

Layers follow the contract of ``dlfs.nn.layers``: ``forward`` caches, ``backward`` returns
dx and accumulates (``+=``) parameter gradients.
"""

from __future__ import annotations

import numpy as np

from dlfs.nn.layers import Layer


# -- L2 regularisation ----------------------------------------------------------------------

def l2_penalty(params, lam: float) -> float:
    """The L2 penalty (λ/2) Σ_p Σ p.data² over ``params`` (objects with ``.data``).

    The factor 1/2 makes its gradient exactly λθ. Add it to the data loss when you report
    the regularised objective. Which parameters to pass is the caller's choice: usually the
    weights, not the biases or normalisation parameters.
    """
    # BEGIN SOLUTION sum the squares of every parameter's data, times lam / 2
    return 0.5 * float(lam) * float(sum(np.sum(np.square(p.data), dtype=np.float64) for p in params))
    # END SOLUTION


def add_l2_grad(params, lam: float) -> None:
    """Add the gradient of :func:`l2_penalty`, λθ, to every ``p.grad`` in place.

    params: objects with ``.data`` and ``.grad``. Call it after the backward pass and before
    the optimiser step. A parameter whose ``.grad`` is None (an optimiser's
    ``zero_grad(set_to_none=True)``) gets a new array λθ.
    """
    # BEGIN SOLUTION accumulate lam * p.data into p.grad (or create it when p.grad is None)
    for p in params:
        if p.grad is None:
            p.grad = lam * p.data
        else:
            p.grad += lam * p.data
    # END SOLUTION


# -- dropout --------------------------------------------------------------------------------

class Dropout(Layer):
    """Inverted dropout.

    Training: y = x ⊙ m / (1 - p) with m_i ~ Bernoulli(1 - p) drawn fresh on every forward,
    so E[y] = x. Evaluation (``layer.eval()``): y = x. p = 1 gives zeros.
    rng: a ``np.random.Generator`` (or a seed) — the only source of randomness, so runs
    with the same seed drop the same units.
    x: any shape -> y: the same shape and dtype.
    """

    def __init__(self, p: float = 0.5, rng: np.random.Generator | int | None = None):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = float(p)
        self.rng = np.random.default_rng(rng)
        self.mask: np.ndarray | None = None      # the scaled mask m / (1 - p) of the last forward

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, x: np.ndarray) -> np.ndarray:
        # TODO: in training, draw keep = rng.random(x.shape) >= p and store the *scaled* mask
        # (keep / (1 - p), in x's dtype) so backward is one multiplication.
        # BEGIN SOLUTION identity in eval mode (mask None); in training draw, scale, store and apply the mask
        if not self.training or self.p == 0.0:
            self.mask = None
            return x
        if self.p == 1.0:
            self.mask = np.zeros_like(x)
        else:
            keep = self.rng.random(x.shape) >= self.p
            self.mask = keep.astype(x.dtype) / (1.0 - self.p)
        return x * self.mask
        # END SOLUTION

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy: shaped like the last forward's x. The same mask gates the gradient."""
        # BEGIN SOLUTION multiply by the stored mask (identity when there is none)
        return dy if self.mask is None else dy * self.mask
        # END SOLUTION


# -- early stopping -------------------------------------------------------------------------

class EarlyStopping:
    """Stop training when a validation metric stops improving.

    Call ``step(value)`` once per epoch with the validation metric; it returns True when
    training should stop: ``patience`` consecutive epochs without improvement. An
    improvement is ``value < best - min_delta`` (mode "min", e.g. a loss) or
    ``value > best + min_delta`` (mode "max", e.g. an accuracy); a nan never improves.

    Attributes: ``best`` (best value so far; ±inf before the first step), ``best_epoch``
    (0-based index of the ``step`` call that gave it; -1 before), ``num_bad_epochs``
    (consecutive epochs without improvement), ``epoch`` (index of the last step),
    ``should_stop`` (the last return value). Save your weights whenever ``best_epoch``
    equals ``epoch`` to restore the best model afterwards.
    """

    def __init__(self, patience: int = 5, min_delta: float = 0.0, mode: str = "min"):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if patience < 0 or min_delta < 0:
            raise ValueError("patience and min_delta must be >= 0")
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.mode = mode
        self.best = np.inf if mode == "min" else -np.inf
        self.best_epoch = -1
        self.num_bad_epochs = 0
        self.epoch = -1
        self.should_stop = False

    def step(self, value: float) -> bool:
        """Record this epoch's metric; return True when training should stop."""
        # BEGIN SOLUTION advance the epoch; on improvement record best/best_epoch and reset the count, else count; stop at patience
        self.epoch += 1
        value = float(value)
        if self.mode == "min":
            improved = value < self.best - self.min_delta
        else:
            improved = value > self.best + self.min_delta
        if improved:
            self.best = value
            self.best_epoch = self.epoch
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        self.should_stop = self.num_bad_epochs >= self.patience and self.num_bad_epochs > 0
        return self.should_stop
        # END SOLUTION
