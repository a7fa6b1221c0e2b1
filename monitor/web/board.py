"""The committee's board at ``/``: are we ready, where not, will we make it — Persian first, English by switch.

Everything is rendered on the server from one snapshot (figures from monitor/core/figures.py, the forecast from
monitor/core/forecast.py, reasons in words from monitor/web/i18n.py): no script or style leaves the machine, the
charts and the map are inline SVG (map tiles only when ``board.tile_url`` names a tile server). Each site has a
page of its own at ``/sites/{id}`` (monitor/web/site_page.py). The burn-up and a site's timeline are read from
the event store (monitor/runtime/readback.py) when the service has one. A page is rendered once per snapshot and
view, off the event loop (`BoardCache`). A small script (static/board.js) polls /api/v1/summary, swaps in the new
page when a new evaluation is published and keeps "updated N s ago" ticking. The owner column (the site's owner,
its open remediation actions, those past due marked overdue) comes from the same snapshot; the script keeps the
actions current from ``GET /api/v1/actions`` between evaluations.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from monitor.core.figures import AREAS, Figures, Scope, Tally, is_polling_place, site_state, site_terminals
from monitor.core.figures import compute as compute_figures
from monitor.core.forecast import DAY_SECONDS, PROVINCE, Forecast, min_samples
from monitor.core.model import Site
from monitor.core.readiness import SiteReadiness
from monitor.core.reasons import SITE_STATES
from monitor.runtime.readback import Sample, StoreHistory
from monitor.runtime.snapshot import Snapshot
from monitor.web.chrome import Text as _Text
from monitor.web.chrome import View, frame
from monitor.web.chrome import esc as _e
from monitor.web.i18n import jalali_text, local, reason_words, share_text, state_words

STATIC = Path(__file__).with_name("board_static")
STATE_COLOURS = {"ready": "#2e7d32", "degraded": "#b26a00", "not_ready": "#c62828", "unknown": "#616161"}
WORST_ORDER = {"not_ready": 0, "unknown": 1, "degraded": 2, "ready": 3}
WORST_SITES = 25  # on the province board; a county view lists all of its sites
HEALTH = ("fresh", "stale", "blind")


# -- the monitor's own health -----------------------------------------------------------------------------


def monitor_health(snap: Snapshot, now: float) -> tuple[str, list[str]]:
    """Return (fresh | stale | blind, notes): whether the board's figures can be trusted as of ``now``.

    Blind: no evaluation yet, every probe kind failed on every target in its last cycle, or nothing is known of
    any site. Stale: the snapshot, or one probe kind's last cycle, is older than the policy lets data get
    (``stale_after_intervals`` intervals). The event store's trouble is a note (the record, not the figures).
    """
    from monitor.runtime.service import freshness  # the same limits the verdicts use

    notes: list[str] = []
    if not snap.evaluated:
        return "blind", ["no evaluation yet"]
    ages = freshness(snap.config).max_age_seconds
    limit = max(ages.values(), default=60.0)
    state = "fresh"
    if now - snap.at > limit:
        state = "stale"
        notes.append(f"last evaluation {now - snap.at:.0f}s ago (limit {limit:.0f}s)")
    cycles = list(snap.cycles.values())
    for c in cycles:
        if c.finished_at and snap.at - c.finished_at > ages.get(c.kind, limit):
            state = "stale"
            notes.append(f"{c.kind}: last cycle {snap.at - c.finished_at:.0f}s before the evaluation")
    if cycles and all(c.targets and c.failed == c.targets for c in cycles):
        state = "blind"
        notes.append("every probe failed on every target")
    fig = snap.figures()
    seen = fig.province.total + fig.nodes.total
    if seen and fig.province.states["unknown"] + fig.nodes.states["unknown"] == seen:
        state = "blind"
        notes.append("every site is unknown")
    if snap.store is not None and not snap.store.ok:
        notes.append(f"event store: {snap.store.error}")
    return state, notes


def site_href(view: View, site_id: str) -> str:
    """Return the link to a site's page in ``view``'s language and digits."""
    return view.href("/sites/" + urllib.parse.quote(site_id, safe=""), county="")


def _worst_key(item: tuple[Site, SiteReadiness | None]) -> tuple[int, float, str]:
    site, r = item
    return WORST_ORDER[site_state(r)], r.since if r is not None and r.since else 0.0, site.id


def _county_area_tally(sites: list[Site], readiness: Mapping[str, SiteReadiness]) -> dict[str, dict[str, Tally]]:
    """Return each county's urban and rural polling-place tallies (monitor/core/figures.py on each subset)."""
    split: dict[tuple[str, str], list[Site]] = {}
    for s in sites:
        split.setdefault((s.county, s.area), []).append(s)
    out: dict[str, dict[str, Tally]] = {}
    for (county, area), subset in split.items():
        out.setdefault(county, {})[area] = compute_figures(subset, readiness).province
    return out


