"""One set of figures: computed once from a recorded snapshot, every surface says the same.

The snapshot is a small province with the cases that made the surfaces disagree: network nodes (one dead,
with polling places behind it whose terminals answer nothing), polling places in each state, two counties,
urban and rural. The figures are computed once (monitor/core/figures.py); the status page, /api/v1/sites,
/api/v1/summary, /api/v1/counties, `readiness status`, `run --once`, /metrics, the forecast, the audit report
(summary.json and report.html, from a real store and a real `audit export`) and a real Prometheus evaluating
the generated recording rules over a real scrape must all say the same.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import subprocess
import time
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from monitor.cli.report import print_table
from monitor.cli.status import render_status, status_from_url
from monitor.config.loader import load_config
from monitor.core.figures import Figures, compute, site_terminals
from monitor.core.forecast import PROVINCE
from monitor.runtime.service import Service
from monitor.runtime.snapshot import Snapshot
from monitor.web.app import make_app, status_page
from monitor.web.exposition import render
from monitor.web.metrics import SnapshotCollector
from probes.base import Observation
from tests.helpers import free_port, require_tool
from tests.lab import stop
from tests.monitor.fixtures import obs, site, write_config

ROOT = Path(__file__).parents[2]
RULES = ROOT / "config" / "prometheus" / "readiness.rules.yml"
NOW = 1_790_000_000.0
DOWN = "down"


def _site(sid: str, n: int, county: str, area: str, *, kind: str = "polling", upstream: str | None = None,
          terminals: int = 2) -> dict[str, Any]:
    s = site(sid, n=n, kind=kind, upstream=upstream, terminals=terminals)
    s.update(county=county, area=area)
    return s


# (site, what is wrong): ("" all fine, "dead" both links down, "backup" backup down, "terminal" one terminal down)
PROVINCE_SITES = [
    (_site("AGG-ILM", 1, "Ilam", "urban", kind="node", terminals=0), "dead"),
    (_site("ILM-1", 2, "Ilam", "urban", upstream="AGG-ILM", terminals=3), "dead"),  # behind the dead node
    (_site("ILM-2", 3, "Ilam", "rural", upstream="AGG-ILM"), "dead"),  # behind the dead node
    (_site("ILM-3", 4, "Ilam", "rural"), ""),
    (_site("MHR-1", 5, "Mehran", "rural"), ""),
    (_site("MHR-2", 6, "Mehran", "urban"), "backup"),
    (_site("MHR-3", 7, "Mehran", "urban"), "terminal"),
    (_site("AGG-MHR", 8, "Mehran", "urban", kind="node", terminals=0), ""),
]


def recorded_snapshot(tmp: Path) -> Snapshot:
    """Evaluate the province once, as the service does, and return its snapshot."""
    service = Service(load_config(write_config(tmp, [s for s, _ in PROVINCE_SITES])), clock=lambda: NOW)
    for s, fault in PROVINCE_SITES:
        sid = s["id"]
        service.latest[f"{sid}/primary"] = obs(f"{sid}/primary", ok=fault != "dead", at=NOW)
        service.latest[f"{sid}/backup"] = obs(f"{sid}/backup", ok=fault not in ("dead", "backup"), at=NOW)
        for k, t in enumerate(s["terminals"]):
            ok = fault != "dead" and not (fault == "terminal" and k == 0)
            service.latest[f"{sid}/terminal/{t['id']}"] = Observation(f"{sid}/terminal/{t['id']}", "tcp", ok, NOW,
                                                                      {"connect_seconds": 0.001} if ok else {},
                                                                      "" if ok else "refused")
    return service.evaluate(force=True)


@pytest.fixture
def snap(tmp_path: Path) -> Snapshot:
    return recorded_snapshot(tmp_path)


def test_the_figures(snap: Snapshot) -> None:
    """Polling places only in the share; nodes apart; sites behind the dead node unknown, terminals unknown."""
    fig = snap.figures()
    p = fig.province
    assert dict(p.states) == {"ready": 2, "degraded": 1, "not_ready": 1, "unknown": 2}
    assert (p.ready, p.total, p.share_text()) == (2, 6, "33.3%")
    assert dict(fig.nodes.states) == {"ready": 1, "degraded": 0, "not_ready": 1, "unknown": 0}
    assert fig.counties["Ilam"].share == pytest.approx(1 / 3) and fig.counties["Mehran"].share == pytest.approx(1 / 3)
    assert fig.areas["urban"].total == 3 and fig.areas["rural"].total == 3
    # 3 + 2 terminals behind the dead node are unknown, not down; MHR-3 has one down.
    assert (p.terminals_up, p.terminals_down, p.terminals_unknown, p.terminals_total) == (7, 1, 5, 13)
    sites = snap.config.site_map()
    behind = site_terminals(sites["ILM-1"], snap.sites["ILM-1"])
    assert (behind.known_up, behind.text()) == (None, "?/3")
    assert site_terminals(sites["MHR-3"], snap.sites["MHR-3"]).text() == "1/2"


def test_every_surface_says_the_same(snap: Snapshot) -> None:
    """Page, API (sites, summary), `run --once`, /metrics and the forecast, from the one computation."""
    fig = snap.figures()
    p = fig.province
    from monitor.web.api import counties_json, sites_json, summary_json

    # The API
    for doc in (sites_json(snap), summary_json(snap)):
        s = doc["summary"]
        assert {k: s[k] for k in p.states} == dict(p.states) and s["total"] == p.total
        assert s["ready_share"] == pytest.approx(p.share)
        assert s["nodes"]["total"] == fig.nodes.total and "ready_share" not in s["nodes"]
        assert s["terminals"] == {"up": 7, "down": 1, "unknown": 5, "total": 13}
        for name, t in fig.counties.items():
            assert s["counties"][name]["ready_share"] == pytest.approx(t.share)
    ilm1 = next(x for x in sites_json(snap)["sites"] if x["id"] == "ILM-1")
    assert ilm1["terminals_up"] is None and {t["state"] for t in ilm1["terminals"]} == {"unknown"}
    counties = {c["name"]: c for c in counties_json(snap)["counties"]}
    assert counties["Ilam"]["ready"] == 1 and counties["Ilam"]["total"] == 3 and counties["Ilam"]["nodes"]["total"] == 1
    # The page
    page = status_page(snap)
    assert f"Ready: {p.ready} of {p.total} polling places ({p.share_text()})" in page
    assert "<td>?/3</td>" in page and "<td>0/3</td>" not in page
    assert "Network nodes (not in the ready share): 2" in page
    # `run --once`
    out = io.StringIO()
    import contextlib
    with contextlib.redirect_stdout(out):
        print_table(snap)
    assert f"polling places ready: {p.ready}/{p.total} ({p.share_text()})" in out.getvalue()
    assert "?/3" in out.getvalue() and "0/3" not in out.getvalue()
    # /metrics
    text = render(SnapshotCollector(lambda: snap).collect()).decode()
    ratio = _samples(text, "readiness_ready_ratio")
    assert ratio[("province", "", "")] == pytest.approx(p.share)
    assert ratio[("county", "Ilam", "")] == pytest.approx(fig.counties["Ilam"].share)
    assert ratio[("area", "", "rural")] == pytest.approx(fig.areas["rural"].share)
    terminals_up = {smp.labels["site"]: smp.value for f in text_string_to_metric_families(text) for smp in f.samples
                    if smp.name == "readiness_site_terminals_up"}
    assert "ILM-1" not in terminals_up and terminals_up["MHR-3"] == 1  # unknown is absent, not 0
    # The forecast's current share is the same figure
    assert snap.forecasts[PROVINCE].share_now == pytest.approx(p.share)
    assert snap.forecasts[("county", "Mehran")].share_now == pytest.approx(fig.counties["Mehran"].share)


def test_audit_report_says_the_same(snap: Snapshot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The snapshot recorded into a real store by the Recorder, a real `readiness audit export`: summary.json and the
    report's headline state the figures at the end of the period as monitor/core/figures.py computes them."""
    import types

    import monitor.store.events
    from monitor.cli.main import main
    from monitor.runtime.recorder import Recorder
    from monitor.store.events import EventStore

    fig = snap.figures()
    p = fig.province
    # The store stamps its open/close markers with the wall clock: here, the snapshot's moment.
    monkeypatch.setattr(monitor.store.events, "time", types.SimpleNamespace(time=lambda: NOW + 60,
                                                                             monotonic=time.monotonic))
    data = tmp_path / "data"
    store = EventStore(data, batch_seconds=0.01)
    store.open()
    try:
        Recorder(store)(snap, None)  # the config version in force, then every entity's state
        assert store.flush()
    finally:
        store.close()
    out = tmp_path / "bundle"
    assert main(["audit", "export", "--config", str(snap.config.source), "--data-dir", str(data),
                 "--from", "2026-09-20", "-o", str(out)]) == 0  # no --force: the Recorder recorded the config
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    end = summary["at_end"]
    pp = end["polling_places"]
    assert {k: pp[k] for k in p.states} == dict(p.states) and pp["total"] == p.total
    assert pp["ready_share"] == pytest.approx(p.share) and pp["ready_share_text"] == p.share_text()
    assert pp["terminals"] == {"up": 7, "down": 1, "unknown": 5, "total": 13}  # unknown behind the dead node
    assert {k: end["nodes"][k] for k in fig.nodes.states} == dict(fig.nodes.states)
    assert end["nodes"]["total"] == fig.nodes.total and "ready_share" not in end["nodes"]
    for name, t in fig.counties.items():
        assert end["counties"][name]["ready_share"] == pytest.approx(t.share)
        assert end["counties"][name]["nodes"] == fig.county_nodes[name].total
        assert summary["counties"][name]["ready_share_at_end"] == pytest.approx(t.share)
        assert summary["counties"][name]["states_at_end"] == dict(t.states)
    for name, t in fig.areas.items():
        assert end["areas"][name]["ready_share"] == pytest.approx(t.share)
    assert summary["province"]["states_at_end"] == dict(p.states) and summary["province"]["sites"] == p.total
    assert summary["province"]["ready_share_at_end"] == pytest.approx(p.share)
    html = (out / "report.html").read_text(encoding="utf-8")
    assert f"Ready: {p.ready} of {p.total} polling places ({p.share_text()})" in html
    assert f"Network nodes (not in the ready share): {fig.nodes.total}" in html
    assert f"Terminals up: {p.terminals_up} of {p.terminals_total} ({p.terminals_unknown} unknown)" in html


