"""Topic 22 — word2vec: skip-gram with negative sampling (SGNS), written by hand.

Every word w has two vectors: an input vector ``W_in[w]`` (the embedding we keep) and an output
vector ``W_out[w]``. For a (center, context) pair taken from a window of the corpus, and K
"noise" words drawn from the noise distribution, the loss is

    L = −log σ(v · u₀) − Σ_k log σ(−v · u_k)         v = W_in[center]         (d,)
                                                      u₀ = W_out[context]      (d,)
                                                      u_k = W_out[noise_k]     (d,), k = 1..K

Batched over B pairs, with the context and its K noise words stacked as K + 1 targets:

    v: (B, d)   u: (B, 1 + K, d)   s = u · v: (B, 1 + K)   labels (1, 0, …, 0)
    L_b = softplus(−s_b0) + Σ_k softplus(s_bk)              softplus(x) = log(1 + eˣ)
    ∂L_b/∂s_bk = σ(s_bk) − label_k
    ∂L_b/∂v_b = Σ_k (σ(s_bk) − label_k) u_bk                (B, d)
    ∂L_b/∂u_bk = (σ(s_bk) − label_k) v_b                    (B, 1 + K, d)

Each pair touches 2 + K rows of the two (V, d) matrices, so an SGD step updates only those rows
(a frequent word can appear many times in one batch: its gradients must add up). The rest of
the recipe follows Mikolov et al. (2013) and gensim's ``Word2Vec(sg=1, negative=K)``: frequent
words are randomly dropped (subsampling), each center word gets a window drawn uniformly from
1..window, the noise words come from the unigram distribution raised to the power 3/4, and the
learning rate falls linearly from ``alpha`` to ``min_alpha`` over training.

Shapes in float32 for training; every function keeps its inputs' floating dtype (the tests run
in float64).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable, NamedTuple

import numpy as np

from dlfs.embeddings.vocab import Vocabulary
from dlfs.nn.activations import sigmoid


# ---------------------------------------------------------------- the corpus side

def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    """The probability of keeping each occurrence of each word (frequent-word subsampling).

    counts: (V,) the words' counts; sample: the ``sample`` parameter s (gensim's default 1e-3;
    0 disables subsampling). With f = counts[w] and t = counts.sum(), word2vec.c and gensim keep
    an occurrence with probability

        p_keep(w) = min(1, (√(f / (s·t)) + 1) · (s·t) / f)

    so words rarer than about s·t are always kept and a word far above it is kept with
    probability about √(s·t / f). Returns (V,) float64 in (0, 1].
    """
    counts = np.asarray(counts, dtype=np.float64)
    if sample < 0:
        raise ValueError(f"sample must be >= 0, got {sample}")
    if sample == 0:
        return np.ones_like(counts)
    # TODO: the threshold is s·t; apply the formula to every word at once and cap at 1.
    # BEGIN SOLUTION threshold = s·t; p = (sqrt(f/threshold) + 1)·threshold/f, capped at 1
    threshold = sample * counts.sum()
    p = (np.sqrt(counts / threshold) + 1.0) * (threshold / counts)
    return np.minimum(p, 1.0)
    # END SOLUTION


def noise_distribution(counts: np.ndarray, exponent: float = 0.75) -> np.ndarray:
    """The negative-sampling distribution P(w) ∝ count(w)^exponent (the unigram distribution
    flattened by the power 3/4: rare words are drawn more often than their share).

    counts: (V,) → (V,) float64 probabilities summing to 1.
    """
    # BEGIN SOLUTION counts to the power exponent, normalised to sum to 1
    weights = np.asarray(counts, dtype=np.float64) ** exponent
    return weights / weights.sum()
    # END SOLUTION


def skipgram_pairs(ids: np.ndarray, sentence_ids: np.ndarray, windows: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Every (center, context) pair of a token stream, with a window per center.

    ids: (N,) word ids in corpus order; sentence_ids: (N,) the sentence of each token (windows
    never cross a sentence boundary); windows: (N,) ints ≥ 1, the window of each center token.
    Token n pairs with every token m ≠ n of its sentence with |m − n| ≤ windows[n].

    Returns ``(centers, contexts)``, both (P,) with ids' dtype, ordered by center position, and
    for each center by context position (left to right), as word2vec.c visits them.
    """
    ids = np.asarray(ids)
    sentence_ids = np.asarray(sentence_ids)
    windows = np.asarray(windows)
    if not ids.shape == sentence_ids.shape == windows.shape or ids.ndim != 1:
        raise ValueError(f"ids, sentence_ids and windows must be (N,) arrays of one length, got "
                         f"{ids.shape}, {sentence_ids.shape}, {windows.shape}")
    n = ids.size
    if n == 0:
        return ids[:0].copy(), ids[:0].copy()
    # TODO: no loop over tokens. Build an (N, 2W) table of candidate context positions (offsets
    #       −W..−1, 1..W, W the largest window), mask out the invalid ones (outside the corpus,
    #       beyond the token's own window, another sentence), then read it row by row.
    # BEGIN SOLUTION an (N, 2W) table of context positions, masked, read in row-major order
    w = int(windows.max())
    offsets = np.concatenate([np.arange(-w, 0), np.arange(1, w + 1)])
    pos = np.arange(n)[:, None] + offsets[None, :]                  # (N, 2W)
    valid = (pos >= 0) & (pos < n) & (np.abs(offsets)[None, :] <= windows[:, None])
    safe = np.clip(pos, 0, n - 1)
    valid &= sentence_ids[safe] == sentence_ids[:, None]
    rows, cols = np.nonzero(valid)                                  # row-major: by center, then context
    return ids[rows], ids[safe[rows, cols]]
    # END SOLUTION


