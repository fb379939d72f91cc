"""The date-normalisation task of Milestone 24: human-written dates -> ISO ``YYYY-MM-DD``.

    "3 May 1979", "tuesday, march 14 2023", "1979/05/03", "5.3.79", "May 3rd, 1979",
    "03 MAY 1979", ...   ->   "1979-05-03", "2023-03-14", ...

The data is generated, seeded, and part of the project. Every input is written in one of the
declared :data:`FORMATS`; each format is a pattern of fields (``{d}``, ``{month}``, ``{yy}``,
...) that both **writes** a date and **reads** one back (:func:`parse`, through a regular
expression built from the same pattern). The declared conventions make every input mean one
date:

* **numeric dates are day first** (``5.3.79`` and ``3/5/1979`` are 5 and 3 May), except the
  year-first formats, whose year has four digits (``1979/05/03``, ``19790503``);
* **two-digit years** are 1950–1999 for 50–99 and 2000–2049 for 00–49, so every date is drawn
  from **1950-01-01 to 2049-12-31** (:data:`FIRST`, :data:`LAST`), where that is exact;
* a **weekday** written in the input is the date's true weekday (``datetime.date.weekday``);
  :func:`parse` refuses a wrong one;
* month and weekday names are English, in one of three **cases** chosen per example: lower,
  Title (the names capitalised) or UPPER.

The tests read every generated input back with every declared format and check that exactly
one date comes out, the right one.

**Split by date.** :func:`split_dates` shuffles the 36,525 dates of the range with a fixed
seed (:data:`SPLIT_SEED`) and holds out :data:`TEST_DATES` of them for the test set and
:data:`VAL_DATES` for validation; training examples are drawn from the other dates only, so a
test date never occurs in training, in any format. The test set writes each test date once,
in a format and case drawn with :data:`TEST_SEED` (the same test set for every run).

Token ids: the source is read character by character (:data:`SOURCE_CHARS`, id 0 is padding);
the target is the 10 characters of the ISO date and an end token (:data:`TARGET_TOKENS`).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = [
    "FIRST", "LAST", "MONTHS", "WEEKDAYS", "CASES", "DateFormat", "FORMATS", "render", "parse",
    "two_digit_year", "SOURCE_CHARS", "TARGET_TOKENS", "PAD", "BOS", "EOS", "TARGET_LEN",
    "encode_sources", "encode_targets", "decode_targets", "DateSplit", "split_dates",
    "Examples", "sample_examples", "held_out_examples",
]

FIRST = dt.date(1950, 1, 1)
LAST = dt.date(2049, 12, 31)
SPLIT_SEED = 24_2015            # fixes which dates are held out
TEST_SEED = 24_2016             # fixes the formats and cases of the test set
TEST_DATES = 10_000
VAL_DATES = 1_500

MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
          "october", "november", "december")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
CASES = ("lower", "title", "upper")


def two_digit_year(yy: int) -> int:
    """The declared pivot: 50–99 -> 1950–1999, 00–49 -> 2000–2049."""
    return 1900 + yy if yy >= 50 else 2000 + yy


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _cased(word: str, case: str, name: bool) -> str:
    """A word in the example's case; Title capitalises names only ("3rd of May")."""
    if case == "upper":
        return word.upper()
    return word.capitalize() if case == "title" and name else word


