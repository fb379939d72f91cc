"""Milestone 24's data: every generated date has exactly one meaning under the declared formats,
weekdays are right, the test set holds only dates that never occur in training."""

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.seq2seq import dates as D

EDGE_DATES = [dt.date(1950, 1, 1), dt.date(2049, 12, 31), dt.date(2000, 2, 29), dt.date(1999, 12, 31),
              dt.date(2012, 11, 12), dt.date(1979, 5, 3), dt.date(2023, 3, 14), dt.date(1961, 1, 13),
              dt.date(2031, 10, 1), dt.date(1988, 8, 22)]


def test_the_examples_of_the_task_are_written_as_people_write_them():
    may3 = dt.date(1979, 5, 3)
    assert D.render(may3, "d month yyyy", "title") == "3 May 1979"
    assert D.render(dt.date(2023, 3, 14), "weekday, month d yyyy") == "tuesday, march 14 2023"
    assert D.render(may3, "yyyy/mm/dd") == "1979/05/03"
    assert D.render(dt.date(1979, 3, 5), "d.m.yy") == "5.3.79"
    assert D.render(may3, "month dth, yyyy", "title") == "May 3rd, 1979"
    assert D.render(may3, "dd mon yyyy", "upper") == "03 MAY 1979"
    assert D.render(may3, "the dth of month, yyyy", "upper") == "THE 3RD OF MAY, 1979"


def test_at_least_15_formats_with_names_abbreviations_ordinals_weekdays_and_numbers():
    assert len(D.FORMATS) >= 15 and len({f.name for f in D.FORMATS}) == len(D.FORMATS)
    fields = {field for f in D.FORMATS for field in f.fields}
    assert {"month", "mon", "dth", "weekday", "wkd", "yy", "yyyy", "d", "dd", "m", "mm"} <= fields, fields
    cased = {D.render(dt.date(1979, 5, 3), "d month yyyy", c) for c in D.CASES}
    assert cased == {"3 may 1979", "3 May 1979", "3 MAY 1979"}


@pytest.mark.parametrize("fmt", D.FORMATS, ids=lambda f: f.name)
def test_every_format_and_case_reads_back_as_exactly_the_date_written(fmt):
    rng = np.random.default_rng(0)
    days = [dt.date.fromordinal(int(o)) for o in rng.integers(D.FIRST.toordinal(), D.LAST.toordinal() + 1, 300)]
    for date in EDGE_DATES + days:
        for case in D.CASES:
            text = fmt.render(date, case)
            assert D.parse(text) == {date}, f"{text!r} ({fmt.name}, {case}) reads as {D.parse(text)}, written for {date}"


def test_every_example_of_the_test_set_and_of_training_means_one_date_its_target():
    split = D.split_dates()
    for ex in (D.held_out_examples(split), D.sample_examples(split.train, 3000, 1)):
        for source, target in zip(ex.sources, ex.targets):
            assert D.parse(source) == {dt.date.fromisoformat(target)}, (source, target, D.parse(source))


def test_weekdays_are_the_true_ones_and_a_wrong_weekday_is_no_date():
    known = {dt.date(1969, 7, 20): "sunday", dt.date(2000, 1, 1): "saturday", dt.date(1979, 5, 3): "thursday",
             dt.date(2023, 3, 14): "tuesday", dt.date(1989, 11, 9): "thursday"}
    for date, weekday in known.items():
        assert D.render(date, "weekday d month yyyy").split()[0] == weekday
        assert D.render(date, "wkd mon d yyyy").split()[0] == weekday[:3]
    assert D.parse("monday, march 14 2023") == set(), "14 March 2023 was a Tuesday"
    assert D.parse("tuesday, march 14 2023") == {dt.date(2023, 3, 14)}


