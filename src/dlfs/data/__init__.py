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

from dlfs.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "dlfs.data.paths": ["resolve_data_dir", "cache_root"],
    "dlfs.data.mnist": ["load_mnist"],
    "dlfs.data.cifar": ["load_cifar10"],
    "dlfs.data.text": ["load_shakespeare", "TextDataset", "CharVocab"],
    "dlfs.data.word2vec": ["load_word2vec"],
    "dlfs.data.common": ["ImageDataset", "channel_stats", "normalize"],
    "dlfs.data.batching": ["BatchIterator", "random_crop", "random_flip", "augment", "sample_blocks"],
    "dlfs.data.store": ["check", "fetch"],
    "dlfs.data.checksums": ["describe_copy"],
    "dlfs.data.sources": ["DATASETS"],
})
