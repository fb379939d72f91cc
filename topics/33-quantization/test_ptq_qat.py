"""Topic 33: post-training quantisation of a small GPT, activation calibration, model sizes, and
quantisation-aware training's straight-through backward."""

import numpy as np
import pytest

from dlfs.nn.layers import Linear
from dlfs.quant import ptq, qat
from dlfs.quant import quantize as Q
from dlfs.quant.quantize import QScheme
from dlfs.testing import assert_close, check_op
from dlfs.transformer.gpt import GPT, GPTConfig

CFG = GPTConfig(vocab_size=17, block_size=8, n_layer=2, n_head=2, n_embd=32)


def small_gpt(dtype=np.float64):
    return GPT(CFG, rng=0, dtype=dtype)


def ids(seed=0, B=3):
    return np.random.default_rng(seed).integers(0, 17, (B, 8))


def test_weight_only_quantisation_replaces_every_projection_and_leaves_the_model():
    model = small_gpt()
    before = model.state_dict()
    qmodel, params = ptq.quantize_weights(model, ptq.WEIGHT_INT8)
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items()), "the float model changed"
    names = [n for n, _ in ptq.projection_layers(model)]
    assert sorted(params) == sorted(names) and len(names) == 2 * 4, f"expected 8 projections, got {names}"
    for name, layer in ptq.projection_layers(qmodel):
        W = dict(ptq.projection_layers(model))[name].W.data
        expected = Q.dequantize(Q.quantize(W, params[name]), params[name])
        assert_close(layer.W.data, expected, rtol=0, atol=0, what=f"{name}.W after int8 PTQ")
        assert len(np.unique(layer.W.data[:, 0])) <= 255
    assert np.array_equal(qmodel.wte.W.data, model.wte.W.data), "the embedding must stay float"
    x = ids()
    y, yq = model.forward(x), qmodel.forward(x)
    assert np.abs(yq - y).max() < 1e-2 * np.abs(y).max(), "int8 weights moved the logits by more than 1%"


def test_model_bytes():
    model = small_gpt(np.float32)
    n = model.num_parameters()
    assert ptq.model_bytes(model) == 4 * n
    proj = [layer.W for _, layer in ptq.projection_layers(model)]
    n_proj = sum(W.size for W in proj)
    int8 = ptq.model_bytes(model, ptq.WEIGHT_INT8)
    assert int8 == 4 * (n - n_proj) + n_proj + 4 * sum(W.shape[1] for W in proj)
    int4 = ptq.model_bytes(model, ptq.WEIGHT_INT4_G32)
    assert int4 == 4 * (n - n_proj) + n_proj // 2 + 4 * (n_proj // 32)
    assert ptq.weight_bytes((64, 8), QScheme(8, symmetric=False, axis=1)) == 64 * 8 + 8 * 4 + 8


@pytest.mark.parametrize("method", ["minmax", "percentile"])
def test_activation_calibration_then_quantisation(method):
    model = ptq.quantize_weights(small_gpt(), ptq.WEIGHT_INT8)[0]
    ref = model.forward(ids(1))
    calib = [ids(s) for s in range(4)]
    quantizer = ptq.calibrate(model, calib, ptq.ACT_INT8, method=method)
    assert set(quantizer.params) == {n for n, _ in ptq.projection_layers(model)}
    out = model.forward(ids(1))
    assert np.isfinite(out).all() and 0 < np.abs(out - ref).max() < 0.05 * np.abs(ref).max(), \
        f"int8 activations changed the logits by {np.abs(out - ref).max()} (max |logit| {np.abs(ref).max()})"
    quantizer.remove()
    assert_close(model.forward(ids(1)), ref, rtol=0, atol=0, what="logits after removing the quantiser")


def test_activation_inputs_are_on_the_grid():
    model = small_gpt()
    quantizer = ptq.calibrate(model, [ids(0)], ptq.ACT_INT8)
    layer = ptq.projection_layers(model)[2][1]                      # blocks.0.ff.linear1
    p = quantizer.params[ptq.projection_layers(model)[2][0]]
    model.forward(ids(5))
    x = layer.x if hasattr(layer, "x") else layer.cache
    x = x[0] if isinstance(x, tuple) else x
    codes = x / p.scale.ravel()[0] + p.zero_point.ravel()[0]
    assert_close(codes, np.rint(codes), rtol=0, atol=1e-4, what="the quantised input of ff.linear1, in steps")
    assert codes.min() > -0.5 and codes.max() < 255.5, "codes outside [0, 255]"


