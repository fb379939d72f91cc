"""Topic 06 — Linear and linear_backward: initialisation, forward, the three gradients, accumulation."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.nn import layers as L
from dlfs.testing import assert_close, check_layer, check_op
from torch_oracle import to_numpy, to_torch, torch_or_skip


def make_linear(d_in, d_out, bias=True, seed=0, dtype=np.float64):
    return L.Linear(d_in, d_out, bias=bias, rng=np.random.default_rng(seed), dtype=dtype)


def randn(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


# ----------------------------------------------------------------- construction

def test_linear_parameters_have_the_documented_shapes_names_and_dtype():
    layer = L.Linear(5, 3, rng=0)
    assert isinstance(layer.W, L.Parameter) and isinstance(layer.b, L.Parameter), \
        "W and b must be Parameters"
    assert layer.W.shape == (5, 3), f"W is stored (in, out): expected (5, 3), got {layer.W.shape}"
    assert layer.b.shape == (3,), f"expected b of shape (3,), got {layer.b.shape}"
    assert layer.W.data.dtype == np.float32 and layer.b.data.dtype == np.float32, \
        f"the default dtype is float32, got W {layer.W.data.dtype}, b {layer.b.data.dtype}"
    assert layer.W.grad is not None and not layer.W.grad.any(), "gradients must start at zero"
    assert [name for name, _ in layer.named_parameters()] == ["W", "b"]
    assert layer.parameters() == [layer.W, layer.b]

    double = L.Linear(5, 3, rng=0, dtype=np.float64)
    assert double.W.data.dtype == np.float64 and double.b.data.dtype == np.float64

    no_bias = L.Linear(5, 3, bias=False, rng=0)
    assert no_bias.b is None, "bias=False must leave b = None"
    assert no_bias.parameters() == [no_bias.W], "without a bias, W is the only parameter"


def test_linear_init_is_uniform_with_torch_bound_and_reproducible():
    d_in, d_out = 400, 300
    layer = L.Linear(d_in, d_out, rng=np.random.default_rng(0), dtype=np.float64)
    bound = 1 / np.sqrt(d_in)                  # torch.nn.Linear: U(-1/sqrt(in), 1/sqrt(in))
    W, b = layer.W.data, layer.b.data
    assert np.abs(W).max() <= bound, f"W must lie in [-{bound:.4g}, {bound:.4g}], max |W| = {np.abs(W).max():.4g}"
    assert np.abs(W).max() > 0.99 * bound, "W should fill the whole interval [-bound, bound]"
    assert abs(W.std() - bound / np.sqrt(3)) < 0.02 * bound / np.sqrt(3), \
        f"a uniform on [-bound, bound] has std bound/sqrt(3) = {bound / np.sqrt(3):.4g}, got {W.std():.4g}"
    assert abs(W.mean()) < 0.01 * bound, f"W should have mean 0, got {W.mean():.3g}"
    assert np.abs(b).max() <= bound and np.abs(b).max() > 0.9 * bound, \
        f"b must also be U(-{bound:.4g}, {bound:.4g}) (bound from fan_in), max |b| = {np.abs(b).max():.4g}"
    assert np.unique(b).size == d_out, "b must be random, not constant"

    again = L.Linear(d_in, d_out, rng=np.random.default_rng(0), dtype=np.float64)
    assert_close(again.W.data, W, rtol=0, atol=0, what="W from the same seed")
    assert_close(again.b.data, b, rtol=0, atol=0, what="b from the same seed")
    other = L.Linear(d_in, d_out, rng=np.random.default_rng(1), dtype=np.float64)
    assert not np.allclose(other.W.data, W), "different seeds must give different weights"

    wide = L.Linear(16, 2000, rng=3, dtype=np.float64)
    assert np.abs(wide.W.data).max() <= 0.25 < np.abs(wide.W.data).max() / 0.99, \
        "the bound depends on in_features only: 1/sqrt(16) = 0.25"


# ----------------------------------------------------------------- forward

@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 5), (5,)])
def test_linear_forward_is_x_at_W_plus_b(shape):
    layer = make_linear(5, 3)
    x = randn(*shape)
    y = layer.forward(x)
    expected = np.einsum("...i,io->...o", x, layer.W.data) + layer.b.data
    assert_close(y, expected, rtol=1e-12, what=f"Linear(5, 3) on x of shape {shape}")
    assert_close(layer(x), expected, rtol=1e-12, what="calling the layer")

    no_bias = make_linear(5, 3, bias=False)
    assert_close(no_bias.forward(x), np.einsum("...i,io->...o", x, no_bias.W.data), rtol=1e-12,
                 what="Linear(5, 3, bias=False)")


# ----------------------------------------------------------------- backward

@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 5)])
def test_linear_backward_function_matches_the_formulas(shape):
    x, W, dy = randn(*shape, seed=1), randn(5, 3, seed=2), randn(*shape[:-1], 3, seed=3)
    dx, dW, db = L.linear_backward(dy, x, W)
    x2, dy2 = x.reshape(-1, 5), dy.reshape(-1, 3)
    assert_close(dx, dy @ W.T, rtol=1e-12, what="dx = dy @ W.T")
    assert_close(dW, x2.T @ dy2, rtol=1e-12, what="dW = x.T @ dy (summed over every leading index)")
    assert_close(db, dy2.sum(axis=0), rtol=1e-12, what="db = sum of dy over every leading index")


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 5)])
def test_linear_backward_function_matches_finite_differences(shape):
    """linear_backward's (dx, dW, db) against central differences of y = x @ W + b."""
    x, W, b = randn(*shape, seed=4), randn(5, 3, seed=5), randn(3, seed=6)
    check_op(lambda x, W, b: x @ W + b, lambda dy, x, W, b: L.linear_backward(dy, x, W), x, {"W": W, "b": b})


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 5)])
def test_linear_layer_backward_matches_finite_differences(shape, bias):
    """dx, dW and db against central differences (NumPy alone)."""
    check_layer(make_linear(5, 3, bias=bias), randn(*shape, seed=8))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 5)])