# ---------------------------------------------------------------- the loss and its gradients

class SGNSCache(NamedTuple):
    """What :func:`sgns_forward` keeps for :func:`sgns_backward`.

    v: (B, d) center vectors; u: (B, 1 + K, d) target vectors (context first, then the noise
    words); sig: (B, 1 + K) σ(s), s = u · v.
    """
    v: np.ndarray
    u: np.ndarray
    sig: np.ndarray


def sgns_forward(v: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, SGNSCache]:
    """The SGNS loss of each pair.

    v: (B, d) center (input) vectors; u: (B, 1 + K, d) output vectors, ``u[:, 0]`` the true
    context's and ``u[:, 1:]`` the K noise words'. Returns ``(loss, cache)``: loss (B,),
    loss_b = −log σ(s_b0) − Σ_k log σ(−s_bk) with s = u · v, computed without overflow.
    """
    if v.ndim != 2 or u.ndim != 3 or u.shape[0] != v.shape[0] or u.shape[2] != v.shape[1] or u.shape[1] < 1:
        raise ValueError(f"expected v (B, d) and u (B, 1 + K, d), got v {v.shape} and u {u.shape}")
    # TODO: s by one batched product (no (B, 1 + K, d) temporary); −log σ(x) = softplus(−x),
    #       and np.logaddexp(0, x) is a softplus that never overflows.
    # BEGIN SOLUTION s = u · v (batched), loss = softplus(−s₀) + Σ_k softplus(s_k), keep σ(s)
    s = np.matmul(u, v[:, :, None])[:, :, 0]                        # (B, 1 + K)
    loss = np.logaddexp(0, -s[:, 0]) + np.logaddexp(0, s[:, 1:]).sum(axis=1)
    return loss, SGNSCache(v, u, sigmoid(s))
    # END SOLUTION


def sgns_backward(dloss: np.ndarray, cache: SGNSCache) -> tuple[np.ndarray, np.ndarray]:
    """The gradients of :func:`sgns_forward` given dloss = ∂J/∂loss: (B,).

    With g_bk = dloss_b · (σ(s_bk) − label_k), label = (1, 0, …, 0):

        dv_b  = Σ_k g_bk u_bk       (B, d)
        du_bk = g_bk v_b            (B, 1 + K, d)

    Returns ``(dv, du)`` shaped like v and u.
    """
    # BEGIN SOLUTION g = dloss·(σ(s) − label); dv = Σ_k g u (batched product); du = g ⊗ v
    v, u, sig = cache
    g = sig.copy()
    g[:, 0] -= 1
    g *= dloss[:, None]
    dv = np.matmul(g[:, None, :], u)[:, 0, :]                       # (B, d)
    du = g[:, :, None] * v[:, None, :]                              # (B, 1 + K, d)
    return dv, du
    # END SOLUTION


