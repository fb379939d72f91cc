"""The word2vec data: formats, checks, download, and (when ../shared/data exists) the real files."""

import dataclasses
import hashlib
import re

import numpy as np
import pytest

from dlfs.data import sources, store, word2vec
from dlfs.data.checksums import describe_copy
from dlfs.errors import DataError

LEE = "Hundreds of people have been forced to vacate their homes.\nA new blaze near Goulburn, 4:00pm AEDT; it's out.\n"
HEAD = "anarch greek rule stem archon\n\nmerriam-webst onlin dictionari\n"
WORDSIM = "# a comment\n# Word 1\tWord 2\tHuman (mean)\nLove\tsex\t6.77\ntiger\tcat\t7.35\n"
SIMLEX = "old\tnew\t1.58\nsmart\tintelligent\t9.2\nhard\tdifficult\t8.77\n"
QUESTIONS = ": capital-common-countries\nAthens Greece Baghdad Iraq\n: family\nboy girl brother sister\n"
TINY = {"lee_background.cor": LEE, "head500.noblanks.cor": HEAD, "wordsim353.tsv": WORDSIM,
        "simlex999.txt": SIMLEX, "questions-words.txt": QUESTIONS}


def write_tiny(root, **replace):
    folder = root / "word2vec"
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in {**TINY, **replace}.items():
        if content is not None:
            (folder / name).write_text(content, encoding="utf-8")
    return folder


def test_tokenize_lower_cases_and_keeps_inner_apostrophes():
    assert word2vec.tokenize("A new blaze near Goulburn, 4:00pm AEDT; it's out.") == \
        ["a", "new", "blaze", "near", "goulburn", "pm", "aedt", "it's", "out"]


def test_readers_on_tiny_files(tmp_path):
    data = word2vec.Word2VecData(write_tiny(tmp_path))
    assert data.corpus("lee") == [
        ["hundreds", "of", "people", "have", "been", "forced", "to", "vacate", "their", "homes"],
        ["a", "new", "blaze", "near", "goulburn", "pm", "aedt", "it's", "out"]]
    # head500 is already tokenised: split on whitespace, empty lines dropped
    assert data.corpus("head500") == [["anarch", "greek", "rule", "stem", "archon"],
                                      ["merriam-webst", "onlin", "dictionari"]]
    ws = data.wordsim353()
    assert ws.pairs == (("love", "sex"), ("tiger", "cat")) and ws.scores.tolist() == [6.77, 7.35]
    assert data.simlex999().scores.dtype == np.float64 and len(data.simlex999().pairs) == 3
    qa = data.analogies()
    assert qa.questions == (("athens", "greece", "baghdad", "iraq"), ("boy", "girl", "brother", "sister"))
    assert qa.sections == ("capital-common-countries", "family")
    with pytest.raises(ValueError, match="unknown corpus 'text8'"):
        data.corpus("text8")


@pytest.mark.parametrize("name, content, message", [
    ("wordsim353.tsv", "tiger\tcat\n", r"wordsim353.tsv:1: expected 'word1<TAB>word2<TAB>score'"),
    ("simlex999.txt", "old\tnew\tvery\n", r"simlex999.txt:1: expected 'word1<TAB>word2<TAB>score'"),
    ("simlex999.txt", "# only a comment\n", "simlex999.txt: no word pairs in it"),
    ("questions-words.txt", "Athens Greece Baghdad Iraq\n", r"questions-words.txt:1: expected four words after a ': section' line"),
    ("questions-words.txt", ": family\nboy girl brother\n", r"questions-words.txt:2: expected four words"),
    ("lee_background.cor", "  \n\n", "lee_background.cor: no words in it"),
])
def test_a_malformed_file_is_refused_naming_it(tmp_path, name, content, message):
    write_tiny(tmp_path, **{name: content})
    st = store.check("word2vec", tmp_path)
    assert st.present and not st.valid
    assert re.search(message, st.detail), st.detail


def test_not_utf8_is_refused(tmp_path):
    folder = write_tiny(tmp_path)
    (folder / "head500.noblanks.cor").write_bytes(b"caf\xe9 au lait\n")
    st = store.check("word2vec", tmp_path)
    assert not st.valid and "head500.noblanks.cor: not valid UTF-8 text (byte 3" in st.detail


def test_tiny_copy_is_valid_but_not_canonical(tmp_path):
    write_tiny(tmp_path)
    st = store.check("word2vec", tmp_path)
    assert st.valid, st.detail
    assert st.detail.startswith("valid format (lee 19 tokens, head500 8 tokens, wordsim353 2 pairs, "
                                "simlex999 3 pairs, 2 analogy questions); not the canonical files: ")
    assert "differ from the published checksums" in describe_copy("word2vec", tmp_path)


