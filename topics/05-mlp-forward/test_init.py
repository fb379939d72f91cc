"""Topic 05: fans, gains and the initialisers, checked against the formulas, against
PyTorch's ``torch.nn.init``, and statistically on large draws.

Sampling error: a draw of n = 200,000 values estimates its standard deviation with a
relative error of about 1/sqrt(2n) ≈ 0.16%, so a 1% tolerance is over 6 standard errors
(a correct initialiser essentially never fails it, a wrong formula always does).
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.nn import init
from dlfs.testing import assert_close
from torch_oracle import torch_or_skip

BIG_2D = (400, 500)             # (fan_in, fan_out) = (400, 500): 200,000 values
BIG_CONV = (96, 48, 7, 7)       # fan_in = 48·49 = 2352, fan_out = 96·49 = 4704: 225,792 values


# ---------------------------------------------------------------------------------------
# fans
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, fans", [
    ((3, 5), (3, 5)),                    # (D_in, D_out): x @ W
    ((784, 128), (784, 128)),
    ((4, 2, 5), (10, 20)),               # conv1d (C_out, C_in, k): receptive field 5
    ((16, 8, 3, 3), (72, 144)),          # conv2d: receptive field 9
    ((6, 4, 2, 3, 3), (72, 108)),        # conv3d: receptive field 18
    ((1, 1), (1, 1)),
])
def test_calculate_fans(shape, fans):
    got = init.calculate_fans(shape)
    assert tuple(got) == fans, f"calculate_fans{shape}: expected {fans}, got {got}"
    assert all(isinstance(f, (int, np.integer)) for f in got), f"fans must be integers, got {got!r}"


def test_calculate_fans_rejects_fewer_than_two_dimensions():
    for shape in [(5,), ()]:
        with pytest.raises(ValueError):
            init.calculate_fans(shape)


@settings(deadline=None, max_examples=30)
@given(c_out=st.integers(1, 16), c_in=st.integers(1, 16),
       kernel=st.lists(st.integers(1, 5), min_size=1, max_size=3))
def test_conv_fans_share_the_receptive_field(c_out, c_in, kernel):
    fan_in, fan_out = init.calculate_fans((c_out, c_in, *kernel))
    rf = math.prod(kernel)
    assert (fan_in, fan_out) == (c_in * rf, c_out * rf), \
        f"shape {(c_out, c_in, *kernel)}: expected ({c_in * rf}, {c_out * rf}), got ({fan_in}, {fan_out})"


@pytest.mark.parametrize("shape", [(3, 5), (128, 10), (4, 2, 5), (16, 8, 3, 3), (6, 4, 2, 3, 3)])
def test_fans_match_torch(shape):
    torch = torch_or_skip()
    # torch stores a Linear weight (out, in); ours is (in, out). Conv layouts agree.
    torch_shape = shape[::-1] if len(shape) == 2 else shape
    expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(torch_shape))
    got = init.calculate_fans(shape)
    assert tuple(got) == tuple(expected), \
        f"calculate_fans{shape}: torch (weight {torch_shape}) gives {expected}, got {got}"


# ---------------------------------------------------------------------------------------
# gains
# ---------------------------------------------------------------------------------------

GAINS = [
    (("linear",), 1.0), (("conv2d",), 1.0), (("sigmoid",), 1.0),
    (("tanh",), 5.0 / 3), (("relu",), math.sqrt(2.0)), (("selu",), 0.75),
    (("leaky_relu",), math.sqrt(2.0 / (1 + 0.01 ** 2))),
    (("leaky_relu", 0.2), math.sqrt(2.0 / 1.04)),
    (("leaky_relu", 0), math.sqrt(2.0)),
    (("leaky_relu", 1), 1.0),
]


@pytest.mark.parametrize("args, expected", GAINS, ids=lambda v: str(v))
def test_calculate_gain(args, expected):
    got = init.calculate_gain(*args)
    assert got == pytest.approx(expected, rel=1e-12), f"calculate_gain{args}: expected {expected}, got {got}"


@pytest.mark.parametrize("args", [a for a, _ in GAINS], ids=str)
def test_gains_match_torch(args):
    torch = torch_or_skip()
    expected = torch.nn.init.calculate_gain(*args)
    got = init.calculate_gain(*args)
    assert got == pytest.approx(expected, rel=1e-12), f"calculate_gain{args}: torch gives {expected}, got {got}"


def test_calculate_gain_rejects_unknown_input():
    with pytest.raises(ValueError):
        init.calculate_gain("swish")
    with pytest.raises(ValueError):
        init.calculate_gain("leaky_relu", "0.2")
    with pytest.raises(ValueError):
        init.calculate_gain("leaky_relu", True)       # a bool is an int in Python, not a slope


# ---------------------------------------------------------------------------------------
# the initialisers: spread, bounds, shape of the distribution
# ---------------------------------------------------------------------------------------

NORMAL_CASES = [
    # (initialiser, kwargs, shape, expected std)
    ("xavier_normal", {}, BIG_2D, math.sqrt(2 / 900)),
    ("xavier_normal", {"gain": 5 / 3}, BIG_2D, 5 / 3 * math.sqrt(2 / 900)),
    ("xavier_normal", {}, BIG_CONV, math.sqrt(2 / (2352 + 4704))),
    ("kaiming_normal", {}, BIG_2D, math.sqrt(2 / 400)),
    ("kaiming_normal", {"mode": "fan_out"}, BIG_2D, math.sqrt(2 / 500)),
    ("kaiming_normal", {"a": 0.2, "nonlinearity": "leaky_relu"}, BIG_2D, math.sqrt(2 / 1.04 / 400)),
    ("kaiming_normal", {"nonlinearity": "tanh"}, BIG_2D, 5 / 3 / math.sqrt(400)),
    ("kaiming_normal", {}, BIG_CONV, math.sqrt(2 / 2352)),
    ("kaiming_normal", {"mode": "fan_out"}, BIG_CONV, math.sqrt(2 / 4704)),
    ("lecun_normal", {}, BIG_2D, math.sqrt(1 / 400)),
    ("lecun_normal", {}, BIG_CONV, math.sqrt(1 / 2352)),
]

UNIFORM_CASES = [
    # (initialiser, kwargs, shape, expected bound)
    ("xavier_uniform", {}, BIG_2D, math.sqrt(6 / 900)),
    ("xavier_uniform", {"gain": math.sqrt(2)}, BIG_2D, math.sqrt(2) * math.sqrt(6 / 900)),
    ("xavier_uniform", {}, BIG_CONV, math.sqrt(6 / (2352 + 4704))),
    ("kaiming_uniform", {}, BIG_2D, math.sqrt(2) * math.sqrt(3 / 400)),
    ("kaiming_uniform", {"mode": "fan_out"}, BIG_2D, math.sqrt(2) * math.sqrt(3 / 500)),
    ("kaiming_uniform", {"a": math.sqrt(5), "nonlinearity": "leaky_relu"}, BIG_2D, math.sqrt(1 / 400)),
    ("kaiming_uniform", {}, BIG_CONV, math.sqrt(2) * math.sqrt(3 / 2352)),
]


def _ids(case):
    name, kwargs, shape, _ = case
    return f"{name}-{shape}-" + ",".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                         for k, v in kwargs.items())


@pytest.mark.parametrize("case", NORMAL_CASES, ids=_ids)
def test_normal_initialisers_have_the_right_spread(case):
    name, kwargs, shape, std = case
    w = getattr(init, name)(shape, rng=np.random.default_rng(0), **kwargs)
    assert w.shape == shape, f"{name}: expected shape {shape}, got {w.shape}"
    w = w.astype(np.float64)
    n = w.size
    assert abs(w.mean()) < 5 * std / math.sqrt(n), f"{name}: mean {w.mean():.3e} is not ≈ 0"
    assert w.std() == pytest.approx(std, rel=0.01), \
        f"{name}{shape} {kwargs}: expected std {std:.6f}, the draw has std {w.std():.6f}"
    # a normal puts 68.27% of its mass within one std (a uniform with that std: 57.7%)
    inside = np.mean(np.abs(w) < std)
    assert inside == pytest.approx(0.6827, abs=0.006), \
        f"{name}: {inside:.4f} of the values lie within one std; a normal distribution has 0.6827"


@pytest.mark.parametrize("case", UNIFORM_CASES, ids=_ids)
def test_uniform_initialisers_have_exact_bounds(case):
    name, kwargs, shape, bound = case
    w = getattr(init, name)(shape, rng=np.random.default_rng(1), **kwargs)
    assert w.shape == shape, f"{name}: expected shape {shape}, got {w.shape}"
    w = w.astype(np.float64)
    assert np.abs(w).max() <= bound * (1 + 1e-6), \
        f"{name}{shape} {kwargs}: values must lie in [-{bound:.6f}, {bound:.6f}], found {np.abs(w).max():.6f}"
    assert w.max() > 0.999 * bound and w.min() < -0.999 * bound, \
        f"{name}: the draw should fill [-{bound:.6f}, {bound:.6f}], got [{w.min():.6f}, {w.max():.6f}]"
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.01), \
        f"{name}: a uniform on [-a, a] has std a/sqrt(3) = {bound / math.sqrt(3):.6f}, got {w.std():.6f}"


@pytest.mark.parametrize("name", ["xavier_uniform", "xavier_normal", "kaiming_uniform",
                                  "kaiming_normal", "lecun_normal"])
def test_dtype_shape_and_seeding(name):
    fn = getattr(init, name)
    w = fn((30, 20), rng=0)
    assert w.shape == (30, 20) and w.dtype == np.float32, \
        f"{name}((30, 20)): expected a float32 array of shape (30, 20), got {w.dtype} {w.shape}"
    w64 = fn((6, 3, 2, 2), rng=np.random.default_rng(0), dtype=np.float64)
    assert w64.shape == (6, 3, 2, 2) and w64.dtype == np.float64, \
        f"{name}(..., dtype=float64): got {w64.dtype} {w64.shape}"
    assert_close(fn((30, 20), rng=7), fn((30, 20), rng=7), rtol=0, atol=0,
                 what=f"{name} with the same integer seed")
    assert not np.array_equal(fn((30, 20), rng=7), fn((30, 20), rng=8)), \
        f"{name}: different seeds gave identical draws"
    rng = np.random.default_rng(3)
    assert not np.array_equal(fn((30, 20), rng=rng), fn((30, 20), rng=rng)), \
        f"{name}: two draws from the same Generator must differ (use the rng you are given)"


# ---------------------------------------------------------------------------------------
# against torch.nn.init: same spread (the random streams differ, so compare statistics)
# ---------------------------------------------------------------------------------------

TORCH_CASES = [
    ("xavier_uniform", "xavier_uniform_", {}, {}),
    ("xavier_normal", "xavier_normal_", {"gain": 2.0}, {"gain": 2.0}),
    ("kaiming_uniform", "kaiming_uniform_", {}, {"nonlinearity": "relu"}),
    ("kaiming_uniform", "kaiming_uniform_", {"mode": "fan_out"}, {"mode": "fan_out", "nonlinearity": "relu"}),
    ("kaiming_normal", "kaiming_normal_", {"a": 0.1, "nonlinearity": "leaky_relu"},
     {"a": 0.1, "nonlinearity": "leaky_relu"}),
    ("kaiming_normal", "kaiming_normal_", {"mode": "fan_out"}, {"mode": "fan_out", "nonlinearity": "relu"}),
]


@pytest.mark.parametrize("ours, theirs, kw, torch_kw", TORCH_CASES, ids=lambda v: str(v))
@pytest.mark.parametrize("shape", [(300, 700), (64, 48, 5, 5)])
def test_initialisers_match_torch_statistics(ours, theirs, kw, torch_kw, shape):
    torch = torch_or_skip()
    torch.manual_seed(0)
    torch_shape = shape[::-1] if len(shape) == 2 else shape
    t = torch.empty(torch_shape, dtype=torch.float64)
    getattr(torch.nn.init, theirs)(t, **torch_kw)
    expected = t.numpy()
    got = getattr(init, ours)(shape, rng=np.random.default_rng(0), dtype=np.float64, **kw)
    assert got.shape == shape, f"{ours}: expected shape {shape}, got {got.shape}"
    assert got.std() == pytest.approx(expected.std(), rel=0.02), \
        f"{ours}{shape} {kw}: torch.nn.init.{theirs} on the (out, in) weight gives std " \
        f"{expected.std():.6f}, yours {got.std():.6f}"
    if "uniform" in ours:
        assert np.abs(got).max() == pytest.approx(np.abs(expected).max(), rel=0.01), \
            f"{ours}: largest |value| {np.abs(got).max():.6f}, torch's bound is {np.abs(expected).max():.6f}"
