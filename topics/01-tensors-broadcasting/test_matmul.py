"""Topic 01 — batched matrix multiplication: the loop version, the vectorised one, and np.matmul."""

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

IMPLEMENTATIONS = {"batched_matmul_naive": bc.batched_matmul_naive, "batched_matmul": bc.batched_matmul}


@st.composite
def matmul_operands(draw):
    """a: (*Ba, n, k), b: (*Bb, k, m) with broadcastable batch shapes, small sizes."""
    batch = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3))
    n, k, m = (draw(st.integers(1, 4)) for _ in range(3))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(batch.input_shapes[0] + (n, k))
    b = rng.standard_normal(batch.input_shapes[1] + (k, m))
    return a, b


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
@settings(deadline=None, max_examples=40, phases=PHASES)
@given(operands=matmul_operands())
def test_batched_matmul_matches_numpy(name, operands):
    a, b = operands
    got = IMPLEMENTATIONS[name](a, b)
    assert_close(got, np.matmul(a, b), rtol=1e-10, atol=1e-12, what=f"{name}({a.shape} @ {b.shape})")


@settings(deadline=None, max_examples=40, phases=PHASES)
@given(operands=matmul_operands())
def test_vectorised_matches_naive(operands):
    a, b = operands
    assert_close(bc.batched_matmul(a, b), bc.batched_matmul_naive(a, b), rtol=1e-10, atol=1e-12,
                 what=f"batched_matmul vs batched_matmul_naive for {a.shape} @ {b.shape}")


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
@pytest.mark.parametrize("a_shape, b_shape", [
    ((2, 3), (3, 4)),                 # plain matrices
    ((5, 2, 3), (3, 4)),              # one matrix shared by the whole batch
    ((2, 3), (5, 3, 4)),
    ((4, 1, 2, 3), (5, 3, 2)),        # batch (4, 1) with (5,) -> (4, 5)
    ((1, 2, 3), (6, 3, 1)),
    ((0, 2, 3), (3, 4)),              # an empty batch
    ((2, 0), (0, 3)),                 # k = 0: a sum of nothing is 0
])
def test_batched_matmul_examples(name, a_shape, b_shape):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    assert_close(IMPLEMENTATIONS[name](a, b), a @ b, rtol=1e-10, atol=1e-12,
                 what=f"{name}({a_shape} @ {b_shape})")


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_batched_matmul_keeps_float32_and_integers(name):
    f = IMPLEMENTATIONS[name]
    a = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    b = np.arange(6, dtype=np.float32).reshape(3, 2)
    got = f(a, b)
    assert got.dtype == np.float32, f"{name}: float32 inputs must give float32, got {got.dtype}"
    assert_close(got, a @ b, what=f"{name} in float32")
    ai, bi = np.arange(6).reshape(2, 3), np.arange(6).reshape(3, 2)
    assert_close(f(ai, bi), ai @ bi, what=f"{name} on integers")


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
@settings(deadline=None, max_examples=60, phases=PHASES)
@given(a_shape=st.lists(st.integers(1, 3), min_size=2, max_size=4).map(tuple),
       b_shape=st.lists(st.integers(1, 3), min_size=2, max_size=4).map(tuple))
def test_batched_matmul_raises_exactly_when_numpy_does(name, a_shape, b_shape):
    a, b = np.ones(a_shape), np.ones(b_shape)
    try:
        expected = np.matmul(a, b)
    except ValueError:
        expected = None
    if expected is None:
        with pytest.raises(ValueError):
            IMPLEMENTATIONS[name](a, b)
    else:
        assert_close(IMPLEMENTATIONS[name](a, b), expected, what=f"{name}({a_shape} @ {b_shape})")


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_batched_matmul_rejects_incompatible_batches(name):
    with pytest.raises(ValueError):
        IMPLEMENTATIONS[name](np.ones((2, 3, 4)), np.ones((3, 4, 5)))


def _matmul_grads(a, b, g):
    """Gradients of sum(batched_matmul(a, b) * g): the batch axes of a shared operand are summed."""
    grad_a = bc.unbroadcast(bc.batched_matmul(g, np.swapaxes(b, -1, -2)), a.shape)
    grad_b = bc.unbroadcast(bc.batched_matmul(np.swapaxes(a, -1, -2), g), b.shape)
    return grad_a, grad_b


@pytest.mark.parametrize("a_shape, b_shape", [((4, 1, 2, 3), (5, 3, 2)), ((2, 3), (3, 3, 4))])
def test_batched_matmul_gradients_by_finite_differences(a_shape, b_shape):
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    g = rng.standard_normal(np.broadcast_shapes(a_shape[:-2], b_shape[:-2]) + (a_shape[-2], b_shape[-1]))
    grad_a, grad_b = _matmul_grads(a, b, g)
    check_gradients(lambda: bc.batched_matmul(a, b), {"a": a, "b": b}, {"a": grad_a, "b": grad_b}, g)


def test_batched_matmul_gradients_match_torch():
    torch = torch_or_skip()
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((4, 1, 2, 3)), rng.standard_normal((5, 3, 2))
    g = rng.standard_normal((4, 5, 2, 2))
    at, bt = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    out = torch.matmul(at, bt)
    out.backward(torch.tensor(g))
    assert_close(bc.batched_matmul(a, b), to_numpy(out), what="batched_matmul vs torch.matmul")
    grad_a, grad_b = _matmul_grads(a, b, g)
    assert_close(grad_a, to_numpy(at.grad), what="gradient of a (summed over the broadcast batch axis)")
    assert_close(grad_b, to_numpy(bt.grad), what="gradient of b (summed over the broadcast batch axis)")
