"""Topic 35 — LoRA: a low-rank update next to a frozen weight (Hu et al. 2021), and QLoRA's
frozen NF4 base (Dettmers et al. 2023).

A projection y = x W + b (W: (in, out)) is fine-tuned as

    y = x W + b + s · (x A) B          A: (in, r),  B: (r, out),  s = α / r,  r ≪ min(in, out)

W and b are **frozen** (plain arrays, not ``Parameter``s: nothing accumulates a gradient into
them and no optimiser sees them); A and B are the only parameters. B starts at zero, so the
adapted model starts equal to the base; A starts random, U(±1/√in) (as ``Linear``'s W and as
PEFT's default), so that the gradient of B is not zero at the start. The update ΔW = s·A B has
rank ≤ r and r·(in + out) parameters in place of in·out.

Backward, with dy: (M, out) and x: (M, in) (the leading axes flattened), u = x A: (M, r):

    dB = s · uᵀ dy           du = s · dy Bᵀ: (M, r)        dA = xᵀ du
    dx = dy Wᵀ + du Aᵀ

**Merging** for inference: W ← W + s·A B gives the same outputs with no extra cost;
``unmerge`` subtracts it again (exact up to one rounding per element).

**QLoRA**: with ``quantize=True`` the frozen W is stored in NF4 with double-quantised scales
(``dlfs.lora.nf4``), ``W`` is None, and every forward and backward dequantises it on the fly;
A, B and b stay in the model's dtype. A merged NF4 weight would have to be re-quantised, so
QLoRA layers do not merge.

:class:`LoRALinear` replaces a ``Linear`` or a ``QKVProjection`` in place (same forward and
backward signatures: the QKV projection returns (q, k, v) and takes (dq, dk, dv)), keeping the
weight names: ``blocks.0.ff.linear1.W`` stays a state-dict entry (a buffer), ``.A`` and ``.B``
are new. :func:`apply_lora` does it for the attention and MLP projections of every block of a
GPT.
"""

from __future__ import annotations

import numpy as np

from dlfs.attention.qkv import QKVProjection
from dlfs.lora.nf4 import BLOCK_SIZE, NF4Tensor, dequantize_nf4, quantize_nf4
from dlfs.nn.forward import linear_forward
from dlfs.nn.layers import Layer, Linear, Parameter


