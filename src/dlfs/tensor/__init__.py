"""Topic 01: arrays, shapes, strides and broadcasting (``dlfs.tensor.broadcasting``).

Public names are imported on first use: ``from dlfs.tensor import unbroadcast``.
"""

from dlfs.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "dlfs.tensor.broadcasting": [
        "contiguous_strides", "is_contiguous", "transpose_view", "broadcast_shapes", "broadcast_to",
        "unbroadcast", "batched_matmul_naive", "batched_matmul", "sliding_window_view",
    ],
})
