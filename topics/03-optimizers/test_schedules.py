"""Topic 03: learning-rate schedules (closed forms and torch.optim.lr_scheduler) and global
gradient-norm clipping (closed forms and torch.nn.utils.clip_grad_norm_)."""

import copy
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.optim import optimizers as optim
from dlfs.optim import schedules as sched
from dlfs.testing import assert_close
from torch_oracle import torch_or_skip


class Param:
    def __init__(self, data, grad=None, dtype=np.float64):
        self.data = np.array(data, dtype=dtype)
        self.grad = None if grad is None else np.array(grad, dtype=dtype)


class LrHolder:
    """Schedules only need an object with an ``lr`` attribute."""

    def __init__(self, lr):
        self.lr = lr


# ----------------------------------------------------------------------------------- StepLR

def test_steplr_closed_form():
    s = sched.StepLR(LrHolder(0.8), step_size=3, gamma=0.5)
    got = [s.lr_at(k) for k in range(13)]
    expected = [0.8] * 3 + [0.4] * 3 + [0.2] * 3 + [0.1] * 3 + [0.05]
    assert_close(np.array(got), np.array(expected), rtol=1e-12, what="StepLR(step_size=3, gamma=0.5).lr_at(0..12)")


def test_steplr_sets_the_optimiser_lr_at_each_step():
    opt = optim.SGD([Param([1.0])], lr=0.3)
    s = sched.StepLR(opt, step_size=2, gamma=0.1)
    assert_close(opt.lr, 0.3, rtol=1e-12, what="optimizer.lr right after creating StepLR (lr_at(0))")
    for k in range(1, 8):
        returned = s.step()
        expected = 0.3 * 0.1 ** (k // 2)
        assert_close(opt.lr, expected, rtol=1e-12, what=f"optimizer.lr after {k} scheduler steps")
        assert_close(returned, expected, rtol=1e-12, what=f"value returned by scheduler step {k}")


def test_steplr_matches_torch():
    torch = torch_or_skip()
    t_opt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.7)
    t_s = torch.optim.lr_scheduler.StepLR(t_opt, step_size=4, gamma=0.6)
    opt = LrHolder(0.7)
    s = sched.StepLR(opt, step_size=4, gamma=0.6)
    for k in range(30):
        assert_close(opt.lr, t_opt.param_groups[0]["lr"], rtol=1e-10, what=f"StepLR lr at step {k} vs torch")
        t_opt.step()
        t_s.step()
        s.step()


# ------------------------------------------------------------------------ CosineWithWarmup

def cosine_closed_form(s, base, warmup, total, min_lr):
    if s < warmup:
        return base * s / warmup
    p = min(1.0, (s - warmup) / (total - warmup))
    return min_lr + (base - min_lr) * 0.5 * (1 + math.cos(math.pi * p))


def test_cosine_with_warmup_landmarks():
    s = sched.CosineWithWarmup(LrHolder(1.0), warmup_steps=10, total_steps=110, min_lr=0.2)
    landmarks = {0: 0.0, 5: 0.5, 10: 1.0, 60: 0.6, 110: 0.2, 111: 0.2, 500: 0.2}
    for step, expected in landmarks.items():
        assert_close(s.lr_at(step), expected, rtol=1e-12, atol=1e-15, what=f"lr_at({step})")


def test_cosine_with_warmup_closed_form_every_step():
    s = sched.CosineWithWarmup(LrHolder(3e-3), warmup_steps=7, total_steps=50, min_lr=1e-4)
    got = np.array([s.lr_at(k) for k in range(61)])
    expected = np.array([cosine_closed_form(k, 3e-3, 7, 50, 1e-4) for k in range(61)])
    assert_close(got, expected, rtol=1e-10, atol=1e-15, what="CosineWithWarmup lr_at(0..60)")


def test_cosine_without_warmup_starts_at_base_lr():
    opt = LrHolder(0.5)
    s = sched.CosineWithWarmup(opt, warmup_steps=0, total_steps=20)
    assert_close(opt.lr, 0.5, rtol=1e-12, what="optimizer.lr after creating the schedule (no warmup)")
    assert_close(s.lr_at(10), 0.25, rtol=1e-12, what="lr_at(10) of a 20-step cosine")
    assert_close(s.lr_at(20), 0.0, atol=1e-15, what="lr_at(20) of a 20-step cosine")


def test_cosine_with_warmup_matches_torch_lambdalr():
    torch = torch_or_skip()
    base, warmup, total, min_lr = 0.02, 12, 80, 0.002
    t_opt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=base)
    t_s = torch.optim.lr_scheduler.LambdaLR(
        t_opt, lambda k: cosine_closed_form(k, base, warmup, total, min_lr) / base)
    opt = LrHolder(base)
    s = sched.CosineWithWarmup(opt, warmup, total, min_lr=min_lr)
    for k in range(100):
        assert_close(opt.lr, t_opt.param_groups[0]["lr"], rtol=1e-10, atol=1e-15,
                     what=f"CosineWithWarmup lr at step {k} vs torch LambdaLR")
        t_opt.step()
        t_s.step()
        s.step()


