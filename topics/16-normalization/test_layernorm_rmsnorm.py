"""Topic 16: LayerNorm and RMSNorm — per-sample statistics over the trailing axes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.nn import normalization as nm
from dlfs.testing import assert_close, check_layer
from torch_oracle import to_numpy, to_torch, torch_or_skip


def randn(*shape, seed=0, loc=0.0):
    return loc + np.random.default_rng(seed).standard_normal(shape)


def randomise(layer, seed=1):
    """Non-trivial γ (and β): the defaults ones and zeros hide mistakes."""
    rng = np.random.default_rng(seed)
    if layer.gamma is not None:
        layer.gamma.data[...] = rng.uniform(0.5, 2.0, size=layer.gamma.shape)
    if getattr(layer, "beta", None) is not None:
        layer.beta.data[...] = rng.normal(size=layer.beta.shape)
    return layer


TORCH_NAMES = {"gamma": "weight", "beta": "bias"}      # our γ, β are PyTorch's weight, bias


def torch_copy(layer, tlayer, torch):
    with torch.no_grad():
        if layer.gamma is not None:
            tlayer.weight.copy_(to_torch(layer.gamma.data))
        if getattr(layer, "beta", None) is not None:
            tlayer.bias.copy_(to_torch(layer.beta.data))
    return tlayer


def compare_with_torch(layer, tlayer, x, torch, name):
    dy = randn(*x.shape, seed=99)
    y = layer.forward(x)
    dx = layer.backward(dy)
    tx = to_torch(x, requires_grad=True)
    ty = tlayer(tx)
    ty.backward(to_torch(dy))
    assert_close(y, to_numpy(ty), rtol=1e-10, atol=1e-12, what=f"{name}: output vs torch")
    assert_close(dx, to_numpy(tx.grad), rtol=1e-8, atol=1e-11, what=f"{name}: dx vs torch")
    if layer.gamma is not None:
        assert_close(layer.gamma.grad, to_numpy(tlayer.weight.grad), rtol=1e-10, atol=1e-12,
                     what=f"{name}: dgamma vs torch")
    if getattr(layer, "beta", None) is not None:
        assert_close(layer.beta.grad, to_numpy(tlayer.bias.grad), rtol=1e-10, atol=1e-12,
                     what=f"{name}: dbeta vs torch")


# ----------------------------------------------------------------- LayerNorm

LN_CASES = [((4, 6), 6, {}), ((2, 5, 8), 8, {}), ((2, 3, 4, 5), (3, 4, 5), {}),
            ((3, 4, 5), (4, 5), dict(elementwise_affine=False)), ((3, 7), 7, dict(bias=False, eps=1e-3))]


@pytest.mark.parametrize("shape, normalized_shape, kwargs", LN_CASES, ids=str)
def test_layernorm_matches_torch(shape, normalized_shape, kwargs):
    torch = torch_or_skip()
    ln = randomise(nm.LayerNorm(normalized_shape, dtype=np.float64, **kwargs))
    tln = torch_copy(ln, torch.nn.LayerNorm(normalized_shape, **kwargs).double(), torch)
    compare_with_torch(ln, tln, randn(*shape, seed=2, loc=1.5), torch, f"LayerNorm({normalized_shape}, {kwargs})")


@pytest.mark.parametrize("shape, normalized_shape, kwargs", LN_CASES, ids=str)
def test_layernorm_backward_matches_finite_differences(shape, normalized_shape, kwargs):
    """dx, dγ and dβ against central differences (NumPy alone)."""
    check_layer(randomise(nm.LayerNorm(normalized_shape, dtype=np.float64, **kwargs)), randn(*shape, seed=3))


@pytest.mark.parametrize("shape, normalized_shape, kwargs", LN_CASES, ids=str)
def test_layernorm_backward_matches_torch(shape, normalized_shape, kwargs):
    """The same check, then torch.nn.LayerNorm with the same γ and β."""
    check_layer(randomise(nm.LayerNorm(normalized_shape, dtype=np.float64, **kwargs)), randn(*shape, seed=3),
                torch_layer=lambda torch: torch.nn.LayerNorm(normalized_shape, **kwargs),
                param_map=TORCH_NAMES, oracle=torch_or_skip)


def test_layernorm_standardises_each_sample_over_the_trailing_axes():
    ln = nm.LayerNorm((3, 4), eps=1e-12, dtype=np.float64)
    x = randn(2, 5, 3, 4, seed=5, loc=4.0) * np.arange(1, 6).reshape(1, 5, 1, 1)
    y = ln.forward(x)
    assert_close(y.mean(axis=(2, 3)), np.zeros((2, 5)), atol=1e-12, what="mean of each sample's (3, 4) block")
    assert_close(y.var(axis=(2, 3)), np.ones((2, 5)), rtol=1e-9, what="variance of each sample's (3, 4) block")
    assert_close(ln.forward(x[1:, 2:3]), y[1:, 2:3], rtol=1e-12, atol=1e-12,
                 what="output of one sample alone (LayerNorm does not look at the batch)")
    ln.eval()
    assert_close(ln.forward(x), y, rtol=0, atol=0, what="eval output (no running statistics: same as training)")


def test_layernorm_accumulates_gradients_and_keeps_float32():
    ln = randomise(nm.LayerNorm(5))
    x = randn(4, 5, seed=6).astype(np.float32)
    dy = randn(4, 5, seed=7).astype(np.float32)
    y = ln.forward(x)
    assert y.dtype == np.float32, f"expected float32 output, got {y.dtype}"
    dx = ln.backward(dy)
    assert dx.dtype == np.float32 and ln.gamma.grad.dtype == np.float32, "gradients must stay float32"
    assert_close(ln.beta.grad, dy.sum(axis=0), rtol=1e-5, what="beta.grad (= Σ dy over the leading axes)")
    g1 = ln.gamma.grad.copy()
    ln.backward(dy)
    assert_close(ln.gamma.grad, 2 * g1, rtol=1e-6, what="gamma.grad after two backward calls (+=)")


def test_layernorm_rejects_the_wrong_trailing_shape():
    ln = nm.LayerNorm((3, 4), dtype=np.float64)
    x = randn(2, 3, 4, seed=8, loc=2.0)
    assert_close(ln.forward(x).mean(axis=(1, 2)), np.zeros(2), atol=1e-12, what="per-sample output mean")
    with pytest.raises(ValueError):
        ln.forward(randn(2, 4, 3))
    with pytest.raises(ValueError):
        ln.forward(randn(4))


# ----------------------------------------------------------------- RMSNorm

RMS_CASES = [((4, 6), 6, dict(eps=1e-6)), ((2, 5, 8), 8, {}), ((2, 3, 4), (3, 4), dict(eps=1e-3)),
             ((3, 5), 5, dict(elementwise_affine=False))]


@pytest.mark.parametrize("shape, normalized_shape, kwargs", RMS_CASES, ids=str)
def test_rmsnorm_matches_torch(shape, normalized_shape, kwargs):
    torch = torch_or_skip()
    rms = randomise(nm.RMSNorm(normalized_shape, dtype=np.float64, **kwargs))
    trms = torch_copy(rms, torch.nn.RMSNorm(normalized_shape, **kwargs).double(), torch)
    compare_with_torch(rms, trms, randn(*shape, seed=9, loc=1.0), torch, f"RMSNorm({normalized_shape}, {kwargs})")


@pytest.mark.parametrize("shape, normalized_shape, kwargs", RMS_CASES, ids=str)
def test_rmsnorm_backward_matches_finite_differences(shape, normalized_shape, kwargs):
    """dx and dγ against central differences (NumPy alone)."""
    check_layer(randomise(nm.RMSNorm(normalized_shape, dtype=np.float64, **kwargs)), randn(*shape, seed=10, loc=0.5))


@pytest.mark.parametrize("shape, normalized_shape, kwargs", RMS_CASES, ids=str)
def test_rmsnorm_backward_matches_torch(shape, normalized_shape, kwargs):
    """The same check, then torch.nn.RMSNorm with the same γ."""
    check_layer(randomise(nm.RMSNorm(normalized_shape, dtype=np.float64, **kwargs)),
                randn(*shape, seed=10, loc=0.5),
                torch_layer=lambda torch: torch.nn.RMSNorm(normalized_shape, **kwargs),
                param_map=TORCH_NAMES, oracle=torch_or_skip)


def test_rmsnorm_divides_by_the_root_mean_square_without_centring():
    rms = randomise(nm.RMSNorm(6, eps=1e-6, dtype=np.float64))
    x = randn(3, 6, seed=12, loc=3.0)
    y = rms.forward(x)
    assert_close(y, x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-6) * rms.gamma.data, rtol=1e-12,
                 what="RMSNorm output x / √(mean(x²) + eps) · γ")
    unit = nm.RMSNorm(6, eps=1e-12, elementwise_affine=False, dtype=np.float64).forward(x)
    assert_close(np.mean(unit ** 2, axis=-1), np.ones(3), rtol=1e-9, what="mean square of each normalised row")
    assert np.all(unit.mean(axis=-1) > 0.5), "RMSNorm keeps the mean: x ≈ 3 + noise stays positive"


def test_rmsnorm_default_eps_is_the_machine_epsilon_of_the_input_dtype():
    """eps=None (torch's default) means finfo(x.dtype).eps: it matters for inputs of tiny scale."""
    x32 = (1e-4 * randn(2, 8, seed=13)).astype(np.float32)
    rms = nm.RMSNorm(8, elementwise_affine=False)
    eps32 = float(np.finfo(np.float32).eps)
    x64 = x32.astype(np.float64)
    expected = x64 / np.sqrt(np.mean(x64 * x64, axis=-1, keepdims=True) + eps32)
    y = rms.forward(x32)
    assert y.dtype == np.float32, f"expected float32 output, got {y.dtype}"
    assert_close(y, expected, rtol=1e-4, atol=1e-6, what="float32 RMSNorm with eps = finfo(float32).eps")
    y64 = rms.forward(x64)
    assert_close(np.mean(y64 ** 2, axis=-1), np.ones(2), rtol=1e-6,
                 what="float64 mean square (eps = finfo(float64).eps is negligible here)")


def test_rmsnorm_rejects_the_wrong_trailing_shape_and_accumulates():
    rms = randomise(nm.RMSNorm(4, eps=1e-6, dtype=np.float64))
    x = randn(3, 4, seed=14)
    dy = randn(3, 4, seed=15)
    rms.forward(x)
    rms.backward(dy)
    x_hat = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-6)
    assert_close(rms.gamma.grad, (dy * x_hat).sum(axis=0), rtol=1e-10, what="gamma.grad (= Σ dy·x̂)")
    rms.backward(dy)
    assert_close(rms.gamma.grad, 2 * (dy * x_hat).sum(axis=0), rtol=1e-10, what="gamma.grad after two backward calls")
    with pytest.raises(ValueError):
        rms.forward(randn(4, 3))


