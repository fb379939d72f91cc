"""Topic 21 — variable-length batches: lengths, masks, reversal within each sequence, pooling.

Sequences of different lengths are padded to one length T and batched: ``x: (N, T, D)``, with
``lengths: (N,)`` saying how many steps of each row are real (1 ≤ lengths[i] ≤ T). The steps
``t ≥ lengths[i]`` are padding: whatever they hold must change neither the results nor the
gradients. This module holds the pieces that need no recurrent layer:

* :func:`length_mask`: ``lengths -> (N, T)`` boolean, **True = real token** (the opposite of
  a *key padding* mask, True = padding, as in ``torch.nn.MultiheadAttention`` and
  ``dlfs.attention``); :func:`lengths_from_mask` goes back and refuses masks with holes;
* :func:`reverse_padded`: each sequence reversed within its own length, padding left in
  place — what the reverse direction of a bidirectional RNN reads. A permutation that is its
  own inverse, so it is also its own backward;
* pooling a sequence of states into one vector: :func:`masked_mean` (the mean over the real
  steps) and :func:`last_state` (the state at each sequence's last real step), with their
  backward passes.

Everything keeps the input's floating dtype.
"""

from __future__ import annotations

import numpy as np

__all__ = ["check_lengths", "length_mask", "lengths_from_mask", "reverse_padded", "reverse_index",
           "masked_mean", "masked_mean_backward", "last_state", "last_state_backward"]


def check_lengths(lengths, N: int | None, T: int) -> np.ndarray:
    """``lengths`` as a (N,) int64 array after checking it: integers with 1 ≤ lengths[i] ≤ T
    (as ``torch.nn.utils.rnn.pack_padded_sequence``: an empty sequence has no state to
    return). N=None accepts any number of sequences. Raises ValueError saying what is wrong."""
    arr = np.asarray(lengths)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"lengths must be integers, got dtype {arr.dtype}")
    if arr.ndim != 1 or (N is not None and arr.shape != (N,)):
        raise ValueError(f"lengths must have shape (N,){f' = ({N},)' if N is not None else ''}, one per "
                         f"sequence, got {arr.shape}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 1 or arr.max() > T):
        bad = int(np.flatnonzero((arr < 1) | (arr > T))[0])
        raise ValueError(f"lengths must be between 1 and T = {T}; lengths[{bad}] = {arr[bad]}")
    return arr


def length_mask(lengths, T: int) -> np.ndarray:
    """lengths: (N,) -> mask: (N, T) bool, ``mask[i, t] = t < lengths[i]`` (True = real token)."""
    lengths = check_lengths(lengths, None, T)
    # BEGIN SOLUTION compare the step index 0..T−1 with each length (broadcast (1, T) against (N, 1))
    return np.arange(T)[None, :] < lengths[:, None]
    # END SOLUTION


def lengths_from_mask(mask: np.ndarray) -> np.ndarray:
    """mask: (N, T) bool, True = real token, each row a run of True followed by False ->
    lengths (N,) int64. A row with a hole (False then True) or with no True is an error."""
    mask = np.asarray(mask)
    if mask.dtype != np.bool_ or mask.ndim != 2:
        raise ValueError(f"mask must be boolean (N, T), True = real token, got {mask.dtype} {mask.shape}")
    lengths = mask.sum(axis=1).astype(np.int64)
    prefix = np.arange(mask.shape[1])[None, :] < lengths[:, None]
    if not np.array_equal(prefix, mask):
        bad = int(np.flatnonzero((prefix != mask).any(axis=1))[0])
        raise ValueError(f"mask row {bad} is not a run of real tokens followed by padding: {mask[bad].astype(int)}")
    return check_lengths(lengths, mask.shape[0], mask.shape[1])


def reverse_index(lengths: np.ndarray, T: int) -> np.ndarray:
    """(N, T) int64 source index of :func:`reverse_padded`: ``lengths[i] − 1 − t`` for the real
    steps t < lengths[i], and t itself for the padded ones."""
    lengths = check_lengths(lengths, None, T)
    # BEGIN SOLUTION t' = length − 1 − t where t < length, t elsewhere (np.where over an (N, T) grid)
    t = np.arange(T)[None, :]
    return np.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)
    # END SOLUTION


