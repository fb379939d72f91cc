"""Topic 37 — sending tokens to experts with a fixed capacity.

Every expert processes at most ``capacity`` tokens per batch (a fixed buffer size, so that the
work per expert is bounded and static):

    capacity = ⌈capacity_factor · S · k / E⌉          S tokens, k choices each, E experts

A factor of 1 is exactly enough when the routing is perfectly balanced; tokens beyond an
expert's capacity are **dropped** for that expert: they get nothing from it (in a transformer
block the residual connection still carries them). Priority goes first to every token's first
choice, then to second choices, …; within one rank to earlier tokens (GShard, Switch).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["expert_capacity", "dispatch"]


def expert_capacity(num_tokens: int, num_experts: int, k: int = 1, capacity_factor: float = 1.25) -> int:
    """⌈capacity_factor · num_tokens · k / num_experts⌉ (at least 1)."""
    if capacity_factor <= 0:
        raise ValueError(f"capacity_factor must be positive, got {capacity_factor}")
    # BEGIN SOLUTION the balanced share of the S·k assignments times the factor, rounded up, at least 1
    return max(1, math.ceil(capacity_factor * num_tokens * k / num_experts))
    # END SOLUTION


def dispatch(idx: np.ndarray, num_experts: int, capacity: int) -> np.ndarray:
    """Which assignments fit. idx: (S, k) chosen experts -> keep: (S, k) bool.

    Assignments are taken rank by rank (all first choices, then all second choices, …), tokens
    in order within a rank; expert e keeps the first ``capacity`` assignments it receives.
    ``(~keep).sum()`` is the number of dropped assignments.
    """
    # TODO: order the assignments rank-major (idx.T.ravel()); an assignment's position in its
    #       expert's queue is the number of earlier assignments to the same expert.
    # BEGIN SOLUTION position of each assignment in its expert's queue, rank-major; keep those below capacity
    S, k = idx.shape
    flat = idx.T.ravel()                                  # rank-major order
    order = np.argsort(flat, kind="stable")               # grouped by expert, order kept within
    counts = np.bincount(flat, minlength=num_experts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.empty_like(flat)
    position[order] = np.arange(flat.size) - starts[flat[order]]
    return (position < capacity).reshape(k, S).T
    # END SOLUTION