def test_linear_layer_matches_torch_linear(shape, bias):
    """The same check, then torch.nn.Linear with the same weights (its weight is our W transposed)."""
    check_layer(make_linear(5, 3, bias=bias), randn(*shape, seed=8),
                torch_layer=lambda torch: torch.nn.Linear(5, 3, bias=bias),
                param_map={"W": ("weight", np.transpose), "b": "bias"}, oracle=torch_or_skip)


def test_linear_matches_torch():
    torch = torch_or_skip()
    layer = make_linear(6, 4)
    x, dy = randn(3, 2, 6, seed=10), randn(3, 2, 4, seed=11)
    y = layer.forward(x)
    dx = layer.backward(dy)

    tx = to_torch(x, requires_grad=True)
    tW = to_torch(layer.W.data.T.copy(), requires_grad=True)      # torch stores (out, in)
    tb = to_torch(layer.b.data, requires_grad=True)
    ty = torch.nn.functional.linear(tx, tW, tb)
    ty.backward(to_torch(dy))
    assert_close(y, to_numpy(ty), rtol=1e-10, what="forward vs torch.nn.functional.linear")
    assert_close(dx, to_numpy(tx.grad), rtol=1e-10, what="dx vs torch")
    assert_close(layer.W.grad, to_numpy(tW.grad).T, rtol=1e-10, what="dW vs torch (transposed)")
    assert_close(layer.b.grad, to_numpy(tb.grad), rtol=1e-10, what="db vs torch")


