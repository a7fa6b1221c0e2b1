"""The JSON shape of /api/v1/sites, shared by the web layer and `run --once --json`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from monitor.core.model import Site
from monitor.core.readiness import SiteReadiness
from monitor.core.reasons import texts
from monitor.runtime.snapshot import Snapshot


def iso(ts: float | None) -> str | None:
    """Return an ISO 8601 UTC time for a Unix timestamp."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _clean(values: Any) -> dict[str, float]:
    return {k: round(v, 6) for k, v in sorted(values.items())}


def site_json(site: Site, r: SiteReadiness | None) -> dict[str, Any]:
    """Return one site's state, reasons and latest measurements (never a secret)."""
    out: dict[str, Any] = {
        "id": site.id, "name": site.name, "county": site.county, "area": site.area, "kind": site.kind,
        "upstream": site.upstream,
        "location": site.location.model_dump() if site.location else None,
        "state": r.state if r else "unknown",
        "reasons": list(texts(r.reasons)) if r else ["no_data"],
        "warnings": list(texts(r.warnings)) if r else [],
        "since": iso(r.since) if r else None,
        "links": [], "terminals": [],
        "terminals_up": r.terminals_up if r else 0, "terminals_total": len(site.terminals),
    }
    if r is None:
        return out
    out.update({"first_ready_at": iso(r.first_ready_at), "ever_ready": r.ever_ready, "regressions": r.regressions,
                "maintenance": r.maintenance or None, "waivers": list(texts(r.waivers))})
    out["links"] = [
        {"role": h.role, "medium": h.medium, "address": h.address, "state": h.state, "reasons": list(texts(h.reasons)),
         "warnings": list(texts(h.warnings)), "failure": h.failure or None, "observed_at": iso(h.observed_at),
         "values": _clean(h.values)}
        for h in r.links
    ]
    out["terminals"] = [
        {"id": t.id, "address": t.address, "port": t.port, "state": t.state, "reason": t.reason,
         "failure": t.failure or None,
         "observed_at": iso(t.observed_at), "values": _clean(t.values)}
        for t in r.terminals
    ]
    if r.neighbours is not None:
        out["neighbours"] = {"ok": r.neighbours.ok, "reason": r.neighbours.reason,
                             "values": _clean(r.neighbours.values),
                             "details": {k: list(v) for k, v in r.neighbours.details.items()}}
    return out


def forecast_json(snap: Snapshot) -> dict[str, Any]:
    """Return the deadline forecast per scope (province, each county, urban/rural)."""
    out: dict[str, Any] = {}
    for (kind, name), f in sorted(snap.forecasts.items()):
        out[f"{kind}:{name}" if name else kind] = {
            "share_now": None if f.share_now is None else round(f.share_now, 4),  # None: no polling places
            "share_at_deadline": round(f.share_at_deadline, 4),
            "at_risk": f.at_risk, "all_ready_at": iso(f.all_ready_at), "slope_per_day": round(f.slope_per_day, 6)}
    return out


def sites_json(snap: Snapshot) -> dict[str, Any]:
    """Return the whole /api/v1/sites document."""
    summary: dict[str, int] = {"ready": 0, "degraded": 0, "not_ready": 0, "unknown": 0}
    sites = []
    for site in snap.config.reported_sites():
        r = snap.sites.get(site.id)
        summary[r.state if r else "unknown"] += 1
        sites.append(site_json(site, r))
    return {
        "programme": {"name": snap.config.programme.name, "deadline": snap.config.programme.deadline.isoformat(),
                      "timezone": snap.config.programme.timezone},
        "evaluated_at": iso(snap.at) if snap.evaluated else None,
        "config_version": snap.config.version,
        "summary": summary,
        "forecast": forecast_json(snap),
        "sites": sites,
    }
