"""Tiny Shakespeare: a character-level corpus with a sorted vocabulary and a 90/10 split."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlfs.data.paths import resolve_data_dir
from dlfs.errors import DataError

TRAIN_FRACTION = 0.9
FILE_NAME = "input.txt"

# What a copy of Tiny Shakespeare must look like. The canonical file (checksum in
# dlfs.data.sources) is 1,115,394 characters; a copy whose checksum differs is accepted only if
# it is plausibly the same text: within about 10% of that length (Windows line endings add
# 40,000 characters), starting with the play's first words, and mostly letters (the canonical
# text is 76% letters).
CANONICAL_CHARS = 1_115_394
PLAUSIBLE_CHARS = (1_000_000, 1_250_000)
FIRST_WORDS = "First Citizen:"
MIN_LETTER_FRACTION = 0.6


def read_text(path: str | os.PathLike) -> str:
    """The file decoded as strict UTF-8; DataError names the file and the bad byte's offset."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror or exc}).") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 text (byte {exc.start:,}: {exc.reason}).") from None
    if not text:
        raise DataError(f"{path}: the file is empty.")
    return text


class CharVocab:
    """A character vocabulary: ids are positions in the sorted list of distinct characters."""

    def __init__(self, chars):
        self.chars: tuple[str, ...] = tuple(sorted(set(chars)))
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        codes = np.fromiter((ord(c) for c in self.chars), dtype=np.int64, count=len(self.chars))
        self._lut = np.full(int(codes.max()) + 1 if codes.size else 1, -1, dtype=np.int64)
        self._lut[codes] = np.arange(codes.size)
        self._codes = codes

    @classmethod
    def from_text(cls, text: str) -> "CharVocab":
        return cls(set(text))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """str -> (len(text),) int64 ids (vectorised through a code-point lookup table)."""
        cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        ids = np.full(cps.shape, -1, dtype=np.int64)
        inside = cps < self._lut.size
        ids[inside] = self._lut[cps[inside]]
        if (ids < 0).any():
            bad = text[int(np.argmax(ids < 0))]
            raise ValueError(f"character {bad!r} is not in the vocabulary")
        return ids

    def decode(self, ids) -> str:
        """Sequence of ids -> str."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.chars)):
            raise ValueError(f"ids must be in [0, {len(self.chars)}), got {ids.min()}..{ids.max()}")
        return self._codes[ids].astype(np.uint32).tobytes().decode("utf-32-le")


@dataclass
class TextDataset:
    """A character corpus.

    text: the whole corpus; vocab: sorted characters (65 for Tiny Shakespeare)
    train, val: (T,) int64 ids, the first 90% and the last 10% of the text
    """

    name: str
    text: str
    vocab: CharVocab
    train: np.ndarray
    val: np.ndarray
    source: Path | None = None

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> np.ndarray:
        return self.vocab.encode(text)

    def decode(self, ids) -> str:
        return self.vocab.decode(ids)

    def __repr__(self) -> str:
        return (f"TextDataset({self.name!r}, chars={len(self.text):,}, vocab={self.vocab_size}, "
                f"train={self.train.size:,}, val={self.val.size:,})")


def split_ids(ids: np.ndarray, train_fraction: float = TRAIN_FRACTION
              ) -> tuple[np.ndarray, np.ndarray]:
    """First ``int(train_fraction * len)`` ids for training, the rest for validation."""
    n = int(train_fraction * len(ids))
    return ids[:n], ids[n:]


def text_dataset(text: str, name: str = "text", source: Path | None = None,
                 train_fraction: float = TRAIN_FRACTION) -> TextDataset:
    vocab = CharVocab.from_text(text)
    train, val = split_ids(vocab.encode(text), train_fraction)
    return TextDataset(name, text, vocab, train, val, source)


def load_shakespeare(data_dir: str | os.PathLike | None = None) -> TextDataset:
    """Tiny Shakespeare from ``<data_dir>/tinyshakespeare/input.txt``: 1,115,394 characters,
    65-character vocabulary, train 1,003,854 / val 111,540 ids (int64). A file that is not
    plausibly Tiny Shakespeare (see ``check_plausible``) raises DataError."""
    from dlfs.data.store import locate_or_raise

    folder = locate_or_raise("shakespeare", resolve_data_dir(data_dir))
    path = folder / FILE_NAME
    text = read_text(path)
    check_plausible(text, path)
    return text_dataset(text, "shakespeare", path)


def check_plausible(text: str, source: str | os.PathLike) -> None:
    """DataError unless ``text`` can be Tiny Shakespeare: PLAUSIBLE_CHARS characters (the
    canonical file has 1,115,394), starting with FIRST_WORDS (after a BOM or blank lines), at
    least MIN_LETTER_FRACTION letters."""
    lo, hi = PLAUSIBLE_CHARS
    what = (f"Tiny Shakespeare is {CANONICAL_CHARS:,} characters starting with "
            f"{FIRST_WORDS!r}; a copy must have {lo:,}-{hi:,}")
    if not lo <= len(text) <= hi:
        raise DataError(f"{source}: {len(text):,} characters, so it is not Tiny Shakespeare "
                        f"({what}). Replace it with the real file (`dlfs data get shakespeare`).")
    if not text.lstrip("\ufeff \t\r\n").startswith(FIRST_WORDS):
        start = text.lstrip("\ufeff \t\r\n")[:30]
        raise DataError(f"{source}: it starts with {start!r}, so it is not Tiny Shakespeare "
                        f"({what}). Replace it with the real file (`dlfs data get shakespeare`).")
    letters = sum(c.isalpha() for c in text) / len(text)
    if letters < MIN_LETTER_FRACTION:
        raise DataError(f"{source}: only {letters:.0%} of it are letters (Tiny Shakespeare: 76%), "
                        "so it is not Tiny Shakespeare. Replace it with the real file "
                        "(`dlfs data get shakespeare`).")


def validate_folder(folder: str | os.PathLike) -> str:
    """Check that ``folder/input.txt`` is plausibly Tiny Shakespeare (DataError if not);
    returns a one-line summary."""
    path = Path(folder) / FILE_NAME
    text = read_text(path)
    check_plausible(text, path)
    return f"{len(text):,} characters, {len(set(text))} distinct"
