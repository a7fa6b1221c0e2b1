"""The event store read back for the board: the ready share over time, and one site's state timeline.

The web layer may not import the store (docs/architecture.md): the command that runs the service builds a
`StoreHistory` over its data dir and hands it to the app (``make_app(history=...)``), as it hands the
availability reader and the action desk. Without a store there is none, and the board's burn-up falls back to
the forecast's own samples.

The ready share is monitor/core/figures.py's: polling places in state ``ready`` over every reported polling
place of the scope (``unknown`` and sites with no record yet count in the denominator), per scope as the forecast
keys them (province, each county, urban and rural). It is sampled on a fixed grid (one point per hour; the step
doubles whenever a scope would hold more than ``max_points``, so the memory stays bounded over any programme),
and no point is made while the monitor was stopped or blind (the store's ``closed``/``opened`` markers, a crash
between the last row and the next ``opened``, the ``monitor`` entity's ``blind`` periods): the chart shows a gap
there rather than a share nobody measured. Reading is incremental: each refresh reads only the rows committed
since the last one, in a worker thread (the board renders off the event loop), at most every
``refresh_seconds``.
"""

from __future__ import annotations

import bisect
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from monitor.config.loader import Config
from monitor.core.figures import AREAS, PROVINCE, Scope, is_polling_place
from monitor.core.model import Site
from monitor.errors import StoreError
from monitor.store.chain import connect_readonly

Sample = tuple[float, int, int]  # (time, ready, total)
STEP_SECONDS = 3600.0
MAX_POINTS = 2000
_ROWS = ("SELECT seq, at, kind, entity, new FROM events WHERE seq > ? AND (kind = 'marker' OR (kind = 'transition' "
         "AND (entity = 'monitor' OR substr(entity, 1, 5) = 'site:'))) ORDER BY seq")


def _scopes_of(site: Site) -> tuple[Scope, ...]:
    return PROVINCE, ("county", site.county), ("area", site.area)


@dataclass(slots=True)
class _Shares:
    """The sampling state of one config: site states at the last sample, the samples, changes not yet sampled."""

    version: str
    scopes: dict[str, tuple[Scope, ...]]  # polling place id -> the scopes it counts in
    totals: dict[Scope, int]
    step: float = STEP_SECONDS
    seq: int = 0  # rows read up to here
    last_at: float = -math.inf  # the newest row time read (for a crash: the gap before the next `opened`)
    sampled_to: float | None = None  # the grid point of the last sample
    states: dict[str, str] = field(default_factory=dict)
    ready: dict[Scope, int] = field(default_factory=dict)
    samples: dict[Scope, list[Sample]] = field(default_factory=dict)
    pending: list[tuple[float, int, str, str]] = field(default_factory=list)  # (at, seq, site, state)
    outages: list[tuple[float, float]] = field(default_factory=list)
    stopped_since: float | None = None
    blind_since: float | None = None


