"""word2vec speed (Topic 22): our skip-gram with negative sampling against gensim's Word2Vec.

    python -m benchmarks.bench_word2vec [--epochs 3] [--repeats 3]
    python -m benchmarks.bench_word2vec scatter      # three ways to add rows with repeats
    python -m benchmarks.run word2vec

Both train on gensim's Lee corpus (``dlfs data get word2vec``) with the same settings (sg=1,
negative=5, window=5, vector_size=100, min_count=2, sample=1e-3, alpha 0.025 → 0.0001) for
``--epochs`` passes; gensim with ``workers=1`` and ``workers=2``. Each timing is one whole
training run (ours: a fresh ``SkipGram`` on the prebuilt vocabulary; gensim: ``train()`` on a
model whose vocabulary is built), run alternately through ``benchmarks.harness.compare``; the
figure is the median of the repeats, in words per second (in-vocabulary corpus tokens × epochs /
seconds). The ratio is ours / gensim in time (above 1: gensim is faster). Needs gensim
(``pip install -e ".[word2vec]"``); without it only ours is timed.

``scatter`` times the sparse update of one batch of 512 pairs with 5 noise words (3,072 rows of
d = 100 float32 drawn from a Zipf-like distribution over V = 4,000 words, so rows repeat): NumPy's
``np.add.at`` on the (V, d) matrix, sorting the rows and summing runs with ``np.add.reduceat``,
and ``np.add.at`` on the flat (V·d,) view (``dlfs.embeddings.word2vec.scatter_add_rows``), in CPU
time per pair (``time.process_time``, median of 7 rounds of 100 calls).

Run on its own, it appends the run to ``benchmarks/word2vec-results.json``; through
``benchmarks.run`` the results go with the others into ``benchmarks/results.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.harness import BenchResult, compare, machine

RESULTS = Path(__file__).with_name("word2vec-results.json")

SETTINGS = dict(vector_size=100, window=5, negative=5, min_count=2, sample=1e-3, alpha=0.025, min_alpha=0.0001)


@dataclass
class WordsResult(BenchResult):
    """A BenchResult whose baseline is gensim, read in words per second."""

    words: int = 0                 # words trained on per call (tokens × epochs)
    baseline: str = "gensim"

    @property
    def ours_words_per_second(self) -> float:
        return self.words / self.ours_ms * 1000

    @property
    def baseline_words_per_second(self) -> float | None:
        return self.words / self.torch_ms * 1000 if self.torch_ms else None

    def line(self) -> str:
        s = f"{self.name:<52} ours {self.ours_words_per_second:>10,.0f} words/s ({self.ours_ms / 1000:6.2f} s)"
        if self.torch_ms:
            s += (f" | {self.baseline} {self.baseline_words_per_second:>10,.0f} words/s "
                  f"({self.torch_ms / 1000:6.2f} s) | ratio {self.ratio:5.2f}x")
        return s


def _lee(data_dir=None):
    from dlfs.data.word2vec import load_word2vec

    return load_word2vec(data_dir).corpus("lee")


def word2vec_lee(workers: int = 1, epochs: int = 3, repeats: int = 3, data_dir=None) -> WordsResult:
    """Train ours and gensim (``workers`` threads) on the Lee corpus, alternately."""
    from dlfs.embeddings.vocab import build_vocab
    from dlfs.embeddings.word2vec import SkipGram, SkipGramConfig

    sentences = _lee(data_dir)
    cfg = SkipGramConfig(epochs=epochs, **SETTINGS)
    vocab = build_vocab(sentences, cfg.min_count)
    ids, sent = vocab.encode(sentences)

    def ours():
        SkipGram(vocab, cfg).train(ids, sent)

    theirs, version = None, "gensim"
    try:
        import gensim
        from gensim.models import Word2Vec
    except ImportError:
        gensim = None
    if gensim is not None:
        version = f"gensim {gensim.__version__}"
        model = Word2Vec(sg=1, hs=0, workers=workers, epochs=epochs, seed=0, **SETTINGS)
        model.build_vocab(sentences)

        def theirs():
            model.train(sentences, total_examples=len(sentences), epochs=epochs)

    name = f"word2vec SGNS, Lee corpus, {epochs} epochs (gensim workers={workers})"
    r = compare(name, ours, theirs, repeats=repeats, warmup=1)
    return WordsResult(r.name, r.ours_ms, r.torch_ms, r.ratio, words=int(ids.size) * epochs, baseline=version)


BENCHMARKS = [lambda: word2vec_lee(workers=1), lambda: word2vec_lee(workers=2)]


def scatter_timings(pairs: int = 512, negative: int = 5, V: int = 4000, d: int = 100) -> dict:
    """CPU microseconds per pair of three ways to add (pairs·(1+negative), d) rows into (V, d)."""
    import statistics

    import numpy as np

    from dlfs.embeddings.word2vec import scatter_add_rows

    rng = np.random.default_rng(0)
    p = 1 / np.arange(1, V + 1) ** 0.75
    rows = rng.choice(V, pairs * (1 + negative), p=p / p.sum()).astype(np.int32)
    grads = rng.standard_normal((rows.size, d), dtype=np.float32)
    W = np.zeros((V, d), dtype=np.float32)

    def add_at_2d():
        np.add.at(W, rows, grads)

    def sort_reduceat():
        order = np.argsort(rows)
        r = rows[order]
        starts = np.flatnonzero(np.concatenate(([True], r[1:] != r[:-1])))
        W[r[starts]] += np.add.reduceat(grads[order], starts, axis=0)

    def add_at_flat():
        scatter_add_rows(W, rows, grads)

    out = {}
    for name, fn in (("np.add.at on (V, d)", add_at_2d), ("sort + np.add.reduceat", sort_reduceat),
                     ("np.add.at on the flat view", add_at_flat)):
        fn()
        times = []
        for _ in range(7):
            t = time.process_time()
            for _ in range(100):
                fn()
            times.append((time.process_time() - t) / 100 / pairs * 1e6)
        out[name] = statistics.median(times)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_word2vec", description=__doc__.split("\n")[0])
    p.add_argument("what", nargs="?", choices=["speed", "scatter"], default="speed")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--data-dir", default=None)
    args = p.parse_args(argv)
    if args.what == "scatter":
        for name, us in scatter_timings().items():
            print(f"{name:<28} {us:6.2f} µs of CPU per pair")
        return
    print("machine:", machine())
    results = []
    for workers in (1, 2):
        r = word2vec_lee(workers, args.epochs, args.repeats, args.data_dir)
        print(r.line(), flush=True)
        results.append(r)
    from dlfs.io import atomic_write_json

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    runs = json.loads(RESULTS.read_text())["runs"] if RESULTS.exists() else []
    runs.append({"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "commit": commit, "machine": machine(),
                 "settings": {**SETTINGS, "epochs": args.epochs, "repeats": args.repeats},
                 "results": [asdict(r) | {"ours_words_per_second": r.ours_words_per_second,
                                          "baseline_words_per_second": r.baseline_words_per_second}
                             for r in results]})
    atomic_write_json(RESULTS, {"runs": runs})


if __name__ == "__main__":
    main()
