"""Topic 37 — the router of a mixture of experts: top-k gates and the two auxiliary losses.

For S tokens (the batch and time axes flattened) and E experts, the router is a linear map
``logits = x @ W_r: (S, E)`` and ``probs = softmax(logits)`` (``dlfs.numerics.softmax``).
Each token goes to the k experts of highest probability, weighted by its gates:

    idx: (S, k) the chosen experts (best first);   gates: (S, k) = probs[s, idx]
    normalize=True: gates / Σ_k gates   (Mixtral; Switch, k = 1, keeps the raw probability)

The selection is piecewise constant in the logits: gradients flow through the gate values,
never through *which* experts were chosen (they are exact away from ties).

**Load balancing (Switch Transformer).** With f_i the fraction of the S·k assignments that
went to expert i and P_i the mean router probability of expert i over the tokens,

    L_balance = E · Σ_i f_i · P_i

It is 1 when routing is uniform and E when every token goes to one expert with probability
1. f is a count (no gradient); the gradient flows through P: ∂L/∂probs[s, i] = E·f_i / S.

**Router z-loss (ST-MoE).** ``L_z = mean_s (logsumexp_i logits[s, i])²`` keeps the logits
small (large logits make the softmax saturate and round badly in low precision):
∂L_z/∂logits[s] = 2·lse_s·softmax(logits[s]) / S.
"""

from __future__ import annotations

import numpy as np

from dlfs.numerics import logsumexp, softmax

__all__ = ["top_k_gates", "top_k_gates_backward", "load_balancing_loss", "load_balancing_loss_backward",
           "router_z_loss", "router_z_loss_backward"]


def top_k_gates(probs: np.ndarray, k: int, normalize: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """probs: (S, E) -> ``(idx, gates)``, both (S, k): the k most probable experts per token,
    best first, and their probabilities (divided by their sum when ``normalize``)."""
    if not 1 <= k <= probs.shape[-1]:
        raise ValueError(f"k must be in [1, {probs.shape[-1]}] (the number of experts), got {k}")
    # TODO: np.argpartition finds the k largest without a full sort; then order those k.
    # BEGIN SOLUTION the k largest probabilities per row, best first; normalise if asked
    part = np.argpartition(-probs, k - 1, axis=-1)[:, :k]
    order = np.argsort(-np.take_along_axis(probs, part, axis=-1), axis=-1, kind="stable")
    idx = np.take_along_axis(part, order, axis=-1)
    gates = np.take_along_axis(probs, idx, axis=-1)
    if normalize:
        gates = gates / gates.sum(axis=-1, keepdims=True)
    return idx, gates
    # END SOLUTION


def top_k_gates_backward(dgates: np.ndarray, probs: np.ndarray, idx: np.ndarray, normalize: bool = False
                         ) -> np.ndarray:
    """dgates: (S, k) -> dprobs: (S, E), zero for the experts not chosen."""
    # TODO: with g = p/Σp, dp = (dg − Σ_k dg·g) / Σp on the chosen entries.
    # BEGIN SOLUTION scatter dgates (through the normalisation when normalize) onto the chosen columns
    if normalize:
        sel = np.take_along_axis(probs, idx, axis=-1)
        total = sel.sum(axis=-1, keepdims=True)
        g = sel / total
        dgates = (dgates - (dgates * g).sum(axis=-1, keepdims=True)) / total
    dprobs = np.zeros_like(probs)
    np.put_along_axis(dprobs, idx, dgates, axis=-1)
    return dprobs
    # END SOLUTION


def load_balancing_loss(probs: np.ndarray, idx: np.ndarray) -> tuple[float, np.ndarray]:
    """Switch's balancing loss. probs: (S, E); idx: (S, k) the chosen experts.

    Returns ``(loss, f)``: loss = E · Σ_i f_i P_i, and f: (E,) the fraction of the S·k
    assignments per expert (kept for the backward and for utilisation plots).
    """
    # BEGIN SOLUTION f from the counts of idx, P the mean of probs over tokens, E · f·P
    S, E = probs.shape
    f = np.bincount(idx.ravel(), minlength=E) / idx.size
    P = probs.mean(axis=0)
    return float(E * np.dot(f, P)), f
    # END SOLUTION


def load_balancing_loss_backward(dloss: float, probs: np.ndarray, f: np.ndarray) -> np.ndarray:
    """dloss: the loss's upstream gradient (a number) -> dprobs: (S, E). f has no gradient."""
    # BEGIN SOLUTION every token's probability of expert i gets E · f_i / S
    S, E = probs.shape
    return np.broadcast_to((dloss * E / S) * f, probs.shape).astype(probs.dtype)
    # END SOLUTION


def router_z_loss(logits: np.ndarray) -> float:
    """logits: (S, E) -> mean over tokens of logsumexp(logits)² (a number)."""
    # BEGIN SOLUTION the mean squared logsumexp
    return float(np.mean(logsumexp(logits, axis=-1) ** 2))
    # END SOLUTION


def router_z_loss_backward(dloss: float, logits: np.ndarray) -> np.ndarray:
    """dloss: upstream gradient (a number) -> dlogits: (S, E) = dloss · 2·lse·softmax / S."""
    # BEGIN SOLUTION d(lse²)/dlogits = 2·lse·softmax; divide by S for the mean
    lse = logsumexp(logits, axis=-1, keepdims=True)
    return (dloss * 2.0 / logits.shape[0]) * lse * softmax(logits, axis=-1)
    # END SOLUTION
