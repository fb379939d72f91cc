"""Topic 38 — the linear recurrence behind every SSM, its parallel scan, and Mamba's selective scan.

A discretised diagonal SSM is, per channel d and state n, the first-order linear recurrence

    h_t = a_t · h_{t-1} + b_t,        h_{-1} = h0 (0 by default)               (elementwise)

Every step is an affine map ``h -> a·h + b``, written as the pair (a, b). Applying (a₁, b₁)
then (a₂, b₂) is the pair

    (a₁, b₁) ∘ (a₂, b₂) = (a₁a₂, a₂b₁ + b₂)                                         (associative)

so the states are the prefix "sums" of the pairs under ∘, and any parallel prefix-sum
algorithm computes them. :func:`parallel_linear_recurrence` is Hillis–Steele: ⌈log₂ L⌉ rounds,
in round k every position t ≥ 2ᵏ combines its pair with the one 2ᵏ positions earlier (every
position of a round at once: depth log L, work L log L; Blelloch's up-sweep/down-sweep does
O(L) work in 2 log L rounds). After the rounds, position t holds the composition of steps
0..t: its b is h_t for h0 = 0 and its a is the product a_0⋯a_t, which carries h0 in.

Backward: with g_t = ∂L/∂h_t from outside (the output's use of h_t), the total gradient
λ_t = dL/dh_t satisfies ``λ_t = g_t + a_{t+1} λ_{t+1}``: the same recurrence run backwards in
time, so it is a reverse scan. Then ``∂L/∂b_t = λ_t`` and ``∂L/∂a_t = λ_t · h_{t-1}``.

The selective scan (Mamba's S6) builds a and b from the input at every step:

    a_t = exp(Δ_t A),  b_t = Δ_t B_t x_t   (B̄ ≈ ΔB, see dlfs.ssm.discretize),  y_t = C_t·h_t + D x_t

Shapes: x, delta: (Bt, L, Di); A: (Di, N); B, C: (Bt, L, N); D: (Di,); the states
h: (Bt, L, Di, N). Time is axis 1 everywhere.
"""

from __future__ import annotations

import numpy as np

__all__ = ["scan_combine", "linear_recurrence", "parallel_linear_recurrence",
           "linear_recurrence_backward", "selective_scan", "selective_scan_backward"]


