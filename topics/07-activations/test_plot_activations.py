"""Topic 07 — the plot script runs on your activations and writes real PNGs."""

import importlib.util
from pathlib import Path

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _plot_module():
    path = Path(__file__).with_name("plot_activations.py")
    spec = importlib.util.spec_from_file_location("topic07_plot_activations", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _assert_png(path):
    from matplotlib.image import imread

    assert Path(path).exists(), f"{path} was not written"
    assert Path(path).read_bytes()[:8] == PNG_SIGNATURE, f"{path} is not a PNG (wrong signature)"
    image = imread(path)
    colours = np.unique(image[..., :3].reshape(-1, 3).round(2), axis=0)
    assert len(colours) > 10, f"{path} looks blank"


def test_dead_relu_curve_jumps_at_the_spike_and_never_comes_down(tmp_path):
    plot = _plot_module()
    fractions = plot.dead_relu_curve(steps=60, spike_at=10)
    assert len(fractions) == 61
    assert max(fractions[:11]) <= 0.05 and fractions[11] >= 0.8, \
        f"expected ~0 dead units before the spike and most after it, got {fractions[:13]}"
    after = fractions[11:]
    assert all(b >= a for a, b in zip(after, after[1:])), f"dead units came back: {after}"
    _assert_png(plot.plot_dead_relu(tmp_path / "dead_relu.png", steps=30, spike_at=10))


def test_plot_activations_writes_a_png(tmp_path):
    plot = _plot_module()
    _assert_png(plot.plot_activations(tmp_path / "activations.png"))
