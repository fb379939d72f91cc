import numpy as np

from dlfs.viz import plots

PNG = b"\x89PNG\r\n\x1a\n"


def test_plots_write_png_files(tmp_path):
    hist = {"train_loss": [1.0, 0.5], "test_loss": [1.1, 0.6], "train_acc": [0.7, 0.9], "test_acc": [0.6, 0.85]}
    a = plots.learning_curves(hist, tmp_path / "curves.png", title="t")
    b = plots.confusion_matrix_plot(np.arange(9).reshape(3, 3), ["a", "b", "c"], tmp_path / "cm.png")
    imgs = np.random.default_rng(0).random((5, 1, 8, 8))
    c = plots.image_grid(imgs, [str(i) for i in range(5)], tmp_path / "grid.png", cols=3)
    for p in (a, b, c):
        assert p.read_bytes()[:8] == PNG and p.stat().st_size > 1000
    assert sorted(x.name for x in tmp_path.iterdir()) == ["cm.png", "curves.png", "grid.png"]