def test_the_declared_conventions_for_numeric_dates():
    assert D.parse("5.3.79") == {dt.date(1979, 3, 5)}, "day first"
    assert D.parse("3/5/1979") == {dt.date(1979, 5, 3)}, "day first"
    assert D.parse("12/11/49") == {dt.date(2049, 11, 12)}, "00–49 are 2000–2049"
    assert D.parse("1.1.50") == {dt.date(1950, 1, 1)}, "50–99 are 1950–1999"
    assert D.parse("19790503") == {dt.date(1979, 5, 3)} and D.parse("1979/05/03") == {dt.date(1979, 5, 3)}
    assert [D.two_digit_year(y) for y in (0, 49, 50, 99)] == [2000, 2049, 1950, 1999]


def test_what_is_no_date_in_any_declared_format():
    for text in ("31.2.79", "3th of may 1979", "13/13/1979", "1949/12/31", "may 3 1979 and more", "3 mai 1979", ""):
        assert D.parse(text) == set(), f"{text!r} must not parse, got {D.parse(text)}"


def test_ordinals():
    got = [D.render(dt.date(2001, 1, d), "dth of month yyyy").split()[0] for d in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31)]
    assert got == ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "31st"]


def test_the_split_is_by_date_disjoint_complete_and_fixed():
    split = D.split_dates()
    all_dates = set(range(D.FIRST.toordinal(), D.LAST.toordinal() + 1))
    train, val, test = set(split.train.tolist()), set(split.val.tolist()), set(split.test.tolist())
    assert len(test) == D.TEST_DATES >= 10_000 and len(val) == D.VAL_DATES
    assert not (train & test) and not (train & val) and not (val & test), "the splits share dates"
    assert train | val | test == all_dates and len(all_dates) == 36_525
    again = D.split_dates()
    assert np.array_equal(again.test, split.test) and np.array_equal(again.train, split.train)
    assert not np.array_equal(D.split_dates(seed=1).test, split.test)


def test_the_test_set_writes_every_test_date_once_and_training_never_sees_one():
    split = D.split_dates()
    test = D.held_out_examples(split)
    written = sorted(dt.date.fromisoformat(t).toordinal() for t in test.targets)
    assert written == split.test.tolist(), "each test date exactly once"
    assert test.sources == D.held_out_examples(split).sources, "the test set is the same every time"
    train = D.sample_examples(split.train, 20_000, np.random.default_rng(3))
    seen = {dt.date.fromisoformat(t).toordinal() for t in train.targets}
    assert not seen & set(split.test.tolist()) and not seen & set(split.val.tolist())
    assert set(np.unique(test.formats).tolist()) == set(range(len(D.FORMATS))), "the test set covers every format"


def test_sampling_is_seeded():
    dates = D.split_dates().train
    a, b = D.sample_examples(dates, 50, 7), D.sample_examples(dates, 50, 7)
    assert a.sources == b.sources and a.targets == b.targets
    assert D.sample_examples(dates, 50, 8).sources != a.sources


@settings(deadline=None, max_examples=40)
@given(ordinal=st.integers(D.FIRST.toordinal(), D.LAST.toordinal()), fmt=st.integers(0, len(D.FORMATS) - 1),
       case=st.sampled_from(D.CASES))
def test_any_date_in_any_format_means_itself(ordinal, fmt, case):
    date = dt.date.fromordinal(ordinal)
    assert D.parse(D.render(date, fmt, case)) == {date}


def test_token_ids_round_trip_and_bad_text_is_refused():
    src, lengths = D.encode_sources(["3 May 1979", "5.3.79"])
    assert src.shape == (2, 10) and lengths.tolist() == [10, 6] and np.all(src[1, 6:] == D.PAD)
    back = ["".join(D.SOURCE_CHARS[i - 1] for i in row[:n]) for row, n in zip(src, lengths)]
    assert back == ["3 May 1979", "5.3.79"]
    tgt = D.encode_targets(["1979-05-03"])
    assert tgt.shape == (1, D.TARGET_LEN) and tgt[0, -1] == D.EOS
    assert D.decode_targets(tgt) == ["1979-05-03"]
    assert D.decode_targets(np.array([[4, 5, D.EOS, 6]])) == ["12"], "cut at the end token"
    with pytest.raises(ValueError, match="not a source character"):
        D.encode_sources(["3 May 1979 ✓"])
    with pytest.raises(ValueError, match="10 characters"):
        D.encode_targets(["1979-5-3"])