def _samples(text: str, name: str) -> dict[tuple[str, str, str], float]:
    return {(s.labels["scope"], s.labels["county"], s.labels["area"]): s.value
            for f in text_string_to_metric_families(text) for s in f.samples if s.name == name}


def test_figures_of_an_empty_or_nodes_only_set(snap: Snapshot) -> None:
    """No polling place: no share (None), never a division by zero or a 0%."""
    nodes = [s for s in snap.config.sites if s.kind == "node"]
    fig = compute(nodes, snap.sites)
    assert fig.province.total == 0 and fig.province.share is None and fig.province.share_text() == "–"
    assert fig.nodes.total == 2
    assert compute([], {}).province.share is None


# -- over HTTP: the API's filters, `readiness status`, and a real Prometheus on the generated rules ---------


async def _serve(snap: Snapshot) -> tuple[aiohttp.web.AppRunner, str]:
    runner = aiohttp.web.AppRunner(make_app(lambda: snap))
    await runner.setup()
    port = free_port()
    await aiohttp.web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


async def _get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.json(content_type=None)


async def test_status_command_says_the_same(snap: Snapshot) -> None:
    """`readiness status` against the served snapshot prints the figures' share, counts and nodes apart."""
    fig = snap.figures()
    runner, url = await _serve(snap)
    try:
        doc = await asyncio.to_thread(status_from_url, url)
    finally:
        await runner.cleanup()
    out = io.StringIO()
    render_status(doc, Console(file=out, force_terminal=False, color_system=None, width=200))
    text = out.getvalue()
    province = text.split("Province")[1].split("\n")
    row = next(line for line in province if "33.3%" in line)
    cells = [c.strip() for c in row.strip().strip("│").split("│")]
    assert cells == ["2", "1", "1", "2", "6", fig.province.share_text()]
    assert "Network nodes (not in the ready share): ready 1 · degraded 0 · not ready 1 · unknown 0 · total 2" in text
    assert "Terminals up: 7 of 13 (5 unknown)" in text


