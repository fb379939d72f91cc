"""dlfs.parallel: chunked work on a thread pool gives the same results as a loop."""

import numpy as np
import pytest

from dlfs import parallel


def test_map_chunks_covers_every_chunk_in_order():
    got = parallel.map_chunks(lambda lo, hi: (lo, hi), 10, 3)
    assert got == [(0, 3), (3, 6), (6, 9), (9, 10)], f"expected the four chunks of range(10) in order, got {got}"


def test_map_chunks_writes_disjoint_slices_like_a_loop():
    x = np.random.default_rng(0).standard_normal((37, 50, 40)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((20, 50)).astype(np.float32)
    out = np.empty((37, 20, 40), np.float32)

    def chunk(lo, hi):
        np.matmul(w, x[lo:hi], out=out[lo:hi])

    parallel.map_chunks(chunk, len(x), 4)
    np.testing.assert_allclose(out, np.matmul(w, x), rtol=1e-5, atol=1e-5)


def test_nested_calls_run_inline_instead_of_deadlocking():
    inner = parallel.map_chunks(lambda lo, hi: sum(parallel.map_chunks(lambda a, b: b - a, 8, 3)), 4, 1)
    assert inner == [8, 8, 8, 8], f"expected each outer chunk to see 8 inner items, got {inner}"


def test_errors_in_a_chunk_reach_the_caller():
    def boom(lo, hi):
        if lo == 2:
            raise RuntimeError("chunk 2 failed")

    with pytest.raises(RuntimeError, match="chunk 2 failed"):
        parallel.map_chunks(boom, 4, 1)


def test_num_threads_from_the_environment(monkeypatch):
    monkeypatch.setenv("DLFS_NUM_THREADS", "1")
    assert parallel.num_workers() == 1
    assert parallel.map_chunks(lambda lo, hi: hi - lo, 5, 2) == [2, 2, 1]
    monkeypatch.setenv("DLFS_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="DLFS_NUM_THREADS"):
        parallel.num_workers()


@pytest.mark.parametrize("threads", ["1", "2", "3"])
def test_in_chunks_on_threads_equals_one_call_bit_for_bit(monkeypatch, threads):
    from dlfs.nn.activations import ELEMENTWISE_CHUNK, gelu, gelu_backward, in_chunks

    monkeypatch.setenv("DLFS_NUM_THREADS", threads)
    rng = np.random.default_rng(0)
    for n in (ELEMENTWISE_CHUNK + 1, 5 * ELEMENTWISE_CHUNK + 17):
        x = rng.standard_normal((n,)).astype(np.float32).reshape(-1, 1)
        dy = rng.standard_normal(x.shape).astype(np.float32)
        got = in_chunks(lambda a: gelu(a, "tanh"), x)
        assert got.shape == x.shape and got.dtype == np.float32, f"expected {x.shape} float32, got {got.shape} {got.dtype}"
        assert np.array_equal(got, gelu(x, "tanh")), f"n={n}: blockwise GELU differs from one call"
        assert np.array_equal(in_chunks(gelu_backward, dy, x), gelu_backward(dy, x)), \
            f"n={n}: blockwise GELU backward differs from one call"


def test_limit_workers_caps_the_workers_inside_the_block_only(monkeypatch):
    monkeypatch.setenv("DLFS_NUM_THREADS", "3")
    assert parallel.num_workers() == 3
    seen = set()

    def chunk(lo, hi):
        import threading
        seen.add(threading.get_ident())

    with parallel.limit_workers(1):
        assert parallel.num_workers() == 1, "inside limit_workers(1) there is one worker"
        parallel.map_chunks(chunk, 8, 1)
        assert seen == {__import__("threading").get_ident()}, "with one worker every chunk runs on the caller"
        with parallel.limit_workers(5):
            assert parallel.num_workers() == 3, "a limit never raises the configured count"
    assert parallel.num_workers() == 3, "the limit ends with the block"
