"""Topic 02, part 2: every ``Tensor`` operation, then random vectorised graphs.

Each operation is checked three ways: its value against a NumPy float64 reference, its
gradient against central finite differences of that reference (with a random upstream
gradient ``dout``), and both against PyTorch.
"""

import zlib
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from dlfs.autograd.tensor import Tensor
from dlfs.testing import assert_close, check_gradients
from torch_oracle import torch_or_skip


@pytest.fixture(scope="module")
def torch():
    return torch_or_skip()


# The same operations written for three libraries: a NumPy float64 reference, our Tensor, torch.

def _np_softmax(x, axis):
    e = np.exp(x)                      # inputs here are moderate: the textbook formula is exact
    return e / e.sum(axis=axis, keepdims=True)


NP = SimpleNamespace(
    const=lambda a: a,
    exp=np.exp, log=np.log, tanh=np.tanh,
    relu=lambda x: np.maximum(x, 0.0),
    sigmoid=lambda x: 1.0 / (1.0 + np.exp(-x)),
    sum=lambda x, axis=None, keepdims=False: np.sum(x, axis=axis, keepdims=keepdims),
    mean=lambda x, axis=None, keepdims=False: np.mean(x, axis=axis, keepdims=keepdims),
    max=lambda x, axis=None, keepdims=False: np.max(x, axis=axis, keepdims=keepdims),
    reshape=lambda x, shape: np.reshape(x, shape),
    transpose=lambda x, axes=None: np.transpose(x, axes),
    getitem=lambda x, index: x[index],
    logsumexp=lambda x, axis, keepdims=False: np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims)),
    softmax=_np_softmax,
    log_softmax=lambda x, axis: np.log(_np_softmax(x, axis)),
)

OURS = SimpleNamespace(
    const=Tensor,
    exp=lambda x: x.exp(), log=lambda x: x.log(), tanh=lambda x: x.tanh(),
    relu=lambda x: x.relu(), sigmoid=lambda x: x.sigmoid(),
    sum=lambda x, axis=None, keepdims=False: x.sum(axis=axis, keepdims=keepdims),
    mean=lambda x, axis=None, keepdims=False: x.mean(axis=axis, keepdims=keepdims),
    max=lambda x, axis=None, keepdims=False: x.max(axis=axis, keepdims=keepdims),
    reshape=lambda x, shape: x.reshape(shape),
    transpose=lambda x, axes=None: x.transpose(axes) if axes is not None else x.transpose(),
    getitem=lambda x, index: x[index],
    logsumexp=lambda x, axis, keepdims=False: x.logsumexp(axis=axis, keepdims=keepdims),
    softmax=lambda x, axis: x.softmax(axis=axis),
    log_softmax=lambda x, axis: x.log_softmax(axis=axis),
)


def _torch_backend():
    import torch

    def dims(x, axis):
        return tuple(range(x.ndim)) if axis is None else axis

    def index(i):
        if isinstance(i, tuple):
            return tuple(index(k) for k in i)
        return torch.as_tensor(i) if isinstance(i, np.ndarray) else i

    return SimpleNamespace(
        const=lambda a: torch.as_tensor(np.asarray(a)),
        exp=torch.exp, log=torch.log, tanh=torch.tanh, relu=torch.relu, sigmoid=torch.sigmoid,
        sum=lambda x, axis=None, keepdims=False: x.sum(dim=dims(x, axis), keepdim=keepdims),
        mean=lambda x, axis=None, keepdims=False: x.mean(dim=dims(x, axis), keepdim=keepdims),
        max=lambda x, axis=None, keepdims=False: torch.amax(x, dim=dims(x, axis), keepdim=keepdims),
        reshape=lambda x, shape: x.reshape(shape),
        transpose=lambda x, axes=None: x.permute(axes if axes is not None else tuple(range(x.ndim))[::-1]),
        getitem=lambda x, i: x[index(i)],
        logsumexp=lambda x, axis, keepdims=False: torch.logsumexp(x, dim=dims(x, axis), keepdim=keepdims),
        softmax=lambda x, axis: torch.softmax(x, dim=axis),
        log_softmax=lambda x, axis: torch.log_softmax(x, dim=axis),
    )


