"""Topic 01 — broadcasting by hand: broadcast_shapes, broadcast_to, and unbroadcast (its adjoint)."""

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dlfs.tensor import broadcasting as bc
from dlfs.testing import assert_close, check_gradients
from torch_oracle import to_numpy, torch_or_skip

# No 'explain' phase: it would re-run a failing test many times before reporting.
PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink)

# Small sizes, with 0 and 1 over-represented: that is where the rules bite.
sizes = st.sampled_from([0, 1, 1, 2, 3])
any_shapes = st.lists(sizes, min_size=0, max_size=4).map(tuple)


def numpy_broadcast_shapes(*shapes):
    """np.broadcast_shapes, or the exception it raises."""
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError as exc:
        return exc


@st.composite
def broadcastable_pair(draw, max_dims=4):
    """(input shape, target shape) such that the input broadcasts to exactly the target."""
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=max_dims, max_side=3))
    source = shapes.input_shapes[0]
    return source, shapes.result_shape


# ----------------------------------------------------------------- broadcast_shapes

@pytest.mark.parametrize("shapes, expected", [
    (((8, 1, 6, 1), (7, 1, 5)), (8, 7, 6, 5)),
    (((256, 256, 3), (3,)), (256, 256, 3)),
    (((5, 4), (1,)), (5, 4)),
    (((15, 3, 5), (15, 1, 5), (3, 1)), (15, 3, 5)),
    (((1,), (0,)), (0,)),
    (((2, 1), ()), (2, 1)),
    (((3,), 4, (1, 1)), None),     # 4 is the shape (4,): 3 vs 4 fails
    ((3, (2, 1)), (2, 3)),
    ((), ()),
])
def test_broadcast_shapes_examples(shapes, expected):
    if expected is None:
        with pytest.raises(ValueError):
            bc.broadcast_shapes(*shapes)
    else:
        got = bc.broadcast_shapes(*shapes)
        assert tuple(got) == expected, f"broadcast_shapes{shapes}: expected {expected}, got {got}"


@settings(deadline=None, max_examples=150, phases=PHASES)
@given(shapes=st.lists(any_shapes, min_size=0, max_size=4))
def test_broadcast_shapes_matches_numpy_including_errors(shapes):
    expected = numpy_broadcast_shapes(*shapes)
    if isinstance(expected, Exception):
        with pytest.raises(ValueError):
            bc.broadcast_shapes(*shapes)
    else:
        got = bc.broadcast_shapes(*shapes)
        assert tuple(got) == expected, f"broadcast_shapes{tuple(shapes)}: expected {expected}, got {got}"


@settings(deadline=None, max_examples=60, phases=PHASES)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=5, max_side=4))
def test_broadcast_shapes_of_compatible_shapes(shapes):
    got = bc.broadcast_shapes(*shapes.input_shapes)
    assert tuple(got) == shapes.result_shape, (
        f"broadcast_shapes{shapes.input_shapes}: expected {shapes.result_shape}, got {got}"
    )


def test_broadcast_shapes_error_message_is_clear():
    with pytest.raises(ValueError) as info:
        bc.broadcast_shapes((2, 3), (4, 3))
    message = str(info.value)
    assert "2" in message and "4" in message, f"the error should name the clashing sizes 2 and 4: {message!r}"


def test_broadcast_shapes_rejects_negative_sizes():
    with pytest.raises(ValueError):
        bc.broadcast_shapes((3,), (-1,))


# ----------------------------------------------------------------- broadcast_to

@settings(deadline=None, max_examples=80, phases=PHASES)
@given(pair=broadcastable_pair(), dtype=st.sampled_from([np.float64, np.float32, np.int32]))
def test_broadcast_to_matches_numpy(pair, dtype):
    source, target = pair
    a = np.random.default_rng(0).standard_normal(source).astype(dtype)
    got = bc.broadcast_to(a, target)
    assert_close(got, np.broadcast_to(a, target), what=f"broadcast_to({source} -> {target})")
    assert got.dtype == a.dtype, f"broadcast_to must keep the dtype {a.dtype}, got {got.dtype}"


@settings(deadline=None, max_examples=60, phases=PHASES)
@given(pair=broadcastable_pair())
def test_broadcast_to_is_a_zero_stride_readonly_view(pair):
    source, target = pair
    a = np.arange(1, int(np.prod(source)) + 1, dtype=np.float64).reshape(source)
    got = bc.broadcast_to(a, target)
    assert tuple(got.shape) == tuple(target), f"broadcast_to shape: expected {target}, got {got.shape}"
    extra = len(target) - len(source)
    for axis in range(len(target)):
        stretched = axis < extra or (source[axis - extra] == 1 and target[axis] != 1)
        if stretched:
            assert got.strides[axis] == 0, (
                f"broadcast_to({source} -> {target}): axis {axis} is broadcast, so its stride must be 0, "
                f"got strides {got.strides}"
            )
        else:
            assert got.strides[axis] == a.strides[axis - extra], (
                f"broadcast_to({source} -> {target}): axis {axis} keeps the input's stride "
                f"{a.strides[axis - extra]}, got strides {got.strides}"
            )
    if got.size:
        assert np.shares_memory(got, a), "broadcast_to must return a view of the input, not a copy"
    assert not got.flags.writeable, "broadcast_to must return a read-only view (writeable=False)"


def test_broadcast_to_of_a_non_contiguous_input():
    a = np.arange(24.0).reshape(4, 6)[::2, ::3].T[:, :1]      # (2, 1), odd strides
    got = bc.broadcast_to(a, (3, 2, 5))
    assert_close(got, np.broadcast_to(a, (3, 2, 5)), what="broadcast_to of a transposed, sliced view")
    assert np.shares_memory(got, a), "broadcast_to must return a view of the input, not a copy"
    with pytest.raises(ValueError):
        got[0, 0, 0] = 1.0