def scan_combine(first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The scan operator: ``(a₁, b₁) ∘ (a₂, b₂) = (a₁a₂, a₂b₁ + b₂)`` — step ``first``, then
    ``second``. Arrays broadcast elementwise."""
    # BEGIN SOLUTION compose the two affine maps h -> a₁h + b₁ then h -> a₂h + b₂
    a1, b1 = first
    a2, b2 = second
    return a1 * a2, a2 * b1 + b2
    # END SOLUTION


def linear_recurrence(a: np.ndarray, b: np.ndarray, h0: np.ndarray | None = None) -> np.ndarray:
    """The definition, one step at a time. a, b: (Bt, L, ...); h0: (Bt, ...) or None (zeros).

    Returns h: (Bt, L, ...) with ``h_t = a_t·h_{t-1} + b_t``.
    """
    # BEGIN SOLUTION a Python loop over t
    h = np.empty(np.broadcast_shapes(a.shape, b.shape), dtype=np.result_type(a, b))
    prev = np.zeros_like(h[:, 0]) if h0 is None else h0
    for t in range(h.shape[1]):
        prev = a[:, t] * prev + b[:, t]
        h[:, t] = prev
    return h
    # END SOLUTION


def parallel_linear_recurrence(a: np.ndarray, b: np.ndarray, h0: np.ndarray | None = None) -> np.ndarray:
    """The same states by a Hillis–Steele scan: ⌈log₂ L⌉ vectorised rounds, no loop over t.

    a, b: (Bt, L, ...); h0: (Bt, ...) or None. Returns h: (Bt, L, ...), equal to
    :func:`linear_recurrence` up to rounding.
    """
    # TODO: in the round with offset s, position t ≥ s becomes (pair at t − s) ∘ (pair at t);
    #       compute every new value from the old ones before writing any.
    # BEGIN SOLUTION log-depth scan over axis 1 with scan_combine; then add (a_0⋯a_t)·h0
    shape = np.broadcast_shapes(a.shape, b.shape)
    dtype = np.result_type(a, b)
    A = np.array(np.broadcast_to(a, shape), dtype=dtype)
    Bv = np.array(np.broadcast_to(b, shape), dtype=dtype)
    L = shape[1]
    s = 1
    while s < L:
        A_new, B_new = scan_combine((A[:, :-s], Bv[:, :-s]), (A[:, s:], Bv[:, s:]))
        A[:, s:] = A_new
        Bv[:, s:] = B_new
        s *= 2
    if h0 is not None:
        Bv += A * h0[:, None]
    return Bv
    # END SOLUTION


def linear_recurrence_backward(dh: np.ndarray, a: np.ndarray, h: np.ndarray, h0: np.ndarray | None = None,
                               parallel: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of ``h = linear_recurrence(a, b, h0)``.

    dh: (Bt, L, ...) the gradient reaching each h_t from outside the recurrence; a, h: the
    forward's a and states; h0 as in the forward. Returns ``(da, db, dh0)``, shaped like a, h
    and h's first step. ``parallel`` runs the reverse scan with
    :func:`parallel_linear_recurrence` (else with the loop).
    """
    # TODO: λ_t = dh_t + a_{t+1} λ_{t+1} is a forward recurrence on the time-reversed arrays
    #       with the coefficients shifted by one step (a_{t+1}, and 0 after the last step).
    # BEGIN SOLUTION reverse scan for λ; db = λ, da = λ·h_{t-1}, dh0 = a_0·λ_0
    a = np.broadcast_to(a, h.shape)
    a_next = np.zeros_like(h)
    a_next[:, :-1] = a[:, 1:]
    run = parallel_linear_recurrence if parallel else linear_recurrence
    lam = run(a_next[:, ::-1], dh[:, ::-1])[:, ::-1]
    h_prev = np.empty_like(h)
    h_prev[:, 1:] = h[:, :-1]
    h_prev[:, 0] = 0 if h0 is None else h0
    return lam * h_prev, lam, a[:, 0] * lam[:, 0]
    # END SOLUTION


def selective_scan(x: np.ndarray, delta: np.ndarray, A: np.ndarray, B: np.ndarray, C: np.ndarray,
                   D: np.ndarray | None = None, parallel: bool = True) -> tuple[np.ndarray, dict]:
    """Mamba's selective SSM. x, delta: (Bt, L, Di); A: (Di, N); B, C: (Bt, L, N); D: (Di,) or None.

    ``h_t = exp(Δ_t A)·h_{t-1} + Δ_t B_t x_t`` (per channel d and state n, h_{-1} = 0),
    ``y_t = Σ_n C_t,n h_t,n + D·x_t``. Returns ``(y, cache)``: y: (Bt, L, Di); cache holds
    ``a`` (= exp(ΔA)) and ``h``, both (Bt, L, Di, N), for :func:`selective_scan_backward`.
    ``parallel`` picks the scan (else the loop).
    """
    # BEGIN SOLUTION a = exp(ΔA), b = ΔBx; scan; contract the states with C; add the skip D·x
    a = np.exp(delta[..., None] * A)
    b = (delta * x)[..., None] * B[:, :, None, :]
    h = (parallel_linear_recurrence if parallel else linear_recurrence)(a, b)
    y = np.einsum("bldn,bln->bld", h, C)
    if D is not None:
        y = y + D * x
    return y, {"a": a, "h": h}
    # END SOLUTION


def selective_scan_backward(dy: np.ndarray, x: np.ndarray, delta: np.ndarray, A: np.ndarray, B: np.ndarray,
                            C: np.ndarray, D: np.ndarray | None, cache: dict, parallel: bool = True
                            ) -> tuple[np.ndarray, ...]:
    """Gradients of :func:`selective_scan`. dy: (Bt, L, Di); the rest as the forward, with its cache.

    Returns ``(dx, ddelta, dA, dB, dC, dD)`` shaped like x, delta, A, B, C, D (dD is None
    when D is None).
    """
    # TODO: y = C·h gives dC and the outside gradient of h; the reverse scan gives da and db;
    #       a = exp(ΔA) and b = Δ·x·B each send gradient to Δ.
    # BEGIN SOLUTION dC and dh from y; da, db from the reverse scan; chain through a = exp(ΔA) and b = ΔBx
    a, h = cache["a"], cache["h"]
    dC = np.einsum("bld,bldn->bln", dy, h)
    dh = dy[..., None] * C[:, :, None, :]
    da, db, _ = linear_recurrence_backward(dh, a, h, parallel=parallel)
    da_pre = da * a                                               # ∂L/∂(ΔA)
    dA = np.einsum("bldn,bld->dn", da_pre, delta)
    db_B = np.einsum("bldn,bln->bld", db, B)                      # Σ_n db·B
    ddelta = np.einsum("bldn,dn->bld", da_pre, A) + db_B * x
    dx = db_B * delta
    dB = np.einsum("bldn,bld->bln", db, delta * x)
    dD = None
    if D is not None:
        dx = dx + dy * D
        dD = np.einsum("bld,bld->d", dy, x)
    return dx, ddelta, dA, dB, dC, dD
    # END SOLUTION
