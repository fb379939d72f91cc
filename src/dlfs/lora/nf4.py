"""Topic 35 — NF4: the 4-bit NormalFloat code of QLoRA (Dettmers et al. 2023), block-wise with
absmax scales, and double quantisation of the scales.

**The code book.** Trained weights are roughly normal. Scaled by the absmax of its block, a
weight lies in [−1, 1]; 4 bits give 16 levels, and NF4 places them at quantiles of N(0, 1) so
that each level is used about equally often. To make 0 exactly representable (padding, pruned
weights, the zero-initialised B of LoRA all need it) the halves are asymmetric:

    offset = ½ · ((1 − 1/(2·15)) + (1 − 1/(2·16)))                  (= 0.9677083…)
    positive: Φ⁻¹(p) for the 9 points p = linspace(offset, ½, 9) without the last  → 8 values
    negative: −Φ⁻¹(p) for the 8 points p = linspace(offset, ½, 8) without the last → 7 values
    code book = sorted(negative ∪ {0} ∪ positive) / max                            → 16 values

(Φ⁻¹ the standard normal quantile, ``statistics.NormalDist().inv_cdf``). The ends are exactly
−1 and +1, and 0 is the eighth value (index 7).

**Block-wise quantisation** (``block_size`` = 64): the weight is flattened in its stored
layout (row-major; a ``Linear`` W (in, out) so blocks run along the outputs of one input row),
zero-padded to a multiple of 64 and cut into blocks (``dlfs.quant.quantize.blocked``). Each
block b has the scale c_b = max |w| over the block; each weight gets the index of the code
nearest to w / c_b. Two 4-bit indices are packed per byte. Dequantised: ŵ = code[index] · c_b.

**Double quantisation** of the scales: the float32 scales cost 32/64 = 0.5 bits per weight.
Their mean m is subtracted (they are all positive, so centring them puts the symmetric int8
range to use) and the centred scales are quantised to int8, symmetric, in blocks of 256
(``dlfs.quant``'s ``QScheme(8, axis=0, group_size=256)``: one float32 scale per 256 of them;
the paper uses 8-bit floats here). Bits per weight:

    without: 4 + 32/64 = 4.5          with: 4 + 8/64 + 32/(64·256) = 4.127  (+ 32 bits for m)
"""

from __future__ import annotations

from statistics import NormalDist
from typing import NamedTuple

import numpy as np

from dlfs.quant.quantize import (
    QParams,
    QScheme,
    blocked,
    compute_qparams,
    dequantize,
    quantize,
)

BLOCK_SIZE = 64
SCALE_BLOCK_SIZE = 256
NF4_PUBLISHED = (-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
                 -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
                 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
                 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0)
"""The 16 values as published with QLoRA (bitsandbytes), float32: used only to check the derivation."""


def nf4_code_book() -> np.ndarray:
    """The 16 NF4 levels, derived from normal quantiles (see the module docstring): (16,) float64,
    ascending, from −1 to 1, with 0 at index 7."""
    inv_cdf = NormalDist().inv_cdf
    # TODO: 8 positive quantiles and 7 negative ones from the same offset, plus an exact 0;
    #       sort and divide by the largest.
    # BEGIN SOLUTION the asymmetric halves of normal quantiles from the offset, zero, normalised by the maximum
    offset = 0.5 * ((1 - 1 / (2 * 15)) + (1 - 1 / (2 * 16)))
    positive = [inv_cdf(p) for p in np.linspace(offset, 0.5, 9)[:-1]]
    negative = [-inv_cdf(p) for p in np.linspace(offset, 0.5, 8)[:-1]]
    values = np.sort(np.array(positive + [0.0] + negative))
    return values / values.max()
    # END SOLUTION


class NF4Tensor(NamedTuple):
    """A weight stored in NF4. packed: (n/2,) uint8, two 4-bit code indices per byte (the first in
    the high nibble); shape, dtype: the original's; block_size. Scales, either plain —
    absmax: (n_blocks,) float32 — or double-quantised — scale_codes: (n_blocks,) int8,
    scale_params: their ``QParams`` (one float32 scale per 256), scale_mean: float32."""
    packed: np.ndarray
    shape: tuple
    dtype: np.dtype
    block_size: int
    absmax: np.ndarray | None
    scale_codes: np.ndarray | None
    scale_params: QParams | None
    scale_mean: np.ndarray | None

    @property
    def nbytes(self) -> int:
        """Bytes actually stored: codes, plus the scales (plain, or codes + second-level scales + mean)."""
        if self.absmax is not None:
            return self.packed.nbytes + self.absmax.nbytes
        return self.packed.nbytes + self.scale_codes.nbytes + self.scale_params.scale.nbytes + self.scale_mean.nbytes


