"""The HTTP surface against a real server on loopback: /metrics, the API, health, reload."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from pathlib import Path

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from monitor.config.loader import load_config
from monitor.runtime.scheduler import Runner
from monitor.runtime.service import Service
from monitor.store.events import EventStore
from monitor.web.app import make_app
from monitor.web.exposition import render
from monitor.web.metrics import SnapshotCollector
from probes.base import Observation
from probes.tcp import PROBE as TCP
from tests.monitor.fixtures import SNMP_OK, obs, site, write_config

CATALOGUE = Path(__file__).parents[2] / "docs" / "metrics.md"


def catalogue() -> set[str]:
    return set(catalogue_labels())


def catalogue_labels() -> dict[str, set[str]]:
    rows = re.findall(r"^\| `(readiness_[a-z0-9_]+)` \| \w+ \| ([a-z_, ]*) \|", CATALOGUE.read_text(), re.M)
    return {name: {x.strip() for x in labels.split(",") if x.strip()} for name, labels in rows}


def scrape_names(text: str) -> set[str]:
    names = set()
    for fam in text_string_to_metric_families(text):
        names.add(fam.name + ("_total" if fam.type == "counter" else ""))
    return names


@pytest.fixture
async def running(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A Runner with TCP terminals on real listeners (one closed), serving on a free port."""
    listeners = [await asyncio.start_server(lambda r, w: w.close(), f"127.23.1.{k}", 18080) for k in (1, 2)]
    path = write_config(tmp_path, [site("S1"), site("S2", n=2)], probes={"tcp": {"interval_seconds": 5}})
    service = Service(load_config(path), probes={"tcp": TCP})
    runner = Runner(service, path, make_app=make_app)
    url = await runner.start_http("127.0.0.1", 0)
    await service.run_once()
    yield runner, url, path
    await runner._app_runner.cleanup()  # type: ignore[union-attr]
    for server in listeners:
        server.close()


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.text()


async def test_metrics_match_the_catalogue(running) -> None:  # type: ignore[no-untyped-def]
    """Every family a real scrape returns is in docs/metrics.md."""
    _, url, _ = running
    status, text = await get(url + "/metrics")
    assert status == 200
    names = scrape_names(text)
    assert names - catalogue() == set(), "metrics missing from docs/metrics.md"
    # Only TCP runs here, so the links have no data: unknown, never ready.
    states = {(smp.labels["site"], smp.labels["state"]): smp.value for fam in text_string_to_metric_families(text)
              for smp in fam.samples if smp.name == "readiness_site_state"}
    assert states[("S1", "unknown")] == 1.0 and ("S1", "ready") not in states  # the current state only


