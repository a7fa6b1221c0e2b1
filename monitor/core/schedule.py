"""Maintenance windows and waivers from the config, and how they change a site's readiness.

A maintenance window says "this site is being worked on": its state is kept, ``maintenance: <reason>``
becomes its first reason, and availability excludes the time (`intervals` feeds
`monitor.core.availability`). A waiver lifts one requirement of one site until it expires, with who
approved it and why; it stops applying by itself. Times without a timezone are read in the
programme's timezone, which the caller passes in. Pure: the caller owns the clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator, model_validator

from monitor.core.intervals import Interval, merge
from monitor.core.model import Ident, Strict
from monitor.core.readiness import SiteReadiness
from monitor.core.reasons import MAINTENANCE, TERMINALS, TERMINALS_UNKNOWN, WAIVED, Reason, state_of_reasons

Day = Literal["sat", "sun", "mon", "tue", "wed", "thu", "fri"]
Requirement = Literal["backup", "terminals", "primary_quality", "optical_power"]
_WEEKDAY: dict[str, int] = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}  # date.weekday()
_HHMM_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
MAX_DURATION_MINUTES = 7 * 24 * 60

# What each waivable requirement lifts; the severity of what remains is monitor.core.reasons'.
_LIFTS: dict[str, Callable[[Reason], bool]] = {
    "backup": lambda r: r.role == "backup",
    "terminals": lambda r: r.code in (TERMINALS, TERMINALS_UNKNOWN),
    "primary_quality": lambda r: r.role == "primary" and r.name in ("loss", "rtt", "jitter", "errors"),
    "optical_power": lambda r: r.name == "rx_power",
}

# -- a 5-field cron matcher --------------------------------------------------------------------------

_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
                ("day of week", 0, 7))
_DOW_NAMES = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}


def _cron_value(text: str, name: str, low: int, high: int) -> int:
    value = _DOW_NAMES.get(text.lower()) if name == "day of week" else None
    if value is None:
        if not text.isdigit():
            raise ValueError(f"cron {name}: {text!r} is not a number")
        value = int(text)
    if not low <= value <= high:
        raise ValueError(f"cron {name}: {value} is outside {low}-{high}")
    return value


def _cron_field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"cron {name}: bad step in {part!r}")
            step = int(step_text)
        if body == "*":
            first, last = low, high
        elif "-" in body:
            a, _, b = body.partition("-")
            first, last = _cron_value(a, name, low, high), _cron_value(b, name, low, high)
            if first > last:
                raise ValueError(f"cron {name}: range {body!r} runs backwards")
        else:
            first = _cron_value(body, name, low, high)
            last = high if step_text else first  # "5/15" means 5, 20, 35, 50 as in Vixie cron
        out.update(range(first, last + 1, step))
    if name == "day of week" and 7 in out:  # 7 is Sunday too
        out = (out - {7}) | {0}
    return frozenset(out)


class Cron:
    """A parsed ``minute hour day-of-month month day-of-week`` expression (day of week 0 = Sunday)."""

    def __init__(self, expression: str) -> None:
        parts = expression.split()
        if len(parts) != 5:
            raise ValueError(f"cron {expression!r} needs 5 fields (minute hour day-of-month month day-of-week)")
        self.expression = expression
        self.minutes, self.hours, self.doms, self.months, self.dows = (
            _cron_field(p, *spec) for p, spec in zip(parts, _CRON_FIELDS, strict=True))
        # Vixie cron: when both day fields are restricted, a day matching either one runs.
        self._dom_any, self._dow_any = parts[2].startswith("*"), parts[4].startswith("*")

    def matches_day(self, day: date) -> bool:
        """Return whether the expression fires on some minute of ``day``."""
        if day.month not in self.months:
            return False
        dom, dow = day.day in self.doms, (day.weekday() + 1) % 7 in self.dows
        if self._dom_any or self._dow_any:
            return dom and dow
        return dom or dow

    def times(self, day: date) -> list[time]:
        """Return the wall-clock times at which the expression fires on ``day``."""
        if not self.matches_day(day):
            return []
        return [time(h, m) for h in sorted(self.hours) for m in sorted(self.minutes)]


@lru_cache(maxsize=256)
def parse_cron(expression: str) -> Cron:
    """Return the parsed ``expression`` (cached: windows are checked for every site on every cycle)."""
    return Cron(expression)


# -- config models ----------------------------------------------------------------------------------

def _aware(moment: datetime, tz: tzinfo) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


class Weekly(Strict):
    """A window that opens on some days of the week at a local time and lasts ``duration_minutes``."""

    days: tuple[Day, ...] = Field(min_length=1)
    start: str = Field(description="local time HH:MM")
    duration_minutes: int = Field(gt=0, le=MAX_DURATION_MINUTES)

    @field_validator("start")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM_RE.match(value):
            raise ValueError(f"start {value!r} is not a time HH:MM (00:00-23:59)")
        return value

    def opens(self, day: date) -> list[time]:
        """Return the local times the window opens on ``day``."""
        if day.weekday() not in {_WEEKDAY[d] for d in self.days}:
            return []
        hh, mm = self.start.split(":")
        return [time(int(hh), int(mm))]


class MaintenanceWindow(Strict):
    """Planned work on some sites, a county or everything: one-off (start/end), weekly or cron."""

    sites: tuple[Ident, ...] = ()
    counties: tuple[str, ...] = ()
    everything: bool = False
    reason: str = Field(min_length=1)
    start: datetime | None = None
    end: datetime | None = None
    weekly: Weekly | None = None
    cron: str | None = None
    duration_minutes: int | None = Field(None, gt=0, le=MAX_DURATION_MINUTES, description="with cron")

    @model_validator(mode="after")
    def _shape(self) -> MaintenanceWindow:
        if [bool(self.sites), bool(self.counties), self.everything].count(True) != 1:
            raise ValueError("give exactly one scope: sites, counties or everything: true")
        one_off = self.start is not None or self.end is not None
        if [one_off, self.weekly is not None, self.cron is not None].count(True) != 1:
            raise ValueError("give exactly one of start/end (one-off), weekly, or cron with duration_minutes")
        if one_off:
            if self.start is None or self.end is None:
                raise ValueError("a one-off window needs both start and end")
            if (self.start.tzinfo is None) != (self.end.tzinfo is None):
                raise ValueError("start and end must both carry a timezone or both leave it out")
            if self.end <= self.start:
                raise ValueError("end must be after start")
        if (self.cron is None) != (self.duration_minutes is None):
            raise ValueError("cron and duration_minutes go together (weekly has its own duration_minutes)")
        if self.cron is not None:
            parse_cron(self.cron)  # raises ValueError with the field at fault
        return self

    def applies_to(self, site_id: str, county: str) -> bool:
        """Return whether the window covers ``site_id`` in ``county``."""
        return self.everything or site_id in self.sites or county in self.counties

    def _occurrences(self, start: float, end: float, tz: tzinfo) -> list[tuple[float, float]]:
        """Return the raw (unclipped) occurrences that overlap [start, end)."""
        if self.start is not None and self.end is not None:
            s, e = _aware(self.start, tz).timestamp(), _aware(self.end, tz).timestamp()
            return [(s, e)] if s < end and e > start else []
        if self.weekly is not None:
            opens, minutes = self.weekly.opens, self.weekly.duration_minutes
        else:
            assert self.cron is not None and self.duration_minutes is not None
            opens, minutes = parse_cron(self.cron).times, self.duration_minutes
        length = minutes * 60.0
        # An occurrence that opened up to `length` before `start` may still be open; one more day on
        # each side covers any UTC offset.
        day = datetime.fromtimestamp(start - length, tz).date() - timedelta(days=1)
        last = datetime.fromtimestamp(end, tz).date() + timedelta(days=1)
        out = []
        while day <= last:
            for at in opens(day):
                s = datetime.combine(day, at, tzinfo=tz).timestamp()
                if s < end and s + length > start:
                    out.append((s, s + length))
            day += timedelta(days=1)
        return out

    def intervals(self, start: float, end: float, tz: tzinfo) -> list[Interval]:
        """Return the window's time within [start, end), merged and sorted (for availability)."""
        return merge(self._occurrences(start, end, tz), start, end)

    def active(self, now: float, tz: tzinfo) -> bool:
        """Return whether the window is open at ``now``."""
        return any(s <= now < e for s, e in self._occurrences(now, now + 1, tz))


