"""One site's page, ``/sites/{id}``: its state and reasons in words, its links against their medium's thresholds,
its terminals, the maintenance windows and waivers that cover it, its owner and open actions, and its state over
the last days as the event store recorded it (a server-side SVG strip and the list of changes).

Persian first, English by ``?lang=en``, in the board's chrome (monitor/web/chrome.py); rendered once per snapshot
and view off the event loop (monitor/web/board.py `BoardCache`).
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Callable
from datetime import timedelta
from zoneinfo import ZoneInfo

from monitor.core.actions import Action
from monitor.core.figures import is_polling_place, site_state, site_terminals
from monitor.core.model import MediumPolicy, Site
from monitor.core.readiness import LinkHealth, SiteReadiness
from monitor.core.reasons import Reason
from monitor.runtime.readback import Change, SiteTimeline
from monitor.runtime.snapshot import Snapshot
from monitor.web.chrome import Text, View, esc, frame
from monitor.web.i18n import (
    PART_STATE_CLASS,
    ROLE_WORDS,
    jalali_text,
    local,
    part_state_words,
    reason_words,
    words,
)

TIMELINE_DAYS = 3  # the state strip covers this many days back from now
CHANGES_SHOWN = 40  # the newest site changes listed under the strip
TERMINALS_IN_STRIP = 12  # more terminals than this: the strip shows the site and links, the table the rest
COLOURS = {"ready": "#2e7d32", "degraded": "#b26a00", "not_ready": "#c62828", "unknown": "#9e9e9e"}


def _colour(state: str) -> str:
    return COLOURS.get(state, COLOURS.get(PART_STATE_CLASS.get(state, "unknown"), COLOURS["unknown"]))


def _reasons(t: Text, reasons: tuple[Reason, ...] | tuple[str, ...]) -> str:
    if not reasons:
        return "–"
    return "<br>".join(esc(t.d(reason_words(r, t.view.lang))) for r in reasons)


# -- the parts -------------------------------------------------------------------------------------------------


def _summary(t: Text, snap: Snapshot, site: Site, r: SiteReadiness | None) -> str:
    state = site_state(r)
    since = (f' <span class="muted">{t.w("for_time")} {t.dur(snap.at - r.since)} · {t.w("since")} {t.date(r.since)}'
             f'</span>' if r is not None and r.since else "")
    reasons = _reasons(t, r.reasons) if r is not None else esc(reason_words("no_data", t.view.lang))
    warnings = (f'<div class="sub"><b>{t.w("warnings")}:</b> {_reasons(t, r.warnings)}</div>'
                if r is not None and r.warnings else "")
    kind = t.w("kind_polling" if is_polling_place(site) else "kind_node")
    upstream = ""
    if site.upstream:
        up = snap.sites.get(site.upstream)
        upstream = (f' · {t.w("upstream_node")} <a href="{esc(t.view.href("/sites/" + site.upstream))}" dir="ltr">'
                    f'{esc(site.upstream)}</a> {t.state(site_state(up))}')
    owner, contact = snap.config.owner_of(site)
    who = (f'{esc(owner)}' + (f' · {t.w("contact")}: <span dir="ltr">{esc(contact)}</span>' if contact else "")
           if owner else f'<span class="muted">{t.w("no_owner")}</span>')
    # The open actions as of the snapshot; the page's script keeps them current from GET /api/v1/actions.
    acts = "; ".join(f"{a.owner} — {a.note or a.id} ({a.due_text})" for a in _open_actions(snap, site))
    who += f'<div class="act" dir="auto" data-owner-for="{esc(site.id)}">{esc(acts)}</div>'
    who += f'<div class="muted no-act">{t.w("no_actions")}</div>'
    terms = site_terminals(site, r)
    where = (f' · {t.w("location")}: <span dir="ltr">{t.d(f"{site.location.lat:.4f}, {site.location.lon:.4f}")}</span>'
             if site.location is not None else "")
    return f"""
