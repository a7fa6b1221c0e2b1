"""The metric budget (docs/metrics.md): at most 15 series per site with the default settings, on a real scrape.

A generated inventory (two links and two TCP terminals per site, loopback addresses that are only data: the
observations are injected), evaluated, served by the real app on loopback and scraped over HTTP, plain and
gzipped, as Prometheus does. Ready or not (issue 13): a site's reasons are one series, whatever their number.
"""

from __future__ import annotations

import gzip
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from monitor.config.loader import load_config
from monitor.core.reasons import Reason
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


def evaluated(tmp_path: Path, *, detail: bool, lossy: int = 0, clock: Callable[[], float] = lambda: 1000.0,
              **extra: Any) -> Service:
    """A service over the generated inventory whose every target answered at 1000 s (``lossy`` primaries lose
    all)."""
    if detail:
        extra["metrics"] = {"detail": True}
    service = Service(load_config(write_config(tmp_path, inventory(SITES), **extra)), clock=clock)
    for i in range(SITES):
        sid = f"S{i:04d}"
        service.latest[f"{sid}/primary"] = obs(f"{sid}/primary", ok=i >= lossy)
        service.latest[f"{sid}/backup"] = obs(f"{sid}/backup")
        for k in (1, 2):
            key = f"{sid}/terminal/T{k}"
            service.latest[key] = Observation(key, "tcp", True, 1000.0, {"connect_seconds": 0.001})
    service.evaluate(force=True)
    return service


def break_site(service: Service, sid: str, at: float, *, primary: bool = True, backup_loss: float = 0.5,
               terminals: bool = True) -> None:
    """At ``at``: the site's primary down, its backup losing ``backup_loss``, its terminals refusing."""
    service.latest[f"{sid}/primary"] = obs(f"{sid}/primary", ok=not primary, at=at)
    service.latest[f"{sid}/backup"] = obs(f"{sid}/backup", at=at, loss_ratio=backup_loss)
    for k in (1, 2):
        key = f"{sid}/terminal/T{k}"
        service.latest[key] = (Observation(key, "tcp", False, at, {}, "refused", "connection refused") if terminals
                               else Observation(key, "tcp", True, at, {"connect_seconds": 0.001}))


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


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples of one metric in a scrape: (labels, value)."""
    return [(smp.labels, smp.value) for fam in text_string_to_metric_families(text) for smp in fam.samples
            if smp.name == name]


async def test_default_settings_keep_the_budget(tmp_path: Path) -> None:
    """Every site, ready or not (a tenth here lose their primary), costs at most 15 series by default, a ready one
    13 (two links, two terminals); the thresholds come once per medium and the location rides on the info series."""
    service = evaluated(tmp_path, detail=False, lossy=SITES // 10)
    text, size, packed = await scrape(service)
    counts = per_site(text)
    assert len(counts) == SITES
    worst = max(counts.values())
    print(f"\n{SITES} sites: {sum(counts.values()) / SITES:.1f} series per site on average, {worst} at most; "
          f"/metrics {size} bytes, {packed} gzipped")
    assert worst <= BUDGET, counts.most_common(3)
    ready = {sid for sid, r in service.snapshot.sites.items() if r.state == "ready"}
    assert len(ready) == SITES - SITES // 10
    assert {counts[sid] for sid in ready} == {13}
    assert "readiness_link_up" not in text  # readiness_link_state says it (issue 13)
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


async def test_a_site_with_many_reasons_keeps_the_budget(tmp_path: Path) -> None:
    """A site that was ready, then has its primary down, its backup losing half its echoes and both terminals
    refusing, inside a maintenance window and under a waiver: still at most 15 series, its reasons one series whose
    ``reasons`` label lists the state-making codes (not the maintenance, not the waiver), its main reason first."""
    # The window opens at 1020 s (03:47 in Tehran, the programme's timezone): the site is ready at 1000 s first.
    extra = {"maintenance": [{"sites": ["S0000"], "reason": "power work", "start": "1970-01-01T03:47",
                              "end": "1970-01-02T00:00"}],
             "waivers": [{"site": "S0000", "requirement": "optical_power", "until": "2026-12-20",
                          "approved_by": "ICT committee", "reason": "sensor on order"}]}
    now = [1000.0]
    service = evaluated(tmp_path, detail=False, clock=lambda: now[0], **extra)
    assert service.snapshot.sites["S0000"].ever_ready
    now[0] = 1060.0
    for i in range(SITES):  # every other site answers again
        for key in (f"S{i:04d}/primary", f"S{i:04d}/backup"):
            service.latest[key] = obs(key, at=now[0])
        for k in (1, 2):
            key = f"S{i:04d}/terminal/T{k}"
            service.latest[key] = Observation(key, "tcp", True, now[0], {"connect_seconds": 0.001})
    break_site(service, "S0000", now[0])
    service.evaluate(force=True)
    r = service.snapshot.sites["S0000"]
    assert r.state == "not_ready" and r.ever_ready and r.maintenance and r.waivers
    assert {x.code for x in r.reasons} == {"maintenance", "primary.down", "backup.loss", "terminals", "waived"}
    text, _, _ = await scrape(service)
    counts = per_site(text)
    print(f"\nnot ready, 3 reasons, maintenance, a waiver, ever ready: {counts['S0000']} series")
    assert counts["S0000"] <= BUDGET
    [(labels, value)] = [s for s in samples(text, "readiness_site_reason") if s[0]["site"] == "S0000"]
    assert value == 1
    assert labels["reason"] == "primary.down"  # the first reason that says not_ready
    assert labels["reasons"] == "backup.loss,primary.down,terminals"
    assert not any(s[0]["site"] == "S0001" for s in samples(text, "readiness_site_reason"))  # ready: absent
    assert [s[0]["requirement"] for s in samples(text, "readiness_site_waiver") if s[0]["site"] == "S0000"] \
        == ["optical_power"]


async def test_reason_rollup_counts_the_sites(tmp_path: Path) -> None:
    """readiness_site_reasons{county, area, reason} counts the sites having each code among their reasons: the
    same as the snapshot's reasons, and as the per-site series' ``reasons`` labels; a code no site has is absent."""
    service = evaluated(tmp_path, detail=False, lossy=SITES // 10)
    for i in range(SITES // 10, SITES // 10 + 7):  # a few more: terminals down only, or the backup lossy only
        break_site(service, f"S{i:04d}", 1000.0, primary=False, backup_loss=0.5 if i % 2 else 0.0,
                   terminals=not i % 2)
    service.evaluate(force=True)
    text, _, _ = await scrape(service)
    rollup = {(lb["county"], lb["area"], lb["reason"]): v for lb, v in samples(text, "readiness_site_reasons")}
    expected: Counter[tuple[str, str, str]] = Counter()
    sites = {s.id: s for s in service.snapshot.config.reported_sites()}
    for sid, r in service.snapshot.sites.items():
        for code in {x.code for x in r.reasons if not Reason.parse(str(x)).informational}:
            expected[(sites[sid].county, sites[sid].area, code)] += 1
    assert rollup == expected
    from_series: Counter[tuple[str, str, str]] = Counter()
    for lb, _ in samples(text, "readiness_site_reason"):
        from_series.update((lb["county"], lb["area"], code) for code in lb["reasons"].split(","))
    assert rollup == from_series
    by_code: Counter[str] = Counter()
    for (_, _, code), n in rollup.items():
        by_code[code] += int(n)
    assert by_code == {"primary.down": SITES // 10, "terminals": 4, "backup.loss": 3}
