"""HTTP: /metrics, /api/v1/..., /-/healthy, /-/ready, /-/reload and a small status page."""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from multidict import MultiDict
from prometheus_client import CONTENT_TYPE_LATEST

from monitor.core.actions import ActionError
from monitor.runtime.snapshot import Snapshot
from monitor.runtime.tasks import spawn
from monitor.web.access import USER, Access
from monitor.web.api import (
    PAGE_KEYS,
    SITE_FILTERS,
    FilterError,
    action_json,
    actions_json,
    counties_json,
    page_params,
    site_filter,
    site_json,
    sites_json,
    summary_json,
)
from monitor.web.board import add_board
from monitor.web.exposition import RenderCache
from monitor.web.metrics import SnapshotCollector
from monitor.web.openapi import openapi_document

if TYPE_CHECKING:
    from monitor.runtime.actions import ActionDesk
    from monitor.runtime.readback import StoreHistory

log = logging.getLogger(__name__)
PRERENDER_SECONDS = 0.25  # how often the app looks for a new snapshot to render ahead of the scrape
STATE_COLOURS = {"ready": "#2e7d32", "degraded": "#f9a825", "not_ready": "#c62828", "unknown": "#757575"}


Built = tuple[int, bytes, str]  # status, body, content type


def _json(data: object, status: int = 200) -> web.Response:
    """Answer at once, uncached: actions change between snapshots."""
    return web.Response(text=json.dumps(data, ensure_ascii=False, indent=1), status=status,
                        content_type="application/json", charset="utf-8")


def _json_body(data: object, status: int = 200) -> Built:
    return status, json.dumps(data, ensure_ascii=False, indent=1).encode(), "application/json"


class ResponseCache:
    """Every API response built once per snapshot, in a worker thread: the event loop only hands out bytes.

    Requests for the same path and query while one is being built wait for that build. The cache is emptied
    when the snapshot changes, and holds at most ``size`` responses (the oldest go first).
    """

    def __init__(self, get: Callable[[], Snapshot], size: int = 512) -> None:
        self._get = get
        self._size = size
        self._key: tuple[int, float] | None = None
        self._done: dict[str, asyncio.Future[Built]] = {}

    async def get(self, key: str, build: Callable[[Snapshot], Built]) -> Built:
        snap = self._get()
        at = (id(snap), snap.at)
        if at != self._key:
            self._key, self._done = at, {}
        future = self._done.get(key)
        if future is None:
            if len(self._done) >= self._size:
                self._done.pop(next(iter(self._done)))
            future = asyncio.get_running_loop().run_in_executor(None, build, snap)
            self._done[key] = future
        try:
            return await asyncio.shield(future)
        except Exception:
            self._done.pop(key, None)  # a failed build is not kept: the next request tries again
            raise


# Availability over a period from the event store (monitor.audit.availability.StoreAvailability, handed in by the
# command that runs the service): the query's (key, value) pairs -> (status, JSON document).
AvailabilityReader = Callable[[list[tuple[str, str]]], tuple[int, dict[str, Any]]]


