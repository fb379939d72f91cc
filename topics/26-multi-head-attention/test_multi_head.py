"""Topic 26: multi-head self-attention — the definition, finite differences, PyTorch's
nn.MultiheadAttention (values and gradients, with and without masks), the weight loader, and
the properties of causal and unmasked attention."""

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.attention import multi_head as mh
from dlfs.attention.scaled_dot_product import attention_loop
from dlfs.testing import assert_close, check_gradients, check_layer
from torch_oracle import to_numpy, to_torch, torch_or_skip

PAD = np.array([[False, False, False, False, False], [False, False, False, True, True]])
H_STEP = 1e-5       # central-difference step: truncation (∝ h²) and rounding (∝ 1/h) errors balance near here
PARAM_MAP = {"qkv.W": ("in_proj_weight", np.transpose), "qkv.b": "in_proj_bias",
             "out_proj.W": ("out_proj.weight", np.transpose), "out_proj.b": "out_proj.bias"}


def mha(D=6, H=2, bias=True, seed=0, dtype=np.float64):
    """A layer with random, non-zero biases (the zero defaults would hide a bias mistake)."""
    layer = mh.MultiHeadAttention(D, H, bias=bias, rng=seed, dtype=dtype)
    if bias:
        rng = np.random.default_rng(seed + 100)
        layer.qkv.b.data[...] = rng.standard_normal(3 * D)
        layer.out_proj.b.data[...] = rng.standard_normal(D)
    return layer


def with_masks(layer, key_padding_mask=None, causal=False):
    """The layer with its masks fixed, so that check_layer's forward(x) uses them."""
    layer.forward = functools.partial(type(layer).forward, layer, key_padding_mask=key_padding_mask, causal=causal)
    return layer