class Waiver(Strict):
    """One requirement of one site lifted until ``until``, approved by someone, for a reason."""

    site: Ident
    requirement: Requirement
    until: datetime = Field(description="expiry; a bare date means midnight at its start")
    approved_by: str = Field(min_length=1)
    reason: str = Field(min_length=1)

    def expires_at(self, tz: tzinfo | None = None) -> float:
        """Return the expiry as Unix seconds (a naive ``until`` is read in ``tz``, else UTC)."""
        return _aware(self.until, tz or UTC).timestamp()

    def active(self, now: float, tz: tzinfo | None = None) -> bool:
        """Return whether the waiver still applies at ``now``."""
        return now < self.expires_at(tz)

    def note(self, tz: tzinfo | None = None) -> Reason:
        """Return the reason that records the waiver, ``waived backup until 2026-06-01 (by X)``."""
        day = datetime.fromtimestamp(self.expires_at(tz), tz or UTC).date().isoformat()
        return Reason(WAIVED, f"until {day} (by {self.approved_by})", subject=self.requirement)


# -- applying them ----------------------------------------------------------------------------------

def maintenance_for(windows: Iterable[MaintenanceWindow], site_id: str, county: str, now: float,
                    tz: tzinfo) -> MaintenanceWindow | None:
    """Return the first window that covers the site and is open at ``now``."""
    return next((w for w in windows if w.applies_to(site_id, county) and w.active(now, tz)), None)