class LoRALinear(Layer):
    """A frozen projection plus a trainable low-rank update.

    base: a ``Linear`` (x: (..., in) -> (..., out)) or a ``QKVProjection`` (x: (..., D) ->
    (q, k, v), out = 3D); r: rank; alpha: the scale numerator (s = alpha / r; default r);
    rng: for A; quantize: store the frozen W in NF4 (QLoRA). Parameters: A (in, r), B (r, out).
    """

    def __init__(self, base: Layer, r: int, alpha: float | None = None,
                 rng: np.random.Generator | int | None = None, quantize: bool = False,
                 block_size: int = BLOCK_SIZE, double_quant: bool = True):
        if not isinstance(base, (Linear, QKVProjection)):
            raise TypeError(f"LoRA wraps a Linear or a QKVProjection, got {type(base).__name__}")
        W = np.array(base.W.data, copy=True)
        d_in, d_out = W.shape
        if not 1 <= int(r) <= min(d_in, d_out):
            raise ValueError(f"rank must be between 1 and min(in, out) = {min(d_in, d_out)}, got {r}")
        self.in_features, self.out_features, self.r = d_in, d_out, int(r)
        self.alpha = float(self.r if alpha is None else alpha)
        self.scaling = self.alpha / self.r
        self.splits = 3 if isinstance(base, QKVProjection) else 1
        self.dtype = W.dtype
        self.b = None if base.b is None else np.array(base.b.data, copy=True)     # frozen
        self.W: np.ndarray | None = None if quantize else W                       # frozen
        self.W_nf4: NF4Tensor | None = quantize_nf4(W, block_size, double_quant) if quantize else None
        rng = np.random.default_rng(rng)
        bound = 1.0 / np.sqrt(d_in)
        self.A = Parameter(rng.uniform(-bound, bound, (d_in, self.r)).astype(self.dtype), name="A")
        self.B = Parameter(np.zeros((self.r, d_out), dtype=self.dtype), name="B")
        self.merged = False
        self.x = self.u = None

    def extra_repr(self) -> str:
        kind = ", NF4" if self.W_nf4 is not None else ""
        return f"{self.in_features}, {self.out_features}, r={self.r}, alpha={self.alpha:g}{kind}"

    def buffers(self) -> dict[str, np.ndarray]:
        """The frozen float weights (saved with the model under their old names); an NF4 base is not."""
        out = {} if self.W is None else {"W": self.W}
        if self.b is not None:
            out["b"] = self.b
        return out

    def weight(self) -> np.ndarray:
        """The frozen W: (in, out), dequantised from NF4 when quantised (a new array each call)."""
        return self.W if self.W_nf4 is None else dequantize_nf4(self.W_nf4)

    def delta(self) -> np.ndarray:
        """ΔW = s · A B: (in, out)."""
        return self.scaling * (self.A.data @ self.B.data)

    def forward(self, x: np.ndarray):
        """x: (..., in) -> (..., out), or (q, k, v) each (..., out/3) for a QKV projection."""
        if x.shape[-1] != self.in_features:
            raise ValueError(f"{self!r} expects input (..., {self.in_features}), got {x.shape}")
        # TODO: the frozen product (linear_forward with self.weight()), then, unless merged,
        #       the low-rank path; cache what backward needs.
        # BEGIN SOLUTION cache x; y = x W + b; unless merged, u = x A and y += s · u B
        self.x = x
        y = linear_forward(x, self.weight(), self.b)
        if not self.merged:
            self.u = x @ self.A.data
            y = y + self.scaling * (self.u @ self.B.data)
        # END SOLUTION
        if self.splits == 1:
            return y
        D = self.out_features // 3
        return y[..., :D], y[..., D:2 * D], y[..., 2 * D:]

    def backward(self, *dys: np.ndarray) -> np.ndarray:
        """dy: (..., out) (or dq, dk, dv) -> dx: (..., in); accumulates A.grad and B.grad only."""
        if self.x is None:
            raise RuntimeError("LoRALinear.backward called before forward")
        if self.merged:
            raise RuntimeError("unmerge the LoRA weights before training (backward of a merged layer)")
        if len(dys) != self.splits:
            raise ValueError(f"expected {self.splits} output gradient(s), got {len(dys)}")
        dy = dys[0] if self.splits == 1 else np.concatenate(dys, axis=-1)
        # TODO: view x, u and dy as 2-D; the gradients of B and A, then dx through both paths.
        #       W gets no gradient.
        # BEGIN SOLUTION dB = s uᵀ dy, du = s dy Bᵀ, dA = xᵀ du, dx = dy Wᵀ + du Aᵀ
        x2 = self.x.reshape(-1, self.in_features)
        u2 = self.u.reshape(-1, self.r)
        dy2 = dy.reshape(-1, self.out_features)
        du = self.scaling * (dy2 @ self.B.data.T)
        self.B.accumulate_grad(self.scaling * (u2.T @ dy2))
        self.A.accumulate_grad(x2.T @ du)
        dx = dy2 @ self.weight().T + du @ self.A.data.T
        return dx.reshape(self.x.shape)
        # END SOLUTION

    def merge(self) -> None:
        """W ← W + s·A B; forward then skips the low-rank path. Not for an NF4 base."""
        self._check_mergeable(want_merged=False)
        # BEGIN SOLUTION add the update into W in place
        self.W += self.delta()
        # END SOLUTION
        self.merged = True

    def unmerge(self) -> None:
        """W ← W − s·A B: the base weight back (up to one rounding per element)."""
        self._check_mergeable(want_merged=True)
        # BEGIN SOLUTION subtract the update from W in place
        self.W -= self.delta()
        # END SOLUTION
        self.merged = False

    def _check_mergeable(self, want_merged: bool) -> None:
        if self.W is None:
            raise RuntimeError("an NF4 base cannot be merged (the sum would have to be re-quantised)")
        if self.merged != want_merged:
            raise RuntimeError(f"the LoRA weights are {'already' if self.merged else 'not'} merged")


# -- given: wrapping a GPT's projections ----------------------------------------------------------

TARGETS = ("self_attn.qkv", "self_attn.out_proj", "ff.linear1", "ff.linear2")


def apply_lora(model: Layer, r: int, alpha: float | None = None, rng: np.random.Generator | int | None = 0,
               quantize: bool = False, targets: tuple[str, ...] = TARGETS) -> list[str]:
    """Replace, in place, the projections ``blocks.<l>.<target>`` of a GPT (or of anything with a
    ``blocks`` list) by :class:`LoRALinear` wrappers of them. Returns the wrapped names."""
    rng = np.random.default_rng(rng)
    wrapped = []
    for i, block in enumerate(model.blocks):
        for target in targets:
            *path, attr = target.split(".")
            parent = block
            for step in path:
                parent = getattr(parent, step)
            base = getattr(parent, attr)
            if isinstance(base, LoRALinear):
                raise TypeError(f"blocks.{i}.{target} already has a LoRA adapter")
            setattr(parent, attr, LoRALinear(base, r, alpha, rng=rng, quantize=quantize))
            wrapped.append(f"blocks.{i}.{target}")
    return wrapped


def lora_layers(model: Layer) -> list[tuple[str, LoRALinear]]:
    return [(name, layer) for name, layer in model._named_sublayers() if isinstance(layer, LoRALinear)]


def lora_parameters(model: Layer) -> list[Parameter]:
    """The trainable parameters of a LoRA model: every adapter's A and B, in order."""
    return [p for _, layer in lora_layers(model) for p in (layer.A, layer.B)]


def merge_lora(model: Layer) -> None:
    for _, layer in lora_layers(model):
        layer.merge()


def unmerge_lora(model: Layer) -> None:
    for _, layer in lora_layers(model):
        layer.unmerge()


def frozen_weight_bytes(model: Layer) -> int:
    """Bytes of the adapters' frozen weight matrices as stored (float, or NF4 codes + scales)."""
    return sum(layer.W.nbytes if layer.W is not None else layer.W_nf4.nbytes for _, layer in lora_layers(model))