def _pad(x: np.ndarray, multiple: int) -> np.ndarray:
    return np.concatenate([x, np.zeros((-x.size) % multiple, dtype=x.dtype)])


def pack_nibbles(codes: np.ndarray) -> np.ndarray:
    """(n,) integers in [0, 16), n even -> (n/2,) uint8, codes[2i] in the high nibble (given)."""
    codes = codes.astype(np.uint8)
    return (codes[0::2] << 4) | codes[1::2]


def unpack_nibbles(packed: np.ndarray) -> np.ndarray:
    """The inverse of :func:`pack_nibbles`: (n/2,) uint8 -> (n,) uint8 (given)."""
    out = np.empty(2 * packed.size, dtype=np.uint8)
    out[0::2], out[1::2] = packed >> 4, packed & 0x0F
    return out


def double_quantize(absmax: np.ndarray, block_size: int = SCALE_BLOCK_SIZE
                    ) -> tuple[np.ndarray, QParams, np.ndarray]:
    """absmax: (n_blocks,) float32 -> (int8 codes (n_blocks,), their QParams, the mean m (float32)):
    the scales minus their mean, int8 symmetric in blocks of ``block_size`` (zero-padded)."""
    absmax = np.asarray(absmax, dtype=np.float32)
    # BEGIN SOLUTION subtract the mean, pad to whole blocks, int8 symmetric per block with dlfs.quant
    mean = absmax.mean(dtype=np.float64).astype(np.float32)
    centred = _pad(absmax - mean, block_size)
    params = compute_qparams(centred, QScheme(8, symmetric=True, axis=0, group_size=block_size))
    return quantize(centred, params)[:absmax.size], params, mean
    # END SOLUTION


def double_dequantize(codes: np.ndarray, params: QParams, mean: np.ndarray) -> np.ndarray:
    """The scales back from :func:`double_quantize`: (n_blocks,) float32."""
    # BEGIN SOLUTION dequantise the padded codes with dlfs.quant, drop the padding, add the mean
    block = params.scheme.group_size
    return (dequantize(_pad(codes, block), params)[:codes.size] + mean).astype(np.float32)
    # END SOLUTION


def quantize_nf4(w: np.ndarray, block_size: int = BLOCK_SIZE, double_quant: bool = True) -> NF4Tensor:
    """w: any shape -> :class:`NF4Tensor`: absmax scale per block of ``block_size`` consecutive
    elements, the index of the nearest NF4 level per element, optionally double-quantised scales."""
    w = np.asarray(w)
    code = nf4_code_book()
    xb, _ = blocked(_pad(w.reshape(-1), block_size), QScheme(4, axis=0, group_size=block_size))
    # TODO: the absmax of each block (a block of zeros keeps scale 0 and codes the 0 level);
    #       the nearest level by searching the midpoints between levels; pack; the scales.
    # BEGIN SOLUTION absmax per block, normalise, nearest level via the midpoints, pack, (double-)quantise the scales
    absmax = np.abs(xb).max(axis=1).astype(np.float32)
    normalised = xb / np.where(absmax > 0, absmax, 1)[:, None]
    midpoints = (code[1:] + code[:-1]) / 2
    indices = np.searchsorted(midpoints, normalised.reshape(-1))
    packed = pack_nibbles(indices)
    if not double_quant:
        return NF4Tensor(packed, w.shape, w.dtype, block_size, absmax, None, None, None)
    codes, params, mean = double_quantize(absmax)
    return NF4Tensor(packed, w.shape, w.dtype, block_size, None, codes, params, mean)
    # END SOLUTION


def dequantize_nf4(t: NF4Tensor) -> np.ndarray:
    """The weight back from its NF4 codes and scales: ``t.shape``, ``t.dtype``."""
    code = nf4_code_book().astype(t.dtype)
    # BEGIN SOLUTION the scales (double-dequantised if needed), code[index] · scale per block, unpad, reshape
    scales = t.absmax if t.absmax is not None else double_dequantize(t.scale_codes, t.scale_params, t.scale_mean)
    values = code[unpack_nibbles(t.packed)].reshape(-1, t.block_size) * scales.astype(t.dtype)[:, None]
    return values.reshape(-1)[:int(np.prod(t.shape))].reshape(t.shape)
    # END SOLUTION


def nf4_bits_per_param(block_size: int = BLOCK_SIZE, double_quant: bool = True,
                       scale_block_size: int = SCALE_BLOCK_SIZE) -> float:
    """The storage formula: 4 bits of code + the scales' share per weight (the mean of double
    quantisation, 32 bits per tensor, is left out)."""
    # BEGIN SOLUTION 4 + 32/block without double quantisation; 4 + 8/block + 32/(block·scale_block) with it
    if not double_quant:
        return 4 + 32 / block_size
    return 4 + 8 / block_size + 32 / (block_size * scale_block_size)
    # END SOLUTION
