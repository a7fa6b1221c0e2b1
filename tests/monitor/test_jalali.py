"""The Jalali calendar against jdatetime, day by day, across Nowruz and leap years."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import jdatetime
import pytest

from monitor.core.calendar import (
    format_jalali,
    gregorian_to_jalali,
    is_leap,
    jalali_to_gregorian,
    month_length,
    parse_when,
    persian_digits,
)

TEHRAN = ZoneInfo("Asia/Tehran")


def _days(first: date, last: date):  # type: ignore[no-untyped-def]
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def test_every_day_1390_to_1420_matches_jdatetime() -> None:
    """Each Gregorian day from Nowruz 1390 to the end of 1420 converts both ways as jdatetime does."""
    first = jdatetime.date(1390, 1, 1).togregorian()
    last = jdatetime.date(1421, 1, 1).togregorian() - timedelta(days=1)
    count = 0
    for day in _days(first, last):
        ref = jdatetime.date.fromgregorian(date=day)
        assert gregorian_to_jalali(day.year, day.month, day.day) == (ref.year, ref.month, ref.day), day
        assert jalali_to_gregorian(ref.year, ref.month, ref.day) == (day.year, day.month, day.day), ref
        count += 1
    assert count == sum(366 if is_leap(y) else 365 for y in range(1390, 1421))


def test_wider_range_1300_to_1500_matches_jdatetime() -> None:
    """The wrappers and jdatetime agree on every day of two centuries, not just the tested window."""
    first, last = jdatetime.date(1300, 1, 1).togregorian(), jdatetime.date(1500, 12, 29).togregorian()
    for day in _days(first, last):
        ref = jdatetime.date.fromgregorian(date=day)
        assert gregorian_to_jalali(day.year, day.month, day.day) == (ref.year, ref.month, ref.day), day


@pytest.mark.parametrize(("jy", "leap"), [(1395, True), (1399, True), (1400, False), (1403, True), (1404, False),
                                          (1408, True), (1412, True), (1416, True), (1420, True), (1419, False)])
def test_leap_years_match_jdatetime(jy: int, leap: bool) -> None:
    """Leap years (Esfand has 30 days) are the ones jdatetime knows, and the known recent ones."""
    assert is_leap(jy) is leap
    assert jdatetime.date(jy, 1, 1).isleap() is leap
    assert month_length(jy, 12) == (30 if leap else 29)


@pytest.mark.parametrize(("gregorian", "jalali"), [
    ((2024, 3, 19), (1402, 12, 29)),  # the last day of a common year
    ((2024, 3, 20), (1403, 1, 1)),    # Nowruz 1403
    ((2025, 3, 20), (1403, 12, 30)),  # 30 Esfand: 1403 is leap
    ((2025, 3, 21), (1404, 1, 1)),    # Nowruz 1404
    ((2026, 3, 20), (1404, 12, 29)),  # 1404 is not leap: Esfand ends on the 29th
    ((2026, 3, 21), (1405, 1, 1)),
    ((2020, 3, 19), (1398, 12, 29)),
    ((2020, 3, 20), (1399, 1, 1)),    # Nowruz in a Gregorian leap year
    ((2024, 2, 29), (1402, 12, 10)),  # Gregorian 29 February
    ((2025, 9, 22), (1404, 6, 31)),   # the last 31-day month
    ((2025, 9, 23), (1404, 7, 1)),
])
def test_known_dates(gregorian: tuple[int, int, int], jalali: tuple[int, int, int]) -> None:
    """Nowruz, the last day of Esfand in leap and common years, and the 31/30-day month boundary."""
    assert gregorian_to_jalali(*gregorian) == jalali
    assert jalali_to_gregorian(*jalali) == gregorian


@pytest.mark.parametrize("bad", [(1404, 12, 30), (1403, 7, 31), (1404, 13, 1), (1404, 0, 1), (1404, 1, 0)])
def test_impossible_jalali_dates_are_refused(bad: tuple[int, int, int]) -> None:
    """30 Esfand of a common year, 31 Mehr, month 13: ValueError, not a silent roll-over."""
    with pytest.raises(ValueError):
        jalali_to_gregorian(*bad)


def test_parse_when_reads_both_calendars_in_the_programme_zone() -> None:
    """`--from 1404-12-01` and `--from 2026-02-20` are the same Tehran midnight; offsets are honoured."""
    jal, only_date = parse_when("1404-12-01", TEHRAN)
    greg, _ = parse_when("2026-02-20", TEHRAN)
    assert only_date and jal == greg == datetime(2026, 2, 20, tzinfo=TEHRAN)
    assert jal.utcoffset() == timedelta(hours=3, minutes=30)
    assert parse_when("۱۴۰۴/۱۲/۰۱ ۰۸:۳۰", TEHRAN) == (datetime(2026, 2, 20, 8, 30, tzinfo=TEHRAN), False)
    at, only_date = parse_when("2026-02-20T05:00Z", TEHRAN)
    assert not only_date and at == datetime(2026, 2, 20, 5, 0, tzinfo=UTC)
    assert parse_when("2026-02-20T08:30:00+0330", TEHRAN)[0] == datetime(2026, 2, 20, 5, 0, tzinfo=UTC)
    for bad in ("1404-12-30", "yesterday", "2026-02-30", "1404-1-1T25:00"):
        with pytest.raises(ValueError):
            parse_when(bad, TEHRAN)


def test_format_jalali() -> None:
    """Dates print in Jalali with Latin or Persian digits, with or without the month's name."""
    when = datetime(2025, 3, 21, 8, 5, tzinfo=TEHRAN)
    assert format_jalali(when) == "1404-01-01 08:05"
    assert format_jalali(when.date()) == "1404-01-01"
    assert format_jalali(when, with_time=False, month_name=True) == "1 فروردین 1404"
    assert format_jalali(when, persian=True) == "۱۴۰۴-۰۱-۰۱ ۰۸:۰۵"
    assert persian_digits("terminals 3/5") == "terminals ۳/۵"
