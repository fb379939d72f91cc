"""Topic 07 — dead ReLUs: a unit whose pre-activation is negative on every input gets exactly zero
gradient, so gradient descent can never bring it back."""

import numpy as np

from dlfs.nn import activations as A
from dlfs.nn.layers import Linear, Sequential
from dlfs.optim.optimizers import SGD


def regression_data(positive_inputs=False):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (256, 10)) if positive_inputs else rng.standard_normal((256, 10))
    t = np.sin(3 * x @ rng.standard_normal((10, 1)))
    return x, t


def two_layer(act):
    rng = np.random.default_rng(1)
    l1 = Linear(10, 64, rng=rng, dtype=np.float64)
    l2 = Linear(64, 1, rng=rng, dtype=np.float64)
    return l1, l2, Sequential(l1, act, l2)


def sgd_step(net, opt, x, target, lr):
    """One step of SGD on the mean squared error; returns the loss before the step."""
    opt.lr = lr
    opt.zero_grad()
    y = net.forward(x)
    net.backward(2 * (y - target) / len(x))
    opt.step()
    return float(np.mean((y - target) ** 2))


def test_dead_relu_fraction_counts_units_that_never_fire():
    z = np.array([[-1.0, 2.0, 0.0, -3.0, 0.5],
                  [-0.5, -1.0, 0.0, 4.0, -2.0],
                  [-2.0, -1.0, -1e-9, 1.0, -1.0]])
    # unit 0: never positive (dead); 1: fires once; 2: never above 0 (dead: relu'(0) = 0); 3, 4: fire
    assert A.dead_relu_fraction(z) == 2 / 5, f"expected 2 of 5 units dead, got {A.dead_relu_fraction(z)}"
    assert A.dead_relu_fraction(np.stack([z, -np.abs(z)])) == 2 / 5, \
        "with leading axes (..., D), a unit is dead only if it never fires on any of them"
    assert A.dead_relu_fraction(-np.abs(z)) == 1.0
    assert A.dead_relu_fraction(np.abs(z) + 1) == 0.0


def test_units_with_a_large_negative_bias_are_dead_and_never_recover():
    x, t = regression_data()
    l1, l2, net = two_layer(A.ReLU())
    assert A.dead_relu_fraction(l1.forward(x)) == 0.0, "at initialisation no unit should be dead"
    l1.b.data[:32] = -100.0                             # e.g. the result of one bad update
    assert A.dead_relu_fraction(l1.forward(x)) == 0.5, "the 32 units with bias -100 should be dead"

    opt = SGD(net.parameters(), lr=0.05)
    W_dead, b_dead = l1.W.data[:, :32].copy(), l1.b.data[:32].copy()
    first = sgd_step(net, opt, x, t, 0.05)
    assert not l1.W.grad[:, :32].any() and not l1.b.grad[:32].any(), \
        "a dead unit's incoming weights and bias must get exactly zero gradient"
    assert not l2.W.grad[:32].any(), "a dead unit outputs 0, so its outgoing weights get zero gradient too"
    assert l1.W.grad[:, 32:].any(), "the live units must get a gradient"
    for _ in range(100):
        last = sgd_step(net, opt, x, t, 0.05)
    assert np.array_equal(l1.W.data[:, :32], W_dead) and np.array_equal(l1.b.data[:32], b_dead), \
        "after 100 SGD steps the dead units' weights must be exactly unchanged"
    assert A.dead_relu_fraction(l1.forward(x)) >= 0.5, "dead units never come back"
    assert last < 0.9 * first, f"the live half should still learn: loss {first:.3f} -> {last:.3f}"

    leaky1, _, leaky = two_layer(A.LeakyReLU(0.01))
    leaky1.b.data[:32] = -100.0
    leaky.forward(x)
    leaky.backward(np.ones((len(x), 1)))
    assert np.abs(leaky1.W.grad[:, :32]).min() > 0 and np.abs(leaky1.b.grad[:32]).min() > 0, \
        "with LeakyReLU the same units still receive a (small) gradient"


def test_one_huge_update_kills_units_and_they_stay_dead():
    """Non-negative inputs (like pixels) and one batch with absurd targets: the large gradient pushes
    every live unit's pre-activation down on *all* inputs at once."""
    x, t = regression_data(positive_inputs=True)
    l1, l2, net = two_layer(A.ReLU())
    l2.W.data[...] = np.abs(l2.W.data)
    opt = SGD(net.parameters(), lr=0.05)
    for _ in range(20):
        sgd_step(net, opt, x, t, 0.05)
    before = A.dead_relu_fraction(l1.forward(x))
    sgd_step(net, opt, x, np.full_like(t, -1000.0), 0.1)      # one outlier batch
    dead = np.all(l1.forward(x) <= 0, axis=0)
    after = A.dead_relu_fraction(l1.forward(x))
    assert before <= 0.05 and after >= 0.8, f"dead fraction should jump from ~0 to most units: {before} -> {after}"
    assert after == dead.mean()
    W_dead = l1.W.data[:, dead].copy()
    fractions = [after]
    for _ in range(100):
        sgd_step(net, opt, x, t, 0.05)
        fractions.append(A.dead_relu_fraction(l1.forward(x)))
    assert all(b >= a for a, b in zip(fractions, fractions[1:])), \
        f"the dead fraction must never decrease under SGD, got {fractions}"
    assert np.array_equal(l1.W.data[:, dead], W_dead), "units dead after the spike must never change again"
