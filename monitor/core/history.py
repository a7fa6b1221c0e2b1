"""Readiness over time: sustained readiness and flap damping. No clock, no I/O; the caller passes ``now``
and holds the memory (a `SustainTracker` object; flap damping's memory as immutable `Flap` values).

`SustainTracker` turns the raw (instantaneous) state of each site into the state people act on: a
site is ``ready`` only once it has been ready for the whole window with enough availability.

The rules, precisely (window W, minimum availability A):

* A *streak* starts when the site is raw ``ready`` and none is running.
* The streak breaks when the observed not-ready time (``degraded``/``not_ready``; ``unknown`` is
  excluded) in the trailing window since it started exceeds the budget ``(1 - A) × W``: from then
  on the site cannot meet A over a full window, so it starts over the next time it is raw ready.
  Shorter slips are tolerated, as the availability target says they should be.
* The site is sustained ``ready`` when it is raw ``ready``, the streak is at least W old, and its
  availability over the trailing W (raw-ready time / observed time) is at least A. Otherwise a raw
  ``ready`` is reported as ``degraded`` with ``sustaining (5h of 24h)`` or
  ``sustaining (availability 97.1% of 99%)``. Any other raw state passes through unchanged.
* ``first_ready_at`` is the first time the site was sustained ready; a *regression* is a
  sustained-ready site later seen ``degraded`` or ``not_ready`` (``unknown`` is the monitor's
  blindness, not the site's fault, so it neither counts nor resets that).

With W = 0 the tracker passes states through and still keeps ``first_ready_at`` and regressions.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monitor.core.reasons import SUSTAINING, Reason

EXPORT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Sustained:
    """The sustained verdict on one site at one time."""

    state: str
    reason: Reason | None  # sustaining (...): why a raw ready site is reported degraded
    first_ready_at: float | None
    ever_ready: bool
    regressions: int
    sustained_seconds: float  # age of the current streak; 0 without one
    availability_ratio: float | None = None  # raw-ready share of the observed trailing window


@dataclass(slots=True)
class _Site:
    # (at, raw state) at each change; the first may predate the window. A list, not a deque: a site's list
    # is short (a window's changes), and a deque's first block costs 600 bytes a site (issue 13).
    changes: list[tuple[float, str]]
    last_at: float
    streak_start: float | None = None
    first_ready_at: float | None = None
    regressions: int = 0
    was_ready: bool = False  # the last final state other than unknown was ready


def progress(elapsed: float, window: float) -> str:
    """Return ``5h of 24h``, in the largest unit that states the window exactly (h, m or s)."""
    if window >= 3600 and window % 3600 == 0:
        unit, suffix = 3600.0, "h"
    else:
        unit, suffix = (60.0, "m") if window >= 60 and window % 60 == 0 else (1.0, "s")
    return f"{int(elapsed // unit)}{suffix} of {window / unit:g}{suffix}"


class SustainTracker:
    """Per-site sustained readiness with bounded memory (only the trailing window is kept)."""

    def __init__(self, window_seconds: float, min_availability: float, *,
                 max_gap_seconds: float | None = None, max_changes: int = 10_000) -> None:
        if window_seconds < 0 or not 0 <= min_availability <= 1:
            raise ValueError("window_seconds must be >= 0 and min_availability within [0, 1]")
        self.window_seconds = float(window_seconds)
        self.min_availability = float(min_availability)
        # Without an update for longer than this the monitor was not looking: the gap is unknown.
        self.max_gap_seconds = max_gap_seconds
        self.max_changes = max_changes
        self._sites: dict[str, _Site] = {}

    def update(self, site_id: str, raw_state: str, now: float) -> Sustained:
        """Record ``raw_state`` for ``site_id`` at ``now`` and return the sustained verdict."""
        h = self._sites.get(site_id)
        if h is None:
            h = self._sites[site_id] = _Site([(now, raw_state)], now)
        else:
            now = max(now, h.last_at)  # a clock stepping back must not rewrite history
            if self.max_gap_seconds is not None and now - h.last_at > self.max_gap_seconds:
                self._change(h, h.last_at + self.max_gap_seconds, "unknown")
            self._change(h, now, raw_state)
            h.last_at = now
        window = self.window_seconds
        self._trim(h, now)
        if h.streak_start is not None and window > 0:
            _, down = self._tally(h, max(h.streak_start, now - window), now)
            if down > (1 - self.min_availability) * window:
                h.streak_start = None
        if raw_state == "ready" and h.streak_start is None:
            h.streak_start = h.changes[-1][0]
        up, down = self._tally(h, now - window, now)
        ratio = up / (up + down) if up + down > 0 else None
        state = raw_state
        reason: Reason | None = None
        elapsed = now - h.streak_start if h.streak_start is not None else 0.0
        if raw_state == "ready" and window > 0:
            if elapsed < window:
                state, reason = "degraded", Reason(SUSTAINING, progress(elapsed, window))
            elif ratio is None:  # the monitor saw nothing of the window: no proof, no ready
                state, reason = "degraded", Reason(SUSTAINING, "no data in the window")
            elif ratio < self.min_availability:
                state = "degraded"
                reason = Reason(SUSTAINING, f"availability {ratio * 100:.1f}% of {self.min_availability * 100:g}%")
        if state == "ready":
            if h.first_ready_at is None:
                h.first_ready_at = now
            h.was_ready = True
        elif state != "unknown":
            if h.was_ready:
                h.regressions += 1
            h.was_ready = False
        return Sustained(state, reason, h.first_ready_at, h.first_ready_at is not None, h.regressions,
                         elapsed, ratio)

    def _change(self, h: _Site, at: float, state: str) -> None:
        if h.changes[-1][1] != state:
            h.changes.append((at, state))
            if len(h.changes) > self.max_changes:  # a pathological flapper: forget the oldest change
                del h.changes[0]

    def _trim(self, h: _Site, now: float) -> None:
        # Keep the change in force at the window's start, drop everything older.
        old = 0
        while len(h.changes) - old >= 2 and h.changes[old + 1][0] <= now - self.window_seconds:
            old += 1
        if old:
            del h.changes[:old]

    @staticmethod
    def _tally(h: _Site, start: float, end: float) -> tuple[float, float]:
        """Return (ready seconds, observed not-ready seconds) within [start, end)."""
        up = down = 0.0
        changes = h.changes
        for i, (at, state) in enumerate(changes):
            until = changes[i + 1][0] if i + 1 < len(changes) else end
            seconds = min(until, end) - max(at, start)
            if seconds <= 0 or state == "unknown":
                continue
            if state == "ready":
                up += seconds
            else:
                down += seconds
        return up, down

    def forget(self, keep: set[str] | frozenset[str]) -> None:
        """Drop the history of every site not in ``keep`` (sites removed from the config)."""
        for site_id in set(self._sites) - set(keep):
            del self._sites[site_id]

    def export(self) -> dict[str, Any]:
        """Return the tracker's state as JSON-able data for `restore`."""
        return {
            "version": EXPORT_VERSION,
            "window_seconds": self.window_seconds,
            "min_availability": self.min_availability,
            "sites": {
                site_id: {"changes": [[at, state] for at, state in h.changes], "last_at": h.last_at,
                          "streak_start": h.streak_start, "first_ready_at": h.first_ready_at,
                          "regressions": h.regressions, "was_ready": h.was_ready}
                for site_id, h in sorted(self._sites.items())
            },
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Replace the state with ``data`` from `export` (the window and target are this tracker's)."""
        if data.get("version") != EXPORT_VERSION:
            raise ValueError(f"cannot restore sustain history version {data.get('version')!r}")
        sites: dict[str, _Site] = {}
        for site_id, d in data["sites"].items():
            changes = [(float(at), sys.intern(str(state))) for at, state in d["changes"]]
            if not changes:
                raise ValueError(f"sustain history of {site_id} has no changes")
            sites[site_id] = _Site(changes, float(d["last_at"]), _opt(d["streak_start"]), _opt(d["first_ready_at"]),
                                   int(d["regressions"]), bool(d["was_ready"]))
        self._sites = sites


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class Flap:
    """What flap damping remembers of one entity: an immutable value, replaced at each step."""

    raw: str  # the last raw state seen
    last_change: float  # when the raw state last changed (or was first seen)
    changes: tuple[float, ...] = ()  # times of the recent raw changes, oldest first
    flapping: bool = False

    @property
    def output(self) -> tuple[str, bool]:
        """Return (damped state, flapping). Down beats flapping: damping holds a link that keeps coming
        back, never one that is down now."""
        if self.flapping and self.raw not in ("down", "unknown"):
            return "flapping", True
        return self.raw, False


Flaps = Mapping[str, Flap]  # entity ("SITE/role") -> its flap memory


@dataclass(frozen=True, slots=True)
class FlapDamper:
    """Report an entity that keeps changing state as ``flapping`` instead of every change.

    More than ``max_changes`` changes within ``window_seconds`` → ``flapping`` (the caller counts it
    as degraded), held until the raw state has not changed for ``hold_seconds``; meanwhile a link that
    comes back reads ``flapping``, and one that is ``down`` reads ``down`` (down beats flapping). The
    first state seen is not a change, and ``unknown`` is no state of the entity at all: the monitor did
    not see it, so an unknown period neither counts as a change nor ends one (up, unknown, up is no
    change; up, unknown, down is one). Callers pass the states flapping is about: a link passes ``up``
    or ``down`` (an impaired, lossy cycle is up for this purpose) or ``unknown``.

    The damper is only the rule: `step` takes an entity's memory and returns the next one, so the caller
    keeps the memory (monitor.core.readiness.evaluate returns it, the runtime holds it between cycles).
    New thresholds (a reloaded policy) are a new damper over the same memory.
    """

    max_changes: int = 4
    window_seconds: float = 600
    hold_seconds: float = 600

    def __post_init__(self) -> None:
        if self.max_changes < 1 or self.window_seconds <= 0 or self.hold_seconds < 0:
            raise ValueError("max_changes >= 1, window_seconds > 0 and hold_seconds >= 0")

    def step(self, flap: Flap | None, state: str, now: float) -> Flap:
        """Return the memory after seeing ``state`` at ``now`` (``flap``: the memory before, None at first)."""
        if flap is None:
            return Flap(state, now)
        raw, last_change, changes, flapping = flap.raw, flap.last_change, flap.changes, flap.flapping
        if state != raw and state != "unknown":
            if raw != "unknown":  # the first known state after nothing known is not a change either
                changes = (*changes, now)
            raw, last_change = state, now
        changes = changes[-(self.max_changes + 1):]  # more than that is flapping already
        old = 0
        while old < len(changes) and changes[old] <= now - self.window_seconds:
            old += 1
        changes = changes[old:]
        if not flapping and len(changes) > self.max_changes:
            flapping = True
        elif flapping and now - last_change >= self.hold_seconds:
            flapping, changes = False, ()
        after = Flap(raw, last_change, changes, flapping)
        return flap if after == flap else after


def forget(flaps: Flaps, keep: set[str] | frozenset[str]) -> dict[str, Flap]:
    """Return the memory of the entities in ``keep`` only."""
    return {entity: f for entity, f in flaps.items() if entity in keep}
