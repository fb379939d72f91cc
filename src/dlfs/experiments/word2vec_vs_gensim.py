"""Topic 22 — our skip-gram with negative sampling against gensim's ``Word2Vec``, side by side.

Both train on the same token lists with the same settings (sg=1, negative, window,
vector_size, min_count, sample, epochs, alpha → min_alpha), several seeds each, the runs of one
seed back to back so that the machine's load touches both alike. For every run:

- Spearman correlation with WordSim353 and SimLex-999 on the pairs the corpus vocabulary
  covers (the coverage is recorded), and 3CosAdd analogy accuracy on the covered
  questions-words questions — the same evaluation code (``dlfs.embeddings.evaluate``) for both;
- words per second: in-vocabulary corpus tokens × epochs / training seconds (wall clock, and
  CPU time of the process), for ours and for gensim with ``workers=1`` and ``workers=2``.

    python -m dlfs.experiments.word2vec_vs_gensim [--data-dir DIR] [--out results/topic-22]
        [--corpus lee head500 shakespeare] [--seeds N]

Corpora: ``lee`` (gensim's Lee news corpus, about 60,000 tokens) and ``head500`` (331,339 tokens
of stemmed Wikipedia text) from the word2vec data (``dlfs data get word2vec``), and
``shakespeare`` (Tiny Shakespeare, one sentence per speech, ``dlfs data get shakespeare``).
Needs gensim (``pip install -e ".[word2vec]"``). Saves ``word2vec_vs_gensim.json`` and two
figures in ``--out``: ``projection.png`` (chosen words of the Lee corpus, both models, projected
on their first two principal components) and ``quality.png`` (mean and spread per metric).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from dlfs.experiments import common

RESULTS = "topic-22"        # results/topic-22/ (see dlfs.experiments.common)

# the settings of each corpus: small corpora need more passes
SETTINGS = {
    "lee": dict(min_count=2, epochs=20),
    "head500": dict(min_count=5, epochs=5),
    "shakespeare": dict(min_count=3, epochs=10),
}
DEFAULT_SEEDS = {"lee": 5, "head500": 3, "shakespeare": 3}

# words of the Lee corpus for the projection, by theme
PROJECTION_WORDS = {
    "Middle East": ["israeli", "palestinian", "arafat", "sharon", "gaza", "hamas", "israel"],
    "Afghanistan": ["afghanistan", "taliban", "laden", "qaeda", "kabul", "afghan", "pakistan"],
    "bushfires": ["fire", "fires", "firefighters", "flames", "homes", "winds", "weather"],
    "cricket": ["cricket", "wickets", "wicket", "test", "waugh", "bowling", "innings"],
}


def sentences_of(corpus: str, data_dir: str | None) -> list[list[str]]:
    """The corpus as lists of tokens (Tiny Shakespeare: each blank-line-separated speech)."""
    if corpus == "shakespeare":
        from dlfs.data.text import load_shakespeare
        from dlfs.data.word2vec import tokenize

        text = load_shakespeare(data_dir).text
        return [s for s in (tokenize(p) for p in text.split("\n\n")) if s]
    from dlfs.data.word2vec import load_word2vec

    return load_word2vec(data_dir).corpus(corpus)


@dataclass(frozen=True)
class Run:
    """One training run's measurements."""

    impl: str                   # "ours", "gensim", "gensim-2"
    seed: int
    seconds: float              # training, wall clock
    cpu_seconds: float          # training, CPU time of the whole process (all threads)
    words_per_second: float     # in-vocabulary tokens × epochs / seconds
    wordsim353: float
    simlex999: float
    analogy: float


def evaluate(W: np.ndarray, vocab, benches) -> dict:
    from dlfs.embeddings.evaluate import evaluate_analogies, evaluate_word_pairs

    ws, sl, qa = benches
    return {"wordsim353": evaluate_word_pairs(W, vocab, ws), "simlex999": evaluate_word_pairs(W, vocab, sl),
            "analogy": evaluate_analogies(W, vocab, qa)}


def train_ours(sentences, vocab, cfg):
    from dlfs.embeddings.word2vec import SkipGram

    ids, sent = vocab.encode(sentences)
    model = SkipGram(vocab, cfg)
    cpu = time.process_time()
    stats = model.train(ids, sent)
    return model.vectors, stats.seconds, time.process_time() - cpu