async def test_api_filters(snap: Snapshot) -> None:
    """Unknown filter values and parameters are a 400 with the allowed values; county is case-insensitive;
    the summary covers the filtered set; /api/v1/summary and /api/v1/counties serve the figures."""
    runner, url = await _serve(snap)
    try:
        for query, key, allowed in (("state=bogus", "state", ["ready", "degraded", "not_ready", "unknown"]),
                                    ("county=unknown", "county", ["Ilam", "Mehran"]),
                                    ("area=x", "area", ["urban", "rural"]), ("kind=pop", "kind", ["polling", "node"])):
            status, doc = await _get(f"{url}/api/v1/sites?{query}")
            assert status == 400, query
            assert doc["allowed"][key] == allowed and "allowed" in doc["error"]
        status, doc = await _get(f"{url}/api/v1/sites?colour=red")
        assert status == 400 and "colour" in doc["error"]
        status, doc = await _get(f"{url}/api/v1/sites?county=a&county=b")
        assert status == 400
        status, doc = await _get(f"{url}/api/v1/summary?state=ready")
        assert status == 400, "summary has no state filter"
        status, doc = await _get(f"{url}/api/v1/sites?county=mEHRAN")
        assert status == 200 and {s["county"] for s in doc["sites"]} == {"Mehran"}
        assert doc["summary"]["total"] == 3 and doc["summary"]["ready"] == 1 and doc["summary"]["nodes"]["total"] == 1
        assert list(doc["summary"]["counties"]) == ["Mehran"]
        status, doc = await _get(f"{url}/api/v1/sites?state=unknown&area=rural")
        assert [s["id"] for s in doc["sites"]] == ["ILM-2"] and doc["summary"]["unknown"] == 1
        status, doc = await _get(f"{url}/api/v1/summary?county=ilam")
        assert status == 200 and doc["summary"]["total"] == 3 and doc["summary"]["ready_share"] == pytest.approx(1 / 3)
        assert "forecast" in doc and "sites" not in doc
        status, doc = await _get(f"{url}/api/v1/counties")
        assert status == 200 and [c["name"] for c in doc["counties"]] == ["Ilam", "Mehran"]
    finally:
        await runner.cleanup()


