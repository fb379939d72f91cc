"""How the process gets its memory: one allocator setting that every training run here uses."""

from __future__ import annotations


def keep_freed_memory(all_sizes: bool = False) -> bool:
    """Ask the C allocator (glibc) to keep freed blocks of up to 32 MiB for reuse, instead of
    handing each one back to the operating system and faulting fresh pages in for the next.
    With ``all_sizes``, larger blocks too: glibc then never maps a block of its own (its
    ``M_MMAP_MAX`` is 0) and serves every size from its heap.

    Every NumPy operation allocates its result; a training step allocates and frees arrays of
    about the same sizes over and over. glibc returns blocks above its mmap threshold to the
    system at once, so each new activation costs one page fault per 4 KiB: measured, 10,400
    page faults per step of the 4-layer, width-128 GPT at batch 12 × 64, and 15% of the
    step's CPU time (93 ms against 78 ms with this setting, 33 faults per step). The CIFAR-10
    networks have activations far above 32 MiB (512 × 64 × 31 × 31 float32 is 126 MiB): for
    the airbench network (64, 256, 256) at batch 512, ``all_sizes`` took the training step
    from 3,114–3,369 ms to 3,016–3,036 ms and its system time from 416–525 to 138–159 ms
    (idle 2-core machine, 4–6 steps per run, 3 runs each; 32 MiB alone: 3,147 ms, 447 ms).
    The setting is process-wide and harmless elsewhere; returns False (doing nothing) without
    glibc.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold, m_mmap_max = -1, -3, -4
        ok = bool(libc.mallopt(m_mmap_threshold, 32 * 2 ** 20)) and bool(libc.mallopt(m_trim_threshold, 2 ** 30))
        return ok and (not all_sizes or bool(libc.mallopt(m_mmap_max, 0)))
    except (OSError, AttributeError):
        return False