<section class="headline site-head" id="site" data-site="{esc(site.id)}" data-state="{state}"
 data-county="{esc(site.county)}">
 <div class="card big">
  <div class="label">{t.w("state")}</div>
  <div class="value">{t.state(state)}{since}</div>
  <div class="reasons" id="site-reasons">{reasons}</div>{warnings}
 </div>
 <div class="card">
  <div class="label">{t.w("site")}</div>
  <div><b dir="ltr">{esc(site.id)}</b> <span dir="auto">{esc(site.name)}</span></div>
  <div class="sub">{kind} · <span dir="auto">{esc(site.county)}</span> · {t.w(site.area)}{upstream}{where}</div>
  <div class="sub">{t.w("terminals")}: <span dir="ltr">{esc(t.d(terms.text()))}</span></div>
 </div>
 <div class="card">
  <div class="label">{t.w("owner")}</div>
  <div id="owner">{who}</div>
 </div>
</section>"""


def _measure(t: Text, value: float | None, limit: float | None, text: Callable[[float], str], *, below: bool = False
             ) -> str:
    """Return a value against its limit, ``0.3% (max 1.0%)``, marked when over (or, for light, under) the limit."""
    if value is None or not math.isfinite(value):
        shown, bad = "–", False
    else:
        shown = text(value)
        bad = limit is not None and (value < limit if below else value > limit)
    bound = "" if limit is None else (f' <small class="muted">({t.w("at_least" if below else "at_most")} '
                                      f'<bdi dir="ltr">{esc(t.d(text(limit)))}</bdi>)</small>')
    return f'<bdi class="measure{" over" if bad else ""}" dir="ltr">{esc(t.d(shown))}</bdi>{bound}'


def _percent(v: float) -> str:
    return f"{v * 100:.1f}%"


def _ms(v: float) -> str:
    return f"{v * 1000:.1f} ms"


def _dbm(v: float) -> str:
    return f"{v:.1f} dBm"


def _links(t: Text, snap: Snapshot, site: Site, r: SiteReadiness | None) -> str:
    title = f'<h2>{t.w("links")}</h2>'
    if not site.links:
        return f'<section id="links">{title}<p class="muted">{t.w("no_links")}</p></section>'
    health = {h.role: h for h in r.links} if r is not None else {}
    rows = []
    for link in site.links:
        h: LinkHealth | None = health.get(link.role)
        policy: MediumPolicy = snap.config.policy.media[link.medium]
        v = h.values if h is not None else {}
        state = h.state if h is not None else "unknown"
        why = _reasons(t, (*h.reasons, *h.warnings)) if h is not None else "–"
        rx_limit = policy.rx_power_min_dbm
        rows.append(
            f'<tr data-link="{esc(link.role)}" data-state="{state}">'
            f'<td data-label="{t.w("role")}">{esc(ROLE_WORDS[link.role][t.view.lang])}</td>'
            f'<td data-label="{t.w("medium")}"><span dir="ltr">{esc(link.medium)}</span></td>'
            f'<td data-label="{t.w("address")}"><span dir="ltr">{esc(link.address)}</span></td>'
            f'<td data-label="{t.w("state")}"><span class="state st-{PART_STATE_CLASS.get(state, "unknown")}">'
            f'{esc(part_state_words(state, t.view.lang))}</span></td>'
            f'<td data-label="{t.w("loss")}" data-measure="loss">'
            f'{_measure(t, v.get("loss_ratio"), policy.loss_max_ratio, _percent)}</td>'
            f'<td data-label="{t.w("rtt")}" data-measure="rtt">'
            f'{_measure(t, v.get("rtt_avg_seconds"), policy.rtt_max_seconds, _ms)}</td>'
            f'<td data-label="{t.w("jitter")}" data-measure="jitter">'
            f'{_measure(t, v.get("jitter_seconds"), policy.jitter_max_seconds, _ms)}</td>'
            f'<td data-label="{t.w("rx_power")}" data-measure="rx_power">'
            f'{_measure(t, v.get("rx_power_dbm"), rx_limit, _dbm, below=True) if link.snmp or rx_limit else "–"}</td>'
            f'<td data-label="{t.w("reasons")}" class="reasons">{why}</td>'
            f'<td data-label="{t.w("observed")}">{t.date(h.observed_at) if h is not None and h.observed_at else "–"}'
            f'</td></tr>')
    heads = "".join(f"<th>{t.w(k)}</th>" for k in ("role", "medium", "address", "state", "loss", "rtt", "jitter",
                                                    "rx_power", "reasons", "observed"))
    return (f'<section id="links">{title}<table class="cards"><thead><tr>{heads}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></section>')


def _terminals(t: Text, site: Site, r: SiteReadiness | None) -> str:
    title = f'<h2>{t.w("terminals_list")}</h2>'
    if not site.terminals:
        return f'<section id="terminals">{title}<p class="muted">{t.w("no_terminals")}</p></section>'
    health = {h.id: h for h in r.terminals} if r is not None else {}
    rows = []
    for term in site.terminals:
        h = health.get(term.id)
        state = h.state if h is not None else "unknown"
        address = term.address + (f":{term.port}" if term.port else "")
        rows.append(
            f'<tr data-terminal="{esc(term.id)}" data-state="{state}">'
            f'<td data-label="{t.w("terminal")}"><span dir="ltr">{esc(term.id)}</span></td>'
            f'<td data-label="{t.w("address")}"><span dir="ltr">{esc(address)}</span></td>'
            f'<td data-label="{t.w("state")}"><span class="state st-{PART_STATE_CLASS.get(state, "unknown")}">'
            f'{esc(part_state_words(state, t.view.lang))}</span></td>'
            f'<td data-label="{t.w("reasons")}"><span dir="ltr">{esc(h.reason) if h is not None and h.reason else "–"}'
            f'</span></td>'
            f'<td data-label="{t.w("observed")}">{t.date(h.observed_at) if h is not None and h.observed_at else "–"}'
            f'</td></tr>')
    heads = "".join(f"<th>{t.w(k)}</th>" for k in ("terminal", "address", "state", "reasons", "observed"))
    return (f'<section id="terminals">{title}<table class="cards"><thead><tr>{heads}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></section>')


def _schedule(t: Text, snap: Snapshot, site: Site, r: SiteReadiness | None) -> str:
    zone = ZoneInfo(snap.config.programme.timezone)
    items = []
    if r is not None and r.maintenance:
        items.append(f'<li class="now"><b>{t.w("in_maintenance_now", why=r.maintenance)}</b></li>')
    for w in snap.config.maintenance:
        if not w.applies_to(site.id, site.county):
            continue
        if w.start is not None and w.end is not None:
            when = (f'{t.date(w.start.timestamp() if w.start.tzinfo else w.start.replace(tzinfo=zone).timestamp())} – '
                    f'{t.date(w.end.timestamp() if w.end.tzinfo else w.end.replace(tzinfo=zone).timestamp())}')
        elif w.weekly is not None:
            when = f'<span dir="ltr">{esc(t.d(w.weekly.model_dump_json(exclude_none=True)))}</span>'
        else:
            when = f'<span dir="ltr">cron {esc(w.cron)} · {esc(t.d(w.duration_minutes))} min</span>'
        open_now = f' <b>({t.w("open_now")})</b>' if w.active(snap.at, zone) else ""
        items.append(f'<li data-window>{t.w("window")}: <span dir="auto">{esc(w.reason)}</span> · {when}'
                     f'{open_now}</li>')
    for wv in snap.config.waivers:
        if wv.site != site.id:
            continue
        until = wv.expires_at(zone)
        expired = f' <b>({t.w("expired")})</b>' if until <= snap.at else ""
        items.append(f'<li data-waiver="{esc(wv.requirement)}">{t.w("waiver")}: <b dir="ltr">{esc(wv.requirement)}</b> '
                     f'{t.w("until")} {t.date(until, with_time=False)} · {t.w("approved_by")} '
                     f'<span dir="auto">{esc(wv.approved_by)}</span> · <span dir="auto">{esc(wv.reason)}</span>'
                     f'{expired}</li>')
    body = f'<ul class="plain">{"".join(items)}</ul>' if items else f'<p class="muted">{t.w("no_schedule")}</p>'
    return f'<section id="schedule"><h2>{t.w("schedule")}</h2>{body}</section>'


def _open_actions(snap: Snapshot, site: Site) -> list[Action]:
    """Return the open actions for the site, or for its whole county, soonest due first."""
    return sorted((a for a in snap.actions or () if a.is_open() and (a.site == site.id or (
        a.site is None and a.county == site.county))), key=lambda a: a.due)


def _actions(t: Text, snap: Snapshot, site: Site) -> str:
    """The open actions in detail (as of the snapshot: who, due, overdue, what); the headline keeps them live."""
    rows = []
    for a in _open_actions(snap, site):
        overdue = f' <b class="st-not_ready">{t.w("overdue")}</b>' if a.overdue(snap.at) else ""
        rows.append(f'<li data-action="{esc(a.id)}"><b dir="ltr">{esc(a.id)}</b> · <span dir="auto">{esc(a.owner)}'
                    f'</span> · {t.w("due")} {t.date(a.due, with_time=False)}{overdue}'
                    f'{" · <span dir=auto>" + esc(a.note) + "</span>" if a.note else ""}</li>')
    body = f'<ul class="plain">{"".join(rows)}</ul>' if rows else f'<p class="muted">{t.w("no_actions")}</p>'
    return f'<section id="actions"><h2>{t.w("actions")}</h2>{body}</section>'


# -- the timeline ----------------------------------------------------------------------------------------------


def _segments(changes: list[Change], start: float, end: float) -> list[tuple[float, float, str]]:
    out = []
    for i, c in enumerate(changes):
        s = max(c.at, start)
        e = changes[i + 1].at if i + 1 < len(changes) else end
        if e > s:
            out.append((s, min(e, end), c.state))
    return out


def _strip(t: Text, timeline: SiteTimeline, rows: list[tuple[str, str]], w: float, label_w: float, kind: str
           ) -> str:
    """Return the state strip: one row per entity, a segment per recorded state, the monitor's dark time over all."""
    start, end = timeline.start, timeline.end
    row_h, top, axis_h = 22.0, 8.0, 22.0
    h = top + row_h * len(rows) + axis_h
    rtl = t.view.lang == "fa"
    x_lo, x_hi = (8.0, w - label_w) if rtl else (label_w, w - 8.0)

    def X(at: float) -> float:
        f = (at - start) / (end - start)
        return x_hi - f * (x_hi - x_lo) if rtl else x_lo + f * (x_hi - x_lo)

    parts = []
    zone = t.zone
    day = local(start, zone).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    while day.timestamp() < end:
        x = X(day.timestamp())
        label = t.d(jalali_text(day, t.view.lang, with_time=False).rsplit(" ", 1)[0])
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top:.1f}" y2="{h - axis_h + 4:.1f}" class="grid"/>')
        if x_lo + 24 < x < x_hi - 24:  # a label at the very edge would be cut off
            parts.append(f'<text x="{x:.1f}" y="{h - 6:.1f}" class="axis" text-anchor="middle">{esc(label)}</text>')
        day += timedelta(days=1)
    for k, (entity, name) in enumerate(rows):
        y = top + k * row_h
        lx = w - 4 if rtl else 4
        parts.append(f'<text x="{lx:.1f}" y="{y + row_h * 0.68:.1f}" class="axis row-label" '
                     f'text-anchor="{"end" if rtl else "start"}">{name}</text>')
        for s, e, state in _segments(timeline.entities.get(entity, []), start, end):
            a, b = sorted((X(s), X(e)))
            parts.append(f'<rect x="{a:.1f}" y="{y + 3:.1f}" width="{max(b - a, 0.8):.1f}" height="{row_h - 6:.1f}" '
                         f'fill="{_colour(state)}" data-entity="{esc(entity)}" data-state="{esc(state)}">'
                         f'<title>{esc(t.d(jalali_text(local(s, zone), t.view.lang)))}: {esc(state)}</title></rect>')
    for s, e in timeline.outages:
        a, b = sorted((X(max(s, start)), X(min(e, end))))
        parts.append(f'<rect x="{a:.1f}" y="{top:.1f}" width="{max(b - a, 0.8):.1f}" height="{row_h * len(rows):.1f}" '
                     f'class="dark"><title>{t.w("monitor_dark")}</title></rect>')
    return (f'<svg viewBox="0 0 {w:.0f} {h:.0f}" class="chart strip {kind}" role="img" '
            f'aria-label="{t.w("timeline", days=TIMELINE_DAYS)}">{"".join(parts)}</svg>')