async def test_openapi_documents_every_route(snap: Snapshot) -> None:
    """Every route of the app is in the OpenAPI description (method and path) and nothing else is; the filters
    it documents are the ones the API takes; it is served at /api/v1/openapi.json."""
    from monitor.web.api import PAGE_KEYS, SITE_FILTERS
    from monitor.web.openapi import openapi_document

    app = make_app(lambda: snap)
    routes = {(r.method.lower(), r.resource.canonical) for r in app.router.routes()  # type: ignore[union-attr]
              if r.method != "HEAD"}
    doc = openapi_document()
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert routes == documented
    params = {p["name"] for p in doc["paths"]["/api/v1/sites"]["get"]["parameters"]}
    assert params == set(SITE_FILTERS) | set(PAGE_KEYS)  # everything /api/v1/sites accepts
    for path, ops in doc["paths"].items():
        for op in ops.values():
            assert "200" in op["responses"] and op["summary"], path
            if op.get("parameters") and any(p["in"] == "query" for p in op["parameters"]):
                assert "400" in op["responses"], f"{path}: a bad filter is a 400"
    refs = set(re.findall(r'"#/components/schemas/(\w+)"', json.dumps(doc)))
    assert refs <= set(doc["components"]["schemas"])
    runner, url = await _serve(snap)
    try:
        status, served = await _get(f"{url}/api/v1/openapi.json")
    finally:
        await runner.cleanup()
    assert status == 200 and served == json.loads(json.dumps(doc))


async def test_prometheus_recording_rules_say_the_same(snap: Snapshot, tmp_path: Path) -> None:
    """A real Prometheus scrapes the served snapshot and evaluates the committed recording rules: the ready share,
    the counts by state, nodes apart and terminals up and unknown are the figures'."""
    prometheus = require_tool("prometheus")
    fig: Figures = snap.figures()
    runner, url = await _serve(snap)
    port = free_port()
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "rule_files": [str(RULES)],
              "scrape_configs": [{"job_name": "readiness", "static_configs": [{"targets": [url.split("//")[1]]}]}]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                             "--log.level=warn"], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/api/v1/query?query="

    async def query(expr: str) -> dict[tuple[tuple[str, str], ...], float]:
        status, doc = await _get(base + urllib.parse.quote(expr))
        assert status == 200, doc
        return {tuple(sorted((k, v) for k, v in r["metric"].items() if k not in ("__name__",))): float(r["value"][1])
                for r in doc["data"]["result"]}

    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            try:
                if await query("province:readiness_terminals_unknown:sum") and await query(
                        "county:readiness_ready:ratio"):
                    break
            except (aiohttp.ClientError, AssertionError):
                pass
            assert time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()
            await asyncio.sleep(0.5)
        p = fig.province
        assert (await query("province:readiness_ready:ratio"))[()] == pytest.approx(p.share)
        by_state = await query("province:readiness_sites:sum")
        assert {dict(k)["state"]: v for k, v in by_state.items()} == dict(p.states)
        nodes = await query("province:readiness_nodes:sum")
        assert {dict(k)["state"]: v for k, v in nodes.items()} == dict(fig.nodes.states)
        county = {dict(k)["county"]: v for k, v in (await query("county:readiness_ready:ratio")).items()}
        assert county == pytest.approx({name: t.share for name, t in fig.counties.items() if t.share is not None})
        area = {dict(k)["area"]: v for k, v in (await query("area:readiness_ready:ratio")).items()}
        assert area == pytest.approx({name: t.share for name, t in fig.areas.items()})
        assert (await query("province:readiness_terminals:sum"))[()] == p.terminals_total
        assert (await query("province:readiness_terminals_up:sum"))[()] == p.terminals_up
        assert (await query("province:readiness_terminals_unknown:sum"))[()] == p.terminals_unknown
        # The monitor's own metric agrees too (one scrape, the same snapshot).
        direct = await query('readiness_ready_ratio{scope="province"}')
        assert list(direct.values()) == [pytest.approx(p.share)]
    finally:
        stop(proc, grace=20)
        log.close()
        await runner.cleanup()
