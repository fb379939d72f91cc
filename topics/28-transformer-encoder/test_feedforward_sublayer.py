"""Topic 28: the feed-forward sublayer and the residual connection with its LayerNorm (post-LN and
pre-LN) — values against the formulas, finite differences, dropout with a fixed mask, PyTorch."""

import math

import numpy as np
import pytest

from dlfs.nn.layers import Layer, Linear
from dlfs.testing import assert_close, check_layer
from dlfs.transformer import encoder as enc
from torch_oracle import torch_or_skip

SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


def gelu_exact(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x ** 3)))


ACT = {"gelu": gelu_exact, "gelu_tanh": gelu_tanh, "relu": lambda x: np.maximum(x, 0)}


def layer_norm(x, gamma, beta, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


def x_of(shape=(2, 3, 6), seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def ff_of(D=6, F=10, activation="gelu", dropout=0.0, seed=0):
    ff = enc.FeedForward(D, F, dropout=dropout, activation=activation, rng=seed, dtype=np.float64)
    ff.linear1.b.data[...] = np.random.default_rng(seed + 50).standard_normal(F)
    ff.linear2.b.data[...] = np.random.default_rng(seed + 51).standard_normal(D)
    return ff


def fix_mask(dropout, mask):
    """Make a Dropout layer use the given scaled mask on every training forward (a deterministic
    dropout); in eval mode it stays the identity."""
    def forward(x):
        dropout.mask = mask.astype(x.dtype) if dropout.training else None
        return x if dropout.mask is None else x * dropout.mask
    dropout.forward = forward
    return dropout


# ------------------------------------------------------------------ the feed-forward sublayer

@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh", "relu"])
def test_feedforward_is_linear_activation_linear(activation):
    ff = ff_of(activation=activation, seed=1)
    x = x_of(seed=2)
    h = ACT[activation](x @ ff.linear1.W.data + ff.linear1.b.data)
    expected = h @ ff.linear2.W.data + ff.linear2.b.data
    assert_close(ff.forward(x), expected, rtol=1e-12, atol=1e-12,
                 what=f"FeedForward({activation}) vs linear2(act(linear1(x)))")


@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh"])
def test_feedforward_backward_matches_finite_differences(activation):
    check_layer(ff_of(activation=activation, seed=3), x_of(seed=4), h=1e-5)


def test_feedforward_matches_torch():
    check_layer(ff_of(seed=5), x_of(seed=6),
                torch_layer=lambda torch: torch.nn.Sequential(torch.nn.Linear(6, 10), torch.nn.GELU(),
                                                              torch.nn.Linear(10, 6)),
                param_map={"linear1.W": ("0.weight", np.transpose), "linear1.b": "0.bias",
                           "linear2.W": ("2.weight", np.transpose), "linear2.b": "2.bias"},
                oracle=torch_or_skip, rtol=1e-10, atol=1e-12, h=1e-5)


def test_feedforward_dropout_acts_on_the_hidden_activations():
    ff = ff_of(dropout=0.5, seed=7)
    mask = (np.random.default_rng(8).random((2, 3, 10)) > 0.5) * 2.0          # kept units scaled by 1/(1-p)
    fix_mask(ff.dropout, mask)
    ff.train()
    x = x_of(seed=9)
    h = gelu_exact(x @ ff.linear1.W.data + ff.linear1.b.data) * mask
    assert_close(ff.forward(x), h @ ff.linear2.W.data + ff.linear2.b.data, rtol=1e-12, atol=1e-12,
                 what="FeedForward with a fixed dropout mask on the hidden units")
    check_layer(ff, x, h=1e-5)
    ff.eval()
    assert_close(ff.forward(x), ff_of(seed=7).forward(x), rtol=0, atol=0, what="FeedForward in eval mode (no dropout)")


def test_feedforward_refuses_an_unknown_activation_and_keeps_float32():
    with pytest.raises(ValueError):
        enc.FeedForward(4, 8, activation="swish")
    ff = enc.FeedForward(4, 8, rng=0)
    x = x_of((2, 4), seed=10).astype(np.float32)
    y = ff.forward(x)
    assert y.dtype == np.float32, f"expected a float32 output, got {y.dtype}"
    W1, b1, W2, b2 = (a.astype(np.float64) for a in (ff.linear1.W.data, ff.linear1.b.data,
                                                     ff.linear2.W.data, ff.linear2.b.data))
    assert_close(y, gelu_exact(x.astype(np.float64) @ W1 + b1) @ W2 + b2, rtol=1e-4, atol=1e-5,
                 what="float32 FeedForward vs the formula in float64")


# ------------------------------------------------------------------ the residual connection

class Around(Layer):
    """A SublayerConnection around a Linear, as one layer (for check_layer)."""

    def __init__(self, norm_first, dropout=0.0, seed=0, D=5):
        self.conn = enc.SublayerConnection(D, dropout=dropout, norm_first=norm_first, dtype=np.float64)
        self.f = Linear(D, D, rng=seed, dtype=np.float64)
        rng = np.random.default_rng(seed + 100)
        self.conn.norm.gamma.data[...] = 1 + 0.3 * rng.standard_normal(D)
        self.conn.norm.beta.data[...] = rng.standard_normal(D)

    def forward(self, x):
        return self.conn.forward(x, self.f.forward)

    def backward(self, dy):
        return self.conn.backward(dy, self.f.backward)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_sublayer_connection_values(norm_first):
    layer = Around(norm_first, seed=11)
    x = x_of((2, 4, 5), seed=12)
    g, b = layer.conn.norm.gamma.data, layer.conn.norm.beta.data
    f = lambda h: h @ layer.f.W.data + layer.f.b.data                                   # noqa: E731
    expected = x + f(layer_norm(x, g, b)) if norm_first else layer_norm(x + f(x), g, b)
    assert_close(layer.forward(x), expected, rtol=1e-12, atol=1e-12,
                 what="pre-LN x + f(norm(x))" if norm_first else "post-LN norm(x + f(x))")


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_sublayer_connection_backward_matches_finite_differences(norm_first):
    check_layer(Around(norm_first, seed=13), x_of((2, 4, 5), seed=14), h=1e-5)


def test_pre_ln_keeps_a_clean_residual_path():
    """With a sublayer that outputs 0, pre-LN is the identity and its gradient passes unchanged."""
    conn = enc.SublayerConnection(4, norm_first=True, dtype=np.float64)
    x, dy = x_of((3, 4), seed=15), x_of((3, 4), seed=16)
    assert_close(conn.forward(x, np.zeros_like), x, rtol=0, atol=0, what="pre-LN output when f(·) = 0")
    assert_close(conn.backward(dy, np.zeros_like), dy, rtol=0, atol=0, what="pre-LN dx when f(·) = 0")
    post = enc.SublayerConnection(4, norm_first=False, dtype=np.float64)
    assert_close(post.forward(x, np.zeros_like), layer_norm(x, 1.0, 0.0), rtol=1e-12, atol=1e-12,
                 what="post-LN output when f(·) = 0: the normalised input")


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_sublayer_connection_dropout_with_a_fixed_mask(norm_first):
    layer = Around(norm_first, dropout=0.4, seed=17)
    mask = (np.random.default_rng(18).random((2, 4, 5)) > 0.4) / 0.6
    fix_mask(layer.conn.dropout, mask)
    layer.train()
    x = x_of((2, 4, 5), seed=19)
    g, b = layer.conn.norm.gamma.data, layer.conn.norm.beta.data
    f = lambda h: (h @ layer.f.W.data + layer.f.b.data) * mask                           # noqa: E731
    expected = x + f(layer_norm(x, g, b)) if norm_first else layer_norm(x + f(x), g, b)
    assert_close(layer.forward(x), expected, rtol=1e-12, atol=1e-12, what="the residual branch's dropout")
    check_layer(layer, x, h=1e-5)
