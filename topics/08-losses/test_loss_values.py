"""Topic 08: every loss's value against its formula written here in NumPy (float64), its
gradient against central finite differences, and both against torch.nn.functional; then the
``ignore_index`` divisor by hand, including a batch where every label is ignored."""

import numpy as np
import pytest

from dlfs.nn import losses
from dlfs.testing import assert_close, check_gradients
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
PADDED = LABELS.copy()
PADDED[[1, 4, 5]] = -100                             # e.g. padding positions
LOG_PROBS = LOGITS - np.logaddexp.reduce(LOGITS, axis=1, keepdims=True)


# -- the formulas, written independently of the implementation (per-element terms, then the reduction)

def _reduce(per, reduction, count=None):
    return per.sum() if reduction == "sum" else per.sum() / (per.size if count is None else count)


def ref_mse(pred, target, reduction="mean"):
    return _reduce((pred - target) ** 2, reduction)


def ref_l1(pred, target, reduction="mean"):
    return _reduce(np.abs(pred - target), reduction)


def ref_huber(pred, target, delta=1.0, reduction="mean"):
    a = np.abs(pred - target)
    return _reduce(np.where(a < delta, 0.5 * a * a, delta * (a - 0.5 * delta)), reduction)


def ref_bce(p, y, reduction="mean"):
    return _reduce(-(y * np.log(p) + (1 - y) * np.log(1 - p)), reduction)


def ref_bce_with_logits(x, y, reduction="mean"):
    return _reduce(y * np.logaddexp(0, -x) + (1 - y) * np.logaddexp(0, x), reduction)


def ref_cross_entropy(logits, target, label_smoothing=0.0, ignore_index=None, reduction="mean"):
    logp = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    c = logits.shape[1]
    if target.ndim == 2:                                     # probability targets
        q = (1 - label_smoothing) * target + label_smoothing / c
        return _reduce(-(q * logp).sum(axis=1), reduction)
    keep = np.ones(len(target), bool) if ignore_index is None else target != ignore_index
    rows, labels = np.flatnonzero(keep), target[keep]
    per = -(1 - label_smoothing) * logp[rows, labels] - label_smoothing / c * logp[rows].sum(axis=1)
    return _reduce(per, reduction, count=keep.sum())


def ref_nll(log_probs, target, ignore_index=None, reduction="mean"):
    keep = np.ones(len(target), bool) if ignore_index is None else target != ignore_index
    return _reduce(-log_probs[np.flatnonzero(keep), target[keep]], reduction, count=keep.sum())


