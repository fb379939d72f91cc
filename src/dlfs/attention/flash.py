"""Topic 32 — tiled attention with the online softmax (FlashAttention-2 style), forward and backward.

The attention of Topic 25 (``dlfs.attention.scaled_dot_product``) builds the whole score
matrix ``(..., T, S)`` and keeps the weights ``p`` for the backward pass: memory O(T·S).
Here the queries are cut into tiles of ``block_q`` rows and the keys into tiles of
``block_k`` columns; only one ``(..., block_q, block_k)`` tile of scores exists at a time.

**Online softmax.** For one query row, keys arriving tile by tile, keep three numbers:
the running maximum ``m``, the running sum ``l = Σ exp(score − m)`` and the unnormalised
output ``acc = Σ exp(score − m) v``. A new tile with scores ``s`` (its maximum ``m̃``):

    m_new = max(m, m̃)
    α     = exp(m − m_new)                       rescales what was summed under the old max
    l     = α·l + Σ_j exp(s_j − m_new)
    acc   = α·acc + Σ_j exp(s_j − m_new) v_j
    (after the last tile)  out = acc / l,   lse = m + log l

FlashAttention-2 divides by ``l`` once at the end, not after every tile, and saves only
``lse`` (the log-sum-exp of each row, (..., T)) for the backward.

**Backward.** With ``D_t = Σ_c dout_tc · out_tc`` (= Σ_s p_ts dp_ts), each tile's weights are
recomputed exactly from the saved ``lse``: ``p = exp(s − lse)``; then, tile by tile,

    dv += pᵀ dout;   dp = dout vᵀ;   ds = p ⊙ (dp − D);   dq += ds k·scale;   dk += dsᵀ q·scale

Shapes: q (..., T, d), k (..., S, d), v (..., S, d_v), out (..., T, d_v); usually (B, H, ·, ·).

Masks follow Topic 25: ``mask`` is boolean, broadcastable to (..., T, S), True = attend (a
padding mask from ``attention_mask(T, S, key_padding_mask=...)`` is (B, 1, T, S), a
broadcast view, no T·S memory); ``causal=True`` adds the causal pattern of Topic 25 (query t
sees keys s ≤ t + S − T) computed tile by tile, and tiles that lie entirely above the
diagonal are skipped, forward and backward. A query whose keys are all masked gets 0 and
passes no gradient (its ``lse`` is stored as +inf, so every recomputed weight is 0).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from dlfs.attention.scaled_dot_product import check_qkv, default_scale

BLOCK = 128


class FlashCache(NamedTuple):
    """What :func:`flash_attention_forward` keeps: O(T·d) arrays only, never the (T, S) weights.

    q: (..., T, d); k: (..., S, d); v: (..., S, d_v); out: (..., T, d_v); lse: (..., T) the
    log-sum-exp of each row's allowed scores (+inf for a fully masked row); mask: the boolean
    mask given (or None); causal, scale, block_q, block_k as given.
    """
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    out: np.ndarray
    lse: np.ndarray
    mask: np.ndarray | None
    causal: bool
    scale: float
    block_q: int
    block_k: int


def causal_key_end(i1: int, T: int, S: int) -> int:
    """The end (exclusive) of the keys that queries [.., i1) may see under the causal mask:
    query t sees s ≤ t + S − T, so the last query of the tile, i1 − 1, sees up to i1 − 1 + S − T."""
    return max(0, min(S, i1 + S - T))


def tile_mask(mask: np.ndarray | None, causal: bool, lead: tuple, T: int, S: int,
              i0: int, i1: int, j0: int, j1: int) -> np.ndarray | None:
    """The boolean "attend" mask of the score tile [i0:i1, j0:j1]: (..., i1−i0, j1−j0) or a
    shape that broadcasts to it, or None when every entry of the tile is allowed."""
    allowed = None
    if mask is not None:
        allowed = np.broadcast_to(mask, lead + (T, S))[..., i0:i1, j0:j1]
    if causal and j1 - 1 > i0 + S - T:                    # some entry lies above the diagonal
        rows = np.arange(i0, i1)[:, None] + (S - T)
        causal_tile = np.arange(j0, j1)[None, :] <= rows
        allowed = causal_tile if allowed is None else allowed & causal_tile
    return allowed


def _check_blocks(block_q: int, block_k: int) -> tuple[int, int]:
    block_q, block_k = int(block_q), int(block_k)
    if block_q < 1 or block_k < 1:
        raise ValueError(f"tile sizes must be positive, got block_q={block_q}, block_k={block_k}")
    return block_q, block_k


def flash_attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None,
                            causal: bool = False, scale: float | None = None,
                            block_q: int = BLOCK, block_k: int = BLOCK) -> tuple[np.ndarray, FlashCache]:
    """Tiled attention: the same output as ``attention_forward(q, k, v, mask & causal, scale)``.

    q: (..., T, d); k: (..., S, d); v: (..., S, d_v); mask: boolean broadcastable to
    (..., T, S), True = attend, or None; causal: add the causal mask (fully masked tiles are
    skipped); block_q, block_k: tile sizes. Returns ``(out (..., T, d_v), FlashCache)``; the
    largest temporary is one (..., block_q, block_k) tile.
    """
    check_qkv(q, k, v, mask)
    block_q, block_k = _check_blocks(block_q, block_k)
    scale = default_scale(q, scale)
    lead, T, S = q.shape[:-2], q.shape[-2], k.shape[-2]
    dtype = np.result_type(q, k, v)
    out = np.zeros(lead + (T, v.shape[-1]), dtype=dtype)
    lse = np.full(lead + (T,), np.inf, dtype=dtype)
    for i0 in range(0, T, block_q):
        i1 = min(T, i0 + block_q)
        j_end = causal_key_end(i1, T, S) if causal else S
        qi = q[..., i0:i1, :] * scale
        # TODO: the three running quantities of the online softmax for this query tile, then a
        #       loop over the key tiles [j0, j1) up to j_end: scores, the tile's mask (tile_mask),
        #       the new row max, the rescale factor α, l and acc. Careful with rows that have
        #       seen only masked keys so far (max −inf: exp(−inf − (−inf)) is NaN).
        #       At the end: out = acc / l and lse = m + log l where l > 0; 0 and +inf elsewhere.
        # BEGIN SOLUTION online softmax over the key tiles: running max m, sum l, unnormalised acc; out = acc/l, lse = m + log l
        m = np.full(lead + (i1 - i0,), -np.inf, dtype=dtype)
        l = np.zeros_like(m)
        acc = np.zeros(lead + (i1 - i0, v.shape[-1]), dtype=dtype)
        for j0 in range(0, j_end, block_k):
            j1 = min(j_end, j0 + block_k)
            s = qi @ k[..., j0:j1, :].swapaxes(-1, -2)                # (..., bq, bk)
            allowed = tile_mask(mask, causal, lead, T, S, i0, i1, j0, j1)
            if allowed is not None:
                s = np.where(allowed, s, -np.inf)
            m_new = np.maximum(m, s.max(axis=-1))
            m_safe = np.where(np.isfinite(m_new), m_new, 0.0)         # rows with nothing allowed yet
            p = np.exp(s - m_safe[..., None])
            alpha = np.exp(m - m_safe)
            l *= alpha
            l += p.sum(axis=-1)
            acc *= alpha[..., None]
            acc += p @ v[..., j0:j1, :]
            m = m_new
        seen = l > 0
        out[..., i0:i1, :] = np.where(seen[..., None], acc / np.where(seen, l, 1.0)[..., None], 0.0)
        lse[..., i0:i1] = np.where(seen, m + np.log(np.where(seen, l, 1.0)), np.inf)
        # END SOLUTION
    return out, FlashCache(q, k, v, out, lse, mask, bool(causal), scale, block_q, block_k)


def flash_attention_backward(dout: np.ndarray, cache: FlashCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The gradients of :func:`flash_attention_forward` given dout: (..., T, d_v), computed tile by
    tile from the saved log-sum-exp (the weights are recomputed, never stored).
    Returns ``(dq, dk, dv)`` shaped like q, k, v."""
    q, k, v, out, lse, mask, causal, scale, block_q, block_k = cache
    lead, T, S = q.shape[:-2], q.shape[-2], k.shape[-2]
    dq = np.zeros_like(q)
    dk = np.zeros_like(k)
    dv = np.zeros_like(v)
    # TODO: D = Σ_c dout·out per row (it equals Σ_s p·dp); then for every query tile and every key
    #       tile it may see: recompute s, p = exp(s − lse) (0 where masked), and accumulate dv, dq, dk.
    # BEGIN SOLUTION D = rowsum(dout ⊙ out); per tile: p = exp(s − lse), dv += pᵀ dout, ds = p ⊙ (dout vᵀ − D), dq += ds k·scale, dk += dsᵀ q·scale
    D = np.einsum("...tc,...tc->...t", dout, out)
    for i0 in range(0, T, block_q):
        i1 = min(T, i0 + block_q)
        j_end = causal_key_end(i1, T, S) if causal else S
        qi, doi = q[..., i0:i1, :], dout[..., i0:i1, :]
        lse_i, D_i = lse[..., i0:i1, None], D[..., i0:i1, None]
        for j0 in range(0, j_end, block_k):
            j1 = min(j_end, j0 + block_k)
            kj, vj = k[..., j0:j1, :], v[..., j0:j1, :]
            s = (qi * scale) @ kj.swapaxes(-1, -2)
            allowed = tile_mask(mask, causal, lead, T, S, i0, i1, j0, j1)
            if allowed is not None:
                s = np.where(allowed, s, -np.inf)
            p = np.exp(s - lse_i)                                   # lse = +inf: a fully masked row, p = 0
            dv[..., j0:j1, :] += p.swapaxes(-1, -2) @ doi
            ds = doi @ vj.swapaxes(-1, -2)
            ds -= D_i
            ds *= p
            dq[..., i0:i1, :] += (ds @ kj) * scale
            dk[..., j0:j1, :] += (ds.swapaxes(-1, -2) @ qi) * scale
    # END SOLUTION
    return dq, dk, dv