MASK = np.array([[True, False, True, True], [False, False, True, False], [True, True, False, True]])

# name -> (function(B, *inputs), [(shape, kind)]); kind: "any" normal, "pos" in [0.5, 2],
# "nonzero" normal pushed away from 0 (relu's kink).
CASES = {
    "add (2,3) + (3,)": (lambda B, a, b: a + b, [((2, 3), "any"), ((3,), "any")]),
    "add (2,1) + (1,3)": (lambda B, a, b: a + b, [((2, 1), "any"), ((1, 3), "any")]),
    "add () + (2,3)": (lambda B, a, b: a + b, [((), "any"), ((2, 3), "any")]),
    "sub (4,1,3) - (2,3)": (lambda B, a, b: a - b, [((4, 1, 3), "any"), ((2, 3), "any")]),
    "mul (2,3) * (2,1)": (lambda B, a, b: a * b, [((2, 3), "any"), ((2, 1), "any")]),
    "mul (3,) * (2,3) same tensor twice": (lambda B, a, b: a * b * a, [((3,), "any"), ((2, 3), "any")]),
    "div (2,3) / (3,)": (lambda B, a, b: a / b, [((2, 3), "any"), ((3,), "pos")]),
    "div (1,3) / (2,1)": (lambda B, a, b: a / b, [((1, 3), "any"), ((2, 1), "pos")]),
    "neg": (lambda B, a: -a, [((2, 3), "any")]),
    "pow 2": (lambda B, a: a ** 2, [((2, 3), "any")]),
    "pow 3": (lambda B, a: a ** 3, [((4,), "any")]),
    "pow 0.5": (lambda B, a: a ** 0.5, [((2, 3), "pos")]),
    "pow -1": (lambda B, a: a ** -1, [((2, 3), "pos")]),
    "pow with a tensor exponent (2,3) ** (3,)": (lambda B, a, b: a ** b, [((2, 3), "pos"), ((3,), "any")]),
    "2 ** a": (lambda B, a: 2.0 ** a, [((2, 3), "any")]),
    "scalar operands on either side": (lambda B, a: 1.5 + 2 * a - a / 4 + 3 / (a * a + 1) - 0.5 * (2 - a),
                                       [((2, 3), "any")]),
    "matmul (3,4) @ (4,2)": (lambda B, a, b: a @ b, [((3, 4), "any"), ((4, 2), "any")]),
    "matmul batched (5,3,4) @ (5,4,2)": (lambda B, a, b: a @ b, [((5, 3, 4), "any"), ((5, 4, 2), "any")]),
    "matmul broadcast batch (2,1,3,4) @ (5,4,2)": (lambda B, a, b: a @ b, [((2, 1, 3, 4), "any"), ((5, 4, 2), "any")]),
    "matmul (3,4) @ (2,4,2) batch only on b": (lambda B, a, b: a @ b, [((3, 4), "any"), ((2, 4, 2), "any")]),
    "matmul (4,) @ (4,2)": (lambda B, a, b: a @ b, [((4,), "any"), ((4, 2), "any")]),
    "matmul (3,4) @ (4,)": (lambda B, a, b: a @ b, [((3, 4), "any"), ((4,), "any")]),
    "matmul (4,) @ (4,)": (lambda B, a, b: a @ b, [((4,), "any"), ((4,), "any")]),
    "matmul (4,) @ (3,4,2)": (lambda B, a, b: a @ b, [((4,), "any"), ((3, 4, 2), "any")]),
    "matmul (2,3,4) @ (4,)": (lambda B, a, b: a @ b, [((2, 3, 4), "any"), ((4,), "any")]),
    "sum all": (lambda B, a: B.sum(a), [((2, 3, 4), "any")]),
    "sum axis 0": (lambda B, a: B.sum(a, 0), [((2, 3, 4), "any")]),
    "sum axis -1 keepdims": (lambda B, a: B.sum(a, -1, True), [((2, 3, 4), "any")]),
    "sum axes (0, 2)": (lambda B, a: B.sum(a, (0, 2)), [((2, 3, 4), "any")]),
    "sum all keepdims": (lambda B, a: B.sum(a, None, True), [((2, 3), "any")]),
    "mean all": (lambda B, a: B.mean(a), [((2, 3, 4), "any")]),
    "mean axis 1": (lambda B, a: B.mean(a, 1), [((2, 3, 4), "any")]),
    "mean axes (0, 2) keepdims": (lambda B, a: B.mean(a, (0, 2), True), [((2, 3, 4), "any")]),
    "max all": (lambda B, a: B.max(a), [((2, 3, 4), "any")]),
    "max axis 1": (lambda B, a: B.max(a, 1), [((2, 3, 4), "any")]),
    "max axis -1 keepdims": (lambda B, a: B.max(a, -1, True), [((2, 3, 4), "any")]),
    "max axes (0, 2)": (lambda B, a: B.max(a, (0, 2)), [((2, 3, 4), "any")]),
    "reshape (2,3,4) -> (6,4)": (lambda B, a: B.reshape(a, (6, 4)), [((2, 3, 4), "any")]),
    "reshape (2,3,4) -> (-1,)": (lambda B, a: B.reshape(a, (-1,)), [((2, 3, 4), "any")]),
    "transpose (reverse)": (lambda B, a: B.transpose(a), [((2, 3, 4), "any")]),
    "transpose (1, 0, 2)": (lambda B, a: B.transpose(a, (1, 0, 2)), [((2, 3, 4), "any")]),
    "transpose (2, 0, 1)": (lambda B, a: B.transpose(a, (2, 0, 1)), [((2, 3, 4), "any")]),
    ".T": (lambda B, a: a.T, [((2, 3), "any")]),
    "getitem int and slices": (lambda B, a: B.getitem(a, (1, slice(None), slice(None, None, 2))), [((2, 3, 4), "any")]),
    "getitem negative int": (lambda B, a: B.getitem(a, -1), [((3, 4), "any")]),
    "getitem integer array with repeats": (lambda B, a: B.getitem(a, np.array([0, 2, 0, 0])), [((3, 4), "any")]),
    "getitem two integer arrays (pairs)": (lambda B, a: B.getitem(a, (np.array([0, 1, 1, 0]), np.array([2, 0, 2, 2]))),
                                           [((3, 4), "any")]),
    "getitem ... and an integer array": (lambda B, a: B.getitem(a, (Ellipsis, np.array([3, 0, 3]))), [((2, 3, 4), "any")]),
    "getitem boolean mask": (lambda B, a: B.getitem(a, MASK), [((3, 4), "any")]),
    "getitem None (new axis)": (lambda B, a: B.getitem(a, (slice(None), None)), [((3, 4), "any")]),
    "exp": (lambda B, a: B.exp(a), [((2, 3), "any")]),
    "log": (lambda B, a: B.log(a), [((2, 3), "pos")]),
    "tanh": (lambda B, a: B.tanh(a), [((2, 3), "any")]),
    "relu": (lambda B, a: B.relu(a), [((3, 4), "nonzero")]),
    "sigmoid": (lambda B, a: B.sigmoid(a * 3), [((3, 4), "any")]),
    "logsumexp axis -1": (lambda B, a: B.logsumexp(a, -1), [((3, 4), "any")]),
    "logsumexp axis 0 keepdims": (lambda B, a: B.logsumexp(a, 0, True), [((3, 4), "any")]),
    "logsumexp axes (0, 2)": (lambda B, a: B.logsumexp(a, (0, 2)), [((2, 3, 4), "any")]),
    "logsumexp all": (lambda B, a: B.logsumexp(a, None), [((3, 4), "any")]),
    "softmax axis -1": (lambda B, a: B.softmax(a, -1), [((3, 4), "any")]),
    "softmax axis 0": (lambda B, a: B.softmax(a, 0), [((3, 4), "any")]),
    "log_softmax axis -1": (lambda B, a: B.log_softmax(a, -1), [((3, 4), "any")]),
    "log_softmax axis 1 of (2,3,4)": (lambda B, a: B.log_softmax(a, 1), [((2, 3, 4), "any")]),
}