def test_catalogue_matches_the_collector(tmp_path: Path) -> None:
    """With every kind of data present, the collector emits exactly the catalogue."""
    s = site("S1", snmp=True)
    s["location"] = {"lat": 33.6, "lon": 46.4}
    s["terminals"].append({"id": "T3", "address": "127.23.1.3", "port": 8443, "http": {"url": "/health"}})
    service = Service(load_config(write_config(tmp_path, [s])), clock=lambda: 1000.0)
    service.latest.update({
        "S1/primary": obs("S1/primary"), "S1/backup": obs("S1/backup"),
        "S1/primary/snmp": Observation("S1/primary/snmp", "snmp", True, 1000.0, SNMP_OK,
                                       details={"optics": ("optics.no_sensor tx",)}),
        "S1/terminal/T1": Observation("S1/terminal/T1", "tcp", True, 1000.0, {"connect_seconds": 0.001}),
        "S1/terminal/T2": Observation("S1/terminal/T2", "icmp", True, 1000.0, {"rtt_avg_seconds": 0.001}),
        "S1/terminal/T3": Observation("S1/terminal/T3", "http", True, 1000.0, {
            "status_code": 200, "ttfb_seconds": 0.002, "total_seconds": 0.003, "tls_version": 1.3,
            "tls_cert_valid": 1, "tls_not_after_timestamp_seconds": 1000.0 + 90 * 86400}),
        "S1/neighbours": Observation("S1/neighbours", "snmp", True, 1000.0,
                                     {"terminals_expected": 2, "terminals_seen": 1, "unexpected_devices": 0}),
    })
    store = EventStore(tmp_path / "data")
    store.open()
    store.append_config(1000.0, "v1")
    assert store.flush()
    service.watch_store(lambda: store.status)
    snap = service.evaluate(force=True)
    store.close()
    families = list(SnapshotCollector(lambda: snap).collect())
    emitted = {f.name + ("_total" if f.type == "counter" else "") for f in families}
    assert emitted == catalogue()
    documented = catalogue_labels()
    for f in families:
        name = f.name + ("_total" if f.type == "counter" else "")
        for smp in f.samples:
            assert set(smp.labels) == documented[name], f"labels of {name} in docs/metrics.md"
    optics = [smp.labels for f in families if f.name == "readiness_link_optics_warning" for smp in f.samples]
    assert optics == [{"site": "S1", "county": "Ilam", "area": "urban", "role": "primary", "medium": "fiber",
                       "warning": "no_sensor", "direction": "tx"}]


def test_api_shows_optical_lanes_and_why_light_is_missing(tmp_path: Path) -> None:
    """A four-lane transceiver: the weakest lane and every lane in the link's values; a direction without a
    reading as a bounded warning in the API and in readiness_link_optics_warning."""
    from monitor.web.api import site_json

    s = site("S1", snmp=True)
    service = Service(load_config(write_config(tmp_path, [s])), clock=lambda: 1000.0)
    lanes = {"rx_lane1_power_dbm": -10.458, "rx_lane2_power_dbm": -10.506, "rx_lane3_power_dbm": -9.586,
             "rx_lane4_power_dbm": -9.83}
    values = {**{k: v for k, v in SNMP_OK.items() if k != "tx_power_dbm"}, "rx_power_dbm": -10.506, **lanes}
    service.latest.update({"S1/primary": obs("S1/primary"), "S1/backup": obs("S1/backup"),
                           "S1/primary/snmp": Observation("S1/primary/snmp", "snmp", True, 1000.0, values,
                                                          details={"optics": ("optics.sensor_unavailable tx",)})})
    snap = service.evaluate(force=True)
    link = site_json(snap.config.sites[0], snap.sites["S1"])["links"][0]
    assert link["values"]["rx_power_dbm"] == -10.506 and lanes.items() <= link["values"].items()
    assert link["warnings"] == ["primary.optics.sensor_unavailable tx"]
    text = render(SnapshotCollector(lambda: snap).collect()).decode()
    assert ('readiness_link_optics_warning{site="S1",county="Ilam",area="urban",role="primary",medium="fiber",'
            'warning="sensor_unavailable",direction="tx"} 1.0') in text


def test_a_shard_of_nodes_only_renders(tmp_path: Path) -> None:
    """A shard with no polling places has no ready share now and no forecast: the API says null, /metrics leaves
    them out."""
    from monitor.web.api import sites_json
    from monitor.web.exposition import render

    service = Service(load_config(write_config(tmp_path, [site("AGG", terminals=0, kind="node", n=9)])),
                      clock=lambda: 1000.0)
    snap = service.evaluate(force=True)
    doc = sites_json(snap)
    assert doc["forecast"]["province"]["share_now"] is None
    assert doc["forecast"]["province"]["status"] == "not enough history"
    assert doc["summary"]["ready_share"] is None and doc["summary"]["nodes"]["total"] == 1
    text = render(SnapshotCollector(lambda: snap).collect()).decode()
    assert "readiness_forecast_at_risk{" not in text and "readiness_ready_ratio{" not in text


