import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dlfs.data import text
from dlfs.errors import DataError

CORPUS = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"


def test_vocab_is_sorted_and_encodes_round_trip():
    vocab = text.CharVocab.from_text(CORPUS)
    assert list(vocab.chars) == sorted(set(CORPUS))
    ids = vocab.encode(CORPUS)
    assert ids.dtype == np.int64 and ids.shape == (len(CORPUS),)
    assert ids[0] == vocab.chars.index("F") and ids[5] == vocab.chars.index(" ")
    assert vocab.decode(ids) == CORPUS
    assert vocab.decode([]) == ""


def test_unknown_character_and_bad_ids():
    vocab = text.CharVocab.from_text("abc")
    with pytest.raises(ValueError, match="'z' is not in the vocabulary"):
        vocab.encode("abz")
    with pytest.raises(ValueError, match=r"ids must be in \[0, 3\)"):
        vocab.decode([0, 3])


@settings(deadline=None, max_examples=50)
@given(st.text(min_size=1, max_size=200))
def test_round_trip_any_unicode(s):
    vocab = text.CharVocab.from_text(s)
    assert vocab.decode(vocab.encode(s)) == s
    assert vocab.encode(s).max() < len(vocab)


def test_split_is_90_10_in_order():
    ds = text.text_dataset("abcdefghij" * 7)   # 70 chars -> 63 / 7
    assert ds.train.size == 63 and ds.val.size == 7
    assert ds.decode(ds.train) + ds.decode(ds.val) == ds.text


def test_load_shakespeare_from_data_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(text, "PLAUSIBLE_CHARS", (100, 10_000))      # a tiny corpus
    (tmp_path / "tinyshakespeare").mkdir()
    (tmp_path / "tinyshakespeare" / "input.txt").write_text(CORPUS * 10, encoding="utf-8")
    ds = text.load_shakespeare(tmp_path)
    assert ds.text == CORPUS * 10
    assert ds.vocab_size == len(set(CORPUS))
    n = int(0.9 * len(ds.text))
    assert ds.train.size == n and ds.val.size == len(ds.text) - n


def test_invalid_utf8_names_file_and_offset(tmp_path):
    path = tmp_path / "input.txt"
    path.write_bytes(b"hello \xff world")
    with pytest.raises(DataError, match=r"input\.txt: not valid UTF-8 text \(byte 6: invalid "
                                        r"start byte\)"):
        text.read_text(path)


def test_empty_file(tmp_path):
    (tmp_path / "input.txt").write_bytes(b"")
    with pytest.raises(DataError, match="the file is empty"):
        text.read_text(tmp_path / "input.txt")


# -- is it plausibly Tiny Shakespeare? ---------------------------------------------

def _put(root, content: str):
    (root / "tinyshakespeare").mkdir(exist_ok=True)
    (root / "tinyshakespeare" / "input.txt").write_text(content, encoding="utf-8", newline="")


@pytest.mark.parametrize("content, reason", [
    (" \n\t \n  \n", "8 characters, so it is not Tiny Shakespeare"),
    ("First Citizen:\n", "15 characters, so it is not Tiny Shakespeare"),
    ("To be, or not to be\n" * 55_000, "it starts with 'To be, or not to be\\nTo be, or ', so it is "
                                         "not Tiny Shakespeare"),
    ("First Citizen:\n" + "1234 5678, 90!\n" * 72_000, "only 0% of it are letters"),
], ids=["whitespace-only", "far-too-short", "another-text", "not-letters"])
def test_a_file_that_is_not_tiny_shakespeare_is_refused(tmp_path, content, reason):
    from dlfs.data import store

    _put(tmp_path, content)
    st = store.check("shakespeare", tmp_path)
    assert st.present and not st.valid and reason in st.detail
    assert "1,115,394 characters" in st.detail or "76%" in st.detail
    with pytest.raises(DataError, match="not Tiny Shakespeare|letters"):
        text.load_shakespeare(tmp_path)


def test_a_plausible_copy_that_is_not_byte_identical_is_accepted(tmp_path):
    """Tiny Shakespeare with Windows line endings: a different checksum, the same text."""
    from dlfs.data import store

    body = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"
    crlf = (body * 14_000).replace("\n", "\r\n")               # about 1.17 million characters
    _put(tmp_path, crlf)
    st = store.check("shakespeare", tmp_path)
    assert st.valid and st.detail.startswith("plausible copy, not the canonical file (")
    assert text.load_shakespeare(tmp_path).text == crlf


def test_plausibility_bounds_are_those_documented():
    assert text.CANONICAL_CHARS == 1_115_394
    lo, hi = text.PLAUSIBLE_CHARS
    assert lo < text.CANONICAL_CHARS < hi
    assert lo <= text.CANONICAL_CHARS + 40_000 <= hi          # the same file with CRLF endings
