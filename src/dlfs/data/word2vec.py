"""The word2vec data (Topic 22): two small corpora and three evaluation sets, gensim's test data.

Files, in ``<data dir>/word2vec/`` (sources and checksums in ``dlfs.data.sources``):

    lee_background.cor      the Lee news corpus: 300 documents of raw English text, one a line
    head500.noblanks.cor    250 lines of lower-cased, Porter-stemmed Wikipedia text (tokens
                            separated by spaces: 331,339 tokens)
    wordsim353.tsv          WordSim353: word1<TAB>word2<TAB>human score (0–10), # comments
    simlex999.txt           SimLex-999, the same format
    questions-words.txt     Mikolov's analogy questions: ": section" lines, then "a b c d"

``load_word2vec(data_dir)`` finds and checks the folder; its ``corpus(name)`` returns the
sentences as lists of tokens (``lee``: each document lower-cased and split into words by
:func:`tokenize`; ``head500``: each line split on whitespace, as gensim's ``LineSentence``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlfs.data.paths import resolve_data_dir
from dlfs.data.text import read_text
from dlfs.errors import DataError

FOLDER = "word2vec"
CORPORA = {"lee": "lee_background.cor", "head500": "head500.noblanks.cor"}
WORDSIM353 = "wordsim353.tsv"
SIMLEX999 = "simlex999.txt"
ANALOGIES = "questions-words.txt"
FILES = (CORPORA["head500"], CORPORA["lee"], ANALOGIES, SIMLEX999, WORDSIM353)

_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")      # letters, with inner apostrophes


def tokenize(text: str) -> list[str]:
    """Lower-cased words of ``text``: runs of letters, keeping inner apostrophes ("don't");
    digits and punctuation separate words and are dropped."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class WordPairs:
    """A similarity benchmark: ``pairs`` of lower-cased words and their human ``scores`` (P,)."""

    name: str
    pairs: tuple[tuple[str, str], ...]
    scores: np.ndarray


@dataclass(frozen=True)
class Analogies:
    """Analogy questions "a is to b as c is to d": lower-cased (a, b, c, d) and each one's section."""

    questions: tuple[tuple[str, str, str, str], ...]
    sections: tuple[str, ...]


def read_word_pairs(path: str | os.PathLike, name: str | None = None) -> WordPairs:
    """Read a ``word1<TAB>word2<TAB>score`` file (``wordsim353.tsv``, ``simlex999.txt``);
    lines starting with ``#`` are comments. DataError names the first bad line."""
    path = Path(path)
    pairs, scores = [], []
    for n, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        try:
            if len(parts) != 3 or not parts[0].strip() or not parts[1].strip():
                raise ValueError
            score = float(parts[2])
        except ValueError:
            raise DataError(f"{path}:{n}: expected 'word1<TAB>word2<TAB>score', got {line[:60]!r}") from None
        pairs.append((parts[0].strip().lower(), parts[1].strip().lower()))
        scores.append(score)
    if not pairs:
        raise DataError(f"{path}: no word pairs in it.")
    return WordPairs(name or path.stem, tuple(pairs), np.asarray(scores, dtype=np.float64))


def read_analogies(path: str | os.PathLike) -> Analogies:
    """Read ``questions-words.txt``: ``: section`` lines, each followed by lines of four words."""
    path = Path(path)
    questions, sections = [], []
    section = None
    for n, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith(":"):
            section = line[1:].strip()
            continue
        words = line.lower().split()
        if len(words) != 4 or section is None:
            raise DataError(f"{path}:{n}: expected four words after a ': section' line, got {line[:60]!r}")
        questions.append(tuple(words))
        sections.append(section)
    if not questions:
        raise DataError(f"{path}: no analogy questions in it.")
    return Analogies(tuple(questions), tuple(sections))


def read_corpus(path: str | os.PathLike, *, pretokenized: bool) -> list[list[str]]:
    """The non-empty lines of a corpus file as lists of tokens: split on whitespace when
    ``pretokenized``, else :func:`tokenize`-d. DataError when no line has a token."""
    split = str.split if pretokenized else tokenize
    sentences = [s for s in (split(line) for line in read_text(path).splitlines()) if s]
    if not sentences:
        raise DataError(f"{path}: no words in it.")
    return sentences


@dataclass(frozen=True)
class Word2VecData:
    """The ``word2vec/`` folder: corpora and evaluation sets, read on demand."""

    folder: Path

    def corpus(self, name: str) -> list[list[str]]:
        """``lee`` or ``head500`` as a list of sentences (lists of tokens)."""
        if name not in CORPORA:
            raise ValueError(f"unknown corpus {name!r}; the corpora are {', '.join(CORPORA)}")
        return read_corpus(self.folder / CORPORA[name], pretokenized=name == "head500")

    def wordsim353(self) -> WordPairs:
        return read_word_pairs(self.folder / WORDSIM353, "wordsim353")

    def simlex999(self) -> WordPairs:
        return read_word_pairs(self.folder / SIMLEX999, "simlex999")

    def analogies(self) -> Analogies:
        return read_analogies(self.folder / ANALOGIES)


def validate_folder(folder: str | os.PathLike) -> str:
    """Check that every file of the word2vec data is in ``folder`` and readable in its format
    (DataError naming the file and the problem if not); returns a one-line summary."""
    folder = Path(folder)
    missing = [f for f in FILES if not (folder / f).is_file()]
    if missing:
        raise DataError(f"{folder}: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing "
                        f"(the word2vec data is {', '.join(FILES)}).")
    data = Word2VecData(folder)
    parts = [f"{name} {sum(map(len, data.corpus(name))):,} tokens" for name in CORPORA]
    parts += [f"{b.name} {len(b.pairs)} pairs" for b in (data.wordsim353(), data.simlex999())]
    parts.append(f"{len(data.analogies().questions):,} analogy questions")
    return ", ".join(parts)


def load_word2vec(data_dir: str | os.PathLike | None = None) -> Word2VecData:
    """The word2vec data in ``<data_dir>/word2vec/`` (data dir: ``--data-dir`` >
    ``$DLFS_DATA_DIR`` > the cache dir). DataError says how to get it when it is missing."""
    from dlfs.data.store import locate_or_raise

    folder = locate_or_raise("word2vec", resolve_data_dir(data_dir))
    missing = [f for f in FILES if not (folder / f).is_file()]
    if missing:
        raise DataError(f"{folder}: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing. "
                        "Get the files with `dlfs data get word2vec`.")
    return Word2VecData(folder)
