"""Topic 37 — the mixture-of-experts layer: route, dispatch, run the experts, combine.

    x: (B, T, D) -> tokens (S, D), S = B·T
    logits = x @ W_r (+ noise · N(0, 1) while training, when noise_std > 0)      (S, E)
    probs = softmax(logits);  idx, gates = top_k_gates(probs, k)                  (S, k)
    keep = dispatch(idx, E, capacity)                  capacity from capacity_factor (None: no limit)
    y[s] = Σ_{j : keep[s, j]} gates[s, j] · expert_{idx[s, j]}(x[s])              (S, D)
    aux = balance_coef · L_balance(probs, idx) + z_coef · L_z(logits)

Experts are Topic 28's ``FeedForward(D, F)``. ``forward`` returns ``(y, aux)`` (aux a 0-d
array), so the auxiliary loss is an output like any other: ``backward(dy, daux=1.0)`` adds its
gradient to the router's. A dropped assignment contributes nothing (y is 0 for a token that
all its experts dropped: the residual around the layer carries it).

The router's gradient: ``dgates[s, j] = dy[s] · expert_out[s, j]``, scattered onto probs,
through the softmax (``dlfs.nn.activations.softmax_backward``) to the logits, plus the two
auxiliary losses' gradients, then ``linear_backward`` to W_r and x.

After each forward, ``stats`` holds the tokens each expert received (``load``: (E,)), the
fraction of assignments per expert before capacity (``f``), the dropped assignments and the two
loss values.
"""

from __future__ import annotations

import numpy as np

from dlfs.moe.dispatch import dispatch, expert_capacity
from dlfs.moe.router import (load_balancing_loss, load_balancing_loss_backward, router_z_loss,
                             router_z_loss_backward, top_k_gates, top_k_gates_backward)
from dlfs.nn.activations import softmax_backward
from dlfs.nn.layers import Layer, Linear
from dlfs.numerics import softmax
from dlfs.transformer.encoder import FeedForward

__all__ = ["MoELayer"]


class MoELayer(Layer):
    """E expert MLPs ``FeedForward(D, F)``, k of them per token. x: (B, T, D) or (S, D).

    Parameters: ``router.W (D, E)`` (no bias), ``experts.<e>.linear1.W``, ``….b``,
    ``experts.<e>.linear2.W``, ``….b``.
    """

    def __init__(self, d_model: int, dim_feedforward: int, num_experts: int, k: int = 1,
                 capacity_factor: float | None = 1.25, normalize_gates: bool | None = None,
                 balance_coef: float = 0.01, z_coef: float = 0.0, noise_std: float = 0.0,
                 activation: str = "gelu", rng: np.random.Generator | int | None = None, dtype=np.float32):
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        if not 1 <= k <= num_experts:
            raise ValueError(f"k must be in [1, num_experts={num_experts}], got {k}")
        self.d_model, self.num_experts, self.k = int(d_model), int(num_experts), int(k)
        self.capacity_factor = capacity_factor
        self.normalize_gates = self.k > 1 if normalize_gates is None else bool(normalize_gates)
        self.balance_coef, self.z_coef, self.noise_std = float(balance_coef), float(z_coef), float(noise_std)
        self.router = Linear(d_model, num_experts, bias=False, rng=rng, dtype=dtype)
        self.experts = [FeedForward(d_model, dim_feedforward, activation=activation, rng=rng, dtype=dtype)
                        for _ in range(num_experts)]
        self._noise_rng = np.random.default_rng(rng.integers(2**63))
        self._cache: dict | None = None
        self.stats: dict = {}

    def extra_repr(self) -> str:
        return (f"{self.d_model}, {self.experts[0].linear1.out_features}, num_experts={self.num_experts}, "
                f"k={self.k}, capacity_factor={self.capacity_factor}")

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x: (..., D) -> (y: (..., D), aux: 0-d array). Caches what backward needs."""
        if x.shape[-1] != self.d_model:
            raise ValueError(f"{self!r} expects input (..., {self.d_model}), got {x.shape}")
        xs = x.reshape(-1, self.d_model)
        S, E = xs.shape[0], self.num_experts
        capacity = S * self.k if self.capacity_factor is None else \
            expert_capacity(S, E, self.k, self.capacity_factor)
        # TODO: remember, per expert, which tokens it ran and at which rank j, for the backward.
        # BEGIN SOLUTION route (noisy while training), top-k, dispatch, run each expert on its kept tokens, combine; aux losses
        logits = self.router.forward(xs)
        if self.noise_std > 0 and self.training:
            logits = logits + (self.noise_std * self._noise_rng.standard_normal(logits.shape)).astype(logits.dtype)
        probs = softmax(logits, axis=-1)
        idx, gates = top_k_gates(probs, self.k, self.normalize_gates)
        keep = dispatch(idx, E, capacity)
        y = np.zeros_like(xs)
        routes = []
        for e in range(E):
            tok, rank = np.nonzero((idx == e) & keep)
            if tok.size == 0:
                routes.append(None)
                continue
            out = self.experts[e].forward(xs[tok])
            y[tok] += gates[tok, rank, None] * out
            routes.append((tok, rank, out))
        balance, f = load_balancing_loss(probs, idx)
        z = router_z_loss(logits)
        aux = np.asarray(self.balance_coef * balance + self.z_coef * z, dtype=x.dtype)
        self._cache = dict(shape=x.shape, logits=logits, probs=probs, idx=idx, gates=gates, f=f, routes=routes)
        self.stats = dict(load=np.bincount(idx[keep], minlength=E), f=f, dropped=int((~keep).sum()),
                          assignments=int(keep.size), capacity=capacity, balance_loss=balance, z_loss=z)
        return y.reshape(x.shape), aux
        # END SOLUTION

    def backward(self, dy: np.ndarray, daux: float | np.ndarray = 1.0) -> np.ndarray:
        """dy: (..., D), daux: the aux output's gradient -> dx: (..., D); accumulates the
        router's and every expert's gradients."""
        if self._cache is None:
            raise RuntimeError("MoELayer.backward called before forward")
        c = self._cache
        daux = float(daux)
        # BEGIN SOLUTION per expert: dgates and the expert's backward; then gates -> probs -> logits (+ aux) -> router
        dys = dy.reshape(-1, self.d_model)
        dx = np.zeros_like(dys)
        dgates = np.zeros_like(c["gates"])
        for e, route in enumerate(c["routes"]):
            if route is None:
                continue
            tok, rank, out = route
            dgates[tok, rank] = np.einsum("sd,sd->s", dys[tok], out)
            dx[tok] += self.experts[e].backward(c["gates"][tok, rank, None] * dys[tok])
        dprobs = top_k_gates_backward(dgates, c["probs"], c["idx"], self.normalize_gates)
        dprobs = dprobs + load_balancing_loss_backward(daux * self.balance_coef, c["probs"], c["f"])
        dlogits = softmax_backward(dprobs, c["probs"], axis=-1)
        if self.z_coef:
            dlogits = dlogits + router_z_loss_backward(daux * self.z_coef, c["logits"])
        dx += self.router.backward(dlogits.astype(dys.dtype, copy=False))
        return dx.reshape(c["shape"])
        # END SOLUTION