# -- the sections ----------------------------------------------------------------------------------------


def _headline(t: _Text, snap: Snapshot, fig: Figures, f: Forecast | None, title: str) -> str:
    p = fig.province
    target = snap.config.policy.forecast_target_ratio
    deadline = snap.config.programme.deadline.timestamp()
    left = (deadline - snap.at) / DAY_SECONDS
    pct = 0.0 if p.share is None else p.share * 100
    days = t.w("days_left", n=math.ceil(left)) if left > 0 else t.w("deadline_passed")
    chips = "".join(
        f'<li class="chip" data-count-state="{s}">{t.state(s)} <b class="n" data-figure="{s}">{t.d(p.states[s])}'
        f'</b></li>' for s in SITE_STATES)
    nodes = fig.nodes
    node_chips = "".join(
        f'<li class="chip" data-node-state="{s}">{t.state(s)} <b class="n" data-figure="nodes-{s}">'
        f'{t.d(nodes.states[s])}</b></li>' for s in SITE_STATES if nodes.states[s] or s == "ready")
    areas = " · ".join(
        f'<span data-area="{a}">{t.w(a)}: <b data-figure="area-{a}">{t.share(fig.areas[a].share)}</b> '
        f'({t.d(fig.areas[a].ready)}/{t.d(fig.areas[a].total)})</span>' for a in AREAS if fig.areas[a].total)
    terms = (f'{t.d(p.terminals_up)} {t.w("of")} {t.d(p.terminals_total)}'
             + (f' ({t.w("unknown_n", n=p.terminals_unknown)})' if p.terminals_unknown else ""))
    return f"""
<section class="headline" aria-label="{_e(title)}">
 <div class="card big">
  <div class="label">{t.w("ready_share")}</div>
  <div class="share"><b id="share" data-figure="share">{t.share(p.share)}</b></div>
  <div class="bar" role="img" aria-label="{t.share(p.share)}"><span style="width:{pct:.1f}%"></span>
   <i class="target" style="inset-inline-start:{target * 100:.1f}%" title="{t.w("target")}"></i></div>
  <div class="sub"><span id="ready-of">{t.w("ready_of", ready=p.ready, total=p.total)}</span> ·
   {t.w("target")} <b data-figure="target">{t.share(target)}</b></div>
  <div class="sub">{areas}</div>
 </div>
 <div class="card">
  <div class="label">{t.w("deadline")}</div>
  <div class="value" id="days-left">{days}</div>
  <div class="sub">{t.date(deadline)}</div>
 </div>
 <div class="card" id="forecast">
  <div class="label">{t.w("forecast")}</div>
  {_forecast_block(t, snap, f)}
 </div>
 <div class="card wide">
  <div class="label">{t.w("states")}</div><ul class="chips" id="counts">{chips}</ul>
  <div class="sub" id="terminals">{t.w("terminals")}: {terms}</div>
 </div>
 <div class="card wide">
  <div class="label">{t.w("nodes")}</div>
  <ul class="chips" id="nodes">{node_chips}<li class="chip">Σ <b data-figure="nodes-total">{t.d(nodes.total)}</b>
  </li></ul>
 </div>
</section>"""


def _forecast_block(t: _Text, snap: Snapshot, f: Forecast | None) -> str:
    if f is None or not f.enough_history:
        policy = snap.config.policy
        need = min_samples(policy.forecast_min_history_days, policy.forecast_resolution_seconds)
        hours = policy.forecast_resolution_seconds / 3600
        have = f.points if f is not None else 0
        return (f'<div class="value" data-forecast="none">{t.w("not_enough_history")}</div>'
                f'<div class="sub">{t.w("history_of", have=round(have * hours), need=round(need * hours))}</div>')
    assert f.share_at_deadline_low is not None and f.share_at_deadline_high is not None
    verdict = "at_risk" if f.at_risk else "on_track"
    when = (f'{t.w("all_ready_at")} {t.date(f.all_ready_at, with_time=False)}' if f.all_ready_at is not None
            else t.w("never_at_pace"))
    icon = "⚠" if f.at_risk else "✔"
    return (f'<div class="value" data-forecast="ok"><b data-figure="forecast">{t.share(f.share_at_deadline)}</b>'
            f' <small>{t.w("forecast_range")} <span data-figure="forecast-low">'
            f'{t.share(f.share_at_deadline_low)}</span>–<span data-figure="forecast-high">'
            f'{t.share(f.share_at_deadline_high)}</span></small></div>'
            f'<div class="sub verdict {verdict}"><span aria-hidden="true">{icon}</span> {t.w(verdict)} · {when}</div>')


