"""Topic 24: additive attention, forward and backward, against the formula written out, finite
differences and PyTorch; masking of padded source positions."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.seq2seq.bahdanau import BahdanauAttention, additive_attention, additive_attention_backward
from dlfs.testing import assert_close, check_layer, check_op
from torch_oracle import torch_or_skip

N, S, DQ, DV, A = 3, 5, 4, 6, 3
LENGTHS = np.array([5, 2, 4])
MASK = np.arange(S)[None, :] < LENGTHS[:, None]


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    s, h = rng.standard_normal((N, DQ)), rng.standard_normal((N, S, DV))
    h[~MASK] = 0.0                          # as a packed encoder leaves them
    return s, h


def layer(seed=1, dtype=np.float64):
    return BahdanauAttention(DQ, DV, A, rng=seed, dtype=dtype)


def test_the_layer_computes_the_formula(by_hand):
    att = layer()
    s, h = inputs()
    context, weights = att.forward(s, h, MASK)
    ref_c, ref_w = by_hand.attention(s, h, MASK, att.W_q.data, att.W_k.data, att.b_k.data, att.v.data)
    assert_close(weights, ref_w, rtol=1e-12, atol=1e-14, what="weights: softmax of v·tanh(s W_q + h_j W_k + b_k)")
    assert_close(context, ref_c, rtol=1e-12, atol=1e-14, what="context: Σ_j α_j h_j")


def test_the_function_takes_precomputed_keys(by_hand):
    att = layer(2)
    s, h = inputs(3)
    keys = h @ att.W_k.data + att.b_k.data
    context, weights, _ = additive_attention(s, keys, h, MASK, att.W_q.data, att.v.data)
    ref_c, ref_w = by_hand.attention(s, h, MASK, att.W_q.data, att.W_k.data, att.b_k.data, att.v.data)
    assert_close(weights, ref_w, rtol=1e-12, atol=1e-14, what="weights from precomputed keys")
    assert_close(context, ref_c, rtol=1e-12, atol=1e-14, what="context from precomputed keys")


def test_padded_positions_get_weight_exactly_zero_and_change_nothing():
    att = layer(4)
    s, h = inputs(5)
    context, weights = att.forward(s, h, MASK)
    assert np.all(weights[~MASK] == 0.0), f"padded weights must be exactly 0, got {weights[~MASK]}"
    assert_close(weights.sum(axis=1), np.ones(N), rtol=1e-14, atol=1e-14, what="weights sum to 1 over real positions")
    dcontext = np.random.default_rng(6).standard_normal((N, DV))
    att.zero_grad()
    ds, dh = att.backward(dcontext)
    grads = {n: p.grad.copy() for n, p in att.named_parameters()}
    assert np.all(dh[~MASK] == 0.0), "no gradient reaches padded encoder outputs"

    other = h.copy()
    other[~MASK] = 50.0 * np.random.default_rng(7).standard_normal(other[~MASK].shape)
    context2, weights2 = att.forward(s, other, MASK)
    att.zero_grad()
    ds2, dh2 = att.backward(dcontext)
    assert_close(context2, context, rtol=0, atol=0, what="context with other values at padded positions")
    assert_close(weights2, weights, rtol=0, atol=0, what="weights with other values at padded positions")
    assert_close(ds2, ds, rtol=0, atol=0, what="dquery with other values at padded positions")
    assert_close(dh2[MASK], dh[MASK], rtol=0, atol=0, what="dvalues at real positions")
    for n, p in att.named_parameters():
        assert_close(p.grad, grads[n], rtol=0, atol=0, what=f"{n}.grad with other values at padded positions")


def test_the_functions_match_finite_differences():
    att = layer(8)
    s, h = inputs(9)
    keys = h @ att.W_k.data + att.b_k.data + 0.1 * np.random.default_rng(10).standard_normal((N, S, A))

    def forward(q, k, vals, mask, W_q, v):
        return additive_attention(q, k, vals, mask, W_q, v)[:2]

    def backward(dy, q, k, vals, mask, W_q, v):
        cache = additive_attention(q, k, vals, mask, W_q, v)[2]
        return additive_attention_backward(dy[0], dy[1], cache, W_q, v)

    check_op(forward, backward, (s, keys, h, MASK), {"W_q": att.W_q.data.copy(), "v": att.v.data.copy()},
             input_names=("query", "keys", "values", "mask"), what="additive_attention")


def test_the_layer_matches_finite_differences():
    check_layer(layer(11), (*inputs(12), MASK), input_names=("query", "values", "mask"))


def test_the_layer_matches_pytorch(by_hand):
    check_layer(layer(13), (*inputs(14), MASK), input_names=("query", "values", "mask"),
                torch_fn=lambda torch, s, h, mask, **p: by_hand.torch_attention(torch, s, h, mask, **p),
                oracle=torch_or_skip, rtol=1e-10, atol=1e-12)


@settings(deadline=None, max_examples=20)
@given(seed=st.integers(0, 10_000), length=st.integers(1, S))
def test_reordering_the_source_reorders_the_weights_and_keeps_the_context(seed, length):
    att = layer(seed % 7)
    rng = np.random.default_rng(seed)
    s, h = rng.standard_normal((1, DQ)), rng.standard_normal((1, S, DV))
    mask = np.arange(S)[None, :] < length
    perm = np.concatenate([rng.permutation(length), np.arange(length, S)])
    c1, w1 = att.forward(s, h, mask)
    c2, w2 = att.forward(s, h[:, perm], mask)
    assert_close(w2, w1[:, perm], rtol=1e-12, atol=1e-14, what="weights follow their source positions")
    assert_close(c2, c1, rtol=1e-12, atol=1e-13, what="the context is a weighted sum: order does not matter")
    assert np.all(w1[~mask] == 0.0) and abs(w1.sum() - 1.0) < 1e-12


def test_float32_stays_float32():
    att = layer(15, dtype=np.float32)
    s, h = (a.astype(np.float32) for a in inputs(16))
    context, weights = att.forward(s, h, MASK)
    ds, dh = att.backward(np.ones((N, DV), dtype=np.float32))
    assert {context.dtype, weights.dtype, ds.dtype, dh.dtype, att.W_q.grad.dtype, att.v.grad.dtype} == {np.dtype(np.float32)}