@settings(deadline=None, max_examples=40)
@given(warmup=st.integers(0, 30), extra=st.integers(1, 200), base=st.floats(1e-5, 1.0),
       min_frac=st.floats(0.0, 0.9))
def test_cosine_with_warmup_rises_then_falls_within_bounds(warmup, extra, base, min_frac):
    total, min_lr = warmup + extra, base * min_frac
    s = sched.CosineWithWarmup(LrHolder(base), warmup, total, min_lr=min_lr)
    lrs = np.array([s.lr_at(k) for k in range(total + 5)])
    tol = 1e-12 * base
    assert np.all(np.diff(lrs[: warmup + 1]) > 0), f"lr must rise during warmup: {lrs[: warmup + 1]}"
    assert np.all(np.diff(lrs[warmup:]) <= tol), "lr must not rise after warmup"
    assert_close(lrs[warmup], base, rtol=1e-12, what=f"lr_at(warmup_steps={warmup})")
    assert_close(lrs[total:], np.full(5, min_lr), rtol=1e-9, atol=tol, what="lr from total_steps on")
    assert lrs.min() >= -tol and lrs.max() <= base + tol


def test_lr_at_is_a_pure_function_of_the_step():
    opt = LrHolder(1.0)
    s = sched.CosineWithWarmup(opt, warmup_steps=4, total_steps=20)
    for _ in range(6):
        s.step()
    lr_now = opt.lr
    table = [s.lr_at(k) for k in range(25)]
    assert opt.lr == lr_now and s.last_step == 6, "lr_at() must not change the optimiser or the step count"
    assert table == [s.lr_at(k) for k in range(25)], "lr_at() gave different values on a second call"
    assert_close(lr_now, table[6], rtol=1e-12, what="optimizer.lr after 6 scheduler steps vs lr_at(6)")


# ------------------------------------------------------------------------------- clipping

def test_clip_grad_norm_closed_form():
    a = Param([0.0, 0.0], grad=[3.0, 4.0])
    b = Param([0.0], grad=[12.0])                        # global norm sqrt(9 + 16 + 144) = 13
    ga, gb = a.grad, b.grad
    norm = sched.clip_grad_norm([a, b], max_norm=6.5)
    assert_close(norm, 13.0, rtol=1e-12, what="returned norm (before clipping)")
    c = 6.5 / (13.0 + 1e-6)
    assert a.grad is ga and b.grad is gb, "clip_grad_norm must scale the gradient arrays in place"
    assert_close(a.grad, np.array([3.0, 4.0]) * c, rtol=1e-12, what="first gradient after clipping")
    assert_close(b.grad, np.array([12.0]) * c, rtol=1e-12, what="second gradient after clipping")


def test_clip_grad_norm_leaves_small_gradients_alone():
    a, b = Param([0.0, 0.0], grad=[0.3, -0.4]), Param([1.0])         # b has no gradient
    norm = sched.clip_grad_norm([a, b], max_norm=1.0)
    assert_close(norm, 0.5, rtol=1e-12, what="returned norm")
    assert_close(a.grad, np.array([0.3, -0.4]), rtol=0, atol=0, what="gradient below max_norm (unchanged)")
    assert b.grad is None, "a None gradient must stay None"


def test_clip_grad_norm_uses_one_global_norm_not_one_per_array():
    a, b = Param([0.0], grad=[2.0]), Param([0.0], grad=[2.0])        # each has norm 2 < 2.5, together 2√2
    norm = sched.clip_grad_norm([a, b], max_norm=2.5)
    assert_close(norm, 2 * math.sqrt(2), rtol=1e-12, what="global norm of two gradients")
    c = 2.5 / (2 * math.sqrt(2) + 1e-6)
    assert_close(np.concatenate([a.grad, b.grad]), np.array([2.0, 2.0]) * c, rtol=1e-12,
                 what="gradients after clipping by the global norm")


@settings(deadline=None, max_examples=40)
@given(seed=st.integers(0, 2**16), max_norm=st.floats(0.01, 10.0), scale=st.floats(1e-3, 1e3))
def test_clip_grad_norm_property(seed, max_norm, scale):
    rng = np.random.default_rng(seed)
    params = [Param(np.zeros(s), grad=scale * rng.normal(size=s)) for s in [(3,), (2, 4), (1,)]]
    before = np.concatenate([p.grad.ravel() for p in params])
    norm = sched.clip_grad_norm(params, max_norm)
    after = np.concatenate([p.grad.ravel() for p in params])
    assert_close(norm, np.linalg.norm(before), rtol=1e-12, what="returned norm")
    assert np.linalg.norm(after) <= max_norm * (1 + 1e-12), "norm after clipping exceeds max_norm"
    coef = min(1.0, max_norm / (np.linalg.norm(before) + 1e-6))
    assert_close(after, before * coef, rtol=1e-12, what="gradients after clipping (direction kept)")


