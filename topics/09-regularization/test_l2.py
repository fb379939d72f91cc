"""Topic 09: the L2 penalty, its gradient, and how it relates to weight decay.

With plain SGD, adding (λ/2)‖θ‖² to the loss and decaying the weights by (1 - lr λ) are the
same update. With Adam they are not: the L2 gradient goes through Adam's normalisation,
AdamW's decoupled decay does not.
"""

import numpy as np
import pytest

from dlfs.nn import regularization as reg
from dlfs.nn.layers import Parameter
from dlfs.optim.optimizers import SGD, Adam, AdamW
from dlfs.testing import assert_close, check_gradients

LAM = 0.03


def make_params(seed=0):
    rng = np.random.default_rng(seed)
    return [Parameter(rng.normal(size=(4, 3)), name="W"), Parameter(rng.normal(size=(5,)), name="b")]


def test_l2_penalty_value_is_half_lambda_times_sum_of_squares():
    w = Parameter(np.array([[1.0, -2.0], [3.0, 0.5]]))
    b = Parameter(np.array([-1.0, 2.0, 0.0]))
    # (1 + 4 + 9 + 0.25) + (1 + 4) = 19.25
    got = reg.l2_penalty([w, b], 0.1)
    assert got == pytest.approx(0.5 * 0.1 * 19.25, rel=1e-12), (
        f"expected λ/2 Σθ² = {0.5 * 0.1 * 19.25}, got {got}")


def test_add_l2_grad_is_the_gradient_of_l2_penalty():
    params = make_params()
    for p in params:
        p.zero_grad()
    reg.add_l2_grad(params, LAM)
    check_gradients(lambda: np.asarray(reg.l2_penalty(params, LAM)),
                    {p.name: p.data for p in params}, {p.name: p.grad for p in params})


def test_add_l2_grad_accumulates_into_existing_gradients():
    params = make_params()
    rng = np.random.default_rng(1)
    before = [rng.normal(size=p.shape) for p in params]
    for p, g in zip(params, before):
        p.grad = g.copy()
    grad_objects = [p.grad for p in params]
    reg.add_l2_grad(params, LAM)
    for p, g, obj in zip(params, before, grad_objects):
        assert_close(p.grad, g + LAM * p.data, rtol=1e-12, what=f"{p.name}.grad after add_l2_grad")
        assert p.grad is obj, "add_l2_grad must add in place (+=) into the existing gradient array"


def test_add_l2_grad_creates_the_gradient_when_it_is_none():
    params = make_params()
    for p in params:
        p.grad = None                   # what an optimiser's zero_grad(set_to_none=True) leaves
    reg.add_l2_grad(params, LAM)
    for p in params:
        assert p.grad is not None, f"{p.name}.grad is still None after add_l2_grad"
        assert_close(p.grad, LAM * p.data, rtol=1e-12, what=f"{p.name}.grad")


# -- L2 versus weight decay -----------------------------------------------------------------
# Data loss: ½‖A θ - c‖², gradient Aᵀ(A θ - c).
_rng = np.random.default_rng(7)
A = _rng.normal(size=(6, 4))
c = _rng.normal(size=6)
THETA0 = _rng.normal(size=4)


def data_grad(theta):
    return A.T @ (A @ theta - c)


def run(opt_cls, steps=25, l2=0.0, **kwargs):
    """Trajectory of θ; ``l2`` > 0 adds the L2 gradient with add_l2_grad before each step."""
    p = Parameter(THETA0.copy())
    opt = opt_cls([p], **kwargs)
    traj = []
    for _ in range(steps):
        p.grad = data_grad(p.data)
        if l2:
            reg.add_l2_grad([p], l2)
        opt.step()
        traj.append(p.data.copy())
    return np.array(traj)


def test_with_sgd_l2_and_decoupled_weight_decay_coincide():
    lr, lam = 0.05, 0.2
    with_l2 = run(SGD, l2=lam, lr=lr)
    # decoupled decay by hand: shrink θ by (1 - lr λ), then the plain gradient step
    theta = THETA0.copy()
    decoupled = []
    for _ in range(25):
        g = data_grad(theta)
        theta = theta * (1 - lr * lam) - lr * g
        decoupled.append(theta.copy())
    assert_close(with_l2, np.array(decoupled), rtol=1e-10, what="SGD + L2 vs decoupled decay trajectory")
    assert_close(with_l2, run(SGD, lr=lr, weight_decay=lam), rtol=1e-10,
                 what="SGD + add_l2_grad vs SGD(weight_decay=λ) trajectory")


def test_with_adam_l2_is_adams_weight_decay_but_not_adamw():
    lr, lam = 0.05, 0.2
    with_l2 = run(Adam, l2=lam, lr=lr)
    assert_close(with_l2, run(Adam, lr=lr, weight_decay=lam), rtol=1e-10,
                 what="Adam + add_l2_grad vs Adam(weight_decay=λ) (both are L2) trajectory")
    adamw = run(AdamW, lr=lr, weight_decay=lam)
    gap = np.abs(with_l2[-1] - adamw[-1]).max()
    assert gap > 1e-2, f"Adam + L2 and AdamW should end far apart after 25 steps, max gap {gap:.2e}"


def test_adam_normalises_away_the_strength_of_l2_but_not_of_decoupled_decay():
    """A parameter with no data gradient: only the regulariser moves it.

    Adam + L2 sees the gradient λθ and divides it by its own RMS: the first step is ≈ lr
    whatever λ is. AdamW multiplies θ by (1 - lr λ): the step is proportional to λ.
    """
    lr = 0.01
    theta0 = np.array([2.0, -3.0])
    steps_l2, steps_w = [], []
    for lam in (1e-1, 1e-3):
        p = Parameter(theta0.copy())
        opt = Adam([p], lr=lr)
        p.grad = np.zeros(2)
        reg.add_l2_grad([p], lam)
        opt.step()
        steps_l2.append(np.abs(p.data - theta0))
        q = Parameter(theta0.copy())
        optw = AdamW([q], lr=lr, weight_decay=lam)
        q.grad = np.zeros(2)
        optw.step()
        steps_w.append(np.abs(q.data - theta0))
    assert_close(steps_l2[0], np.full(2, lr), rtol=1e-5, what="first Adam + L2 step, λ = 0.1")
    assert_close(steps_l2[1], np.full(2, lr), rtol=1e-4, what="first Adam + L2 step, λ = 0.001")
    assert_close(steps_w[0], lr * 1e-1 * np.abs(theta0), rtol=1e-10, what="first AdamW step, λ = 0.1")
    assert_close(steps_w[1], lr * 1e-3 * np.abs(theta0), rtol=1e-10, what="first AdamW step, λ = 0.001")
