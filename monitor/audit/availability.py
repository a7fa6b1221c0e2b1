"""Availability over a period, from the event store, for ``/api/v1/availability``: the audit's own figures.

The web layer may not import the audit (docs/architecture.md); the command that runs the service builds a
`StoreAvailability` over its data dir and hands it to the app (as it hands the action desk), so the API and an
exported report compute availability once, the same way (`monitor.audit.figures.compute` over
`monitor.audit.export.parse_period`: Jalali or Gregorian dates, the end clipped to the last recorded moment).

A reader answers ``(status, document)``: 400 with the allowed values for a query it does not understand, 503
when the store cannot be read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from monitor.audit.export import AuditError, _round, availability_json, clipped_json, last_recorded, parse_period
from monitor.audit.export import when_json as _when
from monitor.audit.figures import GroupFigures, SiteFigures, compute
from monitor.config.loader import Config
from monitor.errors import ReadinessError

PARAMETERS = ("from", "to", "site", "county")
Answer = tuple[int, dict[str, Any]]


def _group(g: GroupFigures) -> dict[str, Any]:
    return {"name": g.name, "sites": g.sites,
            "availability": {"site": availability_json(g.site_availability), "primary": availability_json(g.primary),
                             "backup": availability_json(g.backup), "terminals": availability_json(g.terminals)},
            "maintenance_seconds": round(g.site_availability.maintenance_seconds, 3),
            "blind_seconds": round(g.site_availability.unknown_seconds, 3),
            "states_at_end": dict(g.states), "ready_share_at_end": _round(g.ready_share)}


def _site(s: SiteFigures) -> dict[str, Any]:
    def part(a: Any) -> dict[str, Any] | None:
        return None if a is None else availability_json(a)

    return {"id": s.site.id, "name": s.site.name, "county": s.site.county, "area": s.site.area, "kind": s.site.kind,
            "state_at_end": s.state,
            "availability": {"site": availability_json(s.site_availability), "primary": part(s.primary),
                             "backup": part(s.backup), "terminals": part(s.terminals)},
            "maintenance_seconds": round(s.maintenance_seconds, 3), "blind_seconds": round(s.blind_seconds, 3),
            "failed_requirements": {code: round(sec, 3) for code, sec in s.failed.items()}}


def _bad(message: str, allowed: dict[str, list[str]] | None = None) -> Answer:
    return 400, {"error": message, "allowed": allowed or {"parameters": list(PARAMETERS)}}


class StoreAvailability:
    """Answer availability queries from the event store in ``data_dir`` for the config in force."""

    def __init__(self, config: Callable[[], Config], data_dir: str | Path,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.data_dir = Path(data_dir)
        self.clock = clock

    def __call__(self, query: Sequence[tuple[str, str]]) -> Answer:
        params: dict[str, str] = {}
        for key, value in query:
            if key not in PARAMETERS:
                return _bad(f"unknown parameter {key!r}; allowed: {', '.join(PARAMETERS)}")
            if key in params:
                return _bad(f"{key} is given more than once")
            params[key] = value
        if "site" in params and "county" in params:
            return _bad("give site or county, not both")
        config = self.config()
        sites = config.reported_sites()
        county = params.get("county")
        if county is not None:
            names = sorted({s.county for s in sites})
            match = [n for n in names if n.casefold() == county.casefold()]
            if not match:
                return _bad(f"county {county!r} is not one of the allowed values", {"county": names})
            county = match[0]
        site = params.get("site")
        if site is not None and site not in {s.id for s in sites}:
            return _bad(f"site {site!r} is not in the inventory", {"site": sorted(s.id for s in sites)[:100]})
        try:
            if last_recorded(self.data_dir) is None:
                return 503, {"error": f"the event store in {self.data_dir} holds no events yet"}
        except ReadinessError as exc:  # no store, or one that cannot be read
            return 503, {"error": f"availability needs the event store: {exc}"}
        try:
            period = parse_period(config, self.data_dir, params.get("from"), params.get("to"), self.clock())
        except (ValueError, AuditError) as exc:
            return _bad(str(exc))
        if site is not None:
            county_of = next(s.county for s in sites if s.id == site)
            fig = compute(config, self.data_dir, period, county_of)
        else:
            fig = compute(config, self.data_dir, period, county)
        zone = period.zone
        doc: dict[str, Any] = {
            "period": {"start": _when(period.start, zone), "end": _when(period.end, zone),
                       "clipped": clipped_json(period)},
            "scope": {"site": site, "county": county},
            "notes": fig.context_notes,
            "monitor_outages": [{"start": _when(s, zone), "end": _when(e, zone)} for s, e in fig.outages],
        }
        if site is not None:
            doc["site"] = _site(next(f for f in fig.sites if f.site.id == site))
        elif county is not None:
            doc["county"] = _group(fig.counties[county]) if county in fig.counties else None
            doc["sites"] = [_site(f) for f in fig.sites]
        else:
            doc["province"] = _group(fig.province)
            doc["counties"] = {name: _group(g) for name, g in fig.counties.items()}
            doc["areas"] = {name: _group(g) for name, g in fig.areas.items() if g.sites}
        return 200, doc
