"""Topic 17: checkpoints — exact round trip, corrupt files, other architectures, atomic writes."""

import json
import os

import numpy as np
import pytest

from dlfs.conv.resnet import ResNet
from dlfs.errors import DataError
from dlfs.nn.layers import Flatten, Linear, Sequential
from dlfs.nn.losses import CrossEntropyLoss
from dlfs.optim.optimizers import SGD, Adam
from dlfs.optim.schedules import CosineWithWarmup
from dlfs.testing import assert_close
from dlfs.train import recipe
from dlfs.train.loop import train_epoch


def tiny_resnet(seed=0, widths=(4, 8, 8), blocks=1):
    return ResNet(blocks, widths, num_classes=3, rng=np.random.default_rng(seed))


def images(n=32, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 3, 8, 8)).astype(np.float32)
    x[np.arange(n), y] += 1.0
    return x, y.astype(np.int64)


def make_run(model, kind="sgd"):
    """(optimiser, scheduler) over the model's parameters, as fit builds them."""
    if kind == "sgd":
        opt = SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    else:
        opt = Adam(model.parameters(), lr=0.01, weight_decay=1e-4)
    return opt, CosineWithWarmup(opt, warmup_steps=2, total_steps=20, min_lr=1e-3)


def train_steps(model, opt, sched, batches):
    train_epoch(model, CrossEntropyLoss(label_smoothing=0.1), opt, batches, scheduler=sched)


def batches_of(x, y, size=8):
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


def snapshot(model, opt, sched):
    """Deep copies of everything a checkpoint must restore."""
    return (model.state_dict(), opt.state_dict(), opt.lr, sched.state_dict())


def assert_same_snapshot(got, expected, what):
    (m1, o1, lr1, s1), (m2, o2, lr2, s2) = got, expected
    assert sorted(m1) == sorted(m2), f"{what}: model arrays {sorted(m1)} vs {sorted(m2)}"
    for k in m2:
        assert m1[k].dtype == m2[k].dtype, f"{what}: {k} has dtype {m1[k].dtype}, expected {m2[k].dtype}"
        assert np.array_equal(m1[k], m2[k]), f"{what}: model array {k} differs"
    assert sorted(o1["state"]) == sorted(o2["state"]), f"{what}: optimiser state of other parameters"
    for i in o2["state"]:
        assert sorted(o1["state"][i]) == sorted(o2["state"][i]), f"{what}: optimiser state keys of parameter {i}"
        for key, value in o2["state"][i].items():
            got_value = o1["state"][i][key]
            if isinstance(value, np.ndarray):
                assert got_value.dtype == value.dtype and np.array_equal(got_value, value), \
                    f"{what}: optimiser state {key!r} of parameter {i} differs"
            else:
                assert got_value == value, f"{what}: optimiser state {key!r} of parameter {i}: " \
                                           f"{got_value!r} vs {value!r}"
    assert lr1 == lr2, f"{what}: learning rate {lr1!r}, expected {lr2!r}"
    assert s1 == s2, f"{what}: scheduler state {s1}, expected {s2}"


# ----------------------------------------------------------------- round trip

@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_checkpoint_round_trip_is_exact(tmp_path, kind):
    x, y = images()
    model = tiny_resnet(0)
    opt, sched = make_run(model, kind)
    train_steps(model, opt, sched, batches_of(x, y))            # momentum, BN statistics, step 4
    history = recipe.History(train_loss=[1.25, 0.1 + 0.2], train_acc=[0.5, 0.625],
                             test_loss=[1.5, float("nan")], test_acc=[0.25, 1 / 3], epoch_time_s=[1.0, 2.5])
    path = tmp_path / "run" / "ckpt.npz"
    returned = recipe.save_checkpoint(path, model, opt, sched, 2, history, {"preset": "tiny", "seed": 7})
    assert path.is_file(), f"save_checkpoint did not create {path} (the folder may need creating)"
    assert os.fspath(returned) == os.fspath(path), f"save_checkpoint should return the path, got {returned!r}"
    saved = snapshot(model, opt, sched)

    other = tiny_resnet(1)                                       # different weights, fresh state
    opt2, sched2 = make_run(other, kind)
    epoch, hist2, meta = recipe.load_checkpoint(path, other, opt2, sched2)
    assert epoch == 2, f"expected epoch 2, got {epoch!r}"
    assert isinstance(hist2, recipe.History), f"expected a History, got {type(hist2).__name__}"
    got_h, exp_h = hist2.as_dict(), history.as_dict()
    assert got_h.keys() == exp_h.keys()
    for k in exp_h:
        assert_close(np.array(got_h[k]), np.array(exp_h[k]), rtol=0, atol=0, what=f"history.{k}")
    assert meta.get("preset") == "tiny" and meta.get("seed") == 7, f"meta came back as {meta}"
    assert_same_snapshot(snapshot(other, opt2, sched2), saved, "after load_checkpoint")

    # the two runs now continue identically
    more = batches_of(*images(16, seed=1))
    train_steps(model, opt, sched, more)
    train_steps(other, opt2, sched2, more)
    assert_same_snapshot(snapshot(other, opt2, sched2), snapshot(model, opt, sched),
                         "one more step after loading vs without interruption")