def _timeline(t: Text, snap: Snapshot, site: Site, timeline: SiteTimeline | None) -> str:
    title = f'<h2>{t.w("timeline", days=TIMELINE_DAYS)}</h2>'
    if timeline is None or not timeline.recorded:
        return f'<section id="timeline" data-recorded="0">{title}<p class="muted">{t.w("timeline_none")}</p></section>'
    rows: list[tuple[str, str]] = [(f"site:{site.id}", t.w("site"))]
    rows += [(f"link:{site.id}/{link.role}", esc(ROLE_WORDS[link.role][t.view.lang])) for link in site.links]
    if len(site.terminals) <= TERMINALS_IN_STRIP:
        rows += [(f"target:{site.id}/terminal/{term.id}", esc(term.id)) for term in site.terminals]
    recorded_any = any(timeline.entities.get(entity) for entity, _ in rows)
    # Two drawings of the same strip: one for wide screens, one for phones (the page shows one by its width), so
    # the labels stay readable at 400 px without scrolling sideways.
    strip = _strip(t, timeline, rows, 1000.0, 110.0, "strip-wide") + _strip(t, timeline, rows, 400.0, 84.0,
                                                                              "strip-narrow")
    legend = " ".join(f'<span class="legend"><i style="background:{c}"></i> {t.state(s)}</span>'
                      for s, c in COLOURS.items())
    strip += (f'<div class="legends">{legend} <span class="legend"><i class="dark"></i> '
              f'{t.w("monitor_dark")}</span></div>')
    start = timeline.start
    changes = [c for c in timeline.entities.get(f"site:{site.id}", []) if c.at >= start]
    if not recorded_any:
        strip += f'<p class="muted">{t.w("timeline_empty")}</p>'
    items = "".join(
        f'<tr data-change><td data-label="{t.w("when")}">{t.date(c.at)}</td><td data-label="{t.w("state")}">'
        f'{t.state(c.state)}</td><td data-label="{t.w("reasons")}" class="reasons">{_reasons(t, c.reasons)}</td></tr>'
        for c in reversed(changes[-CHANGES_SHOWN:]))
    table = (f'<h3>{t.w("changes")}</h3><table class="cards changes"><thead><tr><th>{t.w("when")}</th>'
             f'<th>{t.w("state")}</th><th>{t.w("reasons")}</th></tr></thead><tbody>{items}</tbody></table>'
             if items else "")
    return f'<section id="timeline" data-recorded="1" data-changes="{len(changes)}">{title}{strip}{table}</section>'


