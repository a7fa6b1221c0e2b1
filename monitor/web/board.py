"""The committee's board at ``/``: are we ready, where not, will we make it — Persian first, English by switch.

Everything is rendered on the server from one snapshot (figures from monitor/core/figures.py, the forecast from
monitor/core/forecast.py, reasons in words from monitor/web/i18n.py): no script or style leaves the machine, the
charts and the map are inline SVG. A page is rendered once per snapshot and view, off the event loop
(`BoardCache`). A small script (static/board.js) polls /api/v1/summary, swaps in the new board when a new
evaluation is published and keeps "updated N s ago" ticking. The owner column (the site's owner, its open
remediation actions, those past due marked overdue) comes from the same snapshot.
"""

from __future__ import annotations

import asyncio
import html
import math
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from monitor.core.figures import AREAS, Figures, Tally, is_polling_place, site_state, site_terminals
from monitor.core.figures import compute as compute_figures
from monitor.core.forecast import DAY_SECONDS, PROVINCE, Forecast, min_samples
from monitor.core.model import Site
from monitor.core.readiness import SiteReadiness
from monitor.core.reasons import SITE_STATES
from monitor.runtime.snapshot import Snapshot
from monitor.web.i18n import (
    STATE_ICON,
    Lang,
    digits,
    duration,
    gregorian_text,
    jalali_text,
    local,
    reason_words,
    share_text,
    state_words,
    words,
)

STATIC = Path(__file__).with_name("board_static")
STATE_COLOURS = {"ready": "#2e7d32", "degraded": "#b26a00", "not_ready": "#c62828", "unknown": "#616161"}
WORST_ORDER = {"not_ready": 0, "unknown": 1, "degraded": 2, "ready": 3}
WORST_SITES = 25  # on the province board; a county view lists all of its sites
REFRESH_SECONDS = 15  # how often the page asks /api/v1/summary whether there is a new evaluation
HEALTH = ("fresh", "stale", "blind")


# -- the view a request asks for ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class View:
    """What one request asks to see: language, digits, a county (or the province)."""

    lang: Lang = "fa"
    latin: bool = False
    county: str = ""

    @staticmethod
    def of(query: Mapping[str, str], counties: Iterable[str]) -> View:
        """Return the view ``query`` asks for; ValueError names what is allowed (the page answers 400)."""
        unknown = sorted(set(query) - {"lang", "digits", "county"})
        if unknown:
            raise ValueError(f"unknown parameter {unknown[0]!r}; allowed: lang, digits, county")
        lang_name = query.get("lang", "fa").strip().lower() or "fa"
        if lang_name not in ("fa", "en"):
            raise ValueError(f"unknown lang {lang_name!r}; allowed: fa, en")
        lang: Lang = "en" if lang_name == "en" else "fa"
        digits_name = query.get("digits", "").strip().lower()
        if digits_name not in ("", "latin", "fa"):
            raise ValueError(f"unknown digits {digits_name!r}; allowed: latin, fa")
        wanted = query.get("county", "").strip()
        county = ""
        if wanted:
            names = sorted(counties)
            match = next((c for c in names if c.casefold() == wanted.casefold()), None)
            if match is None:
                raise ValueError(f"unknown county {wanted!r}; allowed: {', '.join(names)}")
            county = match
        return View(lang, lang == "en" or digits_name == "latin", county)

    def href(self, **change: str) -> str:
        params = {"lang": "en" if self.lang == "en" else "", "digits": "latin" if self.latin and self.lang == "fa"
                  else "", "county": self.county}
        params.update(change)
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v})
        return "/" + (f"?{query}" if query else "")


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


# -- small helpers ---------------------------------------------------------------------------------------


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