def make_inputs(name):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    xs = []
    for shape, kind in CASES[name][1]:
        if kind == "pos":
            xs.append(rng.uniform(0.5, 2.0, shape))
        elif kind == "nonzero":
            x = rng.standard_normal(shape)
            xs.append(np.sign(x) * (np.abs(x) + 0.2))
        else:
            xs.append(rng.standard_normal(shape))
    return [np.asarray(x, dtype=np.float64) for x in xs]


@pytest.mark.parametrize("name", list(CASES))
def test_forward_matches_numpy(name):
    fn = CASES[name][0]
    xs = make_inputs(name)
    out = fn(OURS, *[Tensor(x, requires_grad=True) for x in xs])
    assert isinstance(out, Tensor), f"{name}: expected a Tensor, got {type(out).__name__}"
    assert_close(out.data, fn(NP, *xs), rtol=1e-10, atol=1e-12, what=f"value of {name}")
    assert out.data.dtype == np.float64, f"{name}: float64 inputs gave a {out.data.dtype} result"


@pytest.mark.parametrize("name", list(CASES))
def test_backward_matches_finite_differences(name):
    fn = CASES[name][0]
    xs = make_inputs(name)
    leaves = [Tensor(x, requires_grad=True) for x in xs]
    out = fn(OURS, *leaves)
    dout = np.random.default_rng(1).standard_normal(np.shape(fn(NP, *xs)))
    out.backward(dout)
    # np.array copies: a reshape or slice of x is a view that would follow x's perturbation
    check_gradients(lambda: np.array(fn(NP, *xs)), {f"input {k} {x.shape}": x for k, x in enumerate(xs)},
                    {f"input {k} {x.shape}": leaf.grad for k, (x, leaf) in enumerate(zip(xs, leaves))},
                    dout=dout)