def make_app(get: Callable[[], Snapshot], reload: Callable[[], Awaitable[tuple[bool, str]]] | None = None,
             desk: ActionDesk | None = None, access: Access | None = None,
             availability: AvailabilityReader | None = None, history: StoreHistory | None = None
             ) -> web.Application:
    """Build the aiohttp application over the snapshot getter ``get``; ``desk`` keeps remediation actions;
    ``access`` (from the web config) says who may read and who may POST; ``availability`` answers
    /api/v1/availability from the event store (None: run without a store, 503); ``history`` reads the store back
    for the board's burn-up and each site's timeline (None: the burn-up from the forecast's memory, no timeline)."""
    # /metrics says whether probing stalled, which changes with time even when the snapshot does not.
    cache = RenderCache(get, lambda snap: SnapshotCollector(lambda: snap).collect(),
                        key=lambda snap: (id(snap), snap.at, tuple(snap.stalled(time.time()))))
    routes = web.RouteTableDef()

    @routes.get("/metrics")
    async def metrics(request: web.Request) -> web.Response:
        # Rendered off the event loop, once per snapshot (usually before anyone asks: see prerender).
        loop = asyncio.get_running_loop()
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            packed = await loop.run_in_executor(None, cache.packed)
            return web.Response(body=packed, headers={"Content-Type": CONTENT_TYPE_LATEST, "Content-Encoding": "gzip",
                                                      "Vary": "Accept-Encoding"})
        plain = await loop.run_in_executor(None, cache.body)
        return web.Response(body=plain, headers={"Content-Type": CONTENT_TYPE_LATEST, "Vary": "Accept-Encoding"})

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

    responses = ResponseCache(get)

    async def cached(request: web.Request, build: Callable[[Snapshot], Built]) -> web.Response:
        status, body, kind = await responses.get(request.rel_url.path_qs, build)
        return web.Response(body=body, status=status, content_type=kind, charset="utf-8")

    def filtered(request: web.Request, keys: tuple[str, ...], build: Callable[..., dict[str, Any]],
                 skip: tuple[str, ...] = ()) -> Callable[[Snapshot], Built]:
        """Build ``build(snap, keep)`` for the request's filters (but the ``skip`` parameters); 400 on a bad one."""
        query = MultiDict([(k, v) for k, v in request.query.items() if k not in skip])

        def run(snap: Snapshot) -> Built:
            try:
                keep = site_filter(snap, query, keys)
                return _json_body(build(snap, keep))
            except FilterError as exc:
                return _json_body({"error": str(exc), "allowed": exc.allowed}, 400)
        return run

    @routes.get("/api/v1/sites")
    async def sites(request: web.Request) -> web.Response:
        def build(snap: Snapshot, keep: Callable[..., bool]) -> dict[str, Any]:
            limit, cursor = page_params(request.query)
            return sites_json(snap, keep, limit=limit, cursor=cursor)
        # The page parameters are checked in build (a 400 that says what is allowed), not as filters.
        return await cached(request, filtered(request, SITE_FILTERS, build, skip=PAGE_KEYS))

    @routes.get("/api/v1/summary")
    async def summary(request: web.Request) -> web.Response:
        return await cached(request, filtered(request, ("county", "area", "kind"), summary_json))

    @routes.get("/api/v1/counties")
    async def counties(request: web.Request) -> web.Response:
        return await cached(request, filtered(request, (), lambda snap, _: counties_json(snap)))

    @routes.get("/api/v1/openapi.json")
    async def openapi(request: web.Request) -> web.Response:
        return await cached(request, lambda _: _json_body(openapi_document()))

    @routes.get("/api/v1/availability")
    async def availability_over(request: web.Request) -> web.Response:
        if availability is None:
            return _json({"error": "availability is read from the event store, and this monitor runs without one "
                                   "(--no-store): run it with a data dir, or export an audit bundle"}, 503)
        reader, query = availability, list(request.query.items())

        def build(_: Snapshot) -> Built:  # read from the store in a worker thread, once per snapshot
            status, doc = reader(query)
            return _json_body(doc, status)
        return await cached(request, build)

    @routes.get("/api/v1/sites/{site}")
    async def one_site(request: web.Request) -> web.Response:
        wanted = request.match_info["site"]

        def build(snap: Snapshot) -> Built:
            site = snap.config.site_map().get(wanted)
            if site is None:
                return _json_body({"error": f"no site {wanted!r}"}, 404)
            return _json_body(site_json(site, snap.sites.get(site.id), snap.config.owner_of(site)))
        return await cached(request, build)

    @routes.get("/api/v1/actions")
    async def actions(request: web.Request) -> web.Response:
        snap = get()
        listed = desk.actions() if desk is not None else (snap.actions or ())
        try:
            return _json(actions_json(snap, listed, request.query, time.time()))
        except FilterError as exc:
            return _json({"error": str(exc), "allowed": exc.allowed}, 400)

    async def body_of(request: web.Request) -> dict[str, Any]:
        try:
            doc = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError, web.HTTPException):
            raise ActionError("the body must be a JSON object") from None
        if not isinstance(doc, dict):
            raise ActionError("the body must be a JSON object")
        return doc

    def who(request: web.Request, doc: dict[str, Any]) -> str:
        if request.get(USER):  # an authenticated admin is who did it, whatever the body says
            return request[USER]
        by = doc.get("by")
        return by if isinstance(by, str) and by.strip() else f"api@{request.remote or 'unknown'}"

    @routes.post("/api/v1/actions")
    async def add_action(request: web.Request) -> web.Response:
        if desk is None:
            return _json({"error": "no event store: this service keeps no actions (run without --no-store)"}, 503)
        try:
            doc = await body_of(request)
            target = doc.get("site") or (f"county:{doc['county']}" if doc.get("county") else None)
            if not isinstance(target, str):
                raise ActionError("give site (or county)")
            for key in ("owner", "due"):
                if not isinstance(doc.get(key), str):
                    raise ActionError(f"{key} is required (text)")
            action, durable = await asyncio.to_thread(desk.add, target, owner=doc["owner"], due=doc["due"],
                                                      note=doc.get("note") or "", by=who(request, doc))
        except ActionError as exc:
            return _json({"error": str(exc)}, 400)
        return _json({"action": action_json(action, get(), time.time()), "committed": durable})

    @routes.post("/api/v1/actions/{id}/close")
    async def close_action(request: web.Request) -> web.Response:
        if desk is None:
            return _json({"error": "no event store: this service keeps no actions (run without --no-store)"}, 503)
        action_id = request.match_info["id"]
        try:
            doc = await body_of(request)
            result = doc.get("result")
            if not isinstance(result, str):
                raise ActionError("result is required (text): what was done")
            action, durable = await asyncio.to_thread(desk.close, action_id, result=result, by=who(request, doc),
                                                      state=doc.get("state") or "done")
        except KeyError:
            return _json({"error": f"no action {action_id!r}"}, 404)
        except ActionError as exc:
            return _json({"error": str(exc)}, 400)
        return _json({"action": action_json(action, get(), time.time()), "committed": durable})

    async def prerender(_: web.Application) -> AsyncIterator[None]:
        """Render every new snapshot in a worker thread as it appears, so scrapes find it ready."""
        async def watch() -> None:
            loop = asyncio.get_running_loop()
            while True:
                try:
                    if not cache.fresh():
                        await loop.run_in_executor(None, cache.packed)
                except Exception:  # a bad snapshot must not end the watch; the scrape will say what is wrong
                    log.exception("rendering /metrics ahead of the scrape failed")
                    await asyncio.sleep(PRERENDER_SECONDS * 10)
                await asyncio.sleep(PRERENDER_SECONDS)

        task = spawn(watch(), "prerender")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    # With a web config the middleware is in place even without users yet: a reload may add them.
    app = web.Application(middlewares=[access.middleware()] if access is not None else [])
    app.add_routes(routes)
    app.cleanup_ctx.append(prerender)
    add_board(app, get, history=history)  # the committee's board at / and /sites/{id} (monitor/web/board.py)
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