@settings(deadline=None, max_examples=40)
@given(lead=st.lists(st.integers(1, 3), min_size=1, max_size=3),
       d_in=st.integers(1, 4), d_out=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_linear_backward_adjoint_identities(lead, d_in, d_out, seed):
    """y = x W is linear in x and in W, so <dy, x W> = <dx, x> = <dW, W> for every dy."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*lead, d_in))
    W = rng.standard_normal((d_in, d_out))
    dy = rng.standard_normal((*lead, d_out))
    dx, dW, db = L.linear_backward(dy, x, W)
    assert dx.shape == x.shape and dW.shape == W.shape and db.shape == (d_out,), \
        f"shapes: expected dx {x.shape}, dW {W.shape}, db {(d_out,)}; got {dx.shape}, {dW.shape}, {db.shape}"
    inner = np.sum(dy * (x @ W))
    assert np.isclose(np.sum(dx * x), inner, rtol=1e-9, atol=1e-9), "<dx, x> must equal <dy, x W>"
    assert np.isclose(np.sum(dW * W), inner, rtol=1e-9, atol=1e-9), "<dW, W> must equal <dy, x W>"
    assert np.isclose(db.sum(), dy.sum(), rtol=1e-9, atol=1e-9), "sum(db) must equal sum(dy)"


# ----------------------------------------------------------------- accumulation and dtype

def test_gradients_accumulate_in_place_over_two_backward_calls():
    layer = make_linear(5, 3)
    W_grad, b_grad = layer.W.grad, layer.b.grad
    x1, dy1 = randn(4, 5, seed=12), randn(4, 3, seed=13)
    x2, dy2 = randn(2, 5, seed=14), randn(2, 3, seed=15)
    layer.forward(x1)
    layer.backward(dy1)
    layer.forward(x2)
    layer.backward(dy2)
    assert_close(layer.W.grad, x1.T @ dy1 + x2.T @ dy2, rtol=1e-12,
                 what="W.grad after two backward calls (must be the sum, +=)")
    assert_close(layer.b.grad, dy1.sum(0) + dy2.sum(0), rtol=1e-12, what="b.grad after two backward calls")
    assert layer.W.grad is W_grad and layer.b.grad is b_grad, \
        "accumulate into the existing .grad arrays in place (an optimiser may hold references to them)"

    layer.zero_grad()
    assert layer.W.grad is W_grad and not layer.W.grad.any() and not layer.b.grad.any(), \
        "zero_grad must fill the same arrays with zeros"
    layer.forward(x2)
    layer.backward(dy2)
    assert_close(layer.W.grad, x2.T @ dy2, rtol=1e-12, what="W.grad after zero_grad and one backward")


def test_accumulate_grad_starts_a_new_gradient_when_grad_is_none():
    p = L.Parameter(np.zeros((2, 3), dtype=np.float32), name="p")
    p.grad = None
    g = np.ones((2, 3))                        # float64: the gradient keeps the parameter's dtype
    p.accumulate_grad(g)
    g[...] = 5.0
    assert p.grad is not None and p.grad.dtype == np.float32, "a new gradient must take data's dtype"
    assert_close(p.grad, np.ones((2, 3)), what="grad after accumulate_grad on None (must not alias g)")
    p.accumulate_grad(np.full((2, 3), 2.0))
    assert_close(p.grad, np.full((2, 3), 3.0), what="grad after a second accumulate_grad")

    from dlfs.optim.optimizers import SGD

    layer = make_linear(5, 3)
    opt = SGD(layer.parameters(), lr=0.1)
    opt.zero_grad()                            # sets every .grad to None
    x, dy = randn(4, 5, seed=16), randn(4, 3, seed=17)
    layer.forward(x)
    layer.backward(dy)
    assert_close(layer.W.grad, x.T @ dy, rtol=1e-12, what="W.grad after the optimiser set it to None")
    assert_close(layer.b.grad, dy.sum(0), rtol=1e-12, what="b.grad after the optimiser set it to None")


def test_float32_stays_float32_and_nothing_is_copied_or_overwritten():
    layer = L.Linear(8, 4, rng=0)
    x = randn(16, 8).astype(np.float32)
    dy = randn(16, 4, seed=2).astype(np.float32)
    dy_before = dy.copy()
    y = layer.forward(x)
    assert y.dtype == np.float32, f"float32 in must give float32 out, got {y.dtype}"
    assert layer.x is x, "forward must cache the input itself (a reference), not a copy"
    dx = layer.backward(dy)
    assert dx.dtype == np.float32 and layer.W.grad.dtype == np.float32 and layer.b.grad.dtype == np.float32, \
        f"float32 gradients expected, got dx {dx.dtype}, dW {layer.W.grad.dtype}, db {layer.b.grad.dtype}"
    assert_close(dy, dy_before, rtol=0, atol=0, what="dy after backward (backward must not modify it)")
    ref_dx, ref_dW, ref_db = (dy.astype(np.float64) @ layer.W.data.T.astype(np.float64),
                              x.T.astype(np.float64) @ dy, dy.sum(0, dtype=np.float64))
    assert_close(dx, ref_dx, rtol=1e-4, atol=1e-5, what="float32 dx")
    assert_close(layer.W.grad, ref_dW, rtol=1e-4, atol=1e-5, what="float32 dW")
    assert_close(layer.b.grad, ref_db, rtol=1e-4, atol=1e-5, what="float32 db")
