"""Topic 30 — training a GPT on a character stream: batches, AdamW parameter groups, the step,
and a loop that checkpoints and resumes exactly.

What you write:

- :func:`get_batch`: B random windows of the training ids, the targets shifted by one
  (nanoGPT's sampler: ``x = data[i:i+T]``, ``y = data[i+1:i+T+1]``);
- :func:`decay_groups`: which parameters get weight decay — the 2-D weight matrices
  (Linear weights, the embeddings), not the biases and LayerNorm parameters;
- :func:`train_step`: forward, cross-entropy over every position, backward, global
  gradient-norm clipping, one optimiser step.

Given: :class:`ParamGroups` (two AdamW optimisers, one with decay and one without, driven by
one schedule as a single optimiser), :func:`evaluate` (the mean loss over consecutive windows)
and :func:`fit` (warm-up + cosine schedule, evaluation, per-N-steps atomic checkpoints,
``resume``). Resuming is exact: the batch of step s and the dropout masks of step s come from
generators seeded by (seed, s) alone, so the checkpoint only needs the weights, the
optimiser's moments, the schedule's step and the curves (``dlfs.train.recipe``'s checkpoint
format, written atomically).

Shapes: ids (N,) int64; x, y: (B, T) int64; logits (B, T, V).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from dlfs.memory import keep_freed_memory
from dlfs.nn.losses import cross_entropy
from dlfs.nn.regularization import Dropout
from dlfs.optim.optimizers import AdamW
from dlfs.optim.schedules import CosineWithWarmup, clip_grad_norm


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation of :func:`fit` (nanoGPT's shakespeare-char recipe by default)."""

    max_steps: int = 2000
    batch_size: int = 12
    lr: float = 1e-3                  # peak, reached after the warm-up
    min_lr: float = 1e-4              # the cosine ends here at max_steps
    warmup_steps: int = 100
    weight_decay: float = 0.1         # on the 2-D weights only
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0            # max global gradient norm (0: no clipping)
    eval_every: int = 250             # steps between validation estimates (and at the end)
    eval_windows: int = 200           # validation windows of the estimate (evenly spread)
    checkpoint_every: int = 250       # steps between checkpoints (when a path is given)


# -- the learner's part ---------------------------------------------------------------------

def get_batch(data: np.ndarray, block_size: int, batch_size: int, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
    """B random windows of ``data`` (N,) ids: x (B, T) and y (B, T) with y[b, t] = x[b, t+1]'s
    successor in the text, i.e. ``x = data[i:i+T]``, ``y = data[i+1:i+T+1]`` for B starts i
    drawn with ``rng.integers(0, N - T, size=B)`` (one call). T = block_size."""
    if len(data) <= block_size:
        raise ValueError(f"need more than block_size = {block_size} ids, got {len(data)}")
    # TODO: build the (B, T) index array with broadcasting: starts[:, None] + arange(T).
    # BEGIN SOLUTION draw B starts in one call, gather x and the shifted y by fancy indexing
    starts = rng.integers(0, len(data) - block_size, size=batch_size)
    idx = starts[:, None] + np.arange(block_size)
    return data[idx], data[idx + 1]
    # END SOLUTION


def decay_groups(model) -> tuple[list, list]:
    """The model's parameters split into (decayed, not decayed): weight decay applies to
    every parameter with two or more axes (weight matrices, embeddings) and never to vectors
    (biases, LayerNorm gains and shifts). Each list in ``named_parameters()`` order."""
    # BEGIN SOLUTION parameters with ndim >= 2 decay, the others do not
    params = [p for _, p in model.named_parameters()]
    return [p for p in params if p.data.ndim >= 2], [p for p in params if p.data.ndim < 2]
    # END SOLUTION


def train_step(model, x: np.ndarray, y: np.ndarray, optimizer, grad_clip: float = 1.0) -> tuple[float, float]:
    """One optimisation step on the batch (x, y), both (B, T) ids.

    The gradients are zeroed in place (``optimizer.zero_grad(set_to_none=False)``), the loss is
    the mean cross-entropy over all B·T positions, the global gradient norm is clipped to
    ``grad_clip`` (no clipping when 0) and the optimiser steps.
    Returns (loss, gradient norm before clipping).
    """
    # BEGIN SOLUTION zero grads, forward, cross_entropy on (B, T, V) logits, backward, clip_grad_norm, step
    optimizer.zero_grad(set_to_none=False)
    loss, dlogits = cross_entropy(model.forward(x), y)
    model.backward(dlogits)
    norm = clip_grad_norm(optimizer.params, grad_clip) if grad_clip else float("nan")
    optimizer.step()
    return float(loss), float(norm)
    # END SOLUTION


# -- given: parameter groups, evaluation, the loop --------------------------------------------

class ParamGroups:
    """Several optimisers stepped as one: ``params`` (all of them, in order), one learning
    rate ``lr`` (a schedule sets it on every optimiser), ``step``, ``zero_grad`` and one
    ``state_dict`` whose parameter indices run through the optimisers in order."""

    def __init__(self, *optimizers):
        self.optimizers = [o for o in optimizers if o is not None]
        self.params = [p for o in self.optimizers for p in o.params]

    @property
    def lr(self) -> float:
        return self.optimizers[0].lr

    @lr.setter
    def lr(self, value: float) -> None:
        for o in self.optimizers:
            o.lr = float(value)

    def step(self) -> None:
        for o in self.optimizers:
            o.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none)

    def state_dict(self) -> dict:
        state, offset = {}, 0
        for o in self.optimizers:
            state.update({offset + i: st for i, st in o.state_dict()["state"].items()})
            offset += len(o.params)
        return {"lr": self.lr, "state": state}

    def load_state_dict(self, state_dict: dict) -> None:
        offset = 0
        for o in self.optimizers:
            n = len(o.params)
            o.load_state_dict({"lr": state_dict["lr"],
                               "state": {int(i) - offset: st for i, st in state_dict["state"].items()
                                         if offset <= int(i) < offset + n}})
            offset += n