def train_gensim(sentences, vocab, cfg, workers: int):
    """gensim's Word2Vec with the same settings; its vectors in our vocabulary's order."""
    from gensim.models import Word2Vec

    model = Word2Vec(sg=1, hs=0, negative=cfg.negative, vector_size=cfg.vector_size, window=cfg.window,
                     min_count=cfg.min_count, sample=cfg.sample, epochs=cfg.epochs, alpha=cfg.alpha,
                     min_alpha=cfg.min_alpha, ns_exponent=cfg.ns_exponent, workers=workers, seed=cfg.seed)
    model.build_vocab(sentences)
    if set(model.wv.index_to_key) != set(vocab.words):
        raise RuntimeError("gensim's vocabulary differs from ours on the same corpus and min_count")
    t, cpu = time.perf_counter(), time.process_time()
    model.train(sentences, total_examples=len(sentences), epochs=cfg.epochs)
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    return np.stack([model.wv[w] for w in vocab.words]), seconds, cpu


def summary(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}


def pca_2d(X: np.ndarray) -> np.ndarray:
    """(n, d) → (n, 2): the rows, centred, on their first two principal directions (SVD)."""
    Xc = X - X.mean(axis=0)
    _, _, Vt = np.linalg.svd(Xc, full_matrices=False)
    return Xc @ Vt[:2].T


def nearest_words(W: np.ndarray, vocab, words, topn: int = 5) -> dict:
    from dlfs.embeddings.similarity import most_similar, unit_rows

    Wn = unit_rows(W)
    present = [w for w in words if w in vocab]
    if not present:
        return {}
    q = np.array([vocab.index[w] for w in present])
    ids, scores = most_similar(Wn, Wn[q], topn, exclude=q[:, None])
    return {w: [[vocab.words[i], round(float(s), 3)] for i, s in zip(ids[k], scores[k])]
            for k, w in enumerate(present)}


def run_corpus(corpus: str, seeds: int, data_dir: str | None, benches, log=print,
               workers2: bool = True) -> tuple[dict, dict]:
    """Train ours, gensim (1 worker) and gensim (2 workers) for each seed on one corpus.
    Returns (the corpus' record, the vectors of seed 0 of ours and gensim)."""
    from dlfs.embeddings.vocab import build_vocab
    from dlfs.embeddings.word2vec import SkipGramConfig

    sentences = sentences_of(corpus, data_dir)
    base = SkipGramConfig(**SETTINGS[corpus])
    vocab = build_vocab(sentences, base.min_count)
    tokens = vocab.total
    log(f"{corpus}: {len(sentences):,} sentences, {sum(map(len, sentences)):,} tokens, vocabulary "
        f"{len(vocab):,} (min_count {base.min_count}), {tokens:,} in-vocabulary tokens; "
        f"{base.epochs} epochs, {seeds} seeds")
    impls = {"ours": lambda c: train_ours(sentences, vocab, c),
             "gensim": lambda c: train_gensim(sentences, vocab, c, 1)}
    if workers2:
        impls["gensim-2"] = lambda c: train_gensim(sentences, vocab, c, 2)
    runs, coverage, kept = [], {}, {}
    for seed in range(seeds):
        cfg = replace(base, seed=seed)
        for impl, train in impls.items():
            W, seconds, cpu = train(cfg)
            ev = evaluate(W, vocab, benches)
            coverage = {k: {kk: v[kk] for kk in ("covered", "total", "coverage")} for k, v in ev.items()}
            run = Run(impl, seed, round(seconds, 3), round(cpu, 3), round(tokens * cfg.epochs / seconds, 1),
                      ev["wordsim353"]["spearman"], ev["simlex999"]["spearman"], ev["analogy"]["accuracy"])
            runs.append(run)
            if seed == 0 and impl in ("ours", "gensim"):
                kept[impl] = W
            log(f"  seed {seed} {impl:<8} {run.words_per_second:>10,.0f} words/s ({seconds:6.1f} s)  "
                f"WordSim353 {run.wordsim353:.3f}  SimLex-999 {run.simlex999:.3f}  analogies {run.analogy:.3f}")
    by_impl = {impl: [r for r in runs if r.impl == impl] for impl in impls}
    summaries = {impl: {m: summary([getattr(r, m) for r in rs])
                        for m in ("wordsim353", "simlex999", "analogy", "words_per_second", "seconds",
                                  "cpu_seconds")}
                 for impl, rs in by_impl.items()}
    ours, theirs = summaries["ours"], summaries["gensim"]
    comparison = {
        "wordsim353_mean_difference": ours["wordsim353"]["mean"] - theirs["wordsim353"]["mean"],
        "simlex999_mean_difference": ours["simlex999"]["mean"] - theirs["simlex999"]["mean"],
        "analogy_mean_difference": ours["analogy"]["mean"] - theirs["analogy"]["mean"],
        "speed_ratio_gensim_over_ours": float(np.median(
            [g.words_per_second / o.words_per_second for g, o in zip(by_impl["gensim"], by_impl["ours"])])),
        "cpu_ratio_ours_over_gensim": ours["cpu_seconds"]["mean"] / theirs["cpu_seconds"]["mean"],
    }
    if workers2:
        comparison["speed_ratio_gensim2_over_ours"] = float(np.median(
            [g.words_per_second / o.words_per_second for g, o in zip(by_impl["gensim-2"], by_impl["ours"])]))
    record = {
        "corpus": corpus, "sentences": len(sentences), "tokens": sum(map(len, sentences)),
        "vocabulary": len(vocab), "in_vocabulary_tokens": tokens,
        "config": {k: v for k, v in asdict(base).items() if k != "seed"},
        "coverage": coverage, "runs": [asdict(r) for r in runs], "summary": summaries,
        "comparison": comparison,
        "neighbours_seed0": {impl: nearest_words(W, vocab, [ws[0] for ws in PROJECTION_WORDS.values()])
                             for impl, W in kept.items()} if corpus == "lee" else {},
    }
    return record, {"vocab": vocab, **kept}


