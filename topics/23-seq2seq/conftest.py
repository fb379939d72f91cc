"""Shared by Topic 23's tests (as fixtures): a small batch of padded sources and targets, and a
toy decoder (a tiny random RNN with a per-source bias) whose best output can be found by
enumerating every possible output. The batch comes from ``tests/helpers/seq2seq_data.py``."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
from seq2seq_data import padded_batch

PAD, EOS, BOS = 0, 1, 4         # toy decoder: outputs 0..3 (pad, eos, a, b); BOS is an input only
V_OUT = 4


class ToyDecoder:
    """step(tokens (B,), h (B, 3), bias (B, V)) -> (log_probs (B, V), h', None) with
    h' = tanh(E[tokens] + h W) and logits = 2 h' U + bias: every output's probability depends on
    the whole prefix and on the source (through the bias)."""

    def __init__(self, seed: int, sources: int = 3):
        rng = np.random.default_rng(seed)
        self.E = rng.standard_normal((BOS + 1, 3))
        self.W = rng.standard_normal((3, 3))
        self.U = rng.standard_normal((3, V_OUT))
        self.h0 = 0.5 * rng.standard_normal((sources, 3))
        self.bias = rng.standard_normal((sources, V_OUT))

    def step(self, tokens, h, bias):
        h = np.tanh(self.E[tokens] + h @ self.W)
        logits = 2.0 * h @ self.U + bias
        m = logits.max(axis=1, keepdims=True)
        return logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True)), h, None

    def score(self, n: int, output: tuple[int, ...]) -> float:
        """The log-probability of ``output`` for source n, one token at a time."""
        h, bias, last, total = self.h0[n:n + 1], self.bias[n:n + 1], np.array([BOS]), 0.0
        for tok in output:
            logp, h, _ = self.step(last, h, bias)
            total += float(logp[0, tok])
            last = np.array([tok])
        return total


def all_outputs(max_len: int):
    """Every output: tokens other than EOS, then EOS; or max_len tokens without EOS."""
    others = [t for t in range(V_OUT) if t != EOS]
    for n in range(max_len):
        for prefix in itertools.product(others, repeat=n):
            yield prefix + (EOS,)
    yield from itertools.product(others, repeat=max_len)


def brute_force_best(toy: ToyDecoder, n: int, max_len: int, alpha: float = 0.0):
    """(output, score) with the best ``score / ((5 + len) / 6)^alpha`` for source n."""
    best = None
    for out in all_outputs(max_len):
        s = toy.score(n, out)
        key = s / ((5.0 + len(out)) / 6.0) ** alpha
        if best is None or key > best[0]:
            best = (key, out, s)
    return best[1], best[2]


@pytest.fixture(scope="session")
def toy():
    return SimpleNamespace(ToyDecoder=ToyDecoder, all_outputs=all_outputs, brute_force_best=brute_force_best,
                           PAD=PAD, EOS=EOS, BOS=BOS, V=V_OUT)


@pytest.fixture(scope="session")
def batch():
    return padded_batch
