"""The airbench pieces of Milestone 17: the network (dlfs.conv.airbench), patch whitening
(dlfs.train.whitening), lookahead (dlfs.train.lookahead), flip-and-translate test-time
augmentation and the presets (dlfs.milestones.cifar_resnet)."""

from types import SimpleNamespace

import numpy as np
import pytest

from dlfs.conv.airbench import AirbenchNet, BiasScaledBatchNorm2d, conv_group
from dlfs.conv.im2col import Conv2d
from dlfs.nn.batchnorm import BatchNorm2d
from dlfs.course.milestones import RunOptions
from dlfs.milestones import cifar_resnet
from dlfs.nn.layers import Parameter, Sequential
from dlfs.optim.optimizers import SGD
from dlfs.testing import assert_close, check_layer, randomize_batchnorm
from dlfs.train.lookahead import Lookahead
from dlfs.train.recipe import (
    History,
    TrainConfig,
    fit,
    load_checkpoint,
    run_signature,
    save_checkpoint,
)
from dlfs.train.whitening import image_patches, init_whitening, patch_whitening_filters
from linear_model import LinearModel


def correlated_images(n=64, size=8, seed=0):
    """Images whose neighbouring pixels and channels are strongly correlated (like photographs)."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, 1, size + 1, size + 1))
    smooth = base[..., 1:, 1:] + base[..., :-1, 1:] + base[..., 1:, :-1] + base[..., :-1, :-1]
    return np.concatenate([smooth, 0.5 * smooth + 0.3 * rng.standard_normal(smooth.shape),
                           -smooth + 0.1 * rng.standard_normal(smooth.shape)], axis=1) + 2.0


# -- patch whitening ----------------------------------------------------------------------

def test_image_patches_are_the_filter_layout_of_each_window():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    got = image_patches(x, 2)
    assert got.shape == (2 * 3 * 4, 12), got.shape
    expected = np.stack([x[n, :, i:i + 2, j:j + 2].ravel() for n in range(2) for i in range(3) for j in range(4)])
    assert_close(got, expected, rtol=0, atol=0, what="image_patches vs a loop over windows")


def test_whitened_patches_have_identity_covariance_up_to_eps():
    x = correlated_images()
    eps = 1e-6
    conv = Conv2d(3, 24, 2, bias=True, rng=0, dtype=np.float64)
    eigenvalues = init_whitening(conv, x, eps=eps)
    z = conv.forward(x).transpose(0, 2, 3, 1).reshape(-1, 24)
    cov = np.cov(z[:, :12], rowvar=False)
    assert_close(cov, np.diag(eigenvalues / (eigenvalues + eps)), rtol=1e-7, atol=1e-9,
                 what="covariance of the whitened patches = diag(λ / (λ + eps))")
    assert_close(cov, np.eye(12), rtol=0, atol=eps / eigenvalues.min() * 1.01,
                 what="whitened patches have identity covariance up to eps / λ_min")
    assert_close(z[:, 12:], -z[:, :12], rtol=0, atol=0, what="the second half of the channels is the negated first")
    assert np.all(conv.b.data == 0), "init_whitening zeroes the bias"


def test_whitening_filters_are_scaled_eigenvectors_largest_first():
    x = correlated_images(seed=1)
    eps = 5e-4
    filters, eigenvalues = patch_whitening_filters(x, 2, eps)
    assert filters.shape == (24, 3, 2, 2) and eigenvalues.shape == (12,), (filters.shape, eigenvalues.shape)
    assert np.all(np.diff(eigenvalues) <= 0), f"eigenvalues must decrease, got {eigenvalues}"
    patches = np.stack([x[n, :, i:i + 2, j:j + 2].ravel() for n in range(len(x))
                        for i in range(8 - 1) for j in range(8 - 1)])
    centred = patches - patches.mean(axis=0)
    cov = centred.T @ centred / (len(patches) - 1)
    v = filters[:12].reshape(12, 12) * np.sqrt(eigenvalues + eps)[:, None]      # unit eigenvectors
    assert_close(v @ v.T, np.eye(12), rtol=0, atol=1e-10, what="the filters' directions are orthonormal")
    assert_close(v @ cov, eigenvalues[:, None] * v, rtol=1e-8, atol=1e-10, what="Σ v_i = λ_i v_i")
    assert eigenvalues[0] > 10 * eigenvalues[-1], "the example's patches must be correlated"


def test_init_whitening_refuses_a_layer_of_the_wrong_shape_and_a_bad_eps():
    x = correlated_images(n=4)
    conv = Conv2d(3, 12, 2, rng=0)
    before = conv.W.data.copy()
    with pytest.raises(ValueError, match=r"weights \(24, 3, 2, 2\).*\(12, 3, 2, 2\)"):
        init_whitening(conv, x)
    assert np.array_equal(conv.W.data, before), "a refused layer is left as it was"
    with pytest.raises(ValueError, match="eps must be > 0"):
        patch_whitening_filters(x, 2, eps=0.0)


# -- the network --------------------------------------------------------------------------

def conv_params(c_in, c_out, k, bias):
    return c_out * c_in * k * k + (c_out if bias else 0)


@pytest.mark.parametrize("bn_bias_scale", [8.0, None])
@pytest.mark.parametrize("widths", [(64, 256, 256), (32, 64, 64)])
def test_parameter_count_leaves_out_the_frozen_whitening_filters(widths, bn_bias_scale):
    w1, w2, w3 = widths
    per_channel = 1 if bn_bias_scale else 2                        # airbench's BN trains β only
    expected = (24 +                                              # the whitening bias only
                conv_params(24, w1, 3, False) + conv_params(w1, w1, 3, False) +
                conv_params(w1, w2, 3, False) + conv_params(w2, w2, 3, False) +
                conv_params(w2, w3, 3, False) + conv_params(w3, w3, 3, False) +
                2 * per_channel * (w1 + w2 + w3) +                 # six BatchNorms
                w3 * 10)                                           # the head, no bias
    model = AirbenchNet(widths, rng=0, bn_bias_scale=bn_bias_scale)
    assert model.num_parameters() == expected, f"expected {expected:,} parameters, got {model.num_parameters():,}"
    assert all(p is not model.whiten.W for p in model.parameters()), "the whitening filters are not trained"
    norms = [layer for layer in model.net.layers if isinstance(layer, BatchNorm2d)]
    assert len(norms) == 6 and all(bn.momentum == 0.4 for bn in norms), [bn.momentum for bn in norms]
    assert all(isinstance(bn, BiasScaledBatchNorm2d) == bool(bn_bias_scale) for bn in norms)


def test_forward_shapes_and_the_frozen_filters_survive_state_dict_and_training():
    model = AirbenchNet((4, 8, 8), rng=0)
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    init_whitening(model.whiten, x)
    filters = model.whiten.W.data.copy()
    logits = model.forward(x)
    assert logits.shape == (3, 10) and logits.dtype == np.float32, (logits.shape, logits.dtype)
    opt = SGD(model.parameters(), lr=0.1)
    model.backward(np.ones_like(logits))
    assert model.whiten.W.grad is None and model.whiten.b.grad is not None
    opt.step()
    assert np.array_equal(model.whiten.W.data, filters), "a training step must not move the whitening filters"
    state = model.state_dict()
    assert_close(state["whiten_W"], filters, rtol=0, atol=0, what="state_dict()['whiten_W']")
    other = AirbenchNet((4, 8, 8), rng=1)
    other.load_state_dict(state)
    assert_close(other.whiten.W.data, filters, rtol=0, atol=0, what="loaded whitening filters")
    other.eval(), model.eval()
    assert_close(other.forward(x), model.forward(x), rtol=0, atol=0, what="loaded model's logits")
    with pytest.raises(ValueError, match=r"\(N, C, 32, 32\)"):
        model.forward(x[..., :16, :16])
    with pytest.raises(ValueError, match="too small"):
        AirbenchNet((4, 8, 8), image_size=8)


def grads_after_backward(model, x, dy):
    model.zero_grad()
    model.forward(x)
    returned = model.backward(dy)
    return returned, {name: None if p.grad is None else p.grad.copy() for name, p in model.named_parameters()}


def test_without_input_grad_the_parameter_gradients_are_the_same_and_nothing_is_returned():
    x = np.random.default_rng(0).standard_normal((4, 3, 16, 16))
    dy = np.random.default_rng(1).standard_normal((4, 10))
    full = AirbenchNet((3, 4, 5), rng=0, dtype=np.float64, image_size=16)
    lean = AirbenchNet((3, 4, 5), rng=0, dtype=np.float64, image_size=16, input_grad=False)
    dx, want = grads_after_backward(full, x, dy)
    none, got = grads_after_backward(lean, x, dy)
    assert dx.shape == x.shape and none is None, "input_grad=False: backward returns None"
    for name in want:
        assert_close(got[name], want[name], rtol=1e-12, atol=1e-15, what=f"{name} without input_grad")
    assert lean.whiten.W.grad is None


@pytest.mark.parametrize("input_grad", [True, False])
def test_the_whitening_bias_freezes_after_its_steps_and_a_loaded_model_keeps_the_count(input_grad):
    x = np.random.default_rng(0).standard_normal((4, 3, 16, 16))
    dy = np.random.default_rng(1).standard_normal((4, 10))
    reference = AirbenchNet((3, 4, 5), rng=0, dtype=np.float64, image_size=16)
    model = AirbenchNet((3, 4, 5), rng=0, dtype=np.float64, image_size=16, input_grad=input_grad,
                        whiten_bias_steps=2)
    _, want = grads_after_backward(reference, x, dy)
    for step in (1, 2):
        _, got = grads_after_backward(model, x, dy)
        assert got["whiten.b"] is not None, f"the bias trains in backward pass {step} of 2"
        assert_close(got["whiten.b"], want["whiten.b"], rtol=1e-12, atol=1e-15, what=f"whiten.b, pass {step}")
    assert "whiten_bias_steps_done" in model.state_dict() and "whiten_bias_steps_done" not in reference.state_dict()
    resumed = AirbenchNet((3, 4, 5), rng=5, dtype=np.float64, image_size=16, input_grad=input_grad,
                          whiten_bias_steps=2)
    resumed.load_state_dict(model.state_dict())
    for net in (model, resumed):
        dx, got = grads_after_backward(net, x, dy)
        assert got["whiten.b"] is None, f"after 2 passes the whitening bias is frozen; got {got['whiten.b']}"
        for name in want:
            if name != "whiten.b":
                assert_close(got[name], want[name], rtol=1e-12, atol=1e-15, what=f"{name} with the bias frozen")
        assert (dx is None) == (not input_grad)
        if input_grad:
            assert_close(dx, reference.backward(dy), rtol=1e-12, atol=1e-15, what="dx with the bias frozen")
    assert int(model.state_dict()["whiten_bias_steps_done"]) == 3


def test_sgd_leaves_a_frozen_whitening_bias_where_it_is():
    model = AirbenchNet((3, 4, 5), rng=0, image_size=16, input_grad=False, whiten_bias_steps=1)
    x = np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32)
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    moved = []
    for _ in range(3):
        before = model.whiten.b.data.copy()
        model.zero_grad()
        model.backward(np.ones((4, 10), np.float32) * 0 + model.forward(x))
        opt.step()
        moved.append(not np.array_equal(before, model.whiten.b.data))
    assert moved == [True, False, False], f"the bias should move in step 1 only: {moved}"


@pytest.mark.parametrize("train", [True, False])
def test_parameter_gradients_match_finite_differences(train):
    # every parameter of the network; dx is checked against PyTorch below (in a network this
    # deep many entries of dx are ~1e-8, where central differences are all rounding error)
    model = AirbenchNet((3, 4, 5), num_classes=4, rng=0, dtype=np.float64, image_size=16,
                        dirac=False)   # a dirac filter's centre tap has a near-zero gradient under BN
    randomize_batchnorm(model, seed=1)
    x = np.random.default_rng(2).standard_normal((4, 3, 16, 16))
    errors = check_layer(model, x, train=train, seed=3, grad_inputs=[]).errors
    assert len(errors) == len(model.parameters()), f"every parameter is checked: {sorted(errors)}"


@pytest.mark.parametrize("gelu", ["tanh", "none"])
@pytest.mark.parametrize("train", [True, False])
def test_a_conv_group_matches_finite_differences(train, gelu):
    group = Sequential(*conv_group(3, 4, np.random.default_rng(0), np.float64, gelu, dirac=False))
    randomize_batchnorm(group, seed=1)
    # step 1e-5: at 1e-6 the rounding of the batch statistics alone reaches a relative 2e-6
    check_layer(group, np.random.default_rng(2).standard_normal((6, 3, 6, 6)), train=train, seed=3, h=1e-5)


def test_the_network_matches_the_same_network_in_pytorch():
    from torch_oracle import to_numpy, to_torch, torch_or_skip

    torch = torch_or_skip()
    model = AirbenchNet((3, 4, 5), num_classes=4, rng=0, dtype=np.float64, image_size=16)
    randomize_batchnorm(model, seed=1)
    x = np.random.default_rng(2).standard_normal((4, 3, 16, 16))
    nn = torch.nn

    def group(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(c_out),
                nn.GELU(approximate="tanh"), nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                nn.GELU(approximate="tanh")]

    net = nn.Sequential(nn.Conv2d(3, 24, 2), nn.GELU(approximate="tanh"), *group(24, 3), *group(3, 4), *group(4, 5),
                        nn.MaxPool2d(1), nn.Flatten(), nn.Linear(5, 4, bias=False)).double()
    ours = [model.whiten] + [layer for layer in model.net.layers]
    with torch.no_grad():
        for mine, theirs in zip(ours, net):
            if isinstance(mine, BiasScaledBatchNorm2d):       # its β is bias_scale · bias
                mine.beta.data[...] = mine.bias_scale * mine.bias.data
            for a, b in (("W", "weight"), ("b", "bias"), ("gamma", "weight"), ("beta", "bias"),
                         ("running_mean", "running_mean"), ("running_var", "running_var")):
                value = getattr(mine, a, None)
                value = value if value is None or isinstance(value, np.ndarray) else value.data  # Parameter or fixed
                if value is not None and hasattr(theirs, b):
                    getattr(theirs, b).copy_(to_torch(value.T if a == "W" and value.ndim == 2 else value))
    net.train()
    tx = to_torch(x).requires_grad_(True)
    out = net(tx) / 9
    dy = np.random.default_rng(4).standard_normal(out.shape)
    out.backward(to_torch(dy))
    model.train()
    assert_close(model.forward(x), to_numpy(out), rtol=1e-10, atol=1e-12, what="logits vs torch")
    assert_close(model.backward(dy), to_numpy(tx.grad), rtol=1e-9, atol=1e-12, what="dx vs torch")
    assert_close(model.whiten.b.grad, to_numpy(net[0].bias.grad), rtol=1e-9, atol=1e-12,
                 what="whitening bias gradient vs torch")


# -- airbench's BatchNorm ---------------------------------------------------------------------

@pytest.mark.parametrize("train", [True, False])
def test_bias_scaled_batchnorm_is_batchnorm_with_a_scaled_shift(train):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 5, 5))
    bn = BiasScaledBatchNorm2d(3, bias_scale=8.0, momentum=0.4, dtype=np.float64)
    bn.bias.data[...] = rng.standard_normal(3)
    plain = BatchNorm2d(3, momentum=0.4, dtype=np.float64)
    plain.beta.data[...] = 8.0 * bn.bias.data
    for layer in (bn, plain):
        layer.train(train)
        layer.running_mean[...], layer.running_var[...] = [0.1, -0.2, 0.3], [0.5, 1.5, 2.0]
    assert_close(bn.forward(x), plain.forward(x), rtol=1e-12, atol=1e-12, what="forward vs BatchNorm2d, β = 8·bias")
    assert_close(bn.running_mean, plain.running_mean, rtol=1e-12, atol=0, what="running mean (momentum 0.4)")
    dy = rng.standard_normal(x.shape)
    assert_close(bn.backward(dy), plain.backward(dy), rtol=1e-12, atol=1e-12, what="dx vs BatchNorm2d")
    assert_close(bn.bias.grad, 8.0 * plain.beta.grad, rtol=1e-12, atol=1e-12, what="bias.grad = 8·∂L/∂β")
    assert bn.gamma.grad is None and bn.beta.grad is None, "γ and β keep no gradient"


@pytest.mark.parametrize("train", [True, False])
def test_bias_scaled_batchnorm_matches_finite_differences(train):
    bn = BiasScaledBatchNorm2d(3, bias_scale=8.0, dtype=np.float64)
    bn.bias.data[...] = np.random.default_rng(1).standard_normal(3)
    x = np.random.default_rng(2).standard_normal((4, 3, 4, 4))
    errors = check_layer(bn, x, train=train, seed=3, h=1e-5).errors
    assert "bias" in errors, f"the bias gradient is checked: {sorted(errors)}"


def test_sgd_on_the_scaled_bias_is_sgd_on_the_shift_with_64_times_the_learning_rate():
    # airbench's optimiser: BN shifts at lr·64 with the same decay per step as everything else
    lr, wd, momentum, s = 0.05, 0.01, 0.85, 8.0
    rng = np.random.default_rng(0)
    bn = BiasScaledBatchNorm2d(2, bias_scale=s, dtype=np.float64)
    opt = SGD([bn.bias], lr=lr, momentum=momentum, nesterov=True, weight_decay=wd)
    beta = Parameter(np.zeros(2))
    ref = SGD([beta], lr=lr * s * s, momentum=momentum, nesterov=True, weight_decay=wd / (s * s))
    for _ in range(5):
        x, dy = rng.standard_normal((3, 2, 2, 2)), rng.standard_normal((3, 2, 2, 2))
        bn.forward(x)
        opt.zero_grad()
        bn.backward(dy)
        beta.grad = bn.bias.grad / s                     # ∂L/∂β
        opt.step(), ref.step()
        assert_close(s * bn.bias.data, beta.data, rtol=1e-12, atol=1e-14, what="β = 8·bias after each step")


def test_airbench_batchnorm_state_is_the_bias_and_the_running_statistics():
    model = AirbenchNet((4, 8, 8), rng=0)
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    model.forward(x)
    state = model.state_dict()
    bn_keys = sorted(k.split(".")[-1] for k in state if k.startswith("net.layers.3."))
    assert bn_keys == ["bias", "running_mean", "running_var"], bn_keys
    names = [name.split(".")[-1] for name, _ in model.named_parameters()]
    assert "gamma" not in names and "beta" not in names, f"γ and β are not parameters: {names}"


# -- lookahead ----------------------------------------------------------------------------

def test_lookahead_follows_its_recurrence():
    rng = np.random.default_rng(0)
    p = Parameter(rng.standard_normal(3))
    grads = rng.standard_normal((7, 3))
    opt = Lookahead(SGD([p], lr=0.1), every=3, alpha=0.25)
    fast, slow = p.data.copy(), p.data.copy()
    for t, g in enumerate(grads, start=1):
        p.grad = g.copy()
        opt.step()
        fast = fast - 0.1 * g
        if t % 3 == 0:
            slow = slow + 0.25 * (fast - slow)
            fast = slow.copy()
        assert_close(p.data, fast, rtol=1e-14, atol=0, what=f"weights after step {t}")
        assert_close(opt.slow[0], slow, rtol=1e-14, atol=0, what=f"slow weights after step {t}")
    assert opt.steps == 7


def test_lookahead_alpha_ramps_as_airbench_when_given_the_total_steps():
    rng = np.random.default_rng(3)
    p = Parameter(rng.standard_normal(2))
    grads = rng.standard_normal((8, 2))
    opt = Lookahead(SGD([p], lr=0.1), every=2, alpha=0.2, total_steps=8)
    fast, slow = p.data.copy(), p.data.copy()
    for t, g in enumerate(grads, start=1):
        p.grad = g.copy()
        opt.step()
        fast = fast - 0.1 * g
        if t % 2 == 0:
            alpha = 1 - 0.8 * (t / 8) ** 3
            slow = slow + alpha * (fast - slow)
            fast = slow.copy()
        assert_close(p.data, fast, rtol=1e-14, atol=0, what=f"weights after step {t}")
    assert opt.alpha_at(0) == 1.0 and opt.alpha_at(8) == pytest.approx(0.2) and opt.alpha_at(80) == pytest.approx(0.2)


def test_lookahead_with_alpha_one_is_the_plain_optimiser_and_forwards_lr():
    rng = np.random.default_rng(1)
    a = Parameter(rng.standard_normal(4))
    b = Parameter(a.data.copy())
    plain, wrapped = SGD([a], lr=0.1, momentum=0.9), Lookahead(SGD([b], lr=0.1, momentum=0.9), 2, 1.0)
    wrapped.lr = 0.05
    plain.lr = 0.05
    assert wrapped.optimizer.lr == 0.05 and wrapped.lr == 0.05
    for g in rng.standard_normal((5, 4)):
        a.grad, b.grad = g.copy(), g.copy()
        plain.step(), wrapped.step()
    assert_close(b.data, a.data, rtol=1e-14, atol=0, what="alpha = 1 leaves the optimiser's trajectory")
    with pytest.raises(ValueError, match="alpha"):
        Lookahead(SGD([a], lr=0.1), 5, 0.0)


def test_lookahead_state_goes_through_a_checkpoint_and_continues_identically(tmp_path):
    rng = np.random.default_rng(2)
    grads = rng.standard_normal((9, 2, 3))

    def make():
        params = [Parameter(np.arange(3.0)), Parameter(np.ones(3))]
        return params, Lookahead(SGD(params, lr=0.1, momentum=0.9, nesterov=True), every=4, alpha=0.5)

    def steps(params, opt, gs):
        for g in gs:
            for p, gi in zip(params, g):
                p.grad = gi.copy()
            opt.step()

    params, opt = make()
    steps(params, opt, grads)
    model = SimpleNamespace(state_dict=dict, load_state_dict=lambda s: None)
    params2, opt2 = make()
    steps(params2, opt2, grads[:6])
    path = save_checkpoint(tmp_path / "c.npz", model, opt2, None, 1, History())
    params3, opt3 = make()
    for p, q in zip(params3, params2):
        p.data[...] = q.data
    load_checkpoint(path, model, opt3, None)
    assert opt3.steps == 6 and set(opt3.optimizer.state[0]) == {"momentum_buffer"}, opt3.optimizer.state[0]
    steps(params3, opt3, grads[6:])
    for i, (p, q) in enumerate(zip(params3, params)):
        assert_close(p.data, q.data, rtol=0, atol=0, what=f"parameter {i} after resuming")
    with pytest.raises(ValueError, match="slow weights of shape"):
        opt3.load_state_dict(SGD(params3, lr=0.1).state_dict())


def test_fit_with_lookahead_resumes_bit_identically(tmp_path):
    from dlfs.nn.layers import Flatten, Linear, Sequential

    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 1, 4, 4)).astype(np.float32)
    y = (x.reshape(40, -1).sum(axis=1) > 0).astype(np.int64)
    cfg = TrainConfig(epochs=3, batch_size=8, lr=0.1, warmup_epochs=0.5, augment=False, lookahead_every=3,
                      lookahead_alpha=0.5)

    def model():
        return Sequential(Flatten(), Linear(16, 2, rng=1))

    whole = model()
    fit(whole, x, y, x, y, cfg, progress=False, log=lambda s: None)
    part, ckpt = model(), tmp_path / "run.npz"
    fit(part, x, y, x, y, cfg, checkpoint=ckpt, stop_after_epoch=1, progress=False, log=lambda s: None)
    resumed = model()
    fit(resumed, x, y, x, y, cfg, checkpoint=ckpt, resume=True, progress=False, log=lambda s: None)
    for name, value in whole.state_dict().items():
        assert_close(resumed.state_dict()[name], value, rtol=0, atol=0, what=f"{name} after resuming")
    plain = model()
    fit(plain, x, y, x, y, TrainConfig(**{**cfg.__dict__, "lookahead_every": 0}), progress=False,
        log=lambda s: None)
    assert not np.array_equal(plain.state_dict()["layers.1.W"], whole.state_dict()["layers.1.W"]), \
        "lookahead must change the trajectory"


def test_run_signature_without_lookahead_is_what_it_always_was():
    sig = run_signature(TrainConfig(), 0, 10)
    assert "lookahead_every" not in sig and "lookahead_alpha" not in sig, sig
    assert run_signature(TrainConfig(lookahead_every=5), 0, 10)["lookahead_every"] == 5
    assert "crop_padding" not in sig and "pad_mode" not in sig, "default crops keep the old signature"
    assert "flip" not in sig, "random flips (the default) keep the old signature"
    assert "cutout" not in sig, "runs without cutout (the default) keep the old signature"
    assert run_signature(TrainConfig(cutout=8), 0, 10)["cutout"] == 8
    sig = run_signature(TrainConfig(crop_padding=2, pad_mode="reflect", flip="alternating"), 0, 10)
    assert (sig["crop_padding"], sig["pad_mode"], sig["flip"]) == (2, "reflect", "alternating"), sig


def test_an_unknown_flip_is_refused_when_the_config_is_made():
    with pytest.raises(ValueError, match="flip must be one of 'random', 'alternating', 'none', got 'sometimes'"):
        TrainConfig(flip="sometimes")


# -- flip-and-translate test-time augmentation ---------------------------------------------

def shifted_by_hand(x, dy, dx):
    """out[..., i, j] = x[..., r(i - dy), r(j - dx)] with reflection r at the borders."""
    h, w = x.shape[-2:]

    def r(i, n):
        return -i if i < 0 else 2 * (n - 1) - i if i >= n else i

    out = np.empty_like(x)
    for i in range(h):
        for j in range(w):
            out[..., i, j] = x[..., r(i - dy, h), r(j - dx, w)]
    return out


def test_translate_tta_is_the_weighted_mean_of_the_shifted_and_flipped_copies():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 2, 4, 5))
    model = LinearModel(rng.standard_normal((40, 3)))
    f = model.forward
    def flip(v):
        return v[..., ::-1]

    views = [x, shifted_by_hand(x, 1, 1), shifted_by_hand(x, -1, -1)]
    weights = [0.25, 0.125, 0.125]
    expected = sum(w * (f(v) + f(flip(v))) for w, v in zip(weights, views))
    assert_close(cifar_resnet.tta_logits(model, x, shift=1), expected, rtol=1e-13, atol=1e-13,
                 what="flip-and-translate TTA logits")
    assert_close(cifar_resnet.tta_logits(model, x, shift=0), 0.5 * (f(x) + f(flip(x))), rtol=1e-13,
                 atol=1e-13, what="flip TTA logits")
    for batch in (1, 2, 100):
        got = cifar_resnet.predict_tta(model, x, batch, shift=1)
        assert np.array_equal(got, np.argmax(expected, axis=1)), f"batch {batch}: {got}"
        got, plain = cifar_resnet.predict_tta(model, x, batch, shift=1, return_plain=True)
        assert np.array_equal(got, np.argmax(expected, axis=1)) and np.array_equal(plain, np.argmax(f(x), axis=1)), \
            f"batch {batch}: with return_plain, expected the TTA and the plain predictions, got {got}, {plain}"
    logits, plain = cifar_resnet.tta_logits(model, x, shift=1, return_plain=True)
    assert_close(plain, f(x), rtol=0, atol=0, what="the plain logits returned with the TTA ones")
    assert not np.allclose(expected, 0.5 * (f(x) + f(flip(x)))), "the example must tell the shifts apart"


# -- presets ------------------------------------------------------------------------------

def test_the_airbench_presets_are_declared_with_their_time_limits():
    spec = cifar_resnet.SPEC
    expected = {"airbench-15min": (0.85, 900), "airbench-45min": (0.90, 2700), "airbench-2h": (0.93, 7200)}
    for name, (acc, seconds) in expected.items():
        target = spec.target(name)
        assert (target.value, target.max_seconds) == (acc, seconds), (name, target)
        preset = cifar_resnet.PRESETS[name]
        assert isinstance(preset.build(np.random.default_rng(0)), AirbenchNet) and preset.translate_tta == 1
        assert preset.train.lookahead_every > 0 and preset.train.label_smoothing == 0.2, preset.train
    assert cifar_resnet.PRESETS["airbench-2h"].widths == (64, 256, 256)
    for name in ("airbench-45min", "airbench-2h"):
        model = cifar_resnet.PRESETS[name].build(np.random.default_rng(0), steps_per_epoch=98)
        assert not model.input_grad and model.whiten_bias_steps == 3 * 98, (name, model.whiten_bias_steps)


def test_the_default_preset_is_the_fastest_whose_recorded_median_reached_90_percent():
    import json
    from pathlib import Path

    record = Path(__file__).resolve().parents[1] / "results" / "milestone-17.json"
    if not record.exists():
        pytest.skip("no results/milestone-17.json in this checkout")
    summary = json.loads(record.read_text())["summary"]
    reached = {name: s["median_wall_time_s"] for name, s in summary.items()
               if name in cifar_resnet.PRESETS and s["median"] >= 0.90 and s["passed"]}
    assert reached, f"no preset's recorded median reached 90%: {summary}"
    fastest = min(reached, key=reached.get)
    assert cifar_resnet.DEFAULT_PRESET == fastest == cifar_resnet.SPEC.default_preset, \
        f"the presets at 90% and their median wall times: {reached}; the default is {cifar_resnet.DEFAULT_PRESET}"


def test_each_airbench_preset_quotes_its_recorded_accuracy_or_says_it_is_not_measured():
    import json
    from pathlib import Path

    record = Path(__file__).resolve().parents[1] / "results" / "milestone-17.json"
    summary = json.loads(record.read_text())["summary"] if record.exists() else {}
    for name in ("airbench-15min", "airbench-45min", "airbench-2h"):
        description = cifar_resnet.SPEC.presets[name].description
        if name in summary:
            quoted = f"{100 * summary[name]['median']:.2f}%"
            assert quoted in description, f"{name}: the record says {quoted}, the description says {description!r}"
        else:
            assert "not measured yet" in description, f"{name} has no record: {description!r}"


def run_tiny_airbench(tmp_path, monkeypatch, train=None, **preset):
    """Milestone 17's runner with a tiny airbench preset (one epoch, widths (2, 4, 4), flip and
    translate TTA; ``train``: more TrainConfig fields, ``preset``: more Preset fields) on a
    stand-in for CIFAR-10 of 40 training and 20 test images. Returns the Measurement."""
    from dlfs.data import cifar

    rng = np.random.default_rng(0)
    y = np.arange(60) % 10
    x = rng.standard_normal((60, 3, 32, 32)).astype(np.float32)
    x[:, 0] += y[:, None, None] * 0.3
    monkeypatch.setattr(cifar, "load_cifar10", lambda folder, normalize: SimpleNamespace(
        x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:], source=None))
    cfg = TrainConfig(epochs=1, batch_size=20, eval_batch_size=10, warmup_epochs=0.5, **(train or {}))
    monkeypatch.setitem(cifar_resnet.PRESETS, "tiny", cifar_resnet.Preset(
        "tiny", 0, (2, 4, 4), cfg, target=0.0, arch="airbench", flip_tta=True, translate_tta=1, **preset))
    return cifar_resnet.run(RunOptions("tiny", 0, "unused", tmp_path / "c.npz", False, None,
                                       progress=False, log=lambda s: None))


def test_an_airbench_preset_runs_end_to_end_with_whitening_and_translate_tta(tmp_path, monkeypatch):
    seen = {}
    real = init_whitening

    def spy(conv, images, eps=5e-4):
        seen["images"] = images
        return real(conv, images, eps)

    monkeypatch.setattr("dlfs.train.whitening.init_whitening", spy)
    result = run_tiny_airbench(tmp_path, monkeypatch, train={"lookahead_every": 2})
    d = result.details
    assert seen["images"] is not None and len(seen["images"]) == 40, "whitening from the training images"
    assert d["model"] == "airbench network widths (2, 4, 4)" and "translate" in d["evaluation"], d
    assert "lookahead every 2 steps" in d["recipe"]["optimizer"], d["recipe"]
    assert np.trace(np.array(d["confusion_matrix"])) == round(result.value * 20)
    assert "per_epoch_evaluation" not in d, "without monitor_limit every epoch uses the whole test set"


def test_monitor_limit_shortens_the_per_epoch_curve_but_not_the_reported_accuracies(tmp_path, monkeypatch):
    from dlfs.train import loop

    evaluated = []
    real_evaluate = loop.evaluate

    def evaluate(model, loss_fn, xs, ys, batch_size):
        evaluated.append(len(xs))
        return real_evaluate(model, loss_fn, xs, ys, batch_size)

    monkeypatch.setattr("dlfs.train.loop.evaluate", evaluate)
    result = run_tiny_airbench(tmp_path, monkeypatch, train={"crop_padding": 2, "pad_mode": "reflect"},
                               monitor_limit=7)
    d = result.details
    assert evaluated == [7], f"one epoch evaluated on the first 7 test images, got sizes {evaluated}"
    assert d["per_epoch_evaluation"].startswith("the first 7 test images"), d.get("per_epoch_evaluation")
    assert np.array(d["confusion_matrix"]).sum() == 20, "the reported accuracy uses all 20 test images"
    assert 0 <= d["test_accuracy_without_tta"] <= 1 and round(d["test_accuracy_without_tta"] * 20, 6).is_integer(), \
        f"the accuracy without TTA is over all 20 test images, got {d['test_accuracy_without_tta']}"
    assert d["recipe"]["augmentation"] == "random crop (pad 2, mirrored borders) + horizontal flip", d["recipe"]


def test_dirac_initialisation_makes_the_first_filters_copy_their_inputs():
    from dlfs.conv.airbench import dirac_
    from dlfs.conv.im2col import Conv2d

    x = np.random.default_rng(0).standard_normal((2, 3, 5, 5))
    for c_in, c_out in ((3, 5), (3, 2)):
        conv = dirac_(Conv2d(c_in, c_out, 3, padding=1, bias=False, rng=1, dtype=np.float64))
        n = min(c_in, c_out)
        y = conv.forward(x[:, :c_in])
        assert np.array_equal(y[:, :n], x[:, :n]), f"the first {n} outputs must equal the inputs ({c_in}->{c_out})"
        if c_out > n:
            assert np.any(conv.W.data[n:] != 0), "the remaining filters keep their random values"
    with pytest.raises(ValueError, match="odd kernel"):
        dirac_(Conv2d(3, 3, 2, rng=0))
    net = AirbenchNet((4, 8, 8), rng=0)
    first = net.net.layers[1].W.data                      # block 1's first convolution, 24 -> 4
    assert np.array_equal(first[:, :4, 1, 1], np.eye(4, dtype=first.dtype)), "AirbenchNet is dirac-initialised"
    plain = AirbenchNet((4, 8, 8), rng=0, dirac=False).net.layers[1].W.data
    assert not np.array_equal(plain[:, :4, 1, 1], np.eye(4, dtype=first.dtype)), "dirac=False keeps He init"


# ----------------------------------------------------------------- airbench's triangular schedule

def test_triangular_schedule_rises_to_the_peak_and_falls_to_its_end():
    from types import SimpleNamespace

    from dlfs.optim.schedules import Triangular

    opt = SimpleNamespace(lr=2.0)
    s = Triangular(opt, 100, start=0.2, peak_at=0.23, end=0.07)
    assert opt.lr == pytest.approx(0.4), f"step 0 runs at start x base lr = 0.4, got {opt.lr}"
    got = np.array([s.lr_at(k) for k in range(106)])
    expected = 2.0 * np.interp(np.arange(106), [0, 23, 100], [0.2, 1.0, 0.07])   # constant after T
    np.testing.assert_allclose(got, expected, rtol=1e-12, err_msg="Triangular(100, 0.2, 0.23, 0.07) x 2.0")
    for _ in range(40):
        s.step()
    resumed = Triangular(SimpleNamespace(lr=2.0), 100, 0.2, 0.23, 0.07)
    resumed.load_state_dict(s.state_dict())
    assert resumed.optimizer.lr == pytest.approx(got[40]), "a restored schedule continues at its step"
    flat = Triangular(SimpleNamespace(lr=1.0), 10, start=0.5, peak_at=0.0, end=0.0)
    assert [flat.lr_at(k) for k in (0, 5, 10)] == pytest.approx([1.0, 0.5, 0.0]), "peak_at 0: no rise"


@pytest.mark.parametrize("kwargs, match", [({"total_steps": 0}, "total_steps"), ({"peak_at": 1.0}, "peak_at"),
                                           ({"peak_at": -0.1}, "peak_at"), ({"start": -1.0}, "start")])
def test_triangular_schedule_refuses_bad_settings(kwargs, match):
    from types import SimpleNamespace

    from dlfs.optim.schedules import Triangular

    args = {"total_steps": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        Triangular(SimpleNamespace(lr=1.0), **args)


def test_train_config_refuses_an_unknown_schedule_and_keeps_old_signatures():
    from dlfs.train.recipe import TrainConfig, run_signature

    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="linear")
    with pytest.raises(ValueError, match="triangle"):
        TrainConfig(schedule="triangle", triangle=(0.2, 0.5))
    plain = run_signature(TrainConfig(), 0, 100)
    assert "schedule" not in plain and "triangle" not in plain, "cosine runs keep the signature they had"
    tri = run_signature(TrainConfig(schedule="triangle"), 0, 100)
    assert tri["schedule"] == "triangle" and tri["triangle"] == [0.2, 0.23, 0.07], tri