class StoreHistory:
    """Answer the board's questions about the past from the event store in ``data_dir`` (read-only)."""

    def __init__(self, config: Callable[[], Config], data_dir: str | Path, *, clock: Callable[[], float] = time.time,
                 step_seconds: float = STEP_SECONDS, max_points: int = MAX_POINTS,
                 refresh_seconds: float = 60.0) -> None:
        self.config = config
        self.data_dir = Path(data_dir)
        self.clock = clock
        self.step = step_seconds
        self.max_points = max_points
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._state: _Shares | None = None
        self._answer: tuple[float, str, Mapping[Scope, tuple[Sample, ...]]] | None = None
        self.reads = 0  # store reads so far (tests: at most one per refresh)

    # -- the ready share over time ---------------------------------------------------------------------------

    def shares(self) -> Mapping[Scope, tuple[Sample, ...]]:
        """Return (time, ready, total) per scope: one point per grid step while the monitor saw, and one now."""
        config = self.config()
        now = self.clock()
        with self._lock:  # concurrent renders wait for one read
            if (self._answer is not None and self._answer[1] == config.version
                    and now - self._answer[0] < self.refresh_seconds):
                return self._answer[2]
            state = self._state
            if state is None or state.version != config.version:  # a reload may move sites: start over
                state = self._fresh(config)
            try:
                state = self._read(state, config)
            except StoreError:
                return MappingProxyType({})  # no store yet: nothing recorded, nothing to draw
            self._advance(state, now)
            self._state = state
            answer = self._with_now(state, now)
            self._answer = (now, config.version, answer)
            return answer

    def _fresh(self, config: Config) -> _Shares:
        polling = [s for s in config.reported_sites() if is_polling_place(s)]
        scopes = {s.id: _scopes_of(s) for s in polling}
        totals: dict[Scope, int] = {PROVINCE: 0, **{("area", a): 0 for a in AREAS}}
        for keys in scopes.values():
            for k in keys:
                totals[k] = totals.get(k, 0) + 1
        totals = {k: n for k, n in totals.items() if n}
        return _Shares(config.version, scopes, totals, step=self.step, ready=dict.fromkeys(totals, 0),
                       samples={k: [] for k in totals})

    def _read(self, state: _Shares, config: Config) -> _Shares:
        """Read the rows committed since ``state.seq``; a row older than the last sample starts over."""
        conn = connect_readonly(self.data_dir)
        try:
            rows = conn.execute(_ROWS, (state.seq,)).fetchall()
            self.reads += 1
            if state.sampled_to is not None and any(kind == "transition" and at < state.sampled_to
                                                    for _, at, kind, _, _ in rows):
                state = self._fresh(config)  # back-dated rows (the demo's simulated past): sample again from seq 0
                rows = conn.execute(_ROWS, (0,)).fetchall()
            for seq, at, kind, entity, new in rows:
                self._row(state, conn, seq, at, kind, entity, new)
                state.seq = seq
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self.data_dir}: {exc}") from exc
        finally:
            conn.close()
        state.pending.sort()
        return state

    @staticmethod
    def _row(state: _Shares, conn: sqlite3.Connection, seq: int, at: float, kind: str, entity: str,
             new: str) -> None:
        if kind == "marker":
            if new == "closed":
                state.stopped_since = at
            elif new == "opened":
                if state.stopped_since is None:  # a crash: nothing was written between the last row and now
                    before = conn.execute("SELECT at FROM events WHERE seq = ?", (seq - 1,)).fetchone()
                    state.stopped_since = before[0] if before is not None else None
                if state.stopped_since is not None and at > state.stopped_since:
                    state.outages.append((state.stopped_since, at))
                state.stopped_since = None
        elif entity == "monitor":
            if new == "blind" and state.blind_since is None:
                state.blind_since = at
            elif new != "blind" and state.blind_since is not None:
                state.outages.append((state.blind_since, at))
                state.blind_since = None
        else:
            site = entity[5:]
            if site in state.scopes:
                state.pending.append((at, seq, site, new))
        state.last_at = max(state.last_at, at)

    def _advance(self, state: _Shares, now: float) -> None:
        """Sample every grid point up to ``now``, applying the changes up to each point."""
        if state.sampled_to is None:
            if not state.pending:
                return
            state.sampled_to = math.floor(state.pending[0][0] / state.step) * state.step
        state.outages.sort()
        starts = [s for s, _ in state.outages]
        i = 0
        point = state.sampled_to + state.step
        while point <= now:
            while i < len(state.pending) and state.pending[i][0] <= point:
                self._apply(state, state.pending[i][2], state.pending[i][3])
                i += 1
            if not self._dark(state, starts, point):
                for scope, total in state.totals.items():
                    state.samples[scope].append((point, state.ready[scope], total))
            state.sampled_to = point
            point += state.step
            if len(state.samples[PROVINCE]) > self.max_points:
                self._coarsen(state)
                point = state.sampled_to + state.step
        del state.pending[:i]
        # Outages that ended before the last sample can no longer hide a point.
        state.outages = [(s, e) for s, e in state.outages if e > state.sampled_to]

    @staticmethod
    def _apply(state: _Shares, site: str, new: str) -> None:
        old = state.states.get(site)
        if old == new:
            return
        state.states[site] = new
        delta = (new == "ready") - (old == "ready")
        if delta:
            for scope in state.scopes[site]:
                state.ready[scope] += delta

    @staticmethod
    def _dark(state: _Shares, starts: list[float], point: float) -> bool:
        """Whether the monitor was stopped or blind at ``point``."""
        k = bisect.bisect_right(starts, point)
        if any(s <= point < e for s, e in state.outages[max(0, k - 8):k]):
            return True
        return any(since is not None and since <= point for since in (state.stopped_since, state.blind_since))

    def _coarsen(self, state: _Shares) -> None:
        """Double the step and keep every other point: the memory stays bounded however long the programme."""
        state.step *= 2
        for scope, points in state.samples.items():
            state.samples[scope] = [p for p in points if round(p[0] / state.step) * state.step == p[0]]
        state.sampled_to = math.floor(state.sampled_to / state.step) * state.step if state.sampled_to else None

    def _with_now(self, state: _Shares, now: float) -> Mapping[Scope, tuple[Sample, ...]]:
        """Return the samples, each scope ending with its share as recorded now (changes since the last point)."""
        ready = dict(state.ready)
        states = dict(state.states)
        for _, _, site, new in state.pending:
            old = states.get(site)
            states[site] = new
            delta = (new == "ready") - (old == "ready")
            for scope in state.scopes[site] if delta else ():
                ready[scope] += delta
        live = not self._dark(state, sorted(s for s, _ in state.outages), now)
        out = {}
        for scope, total in state.totals.items():
            points = list(state.samples[scope])
            if live and (state.sampled_to is not None or state.pending) and (not points or points[-1][0] < now):
                points.append((now, ready[scope], total))
            out[scope] = tuple(points)
        return MappingProxyType(out)

    # -- one site over the last days ---------------------------------------------------------------------------

    def timeline(self, site_id: str, start: float, end: float) -> SiteTimeline:
        """Return the recorded states of the site and its links and terminals over ``[start, end)``."""
        # Index ranges on the entity column: a page reads its own site's rows, never the whole store.
        ranges = [(f"link:{site_id}/", f"link:{site_id}0"),  # "0" is the character after "/"
                  (f"target:{site_id}/terminal/", f"target:{site_id}/terminal0")]
        entities: dict[str, list[Change]] = {}
        try:
            conn = connect_readonly(self.data_dir)
        except StoreError:
            return SiteTimeline(start, end, {}, [], recorded=False)
        try:
            rows = conn.execute(
                "SELECT entity, at, new, reasons FROM events WHERE kind = 'transition' AND at < ? AND (entity = ? OR "
                "(entity >= ? AND entity < ?) OR (entity >= ? AND entity < ?)) ORDER BY at, seq",
                (end, f"site:{site_id}", *ranges[0], *ranges[1])).fetchall()
            marks = conn.execute("SELECT seq, at, kind, entity, new FROM events WHERE entity IN ('store', 'monitor') "
                                 "AND (kind = 'marker' OR kind = 'transition') AND at < ? ORDER BY seq",
                                 (end,)).fetchall()
            probe = _Shares("", {}, {})
            for seq, at, kind, entity, new in marks:
                self._row(probe, conn, seq, at, kind, entity, new)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self.data_dir}: {exc}") from exc
        finally:
            conn.close()
        for entity, at, new, reasons in rows:
            line = entities.setdefault(entity, [])
            if at < start and line:  # only the state in force at the start is kept from before it
                line.pop()
            line.append(Change(max(at, start), new, _reasons(reasons)))
        outages = [(s, e) for s, e in probe.outages if e > start]
        outages += [(since, end) for since in (probe.stopped_since, probe.blind_since) if since is not None]
        return SiteTimeline(start, end, entities, sorted(outages))


@dataclass(frozen=True, slots=True)
class Change:
    """An entity entered ``state`` at ``at`` (for the first, the state in force at the start)."""

    at: float
    state: str
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SiteTimeline:
    """What the store holds of one site over [start, end): per entity (``site:ID``, ``link:ID/primary``,
    ``target:ID/terminal/T1``) its changes in order, and when the monitor was stopped or blind."""

    start: float
    end: float
    entities: Mapping[str, list[Change]]
    outages: list[tuple[float, float]]
    recorded: bool = True


def _reasons(text: str) -> tuple[str, ...]:
    import json

    value = json.loads(text)
    return tuple(str(v) for v in value) if isinstance(value, list) else ()
