"""How long one test may run before the grader stops it.

The default leaves a wide margin over the slowest reference test (measured below);
``DLFS_TEST_TIMEOUT`` or ``dlfs check N --timeout S`` change it, and a test that legitimately
needs longer declares ``@pytest.mark.dlfs_timeout(seconds)``.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading

from dlfs.errors import UsageError

ENV_VAR = "DLFS_TEST_TIMEOUT"
MARKER = "dlfs_timeout"

# Measured on a 2-core machine. Idle: the slowest reference test of Topics 01-17 took 1.97 s
# (one run of `pytest topics --durations=40`: Topic 05's test_kaiming_keeps_the_relu_signal_alive).
# Through the grader, with other jobs sharing the cores (load average 9): the slowest of the 25
# topics built then took 5.1 s (Topic 14's test_small_resnet_gradients_match_finite_differences,
# 1.44 s idle). 10 s is five times the first and twice the second.
DEFAULT_SECONDS = 10.0


def parse(value: str | float, source: str) -> float:
    """A positive number of seconds, or a UsageError naming ``source``."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{source} must be a number of seconds, not {value!r}.") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise UsageError(f"{source} must be a positive number of seconds, not {value!r}.")
    return seconds


def resolve(seconds: float | None = None) -> float:
    """``seconds`` if given, else ``$DLFS_TEST_TIMEOUT``, else the default."""
    if seconds is not None:
        return parse(seconds, "The test timeout")
    raw = os.environ.get(ENV_VAR, "").strip()
    return parse(raw, ENV_VAR) if raw else DEFAULT_SECONDS


class TimedOut(BaseException):
    """Raised by the timer. A BaseException, not an Exception: Hypothesis would take an
    Exception for a failing example and re-run (shrink) the very code that hung."""


@contextlib.contextmanager
def time_limit(seconds: float, what: str):
    """Raise TimedOut in the main thread after ``seconds`` (where SIGALRM exists)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise TimedOut(f"{what} did not finish within {seconds:g} s and was stopped")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
