"""Topic 04: the decision-boundary plot of a model trained with your code is a real PNG."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from dlfs.nn.perceptron import LogisticUnit, Perceptron

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _plot_module():
    path = Path(__file__).with_name("plot_boundary.py")
    spec = importlib.util.spec_from_file_location("topic04_plot_boundary", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("model", [Perceptron(max_epochs=1000), LogisticUnit(lr=0.5, epochs=300)],
                         ids=["Perceptron", "LogisticUnit"])
def test_plot_decision_boundary_writes_a_png(model, tmp_path):
    from matplotlib.image import imread

    plot = _plot_module()
    X, y = plot.two_blobs(n=40, seed=1)
    model.fit(X, y)
    assert np.array_equal(model.predict(X) > 0, y > 0), "the fitted model should separate the two blobs"
    path = plot.plot_decision_boundary(model, X, y, tmp_path / "boundary.png")
    assert Path(path).exists(), f"{path} was not written"
    data = Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE, "the file is not a PNG (wrong signature)"
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] >= 100 and image.shape[1] >= 100, f"image shape {image.shape}"
    colours = np.unique(image[..., :3].reshape(-1, 3).round(2), axis=0)
    assert len(colours) > 10, "the image looks blank"