def x_of(B=2, T=5, D=6, seed=1, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal((B, T, D)).astype(dtype)


def by_definition(layer, x, mask=None):
    """Head by head with the loop attention of Topic 25: y = concat_h attn(x Wq_h, x Wk_h, x Wv_h) Wo + bo.
    mask: (B, 1, T, T) or None, True = attend."""
    D, H = layer.d_model, layer.num_heads
    dh = D // H
    W = layer.qkv.W.data
    b = layer.qkv.b.data if layer.qkv.b is not None else np.zeros(3 * D)
    heads = []
    for h in range(H):
        cols = [slice(j * D + h * dh, j * D + (h + 1) * dh) for j in range(3)]
        q, k, v = (x @ W[:, c] + b[c] for c in cols)
        heads.append(attention_loop(q[:, None], k[:, None], v[:, None], mask)[:, 0])
    y = np.concatenate(heads, axis=-1) @ layer.out_proj.W.data
    return y + (layer.out_proj.b.data if layer.out_proj.b is not None else 0)


def check_mha_gradients(layer, x, key_padding_mask=None, causal=False, seed=1):
    """dx and every parameter gradient against central differences in float64.

    The key bias (qkv.b[D:2D]) adds q·b_k to every score of a query's row, and softmax ignores a
    constant shift of its row: its gradient is exactly 0 in exact arithmetic, and a relative
    error against finite-difference noise (~1e-10) means nothing. It is checked to be 0; the
    query and value parts of qkv.b are checked against finite differences like the rest."""
    layer.zero_grad()
    y = layer.forward(x, key_padding_mask, causal)
    dy = np.random.default_rng(seed).standard_normal(y.shape)
    dx = layer.backward(dy)
    D = layer.d_model
    inputs, analytic = {"x": x}, {"x": dx}
    for name, p in layer.named_parameters():
        if name == "qkv.b":
            assert_close(p.grad[D:2 * D], np.zeros(D), atol=1e-12 * (1 + np.abs(p.grad).max()),
                         what="gradient of the key bias (softmax ignores a constant shift of a row: 0)")
            for part, cols in (("query", slice(0, D)), ("value", slice(2 * D, 3 * D))):
                inputs[f"qkv.b ({part} part)"], analytic[f"qkv.b ({part} part)"] = p.data[cols], p.grad[cols].copy()
        else:
            inputs[name], analytic[name] = p.data, p.grad.copy()
    check_gradients(lambda: layer.forward(x, key_padding_mask, causal), inputs, analytic, dout=dy, h=H_STEP)


# ------------------------------------------------------------------ values without PyTorch

@pytest.mark.parametrize("masks", ["none", "padding", "causal", "causal+padding"])
def test_forward_matches_the_head_by_head_definition(masks):
    layer = mha(D=6, H=3, seed=2)
    x = x_of(seed=3)
    kpm = PAD if "padding" in masks else None
    causal = "causal" in masks
    mask = np.ones((2, 1, 5, 5), dtype=bool)
    if kpm is not None:
        mask &= ~kpm[:, None, None, :]
    if causal:
        mask &= np.tril(np.ones((5, 5), dtype=bool))
    y = layer.forward(x, key_padding_mask=kpm, causal=causal)
    assert_close(y, by_definition(layer, x, mask), rtol=1e-10, atol=1e-12,
                 what=f"multi-head attention vs the head-by-head definition (masks: {masks})")


def test_one_head_is_single_head_attention_and_a_fully_padded_sample_outputs_the_bias():
    layer = mha(D=4, H=1, seed=4)
    x = x_of(B=2, T=3, D=4, seed=5)
    assert_close(layer.forward(x), by_definition(layer, x), rtol=1e-10, atol=1e-12, what="H = 1")
    kpm = np.array([[False, False, False], [True, True, True]])         # sample 1: every key is padding
    y = layer.forward(x, key_padding_mask=kpm)
    assert np.isfinite(y).all(), "a fully padded sample must not give NaN"
    assert_close(y[1], np.broadcast_to(layer.out_proj.b.data, (3, 4)), rtol=1e-12,
                 what="output of a sample whose keys are all padding (attention output 0, then + out_proj.b)")


@pytest.mark.parametrize("masks", ["none", "padding", "causal", "causal+padding", "fully padded sample"])
def test_backward_matches_finite_differences(masks):
    """dx and the gradients of qkv.W, qkv.b, out_proj.W and out_proj.b, in float64."""
    kpm = {"padding": PAD, "causal+padding": PAD,
           "fully padded sample": np.array([[False] * 5, [True] * 5])}.get(masks)
    check_mha_gradients(mha(D=6, H=2, seed=6), x_of(seed=7), kpm, "causal" in masks)


def test_backward_without_biases_matches_finite_differences():
    layer = mha(D=4, H=2, bias=False, seed=8)
    assert sorted(dict(layer.named_parameters())) == ["out_proj.W", "qkv.W"], \
        f"bias=False: expected parameters qkv.W and out_proj.W only, got {sorted(dict(layer.named_parameters()))}"
    check_layer(with_masks(layer, causal=True), x_of(B=2, T=3, D=4, seed=9))


def test_float32_stays_float32_and_gradients_accumulate():
    layer = mha(D=8, H=4, seed=10, dtype=np.float32)
    x = x_of(B=2, T=4, D=8, seed=11, dtype=np.float32)
    y = layer.forward(x, causal=True)
    assert y.dtype == np.float32, f"expected float32 output, got {y.dtype}"
    dx = layer.backward(np.ones_like(y))
    assert dx.dtype == np.float32 and layer.qkv.W.grad.dtype == np.float32, \
        f"expected float32 gradients, got dx {dx.dtype}, qkv.W.grad {layer.qkv.W.grad.dtype}"
    assert_close(layer.out_proj.b.grad, np.full(8, 8.0), rtol=1e-6, what="out_proj.b.grad = Σ dy over (B, T)")
    ref = mha(D=8, H=4, seed=10, dtype=np.float64)
    assert_close(y, ref.forward(x.astype(np.float64), causal=True), rtol=1e-4, atol=1e-5,
                 what="float32 output vs float64")
    g = layer.qkv.W.grad.copy()
    layer.backward(np.ones_like(y))
    assert_close(layer.qkv.W.grad, 2 * g, rtol=1e-5, atol=1e-6, what="qkv.W.grad after two backward calls")


def test_loader_transposes_torch_layout():
    """in_proj_weight (3D, D) stacks the rows of Wq, Wk, Wv in torch's (out, in) layout."""
    D = 4
    rng = np.random.default_rng(12)
    Wq, Wk, Wv, Wo = (rng.standard_normal((D, D)) for _ in range(4))     # torch layout (out, in)
    bq, bk, bv, bo = (rng.standard_normal(D) for _ in range(4))
    layer = mh.MultiHeadAttention(D, 2, dtype=np.float64)
    layer.load_torch_state_dict({"in_proj_weight": np.concatenate([Wq, Wk, Wv]),
                                 "in_proj_bias": np.concatenate([bq, bk, bv]),
                                 "out_proj.weight": Wo, "out_proj.bias": bo})
    x = x_of(B=1, T=3, D=D, seed=13)
    q, k, v = layer.qkv.forward(x)
    for name, got, W, b in (("q", q, Wq, bq), ("k", k, Wk, bk), ("v", v, Wv, bv)):
        assert_close(got, x @ W.T + b, rtol=1e-12, what=f"{name} after loading (x @ W{name}ᵀ + b{name})")
    assert_close(layer.out_proj.forward(x), x @ Wo.T + bo, rtol=1e-12, what="out_proj after loading")


def test_loader_refuses_wrong_names_and_shapes_and_changes_nothing():
    layer = mha(D=4, H=2, seed=14)
    x = x_of(B=1, T=3, D=4, seed=15)
    before = layer.forward(x)
    good = {"in_proj_weight": np.zeros((12, 4)), "in_proj_bias": np.zeros(12),
            "out_proj.weight": np.zeros((4, 4)), "out_proj.bias": np.ones(4)}
    for bad in ({**good, "in_proj_weight": np.zeros((4, 12))},          # our layout, not torch's
                {k: v for k, v in good.items() if k != "in_proj_bias"},
                {**good, "extra": np.zeros(1)}):
        with pytest.raises(ValueError):
            layer.load_torch_state_dict(bad)
        assert_close(layer.forward(x), before, rtol=0, atol=0, what="output after a refused load (unchanged)")
    layer.load_torch_state_dict(good)
    assert_close(layer.forward(x), np.ones((1, 3, 4)), rtol=0, atol=0, what="zero weights, out_proj.bias 1")


def test_bad_configuration_and_input_are_refused():
    layer = mha(D=6, H=3, seed=16)
    x = x_of(B=1, T=2, D=6, seed=17)
    assert_close(layer.forward(x), by_definition(layer, x), rtol=1e-10, atol=1e-12, what="forward")
    with pytest.raises(ValueError):
        mh.MultiHeadAttention(6, 4)                       # 6 features do not split into 4 heads
    with pytest.raises(ValueError):
        layer.forward(np.ones((2, 6)))                    # not (B, T, D)
    with pytest.raises(ValueError):
        layer.forward(x, key_padding_mask=np.zeros((1, 3), dtype=bool))   # wrong T


# ------------------------------------------------------------------ PyTorch

def torch_mha(D, H, bias=True):
    return lambda torch: torch.nn.MultiheadAttention(D, H, bias=bias, batch_first=True)


def torch_forward(key_padding_mask=None, causal=False):
    """torch's call with the same masks. Its attn_mask marks the *blocked* pairs (True = do not
    attend), the opposite of scaled_dot_product_attention's boolean mask."""
    def forward(module, x):
        import torch

        T = x.shape[1]
        attn_mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1) if causal else None
        kpm = None if key_padding_mask is None else torch.from_numpy(key_padding_mask)
        return module(x, x, x, key_padding_mask=kpm, attn_mask=attn_mask, need_weights=False)[0]
    return forward