def adamw_groups(model, cfg: TrainConfig) -> ParamGroups:
    """AdamW with ``cfg.weight_decay`` on :func:`decay_groups`' first list, without on the second."""
    decay, no_decay = decay_groups(model)
    betas = (cfg.beta1, cfg.beta2)
    return ParamGroups(AdamW(decay, lr=cfg.lr, betas=betas, weight_decay=cfg.weight_decay) if decay else None,
                       AdamW(no_decay, lr=cfg.lr, betas=betas, weight_decay=0.0) if no_decay else None)


def windows(data: np.ndarray, block_size: int, count: int | None = None) -> np.ndarray:
    """Starts of consecutive, non-overlapping windows of T = block_size inputs (plus the one
    target after them) covering ``data``; ``count``: that many of them, evenly spread."""
    starts = np.arange(0, len(data) - block_size, block_size)
    if count is not None and count < len(starts):
        starts = starts[np.linspace(0, len(starts) - 1, count).round().astype(np.int64)]
    return starts


def evaluate(model, data: np.ndarray, block_size: int, count: int | None = None,
             batch_size: int = 64) -> float:
    """The mean next-token cross-entropy of ``model`` over :func:`windows` of ``data`` (every
    position of every window counts once), in eval mode (no dropout)."""
    starts = windows(data, block_size, count)
    was_training = model.training
    model.eval()
    total, n = 0.0, 0
    try:
        for i in range(0, len(starts), batch_size):
            idx = starts[i:i + batch_size, None] + np.arange(block_size)
            loss, _ = cross_entropy(model.forward(data[idx]), data[idx + 1], reduction="sum")
            total += loss
            n += idx.size
    finally:
        model.train(was_training)
    return total / n


def step_rng(seed: int, step: int, stream: int) -> np.random.Generator:
    """The generator of one step's batch (stream 0) or dropout masks (stream 1): a function of
    (seed, step, stream) only, so a resumed run draws what the uninterrupted run drew."""
    return np.random.default_rng([int(seed), int(step), int(stream)])


def _set_dropout_rng(model, rng: np.random.Generator) -> None:
    for layer in [model, *model.sublayers()]:
        if isinstance(layer, Dropout):
            layer.rng = rng


