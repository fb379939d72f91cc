"""The allocator setting of the training runs: freed blocks, large ones included, come back
without fresh page faults."""

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a glibc setting, Linux only")

FAULTS = """
    import resource, sys
    import numpy as np
    from dlfs.memory import keep_freed_memory

    ok = keep_freed_memory(all_sizes={all_sizes}) if {keep} else True
    def faults_of_one_array():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        a = np.ones(64 * 2**20 // 4, dtype=np.float32)        # 64 MiB, above any mmap threshold
        del a
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    faults_of_one_array()
    print(ok, faults_of_one_array())
"""


def faults(keep: bool, all_sizes: bool) -> tuple[str, int]:
    code = textwrap.dedent(FAULTS.format(keep=keep, all_sizes=all_sizes))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert out.returncode == 0, out.stderr
    ok, n = out.stdout.split()
    return ok, int(n)


def test_with_all_sizes_a_freed_64_mib_array_is_reused_without_page_faults():
    ok, reused = faults(keep=True, all_sizes=True)
    assert ok == "True", "keep_freed_memory(all_sizes=True) reported that glibc refused the setting"
    _, fresh = faults(keep=False, all_sizes=False)
    _, above_threshold = faults(keep=True, all_sizes=False)
    assert reused < 100, f"expected the second 64 MiB array to reuse the first one's pages, it took {reused} faults"
    assert fresh > 10 * max(reused, 1) and above_threshold > 10 * max(reused, 1), \
        f"without all_sizes a 64 MiB block is mapped afresh each time: {fresh} and {above_threshold} faults, " \
        f"{reused} with it"