@pytest.mark.parametrize("name", list(CASES))
def test_matches_torch(torch, name):
    fn = CASES[name][0]
    xs = make_inputs(name)
    leaves = [Tensor(x, requires_grad=True) for x in xs]
    out = fn(OURS, *leaves)
    dout = np.random.default_rng(2).standard_normal(out.shape)
    out.backward(dout)
    t_leaves = [torch.tensor(x, requires_grad=True) for x in xs]
    t_out = fn(_torch_backend(), *t_leaves)
    t_out.backward(torch.tensor(dout))
    assert_close(out.data, t_out.detach().numpy(), rtol=1e-10, atol=1e-12, what=f"value of {name} vs torch")
    for k, (leaf, t_leaf) in enumerate(zip(leaves, t_leaves)):
        assert_close(leaf.grad, t_leaf.grad.numpy(), rtol=1e-9, atol=1e-12,
                     what=f"gradient of input {k} of {name} vs torch")


TIES = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0], [0.0, -1.0, 5.0]])


def test_max_splits_the_gradient_evenly_among_ties():
    t = Tensor(TIES, requires_grad=True)
    t.max(axis=1).sum().backward()
    expected = np.array([[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3], [0, 0, 1]])
    assert_close(t.grad, expected, rtol=1e-12, atol=0,
                 what="gradient of max over rows with ties (split evenly among the tied maxima)")
    dout = np.array([2.0, -3.0, 0.5])
    weighted = Tensor(TIES, requires_grad=True)
    weighted.max(axis=1).backward(dout)
    assert_close(weighted.grad, expected * dout[:, None], rtol=1e-12, atol=0,
                 what="gradient of max over rows with ties for an upstream gradient [2, -3, 0.5]")
    cols = Tensor(TIES, requires_grad=True)
    cols.max(axis=0, keepdims=True).sum().backward()
    assert_close(cols.grad, [[0, 1, 0], [1, 0, 0], [0, 0, 1]], rtol=1e-12, atol=0,
                 what="gradient of max over columns (no ties there)")
    flat = Tensor(np.array([4.0, 1.0, 4.0, 4.0, -2.0]), requires_grad=True)
    flat.max().backward()
    assert_close(flat.grad, [1 / 3, 0, 1 / 3, 1 / 3, 0], rtol=1e-12, atol=0,
                 what="gradient of the max of all elements with a three-way tie")
    whole = Tensor(TIES, requires_grad=True)
    whole.max().backward()
    assert_close(whole.grad, (TIES == 5.0).astype(float), rtol=1e-12, atol=0,
                 what="gradient of the max of all elements (a single maximum)")


