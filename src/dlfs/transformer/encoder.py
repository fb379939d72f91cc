"""Topic 28 — the Transformer encoder block: attention and an MLP, each inside a residual
connection with a LayerNorm, in the post-LN (2017) or the pre-LN (GPT-2) arrangement.

The API (reused by the decoder block of Topic 29 and the GPT of Topic 30)::

    FeedForward(d_model, dim_feedforward, dropout=0.0, activation="gelu")
        x: (..., D) -> (..., D):  linear2(dropout(act(linear1(x))))      linear1: D→F, linear2: F→D
    SublayerConnection(d_model, dropout=0.0, norm_first=False, eps=1e-5)
        forward(x, f) / backward(dy, f_backward): one sublayer f with its residual, dropout, norm
            post-LN (norm_first=False):  y = norm(x + dropout(f(x)))
            pre-LN  (norm_first=True):   y = x + dropout(f(norm(x)))
    EncoderBlock(d_model, num_heads, dim_feedforward=4·D, dropout=0.1, activation="gelu",
                 norm_first=False, layer_norm_eps=1e-5)
        forward(x, key_padding_mask=None, causal=False): (B, T, D) -> (B, T, D)
        backward(dy): (B, T, D) -> dx; accumulates every parameter's gradient
        load_torch_state_dict(state): the weights of torch.nn.TransformerEncoderLayer

``EncoderBlock`` computes what ``torch.nn.TransformerEncoderLayer(D, H, F, dropout,
activation="gelu", batch_first=True, norm_first=...)`` computes, with two differences: torch
also drops attention *weights* inside its MultiheadAttention (here dropout acts on the two
sublayer outputs and inside the MLP only, as torch's ``dropout1``, ``dropout2`` and
``dropout``), and a query whose keys are all padding gets 0 from attention instead of NaN.

Parameter names: ``self_attn.qkv.W (D, 3D)``, ``self_attn.qkv.b``, ``self_attn.out_proj.W
(D, D)``, ``self_attn.out_proj.b``, ``ff.linear1.W (D, F)``, ``ff.linear1.b``, ``ff.linear2.W
(F, D)``, ``ff.linear2.b``, ``sublayer1.norm.gamma / beta`` (torch's ``norm1``) and
``sublayer2.norm.gamma / beta`` (``norm2``). The sublayers are reused, not copied:
``dlfs.attention.multi_head.MultiHeadAttention``, ``dlfs.nn.layers.Linear``,
``dlfs.nn.activations.GELU``, ``dlfs.nn.normalization.LayerNorm``,
``dlfs.nn.regularization.Dropout``.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from dlfs.attention.multi_head import MultiHeadAttention
from dlfs.nn.activations import GELU, ReLU
from dlfs.nn.layers import Layer, Linear
from dlfs.nn.normalization import LayerNorm
from dlfs.nn.regularization import Dropout

ACTIVATIONS = {"gelu": lambda: GELU("none"), "gelu_tanh": lambda: GELU("tanh"), "relu": ReLU}


def _generator(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


class FeedForward(Layer):
    """The position-wise MLP of a transformer block.

    x: (..., D) -> y: (..., D);  y = linear2(dropout(act(linear1(x)))), hidden width F
    (4·D in GPT-2 and in "Attention is all you need"). ``activation``: "gelu" (exact, torch's
    ``F.gelu``), "gelu_tanh" (GPT-2's tanh approximation) or "relu". Sublayers ``linear1``
    (``Linear(D, F)``), ``act``, ``dropout`` (``Dropout(dropout)``), ``linear2`` (``Linear(F, D)``).
    """

    def __init__(self, d_model: int, dim_feedforward: int, dropout: float = 0.0, activation: str = "gelu",
                 bias: bool = True, rng: np.random.Generator | int | None = None, dtype=np.float32):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        rng = _generator(rng)
        self.activation = activation
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, rng=rng, dtype=dtype)
        self.act = ACTIVATIONS[activation]()
        self.dropout = Dropout(dropout, rng=rng)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, rng=rng, dtype=dtype)

    def extra_repr(self) -> str:
        return (f"{self.linear1.in_features}, {self.linear1.out_features}, p={self.dropout.p}, "
                f"activation={self.activation!r}")

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (..., D) -> (..., D). Each sublayer caches what its backward needs."""
        # BEGIN SOLUTION linear1, activation, dropout, linear2
        return self.linear2.forward(self.dropout.forward(self.act.forward(self.linear1.forward(x))))
        # END SOLUTION

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy: (..., D) -> dx: (..., D); accumulates linear1's and linear2's gradients."""
        # BEGIN SOLUTION the four backwards in reverse order
        return self.linear1.backward(self.act.backward(self.dropout.backward(self.linear2.backward(dy))))
        # END SOLUTION


class SublayerConnection(Layer):
    """The residual connection around one sublayer f, with its LayerNorm and dropout.

    post-LN (``norm_first=False``, the original Transformer):  y = norm(x + dropout(f(x)))
    pre-LN  (``norm_first=True``, GPT-2 and most models since): y = x + dropout(f(norm(x)))

    x, y: (..., D). ``forward(x, f)`` calls ``f`` once (f: (..., D) -> (..., D), e.g. a bound
    ``forward`` of an attention layer); ``backward(dy, f_backward)`` calls the matching
    ``f_backward`` once (dL/df's output -> dL/df's input) and returns dx. Sublayers ``norm``
    (``LayerNorm(D)``) and ``dropout`` (``Dropout(dropout)``).
    """

    def __init__(self, d_model: int, dropout: float = 0.0, norm_first: bool = False, eps: float = 1e-5,
                 rng: np.random.Generator | int | None = None, dtype=np.float32):
        self.norm_first = bool(norm_first)
        self.norm = LayerNorm(d_model, eps=eps, dtype=dtype)
        self.dropout = Dropout(dropout, rng=_generator(rng))

    def extra_repr(self) -> str:
        return f"{self.norm.normalized_shape[0]}, p={self.dropout.p}, norm_first={self.norm_first}"

    def forward(self, x: np.ndarray, f: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """x: (..., D) -> (..., D): the sublayer f with its residual, dropout and LayerNorm."""
        # TODO: pre-LN normalises f's input and leaves the residual path x -> y untouched;
        #       post-LN normalises the sum.
        # BEGIN SOLUTION x + dropout(f(norm(x))) when norm_first, else norm(x + dropout(f(x)))
        if self.norm_first:
            return x + self.dropout.forward(f(self.norm.forward(x)))
        return self.norm.forward(x + self.dropout.forward(f(x)))
        # END SOLUTION

    def backward(self, dy: np.ndarray, f_backward: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """dy: (..., D) -> dx: (..., D). The residual adds the gradient that skips f to the one
        through it; accumulates the norm's gamma and beta gradients."""
        # TODO: y = x + g(x) has dx = dy + g'(x)ᵀ dy: the two paths' gradients add up.
        # BEGIN SOLUTION pre-LN: dy + norm.backward(f_backward(dropout.backward(dy))); post-LN: through the norm first
        if self.norm_first:
            return dy + self.norm.backward(f_backward(self.dropout.backward(dy)))
        dz = self.norm.backward(dy)
        return dz + f_backward(self.dropout.backward(dz))
        # END SOLUTION


class EncoderBlock(Layer):
    """One Transformer encoder layer, as ``torch.nn.TransformerEncoderLayer(batch_first=True)``.

    x: (B, T, D) -> y: (B, T, D):

        post-LN:  h = norm1(x + drop(attn(x)));   y = norm2(h + drop(ff(h)))
        pre-LN:   h = x + drop(attn(norm1(x)));   y = h + drop(ff(norm2(h)))

    attn: ``MultiHeadAttention(D, H)`` (Topic 26) with the key-padding and causal masks of
    ``forward``; ff: ``FeedForward(D, F)`` (F = 4·D by default). The first residual
    connection is ``sublayer1`` (norm1, dropout1), the second ``sublayer2`` (norm2, dropout2).
    A GPT block is the pre-LN block called with ``causal=True``.
    """

    def __init__(self, d_model: int, num_heads: int, dim_feedforward: int | None = None,
                 dropout: float = 0.1, activation: str = "gelu", norm_first: bool = False,
                 layer_norm_eps: float = 1e-5, bias: bool = True,
                 rng: np.random.Generator | int | None = None, dtype=np.float32):
        rng = _generator(rng)
        self.d_model = int(d_model)
        self.norm_first = bool(norm_first)
        dim_feedforward = 4 * self.d_model if dim_feedforward is None else int(dim_feedforward)
        self.self_attn = MultiHeadAttention(d_model, num_heads, bias=bias, rng=rng, dtype=dtype)
        self.ff = FeedForward(d_model, dim_feedforward, dropout, activation, bias=bias, rng=rng, dtype=dtype)
        self.sublayer1 = SublayerConnection(d_model, dropout, norm_first, layer_norm_eps, rng=rng, dtype=dtype)
        self.sublayer2 = SublayerConnection(d_model, dropout, norm_first, layer_norm_eps, rng=rng, dtype=dtype)
        self._attn_args: tuple = (None, False)

    def extra_repr(self) -> str:
        return (f"{self.d_model}, num_heads={self.self_attn.num_heads}, "
                f"dim_feedforward={self.ff.linear1.out_features}, p={self.ff.dropout.p}, "
                f"norm_first={self.norm_first}")

    def _attend(self, h: np.ndarray) -> np.ndarray:
        key_padding_mask, causal = self._attn_args
        return self.self_attn.forward(h, key_padding_mask=key_padding_mask, causal=causal)

    def forward(self, x: np.ndarray, key_padding_mask: np.ndarray | None = None,
                causal: bool = False) -> np.ndarray:
        """x: (B, T, D) -> (B, T, D). key_padding_mask: (B, T) bool, True = padding;
        causal: position t attends to positions ≤ t."""
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"{self!r} expects input (B, T, {self.d_model}), got {x.shape}")
        self._attn_args = (key_padding_mask, causal)
        # TODO: two residual sublayers: attention (with the masks), then the MLP.
        # BEGIN SOLUTION sublayer1 around the masked self-attention, then sublayer2 around the feed-forward
        h = self.sublayer1.forward(x, self._attend)
        return self.sublayer2.forward(h, self.ff.forward)
        # END SOLUTION

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy: (B, T, D) -> dx: (B, T, D); accumulates every parameter's gradient."""
        # BEGIN SOLUTION sublayer2's backward through ff, then sublayer1's through the attention
        dh = self.sublayer2.backward(dy, self.ff.backward)
        return self.sublayer1.backward(dh, self.self_attn.backward)
        # END SOLUTION

    def load_torch_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Load ``torch.nn.TransformerEncoderLayer``'s weights, given as NumPy arrays under torch's
        names (``self_attn.*``, ``linear1.*``, ``linear2.*``, ``norm1.*``, ``norm2.*``; Linear
        weights in torch's (out, in) layout). Raises ValueError, changing nothing, when a name is
        missing or unexpected or a shape is wrong."""
        ours = torch_names(self)
        missing = sorted(set(ours.values()) - set(state))
        unexpected = sorted(set(state) - set(ours.values()))
        if missing or unexpected:
            raise ValueError(f"torch TransformerEncoderLayer state: missing {missing}, unexpected {unexpected}")
        params = dict(self.named_parameters())
        new = {}
        for name, torch_name in ours.items():
            shape = params[name].shape[::-1]                    # torch's layout: (out, in)
            if np.shape(state[torch_name]) != shape:
                raise ValueError(f"torch TransformerEncoderLayer state: {torch_name} should be {shape}, "
                                 f"got {np.shape(state[torch_name])}")
            new[name] = np.asarray(state[torch_name]).T
        self.load_state_dict(new)


def torch_names(block: EncoderBlock) -> dict[str, str]:
    """Our parameter name -> torch.nn.TransformerEncoderLayer's (2-D weights are transposed)."""
    table = {"self_attn.qkv.W": "self_attn.in_proj_weight", "self_attn.qkv.b": "self_attn.in_proj_bias",
             "self_attn.out_proj.W": "self_attn.out_proj.weight", "self_attn.out_proj.b": "self_attn.out_proj.bias",
             "ff.linear1.W": "linear1.weight", "ff.linear1.b": "linear1.bias",
             "ff.linear2.W": "linear2.weight", "ff.linear2.b": "linear2.bias",
             "sublayer1.norm.gamma": "norm1.weight", "sublayer1.norm.beta": "norm1.bias",
             "sublayer2.norm.gamma": "norm2.weight", "sublayer2.norm.beta": "norm2.bias"}
    return {name: table[name] for name, _ in block.named_parameters()}
