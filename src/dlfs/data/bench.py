"""Timings quoted in docs/data.md: ``python -m dlfs.data.bench [--data-dir DIR]``.

1. Loading all of MNIST (train + test, float32) once the decoded ``.npy`` cache exists, in a
   fresh process (what the second run of a training script sees) and repeated in one process.
2. Loading CIFAR-10 once.
3. Augmenting a 128-image CIFAR-10 batch (random crop with 4-pixel padding + flip).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

_FRESH = """
import sys, time
from dlfs.data import load_mnist
t = time.perf_counter()
ds = load_mnist(sys.argv[1])
print(time.perf_counter() - t)
"""


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    import numpy as np

    from dlfs.data import augment, load_mnist, resolve_data_dir

    root = str(resolve_data_dir(args.data_dir))
    t = time.perf_counter()
    load_mnist(root)                                  # decodes and caches if needed
    print(f"MNIST first load in this process (decoding if no cache yet): "
          f"{time.perf_counter() - t:.3f} s")
    fresh = [float(subprocess.run([sys.executable, "-c", _FRESH, root], check=True,
                                  capture_output=True, text=True).stdout)
             for _ in range(args.repeats)]
    print(f"MNIST load from the decoded cache, fresh process: median {statistics.median(fresh):.3f} s "
          f"(min {min(fresh):.3f}, max {max(fresh):.3f}, {args.repeats} runs)")
    warm = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        load_mnist(root)
        warm.append(time.perf_counter() - t)
    print(f"MNIST load from the decoded cache, same process: median {statistics.median(warm):.3f} s")

    try:
        from dlfs.data import load_cifar10

        t = time.perf_counter()
        cifar = load_cifar10(root)
        print(f"CIFAR-10 load (train + test, float32): {time.perf_counter() - t:.3f} s")
        x = cifar.x_train[:128].copy()
        del cifar
        what = "real CIFAR-10 images"
    except Exception:                                 # no CIFAR here: same shape and dtype
        x = np.random.default_rng(0).random((128, 3, 32, 32), dtype=np.float32)
        what = "random images of CIFAR shape"
    rng = np.random.default_rng(0)
    augment(x, rng)
    times = []
    for _ in range(200):
        t = time.perf_counter()
        augment(x, rng)
        times.append(time.perf_counter() - t)
    print(f"augment 128x3x32x32 float32 ({what}): median {statistics.median(times) * 1e3:.2f} ms "
          f"(min {min(times) * 1e3:.2f} ms, 200 runs)")


if __name__ == "__main__":
    main()
