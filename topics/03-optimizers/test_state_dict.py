"""Topic 03: optimiser checkpoints. Saving with state_dict() and resuming with
load_state_dict() must continue the run bit for bit."""

import copy

import numpy as np
import pytest

from dlfs.optim import optimizers as optim
from dlfs.testing import assert_close


class Param:
    def __init__(self, data, grad=None):
        self.data = np.array(data, dtype=np.float64)
        self.grad = None if grad is None else np.array(grad, dtype=np.float64)


_rng = np.random.default_rng(30)
H = _rng.uniform(0.5, 5.0, size=(4, 3))
C = _rng.normal(size=(4, 3))
W0 = _rng.normal(size=(4, 3))
V0 = _rng.normal(size=3)


def set_grads(w, v, frozen):
    w.grad = H * (w.data - C)
    v.grad = np.sin(v.data) + v.data ** 3
    frozen.grad = None


CASES = {
    "sgd": ("SGD", dict(lr=0.05)),
    "momentum": ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    "nesterov": ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    "rmsprop": ("RMSprop", dict(lr=0.01, momentum=0.5)),
    "adam": ("Adam", dict(lr=0.05, weight_decay=0.01)),
    "adamw": ("AdamW", dict(lr=0.05, weight_decay=0.1)),
}


def fresh(name, kwargs, w0, v0):
    w, v, frozen = Param(w0), Param(v0), Param(np.ones(2))
    return (w, v, frozen), getattr(optim, name)([w, v, frozen], **kwargs)


def continue_run(params, opt, steps):
    out = []
    for _ in range(steps):
        set_grads(*params)
        opt.step()
        out.append([p.data.copy() for p in params])
    return out


def walk(obj, path="state_dict"):
    """Yield (path, leaf) for every leaf of nested dicts/lists."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from walk(v, f"{path}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from walk(v, f"{path}[{i}]")
    else:
        yield path, obj


@pytest.mark.parametrize("case", list(CASES))
def test_resume_from_state_dict_continues_bit_identically(case):
    name, kwargs = CASES[case]
    params, opt = fresh(name, kwargs, W0, V0)
    continue_run(params, opt, 7)
    opt.lr = kwargs["lr"] * 0.5                       # as a schedule would have done
    saved_params = [p.data.copy() for p in params[:2]]
    saved = copy.deepcopy(opt.state_dict())
    expected = continue_run(params, opt, 8)

    params2, opt2 = fresh(name, dict(kwargs, lr=123.0), *saved_params)
    opt2.load_state_dict(saved)
    assert opt2.lr == kwargs["lr"] * 0.5, f"{case}: lr after load_state_dict is {opt2.lr}"
    got = continue_run(params2, opt2, 8)
    for k, (g_step, e_step) in enumerate(zip(got, expected), start=1):
        for j, (g, e) in enumerate(zip(g_step, e_step)):
            assert np.array_equal(g, e), (
                f"{case}: parameter {j}, step {k} after resuming differs from the uninterrupted run "
                f"(max |diff| {np.max(np.abs(g - e)):.3e}); a resumed run must be bit-identical")


@pytest.mark.parametrize("case", ["momentum", "rmsprop", "adam", "adamw"])
def test_state_dict_is_a_snapshot_and_loading_copies_it(case):
    name, kwargs = CASES[case]
    params, opt = fresh(name, kwargs, W0, V0)
    continue_run(params, opt, 3)
    snap = opt.state_dict()
    frozen_copy = copy.deepcopy(snap)
    start = [p.data.copy() for p in params[:2]]
    first = continue_run(params, opt, 4)               # the optimiser keeps stepping ...
    for (path, a), (_, b) in zip(walk(snap), walk(frozen_copy)):   # ... the snapshot must not change
        if isinstance(b, np.ndarray):
            assert_close(a, b, rtol=0, atol=0, what=f"{case}: {path} after 4 more steps")
        else:
            assert a == b, f"{case}: {path} changed from {b!r} to {a!r} after 4 more steps"

    for attempt in (1, 2):                             # loading twice gives the same run
        params2, opt2 = fresh(name, kwargs, *start)
        opt2.load_state_dict(snap)
        again = continue_run(params2, opt2, 4)
        for k, (g_step, e_step) in enumerate(zip(again, first), start=1):
            for g, e in zip(g_step, e_step):
                assert np.array_equal(g, e), (
                    f"{case}: load #{attempt} of the same snapshot, step {k}: differs from the original "
                    "run (load_state_dict must copy the arrays, not share them)")


def test_adam_state_dict_holds_plain_arrays_and_step_counts():
    params, opt = fresh("Adam", dict(lr=0.05), W0, V0)
    continue_run(params, opt, 5)
    sd = opt.state_dict()
    assert set(sd) == {"lr", "state"}, f"state_dict keys are {sorted(sd)}, expected ['lr', 'state']"
    assert sd["lr"] == 0.05
    assert sorted(sd["state"]) == [0, 1], (
        f"state for parameters {sorted(sd['state'])}; expected [0, 1] (parameter 2 never had a gradient)")
    for i in (0, 1):
        st = sd["state"][i]
        assert st["step"] == 5 and isinstance(st["step"], int), f"state[{i}]['step'] = {st['step']!r}, expected 5"
        assert st["exp_avg"].shape == params[i].data.shape
        assert st["exp_avg_sq"].shape == params[i].data.shape
        assert st["exp_avg"] is not opt.state[i]["exp_avg"], "state_dict must copy the arrays"
    for path, leaf in walk(sd):
        assert isinstance(leaf, (int, float, np.ndarray)), f"{path} is a {type(leaf).__name__}"


def test_load_state_dict_rejects_a_mismatched_shape():
    params, opt = fresh("Adam", dict(lr=0.05), W0, V0)
    continue_run(params, opt, 2)
    sd = opt.state_dict()
    sd["state"][0]["exp_avg"] = np.zeros((3, 4))
    _, opt2 = fresh("Adam", dict(lr=0.05), W0, V0)
    with pytest.raises(ValueError):
        opt2.load_state_dict(sd)