# ----------------------------------------------------------------- figures

def plot_projection(vocab, vectors: dict, path: Path) -> Path:
    """Chosen Lee-corpus words on the first two principal components of each model's vectors."""
    from dlfs.embeddings.similarity import unit_rows
    from dlfs.viz.plots import _pyplot, _save

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(vectors), figsize=(6.5 * len(vectors), 6))
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    for ax, (name, W) in zip(np.atleast_1d(axes), vectors.items()):
        words, groups = [], []
        for g, ws in enumerate(PROJECTION_WORDS.values()):
            for w in ws:
                if w in vocab:
                    words.append(w)
                    groups.append(g)
        xy = pca_2d(unit_rows(W[[vocab.index[w] for w in words]]))
        for (x, y), w, g in zip(xy, words, groups):
            ax.scatter(x, y, color=colours[g], s=18)
            ax.annotate(w, (x, y), fontsize=8, xytext=(3, 2), textcoords="offset points")
        for g, theme in enumerate(PROJECTION_WORDS):
            ax.scatter([], [], color=colours[g], label=theme)
        ax.set_title(f"{name}: seed 0, first two principal components")
        ax.legend(fontsize=8, loc="best")
        ax.grid(alpha=0.3)
    fig.suptitle("Skip-gram vectors of the Lee corpus (unit length), PCA by SVD")
    return _save(fig, path)


def plot_quality(records: list[dict], path: Path) -> Path:
    """Mean ± std (over seeds) of each metric, ours against gensim, per corpus."""
    from dlfs.viz.plots import _pyplot, _save

    plt = _pyplot()
    metrics = [("wordsim353", "WordSim353 Spearman"), ("simlex999", "SimLex-999 Spearman"),
               ("analogy", "analogy accuracy")]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4))
    impls = [("ours", "tab:blue"), ("gensim", "tab:orange")]
    x = np.arange(len(records))
    for ax, (m, title) in zip(axes, metrics):
        for k, (impl, colour) in enumerate(impls):
            means = [r["summary"][impl][m]["mean"] for r in records]
            stds = [r["summary"][impl][m]["std"] for r in records]
            ax.bar(x + (k - 0.5) * 0.38, means, 0.38, yerr=stds, capsize=4, color=colour, label=impl)
            for r_i, r in enumerate(records):
                vals = [run[m] for run in r["runs"] if run["impl"] == impl]
                ax.scatter(np.full(len(vals), x[r_i] + (k - 0.5) * 0.38), vals, color="k", s=6, zorder=3)
        ax.set_xticks(x, [f"{r['corpus']}\n({r['summary']['ours'][m]['n']} seeds)" for r in records])
        ax.set_title(title)
        ax.axhline(0, color="grey", lw=0.8)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8)
    fig.suptitle("Our SGNS against gensim's Word2Vec (sg=1), same corpus and settings; bars: mean ± std")
    return _save(fig, path)


