"""The metric budget (docs/metrics.md): at most 15 series per site with the default settings, on a real scrape.

A generated inventory (two links and two TCP terminals per site, loopback addresses that are only data: the
observations are injected), evaluated, served by the real app on loopback and scraped over HTTP, plain and
gzipped, as Prometheus does.
"""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from monitor.config.loader import load_config
from monitor.runtime.service import Service
from monitor.web.app import make_app
from probes.base import Observation
from tests.helpers import free_port
from tests.monitor.fixtures import obs, write_config

BUDGET = 15
SITES = 300


def inventory(n: int) -> list[dict[str, Any]]:
    """``n`` polling places in three counties, with a location, two links and two TCP terminals each."""
    return [{"id": f"S{i:04d}", "name": f"مدرسه {i}", "county": f"C{i % 3}", "area": "urban" if i % 2 else "rural",
             "location": {"lat": 33.0 + i / 1000, "lon": 46.0 + i / 1000},
             "links": [{"role": "primary", "medium": "fiber", "address": f"127.31.{i // 250}.{i % 250 + 1}"},
                       {"role": "backup", "medium": "lte", "address": f"127.32.{i // 250}.{i % 250 + 1}"}],
             "terminals": [{"id": f"T{k}", "address": f"127.{33 + k}.{i // 250}.{i % 250 + 1}", "port": 8080}
                           for k in (1, 2)]} for i in range(n)]


def evaluated(tmp_path: Path, *, detail: bool, lossy: int = 0) -> Service:
    """A service over the generated inventory whose every target answered (``lossy`` primaries lose all)."""
    extra = {"metrics": {"detail": True}} if detail else {}
    service = Service(load_config(write_config(tmp_path, inventory(SITES), **extra)), clock=lambda: 1000.0)
    for i in range(SITES):
        sid = f"S{i:04d}"
        service.latest[f"{sid}/primary"] = obs(f"{sid}/primary", ok=i >= lossy)
        service.latest[f"{sid}/backup"] = obs(f"{sid}/backup")
        for k in (1, 2):
            key = f"{sid}/terminal/T{k}"
            service.latest[key] = Observation(key, "tcp", True, 1000.0, {"connect_seconds": 0.001})
    service.evaluate(force=True)
    return service


async def scrape(service: Service) -> tuple[str, int, int]:
    """Serve the app on loopback and scrape /metrics twice: (text, plain size, gzipped size)."""
    runner = web.AppRunner(make_app(lambda: service.snapshot))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
            async with session.get(f"http://127.0.0.1:{port}/metrics",
                                   headers={"Accept-Encoding": "identity"}) as resp:
                assert resp.status == 200 and "Content-Encoding" not in resp.headers
                plain = await resp.read()
            async with session.get(f"http://127.0.0.1:{port}/metrics",
                                   headers={"Accept-Encoding": "gzip"}) as resp:
                assert resp.status == 200 and resp.headers["Content-Encoding"] == "gzip"
                packed = await resp.read()
        assert gzip.decompress(packed) == plain
        return plain.decode(), len(plain), len(packed)
    finally:
        await runner.cleanup()


def per_site(text: str) -> Counter[str]:
    """Series that carry a ``site`` label, counted per site."""
    out: Counter[str] = Counter()
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            if "site" in smp.labels:
                out[smp.labels["site"]] += 1
    return out


async def test_default_settings_keep_the_budget(tmp_path: Path) -> None:
    """Every site, ready or not (a tenth here lose their primary), costs at most 15 series by default; the
    thresholds come once per medium and the location rides on the info series."""
    service = evaluated(tmp_path, detail=False, lossy=SITES // 10)
    text, size, packed = await scrape(service)
    counts = per_site(text)
    assert len(counts) == SITES
    worst = max(counts.values())
    print(f"\n{SITES} sites: {sum(counts.values()) / SITES:.1f} series per site on average, {worst} at most; "
          f"/metrics {size} bytes, {packed} gzipped")
    assert worst <= BUDGET, counts.most_common(3)
    assert "readiness_site_latitude_degrees" not in text and 'latitude="33.001"' in text
    thresholds = [line for line in text.splitlines() if line.startswith("readiness_medium_loss_max_ratio{")]
    assert len(thresholds) == len(service.snapshot.config.policy.media)
    assert packed * 5 < size  # the text repeats itself: gzip pays


async def test_detail_is_opt_in(tmp_path: Path) -> None:
    """``metrics: {detail: true}`` adds the per-link and per-terminal detail, and only then."""
    service = evaluated(tmp_path, detail=True)
    text, _, _ = await scrape(service)
    assert "readiness_link_rtt_avg_seconds{" in text and "readiness_terminal_connect_seconds{" in text
    assert max(per_site(text).values()) > BUDGET


@pytest.mark.parametrize("detail", [False, True])
def test_every_family_is_declared_either_way(tmp_path: Path, detail: bool) -> None:
    """The same families are declared with or without detail (empty without), so the catalogue is one list."""
    from monitor.web.metrics import SnapshotCollector

    snap = evaluated(tmp_path, detail=detail).snapshot
    names = {f.name for f in SnapshotCollector(lambda: snap).collect()}
    assert {"readiness_link_rtt_avg_seconds", "readiness_link_in_bytes", "readiness_site_info"} <= names