# ----------------------------------------------------------------- properties

@settings(deadline=None, max_examples=30)
@given(st.integers(1, 3), st.integers(2, 6), st.integers(0, 2**32 - 1), st.floats(-50, 50), st.floats(0.1, 10))
def test_layernorm_ignores_per_sample_shift_and_scale_and_rmsnorm_per_sample_scale(n, d, seed, shift, scale):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3, d))
    shifts = shift * rng.uniform(0.5, 1.5, size=(n, 3, 1))
    scales = scale * rng.uniform(0.5, 1.5, size=(n, 3, 1))
    ln = randomise(nm.LayerNorm(d, eps=1e-14, dtype=np.float64), seed)
    assert_close(ln.forward(scales * x + shifts), ln.forward(x), rtol=1e-6, atol=1e-6,
                 what="LayerNorm of a per-sample shifted and scaled input")
    rms = randomise(nm.RMSNorm(d, eps=1e-14, dtype=np.float64), seed)
    assert_close(rms.forward(scales * x), rms.forward(x), rtol=1e-6, atol=1e-6,
                 what="RMSNorm of a per-sample scaled input")
    dy = rng.standard_normal(x.shape)
    dx = rms.backward(dy)
    assert_close((dx * x).sum(axis=-1), np.zeros((n, 3)), atol=1e-8 * (1 + np.abs(dx).max() * np.abs(x).max()),
                 what="RMSNorm: Σ dx·x per row (the output ignores the scale of x)")