# field -> (regular expression when reading, how to write it: (date, case) -> text)
_FIELDS = {
    "d": (r"[1-9]|[12]\d|3[01]", lambda d, c: str(d.day)),
    "dd": (r"0[1-9]|[12]\d|3[01]", lambda d, c: f"{d.day:02d}"),
    "dth": (r"(?:[1-9]|[12]\d|3[01])(?:st|nd|rd|th)", lambda d, c: _cased(_ordinal(d.day), c, False)),
    "m": (r"[1-9]|1[0-2]", lambda d, c: str(d.month)),
    "mm": (r"0[1-9]|1[0-2]", lambda d, c: f"{d.month:02d}"),
    "month": ("|".join(MONTHS), lambda d, c: _cased(MONTHS[d.month - 1], c, True)),
    "mon": ("|".join(m[:3] for m in MONTHS), lambda d, c: _cased(MONTHS[d.month - 1][:3], c, True)),
    "yyyy": (r"\d{4}", lambda d, c: f"{d.year:04d}"),
    "yy": (r"\d{2}", lambda d, c: f"{d.year % 100:02d}"),
    "weekday": ("|".join(WEEKDAYS), lambda d, c: _cased(WEEKDAYS[d.weekday()], c, True)),
    "wkd": ("|".join(w[:3] for w in WEEKDAYS), lambda d, c: _cased(WEEKDAYS[d.weekday()][:3], c, True)),
}
_FIELD = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class DateFormat:
    """One declared way of writing a date: a ``pattern`` of literal text and ``{field}`` s.

    Fields: d, dd (day, 2 digits), dth (ordinal day: 1st, 22nd), m, mm (month number), month,
    mon (name, 3-letter abbreviation), yyyy, yy (year, two digits with the pivot of
    :func:`two_digit_year`), weekday, wkd (name, abbreviation). Literal words ("of", "the")
    follow the example's case except Title, which capitalises names only.
    """

    name: str
    pattern: str

    @cached_property
    def fields(self) -> tuple[str, ...]:
        return tuple(_FIELD.findall(self.pattern))

    @cached_property
    def has_words(self) -> bool:
        """Whether the case of the example can show (names, ordinals or words)."""
        return any(f in ("dth", "month", "mon", "weekday", "wkd") for f in self.fields) or \
            bool(re.search(r"[a-z]", _FIELD.sub("", self.pattern)))

    @cached_property
    def regex(self) -> re.Pattern:
        parts, pos = [], 0
        for m in _FIELD.finditer(self.pattern):
            parts.append(re.escape(self.pattern[pos:m.start()]))
            parts.append(f"(?P<{m.group(1)}>{_FIELDS[m.group(1)][0]})")
            pos = m.end()
        parts.append(re.escape(self.pattern[pos:]))
        return re.compile("".join(parts), re.IGNORECASE)

    def render(self, date: dt.date, case: str = "lower") -> str:
        """The date written in this format and case."""
        if case not in CASES:
            raise ValueError(f"case must be one of {CASES}, got {case!r}")
        text = _FIELD.sub(lambda m: _FIELDS[m.group(1)][1](date, case), self.pattern)
        if case == "upper":                      # the literal words too ("THE 3RD OF MAY")
            text = text.upper()
        return text

    def read(self, text: str) -> dt.date | None:
        """The date ``text`` means in this format, or None if it is not written in it (a
        wrong weekday, a day the month does not have or a year outside the range: None)."""
        m = self.regex.fullmatch(text)
        if m is None:
            return None
        g = {k: v.lower() for k, v in m.groupdict().items()}
        day = int(g.get("d") or g.get("dd") or g["dth"][:-2])
        month = int(g["m"]) if "m" in g else int(g["mm"]) if "mm" in g else \
            [x[:3] for x in MONTHS].index((g.get("month") or g["mon"])[:3]) + 1
        year = int(g["yyyy"]) if "yyyy" in g else two_digit_year(int(g["yy"]))
        try:
            date = dt.date(year, month, day)
        except ValueError:
            return None
        if "dth" in g and g["dth"] != _ordinal(day):           # "3th" is not an ordinal
            return None
        weekday = g.get("weekday") or g.get("wkd")
        if weekday is not None and WEEKDAYS[date.weekday()][:3] != weekday[:3]:
            return None
        return date if FIRST <= date <= LAST else None


