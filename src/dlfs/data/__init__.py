"""Datasets for the milestones and topics: MNIST, CIFAR-10, Tiny Shakespeare, and the word2vec
corpora and evaluation sets.

Loaders (NumPy arrays, standard splits)::

    load_mnist(data_dir=None, *, normalize=False, cache=True) -> ImageDataset
    load_cifar10(data_dir=None, *, normalize=False) -> ImageDataset
    load_shakespeare(data_dir=None) -> TextDataset
    load_word2vec(data_dir=None) -> Word2VecData   (.corpus("lee"), .wordsim353(), ...)

Batching and augmentation::

    BatchIterator(*arrays, batch_size, shuffle=False, seed=None, drop_last=False, transform=None)
    random_crop(x, padding=4, rng=None), random_flip(x, p=0.5, rng=None), augment(x, rng)
    sample_blocks(ids, block_size, batch_size, rng=None) -> (x, y)

Whether a copy is canonical: ``describe_copy(name, folder) -> str``, one line from the published
checksums (computed once per file version).

Where data lives: ``resolve_data_dir(override)`` (``--data-dir`` > ``$DLFS_DATA_DIR`` > the cache
dir). See docs/data.md.

Names are imported on first use, so ``import dlfs.data`` (and the ``dlfs data`` command) stays
cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "resolve_data_dir": "dlfs.data.paths",
    "cache_root": "dlfs.data.paths",
    "load_mnist": "dlfs.data.mnist",
    "load_cifar10": "dlfs.data.cifar",
    "load_shakespeare": "dlfs.data.text",
    "load_word2vec": "dlfs.data.word2vec",
    "ImageDataset": "dlfs.data.common",
    "channel_stats": "dlfs.data.common",
    "normalize": "dlfs.data.common",
    "TextDataset": "dlfs.data.text",
    "CharVocab": "dlfs.data.text",
    "BatchIterator": "dlfs.data.batching",
    "random_crop": "dlfs.data.batching",
    "random_flip": "dlfs.data.batching",
    "augment": "dlfs.data.batching",
    "sample_blocks": "dlfs.data.batching",
    "check": "dlfs.data.store",
    "describe_copy": "dlfs.data.checksums",
    "fetch": "dlfs.data.store",
    "DATASETS": "dlfs.data.sources",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dlfs.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