async def test_api_sites(running) -> None:  # type: ignore[no-untyped-def]
    """The API gives state, reasons, since and per-terminal measurements; filters by query."""
    _, url, _ = running
    status, text = await get(url + "/api/v1/sites")
    doc = json.loads(text)
    assert status == 200 and {s["id"] for s in doc["sites"]} == {"S1", "S2"}
    s1 = next(s for s in doc["sites"] if s["id"] == "S1")
    assert s1["name"] == "مدرسه S1" and s1["terminals_up"] == 2 and s1["since"]
    s2 = next(s for s in doc["sites"] if s["id"] == "S2")
    assert s2["state"] == "not_ready" and "terminals 0/2" in s2["reasons"]
    assert {t["reason"] for t in s2["terminals"]} == {"refused"}
    status, text = await get(url + "/api/v1/sites/S2")
    assert status == 200 and json.loads(text)["id"] == "S2"
    status, _ = await get(url + "/api/v1/sites/NOPE")
    assert status == 404
    status, text = await get(url + "/")
    assert status == 200 and "مدرسه S1" in text


async def test_health_and_ready(running) -> None:  # type: ignore[no-untyped-def]
    _, url, _ = running
    assert (await get(url + "/-/healthy"))[0] == 200
    assert (await get(url + "/-/ready"))[0] == 200


async def test_bad_reload_keeps_the_old_config(running) -> None:  # type: ignore[no-untyped-def]
    """A broken config is rejected and logged; the old one keeps running; the metric says 0."""
    runner, url, path = running
    good = path.read_text(encoding="utf-8")
    doc = yaml.safe_load(good)
    doc["sites"][0]["links"][0]["address"] = "not-an-address"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    async with aiohttp.ClientSession() as s, s.post(url + "/-/reload") as r:
        assert r.status == 400
        assert "not-an-address" in await r.text()
    _, text = await get(url + "/metrics")
    assert "readiness_config_last_reload_success 0.0" in text
    assert len(runner.service.config.sites) == 2
    doc["sites"][0]["links"][0]["address"] = "127.21.0.1"
    doc["sites"].append(site("S3", n=3))
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    async with aiohttp.ClientSession() as s, s.post(url + "/-/reload") as r:
        assert r.status == 200
    _, text = await get(url + "/metrics")
    assert "readiness_config_last_reload_success 1.0" in text
    assert 'site="S3"' in text


async def test_secrets_never_leave(running) -> None:  # type: ignore[no-untyped-def]
    """The configured community appears in no HTTP answer."""
    _, url, _ = running
    for path in ("/metrics", "/api/v1/sites", "/", "/api/v1/sites/S1"):
        _, text = await get(url + path)
        assert "s3cret-community" not in text


async def test_listens_on_loopback_by_default(tmp_path: Path) -> None:
    """With no listen section, the service binds 127.0.0.1, never 0.0.0.0."""
    config = load_config(write_config(tmp_path, [site("S1")]))
    assert config.listen.host == "127.0.0.1"
    runner = Runner(Service(config, probes={"tcp": TCP}), make_app=make_app)
    url = await runner.start_http(config.listen.host, 0)
    port = int(url.rsplit(":", 1)[1])
    other = socket.socket()
    try:
        # The port is only bound on 127.0.0.1: binding the same port on another loopback address works.
        other.bind(("127.0.0.2", port))
    finally:
        other.close()
        await runner._app_runner.cleanup()  # type: ignore[union-attr]


