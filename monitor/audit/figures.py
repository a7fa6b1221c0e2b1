"""The audit's figures: what the event store says about each site, county and the province over a period.

The store is the record, context included; the config at hand gives only the sites' names, counties
and areas. Every figure comes from rows with ``at`` before the period's end: the state in force at
the start is the last transition before it. Maintenance is the time a site's recorded reasons
carried ``maintenance: …`` (the monitor records the reason change when a window opens and closes),
so a window added to the config afterwards cannot rewrite past availability. Waivers are those of
the config versions in force over the period, as their ``config`` rows recorded them (who approved
them and why). The config versions in force, and any part of that context the record lacks, are
part of the figures.

Blind time is time in which nobody can say what state a site was in: the state was ``unknown``
(stale data, an upstream node down), or the monitor itself was not running — between a store
``closed`` marker and the next ``opened`` one or, after a crash (``opened`` with no ``closed``
before it), from the last row written to the ``opened`` marker.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from monitor.config.loader import Config
from monitor.core import figures as core_figures
from monitor.core.availability import Availability, availability, failed_requirements
from monitor.core.figures import is_polling_place
from monitor.core.intervals import merge
from monitor.core.model import Site
from monitor.core.reasons import MAINTENANCE, NO_DATA, SITE_STATES, Reason
from monitor.core.schedule import Waiver
from monitor.store.chain import connect_readonly
from monitor.store.events import EventStore

T = TypeVar("T")
SAMPLE_SECONDS = 3600.0  # ready-share samples for the forecast
AREAS = ("urban", "rural")


def is_failure(code: str) -> bool:
    """Return whether a reason code is a requirement the site failed (not blindness, not a note)."""
    reason = Reason(code)  # what a code means does not depend on its detail
    return reason.state != "unknown" and not reason.informational


def _reasons(stored: Sequence[str]) -> tuple[Reason, ...]:
    return tuple(Reason.parse(text) for text in stored)


@dataclass(frozen=True, slots=True)
class Period:
    """[start, end) in Unix seconds, shown in the programme's timezone.

    ``requested_end`` is set when the end asked for lay beyond the last recorded moment and ``end``
    was clipped to it: a period never counts hours the store has no record of yet.
    """

    start: float
    end: float
    zone: ZoneInfo
    requested_end: float | None = None

    def local(self, ts: float) -> datetime:
        """Return ``ts`` as a datetime in the programme's timezone."""
        return datetime.fromtimestamp(ts, self.zone)

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class WaiverInForce:
    site: str
    requirement: str
    until: float
    approved_by: str
    reason: str


@dataclass(slots=True)
class SiteFigures:
    """One site over the period."""

    site: Site
    state: str  # at the end of the period
    since: float | None  # when that state began (may be before the period)
    reasons: tuple[Reason, ...]  # at the end of the period
    first_ready: float | None  # first time ever recorded ready, up to the period's end
    site_availability: Availability
    primary: Availability | None  # None: the site has no such link
    backup: Availability | None
    terminals: Availability | None  # summed over its terminals (terminal-seconds)
    failed: dict[str, float]  # requirement (reason code) -> seconds present in the period
    waivers: tuple[WaiverInForce, ...]

    @property
    def maintenance_seconds(self) -> float:
        return self.site_availability.maintenance_seconds

    @property
    def blind_seconds(self) -> float:
        return self.site_availability.unknown_seconds


@dataclass(slots=True)
class GroupFigures:
    """The province, a county or an area: sums over its sites."""

    name: str
    sites: int = 0
    states: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SITE_STATES, 0))
    ever_ready: int = 0
    site_availability: Availability = field(default_factory=Availability)
    primary: Availability = field(default_factory=Availability)
    backup: Availability = field(default_factory=Availability)
    terminals: Availability = field(default_factory=Availability)
    failed: dict[str, float] = field(default_factory=dict)
    failed_sites: dict[str, int] = field(default_factory=dict)
    waivers: int = 0
    forecast: Any = None  # monitor.core.forecast.Forecast

    def add(self, s: SiteFigures) -> None:
        self.sites += 1
        self.states[s.state] = self.states.get(s.state, 0) + 1
        self.ever_ready += s.first_ready is not None
        self.site_availability += s.site_availability
        self.primary += s.primary or Availability()
        self.backup += s.backup or Availability()
        self.terminals += s.terminals or Availability()
        for code, seconds in s.failed.items():
            self.failed[code] = self.failed.get(code, 0.0) + seconds
            self.failed_sites[code] = self.failed_sites.get(code, 0) + 1
        self.waivers += len(s.waivers)

    @property
    def ready_share(self) -> float | None:
        return self.states.get("ready", 0) / self.sites if self.sites else None


