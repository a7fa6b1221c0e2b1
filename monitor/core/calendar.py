"""The Jalali (Solar Hijri) calendar: conversion both ways, parsing and formatting of report dates.

The arithmetic 33-year rule: a year is leap when ``year % 33`` is one of 1, 5, 9, 13, 17, 22, 26, 30
(eight leap years in every 33). It is the rule jdatetime and most Iranian software use and agrees
with the official (astronomical) calendar for the years a report can name; the tests compare every
day of 1300–1500 with jdatetime. Gregorian arithmetic is left to `datetime.date` ordinals.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, tzinfo

LEAP_RESIDUES = frozenset((1, 5, 9, 13, 17, 22, 26, 30))
CYCLE_YEARS, CYCLE_DAYS = 33, 33 * 365 + 8
# Leap years among residues 1..r of a cycle (index r = 0..32).
_LEAPS_UPTO = tuple(sum(1 for k in range(1, r + 1) if k in LEAP_RESIDUES) for r in range(CYCLE_YEARS))
MONTHS_FA = ("فروردین", "اردیبهشت", "خرداد", "تیر", "مرداد", "شهریور", "مهر", "آبان", "آذر", "دی", "بهمن",
             "اسفند")
_PERSIAN_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
_TO_ASCII_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")
JALALI_YEAR_MAX = 1700  # a date whose year is below this is read as Jalali (Gregorian years are larger)


def is_leap(jy: int) -> bool:
    """Return whether Jalali year ``jy`` has 366 days (Esfand has 30)."""
    return jy % CYCLE_YEARS in LEAP_RESIDUES


def month_length(jy: int, jm: int) -> int:
    """Return the number of days of month ``jm`` (1–12) of Jalali year ``jy``."""
    if not 1 <= jm <= 12:
        raise ValueError(f"Jalali month must be 1..12, got {jm}")
    if jm <= 6:
        return 31
    if jm <= 11:
        return 30
    return 30 if is_leap(jy) else 29


def _days_before_year(jy: int) -> int:
    """Days from 1 Farvardin of year 1 to 1 Farvardin of ``jy``."""
    n = jy - 1
    cycles, rest = divmod(n, CYCLE_YEARS)
    return 365 * n + 8 * cycles + _LEAPS_UPTO[rest]


def _days_before_month(jm: int) -> int:
    return 31 * (jm - 1) if jm <= 7 else 186 + 30 * (jm - 7)


# 1 Farvardin 1403 was Wednesday 20 March 2024: the anchor that ties the two day counts together.
_EPOCH = date(2024, 3, 20).toordinal() - _days_before_year(1403)


def jalali_to_gregorian(jy: int, jm: int, jd: int) -> tuple[int, int, int]:
    """Return the Gregorian (year, month, day) of a Jalali date; ValueError if it does not exist."""
    if not 1 <= jd <= month_length(jy, jm):
        raise ValueError(f"{jy:04d}-{jm:02d}-{jd:02d} is not a Jalali date (month {jm} has "
                         f"{month_length(jy, jm)} days)")
    g = date.fromordinal(_EPOCH + _days_before_year(jy) + _days_before_month(jm) + jd - 1)
    return g.year, g.month, g.day


def gregorian_to_jalali(gy: int, gm: int, gd: int) -> tuple[int, int, int]:
    """Return the Jalali (year, month, day) of a Gregorian date."""
    days = date(gy, gm, gd).toordinal() - _EPOCH  # days since 1 Farvardin 1
    jy = (CYCLE_YEARS * days) // CYCLE_DAYS + 1  # an estimate, at most one year off
    while _days_before_year(jy + 1) <= days:
        jy += 1
    while _days_before_year(jy) > days:
        jy -= 1
    doy = days - _days_before_year(jy)  # 0-based day of the year
    jm = doy // 31 + 1 if doy < 186 else (doy - 186) // 30 + 7
    return jy, jm, doy - _days_before_month(jm) + 1


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
