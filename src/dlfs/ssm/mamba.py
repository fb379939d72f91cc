"""Topic 38 — the Mamba block: a gated MLP around a short causal convolution and a selective SSM.

    x: (Bt, L, M) --in_proj--> [xi, z]: (Bt, L, Di) each              Di = expand·M (2·M)
    u = SiLU(causal_conv1d(xi))                                       depthwise, kernel K = 4
    [δ, B, C] = x_proj(u): (Bt, L, R), (Bt, L, N), (Bt, L, N)         R = dt_rank = ⌈M/16⌉
    Δ = softplus(dt_proj(δ)): (Bt, L, Di)                             dt_proj: R -> Di, with bias
    y = selective_scan(u, Δ, A, B, C, D)                              A = −exp(A_log): (Di, N)
    out = out_proj(y · SiLU(z)): (Bt, L, M)

as ``mamba_simple.Mamba`` of the reference implementation (Gu & Dao 2023). With
``selective=False`` Δ, B and C stop depending on the input: Δ = softplus(dt_bias) per channel,
B and C learned vectors (N,) — a time-invariant (S4-like) SSM inside the same block, for the
selective-copying comparison.

Parameters: ``in_proj.W (M, 2Di)``, ``conv_w (Di, K)``, ``conv_b (Di,)``, ``x_proj.W (Di, R+2N)``,
``dt_proj.W (R, Di)``, ``dt_proj.b (Di,)``, ``A_log (Di, N)``, ``D (Di,)``, ``out_proj.W (Di, M)``
(time-invariant: ``dt_bias (Di,)``, ``B_lti (N,)``, ``C_lti (N,)`` instead of x_proj and dt_proj).
"""

from __future__ import annotations

import math

import numpy as np

from dlfs.nn.activations import sigmoid, silu, silu_backward
from dlfs.nn.layers import Layer, Linear, Parameter
from dlfs.ssm.scan import selective_scan, selective_scan_backward

__all__ = ["softplus", "softplus_backward", "causal_conv1d", "causal_conv1d_backward", "MambaBlock"]


def softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + exp(x)) without overflow. x: any shape -> same shape and dtype, > 0."""
    # BEGIN SOLUTION a stable log(1 + e^x)
    return np.logaddexp(np.zeros((), dtype=x.dtype), x)
    # END SOLUTION


def softplus_backward(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dx = dy · sigmoid(x). dy, x: same shape."""
    # BEGIN SOLUTION the derivative of softplus is the sigmoid
    return dy * sigmoid(x)
    # END SOLUTION


def causal_conv1d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Depthwise causal convolution along time. x: (Bt, L, C); w: (C, K); b: (C,) or None.

    ``y[:, t, c] = b[c] + Σ_j w[c, j] · x[:, t − K + 1 + j, c]`` with x = 0 before t = 0: output t
    sees inputs t−K+1..t only. This is ``torch.nn.Conv1d(C, C, K, groups=C, padding=K−1)``
    on (Bt, C, L), cut to its first L outputs. Returns (Bt, L, C).
    """
    # TODO: pad K − 1 zeros in front, then add K shifted copies, each times its weight column.
    # BEGIN SOLUTION left-pad by K-1 and sum the K shifted, weighted copies
    K = w.shape[1]
    L = x.shape[1]
    xp = np.concatenate([np.zeros((x.shape[0], K - 1, x.shape[2]), dtype=x.dtype), x], axis=1)
    y = xp[:, 0:L] * w[:, 0]
    for j in range(1, K):
        y += xp[:, j:j + L] * w[:, j]
    if b is not None:
        y += b
    return y
    # END SOLUTION


def causal_conv1d_backward(dy: np.ndarray, x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`causal_conv1d`. dy: (Bt, L, C). Returns ``(dx, dw, db)``."""
    # BEGIN SOLUTION every shifted copy sends dy·w back to its inputs and dy·x to its weight
    K = w.shape[1]
    Bt, L, C = x.shape
    xp = np.concatenate([np.zeros((Bt, K - 1, C), dtype=x.dtype), x], axis=1)
    dxp = np.zeros_like(xp)
    dw = np.empty_like(w)
    for j in range(K):
        dxp[:, j:j + L] += dy * w[:, j]
        dw[:, j] = np.einsum("blc,blc->c", dy, xp[:, j:j + L])
    return dxp[:, K - 1:], dw, dy.sum(axis=(0, 1))
    # END SOLUTION


