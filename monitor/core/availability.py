"""Exact availability of a link, terminal or site over a period, from its state transitions.

The timeline is cut into pieces at every transition and at every edge of a maintenance window; each
piece is counted once: as maintenance if a window covers it, else as unknown if the monitor could not
see (state ``None`` or ``"unknown"`` unless the caller calls that up or down), else as up, down or
other. Maintenance and unknown are reported on their own and never counted as up or as down, so
``ratio = up / (up + down + other)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from monitor.core.intervals import merge
from monitor.core.reasons import Reason

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Availability:
    """Seconds of a period by kind; they add up to the period's length."""

    up_seconds: float = 0.0
    down_seconds: float = 0.0
    other_seconds: float = 0.0  # neither up nor down nor unknown (e.g. degraded when only ready is up)
    unknown_seconds: float = 0.0
    maintenance_seconds: float = 0.0

    @property
    def observed_seconds(self) -> float:
        """Return the time that counts towards the ratio."""
        return self.up_seconds + self.down_seconds + self.other_seconds

    @property
    def ratio(self) -> float | None:
        """Return up / (up + down + other), or None when nothing was observed."""
        observed = self.observed_seconds
        return self.up_seconds / observed if observed > 0 else None

    def __add__(self, other: Availability) -> Availability:
        """Return the sum of two availabilities (several terminals, or consecutive periods)."""
        return Availability(self.up_seconds + other.up_seconds, self.down_seconds + other.down_seconds,
                            self.other_seconds + other.other_seconds, self.unknown_seconds + other.unknown_seconds,
                            self.maintenance_seconds + other.maintenance_seconds)


def _segments(changes: Iterable[tuple[float, T]], start: float, end: float,
              initial: T) -> Iterator[tuple[float, float, T]]:
    """Yield (from, to, value) pieces of [start, end) from sorted (at, value) changes."""
    if end < start:
        raise ValueError(f"period ends ({end}) before it starts ({start})")
    current, at_prev, last = initial, start, float("-inf")
    for at, value in changes:
        if at < last:
            raise ValueError(f"transitions are not sorted by time: {at} after {last}")
        last = at
        if at >= end:
            break
        if at > at_prev:
            yield at_prev, at, current
            at_prev = at
        current = value
    if end > at_prev:
        yield at_prev, end, current


def _split(pieces: Iterable[tuple[float, float, T]], maintenance: list[tuple[float, float]]
           ) -> Iterator[tuple[float, T, bool]]:
    """Yield (seconds, value, in maintenance) for each piece cut at the maintenance edges."""
    k = 0
    for s, e, value in pieces:
        while k < len(maintenance) and maintenance[k][1] <= s:
            k += 1
        cursor, j = s, k
        while cursor < e:
            if j < len(maintenance) and maintenance[j][0] <= cursor:
                until = min(e, maintenance[j][1])
                yield until - cursor, value, True
            else:
                until = min(e, maintenance[j][0]) if j < len(maintenance) else e
                yield until - cursor, value, False
            cursor = until
            if j < len(maintenance) and maintenance[j][1] <= cursor:
                j += 1


def availability(transitions: Iterable[tuple[float, str]], start: float, end: float, *, initial: str | None,
                 up_states: frozenset[str], down_states: frozenset[str],
                 maintenance: Sequence[tuple[float, float]] = ()) -> Availability:
    """Return how [start, end) divides into up, down, other, unknown and maintenance time.

    ``transitions`` are (at, new state) sorted by time; ``initial`` is the state in force at
    ``start`` (None: unknown). A transition at or before ``start`` replaces ``initial``.
    """
    totals = {"up": 0.0, "down": 0.0, "other": 0.0, "unknown": 0.0, "maintenance": 0.0}
    pieces = _segments(transitions, start, end, initial)
    for seconds, state, in_maintenance in _split(pieces, merge(maintenance, start, end)):
        if in_maintenance:
            kind = "maintenance"
        elif state is None:
            kind = "unknown"
        elif state in up_states:
            kind = "up"
        elif state in down_states:
            kind = "down"
        else:
            kind = "unknown" if state == "unknown" else "other"
        totals[kind] += seconds
    return Availability(totals["up"], totals["down"], totals["other"], totals["unknown"], totals["maintenance"])


def failed_requirements(transitions_with_reasons: Iterable[tuple[float, Sequence[Reason]]], start: float, end: float,
                        initial: Sequence[Reason] | None, *,
                        maintenance: Sequence[tuple[float, float]] = ()) -> dict[str, float]:
    """Return how many seconds of [start, end) each reason code was present (outside maintenance).

    ``transitions_with_reasons`` are (at, reasons after the change) sorted by time; ``initial`` the
    reasons in force at ``start`` (None: none known). A code is counted once per instant however
    many of its reasons are present.
    """
    out: dict[str, float] = {}
    changes = ((at, tuple(reasons)) for at, reasons in transitions_with_reasons)
    pieces = _segments(changes, start, end, tuple(initial or ()))
    for seconds, reasons, in_maintenance in _split(pieces, merge(maintenance, start, end)):
        if in_maintenance:
            continue
        for code in dict.fromkeys(r.code for r in reasons):
            out[code] = out.get(code, 0.0) + seconds
    return out