@pytest.mark.parametrize("masks", ["none", "padding", "causal", "causal+padding"])
def test_values_and_gradients_match_torch_multihead_attention(masks):
    torch = torch_or_skip()
    kpm, causal = PAD if "padding" in masks else None, "causal" in masks
    layer = mha(D=8, H=4, seed=18)
    tmha = torch_mha(8, 4)(torch).double()
    with torch.no_grad():
        for name, (tname, layout) in {"qkv.W": ("in_proj_weight", np.transpose), "qkv.b": ("in_proj_bias", None),
                                      "out_proj.W": ("out_proj.weight", np.transpose),
                                      "out_proj.b": ("out_proj.bias", None)}.items():
            value = dict(layer.named_parameters())[name].data
            dict(tmha.named_parameters())[tname].copy_(to_torch(layout(value) if layout else value))
    x = x_of(D=8, seed=19)
    y = layer.forward(x, kpm, causal)
    dy = np.random.default_rng(20).standard_normal(y.shape)
    dx = layer.backward(dy)
    tx = to_torch(x, requires_grad=True)
    ty = torch_forward(kpm, causal)(tmha, tx)
    ty.backward(to_torch(dy))
    assert_close(y, to_numpy(ty), rtol=1e-9, atol=1e-11, what=f"output vs torch ({masks})")
    assert_close(dx, to_numpy(tx.grad), rtol=1e-9, atol=1e-11, what=f"dx vs torch ({masks})")
    tgrads = {n: to_numpy(p.grad) for n, p in tmha.named_parameters()}
    assert_close(layer.qkv.W.grad, tgrads["in_proj_weight"].T, rtol=1e-9, atol=1e-11,
                 what=f"qkv.W.grad vs torch in_proj_weight.grad transposed ({masks})")
    assert_close(layer.qkv.b.grad, tgrads["in_proj_bias"], rtol=1e-9, atol=1e-11,
                 what=f"qkv.b.grad vs torch in_proj_bias.grad ({masks})")
    assert_close(layer.out_proj.W.grad, tgrads["out_proj.weight"].T, rtol=1e-9, atol=1e-11,
                 what=f"out_proj.W.grad vs torch ({masks})")
    assert_close(layer.out_proj.b.grad, tgrads["out_proj.bias"], rtol=1e-9, atol=1e-11,
                 what=f"out_proj.b.grad vs torch ({masks})")