def test_fast_renderer_matches_prometheus_client(tmp_path: Path) -> None:
    """Our one-pass exposition parses to exactly what prometheus_client's generate_latest gives."""
    from prometheus_client import generate_latest

    from monitor.web.exposition import render
    from monitor.web.metrics import make_registry

    s = site("S1", snmp=True)
    s["name"] = 'مدرسه "quoted" \\ back\nslash'
    service = Service(load_config(write_config(tmp_path, [s])), clock=lambda: 1000.0)
    service.latest.update({"S1/primary": obs("S1/primary"), "S1/backup": obs("S1/backup", ok=False),
                           "S1/primary/snmp": Observation("S1/primary/snmp", "snmp", True, 1000.0, SNMP_OK)})
    snap = service.evaluate(force=True)

    def parsed(text: str) -> list[tuple[str, list[tuple[str, str]], float]]:
        return sorted((smp.name, sorted(smp.labels.items()), smp.value) for fam in text_string_to_metric_families(text)
                      for smp in fam.samples if smp.name != "readiness_exporter_collect_seconds")  # type: ignore[misc]

    ours = render(SnapshotCollector(lambda: snap).collect()).decode()
    theirs = generate_latest(make_registry(lambda: snap)).decode()
    assert parsed(ours) == parsed(theirs)


def test_the_cache_keeps_the_gzip_form_only_and_inflates_it_for_plain_scrapers(tmp_path: Path) -> None:
    """The streamed gzip render is the same exposition as the plain render, and the cache holds nothing else."""
    import gzip

    from monitor.web.exposition import RenderCache, render_gzip

    service = Service(load_config(write_config(tmp_path, [site("S1"), site("S2")])), clock=lambda: 1000.0)
    service.latest.update({"S1/primary": obs("S1/primary"), "S1/backup": obs("S1/backup", ok=False)})
    snap = service.evaluate(force=True)

    def text(body: bytes) -> str:
        return "\n".join(line for line in body.decode().splitlines() if "collect_seconds " not in line)

    plain = render(SnapshotCollector(lambda: snap).collect())
    assert text(gzip.decompress(render_gzip(SnapshotCollector(lambda: snap).collect()))) == text(plain)
    builds: list[int] = []

    def collect(s: object) -> object:
        builds.append(1)
        return SnapshotCollector(lambda: snap).collect()

    cache = RenderCache(lambda: snap, collect)  # type: ignore[arg-type]
    packed = cache.packed()
    assert packed[:2] == b"\x1f\x8b" and text(cache.body()) == text(plain) and cache.packed() is packed
    assert builds == [1]  # one render for every form and every scraper
    assert [k for k, v in vars(cache).items() if isinstance(v, (bytes, tuple))] == ["_done"]  # no plain copy kept


def test_a_scrape_during_a_long_render_gets_the_last_complete_exposition(tmp_path: Path) -> None:
    """A render held up (10,000 sites behind busy API threads) does not hold the scrape: after its patience it
    gets the previous snapshot's body, and the next scrape once the render is done gets the new one."""
    import gzip
    import threading

    from monitor.web.exposition import RenderCache

    service = Service(load_config(write_config(tmp_path, [site("S1")])), clock=lambda: 1000.0)
    first = service.evaluate(force=True)
    service.latest["S1/primary"] = obs("S1/primary")
    service.clock = lambda: 1030.0
    second = service.evaluate(force=True)
    current, gate = [first], threading.Event()

    def collect(snap: object) -> object:
        if snap is second:
            assert gate.wait(60)  # the render of the second snapshot is held until the test lets it go
        return SnapshotCollector(lambda: snap).collect()  # type: ignore[return-value]

    cache = RenderCache(lambda: current[0], collect, patience=0.05)  # type: ignore[arg-type]
    old = gzip.decompress(cache.packed()).decode()
    current[0] = second
    renderer = threading.Thread(target=cache.packed)
    renderer.start()
    try:
        while not cache._lock.locked():  # the renderer holds the render lock
            renderer.join(0.01)
        assert gzip.decompress(cache.packed()).decode() == old and not cache.fresh()
    finally:
        gate.set()
        renderer.join(60)
    new = gzip.decompress(cache.packed()).decode()
    assert cache.fresh() and new != old and "readiness_last_evaluation_timestamp_seconds 1030.0" in new
