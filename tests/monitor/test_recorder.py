"""Snapshots into the event store: transitions recorded once, and a restart floods nothing."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from monitor.config.loader import load_config
from monitor.runtime.recorder import Recorder
from monitor.runtime.service import Service
from monitor.store.events import EventStore
from probes.base import Observation
from probes.tcp import PROBE as TCP
from tests.monitor.fixtures import obs, site, write_config


def transitions(store: EventStore) -> list[tuple[str, str | None, str]]:
    return [(e.entity, e.old, e.new) for e in store.events(kinds=["transition"])]


async def run_service(path: Path, data: Path, clock: float) -> list[tuple[str, str | None, str]]:
    store = EventStore(data)
    store.open()
    try:
        service = Service(load_config(path), probes={"tcp": TCP}, clock=lambda: clock)
        recorder = Recorder(store)
        service.resume(recorder.resume_sites())
        service.on_snapshot(recorder)
        await service.run_once()
        assert store.flush()
        return transitions(store)
    finally:
        store.close()


async def test_restart_records_no_spurious_transitions(tmp_path: Path) -> None:
    """Run, stop, run again with the same world: the second run adds no transition and keeps `since`."""
    listeners = [await asyncio.start_server(lambda r, w: w.close(), f"127.23.1.{k}", 18080) for k in (1, 2)]
    path = write_config(tmp_path, [site("S1"), site("S2", n=2)])
    data = tmp_path / "data"
    try:
        first = await run_service(path, data, 1000.0)
        assert ("site:S1", None, "unknown") in first  # links have no ICMP data in this test
        assert ("target:S2/terminal/T1", None, "down") in first
        assert ("target:S1/terminal/T1", None, "up") in first
        second = await run_service(path, data, 2000.0)
        assert second == first
        store = EventStore(data)
        assert store.last_states()["site:S1"][1] == 1000.0  # since survives the restart
        for server in listeners[:1]:
            server.close()
        third = await run_service(path, data, 3000.0)
        new = third[len(first):]
        assert ("target:S1/terminal/T1", "up", "down") in new
        assert ("site:S2", "unknown", "unknown") not in new
    finally:
        for server in listeners:
            server.close()


async def test_config_version_is_recorded_once(tmp_path: Path) -> None:
    """The config in force is a row of its own, written again only when it changes."""
    path = write_config(tmp_path, [site("S1")])
    data = tmp_path / "data"
    await run_service(path, data, 1000.0)
    await run_service(path, data, 2000.0)
    store = EventStore(data)
    assert len(list(store.events(kinds=["config"]))) == 1
    (row,) = store.events(kinds=["config"])
    # The record holds its context: the schedule in force and the zone its times are read in.
    assert {"maintenance", "waivers", "timezone", "sites", "source"} <= set(row.payload)


async def test_a_restart_as_another_shard_is_recorded(tmp_path: Path) -> None:
    """The config row says which shard the instance is (1 of 1 unsharded) and how many sites it reports; the same
    config restarted with --shard K/N is a new config row, so a multi-shard audit knows whose record it is."""
    from monitor.config.shard import owner, select_shard

    path = write_config(tmp_path, [site(f"S{k}") for k in range(1, 7)])
    data = tmp_path / "data"
    await run_service(path, data, 1000.0)
    store = EventStore(data)
    store.open()
    try:
        config = select_shard(load_config(path), "2/3")
        service = Service(config, probes={"tcp": TCP}, clock=lambda: 2000.0)
        recorder = Recorder(store)
        service.on_snapshot(recorder)
        await service.run_once()
        await service.run_once()
        assert store.flush()
    finally:
        store.close()
    rows = list(EventStore(data).events(kinds=["config"]))
    assert [(r.new, r.payload["shard"], r.payload["reported"]) for r in rows] == [
        (config.version, [1, 1], 6),
        (config.version, [2, 3], sum(1 for k in range(1, 7) if owner(f"S{k}", 3) == 2)),
    ]


def test_witnesses_are_icmp_targets_of_their_own(tmp_path: Path) -> None:
    """`witnesses:` takes bare addresses or {address, name}; each is an ICMP target monitor/witness/LABEL."""
    import pytest

    from monitor.config.targets import build_targets
    from monitor.errors import ConfigError

    cfg = load_config(write_config(tmp_path, [site("S1")], witnesses=["127.0.0.1", {"address": "::1", "name": "core"}]))
    assert [w.label for w in cfg.witnesses] == ["127.0.0.1", "core"]
    icmp = build_targets(cfg.sites, cfg.witnesses)["icmp"]
    assert [(t.key, t.site, t.address) for t in icmp[:2]] == [
        ("monitor/witness/127.0.0.1", "monitor", "127.0.0.1"), ("monitor/witness/core", "monitor", "::1")]
    with pytest.raises(ConfigError, match="witness core is listed more than once"):
        load_config(write_config(tmp_path, [site("S1")], witnesses=[{"address": "127.0.0.1", "name": "core"},
                                                                     {"address": "127.0.0.2", "name": "core"}]))


def test_a_blind_monitor_is_one_event(tmp_path: Path) -> None:
    """Blind: one transition of `monitor` and none of the sites, links or targets; seeing again: one more,
    and then only what really changed meanwhile, against the states last recorded."""
    from monitor.core.readiness import MonitorView
    from monitor.runtime.snapshot import Snapshot
    from tests.monitor.fixtures import config as load

    cfg = load(tmp_path, [site(f"S{i}", n=i) for i in range(1, 4)])
    store = EventStore(tmp_path / "data")
    store.open()
    try:
        recorder = Recorder(store)
        service = Service(cfg, clock=lambda: 1000.0)
        ok = {f"S{i}/{r}": obs(f"S{i}/{r}") for i in range(1, 4) for r in ("primary", "backup")}
        ok.update({f"S{i}/terminal/T{k}": Observation(f"S{i}/terminal/T{k}", "tcp", True, 1000.0, {})
                   for i in range(1, 4) for k in (1, 2)})
        service.latest.update(ok)
        seen = service.evaluate(1000.0, force=True)
        recorder(seen, None)
        before = len(transitions_of(store))
        blind_sites = {k: replace(r, state="unknown") for k, r in seen.sites.items()}
        blind = Snapshot(1010.0, cfg, blind_sites, seen.cycles, 0.0, True,
                         monitor=MonitorView(True, "witness gw does not answer (timeout)"))
        recorder(blind, seen)
        recorder(replace(blind, at=1020.0), blind)
        added = transitions_of(store)[before:]
        assert added == [("monitor", "seeing", "blind", ("monitor.blind", "witness gw does not answer (timeout)"))]
        back = replace(seen, at=1030.0, sites={**seen.sites, "S1": replace(seen.sites["S1"], state="not_ready")})
        recorder(back, blind)
        added = transitions_of(store)[before + 1:]
        assert [a[:3] for a in added] == [("monitor", "blind", "seeing"), ("site:S1", "ready", "not_ready")]
    finally:
        store.close()


def transitions_of(store: EventStore) -> list[tuple[str, str | None, str, tuple[str, ...]]]:
    assert store.flush()
    return [(e.entity, e.old, e.new, e.reasons) for e in store.events(kinds=["transition"])]


def test_links_terminals_and_a_new_terminal_are_recorded_by_what_changed(tmp_path: Path) -> None:
    """The recorder keeps one small record per site: a link going down, a terminal coming up, a terminal that a
    reload adds, and a site whose reasons change are each one transition, and an unchanged snapshot none."""
    from monitor.config.loader import load_config as load

    store = EventStore(tmp_path / "data")
    store.open()
    try:
        recorder = Recorder(store)
        service = Service(load(write_config(tmp_path, [site("S1"), site("S2", n=2)])), clock=lambda: 1000.0)
        ok = {f"S{i}/{r}": obs(f"S{i}/{r}") for i in (1, 2) for r in ("primary", "backup")}
        ok.update({f"S{i}/terminal/T{k}": Observation(f"S{i}/terminal/T{k}", "tcp", True, 1000.0, {})
                   for i in (1, 2) for k in (1, 2)})
        service.latest.update(ok)
        recorder(service.evaluate(1000.0, force=True), None)
        start = len(transitions_of(store))
        recorder(service.evaluate(1010.0, force=True), None)
        assert len(transitions_of(store)) == start  # nothing changed, nothing written
        service.latest["S1/backup"] = obs("S1/backup", ok=False)
        service.latest["S2/terminal/T2"] = Observation("S2/terminal/T2", "tcp", False, 1020.0, {}, "refused",
                                                       "connection refused")
        recorder(service.evaluate(1020.0, force=True), None)
        added = [t[:3] for t in transitions_of(store)[start:]]
        assert ("link:S1/backup", "up", "down") in added and ("target:S2/terminal/T2", "up", "down") in added
        assert not any(t[0] in ("link:S1/primary", "target:S1/terminal/T1", "link:S2/primary") for t in added)
        assert {t[0] for t in added} <= {"site:S1", "site:S2", "link:S1/backup", "target:S2/terminal/T2"}
        # A reload adds a third terminal to S1: its first record is a transition from nothing.
        service.config = load(write_config(tmp_path, [site("S1", terminals=3), site("S2", n=2)]))
        service.latest["S1/terminal/T3"] = Observation("S1/terminal/T3", "tcp", True, 1030.0, {})
        mark = len(transitions_of(store))
        recorder(service.evaluate(1030.0, force=True), None)
        added = [t[:3] for t in transitions_of(store)[mark:]]
        assert ("target:S1/terminal/T3", None, "up") in added
        assert not any(t[0].startswith(("link:", "target:S2")) or t[0] == "target:S1/terminal/T1" for t in added)
    finally:
        store.close()
