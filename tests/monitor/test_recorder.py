"""Snapshots into the event store: transitions recorded once, and a restart floods nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

from monitor.config.loader import load_config
from monitor.runtime.recorder import Recorder
from monitor.runtime.service import Service
from monitor.store.events import EventStore
from probes.tcp import PROBE as TCP
from tests.monitor.fixtures import site, write_config


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
