"""Topic 28: the encoder block — the definition written out, finite differences in float64,
torch.nn.TransformerEncoderLayer (values and every gradient, post-LN and pre-LN, causal and
padding masks; dropout with fixed masks), the weight loader and the causal property."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.attention.scaled_dot_product import attention_loop
from dlfs.testing import assert_close, check_gradients
from dlfs.transformer import encoder as enc
from torch_oracle import to_numpy, to_torch, torch_or_skip

PAD = np.array([[False, False, False, False, False], [False, False, False, True, True]])
MASKS = ["none", "padding", "causal", "causal+padding"]
H_STEP = 1e-5
LN_MAP = {"sublayer1.norm.gamma": "norm1.weight", "sublayer1.norm.beta": "norm1.bias",
          "sublayer2.norm.gamma": "norm2.weight", "sublayer2.norm.beta": "norm2.bias"}


def gelu_exact(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def layer_norm(x, gamma, beta, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) * gamma + beta


def block_of(norm_first, D=8, H=2, F=12, dropout=0.0, seed=0, dtype=np.float64):
    """A block with random biases and LayerNorm parameters (the defaults 0 and 1 would hide mistakes)."""
    block = enc.EncoderBlock(D, H, F, dropout=dropout, norm_first=norm_first, rng=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 100)
    for name, p in block.named_parameters():
        if p.data.ndim == 1:
            p.data[...] = (1.0 if name.endswith("gamma") else 0.0) + 0.5 * rng.standard_normal(p.shape)
    return block


def x_of(B=2, T=5, D=8, seed=1):
    return np.random.default_rng(seed).standard_normal((B, T, D))


def masks_of(name):
    return (PAD if "padding" in name else None), "causal" in name


def allowed(kpm, causal, B=2, T=5):
    mask = np.ones((B, 1, T, T), dtype=bool)
    if kpm is not None:
        mask &= ~kpm[:, None, None, :]
    if causal:
        mask &= np.tril(np.ones((T, T), dtype=bool))
    return mask


def by_definition(block, x, mask, drop=(1.0, 1.0, 1.0)):
    """The block written out: attention head by head (Topic 25's loop), LayerNorm and GELU by their
    formulas. drop: the scaled dropout masks of (sublayer 1's output, the MLP's hidden units,
    sublayer 2's output), 1.0 for none."""
    P = {n: p.data for n, p in block.named_parameters()}
    D, H = block.d_model, block.self_attn.num_heads
    dh = D // H

    def attn(h):
        heads = []
        for i in range(H):
            cols = [slice(j * D + i * dh, j * D + (i + 1) * dh) for j in range(3)]
            q, k, v = (h @ P["self_attn.qkv.W"][:, c] + P["self_attn.qkv.b"][c] for c in cols)
            heads.append(attention_loop(q[:, None], k[:, None], v[:, None], mask)[:, 0])
        return np.concatenate(heads, -1) @ P["self_attn.out_proj.W"] + P["self_attn.out_proj.b"]

    def ff(h):
        hidden = gelu_exact(h @ P["ff.linear1.W"] + P["ff.linear1.b"]) * drop[1]
        return hidden @ P["ff.linear2.W"] + P["ff.linear2.b"]

    def norm(h, i):
        return layer_norm(h, P[f"sublayer{i}.norm.gamma"], P[f"sublayer{i}.norm.beta"])

    if block.norm_first:
        h = x + attn(norm(x, 1)) * drop[0]
        return h + ff(norm(h, 2)) * drop[2]
    h = norm(x + attn(x) * drop[0], 1)
    return norm(h + ff(h) * drop[2], 2)


def check_block_gradients(block, x, kpm=None, causal=False, seed=2):
    """dx and every parameter gradient against central differences. The key bias gets an exactly
    zero gradient (softmax ignores a constant added to a row of scores): checked to be 0, the
    query and value parts of the bias against finite differences like everything else."""
    block.zero_grad()
    y = block.forward(x, kpm, causal)
    dy = np.random.default_rng(seed).standard_normal(y.shape)
    dx = block.backward(dy)
    D = block.d_model
    inputs, analytic = {"x": x}, {"x": dx}
    for name, p in block.named_parameters():
        if name == "self_attn.qkv.b":
            assert_close(p.grad[D:2 * D], np.zeros(D), atol=1e-12 * (1 + np.abs(p.grad).max()),
                         what="gradient of the key bias (0: softmax ignores a constant shift of a row)")
            for part, cols in (("query", slice(0, D)), ("value", slice(2 * D, 3 * D))):
                inputs[f"{name} ({part})"], analytic[f"{name} ({part})"] = p.data[cols], p.grad[cols].copy()
        else:
            inputs[name], analytic[name] = p.data, p.grad.copy()
    check_gradients(lambda: block.forward(x, kpm, causal), inputs, analytic, dout=dy, h=H_STEP)


# ------------------------------------------------------------------ values and gradients without PyTorch

@pytest.mark.parametrize("masks", MASKS)
@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_block_matches_its_definition(norm_first, masks):
    block = block_of(norm_first, seed=3)
    x = x_of(seed=4)
    kpm, causal = masks_of(masks)
    assert_close(block.forward(x, key_padding_mask=kpm, causal=causal), by_definition(block, x, allowed(kpm, causal)),
                 rtol=1e-10, atol=1e-12, what=f"{'pre' if norm_first else 'post'}-LN block, masks: {masks}")


@pytest.mark.parametrize("masks", ["none", "causal+padding"])
@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_block_backward_matches_finite_differences(norm_first, masks):
    kpm, causal = masks_of(masks)
    check_block_gradients(block_of(norm_first, D=6, H=2, F=8, seed=5), x_of(D=6, seed=6), kpm, causal)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_block_dropout_with_fixed_masks(norm_first):
    """Dropout on the attention output, on the MLP's hidden units and on the MLP output, each with
    a fixed mask: the definition with the same masks, and finite differences."""
    block = block_of(norm_first, dropout=0.3, seed=7)
    rng = np.random.default_rng(8)
    drops = [(rng.random(shape) > 0.3) / 0.7 for shape in ((2, 5, 8), (2, 5, 12), (2, 5, 8))]
    for layer, mask in zip((block.sublayer1.dropout, block.ff.dropout, block.sublayer2.dropout), drops):
        fix_mask(layer, mask)
    block.train()
    x = x_of(seed=9)
    assert_close(block.forward(x, causal=True), by_definition(block, x, allowed(None, True), drops),
                 rtol=1e-10, atol=1e-12, what="block with fixed dropout masks vs its definition")
    check_block_gradients(block, x, causal=True)


def fix_mask(dropout, mask):
    """A Dropout layer that applies this scaled mask on every training forward."""
    def forward(x):
        dropout.mask = mask.astype(x.dtype) if dropout.training else None
        return x if dropout.mask is None else x * dropout.mask
    dropout.forward = forward


def test_float32_stays_float32():
    block = block_of(True, seed=10, dtype=np.float32)
    x = x_of(seed=11).astype(np.float32)
    y = block.forward(x, causal=True)
    dx = block.backward(np.ones_like(y))
    assert y.dtype == np.float32 and dx.dtype == np.float32 and block.ff.linear1.W.grad.dtype == np.float32, \
        f"expected float32 throughout, got y {y.dtype}, dx {dx.dtype}, grad {block.ff.linear1.W.grad.dtype}"
    ref = block_of(True, seed=10)
    assert_close(y, ref.forward(x.astype(np.float64), causal=True), rtol=1e-4, atol=1e-4,
                 what="float32 block vs float64")


def test_bad_input_is_refused():
    block = block_of(False, seed=12)
    x = x_of(seed=13)
    assert_close(block.forward(x), by_definition(block, x, None), rtol=1e-10, atol=1e-12, what="forward")
    with pytest.raises(ValueError):
        block.forward(x[0])                                   # not (B, T, D)
    with pytest.raises(ValueError):
        block.forward(x[..., :6])                             # wrong width
    with pytest.raises(ValueError):
        enc.EncoderBlock(8, 3)                                # 8 features do not split into 3 heads


# ------------------------------------------------------------------ properties

@settings(deadline=None, max_examples=15)
@given(st.booleans(), st.integers(2, 6), st.integers(0, 5), st.integers(0, 2**32 - 1))
def test_causal_output_at_t_ignores_later_positions(norm_first, T, t, seed):
    t = t % T
    block = block_of(norm_first, seed=seed % 1000)
    x = x_of(B=1, T=T, seed=seed)
    y = block.forward(x, causal=True)
    x2 = x.copy()
    x2[:, t + 1:] += np.random.default_rng(seed + 1).standard_normal(x2[:, t + 1:].shape)
    assert_close(block.forward(x2, causal=True)[:, :t + 1], y[:, :t + 1], rtol=1e-12, atol=1e-12,
                 what=f"causal outputs 0..{t} after changing the inputs after {t}")


# ------------------------------------------------------------------ PyTorch

def torch_block(torch, norm_first, D=8, H=2, F=12, dropout=0.0):
    return torch.nn.TransformerEncoderLayer(D, H, F, dropout=dropout, activation="gelu", batch_first=True,
                                            norm_first=norm_first, dtype=torch.float64)


def torch_run(torch, tblock, x, dy, kpm, causal):
    T = x.shape[1]
    tx = to_torch(x, requires_grad=True)
    attn_mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1) if causal else None
    ty = tblock(tx, src_mask=attn_mask, src_key_padding_mask=None if kpm is None else torch.from_numpy(kpm),
                is_causal=causal)
    ty.backward(to_torch(dy))
    return to_numpy(ty), to_numpy(tx.grad)


def compare_with_torch(torch, block, tblock, x, kpm, causal, what):
    y = block.forward(x, kpm, causal)
    dy = np.random.default_rng(14).standard_normal(y.shape)
    dx = block.backward(dy)
    ty, tdx = torch_run(torch, tblock, x, dy, kpm, causal)
    assert_close(y, ty, rtol=1e-9, atol=1e-11, what=f"output vs torch ({what})")
    assert_close(dx, tdx, rtol=1e-9, atol=1e-11, what=f"dx vs torch ({what})")
    tgrads = {n: to_numpy(p.grad) for n, p in tblock.named_parameters()}
    for name, tname in enc.torch_names(block).items():
        g = tgrads[tname]
        assert_close(dict(block.named_parameters())[name].grad, g.T if g.ndim == 2 else g, rtol=1e-8,
                     atol=1e-10, what=f"{name}.grad vs torch {tname}.grad ({what})")


@pytest.mark.parametrize("masks", MASKS)
@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_block_matches_torch_transformer_encoder_layer(norm_first, masks):
    torch = torch_or_skip()
    torch.manual_seed(15)
    tblock = torch_block(torch, norm_first)
    with torch.no_grad():
        for p in tblock.parameters():
            p.add_(0.2 * torch.randn_like(p))                 # non-trivial biases and LayerNorm parameters
    block = enc.EncoderBlock(8, 2, 12, dropout=0.0, norm_first=norm_first, dtype=np.float64)
    block.load_torch_state_dict({k: to_numpy(v) for k, v in tblock.state_dict().items()})
    kpm, causal = masks_of(masks)
    compare_with_torch(torch, block, tblock, x_of(seed=16), kpm, causal,
                       f"{'pre' if norm_first else 'post'}-LN, masks: {masks}")


class FixedMask:
    """A torch module standing in for a Dropout layer: multiplies by a given mask."""

    def __new__(cls, torch, mask):
        class _Mask(torch.nn.Module):
            def forward(self, x):
                return x * to_torch(mask)
        return _Mask()


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_block_dropout_matches_torch_with_the_same_masks(norm_first):
    """torch's dropout1, dropout and dropout2 replaced by the same fixed masks as ours (torch's
    attention-weight dropout, which this block does not have, is switched off)."""
    torch = torch_or_skip()
    torch.manual_seed(17)
    tblock = torch_block(torch, norm_first, dropout=0.3)
    tblock.self_attn.dropout = 0.0
    block = enc.EncoderBlock(8, 2, 12, dropout=0.3, norm_first=norm_first, dtype=np.float64)
    block.load_torch_state_dict({k: to_numpy(v) for k, v in tblock.state_dict().items()})
    rng = np.random.default_rng(18)
    drops = [(rng.random(shape) > 0.3) / 0.7 for shape in ((2, 5, 8), (2, 5, 12), (2, 5, 8))]
    for layer, mask in zip((block.sublayer1.dropout, block.ff.dropout, block.sublayer2.dropout), drops):
        fix_mask(layer, mask)
    tblock.dropout1, tblock.dropout, tblock.dropout2 = (FixedMask(torch, m) for m in drops)
    block.train()
    tblock.train()
    compare_with_torch(torch, block, tblock, x_of(seed=19), PAD, True, "dropout with fixed masks")


def test_loader_refuses_wrong_names_and_shapes_and_changes_nothing():
    block = block_of(False, seed=20)
    x = x_of(seed=21)
    before = block.forward(x)
    good = {tname: (np.zeros(p.shape[::-1]) if p.data.ndim == 2 else np.zeros(p.shape))
            for name, p in block.named_parameters() for tname in [enc.torch_names(block)[name]]}
    for bad in ({**good, "linear1.weight": np.zeros((8, 12))},            # our layout, not torch's
                {k: v for k, v in good.items() if k != "norm2.bias"},
                {**good, "extra": np.zeros(1)}):
        with pytest.raises(ValueError):
            block.load_torch_state_dict(bad)
        assert_close(block.forward(x), before, rtol=0, atol=0, what="output after a refused load (unchanged)")
    block.load_torch_state_dict({**good, "norm2.bias": np.full(8, 0.5)})
    assert_close(block.forward(x), np.full_like(x, 0.5), rtol=0, atol=1e-12,
                 what="post-LN block loaded with zero weights and norm2.bias = 0.5: every output is 0.5")
