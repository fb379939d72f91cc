"""Topic 30 — a GPT-2-style decoder-only language model.

    idx: (B, T) token ids, T ≤ block_size
    x = wte[idx] + wpe[:T]                          (B, T, D)   token + learned position embeddings
    x = dropout(x)
    x = block_l(x, causal=True)   for l = 1..L      (B, T, D)   pre-LN encoder blocks (Topic 28)
    h = ln_f(x)                                     (B, T, D)   a final LayerNorm
    logits = h @ wteᵀ                               (B, T, V)   the output head *is* the embedding

**Weight tying.** The head reuses the token embedding ``wte.W`` (V, D) transposed, as in
GPT-2: one (V, D) matrix instead of two, and the same vector both to read a token and to
score it. ``wte.W`` then gets two gradients per step — ``dlogitsᵀ @ h`` from the head and the
scatter-add of the embedding lookup — and its ``.grad`` is their sum.

**Initialisation (GPT-2).** Every Linear weight and both embeddings ~ N(0, 0.02²), biases 0,
LayerNorms (1, 0); the two projections that write into the residual stream in each block
(attention's ``out_proj.W`` and the MLP's ``linear2.W``) ~ N(0, (0.02/√(2L))²): the stream is
a sum of 2L such contributions, and this keeps its variance at initialisation independent of
the depth.

Parameter names: ``wte.W (V, D)``, ``wpe (block_size, D)``, ``blocks.<l>.…`` (those of
:class:`dlfs.transformer.encoder.EncoderBlock`), ``ln_f.gamma``, ``ln_f.beta``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from dlfs.nn.embedding import Embedding
from dlfs.nn.layers import Layer, Parameter
from dlfs.nn.normalization import LayerNorm
from dlfs.nn.regularization import Dropout
from dlfs.transformer.encoder import EncoderBlock

INIT_STD = 0.02


@dataclass(frozen=True)
class GPTConfig:
    """The shape of a GPT. vocab_size V; block_size: the longest context; n_layer L blocks of
    n_head heads, width n_embd D (a multiple of n_head), MLP width 4·D; dropout on the
    embeddings, inside the MLP and on each residual branch; activation: "gelu" or "gelu_tanh"."""

    vocab_size: int
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    activation: str = "gelu"

    def __post_init__(self):
        if min(self.vocab_size, self.block_size, self.n_layer, self.n_head, self.n_embd) < 1:
            raise ValueError(f"GPTConfig sizes must be positive: {self}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def as_dict(self) -> dict:
        return asdict(self)


class GPT(Layer):
    """The model: ``forward(idx (B, T) ints) -> logits (B, T, V)``; ``backward(dlogits)``
    accumulates every parameter's gradient (the ids have none: returns None).

    Sublayers ``wte`` (:class:`~dlfs.nn.embedding.Embedding`), ``drop``, ``blocks`` (a list of
    pre-LN :class:`~dlfs.transformer.encoder.EncoderBlock`), ``ln_f``; parameter ``wpe``.
    Parameters are created in ``dtype`` and initialised as GPT-2 (see the module docstring)
    from ``rng`` (a Generator or a seed); the dropout layers draw from the same generator.
    """

    def __init__(self, config: GPTConfig, rng: np.random.Generator | int | None = None, dtype=np.float32):
        self.config = config
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        D = config.n_embd
        self.wte = Embedding(config.vocab_size, D, rng=rng, dtype=dtype)
        self.wpe = Parameter(np.zeros((config.block_size, D), dtype=dtype), name="wpe")
        self.drop = Dropout(config.dropout, rng=rng)
        self.blocks = [EncoderBlock(D, config.n_head, 4 * D, dropout=config.dropout,
                                    activation=config.activation, norm_first=True,
                                    rng=rng, dtype=dtype) for _ in range(config.n_layer)]
        self.ln_f = LayerNorm(D, dtype=dtype)
        self.init_weights(rng)
        self.cache = None

    def extra_repr(self) -> str:
        c = self.config
        return (f"vocab={c.vocab_size}, block_size={c.block_size}, n_layer={c.n_layer}, "
                f"n_head={c.n_head}, n_embd={c.n_embd}, parameters={self.num_parameters():,}")

    def init_weights(self, rng: np.random.Generator) -> None:
        """GPT-2's initialisation, in place: N(0, 0.02²) for the embeddings and every Linear
        weight, N(0, (0.02/√(2L))²) for each block's ``self_attn.out_proj.W`` and
        ``ff.linear2.W``, zeros for the biases; LayerNorms keep (1, 0). Draws in the order
        of ``named_parameters()``."""
        # TODO: fill each array in place (p.data[...] = ...): the layers hold these arrays.
        # BEGIN SOLUTION walk named_parameters: residual projections get the scaled std, other weights 0.02, biases 0
        residual_std = INIT_STD / math.sqrt(2 * self.config.n_layer)
        for name, p in self.named_parameters():
            if name.endswith(("self_attn.out_proj.W", "ff.linear2.W")):
                p.data[...] = rng.normal(0.0, residual_std, p.shape)
            elif name in ("wte.W", "wpe") or name.endswith(".W"):
                p.data[...] = rng.normal(0.0, INIT_STD, p.shape)
            elif name.endswith(".b"):
                p.data[...] = 0
        # END SOLUTION

    def forward(self, idx: np.ndarray) -> np.ndarray:
        """idx: (B, T) integer ids, T ≤ block_size -> logits: (B, T, V) in the parameters' dtype."""
        idx = np.asarray(idx)
        if idx.ndim != 2 or idx.shape[1] > self.config.block_size:
            raise ValueError(f"GPT expects ids (B, T) with T ≤ block_size = {self.config.block_size}, "
                             f"got shape {idx.shape}")
        # TODO: every block is causal; the head multiplies by the embedding matrix transposed.
        # BEGIN SOLUTION embeddings + positions, dropout, the causal blocks, ln_f, tied head; cache h
        T = idx.shape[1]
        x = self.wte.forward(idx) + self.wpe.data[:T]
        x = self.drop.forward(x)
        for block in self.blocks:
            x = block.forward(x, causal=True)
        h = self.ln_f.forward(x)
        self.cache = h
        return h @ self.wte.W.data.T
        # END SOLUTION

    def backward(self, dlogits: np.ndarray) -> None:
        """dlogits: (B, T, V) -> None. Accumulates every parameter's gradient; wte.W gets the
        head's gradient and the embedding's, summed."""
        if self.cache is None:
            raise RuntimeError("GPT.backward called before forward")
        # TODO: wpe's gradient is the sum over the batch of dx at each position, in rows :T.
        # BEGIN SOLUTION the head's two gradients, ln_f, the blocks in reverse, dropout, wpe rows :T, wte
        h = self.cache
        D = h.shape[-1]
        W = self.wte.W
        W.accumulate_grad(dlogits.reshape(-1, dlogits.shape[-1]).T @ h.reshape(-1, D))
        dx = self.ln_f.backward(dlogits @ W.data)
        for block in reversed(self.blocks):
            dx = block.backward(dx)
        dx = self.drop.backward(dx)
        dwpe = np.zeros_like(self.wpe.data)
        dwpe[:dx.shape[1]] = dx.sum(axis=0)
        self.wpe.accumulate_grad(dwpe)
        self.wte.backward(dx)
        # END SOLUTION
        return None