class _Text:
    """Localised text of one view: words, digits, dates."""

    def __init__(self, view: View, zone: ZoneInfo) -> None:
        self.view, self.zone = view, zone

    def w(self, key: str, **values: object) -> str:
        return _e(self.d(words(key, self.view.lang, **values)))

    def d(self, text: object) -> str:
        return digits(str(text), self.view.lang, self.view.latin)

    def share(self, share: float | None) -> str:
        return self.d(share_text(share))

    def date(self, ts: float, *, with_time: bool = True) -> str:
        when = local(ts, self.zone)
        jal = self.d(jalali_text(when, self.view.lang, with_time=with_time))
        greg = self.d(gregorian_text(when))
        return (f'<span class="date"><span class="jalali">{_e(jal)}</span> '
                f'<span class="greg" dir="ltr">({_e(greg)})</span></span>')

    def state(self, state: str) -> str:
        return (f'<span class="state st-{state}" data-state="{state}"><span class="icon" aria-hidden="true">'
                f'{STATE_ICON.get(state, "?")}</span> {_e(state_words(state, self.view.lang))}</span>')

    def dur(self, seconds: float) -> str:
        return _e(self.d(duration(seconds, self.view.lang)))


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
            f'<td data-label="{t.w("site")}"><b dir="ltr">{_e(s.id)}</b> <span dir="auto">{_e(s.name)}</span>'
            f'{"" if is_polling_place(s) else " <small>(" + t.w("nodes").split(" (")[0] + ")</small>"}</td>'
            f'<td data-label="{t.w("county")}" dir="auto">{_e(s.county)} · {t.w(s.area)}</td>'
            f'<td data-label="{t.w("reasons")}" class="reasons">'
            f'{"<br>".join(_e(t.d(x)) for x in reasons) or "–"}</td>'
            f'<td data-label="{t.w("for")}">{t.dur(since) if since is not None else "–"}</td>'
            f'<td data-label="{t.w("terminals")}" dir="ltr">{_e(t.d(terms))}</td>'
            f'<td data-label="{t.w("owner")}" class="owner" data-owner-for="{_e(s.id)}">{_owner(t, snap, s)}</td></tr>')
    more = len(chosen) - len(shown)
    heads = "".join(f"<th>{t.w(k)}</th>" for k in ("state", "site", "county", "reasons", "for", "terminals"))
    tail = f'<p class="muted">{t.w("more", n=more)}</p>' if more > 0 else ""
    return (f'<section id="sites"><h2>{heading}</h2><table class="cards sites"><thead><tr>{heads}'
            f'<th class="owner">{t.w("owner")}</th></tr></thead><tbody>{"".join(rows)}</tbody></table>{tail}'
            f'</section>')


def _owner(t: _Text, snap: Snapshot, site: Site) -> str:
    """Return the owner cell: who answers for the site, then each open action on it (or its county)."""
    owner = snap.config.owner_of(site)[0]
    parts = [f'<span dir="auto">{_e(owner)}</span>' if owner else "–"]
    for a in snap.actions or ():
        if a.is_open() and a.covers(site.id, site.county):
            late = a.overdue(snap.at)
            flag = f' <b class="overdue">{t.w("overdue")}</b>' if late else ""
            parts.append(f'<br><span class="action{" late" if late else ""}" data-action="{_e(a.id)}">'
                         f'<b dir="ltr">{_e(a.id)}</b> <span dir="auto">{_e(a.owner)}</span> · {t.w("due")} '
                         f'{t.date(a.due)}{flag}</span>')
    return "".join(parts)


def _burnup(t: _Text, snap: Snapshot, scope: tuple[str, str], f: Forecast | None) -> str:
    samples = [(x, r / n) for x, r, n in snap.shares.get(scope, ()) if n]
    title = f'<h2>{t.w("burnup")}</h2>'
    if not samples:
        return f'<section id="burnup">{title}<p class="muted">{t.w("burnup_none")}</p></section>'
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
    for i in range(ticks + 1):
        x = x0 + (x1 - x0) * i / ticks
        when = local(x, t.zone)
        label = t.d(jalali_text(when, t.view.lang, with_time=False).rsplit(" ", 1)[0])
        parts.append(f'<text x="{X(x):.1f}" y="{h - 8:.1f}" class="axis" text-anchor="middle">{_e(label)}</text>')
    parts.append(f'<line x1="{X(x0):.1f}" x2="{X(x1):.1f}" y1="{Y(target):.1f}" y2="{Y(target):.1f}" '
                 f'class="target"><title>{t.w("target")}</title></line>')
    parts.append(f'<line x1="{X(deadline):.1f}" x2="{X(deadline):.1f}" y1="{top}" y2="{h - bottom}" class="deadline"/>'
                 f'<text x="{X(deadline) + (-4 if t.view.lang == "en" else 4):.1f}" y="{top + 10}" '
                 f'class="axis deadline-label" text-anchor="end">'
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
    line = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in samples)
    parts.append(f'<polyline points="{line}" class="share-line"/>')
    parts.append(f'<circle cx="{X(samples[-1][0]):.1f}" cy="{Y(samples[-1][1]):.1f}" r="3.5" class="now"/>')
    return (f'<section id="burnup">{title}<svg viewBox="0 0 {w:.0f} {h:.0f}" class="chart" role="img" '
            f'aria-label="{t.w("burnup")}">{"".join(parts)}</svg></section>')


