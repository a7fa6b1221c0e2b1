"""Shards on a real Prometheus: four `--shard K/4` instances, the generated rules, one shard killed.

A province of 400 polling places (and four network nodes, one of them dead with sites behind it) is judged
once by a single instance (the figures of monitor/core/figures.py) and once by four shards, each a Service on
its own share of the config (monitor/config/shard.py) fed the same observations and served on 127.0.0.1;
shard 1 is scraped twice, as replicas a and b. A real Prometheus scrapes them with the rules of `readiness
rules --for-scale`: the province and county roll-ups equal the single instance's figures, the replicas count
once; then shard 3 is killed: its polling places count as unknown (the province keeps its 400 sites) and
ShardDown names shard 3.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.web
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from monitor.cli.main import main
from monitor.config.loader import Config, load_config
from monitor.config.shard import owner, select_shard
from monitor.core.figures import Figures, site_state
from monitor.runtime.service import Service
from monitor.runtime.snapshot import Snapshot
from monitor.web.app import make_app
from monitor.web.exposition import render
from monitor.web.metrics import SnapshotCollector
from probes.base import Observation
from tests.helpers import free_port, require_tool
from tests.lab import stop
from tests.monitor.fixtures import obs, write_config

NOW = 1_790_000_000.0
SHARDS = 4
SITES = 400
COUNTIES = ("Ilam", "Mehran", "Dehloran")
DEAD_NODE = "AGG-2"


def _address(n: int, block: int) -> str:
    return f"127.{block}.{n // 250}.{n % 250 + 1}"


def _province() -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Return the inventory and each site's fault ("" all fine, dead, backup, terminal)."""
    sites: list[dict[str, Any]] = []
    faults: dict[str, str] = {}
    for k in range(1, 5):
        n = SITES + k
        sid = f"AGG-{k}"
        sites.append({"id": sid, "name": f"گره {k}", "county": COUNTIES[k % 3], "area": "urban", "kind": "node",
                      "links": [{"role": "primary", "medium": "fiber", "address": _address(n, 21)}],
                      "terminals": []})
        faults[sid] = "dead" if sid == DEAD_NODE else ""
    for n in range(SITES):
        sid = f"S{n:03d}"
        site: dict[str, Any] = {
            "id": sid, "name": f"مدرسه {n}", "county": COUNTIES[n % 3], "area": ("urban", "rural")[n // 3 % 2],
            "kind": "polling",
            "links": [{"role": "primary", "medium": "fiber", "address": _address(n, 21)},
                      {"role": "backup", "medium": "lte", "address": _address(n, 22)}],
            "terminals": [{"id": f"T{k}", "address": _address(n, 30 + k), "port": 18080} for k in (1, 2)]}
        if n % 5 == 0:
            site["upstream"] = f"AGG-{n // 5 % 4 + 1}"
        sites.append(site)
        faults[sid] = ("", "", "", "", "", "dead", "backup", "terminal")[n % 8 if n % 11 else 1]
    return sites, faults


def _evaluate(config: Config, faults: dict[str, str]) -> Snapshot:
    """Evaluate ``config`` once on the observations its sites would get, as the service does."""
    service = Service(config, clock=lambda: NOW)
    for s in config.sites:
        fault = faults[s.id]
        for link in s.links:
            key = f"{s.id}/{link.role}"
            service.latest[key] = obs(key, ok=fault != "dead" and not (fault == "backup" and link.role == "backup"),
                                      at=NOW)
        for i, t in enumerate(s.terminals):
            key = f"{s.id}/terminal/{t.id}"
            ok = fault != "dead" and not (fault == "terminal" and i == 0)
            service.latest[key] = Observation(key, "tcp", ok, NOW, {"connect_seconds": 0.001} if ok else {},
                                              "" if ok else "refused")
    return service.evaluate(force=True)


async def _serve(snap: Snapshot) -> tuple[aiohttp.web.AppRunner, str]:
    runner = aiohttp.web.AppRunner(make_app(lambda: snap))
    await runner.setup()
    port = free_port()
    await aiohttp.web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"127.0.0.1:{port}"


def _states(rows: dict[tuple[tuple[str, str], ...], float]) -> dict[str, float]:
    return {dict(k)["state"]: v for k, v in rows.items()}


async def test_four_shards_on_a_real_prometheus(tmp_path: Path) -> None:
    prometheus = require_tool("prometheus")
    inventory, faults = _province()
    config = load_config(write_config(tmp_path, inventory))
    single: Figures = _evaluate(config, faults).figures()
    # The single instance's view, for the record: a dead node's sites unknown, sites in every state.
    assert single.province.total == SITES and all(single.province.states.values())

    shards = {k: _evaluate(select_shard(config, f"{k}/{SHARDS}"), faults) for k in range(1, SHARDS + 1)}
    assert sum(len(s.config.reported_sites()) for s in shards.values()) == len(config.sites)
    assert all(len([x for x in s.config.reported_sites() if x.kind == "polling"]) > 70 for s in shards.values())

    rules = tmp_path / "readiness.rules.yml"
    assert main(["rules", "--for-scale", "0.02", "-o", str(rules)]) == 0
    runners: dict[tuple[int, str], aiohttp.web.AppRunner] = {}
    targets: dict[str, list[str]] = {"a": [], "b": []}
    for k, snap in shards.items():
        for replica in ("a", "b") if k == 1 else ("a",):
            runner, address = await _serve(snap)
            runners[(k, replica)] = runner
            targets[replica].append(address)
    port = free_port()
    prom_config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": "readiness", "scrape_timeout": "1s", "static_configs": [
            {"labels": {"replica": r}, "targets": t} for r, t in targets.items()]}]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prom_config), encoding="utf-8")
    log_path = tmp_path / "prometheus.log"
    log = log_path.open("wb")
    proc = subprocess.Popen([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                             "--log.level=warn"], stdout=log, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}/api/v1"

    async def get(path: str) -> Any:
        async with aiohttp.ClientSession() as s, s.get(api + path) as r:
            assert r.status == 200, await r.text()
            return (await r.json())["data"]

    async def query(expr: str) -> dict[tuple[tuple[str, str], ...], float]:
        data = await get("/query?query=" + urllib.parse.quote(expr))
        return {tuple(sorted((k, v) for k, v in r["metric"].items() if k != "__name__")): float(r["value"][1])
                for r in data["result"]}

    async def until(what: str, check: Callable[[], Awaitable[bool]], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                if await check():
                    return
            except (aiohttp.ClientError, AssertionError, KeyError):
                pass
            assert time.monotonic() < deadline, f"{what}\n{log_path.read_text()}"
            await asyncio.sleep(0.5)

    async def settled() -> bool:
        # Every target scraped, and the roll-ups evaluated after that.
        up = await query('sum(up{job="readiness"})')
        return up.get((), 0) == SHARDS + 1 and sum(_states(await query("province:readiness_sites:sum")).values()) \
            == SITES and bool(await query("count(readiness_site_info) > 400"))

    try:
        await until("every shard scraped and the roll-ups evaluated", settled)
        await asyncio.sleep(2)  # one more evaluation on complete scrapes
        # Each instance says which shard it is; the sites they own add up to the inventory (replica a).
        info = await query('readiness_shard_info{replica="a"}')
        assert sorted(dict(k)["shard"] for k in info) == ["1", "2", "3", "4"]
        assert {dict(k)["shards"] for k in info} == {"4"}
        owned = await query('sum by (kind) (readiness_shard_sites{replica="a"})')
        assert {dict(k)["kind"]: v for k, v in owned.items()} == {"polling": SITES, "node": 4}

        # The roll-ups equal the single instance's figures: replicas once, watch-only nodes not counted twice.
        p = single.province
        assert _states(await query("province:readiness_sites:sum")) == dict(p.states)
        assert _states(await query("province:readiness_nodes:sum")) == dict(single.nodes.states)
        assert (await query("province:readiness_ready:ratio"))[()] == pytest.approx(p.share)
        county = {dict(k)["county"]: v for k, v in (await query("county:readiness_ready:ratio")).items()}
        assert county == pytest.approx({name: t.share for name, t in single.counties.items()})
        area = {dict(k)["area"]: v for k, v in (await query("area:readiness_ready:ratio")).items()}
        assert area == pytest.approx({name: t.share for name, t in single.areas.items()})
        assert (await query("province:readiness_terminals:sum"))[()] == p.terminals_total
        assert (await query("province:readiness_terminals_up:sum"))[()] == p.terminals_up
        assert (await query("province:readiness_terminals_unknown:sum"))[()] == p.terminals_unknown
        assert not await query('ALERTS{alertname="ShardDown"}')

        # Kill shard 3: its polling places turn unknown; the province keeps every site; ShardDown names it.
        await runners.pop((3, "a")).cleanup()
        lost = [s for s in shards[3].config.reported_sites() if s.kind == "polling"]
        assert all(owner(s.id, SHARDS) == 3 for s in lost)
        expected = dict(p.states)
        for s in lost:  # each moves from the state shard 3 saw to unknown
            expected[site_state(shards[3].sites.get(s.id))] -= 1
            expected["unknown"] += 1
        lost_ready = sum(1 for s in lost if site_state(shards[3].sites.get(s.id)) == "ready")

        async def shrunk() -> bool:
            return _states(await query("province:readiness_sites:sum")) == expected

        await until("shard 3's sites counted as unknown", shrunk, timeout=30)
        assert sum(expected.values()) == SITES
        assert (await query("province:readiness_ready:ratio"))[()] == pytest.approx((p.ready - lost_ready) / SITES)
        assert (await query("province:readiness_terminals:sum"))[()] == p.terminals_total
        county_sites = await query("sum without (state) (county:readiness_sites:sum)")
        assert {dict(k)["county"]: v for k, v in county_sites.items()} == {
            name: t.total for name, t in single.counties.items()}

        async def shard_down() -> bool:
            alerts = [a for a in (await get("/alerts"))["alerts"] if a["labels"]["alertname"] == "ShardDown"]
            return [(a["labels"]["shard"], a["labels"]["shards"]) for a in alerts] == [("3", "4")] and \
                alerts[0]["state"] in ("pending", "firing")

        await until("ShardDown names shard 3", shard_down, timeout=30)
    finally:
        stop(proc, grace=20)
        log.close()
        for runner in runners.values():
            await runner.cleanup()



def _exported(snap: Snapshot) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(render(SnapshotCollector(lambda: snap).collect()).decode()):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_each_instance_says_its_shard_and_the_whole_inventory(tmp_path: Path) -> None:
    """Unsharded is shard 1 of 1; a shard exports its own sites and the whole inventory, the same on each."""
    inventory, faults = _province()
    config = load_config(write_config(tmp_path, inventory))
    whole = _exported(_evaluate(config, faults))
    assert whole["readiness_shard_info"] == {(("shard", "1"), ("shards", "1")): 1}
    assert whole["readiness_shard_expected"] == {(("shard", "1"), ("shards", "1")): 1}
    assert whole["readiness_shard_sites"] == {(("kind", "node"),): 4,
                                              (("kind", "polling"),): SITES}
    assert sum(v for k, v in whole["readiness_inventory_sites"].items() if ("kind", "polling") in k) == SITES
    assert sum(whole["readiness_inventory_terminals"].values()) == 2 * SITES
    owned = 0.0
    for k in range(1, SHARDS + 1):
        mine = _exported(_evaluate(select_shard(config, f"{k}/{SHARDS}"), faults))
        assert mine["readiness_shard_info"] == {(("shard", str(k)), ("shards", "4")): 1}
        assert sorted(dict(x)["shard"] for x in mine["readiness_shard_expected"]) == ["1", "2", "3", "4"]
        assert mine["readiness_inventory_sites"] == whole["readiness_inventory_sites"]
        assert mine["readiness_inventory_terminals"] == whole["readiness_inventory_terminals"]
        owned += mine["readiness_shard_sites"][(("kind", "polling"),)]
    assert owned == SITES


def test_a_shard_sizes_its_probes_for_its_own_sites(tmp_path: Path) -> None:
    """80 terminals at 10 connects a round, 1 s each, do not fit a 5 s cycle: the whole inventory is refused,
    naming probes.tcp.concurrency. A quarter of them does fit: a shard (what `run --shard` and a sharded reload
    pass as ``select``) is checked on its own count, instead of refusing what it will never probe."""
    from monitor.errors import ConfigError
    from tests.monitor.fixtures import site

    probes = {"tcp": {"interval_seconds": 5, "timeout_seconds": 1, "concurrency": 10, "jitter_seconds": 0}}
    path = write_config(tmp_path, [site(f"S{i:02d}", n=i) for i in range(1, 41)], probes=probes)
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert "80 terminals" in str(refused.value) and "probes.tcp.concurrency" in str(refused.value)
    shard = load_config(path, select=lambda c: select_shard(c, "1/4"))
    assert shard.shard == (1, 4) and 0 < len(shard.sites) < 20
    assert main(["check", str(path)]) != 0  # unsharded: still refused
