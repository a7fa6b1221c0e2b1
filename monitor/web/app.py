"""HTTP: /metrics, /api/v1/..., /-/healthy, /-/ready, /-/reload and a small status page."""

from __future__ import annotations

import asyncio
import html
import json
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from monitor.runtime.snapshot import Snapshot
from monitor.web.api import site_json, sites_json
from monitor.web.exposition import RenderCache
from monitor.web.metrics import SnapshotCollector

log = logging.getLogger(__name__)
STATE_COLOURS = {"ready": "#2e7d32", "degraded": "#f9a825", "not_ready": "#c62828", "unknown": "#757575"}


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, ensure_ascii=False, indent=1), status=status,
                        content_type="application/json", charset="utf-8")


def make_app(get: Callable[[], Snapshot], reload: Callable[[], Awaitable[tuple[bool, str]]] | None = None
             ) -> web.Application:
    """Build the aiohttp application over the snapshot getter ``get``."""
    # /metrics says whether probing stalled, which changes with time even when the snapshot does not.
    cache = RenderCache(get, lambda snap: SnapshotCollector(lambda: snap).collect(),
                        key=lambda snap: (id(snap), snap.at, tuple(snap.stalled(time.time()))))
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
        problems = get().problems(time.time())
        if not problems:
            return web.Response(text="ready\n")
        return web.Response(text="".join(f"not ready: {p}\n" for p in problems), status=503)

    @routes.post("/-/reload")
    async def do_reload(_: web.Request) -> web.Response:
        if reload is None:
            return web.Response(text="reload is not available here\n", status=501)
        ok, message = await reload()
        return web.Response(text=message + "\n", status=200 if ok else 400)

    @routes.get("/api/v1/sites")
    async def sites(request: web.Request) -> web.Response:
        doc = sites_json(get())
        for key in ("county", "area", "state"):
            if key in request.query:
                doc["sites"] = [s for s in doc["sites"] if s[key] == request.query[key]]
        return _json(doc)

    @routes.get("/api/v1/sites/{site}")
    async def one_site(request: web.Request) -> web.Response:
        snap = get()
        site = snap.config.site_map().get(request.match_info["site"])
        if site is None:
            return _json({"error": f"no site {request.match_info['site']!r}"}, 404)
        return _json(site_json(site, snap.sites.get(site.id)))

    @routes.get("/")
    async def index(_: web.Request) -> web.Response:
        return web.Response(text=status_page(get()), content_type="text/html", charset="utf-8")

    app = web.Application()
    app.add_routes(routes)
    return app


def status_page(snap: Snapshot) -> str:
    """Render a plain status page: summary and every site not ready first."""
    doc = sites_json(snap)
    order = {"not_ready": 0, "unknown": 1, "degraded": 2, "ready": 3}
    rows = []
    for s in sorted(doc["sites"], key=lambda s: (order[s["state"]], s["county"], s["id"])):
        colour = STATE_COLOURS[s["state"]]
        rows.append(
            f"<tr><td>{html.escape(s['id'])}</td><td dir='auto'>{html.escape(s['name'])}</td>"
            f"<td dir='auto'>{html.escape(s['county'])}</td><td>{s['area']}</td>"
            f"<td style='color:{colour};font-weight:bold'>{s['state']}</td>"
            f"<td>{html.escape(', '.join(s['reasons']))}</td><td>{s['terminals_up']}/{s['terminals_total']}</td></tr>"
        )
    summary = " · ".join(f"{k}: {v}" for k, v in doc["summary"].items())
    title = html.escape(doc["programme"]["name"])
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:1em}}td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}</style>
</head><body><h1 dir="auto">{title}</h1><p>{summary} — deadline {doc['programme']['deadline']}</p>
<p><a href="/metrics">/metrics</a> · <a href="/api/v1/sites">/api/v1/sites</a></p>
<table><tr><th>site</th><th>name</th><th>county</th><th>area</th><th>state</th><th>reasons</th><th>terminals</th></tr>
{''.join(rows)}</table></body></html>"""
