"""Topic 38 — discretising a diagonal continuous-time state-space model.

The continuous SSM (one input channel, state size N, A diagonal)::

    h'(t) = A h(t) + B x(t),      y(t) = C h(t)           A: (N,) the diagonal, B, C: (N,)

held at a constant input x over a step of length Δ (zero-order hold, ZOH) has the exact
solution ``h(t+Δ) = Ā h(t) + B̄ x`` with

    Ā = exp(ΔA),        B̄ = (ΔA)⁻¹ (exp(ΔA) − I) · ΔB  =  (exp(ΔA) − 1) / A · B   (A diagonal)

Mamba keeps ZOH for Ā but simplifies B̄ to its first-order (Euler) approximation
``B̄ ≈ ΔB`` (they agree to O(Δ²)). ``dlfs.ssm.scan.selective_scan`` and the Mamba block use
the simplified pair (exp(ΔA), ΔB); ``discretize_zoh`` is the exact one.

Shapes, for D channels (each its own SSM, sharing B and C as in Mamba) and any leading axes:
delta: (..., D); A: (D, N); B: (..., N)  ->  Ā, B̄: (..., D, N).
"""

from __future__ import annotations

import numpy as np

__all__ = ["discretize_zoh", "discretize_simplified"]


def discretize_zoh(delta: np.ndarray, A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zero-order hold. delta: (..., D) > 0; A: (D, N) (negative for a stable SSM); B: (..., N).

    Returns ``(A_bar, B_bar)``, both (..., D, N): ``A_bar = exp(ΔA)``,
    ``B_bar = (exp(ΔA) − 1)/(ΔA) · ΔB``. Where ΔA is 0 the factor (exp(ΔA) − 1)/(ΔA) is its
    limit, 1.
    """
    # TODO: use np.expm1 for exp(z) − 1: it keeps its precision when z is small.
    # BEGIN SOLUTION Ā = exp(ΔA); B̄ = expm1(ΔA)/(ΔA) · ΔB, with the limit 1 where ΔA = 0
    dA = delta[..., :, None] * A                                  # (..., D, N)
    A_bar = np.exp(dA)
    safe = np.where(dA == 0, 1.0, dA)
    factor = np.where(dA == 0, 1.0, np.expm1(dA) / safe)
    B_bar = factor * delta[..., :, None] * B[..., None, :]
    return A_bar, B_bar.astype(A_bar.dtype, copy=False)
    # END SOLUTION


def discretize_simplified(delta: np.ndarray, A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mamba's discretisation: ZOH for A, Euler for B. Shapes as :func:`discretize_zoh`.

    Returns ``(exp(ΔA), ΔB)`` broadcast to (..., D, N).
    """
    # BEGIN SOLUTION Ā = exp(ΔA) as in ZOH; B̄ = Δ·B
    A_bar = np.exp(delta[..., :, None] * A)
    B_bar = delta[..., :, None] * B[..., None, :]
    return A_bar, B_bar
    # END SOLUTION