def test_max_with_ties_matches_torch(torch):
    t = Tensor(TIES, requires_grad=True)
    t.max(axis=1).sum().backward()
    tt = torch.tensor(TIES, requires_grad=True)
    torch.amax(tt, dim=1).sum().backward()
    assert_close(t.grad, tt.grad.numpy(), what="gradient of max with ties vs torch.amax")


def test_indexing_with_repeated_indices_accumulates():
    x = Tensor(np.array([10.0, 20.0, 30.0, 40.0]), requires_grad=True)
    picked = x[np.array([0, 0, 2, 0])]
    assert_close(picked.data, [10.0, 10.0, 30.0, 10.0], what="x[[0, 0, 2, 0]]")
    (picked * Tensor(np.array([1.0, 2.0, 3.0, 4.0]))).sum().backward()
    assert_close(x.grad, [1.0 + 2.0 + 4.0, 0.0, 3.0, 0.0],
                 what="gradient of x[[0, 0, 2, 0]] (x[0] picked three times: its gradients add up)")


def test_float32_stays_float32_and_python_data_becomes_float32():
    rng = np.random.default_rng(0)
    a = Tensor(rng.standard_normal((2, 3)).astype(np.float32), requires_grad=True)
    b = Tensor([[1, 2, 3]], requires_grad=True)             # a Python list of ints -> float32
    out = ((a * b + 1.5) ** 2 / 3.0 - a.exp()).tanh() @ Tensor(np.ones((3, 2), np.float32))
    loss = out.log_softmax(axis=-1).mean() + a.sigmoid().max() + out.logsumexp(axis=0).sum()
    loss.backward()
    for name, arr in [("b.data", b.data), ("result data", out.data), ("loss", loss.data),
                      ("a.grad", a.grad), ("b.grad", b.grad)]:
        assert arr is not None and arr.dtype == np.float32, \
            f"{name}: expected float32, got {None if arr is None else arr.dtype}"
    a64 = Tensor(a.data.astype(np.float64), requires_grad=True)
    b64 = Tensor(b.data.astype(np.float64), requires_grad=True)
    out64 = ((a64 * b64 + 1.5) ** 2 / 3.0 - a64.exp()).tanh() @ Tensor(np.ones((3, 2)))
    loss64 = out64.log_softmax(axis=-1).mean() + a64.sigmoid().max() + out64.logsumexp(axis=0).sum()
    loss64.backward()
    assert_close(a.grad, a64.grad, rtol=1e-4, atol=1e-6, what="float32 gradient vs the float64 one")


# ----------------------------------------------------------------------------- random graphs
# Inputs have shapes that broadcast to (2, 3); every step keeps that property (reductions keep
# their axis, indexing picks 3 columns), so any two nodes can be combined. Ill-conditioned steps
# at the drawn point (relu near its kink, near-ties in max, saturation) become a linear step.

SHAPES = [(2, 3), (3,), (2, 1), (1, 3), ()]
FULL = (2, 3)


def _cols(x):
    return np.shape(x)[-1] if np.ndim(x) else 0


def _numel(x):
    return int(np.prod(np.shape(x)))


def _gap_ok(a):
    if np.ndim(a) == 0 or np.shape(a)[-1] == 1:
        return True
    s = np.sort(a, axis=-1)
    return bool(np.all(s[..., -1] - s[..., -2] > 1e-3))