def test_without_biases_matches_torch():
    check_layer(with_masks(mha(D=6, H=3, bias=False, seed=20), causal=True), x_of(D=6, seed=21),
                torch_layer=torch_mha(6, 3, bias=False),
                param_map={"qkv.W": PARAM_MAP["qkv.W"], "out_proj.W": PARAM_MAP["out_proj.W"]},
                torch_forward=torch_forward(causal=True), oracle=torch_or_skip, rtol=1e-9, atol=1e-11)


def test_loading_torch_weights_reproduces_torch():
    torch = torch_or_skip()
    torch.manual_seed(0)
    tmha = torch.nn.MultiheadAttention(8, 2, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        tmha.in_proj_bias.normal_()
        tmha.out_proj.bias.normal_()
    layer = mh.MultiHeadAttention(8, 2, dtype=np.float64)
    layer.load_torch_state_dict({k: to_numpy(v) for k, v in tmha.state_dict().items()})
    x = x_of(B=2, T=5, D=8, seed=22)
    expected, _ = tmha(to_torch(x), to_torch(x), to_torch(x), key_padding_mask=to_torch(PAD))
    assert_close(layer.forward(x, key_padding_mask=PAD), to_numpy(expected), rtol=1e-10, atol=1e-12,
                 what="output with torch's weights loaded through load_torch_state_dict")


# ------------------------------------------------------------------ properties

@settings(deadline=None, max_examples=20)
@given(st.integers(2, 6), st.integers(0, 5), st.integers(0, 2**32 - 1))
def test_causal_output_at_t_ignores_the_input_after_t(T, t, seed):
    t = t % T
    layer = mha(D=4, H=2, seed=seed % 1000)
    x = x_of(B=1, T=T, D=4, seed=seed)
    y = layer.forward(x, causal=True)
    x2 = x.copy()
    x2[:, t + 1:] = np.random.default_rng(seed + 1).standard_normal(x2[:, t + 1:].shape)
    assert_close(layer.forward(x2, causal=True)[:, :t + 1], y[:, :t + 1], rtol=1e-12, atol=1e-12,
                 what=f"causal outputs 0..{t} after changing the input at positions > {t}")


@settings(deadline=None, max_examples=20)
@given(st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_without_mask_permuting_the_positions_permutes_the_output(T, seed):
    layer = mha(D=6, H=3, seed=seed % 1000)
    x = x_of(B=2, T=T, D=6, seed=seed)
    perm = np.random.default_rng(seed).permutation(T)
    assert_close(layer.forward(x[:, perm]), layer.forward(x)[:, perm], rtol=1e-10, atol=1e-12,
                 what="output for permuted positions (self-attention without positions is permutation-equivariant)")