# ----------------------------------------------------------------- run

def machine() -> dict:
    import gensim

    import subprocess

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    return {"commit": commit or None, "python": platform.python_version(), "numpy": np.__version__, "gensim": gensim.__version__,
            "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "load_average_at_start": [round(x, 2) for x in load] if load else None}


def run(corpora=("lee", "head500"), seeds: dict | None = None, data_dir: str | None = None,
        out_dir: str | Path = ".", workers2: bool = True, log=print) -> dict:
    """Run the comparison on each corpus; write the JSON and the figures into ``out_dir``."""
    from dlfs.data.word2vec import load_word2vec

    w2v_data = load_word2vec(data_dir)
    benches = (w2v_data.wordsim353(), w2v_data.simlex999(), w2v_data.analogies())
    result = {"machine": machine(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "corpora": []}
    out = Path(out_dir)
    figures = []
    for corpus in corpora:
        n = (seeds or {}).get(corpus, DEFAULT_SEEDS[corpus])
        record, kept = run_corpus(corpus, n, data_dir, benches, log, workers2)
        result["corpora"].append(record)
        if corpus == "lee":
            figures.append(plot_projection(kept["vocab"], {"ours": kept["ours"], "gensim": kept["gensim"]},
                                           out / "projection.png"))
    if hasattr(os, "getloadavg"):
        result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    figures.append(plot_quality(result["corpora"], out / "quality.png"))
    from dlfs.io import atomic_write_text

    atomic_write_text(out / "word2vec_vs_gensim.json", json.dumps(result, indent=1) + "\n")
    for r in result["corpora"]:
        s, c = r["summary"], r["comparison"]
        log(f"{r['corpus']}: WordSim353 ours {s['ours']['wordsim353']['mean']:.3f} ± {s['ours']['wordsim353']['std']:.3f}"
            f" vs gensim {s['gensim']['wordsim353']['mean']:.3f} ± {s['gensim']['wordsim353']['std']:.3f}; "
            f"SimLex-999 {s['ours']['simlex999']['mean']:.3f} vs {s['gensim']['simlex999']['mean']:.3f}; "
            f"analogies {s['ours']['analogy']['mean']:.3f} vs {s['gensim']['analogy']['mean']:.3f}; "
            f"gensim is {c['speed_ratio_gensim_over_ours']:.1f}x faster (1 worker)")
    log(f"saved {', '.join(str(f) for f in figures)} and {out / 'word2vec_vs_gensim.json'}")
    return result


def main(argv: list[str] | None = None) -> int:
    p = common.parser("word2vec_vs_gensim", "Train our skip-gram and gensim's Word2Vec side by side and "
                                            "compare quality (WordSim353, SimLex-999, analogies) and speed.",
                      RESULTS, data="word2vec/ (and tinyshakespeare/)")
    p.add_argument("--corpus", nargs="+", choices=list(SETTINGS), default=["lee", "head500"])
    p.add_argument("--seeds", type=int, default=None,
                   help="seeds per corpus (default: " + ", ".join(f"{k} {v}" for k, v in DEFAULT_SEEDS.items()) + ")")
    p.add_argument("--no-workers2", action="store_true", help="skip gensim with workers=2")
    args = p.parse_args(argv)
    if args.seeds is not None and args.seeds < 1:
        p.error("--seeds must be at least 1")
    try:
        import gensim  # noqa: F401
    except ImportError:
        print("error: this comparison needs gensim: pip install -e \".[word2vec]\"", file=sys.stderr)
        return 2
    seeds = {c: args.seeds for c in args.corpus} if args.seeds else None
    return common.report_data_errors(
        lambda: run(args.corpus, seeds, args.data_dir, common.output_dir(args), workers2=not args.no_workers2))


if __name__ == "__main__":
    sys.exit(main())