FORMATS: tuple[DateFormat, ...] = tuple(DateFormat(n, p) for n, p in [
    ("d month yyyy", "{d} {month} {yyyy}"),                   # 3 May 1979
    ("dd mon yyyy", "{dd} {mon} {yyyy}"),                     # 03 May 1979
    ("month d, yyyy", "{month} {d}, {yyyy}"),                 # May 3, 1979
    ("month dth, yyyy", "{month} {dth}, {yyyy}"),             # May 3rd, 1979
    ("dth of month yyyy", "{dth} of {month} {yyyy}"),         # 3rd of May 1979
    ("the dth of month, yyyy", "the {dth} of {month}, {yyyy}"),  # the 3rd of May, 1979
    ("weekday, month d yyyy", "{weekday}, {month} {d} {yyyy}"),  # Thursday, May 3 1979
    ("weekday d month yyyy", "{weekday} {d} {month} {yyyy}"),    # Thursday 3 May 1979
    ("wkd, dd mon yyyy", "{wkd}, {dd} {mon} {yyyy}"),         # Thu, 03 May 1979 (RFC 2822)
    ("wkd mon d yyyy", "{wkd} {mon} {d} {yyyy}"),             # Thu May 3 1979
    ("mon d yyyy", "{mon} {d} {yyyy}"),                       # May 3 1979
    ("d mon 'yy", "{d} {mon} '{yy}"),                         # 3 May '79
    ("dd-mon-yy", "{dd}-{mon}-{yy}"),                         # 03-May-79
    ("yyyy/mm/dd", "{yyyy}/{mm}/{dd}"),                       # 1979/05/03
    ("yyyy-mm-dd", "{yyyy}-{mm}-{dd}"),                       # 1979-05-03 (already ISO)
    ("yyyymmdd", "{yyyy}{mm}{dd}"),                           # 19790503
    ("d.m.yy", "{d}.{m}.{yy}"),                               # 3.5.79
    ("dd.mm.yyyy", "{dd}.{mm}.{yyyy}"),                       # 03.05.1979
    ("d/m/yyyy", "{d}/{m}/{yyyy}"),                           # 3/5/1979
    ("dd/mm/yy", "{dd}/{mm}/{yy}"),                           # 03/05/79
])


def render(date: dt.date, fmt: int | str | DateFormat, case: str = "lower") -> str:
    """``date`` written in format ``fmt`` (an index of :data:`FORMATS`, its name, or a
    :class:`DateFormat`) and ``case``."""
    if isinstance(fmt, DateFormat):
        return fmt.render(date, case)
    if isinstance(fmt, str):
        by_name = {f.name: f for f in FORMATS}
        if fmt not in by_name:
            raise ValueError(f"unknown date format {fmt!r}; the formats are {sorted(by_name)}")
        return by_name[fmt].render(date, case)
    return FORMATS[fmt].render(date, case)


def parse(text: str) -> set[dt.date]:
    """Every date that some declared format reads ``text`` as (the declared formats make this
    one date for every generated input; an empty set for text in no format)."""
    return {d for d in (f.read(text) for f in FORMATS) if d is not None}


# -- token ids ---------------------------------------------------------------------------------

SOURCE_CHARS = " ',-./0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
PAD, BOS, EOS = 0, 1, 2
TARGET_TOKENS = ("<pad>", "<bos>", "<eos>", *"0123456789-")
TARGET_LEN = 11                 # "YYYY-MM-DD" and the end token
_SRC_ID = {c: i + 1 for i, c in enumerate(SOURCE_CHARS)}        # 0 is padding
_TGT_ID = {c: i for i, c in enumerate(TARGET_TOKENS) if len(c) == 1}