class MambaBlock(Layer):
    """One Mamba block (without the residual and norm around it). x: (Bt, L, M) -> (Bt, L, M).

    d_state N (16), expand (2: Di = 2M), d_conv K (4), dt_rank R (⌈M/16⌉). Initialised as the
    reference implementation: A = −[1, 2, …, N] in every channel (S4D-real), D = 1, Δ's bias
    such that softplus(bias) is log-uniform in [dt_min, dt_max]; Linear and the convolution as
    torch initialises them. ``parallel``: the scan (True) or the loop (False).
    """

    def __init__(self, d_model: int, d_state: int = 16, expand: int = 2, d_conv: int = 4,
                 dt_rank: int | None = None, selective: bool = True, bias: bool = False,
                 dt_min: float = 1e-3, dt_max: float = 0.1, parallel: bool = True,
                 rng: np.random.Generator | int | None = None, dtype=np.float32):
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.d_model, self.d_state, self.d_conv = int(d_model), int(d_state), int(d_conv)
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank is None else int(dt_rank)
        self.selective = bool(selective)
        self.parallel = bool(parallel)
        Di, N = self.d_inner, self.d_state
        self.in_proj = Linear(self.d_model, 2 * Di, bias=bias, rng=rng, dtype=dtype)
        bound = 1.0 / math.sqrt(self.d_conv)
        self.conv_w = Parameter(rng.uniform(-bound, bound, (Di, self.d_conv)).astype(dtype), "conv_w")
        self.conv_b = Parameter(rng.uniform(-bound, bound, Di).astype(dtype), "conv_b")
        dt = np.exp(rng.uniform(math.log(dt_min), math.log(dt_max), Di))
        dt_bias = (dt + np.log(-np.expm1(-dt))).astype(dtype)        # softplus(dt_bias) = dt
        if self.selective:
            self.x_proj = Linear(Di, self.dt_rank + 2 * N, bias=False, rng=rng, dtype=dtype)
            self.dt_proj = Linear(self.dt_rank, Di, bias=True, rng=rng, dtype=dtype)
            self.dt_proj.b.data[...] = dt_bias
        else:
            self.dt_bias = Parameter(dt_bias, "dt_bias")
            self.B_lti = Parameter(np.ones(N, dtype=dtype), "B_lti")
            self.C_lti = Parameter((rng.standard_normal(N) / math.sqrt(N)).astype(dtype), "C_lti")
        self.A_log = Parameter(np.log(np.tile(np.arange(1, N + 1, dtype=np.float64), (Di, 1))).astype(dtype), "A_log")
        self.D = Parameter(np.ones(Di, dtype=dtype), "D")
        self.out_proj = Linear(Di, self.d_model, bias=bias, rng=rng, dtype=dtype)
        self._cache: dict | None = None

    def extra_repr(self) -> str:
        return (f"{self.d_model}, d_state={self.d_state}, d_inner={self.d_inner}, d_conv={self.d_conv}, "
                f"dt_rank={self.dt_rank}, selective={self.selective}")

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (Bt, L, M) -> (Bt, L, M). Caches what backward needs."""
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"{self!r} expects input (Bt, L, {self.d_model}), got {x.shape}")
        Di, N, R = self.d_inner, self.d_state, self.dt_rank
        # TODO: time-invariant blocks broadcast softplus(dt_bias), B_lti and C_lti over (Bt, L).
        # BEGIN SOLUTION in_proj, split, conv, SiLU, Δ/B/C (selective or not), scan, gate with SiLU(z), out_proj
        xz = self.in_proj.forward(x)
        xi, z = xz[..., :Di], xz[..., Di:]
        c = causal_conv1d(xi, self.conv_w.data, self.conv_b.data)
        u = silu(c)
        Bt, L = x.shape[:2]
        if self.selective:
            p = self.x_proj.forward(u)
            dt_pre = self.dt_proj.forward(p[..., :R])
            B, C = p[..., R:R + N], p[..., R + N:]
        else:
            dt_pre = np.broadcast_to(self.dt_bias.data, (Bt, L, Di))
            B = np.broadcast_to(self.B_lti.data, (Bt, L, N))
            C = np.broadcast_to(self.C_lti.data, (Bt, L, N))
        delta = softplus(dt_pre)
        A = -np.exp(self.A_log.data)
        y, scan_cache = selective_scan(u, delta, A, B, C, self.D.data, parallel=self.parallel)
        gate = silu(z)
        self._cache = dict(xi=xi, z=z, c=c, u=u, dt_pre=dt_pre, delta=delta, A=A, B=B, C=C, y=y,
                           gate=gate, scan=scan_cache)
        return self.out_proj.forward(y * gate)
        # END SOLUTION

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy: (Bt, L, M) -> dx: (Bt, L, M); accumulates every parameter's gradient."""
        if self._cache is None:
            raise RuntimeError("MambaBlock.backward called before forward")
        k = self._cache
        # TODO: A = −exp(A_log), so dA_log = dA · A; the LTI parameters sum their gradients over (Bt, L).
        # BEGIN SOLUTION the forward's steps in reverse: out_proj, gate, scan, Δ/B/C, SiLU, conv, in_proj
        dg = self.out_proj.backward(dy)
        dyy = dg * k["gate"]
        dz = silu_backward(dg * k["y"], k["z"])
        du, ddelta, dA, dB, dC, dD = selective_scan_backward(
            dyy, k["u"], k["delta"], k["A"], k["B"], k["C"], self.D.data, k["scan"], parallel=self.parallel)
        self.D.accumulate_grad(dD)
        self.A_log.accumulate_grad(dA * k["A"])
        ddt_pre = softplus_backward(ddelta, k["dt_pre"])
        if self.selective:
            dp = np.concatenate([self.dt_proj.backward(ddt_pre), dB, dC], axis=-1)
            du = du + self.x_proj.backward(dp)
        else:
            self.dt_bias.accumulate_grad(ddt_pre.sum(axis=(0, 1)))
            self.B_lti.accumulate_grad(dB.sum(axis=(0, 1)))
            self.C_lti.accumulate_grad(dC.sum(axis=(0, 1)))
        dc = silu_backward(du, k["c"])
        dxi, dw, db = causal_conv1d_backward(dc, k["xi"], self.conv_w.data)
        self.conv_w.accumulate_grad(dw)
        self.conv_b.accumulate_grad(db)
        return self.in_proj.backward(np.concatenate([dxi, dz], axis=-1))
        # END SOLUTION
