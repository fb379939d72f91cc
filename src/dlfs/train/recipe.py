"""Topic 17 — a complete recipe for training a CNN from scratch, interruptible and resumable.

The pieces of Modules 0–2 put together the way real training runs are:

- **augmentation**: random crops of the image padded by 4 pixels (or as ``TrainConfig`` says)
  and horizontal flips (``dlfs.data.augment``);
- **SGD with Nesterov momentum and weight decay** (Topic 03) under a **linear warm-up +
  cosine** learning-rate schedule stepped every batch;
- **label smoothing** in the cross-entropy (Topic 08);
- **per-epoch checkpoints** written atomically (a crash mid-write never destroys the last
  good one) and ``resume``: a run killed after epoch k and resumed gives *bit-identical*
  weights to a run that was never interrupted.

Resuming is exact because every epoch's randomness (the shuffle order and the augmentation)
comes from its own generator, ``epoch_rng(seed, epoch)``, instead of one stream that runs
through the whole training; the checkpoint then only needs the model (with BatchNorm's
running statistics), the optimiser's momentum buffers, the schedule's step count and the
history — plus the run's settings (``run_signature``), so that a resume with other settings,
which could not be exact, is refused.

Shapes: x (N, C, H, W) float32, y (N,) int64; logits (N, K).
"""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from dlfs.errors import DataError
from dlfs.io import atomic_write_bytes

CHECKPOINT_VERSION = 1
FLIPS = ("random", "alternating", "none")
SCHEDULES = ("cosine", "triangle")


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`fit` (the defaults are the CIFAR-10 ResNet recipe)."""

    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1                   # peak learning rate, reached after the warm-up
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    min_lr: float = 0.0
    schedule: str = "cosine"          # "cosine": linear warm-up + cosine to min_lr (warmup_epochs, min_lr);
    #                                   "triangle": dlfs.optim.schedules.Triangular with ...
    triangle: tuple[float, float, float] = (0.2, 0.23, 0.07)    # ... (start, peak_at, end), airbench's
    label_smoothing: float = 0.1
    augment: bool = True
    crop_padding: int = 4             # the augmentation's random crops: pad by this many pixels ...
    pad_mode: str = "constant"        # ... with zeros ("constant") or mirrored borders ("reflect")
    flip: str = "random"              # "random": each image mirrored with p = 1/2 in every epoch;
    #                                   "alternating": dlfs.data.batching.alternating_flip; "none"
    cutout: int = 0                   # > 0: blank a random square of this size in every training image
    eval_batch_size: int = 500
    lookahead_every: int = 0          # > 0: wrap the optimiser in dlfs.train.lookahead.Lookahead
    lookahead_alpha: float = 0.5

    def __post_init__(self):
        if self.flip not in FLIPS:
            raise ValueError(f"flip must be one of {', '.join(map(repr, FLIPS))}, got {self.flip!r}")
        if self.cutout < 0:
            raise ValueError(f"cutout must be 0 (off) or a square's size in pixels, got {self.cutout}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(map(repr, SCHEDULES))}, got {self.schedule!r}")
        if len(self.triangle) != 3:
            raise ValueError(f"triangle is (start, peak_at, end), got {self.triangle!r}")


@dataclass
class History:
    """Per-epoch metrics; lists grow by one entry per finished epoch."""

    train_loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    test_loss: list = field(default_factory=list)
    test_acc: list = field(default_factory=list)
    epoch_time_s: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The random generator of epoch ``epoch`` (1-based) of a run with ``seed``.

    Depends only on (seed, epoch), never on what earlier epochs drew, so that a resumed run
    sees exactly the shuffles and crops the uninterrupted run saw.
    """
    # BEGIN SOLUTION a generator seeded by the pair (seed, epoch)
    return np.random.default_rng([int(seed), int(epoch)])
    # END SOLUTION