def encode_sources(texts: list[str], length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Texts -> ``(ids (N, S) int64, lengths (N,) int64)``, one id per character, padded with
    :data:`PAD` (0) to ``S = length`` or the longest text. ValueError names a character outside
    :data:`SOURCE_CHARS` or a text longer than ``length``."""
    lengths = np.array([len(t) for t in texts], dtype=np.int64)
    S = int(lengths.max(initial=1)) if length is None else int(length)
    if lengths.size and (lengths.min() < 1 or lengths.max() > S):
        raise ValueError(f"texts must have 1 to {S} characters, got lengths {lengths.min()}..{lengths.max()}")
    ids = np.zeros((len(texts), S), dtype=np.int64)
    for i, t in enumerate(texts):
        try:
            ids[i, :len(t)] = [_SRC_ID[c] for c in t]
        except KeyError as exc:
            raise ValueError(f"text {t!r} holds {exc.args[0]!r}, which is not a source character") from None
    return ids, lengths


def encode_targets(isos: list[str]) -> np.ndarray:
    """ISO dates -> ``(N, TARGET_LEN)`` int64: the 10 characters, then :data:`EOS`."""
    out = np.empty((len(isos), TARGET_LEN), dtype=np.int64)
    for i, s in enumerate(isos):
        if len(s) != TARGET_LEN - 1:
            raise ValueError(f"an ISO date has 10 characters, got {s!r}")
        out[i, :-1] = [_TGT_ID[c] for c in s]
        out[i, -1] = EOS
    return out


def decode_targets(ids: np.ndarray) -> list[str]:
    """``(N, T)`` target ids -> strings, each cut at its first :data:`EOS` (padding and the
    begin token dropped)."""
    out = []
    for row in np.asarray(ids):
        chars = []
        for t in row:
            if t == EOS:
                break
            if t > EOS:
                chars.append(TARGET_TOKENS[t])
        out.append("".join(chars))
    return out


# -- splits and examples ------------------------------------------------------------------------

@dataclass(frozen=True)
class DateSplit:
    """Disjoint sets of dates, as ordinals (``datetime.date.toordinal``), each sorted."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def split_dates(test: int = TEST_DATES, val: int = VAL_DATES, seed: int = SPLIT_SEED) -> DateSplit:
    """Shuffle every date of [FIRST, LAST] with ``seed``; the first ``test`` are the test dates,
    the next ``val`` the validation dates, the rest the training dates."""
    all_dates = np.arange(FIRST.toordinal(), LAST.toordinal() + 1)
    if test + val >= all_dates.size:
        raise ValueError(f"{test} test and {val} validation dates leave none of {all_dates.size} for training")
    order = np.random.default_rng(seed).permutation(all_dates)
    return DateSplit(np.sort(order[test + val:]), np.sort(order[test:test + val]), np.sort(order[:test]))


@dataclass(frozen=True)
class Examples:
    """Generated examples: ``sources`` (the human-written texts), ``targets`` (ISO dates),
    ``formats`` (N,) indices into :data:`FORMATS`, ``cases`` (N,) indices into :data:`CASES`."""

    sources: list[str]
    targets: list[str]
    formats: np.ndarray
    cases: np.ndarray

    def __len__(self) -> int:
        return len(self.sources)


def sample_examples(dates: np.ndarray, n: int | None, rng: np.random.Generator | int | None,
                    formats: tuple[DateFormat, ...] = FORMATS) -> Examples:
    """``n`` examples: dates drawn uniformly from ``dates`` (ordinals) with replacement — or, with
    ``n=None``, every date once in a random order — each in a format and case drawn uniformly
    (formats without words are written as they are, with case 0)."""
    rng = np.random.default_rng(rng)
    dates = np.asarray(dates)
    picked = rng.permutation(dates) if n is None else rng.choice(dates, size=n)
    fmts = rng.integers(0, len(formats), size=picked.size)
    cases = rng.integers(0, len(CASES), size=picked.size)
    cases[[not formats[f].has_words for f in fmts.tolist()]] = 0          # written as they are
    sources, targets = [], []
    for o, f, c in zip(picked.tolist(), fmts.tolist(), cases.tolist()):
        date = dt.date.fromordinal(o)
        sources.append(formats[f].render(date, CASES[c]))
        targets.append(date.isoformat())
    return Examples(sources, targets, fmts, cases)


def held_out_examples(split: DateSplit | None = None) -> Examples:
    """The held-out test set: every test date once (10,000), format and case from TEST_SEED."""
    split = split or split_dates()
    return sample_examples(split.test, None, TEST_SEED)
