"""Measure what the lesson quotes about post-LN and pre-LN stacks at initialisation.

    python topics/28-transformer-encoder/measure_ln_placement.py

A stack of L encoder blocks (D = 64, 4 heads, MLP 256, no dropout, causal) at its default
initialisation gets x ~ N(0, 1) of shape (8, 32, 64); the loss is a fixed random linear function
of the last block's output (upstream gradient ~ N(0, 1/numel)). Printed per block: the norm of
the gradient of its MLP's second weight matrix (ff.linear2.W), and the norm of the residual
stream's output, for the post-LN and the pre-LN arrangement, median over 5 seeds.
"""

from __future__ import annotations

import numpy as np

from dlfs.transformer.encoder import EncoderBlock


def measure(norm_first: bool, layers: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    blocks = [EncoderBlock(64, 4, 256, dropout=0.0, norm_first=norm_first, rng=rng, dtype=np.float64)
              for _ in range(layers)]
    x = rng.standard_normal((8, 32, 64))
    stream = []
    for b in blocks:
        x = b.forward(x, causal=True)
        stream.append(np.sqrt(np.mean(x ** 2)))
    dy = rng.standard_normal(x.shape) / np.sqrt(x.size)
    for b in reversed(blocks):
        dy = b.backward(dy)
    grads = np.array([np.linalg.norm(b.ff.linear2.W.grad) for b in blocks])
    return grads, np.array(stream)


def main() -> None:
    for norm_first in (False, True):
        runs = [measure(norm_first, seed=s) for s in range(5)]
        grads = np.median([g for g, _ in runs], axis=0)
        stream = np.median([s for _, s in runs], axis=0)
        name = "pre-LN " if norm_first else "post-LN"
        print(f"{name} |dL/d ff.linear2.W| by block: " + " ".join(f"{g:.4f}" for g in grads))
        print(f"{name} rms of the block outputs:     " + " ".join(f"{s:.2f}" for s in stream))
        print(f"{name} last/first gradient ratio: {grads[-1] / grads[0]:.2f}")


if __name__ == "__main__":
    main()