def _map(t: _Text, snap: Snapshot, sites: list[Site], tile_url: str = "") -> str:
    located = [(s, site_state(snap.sites.get(s.id))) for s in sites if s.location is not None]
    title = f'<h2>{t.w("map")}</h2>'
    if not located:
        return f'<section id="map">{title}<p class="muted">{t.w("map_none")}</p></section>'
    lats = [s.location.lat for s, _ in located if s.location]
    lons = [s.location.lon for s, _ in located if s.location]
    kx = math.cos(math.radians(sum(lats) / len(lats)))
    span_x = max((max(lons) - min(lons)) * kx, 1e-3)
    span_y = max(max(lats) - min(lats), 1e-3)
    w = 720.0
    pad = 24.0
    scale = (w - 2 * pad) / max(span_x, span_y * 1.2)
    h = span_y * scale + 2 * pad

    def xy(s: Site) -> tuple[float, float]:
        assert s.location is not None
        return pad + (s.location.lon - min(lons)) * kx * scale, pad + (max(lats) - s.location.lat) * scale

    cell = 14.0  # sites closer than this are drawn as one cluster when three or more share a cell
    cells: dict[tuple[int, int], list[tuple[Site, str, float, float]]] = {}
    for s, state in located:
        x, y = xy(s)
        cells.setdefault((int(x // cell), int(y // cell)), []).append((s, state, x, y))
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
            shapes.append(f'<g class="pt" data-site="{_e(s.id)}" data-state="{state}">{_marker(state, x, y)}'
                          f'<title>{_e(s.id)} {_e(s.name)}: {_e(state_words(state, t.view.lang))}</title></g>')
    labels = []
    by_county: dict[str, list[tuple[float, float]]] = {}
    for s, _ in located:
        by_county.setdefault(s.county, []).append(xy(s))
    for county, pts in sorted(by_county.items()):
        cx, cy = sum(p[0] for p in pts) / len(pts), min(p[1] for p in pts) - 10
        labels.append(f'<text x="{cx:.1f}" y="{max(12.0, cy):.1f}" class="county-label" text-anchor="middle" '
                      f'dir="auto">{_e(county)}</text>')
    legend = " ".join(f'<span class="legend">{t.state(st)}</span>' for st in SITE_STATES)
    tiles = (f'<p class="muted">tiles: <span dir="ltr">{_e(tile_url)}</span> (configured)</p>' if tile_url else "")
    return (f'<section id="map">{title}<svg viewBox="0 0 {w:.0f} {h:.0f}" class="map" role="img" '
            f'aria-label="{t.w("map")}">{"".join(shapes)}{"".join(labels)}</svg>'
            f'<div class="legends">{legend}</div>{tiles}</section>')


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
                 tile_url: str = "") -> str:
    """Return the board's HTML for ``view`` of ``snap``: every figure from monitor/core/figures.py."""
    zone = ZoneInfo(snap.config.programme.timezone)
    t = _Text(view, zone)
    lang = view.lang
    reported = snap.config.reported_sites()
    counties = sorted({s.county for s in reported})
    county = view.county if view.county in counties else ""
    chosen = [s for s in reported if not county or s.county == county]
    fig = compute_figures(chosen, snap.sites)
    scope = ("county", county) if county else PROVINCE
    f = snap.forecasts.get(scope)
    programme = snap.config.programme.name
    title = f"{programme} — {county}" if county else programme
    state, notes = health
    banner = ""
    if state != "fresh" or notes:
        key = {"stale": "health_stale", "blind": "health_blind"}.get(state, "health_note")
        banner = (f'<div class="banner health-{state}" role="alert" id="health" data-health="{state}">'
                  f'<b>⚠ {t.w(key)}</b> <small dir="ltr">{_e("; ".join(notes))}</small></div>')
    updated = (f'{t.w("updated")}: {t.date(snap.at)} · <span id="ago" data-at="{snap.at:.3f}"></span>'
               if snap.evaluated else t.w("not_yet"))
    other_lang = "" if lang == "en" else "en"
    nav = [f'<a id="lang-switch" href="{_e(view.href(lang=other_lang))}" hreflang="{other_lang or "fa"}">'
           f'{t.w("switch_lang")}</a>']
    if lang == "fa":
        nav.append(f'<a id="digits-switch" href="{_e(view.href(digits="" if view.latin else "latin"))}">'
                   f'{t.w("digits_fa" if view.latin else "digits_latin")}</a>')
    nav.append(f'<a href="/api/v1/summary">{t.w("api")}</a>')
    back = f'<p><a id="back" href="{_e(view.href(county=""))}">{t.w("back")}</a></p>' if county else ""
    polling = [s for s in chosen if is_polling_place(s)]
    body = [
        _headline(t, snap, fig, f, title),
        "" if county else _counties(t, snap, fig, polling),
        _sites_table(t, snap, chosen, t.w("sites_of", county=county) if county else t.w("worst"),
                     None if county else WORST_SITES),
        _burnup(t, snap, scope, f),
        _map(t, snap, chosen, tile_url),
    ]
    stale_after = max(REFRESH_SECONDS * 4.0, max(
        (snap.config.policy.stale_after_intervals * c.interval_seconds for c in snap.cycles.values()), default=0.0))
    return f"""<!doctype html>
<html lang="{lang}" dir="{'rtl' if lang == 'fa' else 'ltr'}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)} · {t.w("title")}</title>
<link rel="stylesheet" href="/static/board/board.css">
<noscript><meta http-equiv="refresh" content="60"></noscript>
</head>
<body data-lang="{lang}" data-latin="{int(view.latin)}" data-evaluated="{snap.at if snap.evaluated else ''}"
 data-refresh="{REFRESH_SECONDS}" data-stale-after="{stale_after:.0f}" data-county="{_e(county)}">
<main id="board">
<header><h1 dir="auto">{_e(title)}</h1><nav>{" · ".join(nav)}</nav>
<p class="updated">{updated}</p></header>
{banner}{back}
{"".join(body)}
</main>
<script src="/static/board/board.js" defer></script>
</body></html>"""


# -- serving: cached per snapshot and view, rendered off the event loop ---------------------------------------


class BoardCache:
    """The rendered page per (snapshot, view, health): one render per snapshot, in a worker thread."""

    def __init__(self, get: Callable[[], Snapshot], render: Callable[..., str] = render_board,
                 clock: Callable[[], float] = time.time, tile_url: str = "") -> None:
        self.get, self.render, self.clock, self.tile_url = get, render, clock, tile_url
        self._snap: Snapshot | None = None
        self._pages: dict[tuple[View, str, tuple[str, ...]], str] = {}
        self._lock = threading.Lock()
        self.renders = 0

    def page(self, query: Mapping[str, str]) -> str:
        """Return the page ``query`` asks for; ValueError for a query the board does not understand."""
        snap = self.get()
        view = View.of(query, {s.county for s in snap.config.reported_sites()})
        health = monitor_health(snap, self.clock())
        key = (view, health[0], tuple(health[1]) if health[0] != "fresh" else ())
        with self._lock:
            if self._snap is not snap:
                self._snap, self._pages = snap, {}
            page = self._pages.get(key)
        if page is None:
            page = self.render(snap, view, (health[0], list(key[2])), self.tile_url)
            with self._lock:
                if self._snap is snap and len(self._pages) < 256:
                    self._pages[key] = page
                self.renders += 1
        return page


def add_board(app: web.Application, get: Callable[[], Snapshot], *, tile_url: str = "") -> BoardCache:
    """Serve the board at ``/`` and its static files (styles, script, font) at ``/static/board/``."""
    cache = BoardCache(get, tile_url=tile_url)

    async def index(request: web.Request) -> web.Response:
        query = dict(request.query)
        try:
            body = await asyncio.get_running_loop().run_in_executor(None, cache.page, query)
        except ValueError as exc:
            return web.Response(text=f'<!doctype html><html lang="en"><meta charset="utf-8"><meta name="viewport" '
                                f'content="width=device-width, initial-scale=1"><p>{_e(exc)}</p>'
                                f'<p><a href="/">/</a></p></html>', status=400, content_type="text/html",
                                charset="utf-8")
        return web.Response(text=body, content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-cache"})

    files = {p.relative_to(STATIC).as_posix(): p for p in STATIC.rglob("*") if p.is_file()}

    async def static(request: web.Request) -> web.StreamResponse:
        path = files.get(request.match_info["path"])  # only the files shipped: no path ever leaves the folder
        if path is None:
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Cache-Control": "max-age=3600"})

    app.router.add_get("/", index)
    app.router.add_get("/static/board/{path:.+}", static)
    return cache


def board_summary(snap: Snapshot) -> dict[str, Any]:
    """Return the board's figures as the page shows them (for tests and the screenshot script)."""
    fig = snap.figures()
    return {"share": share_text(fig.province.share), **{s: fig.province.states[s] for s in SITE_STATES}}
