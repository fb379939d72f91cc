"""PyTorch as an optional oracle: tests compare against it when it is installed.

Kept with the tests, outside the library (``pyproject.toml`` puts this folder on the test
path): ``from torch_oracle import torch_or_skip, to_torch, to_numpy``."""

from __future__ import annotations

import numpy as np


def torch_or_skip():
    """Return the ``torch`` module, or skip the calling test when it is not installed."""
    import pytest

    torch = pytest.importorskip("torch", reason="PyTorch not installed: oracle comparison skipped "
                                               "(pip install -e '.[oracle]' to enable it)")
    torch.set_default_dtype(torch.float64)
    return torch


def to_torch(x: np.ndarray, requires_grad: bool = False):
    import torch

    t = torch.tensor(np.asarray(x))
    if requires_grad:
        t.requires_grad_(True)
    return t


def to_numpy(t) -> np.ndarray:
    return t.detach().cpu().numpy()
