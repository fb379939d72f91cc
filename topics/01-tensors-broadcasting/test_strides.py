"""Topic 01 — shapes, strides and contiguity: contiguous_strides, is_contiguous, transpose_view."""

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import as_strided

from dlfs.tensor import broadcasting as bc
from dlfs.testing import assert_close

# No 'explain' phase: it would re-run a failing test many times before reporting.
PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink)

DTYPES = [np.int8, np.int16, np.float32, np.float64]

positive_shapes = st.lists(st.integers(1, 5), min_size=0, max_size=4).map(tuple)


@st.composite
def strided_views(draw):
    """A random view of a fresh array: sliced with steps, permuted, with size-1 axes added."""
    shape = draw(st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple))
    dtype = draw(st.sampled_from(DTYPES))
    a = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)
    index = []
    for n in shape:
        start = draw(st.integers(0, max(n - 1, 0)))
        stop = draw(st.integers(start, n))
        step = draw(st.integers(1, 3))
        index.append(draw(st.sampled_from([slice(None), slice(start, stop, step)])))
    view = a[tuple(index)] if index else a       # a[()] on a 0-d array would give a scalar
    view = view.transpose(draw(st.permutations(range(view.ndim))))
    if draw(st.booleans()):                      # a size-1 axis with an arbitrary stride
        pos = draw(st.integers(0, view.ndim))
        stride = draw(st.sampled_from([0, 1, 8, 1000]))
        view = as_strided(view, view.shape[:pos] + (1,) + view.shape[pos:],
                          view.strides[:pos] + (stride,) + view.strides[pos:], writeable=False)
    return view


# ----------------------------------------------------------------- contiguous_strides

def test_contiguous_strides_example():
    got = bc.contiguous_strides((2, 3, 4), 8)
    assert tuple(got) == (96, 32, 8), f"contiguous_strides((2, 3, 4), 8): expected (96, 32, 8), got {got}"
    got = bc.contiguous_strides((5,), 4)
    assert tuple(got) == (4,), f"contiguous_strides((5,), 4): expected (4,), got {got}"
    got = bc.contiguous_strides((), 8)
    assert tuple(got) == (), f"contiguous_strides((), 8): expected (), got {got}"


@settings(deadline=None, max_examples=60, phases=PHASES)
@given(shape=positive_shapes, dtype=st.sampled_from(DTYPES))
def test_contiguous_strides_match_numpy(shape, dtype):
    expected = np.empty(shape, dtype=dtype).strides
    got = bc.contiguous_strides(shape, np.dtype(dtype).itemsize)
    assert tuple(got) == expected, (
        f"contiguous_strides({shape}, {np.dtype(dtype).itemsize}): expected {expected}, got {got}"
    )


@settings(deadline=None, max_examples=40, phases=PHASES)
@given(shape=positive_shapes, data=st.data())
def test_strides_locate_every_element(shape, data):
    """offset(index) = sum_k index[k] * strides[k] finds a[index] in the flat buffer."""
    a = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    strides = bc.contiguous_strides(shape, a.itemsize)
    index = tuple(data.draw(st.integers(0, n - 1)) for n in shape)
    offset = sum(i * s for i, s in zip(index, strides))
    assert offset % a.itemsize == 0, f"byte offset {offset} is not a multiple of the itemsize"
    assert_close(a.ravel()[offset // a.itemsize], a[index], what=f"element at index {index} via strides {strides}")


# ----------------------------------------------------------------- is_contiguous

def test_is_contiguous_examples():
    a = np.arange(24.0).reshape(2, 3, 4)
    cases = [
        (a, True, "a fresh (2, 3, 4) array"),
        (a.T, False, "its transpose"),
        (a[:, 1:, :], False, "a slice along a middle axis"),
        (a[1:], True, "a slice along the first axis"),
        (a[:, :, ::2], False, "every other column"),
        (a[1:2], True, "a size-1 slice along the first axis"),
        (a[:, :1, :], False, "a size-1 slice along the middle axis (rows 96 bytes apart)"),
        (np.arange(12.0).reshape(3, 4)[:, None, :], True, "a size-1 axis added in the middle"),
        (np.arange(5.0)[None, :, None], True, "size-1 axes added with None"),
        (a[:, :0], True, "a zero-size array"),
        (np.float64(3.0), True, "a 0-d array"),
    ]
    for view, expected, name in cases:
        got = bc.is_contiguous(view)
        assert bool(got) == expected, f"is_contiguous of {name}: expected {expected}, got {got}"


@settings(deadline=None, max_examples=150, phases=PHASES)
@given(view=strided_views())
def test_is_contiguous_matches_numpy_flag(view):
    got = bc.is_contiguous(view)
    expected = view.flags.c_contiguous
    assert bool(got) == expected, (
        f"is_contiguous(shape={view.shape}, strides={view.strides}, itemsize={view.itemsize}): "
        f"expected {expected}, got {got}"
    )


# ----------------------------------------------------------------- transpose_view

@settings(deadline=None, max_examples=60, phases=PHASES)
@given(view=strided_views(), data=st.data())
def test_transpose_view_matches_numpy(view, data):
    axes = data.draw(st.permutations(range(view.ndim)))
    got = bc.transpose_view(view, axes)
    expected = np.transpose(view, axes)
    assert_close(got, expected, what=f"transpose_view(shape {view.shape}, axes={axes})")
    assert tuple(got.strides) == tuple(view.strides[ax] for ax in axes), (
        f"transpose_view strides: expected {tuple(view.strides[ax] for ax in axes)}, got {got.strides}"
    )
    if view.size:
        assert np.shares_memory(got, view), "transpose_view must return a view, not a copy"


def test_transpose_view_default_reverses_and_negative_axes():
    a = np.arange(24.0).reshape(2, 3, 4)
    assert_close(bc.transpose_view(a), a.T, what="transpose_view(a) with the default axes")
    assert_close(bc.transpose_view(a, (-1, 0, -2)), np.transpose(a, (2, 0, 1)),
                 what="transpose_view(a, (-1, 0, -2))")


def test_transpose_view_writes_through_and_breaks_contiguity():
    a = np.zeros((3, 4))
    t = bc.transpose_view(a, (1, 0))
    t[2, 1] = 7.0
    assert a[1, 2] == 7.0, "writing t[2, 1] of the transposed view must change a[1, 2] (it is a view)"
    assert not bc.is_contiguous(t), "the transpose of a (3, 4) array is not C-contiguous"
    assert bc.is_contiguous(bc.transpose_view(t, (1, 0))), "transposing twice gives back a contiguous array"


@pytest.mark.parametrize("axes", [(0, 0, 1), (0, 1), (0, 1, 3), (0, 1, 2, 3), (0, 1, -4)])
def test_transpose_view_rejects_bad_axes(axes):
    a = np.zeros((2, 3, 4))
    with pytest.raises(ValueError):
        bc.transpose_view(a, axes)