@dataclass(frozen=True, slots=True)
class ConfigInForce:
    """A config version as the store recorded it: in force from ``since`` until ``until`` (None: still)."""

    version: str
    since: float
    until: float | None
    payload: dict[str, Any]


@dataclass(slots=True)
class Figures:
    """Everything the bundle's files show."""

    period: Period
    config: Config
    county: str | None
    sites: list[SiteFigures]
    province: GroupFigures
    counties: dict[str, GroupFigures]
    areas: dict[str, GroupFigures]
    outages: list[tuple[float, float]]  # the monitor's own blind intervals within the period
    unknown_entities: int  # sites in the store that the config does not know (not reported)
    config_versions: list[ConfigInForce] = field(default_factory=list)  # in force over the period, in order
    context_notes: list[str] = field(default_factory=list)  # what the record lacks, said in the report
    # The figures at the end of the period, by monitor/core/figures.py (the definition every live surface uses):
    # polling places by state and their ready share, network nodes apart, terminals up (unknown is not 0).
    at_end: core_figures.Figures = field(default_factory=lambda: core_figures.compute([], {}))
    # A multi-shard audit: each shard's store and the sites it owns (empty for one store).
    shards: list[ShardRecord] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ShardRecord:
    """One shard of a multi-shard audit: its store (None: none was given) and what it recorded for its sites."""

    shard: tuple[int, int]  # (K, N)
    data_dir: Path | None
    sites: tuple[str, ...]  # the reported sites it owns (of the county, if one was asked for)
    blind: list[tuple[float, float]]  # when it recorded nothing, or was blind, within the period (merged)

    @property
    def name(self) -> str:
        return f"shard {self.shard[0]} of {self.shard[1]}"


@dataclass(slots=True)
class _Timeline:
    """One entity: its state at the start, its changes within the period, and (sites) reasons."""

    initial: str | None = None
    initial_reasons: tuple[Reason, ...] = ()
    changes: list[tuple[float, str]] = field(default_factory=list)
    reason_changes: list[tuple[float, tuple[Reason, ...]]] = field(default_factory=list)
    last: str | None = None
    last_reasons: tuple[Reason, ...] = ()
    since: float | None = None
    first_ready: float | None = None


def _read_store(store: EventStore, period: Period) -> dict[str, _Timeline]:
    """One pass over the transitions up to the period's end: every entity's timeline."""
    lines: dict[str, _Timeline] = defaultdict(_Timeline)
    for e in store.events(end=period.end, kinds=("transition",)):
        line = lines[e.entity]
        if line.last != e.new:
            line.since = e.at
        reasons = _reasons(e.reasons)  # the store's text, typed again
        line.last, line.last_reasons = e.new, reasons
        if e.new == "ready" and line.first_ready is None and e.entity.startswith("site:"):
            line.first_ready = e.at
        if e.at < period.start:
            line.initial, line.initial_reasons = e.new, reasons
        else:
            line.changes.append((e.at, e.new))
            line.reason_changes.append((e.at, reasons))
    return lines


def monitor_outages(data_dir: str | Path, period: Period) -> list[tuple[float, float]]:
    """Return when the monitor itself was not running, or was blind, within the period (merged, sorted).

    An ``opened`` marker closes an outage that began at the row before it: the ``closed`` marker
    of a clean stop, or the last row written before a crash (snapshot rows bound that to one
    snapshot interval). A store whose last row is ``closed`` is still stopped. A blind monitor is one
    transition of the entity ``monitor`` to ``blind`` and one back to ``seeing`` (monitor/runtime/recorder.py):
    no site transition is written in between, so that interval is the monitor's, not the sites'.
    """
    conn = connect_readonly(data_dir)
    try:
        markers = conn.execute("SELECT seq, at, new FROM events WHERE kind = 'marker' AND new IN ('opened', 'closed') "
                               "ORDER BY seq").fetchall()
        (last_seq,) = conn.execute("SELECT MAX(seq) FROM events").fetchone()
        outages = []
        for seq, at, new in markers:
            if new == "opened":
                before = conn.execute("SELECT at FROM events WHERE seq = ?", (seq - 1,)).fetchone()
                if before is not None and at > before[0]:  # marker times are wall-clock: ignore one behind
                    outages.append((before[0], at))
            elif seq == last_seq:
                outages.append((at, max(at, period.end)))
        blind_since: float | None = None
        for at, new in conn.execute("SELECT at, new FROM events WHERE kind = 'transition' AND entity = 'monitor' "
                                    "ORDER BY seq"):
            if new == "blind" and blind_since is None:
                blind_since = at
            elif new != "blind" and blind_since is not None:
                outages.append((blind_since, at))
                blind_since = None
        if blind_since is not None:
            outages.append((blind_since, max(blind_since, period.end)))
    finally:
        conn.close()
    return merge(outages, period.start, period.end)