def fit(model, train_data: np.ndarray, val_data: np.ndarray, cfg: TrainConfig, *, seed: int = 0,
        checkpoint: str | os.PathLike | None = None, resume: bool = False,
        stop_after_step: int | None = None, progress: bool = True, log: Callable[[str], None] = print,
        meta: dict | None = None) -> dict:
    """Train ``model`` (a :class:`~dlfs.transformer.gpt.GPT`) for ``cfg.max_steps`` steps.

    Step s (0-based) trains on ``get_batch(train_data, T, B, step_rng(seed, s, 0))`` with
    dropout masks from ``step_rng(seed, s, 1)``; the learning rate follows linear warm-up and
    cosine decay to ``cfg.min_lr`` (stepped after every step). Every ``cfg.eval_every`` steps
    and at the end, the validation loss on ``cfg.eval_windows`` windows of ``val_data`` is
    added to the history. With ``checkpoint``, every ``cfg.checkpoint_every`` steps and at
    the end the model, the optimiser, the schedule and the history are written atomically;
    ``resume`` continues from that file (refusing one written with other settings).
    ``stop_after_step``: stop after that many steps as if killed (to test resuming).

    Returns the history: ``step``, ``train_loss`` (mean over the steps since the previous
    evaluation), ``val_loss``, ``lr``, ``tokens`` and ``time_s`` per evaluation, and
    ``steps_done``, ``tokens_seen``, ``train_time_s``.
    """
    from tqdm import tqdm

    from dlfs.train.recipe import History, check_same_run, load_checkpoint, save_checkpoint

    keep_freed_memory()
    T = model.config.block_size
    B = cfg.batch_size
    optimizer = adamw_groups(model, cfg)
    warmup = min(cfg.warmup_steps, cfg.max_steps - 1)
    scheduler = CosineWithWarmup(optimizer, warmup_steps=warmup, total_steps=cfg.max_steps, min_lr=cfg.min_lr)
    signature = {"train": asdict(cfg), "model": model.config.as_dict(), "seed": int(seed),
                 "n_train": int(len(train_data))}
    history = {k: [] for k in ("step", "train_loss", "val_loss", "lr", "tokens", "time_s")}
    start, elapsed, losses = 0, 0.0, []
    if resume and checkpoint is not None and os.path.exists(checkpoint):
        check_same_run(checkpoint, signature)
        start, _, saved = load_checkpoint(checkpoint, model, optimizer, scheduler)
        history, elapsed, losses = saved["curves"], float(saved["train_time_s"]), saved["pending_losses"]
        log(f"resumed from {checkpoint} after step {start}/{cfg.max_steps}")

    def save(step: int) -> None:
        if checkpoint is not None:
            save_checkpoint(checkpoint, model, optimizer, scheduler, step, History(),
                            {**(meta or {}), "run": signature, "curves": history, "train_time_s": elapsed,
                             "pending_losses": losses})

    bar = tqdm(total=cfg.max_steps * B * T, initial=start * B * T, unit="tok", unit_scale=True,
               desc="training", disable=not progress or None, dynamic_ncols=True, smoothing=0.05)
    model.train()
    t0 = time.perf_counter() - elapsed
    step = start
    try:
        while step < cfg.max_steps:
            x, y = get_batch(train_data, T, B, step_rng(seed, step, 0))
            _set_dropout_rng(model, step_rng(seed, step, 1))
            loss, _ = train_step(model, x, y, optimizer, cfg.grad_clip)
            if not np.isfinite(loss):
                raise FloatingPointError(f"the training loss became {loss} at step {step}")
            scheduler.step()
            losses.append(loss)
            step += 1
            bar.update(B * T)
            bar.set_postfix(loss=f"{loss:.3f}", lr=f"{optimizer.lr:.2g}", refresh=False)
            if step % cfg.eval_every == 0 or step == cfg.max_steps:
                elapsed = time.perf_counter() - t0
                val = evaluate(model, val_data, T, cfg.eval_windows)
                for k, v in zip(history, (step, float(np.mean(losses)), val, optimizer.lr, step * B * T, elapsed)):
                    history[k].append(v)
                losses = []
                log(f"step {step:6d}/{cfg.max_steps}  train {history['train_loss'][-1]:.4f}  val {val:.4f}  "
                    f"({elapsed:.0f} s, {step * B * T / max(elapsed, 1e-9):,.0f} tok/s overall)")
                t0 = time.perf_counter() - elapsed           # evaluation time is not training time
            if step % cfg.checkpoint_every == 0 or step == cfg.max_steps:
                elapsed = time.perf_counter() - t0
                save(step)
            if stop_after_step is not None and step >= stop_after_step:
                break
    finally:
        bar.close()
    elapsed = time.perf_counter() - t0
    return {**history, "steps_done": step, "tokens_seen": step * B * T, "train_time_s": elapsed}
