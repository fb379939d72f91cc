"""Topic 08: every loss's value and gradient against torch.nn.functional (float64)."""

import numpy as np
import pytest

from dlfs.nn import losses
from dlfs.testing import assert_close
from torch_oracle import to_numpy, to_torch, torch_or_skip

rng = np.random.default_rng(0)
PRED = rng.normal(size=(7, 3))
TARGET = rng.normal(size=(7, 3))
PROBS = rng.uniform(0.02, 0.98, size=(6, 4))
BIN_TARGET = rng.uniform(0, 1, size=(6, 4))          # soft targets are allowed
BIN_TARGET[:3] = np.round(BIN_TARGET[:3])
LOGITS = rng.normal(scale=3.0, size=(9, 5))
LABELS = rng.integers(0, 5, size=9)
SOFT = rng.dirichlet(np.ones(5), size=9)
BIN_LOGITS = rng.normal(scale=4.0, size=(6, 4))


def against_torch(ours, torch_fn, pred, *args, rtol=1e-10, **kwargs):
    """Run our (loss, grad) and torch's loss + autograd gradient; compare both."""
    torch = torch_or_skip()
    loss, grad = ours(pred, *args, **kwargs)
    tp = to_torch(pred, requires_grad=True)
    targs = [torch.as_tensor(a) for a in args]
    tl = torch_fn(tp, *targs, **kwargs)
    tl.backward()
    assert isinstance(loss, float), f"the loss must be a Python float, got {type(loss).__name__}"
    assert loss == pytest.approx(tl.item(), rel=rtol, abs=1e-12), f"loss: expected {tl.item()!r}, got {loss!r}"
    assert_close(grad, to_numpy(tp.grad), rtol=rtol, atol=1e-12, what="gradient vs torch autograd")
    return torch


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse(reduction):
    torch = torch_or_skip()
    against_torch(losses.mse_loss, torch.nn.functional.mse_loss, PRED, TARGET, reduction=reduction)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_l1(reduction):
    torch = torch_or_skip()
    against_torch(losses.l1_loss, torch.nn.functional.l1_loss, PRED, TARGET, reduction=reduction)


@pytest.mark.parametrize("delta", [0.3, 1.0, 2.5])
def test_huber(delta):
    torch = torch_or_skip()
    against_torch(losses.huber_loss, torch.nn.functional.huber_loss, PRED, TARGET, delta=delta)


def test_huber_sum():
    torch = torch_or_skip()
    against_torch(losses.huber_loss, torch.nn.functional.huber_loss, PRED, TARGET, delta=0.7, reduction="sum")


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_binary_cross_entropy(reduction):
    torch = torch_or_skip()
    against_torch(losses.binary_cross_entropy, torch.nn.functional.binary_cross_entropy,
                  PROBS, BIN_TARGET, reduction=reduction)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_binary_cross_entropy_with_logits(reduction):
    torch = torch_or_skip()
    against_torch(losses.binary_cross_entropy_with_logits,
                  torch.nn.functional.binary_cross_entropy_with_logits, BIN_LOGITS, BIN_TARGET,
                  reduction=reduction)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.5])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_integer_labels(label_smoothing, reduction):
    torch = torch_or_skip()
    against_torch(losses.cross_entropy, torch.nn.functional.cross_entropy, LOGITS, LABELS,
                  label_smoothing=label_smoothing, reduction=reduction)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_ignore_index(label_smoothing, reduction):
    torch = torch_or_skip()
    labels = LABELS.copy()
    labels[[1, 4, 5]] = -100                  # e.g. padding positions
    against_torch(losses.cross_entropy, torch.nn.functional.cross_entropy, LOGITS, labels,
                  label_smoothing=label_smoothing, ignore_index=-100, reduction=reduction)


def test_cross_entropy_ignore_index_can_be_a_real_class():
    torch = torch_or_skip()
    against_torch(losses.cross_entropy, torch.nn.functional.cross_entropy, LOGITS, LABELS, ignore_index=2)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.15])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_probability_targets(label_smoothing, reduction):
    torch = torch_or_skip()
    against_torch(losses.cross_entropy, torch.nn.functional.cross_entropy, LOGITS, SOFT,
                  label_smoothing=label_smoothing, reduction=reduction)


@pytest.mark.parametrize("kwargs", [{}, {"ignore_index": 3}, {"reduction": "sum"}])
def test_nll_loss(kwargs):
    torch = torch_or_skip()
    log_probs = LOGITS - np.logaddexp.reduce(LOGITS, axis=1, keepdims=True)
    against_torch(losses.nll_loss, torch.nn.functional.nll_loss, log_probs, LABELS, **kwargs)
