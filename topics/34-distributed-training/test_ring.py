"""Topic 34 — the ring all-reduce between real processes: chunking, reduce-scatter,
all-gather, the sum (bit for bit in the ring's order), and the bytes each rank sends."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dlfs.distributed import ring
from dlfs.distributed.comm import ProcessGroup, run_collective
from dlfs.testing import assert_close

CAPACITY = 256          # small mailboxes: longer chunks travel in several pieces


@pytest.fixture(scope="module")
def groups():
    made = {}

    def get(n):
        if n not in made:
            made[n] = ProcessGroup(n, capacity=CAPACITY, timeout=5)
        return made[n]

    yield get
    for g in made.values():
        g.close()


def ring_order_sum(bufs, size):
    """The ring's sum of chunk c: x_c + (x_{c-1} + ... + (x_{c+2} + x_{c+1})), chunks as array_split."""
    N = len(bufs)
    out = np.empty_like(bufs[0])
    for c, idx in enumerate(np.array_split(np.arange(size), N)):
        acc = bufs[(c + 1) % N][idx].copy()
        for k in range(2, N + 1):
            acc = bufs[(c + k) % N][idx] + acc
        out[idx] = acc
    return out


@settings(max_examples=40)
@given(size=st.integers(0, 50), n=st.integers(1, 6))
def test_chunk_bounds_match_array_split(size, n):
    expected = [(int(a[0]), int(a[-1]) + 1) if a.size else None for a in np.array_split(np.arange(size), n)]
    got = ring.chunk_bounds(size, n)
    assert len(got) == n, f"expected {n} chunks, got {got}"
    assert got[0][0] == 0 and got[-1][1] == size, f"chunks {got} do not cover range({size})"
    for (lo, hi), e in zip(got, expected):
        if e is not None:
            assert (lo, hi) == e, f"chunks of range({size}) into {n}: expected {expected}, got {got}"
        else:
            assert lo == hi, f"expected an empty chunk, got {(lo, hi)} in {got}"


@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("size", [1003, 2, 64])
def test_allreduce_float64_is_the_sum(groups, n, size):
    """float64: every rank gets the ring-order sum bit for bit, and np.sum to 1e-13."""
    rng = np.random.default_rng([n, size])
    bufs = [rng.standard_normal(size) for _ in range(n)]
    results, _ = groups(n).run(run_collective, [("ring_allreduce", b) for b in bufs])
    expected = ring_order_sum(bufs, size)
    for r, got in enumerate(results):
        np.testing.assert_array_equal(got, expected, err_msg=f"rank {r} of {n}, size {size}: not the ring-order sum")
        assert_close(got, np.sum(bufs, axis=0), rtol=1e-13, atol=1e-13, what=f"rank {r} of {n} vs np.sum")


@pytest.mark.parametrize("n", [2, 3, 4])
def test_allreduce_float32_close_to_float64_sum(groups, n):
    rng = np.random.default_rng(n)
    bufs = [rng.standard_normal(517).astype(np.float32) for _ in range(n)]
    results, _ = groups(n).run(run_collective, [("ring_allreduce", b) for b in bufs])
    exact = np.sum([b.astype(np.float64) for b in bufs], axis=0)
    for r, got in enumerate(results):
        assert got.dtype == np.float32, f"rank {r}: expected float32, got {got.dtype}"
        assert_close(got, exact, rtol=1e-5, atol=1e-5, what=f"float32 all-reduce, rank {r} of {n}")


@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("size", [1000, 1003])
def test_bytes_sent_per_rank(groups, n, size):
    """Rank r sends every chunk but r (reduce-scatter) and every chunk but r+1 (all-gather):
    (2S - c_r - c_{r+1}) · 8 bytes; on average exactly 2(N-1)/N · S · 8."""
    bufs = [np.full(size, float(r)) for r in range(n)]
    _, sent = groups(n).run(run_collective, [("ring_allreduce", b) for b in bufs])
    sizes = [a.size for a in np.array_split(np.arange(size), n)]
    expected = [0] if n == 1 else [(2 * size - sizes[r] - sizes[(r + 1) % n]) * 8 for r in range(n)]
    assert sent == expected, f"N={n}, S={size}: expected bytes per rank {expected}, got {sent}"
    assert sum(sent) == 2 * (n - 1) * size * 8, f"total {sum(sent)} != 2(N-1)·S·8 = {2 * (n - 1) * size * 8}"
    if size % n == 0:
        assert all(s == 2 * (n - 1) * size * 8 // n for s in sent), f"expected 2(N-1)/N·S·8 each, got {sent}"


@pytest.mark.parametrize("n", [2, 3, 4])
def test_reduce_scatter_leaves_rank_r_the_sum_of_chunk_r(groups, n):
    rng = np.random.default_rng(10 + n)
    size = 37
    bufs = [rng.standard_normal(size) for _ in range(n)]
    results, _ = groups(n).run(run_collective, [("reduce_scatter", b) for b in bufs])
    expected = ring_order_sum(bufs, size)
    for r, (got, idx) in enumerate(zip(results, np.array_split(np.arange(size), n))):
        np.testing.assert_array_equal(got[idx], expected[idx], err_msg=f"rank {r}: chunk {r} is not the sum")


@pytest.mark.parametrize("n", [2, 3, 4])
def test_all_gather_spreads_each_ranks_chunk(groups, n):
    size = 23
    full = np.arange(size, dtype=np.float64) + 0.5
    bufs = []
    for r, idx in enumerate(np.array_split(np.arange(size), n)):
        b = np.full(size, -1.0)
        b[idx] = full[idx]
        bufs.append(b)
    results, sent = groups(n).run(run_collective, [("all_gather", b) for b in bufs])
    for r, got in enumerate(results):
        np.testing.assert_array_equal(got, full, err_msg=f"rank {r} of {n} after the all-gather")


@settings(max_examples=15)
@given(data=st.data())
def test_integer_valued_sums_are_exact_in_any_order(groups, data):
    n = data.draw(st.integers(2, 4), label="ranks")
    size = data.draw(st.integers(1, 40), label="size")
    bufs = [np.array(data.draw(st.lists(st.integers(-1000, 1000), min_size=size, max_size=size)), dtype=np.float64)
            for _ in range(n)]
    results, _ = groups(n).run(run_collective, [("ring_allreduce", b) for b in bufs])
    for r, got in enumerate(results):
        np.testing.assert_array_equal(got, np.sum(bufs, axis=0), err_msg=f"rank {r} of {n}")


def test_allreduce_rejects_a_2d_buffer():
    with pytest.raises(ValueError, match="1-D"):
        ring.ring_allreduce(np.zeros((2, 3)), None)
    assert ring.chunk_bounds(5, 2) == [(0, 3), (3, 5)], "chunk_bounds(5, 2)"