def maintenance_intervals(windows: Iterable[MaintenanceWindow], site_id: str, county: str, start: float,
                          end: float, tz: tzinfo) -> list[Interval]:
    """Return the site's maintenance time within [start, end), merged (every window that covers it)."""
    return merge(i for w in windows if w.applies_to(site_id, county) for i in w.intervals(start, end, tz))


def waivers_for(waivers: Iterable[Waiver], site_id: str, now: float, tz: tzinfo | None = None) -> list[Waiver]:
    """Return the site's waivers that have not expired at ``now``."""
    return [w for w in waivers if w.site == site_id and w.active(now, tz)]


def apply_schedule(result: SiteReadiness, county: str, windows: Sequence[MaintenanceWindow],
                   waivers: Sequence[Waiver], now: float, tz: tzinfo) -> SiteReadiness:
    """Return ``result`` with maintenance noted first and waived requirements lifted.

    Maintenance keeps the computed state (the caller counts the time as maintenance). A waiver drops
    the reasons of its requirement and adds a note; the state is then recomputed from what remains.
    """
    reasons = list(result.reasons)
    state = result.state
    notes: list[Reason] = []
    lifted = False
    for waiver in waivers_for(waivers, result.site, now, tz):
        lifts = _LIFTS[waiver.requirement]
        kept = [r for r in reasons if not lifts(r)]
        lifted = lifted or len(kept) != len(reasons)
        reasons = kept
        if (note := waiver.note(tz)) not in notes:
            notes.append(note)
    if lifted:
        # "isolated" stays: both links are down whatever the policy asks of the backup.
        state = state_of_reasons(reasons)
    window = maintenance_for(windows, result.site, county, now, tz)
    head = [Reason(MAINTENANCE, window.reason)] if window is not None else []
    if not head and not notes:
        return result
    return replace(result, state=state, reasons=(*head, *reasons, *notes))