# name -> (our function, the formula, torch.nn.functional name, (pred, target), keyword arguments)
CASES = {
    **{f"mse {r}": (losses.mse_loss, ref_mse, "mse_loss", (PRED, TARGET), {"reduction": r})
       for r in ("mean", "sum")},
    **{f"l1 {r}": (losses.l1_loss, ref_l1, "l1_loss", (PRED, TARGET), {"reduction": r}) for r in ("mean", "sum")},
    **{f"huber delta={d}": (losses.huber_loss, ref_huber, "huber_loss", (PRED, TARGET), {"delta": d})
       for d in (0.3, 1.0, 2.5)},
    "huber sum delta=0.7": (losses.huber_loss, ref_huber, "huber_loss", (PRED, TARGET),
                            {"delta": 0.7, "reduction": "sum"}),
    **{f"bce {r}": (losses.binary_cross_entropy, ref_bce, "binary_cross_entropy", (PROBS, BIN_TARGET),
                    {"reduction": r}) for r in ("mean", "sum")},
    **{f"bce with logits {r}": (losses.binary_cross_entropy_with_logits, ref_bce_with_logits,
                                "binary_cross_entropy_with_logits", (BIN_LOGITS, BIN_TARGET), {"reduction": r})
       for r in ("mean", "sum")},
    **{f"cross-entropy labels smoothing={s} {r}": (
        losses.cross_entropy, ref_cross_entropy, "cross_entropy", (LOGITS, LABELS),
        {"label_smoothing": s, "reduction": r}) for s in (0.0, 0.1, 0.5) for r in ("mean", "sum")},
    **{f"cross-entropy ignore_index=-100 smoothing={s} {r}": (
        losses.cross_entropy, ref_cross_entropy, "cross_entropy", (LOGITS, PADDED),
        {"label_smoothing": s, "ignore_index": -100, "reduction": r}) for s in (0.0, 0.2) for r in ("mean", "sum")},
    "cross-entropy ignore_index is a real class (2)": (losses.cross_entropy, ref_cross_entropy, "cross_entropy",
                                                       (LOGITS, LABELS), {"ignore_index": 2}),
    **{f"cross-entropy probability targets smoothing={s} {r}": (
        losses.cross_entropy, ref_cross_entropy, "cross_entropy", (LOGITS, SOFT),
        {"label_smoothing": s, "reduction": r}) for s in (0.0, 0.15) for r in ("mean", "sum")},
    "nll mean": (losses.nll_loss, ref_nll, "nll_loss", (LOG_PROBS, LABELS), {}),
    "nll ignore_index=3": (losses.nll_loss, ref_nll, "nll_loss", (LOG_PROBS, LABELS), {"ignore_index": 3}),
    "nll sum": (losses.nll_loss, ref_nll, "nll_loss", (LOG_PROBS, LABELS), {"reduction": "sum"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_value_matches_the_formula_and_gradient_matches_finite_differences(case):
    fn, formula, _, (pred, target), kwargs = CASES[case]
    x = pred.copy()
    loss, grad = fn(x, target, **kwargs)
    assert isinstance(loss, float), f"{case}: the loss must be a Python float, got {type(loss).__name__}"
    expected = formula(pred, target, **kwargs)
    assert_close(loss, expected, rtol=1e-12, atol=1e-14, what=f"{case}: loss vs the formula")
    # h = 1e-5: the losses are sums of O(1) terms (see test_loss_gradients.py)
    check_gradients(lambda: np.asarray(fn(x, target, **kwargs)[0]), {"pred": x}, {"pred": grad}, h=1e-5)


@pytest.mark.parametrize("case", list(CASES))
def test_matches_torch(case):
    torch = torch_or_skip()
    fn, _, torch_name, (pred, target), kwargs = CASES[case]
    loss, grad = fn(pred, target, **kwargs)
    tp = to_torch(pred, requires_grad=True)
    tl = getattr(torch.nn.functional, torch_name)(tp, torch.as_tensor(target), **kwargs)
    tl.backward()
    assert loss == pytest.approx(tl.item(), rel=1e-10, abs=1e-12), \
        f"{case}: loss: torch gives {tl.item()!r}, got {loss!r}"
    assert_close(grad, to_numpy(tp.grad), rtol=1e-10, atol=1e-12, what=f"{case}: gradient vs torch autograd")


# -- ignore_index by hand

SMALL_PROBS = np.array([[0.5, 0.25, 0.25], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6], [0.7, 0.2, 0.1]])
SMALL_LABELS = np.array([0, 1, 2, 1])


def test_nll_loss_mean_divides_by_the_number_of_labels_kept():
    # ignore_index=1 drops rows 1 and 3: the mean is over the 2 rows kept, not over all 4
    loss, grad = losses.nll_loss(np.log(SMALL_PROBS), SMALL_LABELS, ignore_index=1)
    expected = -(np.log(0.5) + np.log(0.6)) / 2
    assert loss == pytest.approx(expected, rel=1e-12), \
        f"mean NLL over the 2 kept rows: expected {expected!r} (= -(log 0.5 + log 0.6) / 2), got {loss!r}"
    assert_close(grad, [[-0.5, 0, 0], [0, 0, 0], [0, 0, -0.5], [0, 0, 0]], rtol=0, atol=0,
                 what="dlog_probs with rows 1 and 3 ignored: -1/2 at each kept label, 0 elsewhere")
    loss_sum, grad_sum = losses.nll_loss(np.log(SMALL_PROBS), SMALL_LABELS, ignore_index=1, reduction="sum")
    assert loss_sum == pytest.approx(2 * expected, rel=1e-12), \
        f"summed NLL of the kept rows: expected {2 * expected!r}, got {loss_sum!r}"
    assert_close(grad_sum, 2 * grad, rtol=0, atol=0, what="dlog_probs of the summed NLL (-1 at each kept label)")


@pytest.mark.filterwarnings("error::RuntimeWarning")          # 0 / 0 must not happen
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("fn", [losses.nll_loss, losses.cross_entropy], ids=["nll_loss", "cross_entropy"])
def test_every_label_ignored_gives_loss_zero_and_zero_gradient(fn, reduction):
    # PyTorch returns nan for the mean here (0 / 0); our convention is a loss of 0
    labels = np.full(4, -100)
    kwargs = {"label_smoothing": 0.1} if fn is losses.cross_entropy else {}
    loss, grad = fn(np.log(SMALL_PROBS), labels, ignore_index=-100, reduction=reduction, **kwargs)
    assert loss == 0.0, f"{fn.__name__} with every label ignored ({reduction}): expected 0.0, got {loss!r}"
    assert_close(grad, np.zeros_like(SMALL_PROBS), rtol=0, atol=0,
                 what=f"{fn.__name__} gradient with every label ignored ({reduction})")