# ---------------------------------------------------------------- the sparse SGD step

def scatter_add_rows(W: np.ndarray, rows: np.ndarray, grads: np.ndarray, scale: float = 1.0) -> None:
    """``W[rows[i]] += scale · grads[i]`` for every i, in place; a row listed several times
    receives the sum of its gradients.

    W: (V, d); rows: (M,) ints in [0, V); grads: (M, d). Only the listed rows are touched.
    (``W[rows] += g`` is wrong here: with repeated rows only the last gradient survives.)
    """
    # TODO: np.add.at adds once per listed index, repeated or not. On a 2-D W it is slow (one
    #       small loop per row); on the flat (V·d,) view of W with the flat indices
    #       rows[i]·d + j it takes NumPy's fast path.
    # BEGIN SOLUTION np.add.at on the flat view of W with flat indices rows·d + column
    rows = np.asarray(rows, dtype=np.intp).reshape(-1)
    grads = grads if scale == 1.0 else grads * scale
    if W.flags.c_contiguous:
        d = W.shape[1]
        flat = (rows[:, None] * d + np.arange(d)).reshape(-1)
        np.add.at(W.reshape(-1), flat, grads.reshape(-1))
    else:
        np.add.at(W, rows, grads)
    # END SOLUTION


def sgns_step(W_in: np.ndarray, W_out: np.ndarray, centers: np.ndarray, targets: np.ndarray,
              lr: float) -> float:
    """One SGD step on a batch of pairs; updates only the rows it touches, in place.

    W_in, W_out: (V, d); centers: (B,) ids; targets: (B, 1 + K) ids, the context first, then
    the noise words. Gathers v = W_in[centers] and u = W_out[targets], runs the loss forward and
    backward with ∂J/∂loss_b = 1 (J = the summed loss, so ``lr`` is a per-pair step size, as
    gensim's ``alpha``), and subtracts lr times the gradients from the rows they belong to.
    Returns the batch's summed loss (before the step).
    """
    # BEGIN SOLUTION gather, forward, backward with ones, scatter −lr·grads into W_in and W_out
    v = W_in[centers]
    u = W_out[targets]
    loss, cache = sgns_forward(v, u)
    dv, du = sgns_backward(np.ones_like(loss), cache)
    scatter_add_rows(W_in, centers, dv, -lr)
    scatter_add_rows(W_out, targets.reshape(-1), du.reshape(-1, du.shape[-1]), -lr)
    return float(loss.sum())
    # END SOLUTION


def learning_rate(alpha: float, min_alpha: float, progress: float) -> float:
    """The learning rate after ``progress`` (0 → 1) of the whole training: linear from
    ``alpha`` at 0 to ``min_alpha`` at 1, never below ``min_alpha`` (gensim's schedule)."""
    # BEGIN SOLUTION linear interpolation from alpha to min_alpha, floored at min_alpha
    return max(min_alpha, alpha - (alpha - min_alpha) * progress)
    # END SOLUTION


# ---------------------------------------------------------------- training (given)

@dataclass(frozen=True)
class SkipGramConfig:
    """The settings, named and defaulted as gensim's ``Word2Vec(sg=1, ...)`` (except
    ``batch_pairs``, the number of pairs per vectorised SGD step)."""

    vector_size: int = 100
    window: int = 5
    negative: int = 5
    min_count: int = 5
    sample: float = 1e-3
    epochs: int = 5
    alpha: float = 0.025
    min_alpha: float = 0.0001
    ns_exponent: float = 0.75
    batch_pairs: int = 512
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


class NoiseSampler:
    """Draws word ids from a distribution ``p`` (V,): inverse transform sampling on its
    cumulative sum (one binary search per draw)."""

    def __init__(self, p: np.ndarray):
        self.cdf = np.cumsum(np.asarray(p, dtype=np.float64))
        self.cdf /= self.cdf[-1]

    def __call__(self, rng: np.random.Generator, shape) -> np.ndarray:
        ids = np.searchsorted(self.cdf, rng.random(shape), side="right")
        return np.minimum(ids, self.cdf.size - 1).astype(np.int32)