@settings(deadline=None, max_examples=150, phases=PHASES)
@given(source=any_shapes, target=any_shapes)
def test_broadcast_to_raises_exactly_when_numpy_does(source, target):
    a = np.ones(source)
    try:
        expected = np.broadcast_to(a, target)
    except ValueError:
        expected = None
    if expected is None:
        with pytest.raises(ValueError):
            bc.broadcast_to(a, target)
    else:
        assert_close(bc.broadcast_to(a, target), expected, what=f"broadcast_to({source} -> {target})")


def test_broadcast_to_scalar_and_negative_shape():
    got = bc.broadcast_to(np.float64(2.5), (2, 3))
    assert_close(got, np.full((2, 3), 2.5), what="broadcast_to of a scalar")
    assert got.strides == (0, 0), f"a broadcast scalar has strides (0, 0), got {got.strides}"
    with pytest.raises(ValueError):
        bc.broadcast_to(np.ones(3), (-1,))


# ----------------------------------------------------------------- unbroadcast, the adjoint

@settings(deadline=None, max_examples=80, phases=PHASES)
@given(pair=broadcastable_pair(), seed=st.integers(0, 2**16))
def test_unbroadcast_is_the_adjoint_of_broadcast_to(pair, seed):
    """<broadcast_to(x), g> == <x, unbroadcast(g)> for every x and g."""
    source, target = pair
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(source)
    g = rng.standard_normal(target)
    back = bc.unbroadcast(g, source)
    assert tuple(np.shape(back)) == tuple(source), f"unbroadcast to {source}: got shape {np.shape(back)}"
    lhs = np.sum(bc.broadcast_to(x, target) * g)
    rhs = np.sum(x * back)
    assert_close(lhs, rhs, rtol=1e-10, atol=1e-10,
                 what=f"<broadcast_to(x), g> vs <x, unbroadcast(g)> for {source} -> {target}")


@settings(deadline=None, max_examples=60, phases=PHASES)
@given(pair=broadcastable_pair(), seed=st.integers(0, 2**16))
def test_unbroadcast_matches_a_sum_over_the_broadcast_axes(pair, seed):
    source, target = pair
    g = np.random.default_rng(seed).standard_normal(target)
    extra = len(target) - len(source)
    expected = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(source) if n == 1)
    expected = expected.sum(axis=axes, keepdims=True).reshape(source)
    assert_close(bc.unbroadcast(g, source), expected, what=f"unbroadcast({target} -> {source})")


def test_broadcast_to_gradient_by_finite_differences():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 1, 2))
    target = (4, 3, 5, 2)
    dout = rng.standard_normal(target)
    # copy: the view aliases x, which the finite differences perturb in place
    check_gradients(lambda: bc.broadcast_to(x, target).copy(), {"x": x},
                    {"x": bc.unbroadcast(dout, x.shape)}, dout)


@pytest.mark.parametrize("source, target", [
    ((3,), (2, 3)), ((1,), (4, 5)), ((2, 1, 3), (5, 2, 4, 3)), ((), (2, 2)), ((1, 1), (1, 1)),
])
def test_unbroadcast_matches_torch_expand_backward(source, target):
    torch = torch_or_skip()
    rng = np.random.default_rng(2)
    x = rng.standard_normal(source)
    g = rng.standard_normal(target)
    xt = torch.tensor(x, requires_grad=True)
    xt.expand(*target).backward(torch.tensor(g))
    ours = bc.broadcast_to(x, target)
    assert_close(ours, to_numpy(xt.expand(*target)), what=f"broadcast_to({source} -> {target}) vs torch expand")
    assert_close(bc.unbroadcast(g, source), to_numpy(xt.grad),
                 what=f"unbroadcast({target} -> {source}) vs torch's gradient of expand")


def _product_case():
    rng = np.random.default_rng(3)
    return rng.standard_normal((4, 3)), rng.standard_normal(3), rng.standard_normal((4, 3))


def _product_gradients(a, b, g):
    """Gradients of sum((a * b) * g) for a (4, 3) and b (3,): b's is g*a summed over the rows."""
    out_shape = bc.broadcast_shapes(a.shape, b.shape)
    return bc.unbroadcast(g * bc.broadcast_to(b, out_shape), a.shape), bc.unbroadcast(g * a, b.shape)


def test_unbroadcast_of_an_elementwise_product_gradient():
    a, b, g = _product_case()
    grad_a, grad_b = _product_gradients(a, b, g)
    check_gradients(lambda: a * b, {"a": a, "b": b}, {"a": grad_a, "b": grad_b}, g)


def test_unbroadcast_of_an_elementwise_product_gradient_matches_torch():
    torch = torch_or_skip()
    a, b, g = _product_case()
    at, bt = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    (at * bt).backward(torch.tensor(g))
    grad_a, grad_b = _product_gradients(a, b, g)
    assert_close(grad_a, to_numpy(at.grad), what="gradient of a in a * b vs torch")
    assert_close(grad_b, to_numpy(bt.grad), what="gradient of b in a * b (summed over the broadcast rows) vs torch")


@pytest.mark.parametrize("grad_shape, shape", [((3,), (2, 3)), ((2, 3), (4,)), ((2, 3), (2, 2))])
def test_unbroadcast_rejects_shapes_that_do_not_broadcast(grad_shape, shape):
    with pytest.raises(ValueError):
        bc.unbroadcast(np.ones(grad_shape), shape)