def test_percentile_range_is_narrower_than_minmax():
    model = small_gpt()
    mm = ptq.calibrate(model, [ids(s) for s in range(3)], ptq.ACT_INT8, "minmax")
    mm.remove()
    pc = ptq.calibrate(model, [ids(s) for s in range(3)], ptq.ACT_INT8, "percentile", percentile=99.0)
    for name in mm.params:
        assert pc.params[name].scale.ravel()[0] < mm.params[name].scale.ravel()[0], name


def test_qat_linear_matches_finite_differences_with_the_quantised_weight():
    layer = Linear(6, 4, rng=0, dtype=np.float64)
    scheme = QScheme(4, axis=1)
    qat.FakeQuantWeights(layer, scheme)
    x = np.random.default_rng(1).standard_normal((5, 6))
    y = layer.forward(x)
    W_hat, _ = Q.fake_quantize(layer.W.data, Q.compute_qparams(layer.W.data, scheme))
    assert_close(y, x @ W_hat + layer.b.data, rtol=1e-12, atol=1e-12, what="QAT forward uses Ŵ")
    dy = np.random.default_rng(2).standard_normal(y.shape)
    layer.zero_grad()
    dx = layer.backward(dy)
    assert_close(dx, dy @ W_hat.T, rtol=1e-12, atol=1e-12, what="dx through Ŵ")
    assert_close(layer.W.grad, x.T @ dy, rtol=1e-12, atol=1e-12,
                 what="min-max scales clamp nothing: the STE passes dL/dŴ to every W")
    assert_close(layer.b.grad, dy.sum(0), what="bias gradient")
    check_op(lambda x: layer.forward(x), lambda dy, x: layer.backward(dy), x,
             what="QAT linear, dx against finite differences (W is held fixed)")
    qat.remove_fake_quant(layer)
    assert_close(layer.forward(x), x @ layer.W.data + layer.b.data, what="the plain layer after remove_fake_quant")


def test_qat_blocks_the_gradient_of_clamped_weights():
    layer = Linear(3, 2, rng=0, dtype=np.float64)
    layer.W.data[...] = [[0.1, -0.2], [0.3, 0.05], [-0.9, 0.4]]
    scheme = QScheme(4, axis=None)
    qat.FakeQuantWeights(layer, scheme)
    # scales from a narrower range: the largest weight is clamped
    import dlfs.quant.qat as qat_module
    real = qat_module.compute_qparams
    qat_module.compute_qparams = lambda W, s: Q.QParams(np.array(0.1), np.array(0, np.int32), s)
    try:
        layer.forward(np.ones((1, 3)))
        layer.zero_grad()
        layer.backward(np.ones((1, 2)))
    finally:
        qat_module.compute_qparams = real
    expected = np.ones((3, 2))
    expected[2, 0] = 0.0                                              # −0.9 / 0.1 = −9 < −7: clamped
    assert_close(layer.W.grad, expected, what="STE gradient: 0 exactly where the weight was clamped")


def test_qat_gpt_trains_through_fake_quantisation():
    model = qat.prepare_qat(small_gpt(), QScheme(4, axis=1))
    x = ids(3)
    logits = model.forward(x)
    model.zero_grad()
    model.backward(np.ones_like(logits) / logits.size)
    grads = [p.grad for _, layer in ptq.projection_layers(model) for p in [layer.W]]
    assert all(np.abs(g).max() > 0 for g in grads), "a projection weight got no gradient under QAT"
    qat.finish_qat(model)
    qmodel, _ = ptq.quantize_weights(model, QScheme(4, axis=1))
    assert_close(qmodel.forward(x), logits, rtol=1e-10, atol=1e-10,
                 what="after QAT, the int4 model computes what the fake-quantised one did")