def _blinded(changes: Sequence[tuple[float, T]], outages: Sequence[tuple[float, float]], initial: T | None,
             blind: T) -> list[tuple[float, T]]:
    """Return ``changes`` (sorted) with ``blind`` in force during each outage and the state resumed after it."""
    points: list[tuple[float, int, T | None]] = [(at, 1, value) for at, value in changes]
    points += [(s, 2, None) for s, _ in outages] + [(e, 0, None) for _, e in outages]
    out: list[tuple[float, T]] = []
    current, in_outage = initial, False
    # At one instant: an outage ends, then changes apply, then an outage starts (blindness wins).
    for at, kind, value in sorted(points, key=lambda p: (p[0], p[1])):
        if kind == 1:
            current = value
            if not in_outage:
                out.append((at, value))  # type: ignore[arg-type]
        elif kind == 2:
            in_outage = True
            out.append((at, blind))
        else:
            in_outage = False
            out.append((at, blind if current is None else current))
    return out


def _entity_availability(line: _Timeline | None, period: Period, outages: list[tuple[float, float]],
                         maintenance: list[tuple[float, float]], up: frozenset[str],
                         down: frozenset[str]) -> Availability:
    initial = line.initial if line else None
    changes = sorted(line.changes, key=lambda c: c[0]) if line else []
    if outages:
        changes = _blinded(changes, outages, initial, "unknown")
    return availability(changes, period.start, period.end, initial=initial, up_states=up, down_states=down,
                        maintenance=maintenance)


SITE_UP, SITE_DOWN = frozenset({"ready"}), frozenset({"not_ready"})
LINK_UP, LINK_DOWN = frozenset({"up"}), frozenset({"down"})


def _site_figures(site: Site, lines: dict[str, _Timeline], period: Period, outages: list[tuple[float, float]],
                  maintenance: list[tuple[float, float]], waivers: tuple[WaiverInForce, ...]) -> SiteFigures:
    line = lines.get(f"site:{site.id}")
    site_avail = _entity_availability(line, period, outages, maintenance, SITE_UP, SITE_DOWN)
    links = {}
    for link in site.links:
        links[link.role] = _entity_availability(lines.get(f"link:{site.id}/{link.role}"), period, outages,
                                                maintenance, LINK_UP, LINK_DOWN)
    terminals: Availability | None = None
    for t in site.terminals:
        a = _entity_availability(lines.get(f"target:{site.id}/terminal/{t.id}"), period, outages, maintenance,
                                 LINK_UP, LINK_DOWN)
        terminals = a if terminals is None else terminals + a
    failed: dict[str, float] = {}
    if line is not None:
        changes = sorted(line.reason_changes, key=lambda c: c[0])
        empty: tuple[Reason, ...] = ()
        if outages:
            changes = _blinded(changes, outages, line.initial_reasons, empty)
        raw = failed_requirements(changes, period.start, period.end, line.initial_reasons, maintenance=maintenance)
        failed = {code: s for code, s in sorted(raw.items()) if is_failure(code) and s > 0}
    return SiteFigures(
        site=site, state=(line.last or "unknown") if line else "unknown", since=line.since if line else None,
        reasons=line.last_reasons if line else (Reason(NO_DATA),), first_ready=line.first_ready if line else None,
        site_availability=site_avail, primary=links.get("primary"), backup=links.get("backup"),
        terminals=terminals, failed=failed, waivers=waivers,
    )