def _sparkline(points: list[tuple[float, float]]) -> str:
    if len(points) < 2:
        return ""
    t0, t1 = points[0][0], points[-1][0]
    span = (t1 - t0) or 1.0
    path = " ".join(f"{(x - t0) / span * 60:.1f},{18 - y * 16:.1f}" for x, y in points)
    return (f'<svg class="spark" viewBox="0 0 60 20" width="60" height="20" aria-hidden="true">'
            f'<polyline points="{path}" fill="none" stroke="currentColor" stroke-width="1.5"/></svg>')


def _trend(t: _Text, f: Forecast | None, samples: tuple[tuple[float, int, int], ...]) -> str:
    points = [(x, r / n) for x, r, n in samples[-72:] if n]
    if f is None or f.slope_per_day is None:
        return f'<span class="muted">{t.w("no_trend")}</span> {_sparkline(points)}'
    slope = f.slope_per_day * 100
    arrow = "▲" if slope > 0.05 else ("▼" if slope < -0.05 else "▶")
    return f'<span dir="ltr">{arrow} {_e(t.d(f"{slope:+.1f}%"))}</span> {_sparkline(points)}'


def _counties(t: _Text, snap: Snapshot, fig: Figures, polling: list[Site]) -> str:
    split = _county_area_tally(polling, snap.sites)
    rows = []
    order = sorted(((n, c) for n, c in fig.counties.items() if c.total),
                   key=lambda nc: (nc[1].share if nc[1].share is not None else 2.0, nc[0]))
    for name, c in order:
        urban_rural = " · ".join(
            f'{t.w(a)} {t.share(split[name][a].share)}' for a in AREAS if a in split.get(name, {}))
        link = t.view.href(county=name)
        rows.append(
            f'<tr data-county="{_e(name)}"><td data-label="{t.w("county")}"><a class="county-link" href="{_e(link)}"'
            f' dir="auto">{_e(name)}</a></td>'
            f'<td data-label="{t.w("share")}"><b data-figure="county-share">{t.share(c.share)}</b>'
            f'<span class="minibar"><span style="width:{(c.share or 0) * 100:.1f}%"></span></span></td>'
            f'<td data-label="{t.w("ready_total")}">{t.d(c.ready)}/{t.d(c.total)}</td>'
            f'<td data-label="{t.w("not_ready_count")}" data-figure="county-not-ready">{t.d(c.total - c.ready)}</td>'
            f'<td data-label="{t.w("urban")}/{t.w("rural")}">{urban_rural}</td>'
            f'<td data-label="{t.w("trend")}">'
            f'{_trend(t, snap.forecasts.get(("county", name)), snap.shares.get(("county", name), ()))}</td></tr>')
    head = "".join(f"<th>{t.w(k)}</th>" for k in ("county", "share", "ready_total", "not_ready_count"))
    return (f'<section id="counties"><h2>{t.w("counties")}</h2><table class="cards"><thead><tr>{head}'
            f'<th>{t.w("urban")}/{t.w("rural")}</th><th>{t.w("trend")}</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></section>')


