"""Topic 02: numerically stable logsumexp, softmax and log_softmax.

Logits of size 1e4 overflow exp() in float64 (exp(710) is already inf). The stable versions
subtract the maximum first. Each value here is compared with a float64 reference computed
from the exact offsets ``y = x - c`` (so the reference never exponentiates anything large).
"""

import numpy as np
import pytest

from dlfs.autograd.tensor import Tensor
from dlfs.numerics import log_softmax, logsumexp, softmax
from dlfs.testing import assert_close
from torch_oracle import torch_or_skip


def _huge(c, shape=(4, 5), seed=0):
    """x = c + y with y ~ N(0, 1); returns x and the exact offsets x - c."""
    y = np.random.default_rng(seed).standard_normal(shape)
    x = c + y
    return x, x - c                                  # x - c is exact for |y| << |c|


def _ref_lse(y, c, axis=-1, keepdims=False):
    return c + np.log(np.sum(np.exp(y), axis=axis, keepdims=keepdims))


def _ref_softmax(y, axis=-1):
    e = np.exp(y)
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("c", [1e4, -1e4])
def test_logsumexp_of_huge_values(c):
    x, y = _huge(c)
    with np.errstate(all="raise"):                   # an overflow in the implementation fails here
        got = logsumexp(x, axis=-1)
        got0 = logsumexp(x, axis=0, keepdims=True)
        got_all = logsumexp(x, axis=None)
    assert_close(got, _ref_lse(y, c, -1), rtol=1e-13, what=f"logsumexp(x, axis=-1) at x ~ {c:g}")
    assert_close(got0, _ref_lse(y, c, 0, True), rtol=1e-13, what=f"logsumexp(x, axis=0, keepdims=True) at x ~ {c:g}")
    assert_close(got_all, _ref_lse(y, c, None), rtol=1e-13, what=f"logsumexp(x, axis=None) at x ~ {c:g}")


@pytest.mark.parametrize("c", [1e4, -1e4])
def test_softmax_and_log_softmax_of_huge_values(c):
    x, y = _huge(c)
    with np.errstate(all="raise"):
        p = softmax(x, axis=-1)
        logp = log_softmax(x, axis=-1)
        p0 = softmax(x, axis=0)
    assert_close(p, _ref_softmax(y, -1), rtol=1e-10, what=f"softmax(x, axis=-1) at x ~ {c:g}")
    assert_close(p0, _ref_softmax(y, 0), rtol=1e-10, what=f"softmax(x, axis=0) at x ~ {c:g}")
    assert_close(logp, y - np.log(np.exp(y).sum(axis=-1, keepdims=True)), rtol=1e-9, atol=1e-9,
                 what=f"log_softmax(x, axis=-1) at x ~ {c:g}")


def test_rows_spanning_a_huge_range():
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4 + np.log(2.0)]])
    with np.errstate(over="raise"):
        lse = logsumexp(x, axis=-1)
        p = softmax(x, axis=-1)
        logp = log_softmax(x, axis=-1)
    assert_close(lse, [1e4, -1e4 + np.log(4.0)], rtol=1e-14, what="logsumexp of rows spanning 2e4")
    assert_close(p, [[1.0, 0.0, 0.0], [0.25, 0.25, 0.5]], rtol=1e-12, atol=1e-300, what="softmax of rows spanning 2e4")
    # log_softmax stays exact where softmax underflows to 0 (np.log(softmax) would give -inf)
    assert_close(logp, [[0.0, -2e4, -1e4], [np.log(0.25), np.log(0.25), np.log(0.5)]], rtol=1e-12,
                 what="log_softmax where softmax underflows")


def test_masked_entries_with_minus_infinity():
    x = np.array([[0.0, -np.inf, 1.0], [-np.inf, -np.inf, -np.inf]])
    lse = logsumexp(x, axis=-1)
    assert_close(lse[0], np.log(1 + np.e), rtol=1e-14, what="logsumexp with a -inf (masked) entry")
    assert lse[1] == -np.inf, f"logsumexp of an all -inf row is -inf, got {lse[1]}"
    p = softmax(x[:1], axis=-1)
    assert_close(p, [[1 / (1 + np.e), 0.0, np.e / (1 + np.e)]], rtol=1e-14, what="softmax with a masked entry")
    logp = log_softmax(x[:1], axis=-1)
    assert logp[0, 1] == -np.inf and np.isfinite(logp[0, [0, 2]]).all(), \
        f"log_softmax with a masked entry: expected [finite, -inf, finite], got {logp}"


