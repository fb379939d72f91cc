"""Topic 16: GroupNorm and InstanceNorm2d — per-sample statistics over channel groups (and the outputs of
layers without affine parameters)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.nn import normalization as nm
from dlfs.testing import assert_close, check_gradients
from torch_oracle import to_numpy, to_torch, torch_or_skip


def images(n=2, c=6, h=3, w=4, seed=0):
    """(n, c, h, w) with a different mean and scale in every channel."""
    rng = np.random.default_rng(seed)
    loc = rng.uniform(-3, 3, size=(1, c, 1, 1))
    scale = rng.uniform(0.3, 3, size=(1, c, 1, 1))
    return loc + scale * rng.standard_normal((n, c, h, w))


def randomise(layer, seed=1):
    rng = np.random.default_rng(seed)
    if layer.gamma is not None:
        layer.gamma.data[...] = rng.uniform(0.5, 2.0, size=layer.gamma.shape)
        layer.beta.data[...] = rng.normal(size=layer.beta.shape)
    return layer


def compare_with_torch(layer, tlayer, x, torch, name):
    if layer.gamma is not None:
        with torch.no_grad():
            tlayer.weight.copy_(to_torch(layer.gamma.data))
            tlayer.bias.copy_(to_torch(layer.beta.data))
    dy = np.random.default_rng(99).standard_normal(x.shape)
    y = layer.forward(x)
    dx = layer.backward(dy)
    tx = to_torch(x, requires_grad=True)
    ty = tlayer(tx)
    ty.backward(to_torch(dy))
    assert_close(y, to_numpy(ty), rtol=1e-10, atol=1e-12, what=f"{name}: output vs torch")
    assert_close(dx, to_numpy(tx.grad), rtol=1e-8, atol=1e-11, what=f"{name}: dx vs torch")
    if layer.gamma is not None:
        assert_close(layer.gamma.grad, to_numpy(tlayer.weight.grad), rtol=1e-10, what=f"{name}: dgamma vs torch")
        assert_close(layer.beta.grad, to_numpy(tlayer.bias.grad), rtol=1e-10, what=f"{name}: dbeta vs torch")


def gradcheck(layer, x, seed=2):
    dy = np.random.default_rng(seed).standard_normal(x.shape)
    layer.forward(x)
    dx = layer.backward(dy)
    inputs, analytic = {"x": x}, {"x": dx}
    if layer.gamma is not None:
        inputs.update(gamma=layer.gamma.data, beta=layer.beta.data)
        analytic.update(gamma=layer.gamma.grad.copy(), beta=layer.beta.grad.copy())
    check_gradients(lambda: layer.forward(x), inputs, analytic, dout=dy)


# ----------------------------------------------------------------- GroupNorm

GN_CASES = [(1, {}), (2, {}), (3, dict(eps=1e-3)), (6, {}), (2, dict(affine=False))]


def groupnorm_formula(x, groups, layer):
    """GroupNorm written out: standardise each (sample, group) over its channels and every axis
    after C, then the per-channel γ and β. x: (N, C, *spatial)."""
    n, c = x.shape[:2]
    xr = x.reshape(n, groups, -1)
    x_hat = ((xr - xr.mean(axis=2, keepdims=True)) / np.sqrt(xr.var(axis=2, keepdims=True) + layer.eps))
    x_hat = x_hat.reshape(x.shape)
    if layer.gamma is None:
        return x_hat
    shape = (1, c) + (1,) * (x.ndim - 2)
    return x_hat * layer.gamma.data.reshape(shape) + layer.beta.data.reshape(shape)


@pytest.mark.parametrize("groups, kwargs", GN_CASES, ids=str)
def test_groupnorm_matches_the_formula(groups, kwargs):
    gn = randomise(nm.GroupNorm(groups, 6, dtype=np.float64, **kwargs))
    x = images(seed=3)
    assert_close(gn.forward(x), groupnorm_formula(x, groups, gn), rtol=1e-10, atol=1e-12,
                 what=f"GroupNorm({groups}, 6, {kwargs}) output vs the formula")


def test_groupnorm_on_sequences_and_volumes_matches_the_formula_and_finite_differences():
    """(N, C, L) and (N, C, D, H, W) inputs: the statistics cover every axis after C."""
    rng = np.random.default_rng(4)
    for shape in [(3, 4, 7), (2, 4, 2, 3, 2)]:
        gn = randomise(nm.GroupNorm(2, 4, dtype=np.float64), seed=5)
        x = 2.0 + rng.standard_normal(shape)
        assert_close(gn.forward(x), groupnorm_formula(x, 2, gn), rtol=1e-10, atol=1e-12,
                     what=f"GroupNorm(2, 4) on {shape} vs the formula")
        gradcheck(gn, x)


@pytest.mark.parametrize("groups, kwargs", GN_CASES, ids=str)
def test_groupnorm_matches_torch(groups, kwargs):
    torch = torch_or_skip()
    gn = randomise(nm.GroupNorm(groups, 6, dtype=np.float64, **kwargs))
    compare_with_torch(gn, torch.nn.GroupNorm(groups, 6, **kwargs).double(), images(seed=3), torch,
                       f"GroupNorm({groups}, 6, {kwargs})")


def test_groupnorm_matches_torch_on_sequences_and_volumes():
    """(N, C, L) and (N, C, D, H, W) inputs: the statistics cover every axis after C."""
    torch = torch_or_skip()
    rng = np.random.default_rng(4)
    for shape in [(3, 4, 7), (2, 4, 2, 3, 2)]:
        gn = randomise(nm.GroupNorm(2, 4, dtype=np.float64), seed=5)
        compare_with_torch(gn, torch.nn.GroupNorm(2, 4).double(), 2.0 + rng.standard_normal(shape), torch,
                           f"GroupNorm(2, 4) on {shape}")


@pytest.mark.parametrize("groups, kwargs", GN_CASES, ids=str)
def test_groupnorm_backward_matches_finite_differences(groups, kwargs):
    gn = randomise(nm.GroupNorm(groups, 6, dtype=np.float64, **kwargs))
    gradcheck(gn, images(c=6, h=2, w=3, seed=6))


def test_groupnorm_standardises_each_group_of_each_sample():
    gn = nm.GroupNorm(3, 6, eps=1e-12, dtype=np.float64)
    x = images(n=2, c=6, seed=7)
    y = gn.forward(x)
    groups = y.reshape(2, 3, 2, 3, 4)                       # (N, G, C/G, H, W)
    assert_close(groups.mean(axis=(2, 3, 4)), np.zeros((2, 3)), atol=1e-12, what="mean of every (sample, group)")
    assert_close(groups.var(axis=(2, 3, 4)), np.ones((2, 3)), rtol=1e-9, what="variance of every (sample, group)")
    per_channel = y.mean(axis=(2, 3))
    assert not np.allclose(per_channel, 0.0, atol=1e-3), \
        "channels of a group share one mean: a single channel's mean is not 0 (that would be InstanceNorm)"
    assert_close(gn.forward(x[1:]), y[1:], rtol=1e-12, atol=1e-12, what="one sample alone (independent of the batch)")


def test_groupnorm_with_one_group_is_layernorm_over_c_h_w():
    x = images(n=3, c=4, seed=8)
    gn = randomise(nm.GroupNorm(1, 4, dtype=np.float64), seed=9)
    ln = nm.LayerNorm((4, 3, 4), dtype=np.float64)
    ln.gamma.data[...] = gn.gamma.data.reshape(4, 1, 1)     # per-channel γ, β spread over (H, W)
    ln.beta.data[...] = gn.beta.data.reshape(4, 1, 1)
    dy = np.random.default_rng(10).standard_normal(x.shape)
    assert_close(gn.forward(x), ln.forward(x), rtol=1e-12, atol=1e-12, what="GroupNorm(G=1) vs LayerNorm((C, H, W))")
    assert_close(gn.backward(dy), ln.backward(dy), rtol=1e-10, atol=1e-12, what="dx: GroupNorm(G=1) vs LayerNorm")
    assert_close(gn.gamma.grad, ln.gamma.grad.sum(axis=(1, 2)), rtol=1e-10,
                 what="GroupNorm dgamma vs LayerNorm's summed over (H, W)")
    assert_close(gn.beta.grad, ln.beta.grad.sum(axis=(1, 2)), rtol=1e-10,
                 what="GroupNorm dbeta vs LayerNorm's summed over (H, W)")


def test_groupnorm_with_one_channel_per_group_is_instancenorm():
    x = images(n=2, c=5, seed=11)
    gn = randomise(nm.GroupNorm(5, 5, dtype=np.float64), seed=12)
    inorm = nm.InstanceNorm2d(5, affine=True, dtype=np.float64)
    inorm.gamma.data[...] = gn.gamma.data
    inorm.beta.data[...] = gn.beta.data
    dy = np.random.default_rng(13).standard_normal(x.shape)
    assert_close(gn.forward(x), inorm.forward(x), rtol=1e-12, atol=1e-12, what="GroupNorm(G=C) vs InstanceNorm2d")
    assert_close(gn.backward(dy), inorm.backward(dy), rtol=1e-10, atol=1e-12,
                 what="dx: GroupNorm(G=C) vs InstanceNorm2d")
    assert_close(gn.gamma.grad, inorm.gamma.grad, rtol=1e-10, what="dgamma: GroupNorm(G=C) vs InstanceNorm2d")


def test_groupnorm_float32_and_accumulation():
    gn = randomise(nm.GroupNorm(2, 4))
    x = images(n=2, c=4, seed=14).astype(np.float32)
    dy = np.random.default_rng(15).standard_normal(x.shape).astype(np.float32)
    y = gn.forward(x)
    assert y.dtype == np.float32, f"expected float32 output, got {y.dtype}"
    dx = gn.backward(dy)
    assert dx.dtype == np.float32 and gn.gamma.grad.dtype == np.float32, "gradients must stay float32"
    assert_close(gn.beta.grad, dy.sum(axis=(0, 2, 3)), rtol=1e-5, what="beta.grad (= Σ dy over N, H, W)")
    g1 = gn.gamma.grad.copy()
    gn.backward(dy)
    assert_close(gn.gamma.grad, 2 * g1, rtol=1e-6, what="gamma.grad after two backward calls (+=)")


def test_groupnorm_rejects_wrong_channels_and_indivisible_groups():
    gn = nm.GroupNorm(2, 4, dtype=np.float64)
    x = images(c=4, seed=16)
    assert_close(gn.forward(x).reshape(2, 2, -1).mean(axis=2), np.zeros((2, 2)), atol=1e-12,
                 what="per-group output mean for a valid input")
    with pytest.raises(ValueError):
        gn.forward(images(c=6))
    with pytest.raises(ValueError):
        nm.GroupNorm(4, 6)                     # 6 channels cannot be split into 4 equal groups


# ----------------------------------------------------------------- InstanceNorm2d

@pytest.mark.parametrize("affine", [False, True], ids=["plain", "affine"])
def test_instancenorm_parameters_and_eval_mode(affine):
    inorm = randomise(nm.InstanceNorm2d(3, affine=affine, dtype=np.float64))
    assert (len(inorm.parameters()) == 2) == affine, \
        f"parameters only with affine=True (torch's default: none); affine={affine} gave {len(inorm.parameters())}"
    x = images(n=2, c=3, h=4, w=5, seed=17)
    y = inorm.forward(x)
    inorm.eval()
    assert_close(inorm.forward(x), y, rtol=1e-12, atol=1e-12,
                 what="eval output vs training output (no running statistics: per-instance statistics again)")
    assert_close(inorm.forward(x[1:]), y[1:], rtol=1e-12, atol=1e-12, what="one sample alone in eval mode")


@pytest.mark.parametrize("affine", [False, True], ids=["plain", "affine"])
def test_instancenorm_matches_torch_in_training_and_eval(affine):
    torch = torch_or_skip()
    inorm = randomise(nm.InstanceNorm2d(3, affine=affine, dtype=np.float64))
    tin = torch.nn.InstanceNorm2d(3, affine=affine).double()
    x = images(n=2, c=3, h=4, w=5, seed=17)
    compare_with_torch(inorm, tin, x, torch, f"InstanceNorm2d(3, affine={affine})")
    inorm.eval()
    tin.eval()
    assert_close(inorm.forward(x), to_numpy(tin(to_torch(x))), rtol=1e-10, atol=1e-12,
                 what="eval output vs torch (no running statistics: per-instance statistics again)")


@pytest.mark.parametrize("affine", [False, True], ids=["plain", "affine"])
def test_instancenorm_backward_matches_finite_differences(affine):
    gradcheck(randomise(nm.InstanceNorm2d(3, affine=affine, dtype=np.float64)), images(c=3, h=2, w=3, seed=18))


def test_instancenorm_standardises_every_plane_and_rejects_bad_input():
    inorm = nm.InstanceNorm2d(4, eps=1e-12)
    x = images(n=3, c=4, seed=19)
    y = inorm.forward(x)
    assert_close(y.mean(axis=(2, 3)), np.zeros((3, 4)), atol=1e-12, what="mean of every (sample, channel) plane")
    assert_close(y.var(axis=(2, 3)), np.ones((3, 4)), rtol=1e-9, what="variance of every (sample, channel) plane")
    with pytest.raises(ValueError):
        inorm.forward(images(c=5))                  # wrong number of channels
    with pytest.raises(ValueError):
        inorm.forward(x.reshape(3, 4, 12))         # (N, C, L): InstanceNorm2d wants images


@settings(deadline=None, max_examples=30)
@given(st.integers(1, 3), st.sampled_from([(1, 4), (2, 4), (4, 4), (3, 6)]), st.integers(1, 3),
       st.integers(0, 2**32 - 1), st.floats(-50, 50), st.floats(0.1, 10))
def test_groupnorm_ignores_per_group_shift_and_scale(n, groups_channels, hw, seed, shift, scale):
    """y(a x + b) = y(x) when every (sample, group) gets its own a > 0 and b; Σ dx = 0 per group."""
    g, c = groups_channels
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, hw, 2))
    per_group = c // g
    a = np.repeat(scale * rng.uniform(0.5, 1.5, size=(n, g)), per_group, axis=1).reshape(n, c, 1, 1)
    b = np.repeat(shift * rng.uniform(0.5, 1.5, size=(n, g)), per_group, axis=1).reshape(n, c, 1, 1)
    gn = randomise(nm.GroupNorm(g, c, eps=1e-14, dtype=np.float64), seed)
    y = gn.forward(x)
    dx = gn.backward(rng.standard_normal(x.shape))
    assert_close(dx.reshape(n, g, -1).sum(axis=2), np.zeros((n, g)), atol=1e-9 * (1 + np.abs(dx).max()),
                 what="Σ dx over every (sample, group)")
    assert_close(gn.forward(a * x + b), y, rtol=1e-6, atol=1e-6, what="output for a per-group shifted, scaled input")


@pytest.mark.parametrize("make", [lambda: nm.InstanceNorm2d(3, dtype=np.float64),
                                  lambda: nm.GroupNorm(3, 3, affine=False, dtype=np.float64),
                                  lambda: nm.LayerNorm((3, 2, 3), elementwise_affine=False, dtype=np.float64),
                                  lambda: nm.RMSNorm(3, elementwise_affine=False, dtype=np.float64)],
                         ids=["InstanceNorm2d", "GroupNorm-no-affine", "LayerNorm-no-affine", "RMSNorm-no-affine"])
def test_output_without_affine_parameters_is_a_new_array(make):
    """A residual connection adds into the output in place; that must not change what backward uses."""
    x = images(n=2, c=3, h=2, w=3, seed=20)
    dy = np.random.default_rng(21).standard_normal(x.shape)
    reference = make()
    reference.forward(x)
    expected = reference.backward(dy)
    layer = make()
    y = layer.forward(x)
    y += 100.0
    assert_close(layer.backward(dy), expected, rtol=1e-12, atol=1e-12,
                 what=f"{type(layer).__name__}: dx after the caller modified the output in place")