def config_history(store: EventStore) -> list[ConfigInForce]:
    """Return every config version the store recorded coming into force, in order."""
    rows = [(e.at, e.new, e.payload) for e in store.events(kinds=("config",))]
    return [ConfigInForce(version, at, rows[i + 1][0] if i + 1 < len(rows) else None, payload)
            for i, (at, version, payload) in enumerate(rows)]


def in_force(history: list[ConfigInForce], period: Period) -> list[ConfigInForce]:
    """Return the versions in force at some time in the period (the one in force at its start first)."""
    return [c for c in history if c.since < period.end and (c.until is None or c.until > period.start)]


def _waivers(config: Config, versions: list[ConfigInForce], period: Period,
             notes: list[str]) -> dict[str, tuple[WaiverInForce, ...]]:
    """Waivers of the recorded config versions in force over the period, while each version was."""
    out: dict[str, list[WaiverInForce]] = defaultdict(list)
    for c in versions:
        if "waivers" in c.payload:
            waivers = [Waiver.model_validate(w) for w in c.payload["waivers"]]
        elif c.version == config.version:  # an older row without its schedule: the config at hand is that version
            waivers = list(config.waivers)
        else:
            notes.append(f"config {c.version} was recorded without its waivers: those in force under it "
                         f"are not in this report")
            continue
        zone = ZoneInfo(c.payload.get("timezone") or period.zone.key)
        version_end = period.end if c.until is None else min(c.until, period.end)
        for w in waivers:
            until = w.expires_at(zone)
            if until > max(period.start, c.since) and c.since < version_end:  # in force at some time in the period
                item = WaiverInForce(w.site, w.requirement, until, w.approved_by, w.reason)
                if item not in out[w.site]:
                    out[w.site].append(item)
    return {k: tuple(v) for k, v in out.items()}


