"""Topic 01 — strided sliding windows: every window of the last axes as a view, no copies."""

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view as np_sliding_window_view

from dlfs.tensor import broadcasting as bc
from dlfs.testing import assert_close

# No 'explain' phase: it would re-run a failing test many times before reporting.
PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink)


def numpy_windows(x, window_shape, step):
    """NumPy's sliding windows over the last axes, keeping every step-th window start."""
    d = len(window_shape)
    view = np_sliding_window_view(x, window_shape, axis=tuple(range(x.ndim - d, x.ndim)))
    lead = x.ndim - d
    return view[(slice(None),) * lead + tuple(slice(None, None, s) for s in step)]


@st.composite
def window_cases(draw):
    """x: (*L, n_1..n_d) (possibly a non-contiguous view), window (w_1..w_d) <= (n_1..n_d), steps."""
    shape = draw(st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple))
    d = draw(st.integers(1, len(shape)))
    window = tuple(draw(st.integers(1, n)) for n in shape[-d:])
    step = tuple(draw(st.integers(1, 3)) for _ in range(d))
    seed = draw(st.integers(0, 2**16))
    x = np.random.default_rng(seed).standard_normal(shape)
    if draw(st.booleans()):                      # a transposed (non-contiguous) input
        x = np.ascontiguousarray(x.T).T
    return x, window, step


@settings(deadline=None, max_examples=80, phases=PHASES)
@given(case=window_cases())
def test_sliding_window_view_matches_numpy(case):
    x, window, step = case
    got = bc.sliding_window_view(x, window, step)
    expected = numpy_windows(x, window, step)
    assert_close(got, expected, what=f"sliding_window_view(x {x.shape}, window {window}, step {step})")


@settings(deadline=None, max_examples=40, phases=PHASES)
@given(case=window_cases())
def test_sliding_window_view_is_a_readonly_view(case):
    x, window, step = case
    got = bc.sliding_window_view(x, window, step)
    assert np.shares_memory(got, x), "sliding_window_view must be a view of x (use as_strided), not a copy"
    assert not got.flags.writeable, "sliding_window_view must be read-only: windows overlap in memory"
    d = len(window)
    assert got.strides[-d:] == x.strides[-d:], (
        f"the window axes step like x's last axes: expected strides {x.strides[-d:]}, got {got.strides[-d:]}"
    )


def test_sliding_window_1d_examples():
    x = np.arange(6.0)
    assert_close(bc.sliding_window_view(x, 3),
                 np.array([[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]], dtype=float),
                 what="windows of 3 over arange(6)")
    assert_close(bc.sliding_window_view(x, 2, step=2),
                 np.array([[0, 1], [2, 3], [4, 5]], dtype=float), what="windows of 2, step 2, over arange(6)")
    assert_close(bc.sliding_window_view(x, 4, step=3),
                 np.array([[0, 1, 2, 3]], dtype=float), what="windows of 4, step 3, over arange(6)")
    assert_close(bc.sliding_window_view(x, 6), x[None, :], what="one window covering all of arange(6)")


def test_moving_average_via_windows():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 20))
    got = bc.sliding_window_view(x, 5).mean(axis=-1)
    expected = np.stack([np.convolve(row, np.ones(5) / 5, mode="valid") for row in x])
    assert_close(got, expected, what="moving average of width 5 from sliding windows")


def test_strided_2d_correlation_via_windows():
    """The convolution of Topic 11 in one line: windows (N, C, P, Q, kh, kw) times the kernel."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((4, 3, 3, 2))               # (F, C, kh, kw)
    stride = 2
    windows = bc.sliding_window_view(x, (3, 2), step=stride)
    got = np.einsum("ncpqij,fcij->nfpq", windows, w)
    P, Q = (7 - 3) // stride + 1, (6 - 2) // stride + 1
    expected = np.zeros((2, 4, P, Q))
    for p in range(P):
        for q in range(Q):
            patch = x[:, :, p * stride:p * stride + 3, q * stride:q * stride + 2]
            expected[:, :, p, q] = np.einsum("ncij,fcij->nf", patch, w)
    assert_close(got, expected, what="strided 2-D correlation built on sliding_window_view")


def test_sliding_window_empty_window_and_full_window():
    x = np.arange(12.0).reshape(3, 4)
    assert_close(bc.sliding_window_view(x, (3, 4)), x[None, None], what="a window as large as x")
    got = bc.sliding_window_view(x, (0,))
    assert tuple(got.shape) == (3, 5, 0), f"windows of size 0 over (3, 4): expected shape (3, 5, 0), got {got.shape}"


@pytest.mark.parametrize("shape, window, step", [
    ((5,), 6, 1),                  # window larger than the axis
    ((4, 5), (2, 6), 1),
    ((5,), -1, 1),                 # negative window
    ((5,), 2, 0),                  # step must be >= 1
    ((4, 5), (2, 2), (1, 1, 1)),   # one step per window axis
    ((5,), (1, 1), 1),             # more window axes than x has
])
def test_sliding_window_view_rejects_bad_arguments(shape, window, step):
    with pytest.raises(ValueError):
        bc.sliding_window_view(np.zeros(shape), window, step)