def test_clip_grad_norm_matches_torch():
    torch = torch_or_skip()
    rng = np.random.default_rng(5)
    for max_norm in [0.5, 3.0, 100.0]:
        grads = [rng.normal(size=(4, 3)), rng.normal(size=(7,))]
        params = [Param(np.zeros_like(g), grad=g) for g in grads] + [Param(np.zeros(2))]
        tparams = [torch.zeros(g.shape, requires_grad=True) for g in grads] + [torch.zeros(2, requires_grad=True)]
        for t, g in zip(tparams, grads):
            t.grad = torch.tensor(g.copy())
        t_norm = torch.nn.utils.clip_grad_norm_(tparams, max_norm)
        norm = sched.clip_grad_norm(params, max_norm)
        assert_close(norm, float(t_norm), rtol=1e-10, what=f"returned norm (max_norm={max_norm}) vs torch")
        for i, (p, t) in enumerate(zip(params[:2], tparams[:2])):
            assert_close(p.grad, t.grad.numpy(), rtol=1e-10,
                         what=f"gradient {i} after clipping to {max_norm} vs torch")
        assert params[2].grad is None, "a None gradient must stay None"


def test_clip_grad_norm_keeps_float32():
    p = Param([0.0, 0.0], grad=[30.0, 40.0], dtype=np.float32)
    norm = sched.clip_grad_norm([p], 5.0)
    assert p.grad.dtype == np.float32, f"gradient dtype became {p.grad.dtype}"
    assert_close(norm, 50.0, rtol=1e-6, what="returned norm")
    assert_close(p.grad, np.array([3.0, 4.0]), rtol=1e-5, what="float32 gradient after clipping")


# ------------------------------------------------------------- everything in one training loop

_rng = np.random.default_rng(33)
H = _rng.uniform(0.5, 30.0, size=(5, 2))
C = _rng.normal(size=(5, 2))
W0 = 3.0 * _rng.normal(size=(5, 2))


def train(w, opt, s, steps, max_norm=2.0):
    out = []
    for _ in range(steps):
        w.grad = H * (w.data - C)
        sched.clip_grad_norm([w], max_norm)
        opt.step()
        s.step()
        out.append(w.data.copy())
    return out


def test_momentum_with_warmup_cosine_and_clipping_matches_torch():
    torch = torch_or_skip()
    base, warmup, total = 0.05, 10, 60
    w = Param(W0)
    opt = optim.SGD([w], lr=base, momentum=0.9, nesterov=True)
    s = sched.CosineWithWarmup(opt, warmup, total, min_lr=0.005)
    ours = train(w, opt, s, 70)

    tw = torch.tensor(W0.copy(), requires_grad=True)
    t_opt = torch.optim.SGD([tw], lr=base, momentum=0.9, nesterov=True)
    t_s = torch.optim.lr_scheduler.LambdaLR(
        t_opt, lambda k: cosine_closed_form(k, base, warmup, total, 0.005) / base)
    for k in range(70):
        tw.grad = torch.from_numpy(H * (tw.detach().numpy() - C))
        torch.nn.utils.clip_grad_norm_([tw], 2.0)
        t_opt.step()
        t_s.step()
        assert_close(ours[k], tw.detach().numpy(), rtol=1e-6, what=f"W after step {k + 1} vs torch")


def test_resume_optimizer_and_schedule_mid_warmup():
    def start(w0):
        w = Param(w0)
        opt = optim.Adam([w], lr=0.1)
        return w, opt, sched.CosineWithWarmup(opt, warmup_steps=8, total_steps=30, min_lr=0.01)

    w, opt, s = start(W0)
    train(w, opt, s, 5)
    ckpt = copy.deepcopy({"w": w.data, "opt": opt.state_dict(), "sched": s.state_dict()})
    expected = train(w, opt, s, 20)

    w2, opt2, s2 = start(np.zeros_like(W0))              # a fresh process: wrong lr, step 0
    w2.data[...] = ckpt["w"]
    opt2.load_state_dict(ckpt["opt"])
    s2.load_state_dict(ckpt["sched"])
    got = train(w2, opt2, s2, 20)
    for k, (g, e) in enumerate(zip(got, expected), start=1):
        assert np.array_equal(g, e), f"step {k} after resuming differs from the uninterrupted run"