@dataclass
class TrainStats:
    """What :meth:`SkipGram.train` measured: words are raw in-vocabulary tokens (before
    subsampling), as gensim counts its corpus."""

    epochs: int
    words: int                 # in-vocabulary tokens per epoch
    kept_words: int            # after subsampling, summed over epochs
    pairs: int                 # (center, context) pairs trained on, summed over epochs
    seconds: float
    losses: list[float]        # mean loss per pair, per epoch

    @property
    def words_per_second(self) -> float:
        return self.epochs * self.words / self.seconds if self.seconds > 0 else float("inf")


class SkipGram:
    """Skip-gram with negative sampling on a :class:`Vocabulary`.

    ``W_in`` (V, d) float32, the word vectors, starts uniform in [−1/d, 1/d) as in gensim 4
    (word2vec.c draws from half that range); ``W_out`` (V, d) starts at zero, as in both.
    """

    def __init__(self, vocab: Vocabulary, config: SkipGramConfig = SkipGramConfig()):
        self.vocab = vocab
        self.config = config
        self.rng = np.random.default_rng(config.seed)
        V, d = len(vocab), config.vector_size
        self.W_in = ((2 * self.rng.random((V, d), dtype=np.float32) - 1) / d).astype(np.float32)
        self.W_out = np.zeros((V, d), dtype=np.float32)
        self.keep = keep_probabilities(vocab.counts, config.sample)
        self.noise = NoiseSampler(noise_distribution(vocab.counts, config.ns_exponent))

    @property
    def vectors(self) -> np.ndarray:
        """(V, d) the trained word vectors (the input embeddings)."""
        return self.W_in

    def epoch_pairs(self, ids: np.ndarray, sentence_ids: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, int]:
        """One epoch's (center, context) pairs and the number of tokens kept: subsample the
        stream, draw a window in 1..window for each kept token, pair within the windows."""
        keep = self.rng.random(ids.size) < self.keep[ids]
        ids, sentence_ids = ids[keep], sentence_ids[keep]
        windows = self.rng.integers(1, self.config.window + 1, size=ids.size)
        return (*skipgram_pairs(ids, sentence_ids, windows), int(ids.size))

    def targets(self, contexts: np.ndarray) -> np.ndarray:
        """(B,) contexts → (B, 1 + K) targets: the context, then K noise words; a noise word
        that equals the context is drawn again (word2vec.c skips it)."""
        noise = self.noise(self.rng, (contexts.size, self.config.negative))
        clash = noise == contexts[:, None]
        while clash.any():
            noise[clash] = self.noise(self.rng, int(clash.sum()))
            clash = noise == contexts[:, None]
        return np.concatenate([contexts[:, None].astype(np.int32), noise], axis=1)

    def train(self, ids: np.ndarray, sentence_ids: np.ndarray, *,
              progress: Callable[[int, float], None] | None = None) -> TrainStats:
        """``config.epochs`` passes over the encoded corpus (``Vocabulary.encode``), in batches
        of ``batch_pairs`` pairs, with the learning rate decaying linearly over all the pairs.
        ``progress(epoch, mean_loss)`` is called after each epoch."""
        cfg = self.config
        ids = np.asarray(ids, dtype=np.int32)
        sentence_ids = np.asarray(sentence_ids)
        kept = pairs_total = 0
        losses = []
        t0 = time.perf_counter()
        for epoch in range(cfg.epochs):
            centers, contexts, n_kept = self.epoch_pairs(ids, sentence_ids)
            kept += n_kept
            n = centers.size
            total = 0.0
            for lo in range(0, n, cfg.batch_pairs):
                hi = min(lo + cfg.batch_pairs, n)
                lr = learning_rate(cfg.alpha, cfg.min_alpha, (epoch + lo / max(n, 1)) / cfg.epochs)
                total += sgns_step(self.W_in, self.W_out, centers[lo:hi],
                                   self.targets(contexts[lo:hi]), lr)
            pairs_total += n
            losses.append(total / max(n, 1))
            if progress is not None:
                progress(epoch, losses[-1])
        seconds = time.perf_counter() - t0
        return TrainStats(cfg.epochs, int(ids.size), kept, pairs_total, seconds, losses)
