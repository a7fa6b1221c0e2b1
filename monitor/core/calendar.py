"""The Jalali (Solar Hijri) calendar: conversion both ways, parsing and formatting of report dates.

The conversion is jdatetime's, which uses the arithmetic 33-year rule (a year is leap when
``year % 33`` is one of 1, 5, 9, 13, 17, 22, 26, 30); it agrees with the official (astronomical)
calendar for the years a report can name. The tests compare every day of 1300–1500 with jdatetime
and pin the known Nowruz and Esfand dates. This module adds the report formats and the parsing of
dates written in either calendar.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, tzinfo

import jdatetime

MONTHS_FA = ("فروردین", "اردیبهشت", "خرداد", "تیر", "مرداد", "شهریور", "مهر", "آبان", "آذر", "دی", "بهمن",
             "اسفند")
_PERSIAN_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
_TO_ASCII_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")
JALALI_YEAR_MAX = 1700  # a date whose year is below this is read as Jalali (Gregorian years are larger)


def is_leap(jy: int) -> bool:
    """Return whether Jalali year ``jy`` has 366 days (Esfand has 30)."""
    return bool(jdatetime.date(jy, 1, 1).isleap())


def month_length(jy: int, jm: int) -> int:
    """Return the number of days of month ``jm`` (1–12) of Jalali year ``jy``."""
    if not 1 <= jm <= 12:
        raise ValueError(f"Jalali month must be 1..12, got {jm}")
    if jm <= 6:
        return 31
    if jm <= 11:
        return 30
    return 30 if is_leap(jy) else 29


def jalali_to_gregorian(jy: int, jm: int, jd: int) -> tuple[int, int, int]:
    """Return the Gregorian (year, month, day) of a Jalali date; ValueError if it does not exist."""
    if not 1 <= jd <= month_length(jy, jm):
        raise ValueError(f"{jy:04d}-{jm:02d}-{jd:02d} is not a Jalali date (month {jm} has "
                         f"{month_length(jy, jm)} days)")
    g = jdatetime.date(jy, jm, jd).togregorian()
    return g.year, g.month, g.day


def gregorian_to_jalali(gy: int, gm: int, gd: int) -> tuple[int, int, int]:
    """Return the Jalali (year, month, day) of a Gregorian date; ValueError if it does not exist."""
    j = jdatetime.date.fromgregorian(date=date(gy, gm, gd))  # date() refuses 30 February; jdatetime would not
    return j.year, j.month, j.day


def persian_digits(text: str) -> str:
    """Return ``text`` with ASCII digits written as Persian digits (۰–۹)."""
    return text.translate(_PERSIAN_DIGITS)


def format_jalali(when: datetime | date, *, with_time: bool = True, persian: bool = False,
                  month_name: bool = False) -> str:
    """Format a date (or local datetime) in the Jalali calendar: ``1404-12-01 08:30``.

    ``month_name`` writes ``1 اسفند 1404``; ``persian`` writes the digits in Persian.
    """
    jy, jm, jd = gregorian_to_jalali(when.year, when.month, when.day)
    text = f"{jd} {MONTHS_FA[jm - 1]} {jy}" if month_name else f"{jy:04d}-{jm:02d}-{jd:02d}"
    if with_time and isinstance(when, datetime):
        text += f" {when:%H:%M}"
    return persian_digits(text) if persian else text


_WHEN_RE = re.compile(
    r"^(?P<y>\d{4})[-/](?P<m>\d{1,2})[-/](?P<d>\d{1,2})"
    r"(?:[T ](?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.\d+)?)?)?"
    r"(?P<tz>Z|[+-]\d{2}:?\d{2})?$"
)


def parse_when(text: str, zone: tzinfo) -> tuple[datetime, bool]:
    """Parse a date or date-time in either calendar; return (aware datetime, whether only a date was given).

    ``1404-12-01`` (year below 1700: Jalali), ``2026-02-20``, ``1404/12/01 08:30``, ``2026-02-20T08:30+03:30``;
    Persian digits are accepted. Without an offset the time is read in ``zone``.
    """
    m = _WHEN_RE.match(text.strip().translate(_TO_ASCII_DIGITS))
    if not m:
        raise ValueError(f"cannot read {text!r} as a date: use YYYY-MM-DD (Jalali or Gregorian), "
                         f"optionally with HH:MM")
    y, mo, d = int(m["y"]), int(m["m"]), int(m["d"])
    if y < JALALI_YEAR_MAX:
        y, mo, d = jalali_to_gregorian(y, mo, d)
    day = date(y, mo, d)
    only_date = m["H"] is None
    clock = time(int(m["H"] or 0), int(m["M"] or 0), int(m["S"] or 0))
    if m["tz"]:  # fromisoformat reads Z, +03:30 and +0330 alike
        return datetime.fromisoformat(f"{day.isoformat()}T{clock.isoformat()}{m['tz']}"), only_date
    return datetime.combine(day, clock, tzinfo=zone), only_date


def short_duration(seconds: float, units: tuple[str, str, str, str] = ("s", "m", "h", "d"), sep: str = "",
                   pad: bool = True) -> str:
    """Return a short duration in its two largest units: ``45s``, ``12m``, ``3h 05m``, ``2d 04h``.

    ``units`` name seconds, minutes, hours and days; ``sep`` stands between a number and its unit; ``pad``
    writes the smaller unit with two digits.
    """
    s, m, h, d = units
    n = max(0, int(seconds))
    small = "{:02d}" if pad else "{}"
    if n < 60:
        return f"{n}{sep}{s}"
    if n < 3600:
        return f"{n // 60}{sep}{m}"
    if n < 86400:
        return f"{n // 3600}{sep}{h} {small.format(n % 3600 // 60)}{sep}{m}"
    return f"{n // 86400}{sep}{d} {small.format(n % 86400 // 3600)}{sep}{h}"