def test_checkpoint_file_layout(tmp_path):
    model = tiny_resnet(0)
    opt, sched = make_run(model)
    train_steps(model, opt, sched, batches_of(*images(16)))
    path = recipe.save_checkpoint(tmp_path / "c.npz", model, opt, sched, 1, recipe.History())
    with np.load(path, allow_pickle=False) as z:
        names = set(z.files)
        assert "meta.json" in names, f"no meta.json in the checkpoint: {sorted(names)}"
        for name, value in model.state_dict().items():
            assert f"model/{name}" in names, f"model/{name} missing from the checkpoint"
            assert np.array_equal(z[f"model/{name}"], value), f"model/{name} differs from the model"
        for i in opt.state_dict()["state"]:
            assert f"optim/{i}/momentum_buffer" in names, f"optim/{i}/momentum_buffer missing"


# ----------------------------------------------------------------- refusing bad files

def _corrupt(kind, good: bytes, rng) -> bytes:
    if kind == "truncated-half":
        return good[: len(good) // 2]
    if kind == "truncated-end":
        return good[:-30]
    if kind == "garbage":
        return rng.integers(0, 256, len(good), dtype=np.uint8).tobytes()
    if kind == "empty":
        return b""
    if kind == "zeroed-middle":               # the arrays' bytes damaged, the zip index intact
        mid = len(good) // 2
        return good[:mid - 200] + bytes(400) + good[mid + 200:]
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["truncated-half", "truncated-end", "garbage", "empty", "zeroed-middle",
                                  "no-metadata"])
def test_corrupt_checkpoint_raises_data_error_and_changes_nothing(tmp_path, kind):
    model = tiny_resnet(0)
    opt, sched = make_run(model)
    train_steps(model, opt, sched, batches_of(*images(16)))
    good = recipe.save_checkpoint(tmp_path / "good.npz", model, opt, sched, 1, recipe.History())
    bad = tmp_path / f"{kind}.npz"
    if kind == "no-metadata":
        with np.load(good) as z:
            arrays = {k: z[k] for k in z.files if k != "meta.json"}
        with open(bad, "wb") as f:
            np.savez(f, **arrays)
    else:
        bad.write_bytes(_corrupt(kind, good.read_bytes(), np.random.default_rng(0)))

    fresh = tiny_resnet(1)
    opt2, sched2 = make_run(fresh)
    before = snapshot(fresh, opt2, sched2)
    with pytest.raises(DataError) as info:
        recipe.load_checkpoint(bad, fresh, opt2, sched2)
    assert str(bad) in str(info.value), f"the message must name the file; got: {info.value}"
    assert_same_snapshot(snapshot(fresh, opt2, sched2), before, f"after refusing a {kind} checkpoint")

    with pytest.raises(DataError, match="no checkpoint"):
        recipe.load_checkpoint(tmp_path / "missing.npz", fresh, opt2, sched2)
    assert recipe.load_checkpoint(good, fresh, opt2, sched2)[0] == 1, "the good checkpoint must still load"


@pytest.mark.parametrize("other", ["wider", "deeper", "linear"])
def test_checkpoint_of_another_architecture_is_refused(tmp_path, other):
    model = tiny_resnet(0)
    opt, sched = make_run(model)
    train_steps(model, opt, sched, batches_of(*images(16)))
    path = recipe.save_checkpoint(tmp_path / "c.npz", model, opt, sched, 1, recipe.History())

    if other == "wider":                       # same layer names, other shapes
        target = tiny_resnet(0, widths=(4, 8, 16))
    elif other == "deeper":                    # more arrays
        target = tiny_resnet(0, blocks=2)
    else:
        target = Sequential(Flatten(), Linear(3 * 8 * 8, 3, rng=0))
    opt2, sched2 = make_run(target)
    before = snapshot(target, opt2, sched2)
    with pytest.raises(DataError) as info:
        recipe.load_checkpoint(path, target, opt2, sched2)
    assert str(path) in str(info.value), f"the message must name the file; got: {info.value}"
    assert_same_snapshot(snapshot(target, opt2, sched2), before, f"after refusing the checkpoint ({other})")


