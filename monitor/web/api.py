"""The JSON shapes of /api/v1/... (sites, summary, counties), shared by the web layer and `run --once --json`.

Every count and share comes from monitor/core/figures.py, as on every other surface.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from monitor.core.actions import ACTION_STATES, Action, Unowned, ready_since, select, unowned
from monitor.core.figures import AREAS, NODE, POLLING, Figures, Tally, blind, site_state, site_terminals
from monitor.core.figures import compute as compute_figures
from monitor.core.forecast import Forecast
from monitor.core.model import Site
from monitor.core.readiness import SiteReadiness
from monitor.core.reasons import SITE_STATES, UPSTREAM, texts
from monitor.runtime.snapshot import Snapshot


def iso(ts: float | None) -> str | None:
    """Return an ISO 8601 UTC time for a Unix timestamp."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _clean(values: Any) -> dict[str, float]:
    return {k: round(v, 6) for k, v in sorted(values.items())}


def site_json(site: Site, r: SiteReadiness | None, owner: tuple[str | None, str | None] | None = None
              ) -> dict[str, Any]:
    """Return one site's state, reasons and latest measurements (never a secret); ``owner``: (owner, contact)
    as the config resolves them (the site's own, else its county's)."""
    owner = owner or (site.owner, site.contact)
    terms = site_terminals(site, r)
    out: dict[str, Any] = {
        "id": site.id, "name": site.name, "county": site.county, "area": site.area, "kind": site.kind,
        "upstream": site.upstream, "owner": owner[0], "contact": owner[1],
        "location": site.location.model_dump() if site.location else None,
        "state": r.state if r else "unknown",
        "reasons": list(texts(r.reasons)) if r else ["no_data"],
        "warnings": list(texts(r.warnings)) if r else [],
        "since": iso(r.since) if r else None,
        "links": [], "terminals": [],
        # Unknown is not 0: behind a dead node, or before any verdict, terminals up is null.
        "terminals_up": terms.known_up, "terminals_unknown": terms.unknown, "terminals_total": terms.total,
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
    hidden = blind(r)  # behind a dead node: what the terminal's probe said proves nothing
    out["terminals"] = [
        {"id": t.id, "address": t.address, "port": t.port, "state": "unknown" if hidden else t.state,
         "reason": UPSTREAM if hidden else t.reason, "failure": None if hidden else (t.failure or None),
         "observed_at": iso(t.observed_at), "values": _clean(t.values)}
        for t in r.terminals
    ]
    if r.neighbours is not None:
        out["neighbours"] = {"ok": r.neighbours.ok, "reason": r.neighbours.reason,
                             "values": _clean(r.neighbours.values),
                             "details": {k: list(v) for k, v in r.neighbours.details.items()}}
    return out


def tally_json(t: Tally, *, share: bool = True) -> dict[str, Any]:
    """Return one scope's counts by state, total, ready share (polling places only) and terminals."""
    out: dict[str, Any] = {**t.states, "total": t.total}
    if share:
        out["ready_share"] = None if t.share is None else round(t.share, 6)
    out["terminals"] = {"up": t.terminals_up, "down": t.terminals_down, "unknown": t.terminals_unknown,
                        "total": t.terminals_total}
    return out


def figures_json(fig: Figures) -> dict[str, Any]:
    """Return the summary: polling places of the province, by county and urban/rural; network nodes apart."""
    return {**tally_json(fig.province),
            "counties": {name: tally_json(t) for name, t in fig.counties.items()},
            "areas": {name: tally_json(t) for name, t in fig.areas.items()},
            "nodes": tally_json(fig.nodes, share=False)}


def _r(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def one_forecast_json(f: Forecast) -> dict[str, Any]:
    """Return one scope's forecast; without enough history every projected field is null."""
    enough = f.enough_history
    return {
        "status": "ok" if enough else "not enough history",
        "share_now": _r(f.share_now),  # None: no samples, or no polling places in the scope
        "samples": f.points, "history_seconds": round(f.history_seconds, 3), "target": f.target,
        "share_at_deadline": _r(f.share_at_deadline),
        "share_at_deadline_range": [_r(f.share_at_deadline_low), _r(f.share_at_deadline_high)] if enough else None,
        "at_risk": f.at_risk, "all_ready_at": iso(f.all_ready_at),
        "slope_per_day": _r(f.slope_per_day),
        "slope_per_day_range": [_r(f.slope_per_day_low), _r(f.slope_per_day_high)] if enough else None,
    }


def scope_key(kind: str, name: str) -> str:
    """Return the API's key of a forecast scope: ``province``, ``county:Ilam``, ``area:rural``."""
    return f"{kind}:{name}" if name else kind


def forecast_json(snap: Snapshot) -> dict[str, Any]:
    """Return the deadline forecast per scope (province, each county, urban/rural)."""
    return {scope_key(kind, name): one_forecast_json(f) for (kind, name), f in sorted(snap.forecasts.items())}


class FilterError(ValueError):
    """A query the API does not understand: the message names what is allowed."""

    def __init__(self, message: str, allowed: dict[str, list[str]]) -> None:
        super().__init__(message)
        self.allowed = allowed


SITE_FILTERS = ("county", "area", "state", "kind")


def site_filter(snap: Snapshot, query: Mapping[str, str], keys: Iterable[str] = SITE_FILTERS
                ) -> Callable[[Site], bool]:
    """Return the predicate of ``query`` (county case-insensitive); FilterError on any name or value not known."""
    keys = tuple(keys)
    sites = snap.config.reported_sites()
    allowed: dict[str, list[str]] = {"county": sorted({s.county for s in sites}), "area": list(AREAS),
                                     "state": list(SITE_STATES), "kind": [POLLING, NODE]}
    unknown = sorted(set(query) - set(keys))
    if unknown:
        raise FilterError(f"unknown parameter {unknown[0]!r}; allowed: {', '.join(keys)}",
                          {k: allowed[k] for k in keys})
    wanted: dict[str, str] = {}
    for key in keys:
        if key not in query:
            continue
        values = query.getall(key) if hasattr(query, "getall") else [query[key]]  # type: ignore[attr-defined]
        if len(values) != 1:
            raise FilterError(f"{key} given {len(values)} times; give it once", {key: allowed[key]})
        value = values[0].strip()
        match = next((v for v in allowed[key] if v.casefold() == value.casefold()), None) if key == "county" \
            else (value if value in allowed[key] else None)
        if match is None:
            raise FilterError(f"unknown {key} {value!r}; allowed: {', '.join(allowed[key])}", {key: allowed[key]})
        wanted[key] = match

    def keep(site: Site) -> bool:
        state = site_state(snap.sites.get(site.id)) if "state" in wanted else ""
        got = {"county": site.county, "area": site.area, "kind": site.kind, "state": state}
        return all(got[k] == v for k, v in wanted.items())
    return keep


PAGE_DEFAULT = 1000  # sites per /api/v1/sites page unless ``limit`` says otherwise
PAGE_MAX = 5000
PAGE_KEYS = ("limit", "cursor")


def page_params(query: Mapping[str, str]) -> tuple[int, str | None]:
    """Return (limit, cursor) of ``query``; FilterError when either is malformed."""
    text = query.get("limit", str(PAGE_DEFAULT)).strip()
    if not text.isdigit() or not 1 <= int(text) <= PAGE_MAX:
        raise FilterError(f"limit {text!r} must be a whole number from 1 to {PAGE_MAX}",
                          {"limit": [f"1..{PAGE_MAX}"]})
    cursor = query.get("cursor")
    return int(text), (cursor.strip() if cursor is not None else None)


def _header(snap: Snapshot) -> dict[str, Any]:
    return {
        "programme": {"name": snap.config.programme.name, "deadline": snap.config.programme.deadline.isoformat(),
                      "timezone": snap.config.programme.timezone},
        "evaluated_at": iso(snap.at) if snap.evaluated else None,
        "config_version": snap.config.version,
    }


def summary_json(snap: Snapshot, keep: Callable[[Site], bool] | None = None) -> dict[str, Any]:
    """Return the /api/v1/summary document: the figures of the (filtered) sites and the forecast."""
    chosen = [s for s in snap.config.reported_sites() if keep is None or keep(s)]
    return {**_header(snap), "summary": figures_json(compute_figures(chosen, snap.sites)),
            "forecast": forecast_json(snap)}


def counties_json(snap: Snapshot) -> dict[str, Any]:
    """Return the /api/v1/counties document: each county's polling places, its nodes apart, its forecast."""
    fig = snap.figures()
    out = []
    for name, t in fig.counties.items():
        f = snap.forecasts.get(("county", name))
        out.append({"name": name, **tally_json(t),
                    "nodes": tally_json(fig.county_nodes.get(name, Tally()), share=False),
                    "forecast": None if f is None else one_forecast_json(f)})
    return {**_header(snap), "counties": out}


def sites_json(snap: Snapshot, keep: Callable[[Site], bool] | None = None, *, limit: int | None = None,
               cursor: str | None = None) -> dict[str, Any]:
    """Return the /api/v1/sites document; ``keep`` filters the sites, and the summary covers all of those.

    With ``limit``, one page: the sites after the one named by ``cursor`` (inventory order), at most ``limit``
    of them, and ``next_cursor`` to ask for the next page (null on the last). FilterError on a cursor that
    names no site the filters keep.
    """
    chosen = [s for s in snap.config.reported_sites() if keep is None or keep(s)]
    page = chosen
    out: dict[str, Any] = {**_header(snap), "summary": figures_json(compute_figures(chosen, snap.sites)),
                           "forecast": forecast_json(snap)}
    if limit is not None:
        start = 0
        if cursor:
            ids = [s.id for s in chosen]
            if cursor not in ids:
                raise FilterError(f"cursor {cursor!r} names no site of this listing (the inventory changed, or the "
                                  "filters differ from the first page's)", {"cursor": []})
            start = ids.index(cursor) + 1
        page = chosen[start:start + limit]
        more = start + limit < len(chosen)
        out["next_cursor"] = page[-1].id if more and page else None
        out["total"] = len(chosen)
    out["sites"] = [site_json(site, snap.sites.get(site.id), snap.config.owner_of(site)) for site in page]
    return out


# -- owners and remediation actions -------------------------------------------------------------------

ACTION_FILTERS = ("site", "county", "owner", "state", "overdue")


def owner_json(snap: Snapshot, site: Site) -> dict[str, str | None]:
    """Return the site's owner and contact (its own, else its county's)."""
    owner, contact = snap.config.owner_of(site)
    return {"owner": owner, "contact": contact}


def action_json(a: Action, snap: Snapshot, now: float) -> dict[str, Any]:
    """Return one action, with whether it is overdue and since when its site is ready (if it is)."""
    r = snap.sites.get(a.site) if a.site is not None else None
    since = ready_since(a, r.state if r else None, r.since if r else None)
    return {
        "id": a.id, "site": a.site, "county": a.county, "owner": a.owner, "due": iso(a.due), "due_text": a.due_text,
        "note": a.note, "state": a.state, "overdue": a.overdue(now), "opened_at": iso(a.opened_at),
        "opened_by": a.opened_by, "closed_at": iso(a.closed_at), "closed_by": a.closed_by, "result": a.result or None,
        "site_ready_since": iso(since),
        "history": [{"at": iso(s.at), "state": s.state, "by": s.by, "text": s.text} for s in a.steps],
    }


def unowned_list(snap: Snapshot, actions: Iterable[Action], now: float) -> list[Unowned]:
    """Return the polling places not ready longer than the grace time with no open action (figures' states)."""
    polling = [(s.id, s.county) for s in snap.config.reported_sites() if s.kind == POLLING]
    states = {sid: (site_state(snap.sites.get(sid)), (snap.sites[sid].since if sid in snap.sites else None))
              for sid, _ in polling}
    return unowned(polling, states, actions, now, snap.config.actions.unowned_after_seconds)


def actions_json(snap: Snapshot, actions: Iterable[Action], query: Mapping[str, str], now: float) -> dict[str, Any]:
    """Return the /api/v1/actions document; FilterError on a filter it does not know."""
    unknown = sorted(set(query) - set(ACTION_FILTERS))
    allowed: dict[str, list[str]] = {"state": list(ACTION_STATES), "overdue": ["true", "false"]}
    if unknown:
        raise FilterError(f"unknown parameter {unknown[0]!r}; allowed: {', '.join(ACTION_FILTERS)}", allowed)
    state = query.get("state")
    if state is not None and state not in ACTION_STATES:
        raise FilterError(f"unknown state {state!r}; allowed: {', '.join(ACTION_STATES)}", allowed)
    overdue_text = query.get("overdue")
    if overdue_text is not None and overdue_text not in ("true", "false"):
        raise FilterError(f"overdue must be true or false, not {overdue_text!r}", allowed)
    actions = list(actions)
    chosen = select(actions, now, site=query.get("site"), county=query.get("county"), owner=query.get("owner"),
                    state=state, overdue=None if overdue_text is None else overdue_text == "true")
    sites = snap.config.site_map()
    return {
        **_header(snap),
        "actions": [action_json(a, snap, now) for a in chosen],
        "unowned": [{"site": u.site, "county": u.county, "name": sites[u.site].name if u.site in sites else None,
                     "not_ready_since": iso(u.since), **(owner_json(snap, sites[u.site]) if u.site in sites else {})}
                    for u in unowned_list(snap, actions, now)],
    }