def reverse_padded(x: np.ndarray, lengths) -> np.ndarray:
    """Reverse each sequence within its own length. x: (N, T, ...) -> (N, T, ...) with
    ``out[i, t] = x[i, lengths[i] − 1 − t]`` for t < lengths[i]; padded steps stay where they are.

    It is its own inverse (reversing twice gives x back), and since it only moves entries, its
    backward is the same function applied to the gradient.
    """
    if x.ndim < 2:
        raise ValueError(f"reverse_padded expects x of shape (N, T, ...), got {x.shape}")
    N, T = x.shape[:2]
    lengths = check_lengths(lengths, N, T)
    # BEGIN SOLUTION gather x[i, reverse_index[i, t]] for every (i, t) with one fancy index
    return x[np.arange(N)[:, None], reverse_index(lengths, T)]
    # END SOLUTION


def _check_mask(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if x.ndim != 3 or mask.dtype != np.bool_ or mask.shape != x.shape[:2]:
        raise ValueError(f"masked pooling expects x (N, T, H) and a boolean mask (N, T), True = real "
                         f"token; got x {x.shape} and mask {mask.dtype} {mask.shape}")
    if not mask.any(axis=1).all():
        raise ValueError(f"every row of the mask needs a real token; row {int(np.argmin(mask.any(axis=1)))} has none")
    return mask


def masked_mean(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The mean over the real steps only. x: (N, T, H), mask: (N, T) bool (True = real token;
    any pattern, at least one True per row) -> (N, H):
    ``y[i] = Σ_t mask[i, t] x[i, t] / Σ_t mask[i, t]``. Padded steps do not count, whatever they hold."""
    mask = _check_mask(x, mask)
    # TODO: multiply by the mask (padded steps may hold anything, even NaN: use np.where),
    #       then divide by the number of real steps, not by T.
    # BEGIN SOLUTION sum of the real steps (np.where on the mask) divided by each row's count of real steps
    count = mask.sum(axis=1, keepdims=True).astype(x.dtype)              # (N, 1)
    return np.where(mask[..., None], x, 0).sum(axis=1) / count
    # END SOLUTION


def masked_mean_backward(dy: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """dy: (N, H) -> dx: (N, T, H) with ``dx[i, t] = mask[i, t] dy[i] / Σ_t mask[i, t]``:
    each real step gets an equal share, padded steps get exactly 0."""
    mask = np.asarray(mask)
    # BEGIN SOLUTION spread dy / count over the real steps; zeros on the padded ones
    count = mask.sum(axis=1, keepdims=True).astype(dy.dtype)
    return mask[..., None] * (dy / count)[:, None, :]
    # END SOLUTION


def last_state(out: np.ndarray, lengths) -> np.ndarray:
    """The output at each sequence's last real step. out: (N, T, H), lengths: (N,) -> (N, H),
    ``y[i] = out[i, lengths[i] − 1]`` (for a forward RNN: the state after its last real token)."""
    if out.ndim != 3:
        raise ValueError(f"last_state expects out of shape (N, T, H), got {out.shape}")
    N, T, _ = out.shape
    lengths = check_lengths(lengths, N, T)
    # BEGIN SOLUTION one fancy index: row i, step lengths[i] − 1
    return out[np.arange(N), lengths - 1]
    # END SOLUTION


def last_state_backward(dy: np.ndarray, lengths, T: int) -> np.ndarray:
    """dy: (N, H) -> dout: (N, T, H), zero except ``dout[i, lengths[i] − 1] = dy[i]``."""
    N, H = dy.shape
    lengths = check_lengths(lengths, N, T)
    # BEGIN SOLUTION zeros (N, T, H) in dy's dtype, then place dy[i] at step lengths[i] − 1
    dout = np.zeros((N, T, H), dtype=dy.dtype)
    dout[np.arange(N), lengths - 1] = dy
    return dout
    # END SOLUTION