# -- the pages -------------------------------------------------------------------------------------------------


def render_site(snap: Snapshot, view: View, site: Site, health: tuple[str, list[str]] = ("fresh", []),
                timeline: SiteTimeline | None = None) -> str:
    """Return the page of ``site`` for ``view`` of ``snap``; ``timeline`` is what the event store holds of it."""
    t = Text(view, ZoneInfo(snap.config.programme.timezone))
    r = snap.sites.get(site.id)
    title = f"{site.id} — {site.name}"
    back = (f'<p><a id="back" href="{esc(view.href(county=""))}">{t.w("back_board")}</a> · '
            f'<a href="{esc(view.href(county=site.county))}" dir="auto">{esc(site.county)}</a></p>')
    body = [_summary(t, snap, site, r), _timeline(t, snap, site, timeline), _links(t, snap, site, r),
            _terminals(t, site, r), _schedule(t, snap, site, r), _actions(t, snap, site)]
    return frame(t, snap, title=title, health=health, body="".join(body), path=f"/sites/{site.id}", back=back,
                 data=f' data-site="{esc(site.id)}"')


def render_missing(snap: Snapshot, view: View, site_id: str) -> str:
    """Return the 404 page for a site id the inventory does not hold."""
    t = Text(view, ZoneInfo(snap.config.programme.timezone))
    body = (f'<section id="missing" data-missing="{esc(site_id)}"><p>{esc(t.d(t.w("no_site", id=site_id)))}</p>'
            f'<p><a href="{esc(view.href(county=""))}">{t.w("back_board")}</a></p></section>')
    return frame(t, snap, title=words("site_title", view.lang, id=site_id), health=("fresh", []), body=body,
                 path="/sites/" + urllib.parse.quote(site_id, safe=""))

