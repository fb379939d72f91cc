"""Value comparison with failure messages that say what was expected and what came back."""

from __future__ import annotations

import numpy as np


def _fmt(a: np.ndarray, limit: int = 6) -> str:
    flat = np.asarray(a).ravel()
    body = np.array2string(flat[:limit], precision=6, separator=", ")
    return body[:-1] + ", ...]" if flat.size > limit else body


def assert_close(got, expected, *, rtol: float = 1e-5, atol: float = 1e-8, what: str = "result") -> None:
    """Assert ``got`` matches ``expected`` in shape and value (like ``np.allclose``).

    The message names ``what``, the shapes, the worst element and its index.
    """
    if got is None:
        raise AssertionError(f"{what}: expected an array of shape {np.shape(expected)}, got None")
    got_arr = np.asarray(got)
    exp_arr = np.asarray(expected)
    if got_arr.shape != exp_arr.shape:
        raise AssertionError(f"{what}: expected shape {exp_arr.shape}, got shape {got_arr.shape}")
    if exp_arr.dtype.kind in "biuU" or got_arr.dtype.kind in "U":
        if not np.array_equal(got_arr, exp_arr):
            bad = np.argwhere(got_arr != exp_arr)
            idx = tuple(bad[0]) if bad.size else ()
            raise AssertionError(
                f"{what}: {len(bad)} element(s) differ; first at index {idx}: "
                f"expected {exp_arr[idx]!r}, got {got_arr[idx]!r}"
            )
        return
    got_f = got_arr.astype(np.float64)
    exp_f = exp_arr.astype(np.float64)
    nan_mismatch = np.isnan(got_f) != np.isnan(exp_f)
    close = np.isclose(got_f, exp_f, rtol=rtol, atol=atol, equal_nan=True) & ~nan_mismatch
    if not close.all():
        diff = np.where(close, 0.0, np.abs(got_f - exp_f))
        diff = np.where(np.isnan(diff), np.inf, diff)
        idx = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.ndim else ()
        raise AssertionError(
            f"{what}: {int((~close).sum())} of {close.size} element(s) differ "
            f"(rtol={rtol:g}, atol={atol:g}); worst at index {tuple(int(i) for i in idx)}: "
            f"expected {exp_f[idx]!r}, got {got_f[idx]!r}\n"
            f"  expected: {_fmt(exp_arr)}\n  got:      {_fmt(got_arr)}"
        )
