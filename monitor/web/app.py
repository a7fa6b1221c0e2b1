"""HTTP: /metrics, /api/v1/..., /-/healthy, /-/ready, /-/reload and a small status page."""

from __future__ import annotations

import asyncio
import html
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from monitor.runtime.snapshot import Snapshot
from monitor.web.api import SITE_FILTERS, FilterError, counties_json, site_filter, site_json, sites_json, summary_json
from monitor.web.board import add_board
from monitor.web.exposition import RenderCache
from monitor.web.metrics import SnapshotCollector
from monitor.web.openapi import openapi_document

log = logging.getLogger(__name__)
STATE_COLOURS = {"ready": "#2e7d32", "degraded": "#f9a825", "not_ready": "#c62828", "unknown": "#757575"}


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, ensure_ascii=False, indent=1), status=status,
                        content_type="application/json", charset="utf-8")


def make_app(get: Callable[[], Snapshot], reload: Callable[[], Awaitable[tuple[bool, str]]] | None = None
             ) -> web.Application:
    """Build the aiohttp application over the snapshot getter ``get``."""
    cache = RenderCache(get, lambda snap: SnapshotCollector(lambda: snap).collect())
    routes = web.RouteTableDef()

    @routes.get("/metrics")
    async def metrics(_: web.Request) -> web.Response:
        # Rendering can take a while for a province; keep it off the event loop, once per snapshot.
        body = await asyncio.get_running_loop().run_in_executor(None, cache.body)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @routes.get("/-/healthy")
    async def healthy(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    @routes.get("/-/ready")
    async def ready(_: web.Request) -> web.Response:
        if get().evaluated:
            return web.Response(text="ready\n")
        return web.Response(text="not ready: no evaluation yet\n", status=503)

    @routes.post("/-/reload")
    async def do_reload(_: web.Request) -> web.Response:
        if reload is None:
            return web.Response(text="reload is not available here\n", status=501)
        ok, message = await reload()
        return web.Response(text=message + "\n", status=200 if ok else 400)

    def filtered(request: web.Request, keys: tuple[str, ...], build: Callable[..., dict[str, Any]]
                 ) -> web.Response:
        snap = get()
        try:
            keep = site_filter(snap, request.query, keys)
        except FilterError as exc:
            return _json({"error": str(exc), "allowed": exc.allowed}, 400)
        return _json(build(snap, keep))

    @routes.get("/api/v1/sites")
    async def sites(request: web.Request) -> web.Response:
        return filtered(request, SITE_FILTERS, sites_json)

    @routes.get("/api/v1/summary")
    async def summary(request: web.Request) -> web.Response:
        return filtered(request, ("county", "area", "kind"), summary_json)

    @routes.get("/api/v1/counties")
    async def counties(request: web.Request) -> web.Response:
        return filtered(request, (), lambda snap, _: counties_json(snap))

    @routes.get("/api/v1/openapi.json")
    async def openapi(_: web.Request) -> web.Response:
        return _json(openapi_document())

    @routes.get("/api/v1/sites/{site}")
    async def one_site(request: web.Request) -> web.Response:
        snap = get()
        site = snap.config.site_map().get(request.match_info["site"])
        if site is None:
            return _json({"error": f"no site {request.match_info['site']!r}"}, 404)
        return _json(site_json(site, snap.sites.get(site.id)))

    app = web.Application()
    app.add_routes(routes)
    add_board(app, get)  # the committee's board at / (monitor/web/board.py)
    return app


def _count_line(t: dict[str, Any]) -> str:
    return " · ".join(f"{k.replace('_', ' ')}: {t[k]}" for k in ("ready", "degraded", "not_ready", "unknown"))


def _terminals_text(s: dict[str, Any]) -> str:
    total = s["terminals_total"]
    if not total:
        return "–"
    if s["terminals_up"] is None:
        return f"?/{total}"  # unknown is not 0
    return f"{s['terminals_up']}/{total}" + (f" ({s['terminals_unknown']} unknown)" if s["terminals_unknown"] else "")


def _share_text(share: float | None) -> str:
    return "–" if share is None else f"{share * 100:.1f}%"


def _forecast_text(f: dict[str, Any] | None) -> str:
    if f is None or f["status"] != "ok":
        return "forecast: not enough history"
    low, high = f["share_at_deadline_range"]
    when = f["all_ready_at"] or "never at this pace"
    return (f"forecast at the deadline: {_share_text(f['share_at_deadline'])} "
            f"({_share_text(low)}–{_share_text(high)}), {'at risk' if f['at_risk'] else 'on track'}; "
            f"all ready: {when}")


def status_page(snap: Snapshot) -> str:
    """Render a plain status page: the figures, the polling places not ready first, then the network nodes."""
    doc = sites_json(snap)
    order = {"not_ready": 0, "unknown": 1, "degraded": 2, "ready": 3}
    tables: dict[str, list[str]] = {"polling": [], "node": []}
    for s in sorted(doc["sites"], key=lambda s: (order[s["state"]], s["county"], s["id"])):
        colour = STATE_COLOURS[s["state"]]
        tables["node" if s["kind"] == "node" else "polling"].append(
            f"<tr><td>{html.escape(s['id'])}</td><td dir='auto'>{html.escape(s['name'])}</td>"
            f"<td dir='auto'>{html.escape(s['county'])}</td><td>{s['area']}</td>"
            f"<td style='color:{colour};font-weight:bold'>{s['state']}</td>"
            f"<td>{html.escape(', '.join(s['reasons']))}</td><td>{_terminals_text(s)}</td></tr>"
        )
    fig = doc["summary"]
    title = html.escape(doc["programme"]["name"])
    head = "<tr>" + "".join(f"<th>{c}</th>" for c in ("site", "name", "county", "area", "state", "reasons",
                                                      "terminals")) + "</tr>"
    counties = "".join(
        f"<tr><td dir='auto'>{html.escape(name)}</td><td>{t['ready']}/{t['total']}</td>"
        f"<td>{_share_text(t['ready_share'])}</td></tr>" for name, t in fig["counties"].items() if t["total"])
    areas = " · ".join(f"{name}: {t['ready']}/{t['total']} ({_share_text(t['ready_share'])})"
                       for name, t in fig["areas"].items())
    nodes = fig["nodes"]
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:1em}}td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}</style>
</head><body><h1 dir="auto">{title}</h1>
<p id="share"><b>Ready: {fig['ready']} of {fig['total']} polling places ({_share_text(fig['ready_share'])})</b>
 — {_count_line(fig)} — deadline {doc['programme']['deadline']}</p>
<p id="forecast">{html.escape(_forecast_text(doc['forecast'].get('province')))}</p>
<p id="terminals">Terminals up: {fig['terminals']['up']} of {fig['terminals']['total']}
 ({fig['terminals']['unknown']} unknown)</p>
<p id="areas">{areas}</p>
<p id="nodes">Network nodes (not in the ready share): {nodes['total']} — {_count_line(nodes)}</p>
<p><a href="/metrics">/metrics</a> · <a href="/api/v1/summary">/api/v1/summary</a> ·
<a href="/api/v1/sites">/api/v1/sites</a> · <a href="/api/v1/openapi.json">/api/v1/openapi.json</a></p>
<h2>Counties</h2><table><tr><th>county</th><th>ready</th><th>share</th></tr>{counties}</table>
<h2>Polling places</h2><table>{head}
{''.join(tables['polling'])}</table>
<h2>Network nodes</h2><table>{head}
{''.join(tables['node'])}</table></body></html>"""
