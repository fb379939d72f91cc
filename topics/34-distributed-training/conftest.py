"""Shared by Topic 34's tests: worker process groups, started once per test module and reused."""

import pytest

from dlfs.distributed.comm import ProcessGroup


@pytest.fixture(scope="module")
def groups():
    """``groups(n)``: a group of n worker processes (created on first use, closed at the end)."""
    made = {}

    def get(n):
        if n not in made:
            made[n] = ProcessGroup(n, timeout=5)
        return made[n]

    yield get
    for g in made.values():
        g.close()
