"""Topic 38: softplus, the causal depthwise convolution and the Mamba block (selective and
time-invariant) — values against definitions, causality, finite differences and PyTorch."""

import numpy as np
import pytest

from dlfs.ssm import mamba as mb
from dlfs.testing import assert_close, check_layer, check_op
from torch_oracle import torch_or_skip


def test_softplus_values_and_gradient():
    x = np.array([-800.0, -3.0, 0.0, 2.0, 800.0])
    with np.errstate(over="raise"):
        y = mb.softplus(x)
    assert_close(y, [0.0, np.log1p(np.exp(-3.0)), np.log(2.0), np.log1p(np.exp(2.0)), 800.0],
                 rtol=1e-12, atol=1e-300, what="softplus (no overflow at ±800)")
    assert mb.softplus(x.astype(np.float32)).dtype == np.float32
    check_op(mb.softplus, lambda dy, x: mb.softplus_backward(dy, x),
             np.random.default_rng(0).standard_normal((3, 4)))


def conv_inputs(seed=0, Bt=2, L=7, C=3, K=4):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((Bt, L, C)), rng.standard_normal((C, K)), rng.standard_normal(C)


def test_causal_conv_against_its_definition():
    x, w, b = conv_inputs()
    y = mb.causal_conv1d(x, w, b)
    Bt, L, C = x.shape
    K = w.shape[1]
    expected = np.zeros_like(x)
    for t in range(L):
        for c in range(C):
            expected[:, t, c] = b[c] + sum(w[c, j] * x[:, t - K + 1 + j, c] for j in range(K) if t - K + 1 + j >= 0)
    assert_close(y, expected, rtol=1e-12, atol=1e-13, what="causal depthwise convolution")


def test_causal_conv_backward_finite_differences():
    x, w, b = conv_inputs(1)
    check_op(mb.causal_conv1d, lambda dy, x, w, b: mb.causal_conv1d_backward(dy, x, w), x, {"w": w, "b": b})


def test_causal_conv_against_torch():
    x, w, b = conv_inputs(2)

    def torch_conv(torch, x, w, b):
        out = torch.nn.functional.conv1d(x.transpose(1, 2), w[:, None, :], b, padding=w.shape[1] - 1,
                                         groups=w.shape[0])
        return out[..., :x.shape[1]].transpose(1, 2)

    check_op(mb.causal_conv1d, lambda dy, x, w, b: mb.causal_conv1d_backward(dy, x, w), x, {"w": w, "b": b},
             torch_fn=torch_conv, oracle=torch_or_skip)


def block(selective=True, seed=0, d_model=8, parallel=True):
    """A float64 block with Δ ≈ 0.5–2, slow decays and B, C three times their initial size, so
    that every gradient is large enough for finite differences to resolve it to 1e-6."""
    m = mb.MambaBlock(d_model, d_state=4, selective=selective, dt_min=0.5, dt_max=2.0, parallel=parallel,
                      rng=seed, dtype=np.float64)
    m.A_log.data[...] = np.log(np.random.default_rng(seed + 7).uniform(0.2, 1.0, m.A_log.shape))
    if selective:
        m.x_proj.W.data *= 3.0
    else:
        m.C_lti.data *= 3.0
    return m


def x_of(seed=0, shape=(2, 7, 8)):
    return np.random.default_rng(seed + 100).standard_normal(shape)


def torch_mamba(torch, x, m, **p):
    """The block written with torch ops and a plain loop over time (our layouts: W is (in, out))."""
    F = torch.nn.functional
    Di, N, R = m.d_inner, m.d_state, m.dt_rank
    Bt, L, _ = x.shape
    xz = x @ p["in_proj.W"]
    xi, z = xz[..., :Di], xz[..., Di:]
    K = p["conv_w"].shape[1]
    c = F.conv1d(xi.transpose(1, 2), p["conv_w"][:, None, :], p["conv_b"], padding=K - 1, groups=Di)
    u = F.silu(c[..., :L].transpose(1, 2))
    if m.selective:
        q = u @ p["x_proj.W"]
        delta = F.softplus(q[..., :R] @ p["dt_proj.W"] + p["dt_proj.b"])
        B, C = q[..., R:R + N], q[..., R + N:]
    else:
        delta = F.softplus(p["dt_bias"]).expand(Bt, L, Di)
        B, C = p["B_lti"].expand(Bt, L, N), p["C_lti"].expand(Bt, L, N)
    A = -torch.exp(p["A_log"])
    h = torch.zeros(Bt, Di, N, dtype=x.dtype)
    ys = []
    for t in range(L):
        h = torch.exp(delta[:, t, :, None] * A) * h + (delta[:, t] * u[:, t])[..., None] * B[:, t, None, :]
        ys.append((h * C[:, t, None, :]).sum(-1) + p["D"] * u[:, t])
    return (torch.stack(ys, 1) * F.silu(z)) @ p["out_proj.W"]


@pytest.mark.parametrize("selective", [True, False])
def test_mamba_block_finite_differences(selective):
    check_layer(block(selective), x_of(), h=1e-5)


@pytest.mark.parametrize("selective", [True, False])
def test_mamba_block_against_torch(selective):
    m = block(selective, seed=1)
    check_layer(m, x_of(1), h=1e-5, torch_fn=lambda torch, x, **p: torch_mamba(torch, x, m, **p),
                oracle=torch_or_skip)


def test_mamba_block_is_causal_and_scan_choice_does_not_matter():
    m = block(True, seed=2)
    x = x_of(2)
    y = m.forward(x)
    x2 = x.copy()
    x2[:, 4:] = np.random.default_rng(9).standard_normal(x2[:, 4:].shape)
    y2 = m.forward(x2)
    assert_close(y2[:, :4], y[:, :4], rtol=1e-12, atol=1e-14, what="outputs before t=4 when only t≥4 changes")
    assert np.abs(y2[:, 4:] - y[:, 4:]).max() > 1e-3, "outputs from t=4 on must depend on the changed inputs"
    m.parallel = False
    assert_close(m.forward(x), y, rtol=1e-11, atol=1e-13, what="loop scan vs parallel scan")


def test_mamba_block_shapes_dtype_and_bad_input():
    m = mb.MambaBlock(16, d_state=8, rng=0)
    assert (m.d_inner, m.dt_rank, m.x_proj.W.shape, m.A_log.shape) == (32, 1, (32, 1 + 16), (32, 8))
    assert_close(-np.exp(m.A_log.data[3]), -np.arange(1.0, 9.0), rtol=1e-5, what="A initialised to −[1..N]")
    dt = mb.softplus(m.dt_proj.b.data.astype(np.float64))
    assert dt.min() >= 1e-3 - 1e-9 and dt.max() <= 0.1 + 1e-9, f"initial Δ outside [1e-3, 0.1]: {dt.min()}, {dt.max()}"
    y = m.forward(np.ones((2, 5, 16), np.float32))
    assert y.shape == (2, 5, 16) and y.dtype == np.float32
    assert m.backward(np.ones_like(y)).dtype == np.float32
    with pytest.raises(ValueError, match="expects input"):
        m.forward(np.ones((2, 5, 15), np.float32))