def test_a_missing_file_is_named(tmp_path):
    write_tiny(tmp_path, **{"simlex999.txt": None})
    st = store.check("word2vec", tmp_path)
    assert st.present and not st.valid
    assert "simlex999.txt is missing" in st.detail
    with pytest.raises(DataError, match="simlex999.txt is missing. Get the files with `dlfs data get word2vec`"):
        word2vec.load_word2vec(tmp_path)


def test_absent_data_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError) as err:
        word2vec.load_word2vec(tmp_path)
    msg = str(err.value)
    assert "word2vec corpora and evaluation sets (gensim test data) not found in" in msg
    assert "`dlfs data get word2vec`" in msg and "DLFS_DATA_DIR" in msg
    assert str(tmp_path / "word2vec" / "questions-words.txt") in msg


def test_load_from_the_environment(tmp_path, monkeypatch):
    write_tiny(tmp_path)
    monkeypatch.setenv("DLFS_DATA_DIR", str(tmp_path))
    assert word2vec.load_word2vec().folder == tmp_path / "word2vec"


def test_the_sources_are_pinned_to_a_gensim_release():
    ds = sources.get_dataset("word2vec")
    assert ds.folders == ("word2vec",) and ds.download_folder == "word2vec"
    assert sorted(f.name for f in ds.files) == sorted(word2vec.FILES)
    for f in ds.files:
        assert f.urls[0] == ("https://raw.githubusercontent.com/piskvorky/gensim/"
                             f"{sources.GENSIM_TAG}/gensim/test/test_data/{f.name}")
        assert len(f.urls) == 2 and f"@{sources.GENSIM_TAG}/" in f.urls[1]
        assert len(f.sha256) == 64 and f.size > 0


def test_fetch_downloads_every_file_and_verifies_it(tmp_path, server, monkeypatch):
    bodies = {n: c.encode("utf-8") for n, c in TINY.items()}
    files = tuple(sources.RemoteFile(n, (server.url(f"/missing/{n}"), server.serve(f"/mirror/{n}", b)),
                                     sha256=hashlib.sha256(b).hexdigest(), size=len(b))
                  for n, b in bodies.items())
    ds = dataclasses.replace(sources.DATASETS["word2vec"], files=files)
    monkeypatch.setitem(sources.DATASETS, "word2vec", ds)
    said = []
    st = store.fetch("word2vec", tmp_path / "data", progress=False, echo=said.append)
    assert st.valid and st.detail.startswith("checksums match the canonical files (lee 19 tokens"), st.detail
    for n, b in bodies.items():
        assert (tmp_path / "data" / "word2vec" / n).read_bytes() == b


def test_a_failed_fetch_leaves_nothing(tmp_path, server, monkeypatch):
    good = b"tiger\tcat\t7.35\n"
    files = (sources.RemoteFile("wordsim353.tsv", (server.serve("/w.tsv", good),),
                                sha256=hashlib.sha256(good).hexdigest()),
             sources.RemoteFile("simlex999.txt", (server.url("/nothing"),), sha256="0" * 64))
    monkeypatch.setitem(sources.DATASETS, "word2vec",
                        dataclasses.replace(sources.DATASETS["word2vec"], files=files))
    with pytest.raises(DataError, match="The download of word2vec corpora .* failed; nothing was left behind"):
        store.fetch("word2vec", tmp_path, progress=False, timeout=5)
    assert not (tmp_path / "word2vec").exists()


@pytest.mark.slow
def test_the_shared_copy_is_canonical(shared_data):
    folder = shared_data / "word2vec"
    if not folder.is_dir():
        pytest.skip(f"{folder} does not exist")
    st = store.check("word2vec", shared_data)
    assert st.valid and st.detail == (
        "checksums match the canonical files (lee 59,576 tokens, head500 331,339 tokens, "
        "wordsim353 353 pairs, simlex999 999 pairs, 19,544 analogy questions)"), st.detail
    data = word2vec.load_word2vec(shared_data)
    head = data.corpus("head500")
    assert len(head) == 250 and len({w for s in head for w in s}) == 29_722
    assert len(data.corpus("lee")) == 300
    qa = data.analogies()
    assert len(set(qa.sections)) == 14 and qa.questions[0] == ("athens", "greece", "baghdad", "iraq")
    assert data.wordsim353().pairs[0] == ("love", "sex")