def _maintenance(line: _Timeline | None, period: Period,
                 outages: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Return when the site's recorded reasons said it was in maintenance, within the period (merged)."""
    if line is None:
        return []
    changes = sorted(line.reason_changes, key=lambda c: c[0])
    empty: tuple[Reason, ...] = ()
    if outages:  # nothing was recorded while the monitor was down: blind, not maintenance
        changes = _blinded(changes, outages, line.initial_reasons, empty)
    out: list[tuple[float, float]] = []
    opened = period.start if any(r.code == MAINTENANCE for r in line.initial_reasons) else None
    for at, reasons in changes:
        now = any(r.code == MAINTENANCE for r in reasons)
        if now and opened is None:
            opened = at
        elif not now and opened is not None:
            out.append((opened, at))
            opened = None
    if opened is not None:
        out.append((opened, period.end))
    return merge(out, period.start, period.end)


def _share_points(figures: list[SiteFigures], lines: dict[str, _Timeline], period: Period,
                  key: str | None) -> list[tuple[float, float]]:
    """Return (time, ready share) of the sites whose county or area is ``key`` (None: all), hourly."""
    chosen = [f for f in figures if is_polling_place(f.site) and (key is None or key in (f.site.county, f.site.area))]
    if not chosen:
        return []
    state: dict[str, str | None] = {}
    changes: list[tuple[float, str, str]] = []
    for f in chosen:
        line = lines.get(f"site:{f.site.id}")
        state[f.site.id] = line.initial if line else None
        changes += [(at, f.site.id, new) for at, new in (line.changes if line else [])]
    changes.sort(key=lambda c: c[0])
    ready = sum(s == "ready" for s in state.values())
    points, i = [], 0
    n_samples = int(period.seconds // SAMPLE_SECONDS)
    times = [period.start + k * SAMPLE_SECONDS for k in range(1, n_samples + 1)] + [period.end]
    for t in sorted(set(times)):
        while i < len(changes) and changes[i][0] <= t:
            _, sid, new = changes[i]
            ready += (new == "ready") - (state[sid] == "ready")
            state[sid] = new
            i += 1
        points.append((t, ready / len(chosen)))
    return points


def compute(config: Config, data_dir: str | Path, period: Period, county: str | None = None) -> Figures:
    """Return the figures of every reported site (of ``county``, if given) over ``period``."""
    store = EventStore(data_dir)
    lines = _read_store(store, period)
    outages = monitor_outages(data_dir, period)
    sites = [s for s in config.reported_sites() if county is None or s.county == county]
    versions = in_force(config_history(store), period)
    notes: list[str] = []
    waivers = _waivers(config, versions, period, notes)
    figures = [_site_figures(s, lines, period, outages, _maintenance(lines.get(f"site:{s.id}"), period, outages),
                             waivers.get(s.id, ()))
               for s in sites]
    known = {f"site:{s.id}" for s in config.sites}
    unknown = sum(1 for e in lines if e.startswith("site:") and e not in known)
    return _assemble(config, period, county, figures, lines, outages, unknown, versions, notes)


def _assemble(config: Config, period: Period, county: str | None, figures: list[SiteFigures],
              lines: dict[str, _Timeline], outages: list[tuple[float, float]], unknown: int,
              versions: list[ConfigInForce], notes: list[str], dark: set[str] | None = None) -> Figures:
    """Return the Figures of ``figures``: the province, counties and areas, their forecasts, the end of the period."""
    if not versions or versions[0].since > period.start:
        notes.insert(0, "no config version is on record for the start of the period")
    if config.version not in {c.version for c in versions}:
        notes.insert(1 if notes and notes[0].startswith("no config") else 0,
                     f"the sites' names, counties and areas are those of config {config.version}, which was not "
                     f"in force during the period")
    province = GroupFigures("province")
    counties: dict[str, GroupFigures] = {}
    areas = {a: GroupFigures(a) for a in AREAS}
    for f in figures:
        if not is_polling_place(f.site):
            continue  # network nodes are listed with the sites, never in a group's counts or ready share
        province.add(f)
        counties.setdefault(f.site.county, GroupFigures(f.site.county)).add(f)
        areas[f.site.area].add(f)
    deadline = config.programme.deadline.timestamp()
    policy = config.policy
    from monitor.core.forecast import forecast

    for key, group in [(None, province), *counties.items(), *areas.items()]:
        if group.sites:
            group.forecast = forecast(_share_points(figures, lines, period, key), deadline, period.end,
                                      days=policy.forecast_days, min_history_days=policy.forecast_min_history_days,
                                      resolution_seconds=SAMPLE_SECONDS, target=policy.forecast_target_ratio)
    return Figures(period, config, county, figures, province, dict(sorted(counties.items())), areas, outages,
                   unknown, versions, notes, _at_end(figures, lines, dark or set()))


def _at_end(figures: list[SiteFigures], lines: dict[str, _Timeline], dark: set[str]) -> core_figures.Figures:
    """Return the figures at the end of the period as monitor/core/figures.py defines them, from the states, reasons
    and terminal states the store last recorded up to the period's end (none for ``dark`` sites: nothing was
    recorded for them at the end, so their terminals are unknown too)."""
    by_id = {f.site.id: f for f in figures}

    def terminals(site: Site) -> core_figures.SiteTerminals:
        line = None if site.id in dark else lines.get(f"site:{site.id}")
        reasons = None if line is None or line.last is None else [r.code for r in line.last_reasons]
        states: dict[str, str] = {}
        if line is None:
            return core_figures.recorded_terminals(site, reasons, states)
        for t in site.terminals:
            tl = lines.get(f"target:{site.id}/terminal/{t.id}")
            if tl is not None and tl.last is not None:
                states[t.id] = tl.last
        return core_figures.recorded_terminals(site, reasons, states)

    return core_figures.tally([f.site for f in figures], lambda site: by_id[site.id].state, terminals)


# -- shared text forms (CSV, XLSX and the report say the same thing the same way) ------------------

def duration_text(seconds: float) -> str:
    """Return ``3d 04h 05m``, ``4h 05m``, ``5m 07s`` or ``0s``."""
    s = round(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours:02d}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {s:02d}s" if minutes else f"{s}s"


def failed_text(failed: dict[str, float]) -> str:
    """Return ``backup.down 2h 00m; terminals 15m 00s``, longest first."""
    return "; ".join(f"{code} {duration_text(s)}" for code, s in sorted(failed.items(), key=lambda kv: -kv[1]))


def waiver_text(w: WaiverInForce, zone: ZoneInfo) -> str:
    """Return ``backup until 2026-06-01 00:00 (by X: why)``."""
    until = datetime.fromtimestamp(w.until, zone)
    return f"{w.requirement} until {until:%Y-%m-%d %H:%M} (by {w.approved_by}: {w.reason})"
