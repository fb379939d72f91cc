"""Topic 38: discretising a diagonal SSM — zero-order hold against the exact solution of the ODE,
Mamba's simplified B̄ ≈ ΔB and how far it is from ZOH."""

import numpy as np

from dlfs.ssm import discretize as dz
from dlfs.testing import assert_close


def rk4_step_solution(A, B, x, delta, h0, steps=2000):
    """h' = A h + B x (A diagonal, x constant) integrated over [0, Δ] with RK4: (D, N) arrays."""
    h = h0.copy()
    dt = delta[:, None] / steps
    f = lambda h: A * h + B[None, :] * x[:, None]
    for _ in range(steps):
        k1 = f(h); k2 = f(h + dt / 2 * k1); k3 = f(h + dt / 2 * k2); k4 = f(h + dt * k3)
        h = h + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return h


def setup(seed=0, D=3, N=4):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0.05, 0.8, D), -rng.uniform(0.5, 3.0, (D, N)), rng.standard_normal(N),
            rng.standard_normal(D), rng.standard_normal((D, N)))


def test_zoh_is_the_exact_solution_for_a_held_input():
    delta, A, B, x, h0 = setup()
    A_bar, B_bar = dz.discretize_zoh(delta, A, B)
    assert A_bar.shape == B_bar.shape == (3, 4)
    got = A_bar * h0 + B_bar * x[:, None]
    assert_close(got, rk4_step_solution(A, B, x, delta, h0), rtol=1e-9, atol=1e-11,
                 what="Ā h + B̄ x (ZOH) against the ODE integrated over Δ")
    assert_close(A_bar, np.exp(delta[:, None] * A), rtol=1e-12, what="Ā = exp(ΔA)")


def test_zoh_with_leading_axes_and_at_a_zero():
    rng = np.random.default_rng(1)
    delta = rng.uniform(0.1, 1.0, (2, 5, 3))
    A = -rng.uniform(0.5, 2.0, (3, 4))
    A[1, 2] = 0.0                                   # a pure integrator: B̄ = ΔB exactly
    B = rng.standard_normal((2, 5, 4))
    A_bar, B_bar = dz.discretize_zoh(delta, A, B)
    assert A_bar.shape == B_bar.shape == (2, 5, 3, 4)
    assert np.all(np.isfinite(B_bar)), "B̄ must be finite where A = 0"
    expected = (np.exp(delta[..., None] * A) - 1) / np.where(A == 0, 1, A) * B[..., None, :]
    expected[..., 1, 2] = delta[..., 1] * B[..., 2]
    assert_close(B_bar, expected, rtol=1e-10, atol=1e-14, what="ZOH B̄ (limit ΔB where A = 0)")


def test_simplified_discretisation_and_its_error_against_zoh():
    delta, A, B, _, _ = setup(2)
    A_bar, B_bar = dz.discretize_simplified(delta, A, B)
    assert_close(A_bar, np.exp(delta[:, None] * A), rtol=1e-12, what="simplified Ā = exp(ΔA)")
    assert_close(B_bar, delta[:, None] * B[None, :], rtol=1e-12, what="simplified B̄ = ΔB")
    # ΔB is ZOH's first-order term: the gap shrinks like Δ² (÷4 when Δ halves)
    gaps = []
    for scale in (0.1, 0.05):
        _, zoh = dz.discretize_zoh(scale * delta, A, B)
        _, simple = dz.discretize_simplified(scale * delta, A, B)
        gaps.append(np.abs(zoh - simple).max())
    assert 3.6 < gaps[0] / gaps[1] < 4.4, f"halving Δ should divide the gap by ~4, got {gaps[0] / gaps[1]:.3f}"