def test_float32_is_kept_and_stays_accurate():
    x, y = _huge(np.float32(1e4), seed=1)
    x32 = x.astype(np.float32)
    y32 = x32.astype(np.float64) - 1e4               # the exact offsets of the float32 values
    with np.errstate(over="raise"):
        lse, p, logp = logsumexp(x32, axis=-1), softmax(x32, axis=-1), log_softmax(x32, axis=-1)
    for name, arr in [("logsumexp", lse), ("softmax", p), ("log_softmax", logp)]:
        assert arr.dtype == np.float32, f"{name} of float32 input should be float32, got {arr.dtype}"
    assert_close(lse, _ref_lse(y32, 1e4), rtol=1e-6, what="float32 logsumexp at 1e4")
    assert_close(p, _ref_softmax(y32), rtol=1e-5, atol=1e-7, what="float32 softmax at 1e4")


@pytest.mark.parametrize("c", [1e4, -1e4])
def test_tensor_ops_at_huge_values_have_finite_exact_gradients(c):
    x, y = _huge(c, (3, 4), seed=2)
    dout = np.random.default_rng(3).standard_normal((3, 4))
    s = _ref_softmax(y)
    with np.errstate(over="raise", invalid="raise"):
        t = Tensor(x, requires_grad=True)
        lse = t.logsumexp(axis=-1)
        lse.sum().backward()
        assert_close(lse.data, _ref_lse(y, c), rtol=1e-13, what=f"Tensor.logsumexp at x ~ {c:g}")
        assert_close(t.grad, s, rtol=1e-10, what=f"gradient of Tensor.logsumexp at x ~ {c:g} (softmax)")

        t = Tensor(x, requires_grad=True)
        p = t.softmax(axis=-1)
        p.backward(dout)
        assert_close(p.data, s, rtol=1e-10, what=f"Tensor.softmax at x ~ {c:g}")
        assert_close(t.grad, s * (dout - (dout * s).sum(-1, keepdims=True)), rtol=1e-9, atol=1e-12,
                     what=f"gradient of Tensor.softmax at x ~ {c:g}")

        t = Tensor(x, requires_grad=True)
        logp = t.log_softmax(axis=-1)
        logp.backward(dout)
        assert_close(logp.data, np.log(s), rtol=1e-9, atol=1e-9, what=f"Tensor.log_softmax at x ~ {c:g}")
        assert_close(t.grad, dout - s * dout.sum(-1, keepdims=True), rtol=1e-9, atol=1e-12,
                     what=f"gradient of Tensor.log_softmax at x ~ {c:g}")


HUGE_LOGITS = np.array([[1e4, -1e4, 0.0], [3e3, 3e3 + 1.0, -5e3]])
HUGE_LABELS = np.array([1, 0])


def _cross_entropy_of_huge_logits():
    t = Tensor(HUGE_LOGITS, requires_grad=True)
    loss = -t.log_softmax(axis=-1)[np.arange(2), HUGE_LABELS].mean()
    loss.backward()
    return loss, t


def test_cross_entropy_of_huge_logits_by_hand():
    # row 0: logsumexp = 1e4 (the other terms vanish), so -log p[1] = 1e4 - (-1e4) = 2e4;
    # row 1: offsets from 3001 are (-1, 0, -8001), so -log p[0] = 1 + log(1 + e^-1).
    # The gradient is (softmax - onehot) / 2: row 0 (1, 0, 0) - (0, 1, 0), row 1 (σ(-1), σ(1), 0) - (1, 0, 0).
    loss, t = _cross_entropy_of_huge_logits()
    assert np.isfinite(loss.data) and np.isfinite(t.grad).all(), \
        f"cross-entropy of huge logits must stay finite, got loss {loss.data} and gradient {t.grad}"
    assert_close(loss.data, (2e4 + 1 + np.log1p(np.exp(-1.0))) / 2, rtol=1e-12,
                 what="cross-entropy of huge logits")
    sig = 1 / (1 + np.exp(-1.0))
    assert_close(t.grad, np.array([[1.0, -1.0, 0.0], [-sig, sig, 0.0]]) / 2, rtol=1e-10, atol=1e-300,
                 what="gradient of the cross-entropy of huge logits: (softmax - onehot) / 2")


def test_cross_entropy_of_huge_logits_matches_torch():
    torch = torch_or_skip()
    loss, t = _cross_entropy_of_huge_logits()
    tt = torch.tensor(HUGE_LOGITS, requires_grad=True)
    t_loss = torch.nn.functional.cross_entropy(tt, torch.tensor(HUGE_LABELS))
    t_loss.backward()
    assert_close(loss.data, t_loss.item(), rtol=1e-12, what="cross-entropy of huge logits vs torch")
    assert_close(t.grad, tt.grad.numpy(), rtol=1e-10, atol=1e-300, what="its gradient vs torch")