def per_class_accuracy(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Accuracy of each class: correct predictions of class k / examples of class k (recall).

    y_true, y_pred: (N,) ints in [0, num_classes) -> (num_classes,) float64; a class with no
    examples gets nan (without a division warning). Raises ValueError when y_true and
    y_pred are not 1-D arrays of the same length, or a true label is outside the range.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    # TODO: two bincounts (examples per class, correct predictions per class), no Python loop.
    # BEGIN SOLUTION check the inputs, count examples and correct predictions per class with bincount
    if y_true.ndim != 1 or y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must be 1-D of the same length, got {y_true.shape} "
                         f"and {y_pred.shape}")
    if y_true.size and (y_true.min() < 0 or y_true.max() >= num_classes):
        raise ValueError(f"y_true has labels outside 0..{num_classes - 1}")
    total = np.bincount(y_true, minlength=num_classes).astype(np.float64)
    correct = np.bincount(y_true[y_true == y_pred], minlength=num_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return correct / total
    # END SOLUTION


# -- checkpoints ------------------------------------------------------------------------------

def save_checkpoint(path: str | os.PathLike, model, optimizer, scheduler, epoch: int,
                    history: History, meta: dict | None = None) -> Path:
    """Write everything needed to continue training after ``epoch`` to ``path`` (an .npz).

    Contents: the model's ``state_dict()`` (parameters and BN running statistics) under
    ``model/<name>``, the optimiser's per-parameter arrays (momentum buffers) under
    ``optim/<i>/<key>``, and one JSON document ``meta.json`` (stored as a uint8 array) with
    ``version``, ``epoch``, ``history``, ``scheduler`` (its ``state_dict()``, or None),
    ``optimizer`` (``{"lr": ..., "scalars": {i: {key: value}}}`` for non-array state such as
    Adam's step count) and ``meta``. The file is built in memory, then written to a
    temporary name and renamed over the old checkpoint (``dlfs.io.atomic_write_bytes``): the
    previous checkpoint survives any crash during the write. Returns the path.
    """
    arrays: dict[str, np.ndarray] = {}
    scalars: dict[str, dict] = {}
    # TODO: np.savez into an io.BytesIO, then one atomic_write_bytes — never np.savez(path):
    #       that truncates the old checkpoint before the new one is complete.
    # BEGIN SOLUTION collect model and optimiser arrays, the JSON metadata, and write them atomically
    for name, value in model.state_dict().items():
        arrays[f"model/{name}"] = value
    opt_state = optimizer.state_dict()
    for i, st in opt_state["state"].items():
        for key, value in st.items():
            if isinstance(value, np.ndarray):
                arrays[f"optim/{i}/{key}"] = value
            else:
                scalars.setdefault(str(i), {})[key] = value
    doc = {
        "version": CHECKPOINT_VERSION,
        "epoch": int(epoch),
        "history": history.as_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "optimizer": {"lr": opt_state["lr"], "scalars": scalars},
        "meta": meta or {},
    }
    buf = io.BytesIO()
    np.savez(buf, **arrays, **{"meta.json": np.frombuffer(json.dumps(doc).encode(), dtype=np.uint8)})
    atomic_write_bytes(path, buf.getvalue())
    # END SOLUTION
    return Path(path)


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """The JSON document and the arrays of a checkpoint, without loading them into anything.

    Returns ``(doc, arrays)``: ``doc`` is the ``meta.json`` document of :func:`save_checkpoint`
    (checked for its version and keys), ``arrays`` maps every other name in the file to its
    array. Raises :class:`dlfs.errors.DataError` naming the path when the file is missing,
    truncated, not a checkpoint, or of another version.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            doc = json.loads(bytes(z["meta.json"]).decode())
            arrays = {k: z[k] for k in z.files if k != "meta.json"}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError,
            zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc}); "
                        f"delete it to start over") from exc
    if not isinstance(doc, dict) or doc.get("version") != CHECKPOINT_VERSION:
        version = doc.get("version") if isinstance(doc, dict) else None
        raise DataError(f"checkpoint {path} has version {version}, expected {CHECKPOINT_VERSION}")
    missing = [k for k in ("epoch", "history", "scheduler", "optimizer", "meta") if k not in doc]
    if missing:
        raise DataError(f"checkpoint {path} is incomplete (no {', '.join(missing)}); delete it to start over")
    return doc, arrays


def load_checkpoint(path: str | os.PathLike, model, optimizer, scheduler) -> tuple[int, History, dict]:
    """Restore ``model``, ``optimizer`` and ``scheduler`` from :func:`save_checkpoint`'s file.

    Returns ``(epoch, history, meta)``. Raises :class:`dlfs.errors.DataError` with the path
    and the reason when the file is missing, truncated, not a checkpoint, or does not fit the
    model (different architecture), the optimiser (parameter count or shapes) or the schedule
    (its state's keys); everything is checked before anything is loaded, so nothing is
    modified in that case.
    """
    path = Path(path)
    doc, arrays = read_checkpoint(path)
    # TODO: check every array against the model's state_dict() and the optimiser's
    #       parameters *before* calling any load_state_dict.
    # BEGIN SOLUTION rebuild the model state dict and the optimiser state, check they fit, then load all three
    model_state = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    opt_state: dict[int, dict] = {}
    try:
        for k, v in arrays.items():
            if k.startswith("optim/"):
                _, i, key = k.split("/", 2)
                opt_state.setdefault(int(i), {})[key] = v
        for i, st in doc["optimizer"]["scalars"].items():
            opt_state.setdefault(int(i), {}).update(st)
        lr = float(doc["optimizer"]["lr"])
        history = History(**doc["history"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"checkpoint {path} is malformed ({type(exc).__name__}: {exc}); "
                        f"delete it to start over") from exc
    own = model.state_dict()
    wrong = sorted(set(own) ^ set(model_state)) or [k for k in own if own[k].shape != model_state[k].shape]
    if wrong:
        raise DataError(f"checkpoint {path} was written by a different model ({len(model_state)} "
                        f"arrays, this model has {len(own)}; first mismatch: {wrong[0]}); use "
                        f"another checkpoint or delete it to start over")
    params = optimizer.params
    for i, st in opt_state.items():
        for key, v in st.items():
            if not 0 <= i < len(params) or (isinstance(v, np.ndarray) and v.shape != params[i].data.shape):
                raise DataError(f"checkpoint {path}: optimiser state {key!r} of parameter {i} does not "
                                f"fit this model's parameters; delete it to start over")
    sched_state = doc["scheduler"]
    if scheduler is not None and sched_state is not None:
        own_sched = scheduler.state_dict()
        if not isinstance(sched_state, dict) or set(sched_state) != set(own_sched) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in sched_state.values()):
            raise DataError(f"checkpoint {path}: the schedule's state {sched_state!r} does not fit this "
                            f"schedule (numbers for {sorted(own_sched)}); delete it to start over")
    model.load_state_dict(model_state)
    optimizer.load_state_dict({"lr": lr, "state": opt_state})
    if scheduler is not None and doc["scheduler"] is not None:
        scheduler.load_state_dict(doc["scheduler"])
    return int(doc["epoch"]), history, doc["meta"]
    # END SOLUTION


# -- resuming the right run -------------------------------------------------------------------

def run_signature(cfg: TrainConfig, seed: int, n_train: int) -> dict:
    """What must not change between a run and its resumption for the result to be exact:
    every hyper-parameter that shapes the trajectory (all of ``cfg`` but the evaluation
    batch size), the seed and the number of training examples. JSON-compatible."""
    sig = {k: v for k, v in asdict(cfg).items() if k != "eval_batch_size"}
    if not cfg.lookahead_every:      # runs without lookahead keep the signature they always had
        del sig["lookahead_every"], sig["lookahead_alpha"]
    if (cfg.crop_padding, cfg.pad_mode) == (4, "constant"):      # the same for the default crops
        del sig["crop_padding"], sig["pad_mode"]
    if cfg.flip == "random":
        del sig["flip"]
    if not cfg.cutout:
        del sig["cutout"]
    if cfg.schedule == "cosine":
        del sig["schedule"], sig["triangle"]
    else:
        sig["triangle"] = [float(v) for v in cfg.triangle]      # as JSON gives it back
    return {**sig, "seed": int(seed), "n_train": int(n_train)}


def check_same_run(path: str | os.PathLike, signature: dict) -> None:
    """Raise :class:`dlfs.errors.DataError` when the checkpoint at ``path`` records a
    different ``run_signature`` in ``meta["run"]`` (a checkpoint without one is accepted).

    Resuming with, say, another number of epochs would silently follow another schedule."""
    saved = read_checkpoint(path)[0]["meta"].get("run")
    if saved is None or saved == signature:
        return
    diffs = [f"{k}: {saved.get(k)!r} in the checkpoint, {signature.get(k)!r} now"
             for k in sorted(set(saved) | set(signature)) if saved.get(k) != signature.get(k)]
    raise DataError(f"checkpoint {path} belongs to a run with other settings ({'; '.join(diffs)}); "
                    f"resume with the same settings, or start afresh")


def make_scheduler(optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """The per-batch learning-rate schedule ``cfg`` asks for, over T = cfg.epochs · steps_per_epoch
    steps: ``CosineWithWarmup`` with W = round(cfg.warmup_epochs · steps_per_epoch) warm-up steps
    (at most T − 1) and ``cfg.min_lr``, or, with ``cfg.schedule == "triangle"``, ``Triangular``
    with ``cfg.triangle`` (start, peak_at, end)."""
    from dlfs.optim.schedules import CosineWithWarmup, Triangular

    total_steps = cfg.epochs * steps_per_epoch
    if cfg.schedule == "triangle":
        return Triangular(optimizer, total_steps, *cfg.triangle)
    warmup = min(int(round(cfg.warmup_epochs * steps_per_epoch)), total_steps - 1)
    return CosineWithWarmup(optimizer, warmup_steps=warmup, total_steps=total_steps, min_lr=cfg.min_lr)


# -- the training loop ------------------------------------------------------------------------

def fit(model, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
        cfg: TrainConfig, *, seed: int = 0, checkpoint: str | os.PathLike | None = None,
        resume: bool = False, stop_after_epoch: int | None = None, progress: bool = True,
        log: Callable[[str], None] = print, meta: dict | None = None) -> History:
    """Train ``model`` with the recipe in ``cfg``; evaluate on (x_test, y_test) after each epoch.

    x_train: (N, C, H, W) float32 (normalised), y_train: (N,) int64; same for the test set.

    - optimiser: ``dlfs.optim.optimizers.SGD`` over ``model.parameters()`` with ``cfg.lr``,
      ``cfg.momentum``, ``cfg.nesterov`` and ``cfg.weight_decay``;
    - with ``cfg.lookahead_every`` > 0, the optimiser wrapped in
      ``dlfs.train.lookahead.Lookahead(optimizer, cfg.lookahead_every, cfg.lookahead_alpha, T)``
      (alpha ramps from 1 to ``cfg.lookahead_alpha`` over the T steps; its slow weights go into
      the checkpoint with the optimiser's state);
    - schedule: ``make_scheduler(optimizer, cfg, steps_per_epoch)`` (``CosineWithWarmup`` unless
      ``cfg.schedule`` asks for airbench's triangle), stepped after every batch, over
      ``T = cfg.epochs · steps_per_epoch`` steps in total;
    - loss: cross-entropy with ``cfg.label_smoothing`` for training, plain cross-entropy for
      the test loss;
    - epoch e (1-based): a shuffled ``BatchIterator`` whose order and augmentation (when
      ``cfg.augment``: ``augment`` with ``padding=cfg.crop_padding``, ``pad_mode=cfg.pad_mode``,
      ``flip`` when ``cfg.flip == "random"`` and ``cutout_size=cfg.cutout``) both come from
      ``epoch_rng(seed, e)``; with
      ``cfg.flip == "alternating"`` the iterator runs over ``alternating_flip(x_train, seed, e)``
      instead of ``x_train``; ``train_epoch``; ``evaluate``;
      one entry per list of the history; a checkpoint (``meta`` plus
      ``{"run": run_signature(...)}``).

    checkpoint: where to write the per-epoch checkpoint (none if None). resume: continue from
    it when it exists (a finished run just returns its history); a checkpoint of a run with
    other settings is refused (DataError). stop_after_epoch: stop after that epoch as if
    killed (for testing resumption). Returns the :class:`History`.
    """
    from tqdm import tqdm

    from dlfs.data.batching import BatchIterator, alternating_flip, augment
    from dlfs.nn.losses import CrossEntropyLoss
    from dlfs.optim.optimizers import SGD
    from dlfs.train.loop import evaluate, train_epoch

    steps_per_epoch = -(-len(x_train) // cfg.batch_size)
    loss_fn = CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    eval_loss_fn = CrossEntropyLoss()
    signature = run_signature(cfg, seed, len(x_train))
    meta = {**(meta or {}), "run": signature}
    # TODO: the optimiser and the per-batch schedule (make_scheduler); resume from the checkpoint if asked
    #       (check_same_run first); then per epoch: a BatchIterator driven by epoch_rng,
    #       train_epoch, evaluate, history, checkpoint.
    # BEGIN SOLUTION build SGD + the schedule, resume if asked, then train/evaluate/checkpoint epoch by epoch
    optimizer = SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                    weight_decay=cfg.weight_decay)
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.lookahead_every:
        from dlfs.train.lookahead import Lookahead

        optimizer = Lookahead(optimizer, cfg.lookahead_every, cfg.lookahead_alpha, total_steps)
    scheduler = make_scheduler(optimizer, cfg, steps_per_epoch)
    history, start = History(), 1
    if resume and checkpoint is not None and Path(checkpoint).exists():
        check_same_run(checkpoint, signature)
        done, history, _ = load_checkpoint(checkpoint, model, optimizer, scheduler)
        start = done + 1
        log(f"resumed from {checkpoint} after epoch {done}/{cfg.epochs}")

    for epoch in range(start, cfg.epochs + 1):
        t0 = time.perf_counter()
        rng = epoch_rng(seed, epoch)
        flipped = cfg.augment and cfg.flip == "alternating"
        batches = BatchIterator(alternating_flip(x_train, seed, epoch) if flipped else x_train, y_train,
                                batch_size=cfg.batch_size, shuffle=True, seed=rng,
                                transform=partial(augment, padding=cfg.crop_padding, pad_mode=cfg.pad_mode,
                                                  flip=cfg.flip == "random", cutout_size=cfg.cutout)
                                if cfg.augment else None)
        bar = tqdm(total=len(x_train), desc=f"epoch {epoch}/{cfg.epochs}", unit="img", unit_scale=True,
                   leave=False, disable=not progress or None, dynamic_ncols=True)
        seen = [0]

        def on_batch(loss, acc, bar=bar, seen=seen):
            n = min(cfg.batch_size, len(x_train) - seen[0])
            seen[0] += n
            bar.update(n)
            bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.3f}", lr=f"{optimizer.lr:.3g}", refresh=False)

        train_loss, train_acc = train_epoch(model, loss_fn, optimizer, batches, scheduler=scheduler,
                                            on_batch=on_batch)
        bar.close()
        test_loss, test_acc, _ = evaluate(model, eval_loss_fn, x_test, y_test, cfg.eval_batch_size)
        elapsed = time.perf_counter() - t0
        for name, value in zip(("train_loss", "train_acc", "test_loss", "test_acc", "epoch_time_s"),
                               (train_loss, train_acc, test_loss, test_acc, elapsed)):
            getattr(history, name).append(float(value))
        log(f"epoch {epoch:3d}/{cfg.epochs}  train loss {train_loss:.4f} acc {train_acc:.4f}  "
            f"test loss {test_loss:.4f} acc {test_acc:.4f}  ({elapsed:.0f} s, "
            f"{len(x_train) / elapsed:.0f} img/s)")
        if checkpoint is not None:
            save_checkpoint(checkpoint, model, optimizer, scheduler, epoch, history, meta)
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break
    return history
    # END SOLUTION