STEPS = {
    # name: (function(a, b, p, B), text, guard(a, b, p) on arrays)
    "add": (lambda a, b, p, B: a + b, "{a} + {b}", lambda a, b, p: True),
    "sub": (lambda a, b, p, B: a - b * p.c, "{a} - {b} * c", lambda a, b, p: True),
    "mul": (lambda a, b, p, B: a * b, "{a} * {b}",
            lambda a, b, p: np.all((np.abs(a) > 0.05) & (np.abs(a) < 30)) and np.all((np.abs(b) > 0.05) & (np.abs(b) < 30))),
    "div": (lambda a, b, p, B: a / (b * b + abs(p.c)), "{a} / ({b}^2 + |c|)", lambda a, b, p: np.all(np.abs(b) > 0.05)),
    "pow": (lambda a, b, p, B: (a * a + 1) ** (b * 0.5), "({a}^2 + 1) ** ({b} / 2)",
            lambda a, b, p: np.all(np.abs(b) < 3) and np.all(np.abs(a) < 5)),
    "matmul": (lambda a, b, p, B: ((a + B.const(np.zeros(FULL))) @ (b + B.const(np.zeros(FULL))).T)
               @ B.const(p.m) * 0.5, "(full({a}) @ full({b}).T) @ M / 2",
               lambda a, b, p: np.all(np.abs(a) < 10) and np.all(np.abs(b) < 10)),
    "tanh": (lambda a, b, p, B: B.tanh(a * p.c), "tanh({a} * c)", lambda a, b, p: np.all(np.abs(a * p.c) < 3)),
    "sigmoid": (lambda a, b, p, B: B.sigmoid(a * p.c), "sigmoid({a} * c)", lambda a, b, p: np.all(np.abs(a * p.c) < 4)),
    "exp": (lambda a, b, p, B: B.exp(a * p.c), "exp({a} * c)", lambda a, b, p: np.all(np.abs(a * p.c) < 3)),
    "log": (lambda a, b, p, B: B.log(a * a + abs(p.c)), "log({a}^2 + |c|)", lambda a, b, p: np.all(np.abs(a) > 0.05)),
    "relu": (lambda a, b, p, B: B.relu(a + p.c), "relu({a} + c)", lambda a, b, p: np.all(np.abs(a + p.c) > 0.01)),
    "sum": (lambda a, b, p, B: B.sum(a, -1, True), "{a}.sum(-1, keepdims)", lambda a, b, p: np.ndim(a) > 0),
    "mean": (lambda a, b, p, B: B.mean(a, 0, True) * 2, "{a}.mean(0, keepdims) * 2", lambda a, b, p: np.ndim(a) > 0),
    "max": (lambda a, b, p, B: B.max(a, -1, True), "{a}.max(-1, keepdims)", lambda a, b, p: np.ndim(a) > 0 and _gap_ok(a)),
    "logsumexp": (lambda a, b, p, B: B.logsumexp(a, -1, True), "{a}.logsumexp(-1, keepdims)",
                  lambda a, b, p: np.ndim(a) > 0 and np.all(np.abs(a) < 20)),
    "softmax": (lambda a, b, p, B: B.softmax(a, -1) * 3, "{a}.softmax(-1) * 3",
                lambda a, b, p: np.ndim(a) > 0 and np.all(np.abs(a) < 5)),
    "log_softmax": (lambda a, b, p, B: B.log_softmax(a, -1), "{a}.log_softmax(-1)",
                    lambda a, b, p: np.ndim(a) > 0 and np.all(np.abs(a) < 5)),
    "getitem": (lambda a, b, p, B: B.getitem(a, (Ellipsis, p.idx % _cols(a))), "{a}[..., idx]",
                lambda a, b, p: np.ndim(a) > 0),
    "shuffle": (lambda a, b, p, B: B.reshape(B.getitem(B.reshape(a, (-1,)), p.perm[:_numel(a)] % _numel(a)), np.shape(a)),
                "{a}.reshape(-1)[perm].reshape(shape)", lambda a, b, p: np.ndim(a) > 0),
    "transpose": (lambda a, b, p, B: B.transpose(B.transpose(a * p.c) * 1.0), "((c * {a}).T * 1).T",
                  lambda a, b, p: True),
}
SAFE_STEP = "sub"