def _rewrite_schedule_state(path, state):
    """Rewrite the checkpoint at ``path`` with ``state`` as the schedule's saved state."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    doc = json.loads(bytes(arrays["meta.json"]).decode())
    doc["scheduler"] = state
    arrays["meta.json"] = np.frombuffer(json.dumps(doc).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize("mismatch", ["fewer-parameters", "parameters-in-another-order",
                                      "adam-state-of-more-parameters", "schedule-state"])
def test_checkpoint_whose_optimiser_state_does_not_fit_changes_nothing(tmp_path, mismatch):
    """The model fits, the optimiser's (or the schedule's) state does not: refuse before loading
    anything, so the model is not left holding the checkpoint's weights."""
    model = tiny_resnet(0)
    opt, sched = make_run(model, "adam" if mismatch.startswith("adam") else "sgd")
    train_steps(model, opt, sched, batches_of(*images(16)))
    path = recipe.save_checkpoint(tmp_path / "c.npz", model, opt, sched, 1, recipe.History())

    target = tiny_resnet(1)                                     # same architecture: the model part fits
    params = target.parameters()
    if mismatch == "fewer-parameters":                          # the saved state has one index too many
        opt2 = SGD(params[:-1], lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    elif mismatch == "parameters-in-another-order":             # same count, the shapes do not line up
        opt2 = SGD(params[::-1], lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    elif mismatch == "adam-state-of-more-parameters":           # arrays and step counts beyond the list
        opt2 = Adam(params[:3], lr=0.01, weight_decay=1e-4)
    else:                                                       # a schedule state without base_lr
        opt2 = SGD(params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
        _rewrite_schedule_state(path, {"last_step": 4})
    sched2 = CosineWithWarmup(opt2, warmup_steps=2, total_steps=20, min_lr=1e-3)
    train_steps(target, opt2, sched2, batches_of(*images(8, seed=2)))   # some state of its own to keep
    before = snapshot(target, opt2, sched2)
    with pytest.raises(DataError) as info:
        recipe.load_checkpoint(path, target, opt2, sched2)
    assert str(path) in str(info.value), f"the message must name the file; got: {info.value}"
    assert_same_snapshot(snapshot(target, opt2, sched2), before, f"after refusing the checkpoint ({mismatch})")


# ----------------------------------------------------------------- atomic writes

class DiskFull(OSError):
    pass


@pytest.mark.parametrize("failure", ["while-serialising", "at-the-rename"])
def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch, failure):
    model = tiny_resnet(0)
    opt, sched = make_run(model)
    x, y = images(32)
    train_steps(model, opt, sched, batches_of(x[:16], y[:16]))
    path = tmp_path / "ckpt.npz"
    recipe.save_checkpoint(path, model, opt, sched, 1, recipe.History(train_loss=[1.0]))
    good_bytes = path.read_bytes()
    epoch1 = snapshot(model, opt, sched)

    train_steps(model, opt, sched, batches_of(x[16:], y[16:]))           # epoch 2 ...
    if failure == "while-serialising":          # ... and the process dies half-way through the arrays
        original, calls = np.lib.format.write_array, []

        def dying_write_array(fp, array, *args, **kwargs):
            calls.append(1)
            if len(calls) == 3:
                raise DiskFull("disk full")
            return original(fp, array, *args, **kwargs)

        monkeypatch.setattr(np.lib.format, "write_array", dying_write_array)
    else:                                       # ... and the final rename fails
        def failing_replace(src, dst, *args, **kwargs):
            raise DiskFull("disk full")

        monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(DiskFull):
        recipe.save_checkpoint(path, model, opt, sched, 2, recipe.History(train_loss=[1.0, 0.5]))
    monkeypatch.undo()

    assert path.read_bytes() == good_bytes, \
        "the failed save changed the previous checkpoint: build the file in memory, write it to a " \
        "temporary file and rename it over the old one (dlfs.io.atomic_write_bytes)"
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name != path.name)
    assert not leftovers, f"the failed save left files behind: {leftovers}"
    fresh = tiny_resnet(1)
    opt2, sched2 = make_run(fresh)
    epoch, history, _ = recipe.load_checkpoint(path, fresh, opt2, sched2)
    assert epoch == 1 and history.train_loss == [1.0], f"got epoch {epoch}, history {history}"
    assert_same_snapshot(snapshot(fresh, opt2, sched2), epoch1, "the surviving epoch-1 checkpoint")
