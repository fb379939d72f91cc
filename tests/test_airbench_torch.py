"""The PyTorch baseline of Milestone 17 (benchmarks.airbench_torch): each piece of the recipe."""

import numpy as np
import pytest

from benchmarks.airbench_torch import HYP, build_net, crop, lookahead_decay, triangle, tta_logits, train


def test_triangle_rises_to_one_then_falls_to_its_end():
    lr = triangle(100, start=0.2, peak_at=0.23, end=0.07)
    assert lr.shape == (101,), lr.shape
    np.testing.assert_allclose(lr[[0, 23, 100]], [0.2, 1.0, 0.07], err_msg="start, peak at step 23, end")
    np.testing.assert_allclose(lr[10], 0.2 + 0.8 * 10 / 23, err_msg="linear on the way up")
    np.testing.assert_allclose(lr[60], 1.0 - 0.93 * (60 - 23) / 77, err_msg="linear on the way down")


def test_lookahead_decay_grows_as_the_cube_of_progress():
    assert lookahead_decay(0, 100) == 0.0
    assert lookahead_decay(100, 100) == pytest.approx(0.95 ** 5)
    assert lookahead_decay(50, 100) == pytest.approx(0.95 ** 5 / 8)


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="the baseline is a PyTorch run")


def test_crop_moves_each_image_by_its_own_shift(torch):
    gen = torch.Generator().manual_seed(0)
    padded = torch.randn(6, 3, 9, 9, generator=gen)
    shifts = torch.tensor([[-2, -2], [0, 0], [2, 2], [-1, 2], [2, -1], [0, 1]])
    out = crop(torch, padded, shifts, 5)
    assert out.shape == (6, 3, 5, 5), out.shape
    for n, (dy, dx) in enumerate(shifts.tolist()):
        expected = padded[n, :, 2 + dy:7 + dy, 2 + dx:7 + dx]
        assert torch.equal(out[n], expected), f"image {n}, shift {(dy, dx)}: not the window of the padded image"


def test_tta_averages_six_views_as_airbench(torch):
    gen = torch.Generator().manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))
    x = torch.randn(2, 3, 4, 4, generator=gen)
    with torch.no_grad():
        got = tta_logits(torch, net, x)
        padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
        views = [x, padded[..., :4, :4], padded[..., 2:, 2:]]
        weights = [0.5, 0.25, 0.25]
        expected = sum(w * 0.5 * (net(v) + net(v.flip(-1))) for w, v in zip(weights, views))
    assert torch.allclose(got, expected, atol=1e-6), f"expected {expected}, got {got}"


def test_the_network_is_set_up_as_airbench(torch):
    from dlfs.train.whitening import patch_whitening_filters

    x = np.random.default_rng(0).standard_normal((20, 3, 8, 8)).astype(np.float32)
    net = build_net(torch, x, widths=(8, 16, 16))
    filters, _ = patch_whitening_filters(x, 2, 5e-4)
    np.testing.assert_allclose(net[0].weight.detach().numpy(), filters, rtol=1e-6,
                               err_msg="the first layer holds our whitening filters")
    assert not net[0].weight.requires_grad and net[0].bias.requires_grad
    norms = [m for m in net if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 6 and all(m.eps == 1e-12 and m.momentum == 0.4 and not m.weight.requires_grad
                                   for m in norms), [(m.eps, m.momentum) for m in norms]
    convs = [m for m in net if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    for conv in convs:
        k = min(conv.in_channels, conv.out_channels)
        w = conv.weight.detach()[:k]
        eye = torch.zeros_like(w)
        eye[torch.arange(k), torch.arange(k), 1, 1] = 1
        assert torch.equal(w, eye), f"the first {k} filters of {conv} should be the identity"


@pytest.fixture
def float64_default(torch):
    """torch's default dtype set to float64, as the oracle tests may leave it (the run must not
    change: float32 weights, the same random draws); restored after."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def test_training_on_a_tiny_set_lowers_the_loss_and_counts_its_steps(torch, float64_default):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 1024)
    x = rng.standard_normal((1024, 3, 32, 32)).astype(np.float32) * 0.5
    x[:, 0] += (2 * y - 1)[:, None, None]                     # class = sign of the red channel
    hyp = {**HYP, "widths": (8, 16, 16), "batch_size": 256, "lookahead_start_epoch": 1}
    r = train(torch, x, y, x[:256], y[:256], epochs=2, seed=0, log=lambda s: None, hyp=hyp)
    assert r["steps"] == 8, f"4 batches of 256 per epoch for 2 epochs: expected 8 steps, got {r['steps']}"
    assert r["per_epoch"][-1]["train_loss"] < r["per_epoch"][0]["train_loss"], r["per_epoch"]
    assert r["tta_accuracy"] > 0.9, f"8 steps should learn a red-channel sign (chance 0.5), got {r['tta_accuracy']}"