@st.composite
def tensor_programs(draw):
    shapes = [FULL] + draw(st.lists(st.sampled_from(SHAPES), min_size=0, max_size=2))
    raw = draw(st.lists(st.tuples(st.sampled_from(sorted(STEPS)), st.integers(0, 99), st.integers(0, 99)),
                        min_size=1, max_size=7))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal(s) for s in shapes]
    pool = list(xs)
    steps = []
    for op, i, j in raw:
        a, b = i % len(pool), j % len(pool)
        p = SimpleNamespace(c=float(rng.uniform(0.5, 1.5) * rng.choice([-1.0, 1.0])),
                            m=rng.standard_normal(FULL), idx=rng.integers(0, 6, 3), perm=rng.permutation(6))
        if not STEPS[op][2](pool[a], pool[b], p):
            op = SAFE_STEP
        steps.append((op, a, b, p))
        pool.append(STEPS[op][0](pool[a], pool[b], p, NP))
    weights = [rng.standard_normal(FULL) for _ in pool]
    return xs, steps, weights


def run_tensor_program(steps, weights, inputs, B):
    pool = list(inputs)
    for op, i, j, p in steps:
        pool.append(STEPS[op][0](pool[i], pool[j], p, B))
    out = B.sum(pool[-1] * B.const(weights[-1]))
    for w, node in zip(weights, pool):
        out = out + B.sum(node * B.const(w))
    return out


def describe_tensor_program(xs, steps, weights) -> str:
    lines = ["inputs: " + ", ".join(f"v{k} {np.shape(x)}" for k, x in enumerate(xs))]
    for k, (op, i, j, _) in enumerate(steps, start=len(xs)):
        lines.append(f"v{k} = " + STEPS[op][1].format(a=f"v{i}", b=f"v{j}"))
    lines.append(f"out = sum(v{len(xs) + len(steps) - 1} * W) + sum_k sum(v_k * W_k)")
    return "\n".join(lines)


@settings(deadline=None, max_examples=40, derandomize=True)
@given(tensor_programs())
def test_random_tensor_graph_matches_finite_differences(program):
    xs, steps, weights = program
    note(describe_tensor_program(*program))
    leaves = [Tensor(x, requires_grad=True) for x in xs]
    out = run_tensor_program(steps, weights, leaves, OURS)
    assert_close(out.data, run_tensor_program(steps, weights, xs, NP), rtol=1e-10,
                 what="output of the random graph")
    out.backward()
    names = [f"v{k} {x.shape}" for k, x in enumerate(xs)]
    check_gradients(lambda: run_tensor_program(steps, weights, xs, NP), dict(zip(names, xs)),
                    {n: leaf.grad for n, leaf in zip(names, leaves)})


@settings(deadline=None, max_examples=25, derandomize=True)
@given(tensor_programs())
def test_random_tensor_graph_matches_torch(torch, program):
    xs, steps, weights = program
    note(describe_tensor_program(*program))
    leaves = [Tensor(x, requires_grad=True) for x in xs]
    out = run_tensor_program(steps, weights, leaves, OURS)
    out.backward()
    t_leaves = [torch.tensor(x, requires_grad=True) for x in xs]
    t_out = run_tensor_program(steps, weights, t_leaves, _torch_backend())
    t_out.backward()
    assert_close(out.data, t_out.item(), rtol=1e-10, what="output vs torch")
    for k, (leaf, t_leaf) in enumerate(zip(leaves, t_leaves)):
        assert_close(leaf.grad, t_leaf.grad.numpy(), rtol=1e-9, atol=1e-12, what=f"gradient of v{k} vs torch")
