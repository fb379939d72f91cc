"""Topic 03: update rules checked against closed forms worked out by hand, and parameter
trajectories checked against torch.optim over 100 steps."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.optim import optimizers as optim
from dlfs.testing import assert_close
from torch_oracle import torch_or_skip


class Param:
    """The smallest thing an optimiser accepts: ``.data`` and ``.grad``."""

    def __init__(self, data, grad=None, dtype=np.float64):
        self.data = np.array(data, dtype=dtype)
        self.grad = None if grad is None else np.array(grad, dtype=dtype)


# ---------------------------------------------------------------------------------------
# A fixed objective with closed-form gradients: an ill-conditioned quadratic in a (3, 4)
# matrix W, a Rosenbrock-like valley in a 2-vector r, and a frozen (5,) vector whose
# gradient is always None.
#   f(W, r) = ½ Σ H ⊙ (W - C)²  +  (1 - x)² + 10 (y - x²)²,   r = (x, y)
# ---------------------------------------------------------------------------------------
_rng = np.random.default_rng(3)
H = _rng.uniform(0.5, 20.0, size=(3, 4))
C = _rng.normal(size=(3, 4))
W0 = _rng.normal(size=(3, 4))
R0 = np.array([-1.2, 1.0])
FROZEN0 = _rng.normal(size=5)


def objective_grads(w: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gw = H * (w - C)
    x, y = r
    gr = np.array([-2.0 * (1.0 - x) - 40.0 * x * (y - x * x), 20.0 * (y - x * x)])
    return gw.astype(w.dtype), gr.astype(r.dtype)


def make_params(dtype=np.float64):
    return Param(W0, dtype=dtype), Param(FROZEN0, dtype=dtype), Param(R0, dtype=dtype)


def run_ours(name, kwargs, steps, dtype=np.float64):
    """Trajectory [(W, r) after each step] of our optimiser, plus the frozen parameter."""
    w, frozen, r = make_params(dtype)
    opt = getattr(optim, name)([w, frozen, r], **kwargs)
    traj = []
    for _ in range(steps):
        w.grad, r.grad = objective_grads(w.data, r.data)
        opt.step()
        traj.append((w.data.copy(), r.data.copy()))
    return traj, frozen


def run_torch(torch, name, kwargs, steps):
    w, frozen, r = (torch.tensor(a.copy(), requires_grad=True) for a in (W0, FROZEN0, R0))
    opt = getattr(torch.optim, name)([w, frozen, r], **kwargs)
    traj = []
    for _ in range(steps):
        gw, gr = objective_grads(w.detach().numpy().copy(), r.detach().numpy().copy())
        w.grad, r.grad = torch.from_numpy(gw), torch.from_numpy(gr)
        opt.step()
        traj.append((w.detach().numpy().copy(), r.detach().numpy().copy()))
    return traj, frozen.detach().numpy().copy()


CASES = {
    "sgd": ("SGD", dict(lr=0.02)),
    "sgd-wd": ("SGD", dict(lr=0.02, weight_decay=0.1)),
    "momentum": ("SGD", dict(lr=0.01, momentum=0.9)),
    "momentum-wd": ("SGD", dict(lr=0.01, momentum=0.9, weight_decay=0.05)),
    "nesterov": ("SGD", dict(lr=0.01, momentum=0.9, nesterov=True)),
    "nesterov-wd": ("SGD", dict(lr=0.01, momentum=0.8, nesterov=True, weight_decay=0.05)),
    "rmsprop": ("RMSprop", dict(lr=0.01)),
    "rmsprop-momentum": ("RMSprop", dict(lr=0.002, alpha=0.9, momentum=0.9)),
    "rmsprop-wd": ("RMSprop", dict(lr=0.01, alpha=0.99, eps=1e-6, weight_decay=0.1)),
    "adam": ("Adam", dict(lr=0.02)),
    "adam-wd": ("Adam", dict(lr=0.02, betas=(0.8, 0.99), eps=1e-7, weight_decay=0.1)),
    "adamw": ("AdamW", dict(lr=0.02, weight_decay=0.1)),
    "adamw-no-decay": ("AdamW", dict(lr=0.02, betas=(0.85, 0.995), weight_decay=0.0)),
}


# --------------------------------------------------------------------- torch trajectories

@pytest.mark.parametrize("case", list(CASES))
def test_trajectory_matches_torch(case):
    torch = torch_or_skip()
    name, kwargs = CASES[case]
    ours, frozen = run_ours(name, kwargs, steps=100)
    theirs, frozen_t = run_torch(torch, name, kwargs, steps=100)
    for k, ((w, r), (wt, rt)) in enumerate(zip(ours, theirs), start=1):
        assert_close(w, wt, rtol=1e-6, what=f"{case}: W after step {k} (vs torch.optim.{name})")
        assert_close(r, rt, rtol=1e-6, what=f"{case}: r after step {k} (vs torch.optim.{name})")
    assert_close(frozen.data, frozen_t, rtol=0, atol=0,
                 what=f"{case}: parameter whose grad is always None (must not move)")


# --------------------------------------------------------------------------- SGD by hand

def test_sgd_on_a_quadratic_is_geometric():
    # f(θ) = ½ Σ h θ², ∇f = h θ, so θ_k = (1 - lr h)^k θ_0
    h = np.array([0.5, 1.0, 4.0, 15.0])
    theta0 = np.array([1.0, -2.0, 0.5, 3.0])
    p = Param(theta0)
    opt = optim.SGD([p], lr=0.1)
    for k in range(1, 21):
        p.grad = h * p.data
        opt.step()
        assert_close(p.data, (1 - 0.1 * h) ** k * theta0, rtol=1e-10, what=f"SGD θ after step {k}")


def test_sgd_weight_decay_is_an_l2_term():
    # weight decay λ adds λθ to the gradient: θ_k = (1 - lr (h + λ))^k θ_0
    h = np.array([0.5, 2.0, 6.0])
    theta0 = np.array([1.0, -1.0, 2.0])
    p = Param(theta0)
    opt = optim.SGD([p], lr=0.05, weight_decay=0.3)
    for k in range(1, 16):
        p.grad = h * p.data
        opt.step()
        assert_close(p.data, (1 - 0.05 * (h + 0.3)) ** k * theta0, rtol=1e-10,
                     what=f"SGD(weight_decay=0.3) θ after step {k}")


def test_sgd_reads_lr_at_every_step():
    h, theta0 = np.array([1.0, 3.0]), np.array([2.0, -1.0])
    p = Param(theta0)
    opt = optim.SGD([p], lr=0.1)
    expected = theta0.copy()
    for lr in [0.1, 0.1, 0.05, 0.0, 0.2]:
        opt.lr = lr
        p.grad = h * p.data
        opt.step()
        expected = (1 - lr * h) * expected
        assert_close(p.data, expected, rtol=1e-12, what=f"SGD θ after a step with opt.lr = {lr}")


def test_momentum_two_steps_by_hand():
    g1, g2 = np.array([1.0, -2.0, 0.5]), np.array([0.5, 1.0, -1.0])
    theta0 = np.array([0.3, 0.1, -0.2])
    lr, mu = 0.1, 0.9
    p = Param(theta0, grad=g1)
    opt = optim.SGD([p], lr=lr, momentum=mu)
    opt.step()                                           # b1 = g1 (not (1-μ) g1, not μ·0 + g1 scaled)
    theta1 = theta0 - lr * g1
    assert_close(p.data, theta1, rtol=1e-12, what="momentum SGD θ after step 1 (buffer b = g1)")
    p.grad = g2.copy()
    opt.step()                                           # b2 = μ g1 + g2
    assert_close(p.data, theta1 - lr * (mu * g1 + g2), rtol=1e-12,
                 what="momentum SGD θ after step 2 (buffer b = μ·g1 + g2)")


def test_nesterov_two_steps_by_hand():
    g1, g2 = np.array([1.0, -2.0, 0.5]), np.array([0.5, 1.0, -1.0])
    theta0 = np.array([0.3, 0.1, -0.2])
    lr, mu = 0.1, 0.9
    p = Param(theta0, grad=g1)
    opt = optim.SGD([p], lr=lr, momentum=mu, nesterov=True)
    opt.step()                                           # b1 = g1, step along g1 + μ b1
    theta1 = theta0 - lr * (g1 + mu * g1)
    assert_close(p.data, theta1, rtol=1e-12, what="Nesterov SGD θ after step 1 (step along g1 + μ·b1)")
    p.grad = g2.copy()
    opt.step()                                           # b2 = μ g1 + g2, step along g2 + μ b2
    b2 = mu * g1 + g2
    assert_close(p.data, theta1 - lr * (g2 + mu * b2), rtol=1e-12,
                 what="Nesterov SGD θ after step 2 (step along g2 + μ·b2)")


@pytest.mark.parametrize("nesterov", [False, True], ids=["momentum", "nesterov"])
def test_momentum_buffer_is_its_own_array(nesterov):
    # A training loop zeroes the gradient in place (zero_grad(set_to_none=False)) and backward
    # then adds into that same array. A buffer that *is* the gradient array (b = g1 instead of a
    # copy) is wiped by the zero_grad, and step 2 no longer uses b2 = μ·g1 + g2.
    g1, g2 = np.array([1.0, -2.0, 0.5]), np.array([0.5, 1.0, -1.0])
    theta0 = np.array([0.3, 0.1, -0.2])
    lr, mu = 0.1, 0.9
    p = Param(theta0, grad=g1)
    grad_array = p.grad
    opt = optim.SGD([p], lr=lr, momentum=mu, nesterov=nesterov)
    opt.step()
    buf = opt.state[0].get("momentum_buffer")
    assert buf is not None, f"after one step the state should hold 'momentum_buffer', got {sorted(opt.state[0])}"
    assert not np.shares_memory(buf, grad_array), \
        "the momentum buffer shares memory with p.grad: store a copy of the first gradient"
    theta1 = theta0 - lr * ((1 + mu) * g1 if nesterov else g1)
    opt.zero_grad(set_to_none=False)               # zeroes p.grad in place ...
    p.grad += g2                                   # ... and the next backward accumulates into it
    opt.step()
    b2 = mu * g1 + g2
    direction = g2 + mu * b2 if nesterov else b2
    kind = "Nesterov" if nesterov else "momentum"
    assert_close(p.data, theta1 - lr * direction, rtol=1e-12,
                 what=f"{kind} SGD θ after zero_grad(set_to_none=False) and step 2 (buffer b2 = μ·g1 + g2)")
    assert_close(p.grad, g2, rtol=0, atol=0, what="p.grad after step 2 (the step must not modify it)")


def test_momentum_on_a_constant_gradient_builds_up_to_g_over_one_minus_mu():
    # b_k = g (1 - μ^k) / (1 - μ)  ->  θ_k = θ_0 - lr g Σ_{j=1..k} (1 - μ^j) / (1 - μ)
    g = np.array([1.0, -0.5, 2.0])
    lr, mu = 0.01, 0.9
    p = Param(np.zeros(3))
    opt = optim.SGD([p], lr=lr, momentum=mu)
    total = 0.0
    for k in range(1, 51):
        p.grad = g.copy()
        opt.step()
        total += (1 - mu ** k) / (1 - mu)
        assert_close(p.data, -lr * g * total, rtol=1e-10,
                     what=f"momentum SGD θ after {k} steps of a constant gradient")


# ----------------------------------------------------------------------- RMSprop by hand

def test_rmsprop_first_step_puts_eps_outside_the_square_root():
    # s1 = (1-α) g², θ1 = θ0 - lr g / (√s1 + ε). Tiny gradients make ε matter:
    # ε inside the root, sqrt(s1 + ε), would give a step a thousand times smaller.
    g = np.array([1e-8, -3e-8, 2.0, -0.5])
    theta0 = np.array([1.0, 2.0, 3.0, 4.0])
    lr, alpha, eps = 0.01, 0.99, 1e-8
    p = Param(theta0, grad=g)
    optim.RMSprop([p], lr=lr, alpha=alpha, eps=eps).step()
    expected = theta0 - lr * g / (np.sqrt((1 - alpha) * g * g) + eps)
    assert_close(p.data, expected, rtol=1e-12, atol=0, what="RMSprop θ after step 1")


def test_rmsprop_momentum_two_steps_by_hand():
    g1, g2 = np.array([0.2, -1.0]), np.array([0.4, 0.5])
    theta0 = np.array([1.0, -1.0])
    lr, alpha, eps, mu = 0.01, 0.9, 1e-8, 0.8
    p = Param(theta0, grad=g1)
    opt = optim.RMSprop([p], lr=lr, alpha=alpha, eps=eps, momentum=mu)
    opt.step()
    s1 = (1 - alpha) * g1 ** 2
    b1 = g1 / (np.sqrt(s1) + eps)
    theta1 = theta0 - lr * b1
    assert_close(p.data, theta1, rtol=1e-12, what="RMSprop(momentum) θ after step 1")
    p.grad = g2.copy()
    opt.step()
    s2 = alpha * s1 + (1 - alpha) * g2 ** 2
    b2 = mu * b1 + g2 / (np.sqrt(s2) + eps)
    assert_close(p.data, theta1 - lr * b2, rtol=1e-12, what="RMSprop(momentum) θ after step 2")


# -------------------------------------------------------------------------- Adam by hand

def test_adam_first_step_is_lr_times_the_sign_of_the_gradient():
    # with bias correction m̂1 = g and v̂1 = g², so θ1 = θ0 - lr g / (|g| + ε) ≈ θ0 - lr sign(g),
    # whatever the gradient's scale. Without bias correction the step would be ~3x larger.
    g = np.array([1e-3, -2.0, 50.0, -1e3, 0.3])
    theta0 = np.array([0.5, -0.5, 1.0, 2.0, 0.0])
    lr, eps = 0.01, 1e-8
    p = Param(theta0, grad=g)
    optim.Adam([p], lr=lr, eps=eps).step()
    assert_close(p.data, theta0 - lr * g / (np.abs(g) + eps), rtol=1e-10,
                 what="Adam θ after step 1 (θ0 - lr·g/(|g| + eps))")


def test_adam_on_a_constant_gradient_moves_lr_per_step():
    # a constant gradient gives m̂_t = g and v̂_t = g² at every t (bias correction is exact)
    g = np.array([0.01, -4.0, 300.0])
    lr, eps = 0.05, 1e-8
    p = Param(np.zeros(3))
    opt = optim.Adam([p], lr=lr, betas=(0.7, 0.95), eps=eps)
    for k in range(1, 31):
        p.grad = g.copy()
        opt.step()
        assert_close(p.data, -k * lr * g / (np.abs(g) + eps), rtol=1e-9,
                     what=f"Adam θ after {k} steps of a constant gradient")


def test_adam_step_count_is_per_parameter():
    # a parameter that gets its first gradient at step 4 is bias-corrected with t = 1
    a, b = Param([1.0, 2.0]), Param([3.0, -3.0])
    opt = optim.Adam([a, b], lr=0.1)
    for _ in range(3):
        a.grad, b.grad = np.array([0.5, -0.5]), None
        opt.step()
    assert_close(b.data, np.array([3.0, -3.0]), rtol=0, atol=0,
                 what="parameter with grad None during the first 3 steps")
    b.grad = np.array([2.0, 7.0])
    a.grad = np.array([0.5, -0.5])
    opt.step()
    assert_close(b.data, np.array([3.0, -3.0]) - 0.1 * np.array([2.0, 7.0]) / (np.array([2.0, 7.0]) + 1e-8),
                 rtol=1e-10, what="its first real step (bias correction with its own t = 1)")


def test_adamw_on_a_zero_gradient_shrinks_by_one_minus_lr_lambda_per_step():
    theta0 = np.array([1.0, -2.0, 0.5])
    lr, lam = 0.1, 0.2
    p = Param(theta0)
    opt = optim.AdamW([p], lr=lr, weight_decay=lam)
    for k in range(1, 11):
        p.grad = np.zeros(3)
        opt.step()
        assert_close(p.data, (1 - lr * lam) ** k * theta0, rtol=1e-12,
                     what=f"AdamW θ after {k} steps with zero gradient ((1 - lr·λ)^k θ0)")


def test_adamw_decays_before_the_adam_step():
    # θ1 = θ0 (1 - lr λ) - lr g / (|g| + ε): the decay uses θ0, and g is the raw gradient
    theta0, g = np.array([2.0, -1.0, 0.5]), np.array([0.3, 0.3, -4.0])
    lr, lam, eps = 0.1, 0.5, 1e-8
    p = Param(theta0, grad=g)
    optim.AdamW([p], lr=lr, weight_decay=lam, eps=eps).step()
    assert_close(p.data, theta0 * (1 - lr * lam) - lr * g / (np.abs(g) + eps), rtol=1e-12,
                 what="AdamW θ after step 1 (θ0·(1 - lr·λ) - lr·g/(|g| + eps))")


def test_adam_l2_decay_is_not_the_same_as_adamw():
    # Adam's L2 term λθ goes through the normalisation: with a zero loss gradient the first
    # step is lr·λθ/(λ|θ| + ε) ≈ lr·sign(θ), the same for every weight, large or small.
    theta0 = np.array([1.0, -2.0, 0.5])
    lr, lam, eps = 0.1, 0.2, 1e-8
    p = Param(theta0, grad=np.zeros(3))
    optim.Adam([p], lr=lr, weight_decay=lam, eps=eps).step()
    assert_close(p.data, theta0 - lr * lam * theta0 / (lam * np.abs(theta0) + eps), rtol=1e-10,
                 what="Adam(weight_decay=λ) θ after one step with zero loss gradient")
    q = Param(theta0, grad=np.zeros(3))
    optim.AdamW([q], lr=lr, weight_decay=lam, eps=eps).step()
    assert_close(q.data, (1 - lr * lam) * theta0, rtol=1e-12,
                 what="AdamW(weight_decay=λ) θ after one step with zero loss gradient")


@settings(deadline=None, max_examples=25)
@given(scale=st.floats(1e-3, 1e3), seed=st.integers(0, 2**16))
def test_adam_is_invariant_to_the_scale_of_the_gradient(scale, seed):
    rng = np.random.default_rng(seed)
    grads = rng.normal(size=(6, 4))
    theta0 = rng.normal(size=4)
    p, q = Param(theta0), Param(theta0)
    opt_p = optim.Adam([p], lr=0.01, eps=0.0)
    opt_q = optim.Adam([q], lr=0.01, eps=0.0)
    for g in grads:
        p.grad, q.grad = g.copy(), scale * g
        opt_p.step()
        opt_q.step()
    assert_close(q.data, p.data, rtol=1e-9, atol=1e-12,
                 what=f"Adam (eps=0) θ with gradients scaled by {scale:g} vs unscaled")
    assert not np.array_equal(p.data, theta0), "Adam did not move the parameter"


# ------------------------------------------------------------- rules every optimiser keeps

ALL = {
    "sgd": ("SGD", dict(lr=0.1, weight_decay=0.1)),
    "momentum": ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.1)),
    "nesterov": ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)),
    "rmsprop": ("RMSprop", dict(lr=0.01, momentum=0.5, weight_decay=0.1)),
    "adam": ("Adam", dict(lr=0.01, weight_decay=0.1)),
    "adamw": ("AdamW", dict(lr=0.01, weight_decay=0.1)),
}


@pytest.mark.parametrize("case", list(ALL))
def test_step_updates_data_in_place_and_leaves_grad_alone(case):
    name, kwargs = ALL[case]
    p = Param([[1.0, -2.0], [0.5, 3.0]], grad=[[0.1, 0.2], [-0.3, 0.4]])
    data, grad = p.data, p.grad
    row_view = data[0]                      # a layer holding a view must see the update
    grad_before = grad.copy()
    opt = getattr(optim, name)([p], **kwargs)
    opt.step()
    assert p.data is data, f"{case}: step() replaced p.data with a new array; update it in place"
    assert not np.allclose(row_view, [1.0, -2.0]), f"{case}: step() did not change the parameter"
    assert p.grad is grad, f"{case}: step() replaced p.grad"
    assert_close(p.grad, grad_before, rtol=0, atol=0,
                 what=f"{case}: p.grad after step() (the gradient must not be modified)")


@pytest.mark.parametrize("case", list(ALL))
def test_step_skips_parameters_without_gradient(case):
    name, kwargs = ALL[case]
    a = Param([1.0, 2.0], grad=[0.5, -0.5])
    b = Param([3.0, -4.0])                  # grad None: weight decay must not touch it either
    opt = getattr(optim, name)([a, b], **kwargs)
    for _ in range(3):
        opt.step()
    assert_close(b.data, np.array([3.0, -4.0]), rtol=0, atol=0,
                 what=f"{case}: parameter whose grad is None")
    assert not np.allclose(a.data, [1.0, 2.0]), f"{case}: the parameter with a gradient did not move"


@pytest.mark.parametrize("case", list(CASES))
def test_float32_parameters_stay_float32(case):
    name, kwargs = CASES[case]
    ours64, _ = run_ours(name, kwargs, steps=20)
    ours32, _ = run_ours(name, kwargs, steps=20, dtype=np.float32)
    for k, ((w32, r32), (w64, r64)) in enumerate(zip(ours32, ours64), start=1):
        assert w32.dtype == np.float32 and r32.dtype == np.float32, (
            f"{case}: after step {k} the parameters are {w32.dtype}/{r32.dtype}, expected float32")
        assert_close(w32, w64, rtol=1e-3, atol=1e-4, what=f"{case}: float32 W vs float64 W after step {k}")
        assert_close(r32, r64, rtol=1e-3, atol=1e-4, what=f"{case}: float32 r vs float64 r after step {k}")


# ------------------------------------------------------------------------------- zero_grad

def test_zero_grad_sets_gradients_to_none_by_default():
    a, b, c = Param([1.0], grad=[2.0]), Param([1.0, 2.0], grad=[3.0, 4.0]), Param([5.0])
    optim.SGD([a, b, c], lr=0.1).zero_grad()
    assert (a.grad, b.grad, c.grad) == (None, None, None), (
        f"zero_grad() should set every grad to None, got {a.grad!r}, {b.grad!r}, {c.grad!r}")


def test_zero_grad_without_set_to_none_zeroes_in_place():
    a, c = Param([1.0, 2.0], grad=[3.0, 4.0]), Param([5.0])
    g = a.grad
    optim.Adam([a, c], lr=0.1).zero_grad(set_to_none=False)
    assert a.grad is g, "zero_grad(set_to_none=False) must zero the existing array, not replace it"
    assert_close(a.grad, np.zeros(2), rtol=0, atol=0, what="grad after zero_grad(set_to_none=False)")
    assert c.grad is None, "a grad that was None should stay None"