def _sites_table(t: _Text, snap: Snapshot, sites: list[Site], heading: str, limit: int | None) -> str:
    chosen = sorted(((s, snap.sites.get(s.id)) for s in sites), key=_worst_key)
    if limit is not None:
        chosen = [(s, r) for s, r in chosen if site_state(r) != "ready"]
    if not chosen:
        return f'<section id="sites"><h2>{heading}</h2><p>{t.w("all_ready")}</p></section>'
    shown = chosen if limit is None else chosen[:limit]
    rows = []
    lang = t.view.lang
    for s, r in shown:
        state = site_state(r)
        reasons = [reason_words(x, lang) for x in r.reasons] if r is not None else [reason_words("no_data", lang)]
        since = snap.at - r.since if r is not None and r.since else None
        terms = site_terminals(s, r).text()
        rows.append(
            f'<tr data-site="{_e(s.id)}" data-state="{state}" data-county="{_e(s.county)}">'
            f'<td data-label="{t.w("state")}">{t.state(state)}</td>'
            f'<td data-label="{t.w("site")}"><a class="site-link" href="{_e(site_href(t.view, s.id))}" dir="ltr">'
            f'<b>{_e(s.id)}</b></a> <span dir="auto">{_e(s.name)}</span>'
            f'{"" if is_polling_place(s) else " <small>(" + t.w("nodes").split(" (")[0] + ")</small>"}</td>'
            f'<td data-label="{t.w("county")}" dir="auto">{_e(s.county)} · {t.w(s.area)}</td>'
            f'<td data-label="{t.w("reasons")}" class="reasons">'
            f'{"<br>".join(_e(t.d(x)) for x in reasons) or "–"}</td>'
            f'<td data-label="{t.w("for")}">{t.dur(since) if since is not None else "–"}</td>'
            f'<td data-label="{t.w("terminals")}" dir="ltr">{_e(t.d(terms))}</td>'
            f'<td data-label="{t.w("owner")}" class="owner" data-late="{t.w("overdue")}" '
            f'data-owner-for="{_e(s.id)}">{_owner(t, snap, s)}</td></tr>')
    more = len(chosen) - len(shown)
    heads = "".join(f"<th>{t.w(k)}</th>" for k in ("state", "site", "county", "reasons", "for", "terminals"))
    tail = f'<p class="muted">{t.w("more", n=more)}</p>' if more > 0 else ""
    return (f'<section id="sites"><h2>{heading}</h2><table class="cards sites"><thead><tr>{heads}'
            f'<th class="owner">{t.w("owner")}</th></tr></thead><tbody>{"".join(rows)}</tbody></table>{tail}'
            f'</section>')


def _owner(t: _Text, snap: Snapshot, site: Site) -> str:
    """Return the owner cell: who answers for the site, then each open action on it (or its county), those past
    due marked; the page's script keeps the actions current from GET /api/v1/actions between evaluations."""
    owner = snap.config.owner_of(site)[0]
    parts = []
    for a in snap.actions or ():
        if a.is_open() and a.covers(site.id, site.county):
            late = a.overdue(snap.at)
            flag = f' <b class="overdue">{t.w("overdue")}</b>' if late else ""
            note = f' — <span dir="auto">{_e(a.note)}</span>' if a.note else ""
            parts.append(f'<span class="action{" late" if late else ""}" data-action="{_e(a.id)}">'
                         f'<b dir="ltr">{_e(a.id)}</b> <span dir="auto">{_e(a.owner)}</span>{note} · {t.w("due")} '
                         f'{t.date(a.due)}{flag}</span>')
    return (f'<span class="who" dir="auto">{_e(owner) if owner else "–"}</span>'
            f'<span class="acts">{"".join(parts)}</span>')


def burnup_points(snap: Snapshot, scope: Scope, tally: Tally,
                  recorded: Mapping[Scope, tuple[Sample, ...]] | None) -> tuple[list[Sample], str]:
    """Return the burn-up's (time, ready, total) points of ``scope`` and where they come from (``store`` or
    ``memory``): the event store's samples when the service has one, else the forecast's own; either way ending
    with the snapshot's own figure, so the line ends where the headline stands."""
    source = "memory" if recorded is None else "store"
    points = [p for p in (snap.shares if recorded is None else recorded).get(scope, ()) if p[0] < snap.at]
    if snap.evaluated and tally.total:
        points.append((snap.at, tally.ready, tally.total))
    return points, source


