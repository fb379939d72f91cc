"""Topic 17: fit — the recipe reaches the optimiser and the loss, exact resume, learning."""

import math

import numpy as np
import pytest

from dlfs.conv.resnet import ResNet
from dlfs.errors import DataError
from dlfs.nn.layers import Flatten, Linear, Sequential
from dlfs.optim.optimizers import SGD
from dlfs.testing import assert_close
from dlfs.train import recipe

QUIET = dict(progress=False, log=lambda message: None)
HISTORY_KEYS = ("train_loss", "train_acc", "test_loss", "test_acc")      # epoch_time_s varies


def images(n, seed, size=8, dtype=np.float32):
    """n images (3, size, size) of 3 classes: channel y is brighter on average."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 3, size, size)) * 0.5
    x[np.arange(n), y] += 1.0
    return x.astype(dtype), y.astype(np.int64)


def tiny_resnet(seed):
    return ResNet(1, (4, 8, 8), num_classes=3, rng=np.random.default_rng(seed))


def linear_model(seed, dtype=np.float32, size=4):
    return Sequential(Flatten(), Linear(3 * size * size, 3, rng=np.random.default_rng(seed), dtype=dtype))


def assert_same_model(got, expected, what):
    a, b = got.state_dict(), expected.state_dict()
    assert sorted(a) == sorted(b)
    for k in b:
        assert np.array_equal(a[k], b[k]), \
            f"{what}: {k} differs (max |diff| {np.max(np.abs(a[k].astype(float) - b[k])):.3g}); " \
            f"resuming must give bit-identical weights"


def assert_same_history(got, expected, what, n_epochs):
    for k in HISTORY_KEYS:
        g, e = getattr(got, k), getattr(expected, k)
        assert len(g) == len(e) == n_epochs, f"{what}: history.{k} has {len(g)} entries, expected {n_epochs}"
        assert g == e, f"{what}: history.{k} = {g}, expected {e}"
    assert len(got.epoch_time_s) == n_epochs, f"{what}: epoch_time_s has {len(got.epoch_time_s)} entries"


def record_lrs(monkeypatch):
    """Patch SGD.step to record the learning rate each optimiser step uses."""
    lrs = []
    original = SGD.step

    def step(self):
        lrs.append(self.lr)
        original(self)

    monkeypatch.setattr(SGD, "step", step)
    return lrs


# ----------------------------------------------------------------- one step by hand

def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("nesterov", [True, False])
def test_one_step_applies_label_smoothing_nesterov_and_weight_decay(nesterov):
    """One full-batch step (warm-up 0, so the first step has the peak lr) against a hand computation."""
    x, y = images(12, seed=0, size=4, dtype=np.float64)
    xt, yt = images(10, seed=1, size=4, dtype=np.float64)
    model = linear_model(0, np.float64)
    W0, b0 = model[1].W.data.copy(), model[1].b.data.copy()
    lr, mu, wd, eps, K, N = 0.5, 0.9, 0.1, 0.2, 3, len(x)
    cfg = recipe.TrainConfig(epochs=1, batch_size=N, lr=lr, momentum=mu, nesterov=nesterov, weight_decay=wd,
                             warmup_epochs=0.0, label_smoothing=eps, augment=False)
    history = recipe.fit(model, x, y, xt, yt, cfg, seed=0, **QUIET)

    X = x.reshape(N, -1)
    logp = _log_softmax(X @ W0 + b0)
    q = np.full((N, K), eps / K)
    q[np.arange(N), y] += 1 - eps
    loss0 = float(np.mean(-(q * logp).sum(axis=1)))
    G = (np.exp(logp) - q) / N
    grads = {"W": X.T @ G + wd * W0, "b": G.sum(axis=0) + wd * b0}     # weight decay: g + λθ
    scale = 1 + mu if nesterov else 1.0                                   # first step: buffer = g
    W1, b1 = W0 - lr * scale * grads["W"], b0 - lr * scale * grads["b"]
    test_loss = float(np.mean(-_log_softmax(xt.reshape(len(xt), -1) @ W1 + b1)[np.arange(len(xt)), yt]))

    assert_close(history.train_loss[0], loss0, rtol=1e-10,
                 what=f"training loss of the first step (cross-entropy with label smoothing {eps})")
    assert_close(history.train_acc[0], np.mean(logp.argmax(1) == y), rtol=1e-12, what="training accuracy")
    assert_close(model[1].W.data, W1, rtol=1e-10, atol=1e-13,
                 what=f"W after one SGD step (nesterov={nesterov}, weight decay {wd}, lr {lr})")
    assert_close(model[1].b.data, b1, rtol=1e-10, atol=1e-13, what="b after one step (decayed too)")
    assert_close(history.test_loss[0], test_loss, rtol=1e-10,
                 what="test loss after the step (plain cross-entropy, no smoothing)")


# ----------------------------------------------------------------- the schedule

def _expected_lrs(base, min_lr, warmup, total):
    out = []
    for s in range(total):
        if s < warmup:
            out.append(base * s / warmup)
        else:
            p = (s - warmup) / (total - warmup)
            out.append(min_lr + (base - min_lr) * 0.5 * (1 + math.cos(math.pi * p)))
    return out


def test_lr_follows_warmup_then_cosine_across_a_resume(tmp_path, monkeypatch):
    x, y = images(48, seed=0, size=4)
    xt, yt = images(16, seed=1, size=4)
    cfg = recipe.TrainConfig(epochs=4, batch_size=16, lr=0.2, warmup_epochs=1.0, min_lr=0.01, augment=False)
    expected = _expected_lrs(0.2, 0.01, warmup=3, total=12)       # 3 steps per epoch, 3 of warm-up

    lrs = record_lrs(monkeypatch)
    recipe.fit(linear_model(0), x, y, xt, yt, cfg, seed=0, **QUIET)
    assert len(lrs) == 12, f"4 epochs of 3 batches: expected 12 optimiser steps, got {len(lrs)}"
    assert_close(np.array(lrs), expected, rtol=1e-12, atol=1e-15,
                 what="learning rate of each step (linear warm-up over 1 epoch, then cosine to min_lr)")

    lrs.clear()
    path = tmp_path / "ckpt.npz"
    recipe.fit(linear_model(0), x, y, xt, yt, cfg, seed=0, checkpoint=path, stop_after_epoch=2, **QUIET)
    assert len(lrs) == 6, f"stopped after epoch 2: expected 6 steps, got {len(lrs)}"
    recipe.fit(linear_model(5), x, y, xt, yt, cfg, seed=0, checkpoint=path, resume=True, **QUIET)
    assert len(lrs) == 12, f"the resumed run should take the remaining 6 steps, took {len(lrs) - 6}"
    assert_close(np.array(lrs), expected, rtol=1e-12, atol=1e-15,
                 what="learning rates of the interrupted + resumed run")


def test_lr_follows_airbench_triangle_when_asked_across_a_resume(tmp_path, monkeypatch):
    x, y = images(48, seed=0, size=4)
    xt, yt = images(16, seed=1, size=4)
    cfg = recipe.TrainConfig(epochs=4, batch_size=16, lr=0.2, schedule="triangle", triangle=(0.2, 0.25, 0.05),
                             augment=False)
    # 12 steps, the peak at step 3: up from 0.04 in three steps, then down to 0.01 at step 12
    up = [0.2 * (0.2 + 0.8 * s / 3) for s in range(3)]
    down = [0.2 * (1 - 0.95 * (s - 3) / 9) for s in range(3, 12)]
    lrs = record_lrs(monkeypatch)
    recipe.fit(linear_model(0), x, y, xt, yt, cfg, seed=0, **QUIET)
    assert_close(np.array(lrs), up + down, rtol=1e-12, atol=1e-15,
                 what="learning rate of each step with schedule='triangle' (0.2, 0.25, 0.05)")

    lrs.clear()
    path = tmp_path / "ckpt.npz"
    recipe.fit(linear_model(0), x, y, xt, yt, cfg, seed=0, checkpoint=path, stop_after_epoch=1, **QUIET)
    recipe.fit(linear_model(5), x, y, xt, yt, cfg, seed=0, checkpoint=path, resume=True, **QUIET)
    assert_close(np.array(lrs), up + down, rtol=1e-12, atol=1e-15,
                 what="learning rates of the interrupted + resumed triangle run")
    cosine = recipe.TrainConfig(epochs=4, batch_size=16, lr=0.2, augment=False)
    with pytest.raises(DataError, match="schedule"):
        recipe.fit(linear_model(0), x, y, xt, yt, cosine, seed=0, checkpoint=path, resume=True, **QUIET)


# ----------------------------------------------------------------- exact resume

@pytest.mark.parametrize("stop", [1, 2])
def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, stop):
    x, y = images(48, seed=0)
    xt, yt = images(24, seed=1)
    cfg = recipe.TrainConfig(epochs=3, batch_size=16, lr=0.1, warmup_epochs=1.0, eval_batch_size=24)

    straight = tiny_resnet(0)
    h_straight = recipe.fit(straight, x, y, xt, yt, cfg, seed=3, checkpoint=tmp_path / "a.npz", **QUIET)

    killed = tiny_resnet(0)
    h_killed = recipe.fit(killed, x, y, xt, yt, cfg, seed=3, checkpoint=tmp_path / "b.npz",
                          stop_after_epoch=stop, **QUIET)
    assert len(h_killed.test_acc) == stop, f"stop_after_epoch={stop}: history has {len(h_killed.test_acc)} epochs"
    probe = tiny_resnet(9)
    epoch, h_saved, _ = recipe.load_checkpoint(tmp_path / "b.npz", probe, *_opt_sched(probe))
    assert epoch == stop, f"the checkpoint after epoch {stop} says epoch {epoch}"
    assert_same_history(h_saved, h_killed, "the history in the checkpoint", stop)
    assert_same_model(probe, killed, f"the checkpoint written after epoch {stop}")

    # a new process: a model with *other* initial weights, restored from the checkpoint
    resumed = tiny_resnet(1)
    h_resumed = recipe.fit(resumed, x, y, xt, yt, cfg, seed=3, checkpoint=tmp_path / "b.npz", resume=True,
                           **QUIET)
    assert_same_model(resumed, straight, f"stopped after epoch {stop}, then resumed")
    assert_same_history(h_resumed, h_straight, "resumed run", 3)

    # the final checkpoints agree too (momentum buffers included)
    finals = []
    for name in ("a.npz", "b.npz"):
        m = tiny_resnet(7)
        opt, sched = _opt_sched(m)
        recipe.load_checkpoint(tmp_path / name, m, opt, sched)
        finals.append((m, opt.state_dict(), sched.state_dict()))
    assert_same_model(finals[1][0], finals[0][0], "final checkpoints")
    for i, st in finals[0][1]["state"].items():
        assert np.array_equal(finals[1][1]["state"][i]["momentum_buffer"], st["momentum_buffer"]), \
            f"momentum buffer of parameter {i} differs between the final checkpoints"
    assert finals[1][2] == finals[0][2], f"scheduler states differ: {finals[1][2]} vs {finals[0][2]}"

    # resuming a finished run trains nothing and returns its history
    again = tiny_resnet(2)
    h_again = recipe.fit(again, x, y, xt, yt, cfg, seed=3, checkpoint=tmp_path / "b.npz", resume=True, **QUIET)
    assert_same_model(again, straight, "resuming a finished run")
    assert_same_history(h_again, h_straight, "resuming a finished run", 3)


def _opt_sched(model):
    from dlfs.optim.schedules import CosineWithWarmup

    opt = SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    return opt, CosineWithWarmup(opt, warmup_steps=1, total_steps=10)


def test_fit_is_reproducible_and_the_seed_matters():
    x, y = images(32, seed=0)
    xt, yt = images(16, seed=1)
    cfg = recipe.TrainConfig(epochs=2, batch_size=16, lr=0.1, warmup_epochs=0.5)
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        model = tiny_resnet(0)
        runs[name] = (model, recipe.fit(model, x, y, xt, yt, cfg, seed=seed, **QUIET))
    assert_same_model(runs["b"][0], runs["a"][0], "two runs with the same seed")
    assert_same_history(runs["b"][1], runs["a"][1], "two runs with the same seed", 2)
    w_a, w_c = runs["a"][0].state_dict(), runs["c"][0].state_dict()
    assert any(not np.array_equal(w_a[k], w_c[k]) for k in w_a), \
        "seed 0 and seed 1 trained identical weights: the shuffles and crops must come from epoch_rng(seed, epoch)"


def spy_on_batches(monkeypatch):
    """Patch train_epoch to record, per epoch, the (x, y) batches it receives."""
    from dlfs.train import loop

    epochs = []
    original = loop.train_epoch

    def train_epoch(model, loss_fn, optimizer, batches, **kwargs):
        seen = []
        epochs.append(seen)

        def recorded():
            for xb, yb in batches:
                seen.append((np.array(xb, copy=True), np.array(yb, copy=True)))
                yield xb, yb

        return original(model, loss_fn, optimizer, recorded(), **kwargs)

    monkeypatch.setattr(loop, "train_epoch", train_epoch)
    return epochs


def test_every_epoch_has_its_own_shuffle_and_augmentation(monkeypatch):
    x, y = images(40, seed=0)
    xt, yt = images(8, seed=1)
    epochs = spy_on_batches(monkeypatch)
    cfg = recipe.TrainConfig(epochs=3, batch_size=16, lr=0.05, augment=False)
    recipe.fit(tiny_resnet(0), x, y, xt, yt, cfg, seed=0, **QUIET)
    assert len(epochs) == 3, f"expected 3 epochs of batches, got {len(epochs)}"
    flat = x.reshape(len(x), -1)
    orders = []
    for e, batches in enumerate(epochs, 1):
        assert [len(b[1]) for b in batches] == [16, 16, 8], \
            f"epoch {e}: batch sizes {[len(b[1]) for b in batches]}, expected [16, 16, 8]"
        xs = np.concatenate([b[0] for b in batches]).reshape(len(x), -1)
        order = [int(np.flatnonzero((flat == row).all(axis=1))[0]) for row in xs]
        assert sorted(order) == list(range(len(x))), f"epoch {e} does not see every example exactly once"
        assert np.array_equal(np.concatenate([b[1] for b in batches]), y[order]), f"epoch {e}: labels misaligned"
        orders.append(order)
    assert orders[0] != list(range(len(x))), "the batches must be shuffled"
    assert orders[0] != orders[1] and orders[1] != orders[2], \
        "every epoch must have its own order: one generator per epoch, epoch_rng(seed, epoch)"

    epochs.clear()
    cfg = recipe.TrainConfig(epochs=2, batch_size=16, lr=0.05, augment=True)
    recipe.fit(tiny_resnet(0), x, y, xt, yt, cfg, seed=0, **QUIET)
    augmented = [np.concatenate([b[0] for b in batches]).reshape(len(x), -1) for batches in epochs]
    for e, xs in enumerate(augmented, 1):
        unchanged = np.mean([(flat == row).all(axis=1).any() for row in xs])
        assert unchanged < 0.3, f"epoch {e}: {unchanged:.0%} of the images were not augmented (cfg.augment=True)"
    assert not np.array_equal(np.sort(augmented[0], axis=0), np.sort(augmented[1], axis=0)), \
        "both epochs saw the same augmented images: the crops and flips must come from each epoch's generator"


def test_the_crops_follow_crop_padding_and_pad_mode(monkeypatch):
    x, y = images(40, seed=0)
    x = np.abs(x) + 1.0                         # no zero pixels: zeros can only come from padding
    xt, yt = images(8, seed=1)
    epochs = spy_on_batches(monkeypatch)
    for padding, mode in ((4, "constant"), (2, "reflect")):
        epochs.clear()
        cfg = recipe.TrainConfig(epochs=1, batch_size=16, lr=0.05, crop_padding=padding, pad_mode=mode)
        recipe.fit(tiny_resnet(0), x, y, xt, yt, cfg, seed=0, **QUIET)
        xs = np.concatenate([b[0] for b in epochs[0]])
        padded = np.mean((xs == 0).any(axis=(1, 2, 3)))
        if mode == "constant":
            assert padded > 0.5, f"zero padding of 4: expected most crops to show zeros, {padded:.0%} did"
        else:
            assert padded == 0, (f"crop_padding=2, pad_mode='reflect': the borders are mirrored, never "
                                 f"zeros, but {padded:.0%} of the crops contain zeros")
            unchanged = np.mean([(x.reshape(len(x), -1) == row).all(axis=1).any() for row in xs.reshape(len(xs), -1)])
            assert unchanged < 0.3, f"{unchanged:.0%} of the images were not augmented"


def test_alternating_flips_show_each_image_the_other_way_round_in_the_next_epoch(monkeypatch):
    x, y = images(40, seed=0)
    xt, yt = images(8, seed=1)
    epochs = spy_on_batches(monkeypatch)
    # no crops (padding 0), so every training image is exactly x[i] or its mirror image
    cfg = recipe.TrainConfig(epochs=3, batch_size=16, lr=0.05, crop_padding=0, flip="alternating")
    recipe.fit(tiny_resnet(0), x, y, xt, yt, cfg, seed=0, **QUIET)
    assert len(epochs) == 3, f"expected 3 epochs of batches, got {len(epochs)}"
    flat, mirror = x.reshape(len(x), -1), x[..., ::-1].reshape(len(x), -1)
    flipped = []
    for seen in epochs:
        xs = np.concatenate([b[0] for b in seen]).reshape(-1, flat.shape[1])
        plain = {int(i) for row in xs for i in np.flatnonzero((flat == row).all(axis=1))}
        mirrored = {int(i) for row in xs for i in np.flatnonzero((mirror == row).all(axis=1))}
        assert len(plain) + len(mirrored) == len(x) and not plain & mirrored, \
            f"each of the {len(x)} images must be seen once, as itself or mirrored: " \
            f"{len(plain)} plain, {len(mirrored)} mirrored"
        flipped.append(mirrored)
    assert 8 <= len(flipped[0]) <= 32, f"epoch 1 should mirror about half the images, mirrored {len(flipped[0])}"
    assert flipped[1] == set(range(len(x))) - flipped[0], \
        "flip='alternating': epoch 2 must mirror exactly the images epoch 1 showed unmirrored"
    assert flipped[2] == flipped[0], "flip='alternating': epoch 3 must mirror the images epoch 1 did"


def test_cutout_blanks_a_square_of_every_training_image(monkeypatch):
    x, y = images(24, seed=0)
    x = np.abs(x) + 1                                # no zeros of their own
    xt, yt = images(8, seed=1)
    epochs = spy_on_batches(monkeypatch)
    # no crops and no flips, so every training image is x[i] but for the blank square
    cfg = recipe.TrainConfig(epochs=2, batch_size=8, lr=0.05, crop_padding=0, flip="none", cutout=3)
    recipe.fit(tiny_resnet(0), x, y, xt, yt, cfg, seed=0, **QUIET)
    squares = []
    for seen in epochs:
        xs = np.concatenate([b[0] for b in seen])
        zeros = (xs == 0).all(axis=1)
        assert (zeros.sum(axis=(1, 2)) == 9).all(), \
            f"cutout=3: every training image must lose a 3x3 square, zero pixels per image {zeros.sum(axis=(1, 2))}"
        matches = [np.flatnonzero(((x == img) | (img == 0)).all(axis=(1, 2, 3))) for img in xs]
        assert all(len(m) >= 1 for m in matches), "outside its square, each image must be a training image"
        squares.append(zeros)
    assert not np.array_equal(squares[0], squares[1]), "each epoch must draw its own squares"
    with pytest.raises(ValueError, match="cutout"):
        recipe.TrainConfig(cutout=-1)


def test_resume_with_other_settings_is_refused(tmp_path):
    x, y = images(32, seed=0, size=4)
    xt, yt = images(16, seed=1, size=4)
    cfg = recipe.TrainConfig(epochs=3, batch_size=16, lr=0.1, augment=False)
    path = tmp_path / "ckpt.npz"
    recipe.fit(linear_model(0), x, y, xt, yt, cfg, seed=0, checkpoint=path, stop_after_epoch=1, **QUIET)
    saved = path.read_bytes()
    for change in (dict(cfg=recipe.TrainConfig(epochs=5, batch_size=16, lr=0.1, augment=False)),
                   dict(cfg=recipe.TrainConfig(epochs=3, batch_size=8, lr=0.1, augment=False)),
                   dict(seed=1)):
        model = linear_model(4)
        before = model.state_dict()
        args = dict(cfg=cfg, seed=0) | change
        with pytest.raises(DataError) as info:
            recipe.fit(model, x, y, xt, yt, args["cfg"], seed=args["seed"], checkpoint=path, resume=True, **QUIET)
        assert str(path) in str(info.value), f"the message must name the checkpoint; got: {info.value}"
        after = model.state_dict()
        assert all(np.array_equal(before[k], after[k]) for k in before), \
            f"a refused resume ({change}) must not touch the model"
        assert path.read_bytes() == saved, f"a refused resume ({change}) must not touch the checkpoint"
    # the same settings resume fine, and a different evaluation batch size does not matter
    same = recipe.TrainConfig(epochs=3, batch_size=16, lr=0.1, augment=False, eval_batch_size=7)
    history = recipe.fit(linear_model(4), x, y, xt, yt, same, seed=0, checkpoint=path, resume=True, **QUIET)
    assert len(history.test_acc) == 3


# ----------------------------------------------------------------- it learns

def test_fit_learns_an_easy_task():
    x, y = images(96, seed=0)
    xt, yt = images(60, seed=1)
    cfg = recipe.TrainConfig(epochs=8, batch_size=16, lr=0.1, warmup_epochs=1.0, eval_batch_size=60)
    history = recipe.fit(tiny_resnet(0), x, y, xt, yt, cfg, seed=0, **QUIET)
    assert len(history.train_loss) == 8 and len(history.test_acc) == 8
    assert history.train_loss[-1] < 0.75 * history.train_loss[0], \
        f"the training loss should fall clearly: {np.round(history.train_loss, 3)}"
    assert history.test_acc[-1] >= 0.8, \
        f"test accuracy after 8 epochs should be well above chance (1/3): {np.round(history.test_acc, 3)}"