def _runs(points: list[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    """Split the line where points are missing (the monitor was stopped or blind): a gap, not a made-up share."""
    if len(points) < 3:
        return [points]
    steps = sorted(b[0] - a[0] for a, b in itertools.pairwise(points))
    usual = steps[len(steps) // 2]
    runs: list[list[tuple[float, float]]] = [[points[0]]]
    for a, b in itertools.pairwise(points):
        if b[0] - a[0] > 2.5 * usual:
            runs.append([])
        runs[-1].append(b)
    return runs


def _burnup(t: _Text, snap: Snapshot, scope: tuple[str, str], f: Forecast | None, tally: Tally,
            recorded: Mapping[Scope, tuple[Sample, ...]] | None) -> str:
    raw, source = burnup_points(snap, scope, tally, recorded)
    samples = [(x, r / n) for x, r, n in raw if n]
    title = f'<h2>{t.w("burnup")}</h2>'
    if len(samples) < 2:
        return f'<section id="burnup" data-source="{source}">{title}<p class="muted">{t.w("burnup_none")}</p></section>'
    deadline = snap.config.programme.deadline.timestamp()
    target = snap.config.policy.forecast_target_ratio
    x0 = samples[0][0]
    x1 = max(deadline, samples[-1][0]) + (max(deadline, samples[-1][0]) - x0) * 0.03 + 1
    w, h, left, right, top, bottom = 720.0, 260.0, 44.0, 12.0, 12.0, 30.0

    def X(x: float) -> float:
        v = left + (x - x0) / (x1 - x0) * (w - left - right)
        return w - v if t.view.lang == "fa" else v  # time runs right to left in Persian

    def Y(y: float) -> float:
        return top + (1 - y) * (h - top - bottom)

    parts = []
    gx1, gx2 = (left, w - right) if t.view.lang == "en" else (right, w - left)
    for pct in (0, 25, 50, 75, 100):
        y = Y(pct / 100)
        parts.append(f'<line x1="{gx1}" x2="{gx2}" '
                     f'y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{4 if t.view.lang == "en" else w - 4}" y="{y + 4:.1f}" class="axis" '
                     f'text-anchor="{"start" if t.view.lang == "en" else "end"}">{_e(t.d(f"{pct}%"))}</text>')
    ticks = 5
    for i in range(ticks):  # not at the far end: its label would run off the chart
        x = x0 + (x1 - x0) * i / ticks
        when = local(x, t.zone)
        label = t.d(jalali_text(when, t.view.lang, with_time=False).rsplit(" ", 1)[0])
        parts.append(f'<text x="{X(x):.1f}" y="{h - 8:.1f}" class="axis" text-anchor="middle">{_e(label)}</text>')
    parts.append(f'<line x1="{X(x0):.1f}" x2="{X(x1):.1f}" y1="{Y(target):.1f}" y2="{Y(target):.1f}" '
                 f'class="target"><title>{t.w("target")}</title></line>')
    parts.append(f'<line x1="{X(deadline):.1f}" x2="{X(deadline):.1f}" y1="{top}" y2="{h - bottom}" class="deadline"/>'
                 f'<text x="{X(deadline) + (-4 if t.view.lang == "en" else 4):.1f}" y="{top + 24}" '
                 f'class="axis deadline-label" text-anchor="{"end" if t.view.lang == "en" else "start"}">'
                 f'{t.w("deadline")}</text>')
    if f is not None and f.enough_history and f.share_now is not None:
        assert f.share_at_deadline is not None and f.share_at_deadline_low is not None
        assert f.share_at_deadline_high is not None
        xn, xd = samples[-1][0], max(deadline, samples[-1][0])
        band = (f"{X(xn):.1f},{Y(f.share_now):.1f} {X(xd):.1f},{Y(f.share_at_deadline_high):.1f} "
                f"{X(xd):.1f},{Y(f.share_at_deadline_low):.1f}")
        parts.append(f'<polygon points="{band}" class="band"><title>{t.w("forecast")}</title></polygon>'
                     f'<line x1="{X(xn):.1f}" y1="{Y(f.share_now):.1f}" x2="{X(xd):.1f}" '
                     f'y2="{Y(f.share_at_deadline):.1f}" class="projection"/>')
    for run in _runs(samples):
        line = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in run)
        parts.append(f'<polyline points="{line}" class="share-line"/>')
    parts.append(f'<circle cx="{X(samples[-1][0]):.1f}" cy="{Y(samples[-1][1]):.1f}" r="3.5" class="now"/>')
    note = t.w("burnup_store" if source == "store" else "burnup_memory")
    return (f'<section id="burnup" data-source="{source}" data-points="{len(samples)}">{title}'
            f'<svg viewBox="0 0 {w:.0f} {h:.0f}" class="chart" role="img" '
            f'aria-label="{t.w("burnup")}">{"".join(parts)}</svg><p class="muted">{note}</p></section>')


def _mercator(lat: float, lon: float) -> tuple[float, float]:
    """Return Web Mercator world coordinates in [0, 1) (the tile grid's, EPSG:3857), y growing southwards."""
    lat = max(-85.05, min(85.05, lat))
    y = (1 - math.log(math.tan(math.radians(lat)) + 1 / math.cos(math.radians(lat))) / math.pi) / 2
    return (lon + 180) / 360, y


MAP_WIDTH, MAP_PAD, TILE_PIXELS, MAX_TILES = 720.0, 24.0, 256, 64
MAP_MARKERS_MAX = 2000  # more located sites than this: neighbours share a marker (a cluster of the worst state)


def _tiles(url: str, x0: float, y0: float, scale: float, w: float, h: float) -> str:
    """Return the configured tile server's tiles under the map: <image> elements in the SVG, at the zoom whose
    tiles are drawn closest to their own size, and at most MAX_TILES of them."""
    zoom = max(0, min(19, round(math.log2(scale / TILE_PIXELS))))
    while True:
        n = 2 ** zoom
        size = scale / n  # one tile, in map units
        first_x, first_y = math.floor(x0 * n), math.floor(y0 * n)
        last_x, last_y = math.floor((x0 + w / scale) * n), math.floor((y0 + h / scale) * n)
        if (last_x - first_x + 1) * (last_y - first_y + 1) <= MAX_TILES or zoom == 0:
            break
        zoom -= 1
    out = []
    for ty in range(max(0, first_y), min(n - 1, last_y) + 1):
        for tx in range(first_x, last_x + 1):
            href = url.replace("{z}", str(zoom)).replace("{x}", str(tx % n)).replace("{y}", str(ty))
            out.append(f'<image href="{_e(href)}" x="{(tx / n - x0) * scale:.1f}" y="{(ty / n - y0) * scale:.1f}" '
                       f'width="{size + 0.5:.1f}" height="{size + 0.5:.1f}" preserveAspectRatio="none"/>')
    return f'<g class="tiles" data-zoom="{zoom}">{"".join(out)}</g>'


def _map(t: _Text, snap: Snapshot, sites: list[Site]) -> str:
    located = [(s, site_state(snap.sites.get(s.id))) for s in sites if s.location is not None]
    title = f'<h2>{t.w("map")}</h2>'
    if not located:
        return f'<section id="map">{title}<p class="muted">{t.w("map_none")}</p></section>'
    world = {s.id: _mercator(s.location.lat, s.location.lon) for s, _ in located if s.location}
    xs, ys = [p[0] for p in world.values()], [p[1] for p in world.values()]
    span_x, span_y = max(max(xs) - min(xs), 1e-6), max(max(ys) - min(ys), 1e-6)
    w, pad = MAP_WIDTH, MAP_PAD
    scale = min((w - 2 * pad) / span_x, (w * 0.75 - 2 * pad) / span_y)  # no taller than three quarters of its width
    h = span_y * scale + 2 * pad
    # the world point at the map's top-left corner, the sites centred across
    ox, oy = min(xs) - (w / scale - span_x) / 2, min(ys) - pad / scale

    def xy(s: Site) -> tuple[float, float]:
        wx, wy = world[s.id]
        return (wx - ox) * scale, (wy - oy) * scale

    settings = snap.config.board
    tiles = _tiles(settings.tile_url, ox, oy, scale, w, h) if settings.tile_url else ""
    # Every site its own marker, a link to its page, the worst drawn last (on top). Only a very large map groups
    # sites that share a cell into one marker of the worst state among them, so the page stays light.
    cell = 14.0 if len(located) > MAP_MARKERS_MAX else 0.0
    cells: dict[tuple[int, int], list[tuple[Site, str, float, float]]] = {}
    for s, state in sorted(located, key=lambda item: -WORST_ORDER[item[1]]):
        x, y = xy(s)
        key = (int(x // cell), int(y // cell)) if cell else (len(cells), 0)
        cells.setdefault(key, []).append((s, state, x, y))
    shapes = []
    for group in cells.values():
        if len(group) >= 3:
            worst = max((g[1] for g in group), key=lambda st: 3 - WORST_ORDER[st])
            cx, cy = sum(g[2] for g in group) / len(group), sum(g[3] for g in group) / len(group)
            ids = " ".join(g[0].id for g in group)
            counts = {st: sum(1 for g in group if g[1] == st) for st in SITE_STATES}
            tip = ", ".join(f"{state_words(st, t.view.lang)} {n}" for st, n in counts.items() if n)
            shapes.append(f'<g class="cluster" data-sites="{_e(ids)}" data-state="{worst}">'
                          f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{8 + min(8, len(group)):.0f}" '
                          f'fill="{STATE_COLOURS[worst]}"/><text x="{cx:.1f}" y="{cy + 4:.1f}" '
                          f'text-anchor="middle">{_e(t.d(len(group)))}</text>'
                          f'<title>{_e(t.d(tip))}</title></g>')
            continue
        for s, state, x, y in group:
            shapes.append(f'<a href="{_e(site_href(t.view, s.id))}"><g class="pt" data-site="{_e(s.id)}" '
                          f'data-state="{state}" data-colour="{STATE_COLOURS[state]}">{_marker(state, x, y)}'
                          f'<title>{_e(s.id)} {_e(s.name)}: {_e(state_words(state, t.view.lang))}</title></g></a>')
    labels = []
    by_county: dict[str, list[tuple[float, float]]] = {}
    for s, _ in located:
        by_county.setdefault(s.county, []).append(xy(s))
    for county, pts in sorted(by_county.items()):
        cx, cy = sum(p[0] for p in pts) / len(pts), min(p[1] for p in pts) - 10
        labels.append(f'<text x="{cx:.1f}" y="{max(12.0, cy):.1f}" class="county-label" text-anchor="middle" '
                      f'dir="auto">{_e(county)}</text>')
    legend = " ".join(f'<span class="legend">{t.state(st)}</span>' for st in SITE_STATES)
    credit = (f'<p class="muted attribution" dir="auto">{_e(settings.tile_attribution)}</p>'
              if settings.tile_url and settings.tile_attribution else "")
    return (f'<section id="map">{title}<svg viewBox="0 0 {w:.0f} {h:.0f}" class="map" role="img" '
            f'aria-label="{t.w("map")}">{tiles}{"".join(shapes)}{"".join(labels)}</svg>'
            f'<div class="legends">{legend}</div>{credit}</section>')


def _marker(state: str, x: float, y: float) -> str:
    """A state's marker: its colour AND its shape (circle, diamond, triangle, cross), never colour alone."""
    c = STATE_COLOURS[state]
    if state == "ready":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{c}"/>'
    if state == "degraded":
        return (f'<path d="M{x:.1f} {y - 6:.1f}L{x + 6:.1f} {y:.1f}L{x:.1f} {y + 6:.1f}L{x - 6:.1f} {y:.1f}Z" '
                f'fill="{c}"/>')
    if state == "not_ready":
        return (f'<path d="M{x - 5:.1f} {y - 5:.1f}L{x + 5:.1f} {y + 5:.1f}M{x + 5:.1f} {y - 5:.1f}L{x - 5:.1f} '
                f'{y + 5:.1f}" stroke="{c}" stroke-width="3.5"/>')
    return f'<path d="M{x:.1f} {y - 6:.1f}L{x + 6:.1f} {y + 5:.1f}L{x - 6:.1f} {y + 5:.1f}Z" fill="{c}"/>'


# -- the page --------------------------------------------------------------------------------------------


def render_board(snap: Snapshot, view: View, health: tuple[str, list[str]] = ("fresh", []),
                 recorded: Mapping[Scope, tuple[Sample, ...]] | None = None) -> str:
    """Return the board's HTML for ``view`` of ``snap``: every figure from monitor/core/figures.py; the burn-up from
    ``recorded`` (the event store's ready share over time) when given, else from the forecast's samples."""
    t = _Text(view, ZoneInfo(snap.config.programme.timezone))
    reported = snap.config.reported_sites()
    counties = sorted({s.county for s in reported})
    county = view.county if view.county in counties else ""
    chosen = [s for s in reported if not county or s.county == county]
    fig = compute_figures(chosen, snap.sites)
    scope = ("county", county) if county else PROVINCE
    f = snap.forecasts.get(scope)
    programme = snap.config.programme.name
    title = f"{programme} — {county}" if county else programme
    back = f'<p><a id="back" href="{_e(view.href(county=""))}">{t.w("back")}</a></p>' if county else ""
    polling = [s for s in chosen if is_polling_place(s)]
    body = [
        _headline(t, snap, fig, f, title),
        "" if county else _counties(t, snap, fig, polling),
        _sites_table(t, snap, chosen, t.w("sites_of", county=county) if county else t.w("worst"),
                     None if county else WORST_SITES),
        _burnup(t, snap, scope, f, fig.province, recorded),
        _map(t, snap, chosen),
    ]
    return frame(t, snap, title=title, health=health, body="".join(body), back=back,
                 data=f' data-county="{_e(county)}"')


# -- serving: cached per snapshot and view, rendered off the event loop ---------------------------------------


class BoardCache:
    """The rendered pages per (snapshot, page, view, health): one render per snapshot, in a worker thread.

    ``history`` (monitor/runtime/readback.py, handed in by the command that runs the service) reads the event
    store for the burn-up and a site's timeline; without it the burn-up takes the forecast's samples.
    """

    def __init__(self, get: Callable[[], Snapshot], render: Callable[..., str] = render_board,
                 clock: Callable[[], float] = time.time, history: StoreHistory | None = None) -> None:
        self.get, self.render, self.clock, self.history = get, render, clock, history
        self._snap: Snapshot | None = None
        self._pages: dict[tuple[str, View, str, tuple[str, ...]], tuple[int, str]] = {}
        self._lock = threading.Lock()
        self.renders = 0

    def _cached(self, snap: Snapshot, key: tuple[str, View, str, tuple[str, ...]],
                build: Callable[[], tuple[int, str]]) -> tuple[int, str]:
        with self._lock:
            if self._snap is not snap:
                self._snap, self._pages = snap, {}
            page = self._pages.get(key)
        if page is None:
            page = build()
            with self._lock:
                if self._snap is snap and len(self._pages) < 256:
                    self._pages[key] = page
                self.renders += 1
        return page

    def page(self, query: Mapping[str, str]) -> str:
        """Return the board ``query`` asks for; ValueError for a query the board does not understand."""
        snap = self.get()
        view = View.of(query, {s.county for s in snap.config.reported_sites()})
        health = monitor_health(snap, self.clock())
        notes = tuple(health[1]) if health[0] != "fresh" else ()

        def build() -> tuple[int, str]:
            recorded = self.history.shares() if self.history is not None else None
            return 200, self.render(snap, view, (health[0], list(notes)), recorded)
        return self._cached(snap, ("/", view, health[0], notes), build)[1]

    def site(self, site_id: str, query: Mapping[str, str]) -> tuple[int, str]:
        """Return (status, page) of ``/sites/{site_id}``: 404 with a page of its own for a site not in the inventory."""
        from monitor.web.site_page import TIMELINE_DAYS, render_missing, render_site

        snap = self.get()
        view = View.of(query, (), allowed=("lang", "digits"))
        now = self.clock()
        health = monitor_health(snap, now)
        notes = tuple(health[1]) if health[0] != "fresh" else ()

        def build() -> tuple[int, str]:
            site = snap.config.site_map().get(site_id)
            if site is None:
                return 404, render_missing(snap, view, site_id)
            end = max(snap.at, now)
            timeline = (self.history.timeline(site.id, end - TIMELINE_DAYS * DAY_SECONDS, end)
                        if self.history is not None else None)
            return 200, render_site(snap, view, site, (health[0], list(notes)), timeline)
        return self._cached(snap, (f"/sites/{site_id}", view, health[0], notes), build)


def _bad_query(exc: Exception) -> web.Response:
    return web.Response(text=f'<!doctype html><html lang="en"><meta charset="utf-8"><meta name="viewport" '
                        f'content="width=device-width, initial-scale=1"><p>{_e(exc)}</p>'
                        f'<p><a href="/">/</a></p></html>', status=400, content_type="text/html", charset="utf-8")


def add_board(app: web.Application, get: Callable[[], Snapshot], *,
              history: StoreHistory | None = None) -> BoardCache:
    """Serve the board at ``/``, each site at ``/sites/{id}``, and their static files (styles, script, font) at
    ``/static/board/``."""
    cache = BoardCache(get, history=history)

    async def index(request: web.Request) -> web.Response:
        query = dict(request.query)
        try:
            body = await asyncio.get_running_loop().run_in_executor(None, cache.page, query)
        except ValueError as exc:
            return _bad_query(exc)
        return web.Response(text=body, content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-cache"})

    async def site(request: web.Request) -> web.Response:
        query = dict(request.query)
        try:
            status, body = await asyncio.get_running_loop().run_in_executor(
                None, cache.site, request.match_info["site"], query)
        except ValueError as exc:
            return _bad_query(exc)
        return web.Response(text=body, status=status, content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-cache"})

    files = {p.relative_to(STATIC).as_posix(): p for p in STATIC.rglob("*") if p.is_file()}

    async def static(request: web.Request) -> web.StreamResponse:
        path = files.get(request.match_info["path"])  # only the files shipped: no path ever leaves the folder
        if path is None:
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Cache-Control": "max-age=3600"})

    app.router.add_get("/", index)
    app.router.add_get("/sites/{site}", site)
    app.router.add_get("/static/board/{path:.+}", static)
    return cache


def board_summary(snap: Snapshot) -> dict[str, Any]:
    """Return the board's figures as the page shows them (for tests and the screenshot script)."""
    fig = snap.figures()
    return {"share": share_text(fig.province.share), **{s: fig.province.states[s] for s in SITE_STATES}}
