"""A store filled by a real run, for the audit tests: the Service and Recorder in compressed time.

Five sites in three counties, real TCP listeners for their terminals (opened and closed by the
script), link faults from a scripted ICMP probe, and an injected clock that moves one hour per
evaluation. The monitor is stopped for 2h50m in the middle (a real store close and re-open), so the
record holds blind time of the monitor's own making too.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import types
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

import monitor.store.events
from monitor.config.loader import Config, load_config
from monitor.config.shard import select_shard
from monitor.demo.run import Terminals
from monitor.runtime.recorder import Recorder
from monitor.runtime.service import Service
from monitor.store.events import EventStore
from probes.base import Observation, Probe, ProbeSettings, Target
from probes.icmp import PROBE as ICMP
from probes.tcp import PROBE as TCP
from tests.helpers import free_port
from tests.monitor.fixtures import ICMP_OK

TEHRAN = ZoneInfo("Asia/Tehran")
T0 = datetime(2026, 2, 20, tzinfo=TEHRAN).timestamp()  # 1404-12-01 00:00 Tehran: the audited day
HOUR = 3600.0
FIRST_STEP, LAST_STEP = -3, 26  # evaluations at T0 + h hours
STOP_AT, RESTART_AT = 20 + 1 / 6, 23  # the monitor is down from 20:10 to 23:00
SITES = [  # id, name, county, area
    ("ILM-001", "دبستان شهید بهشتی", "Ilam", "urban"),
    ("ILM-002", "مسجد امام علی", "Ilam", "urban"),
    ("EYV-001", "خانه بهداشت سرابله", "Eyvan", "rural"),
    ("EYV-002", "مدرسه زرنه", "Eyvan", "rural"),
    ("MHR-001", "حسینیه فجر", "Mehran", "urban"),
]


def terminal_address(i: int, k: int) -> str:
    return f"127.41.{i}.{k}"


def link_address(role: str, i: int) -> str:
    return f"127.{42 if role == 'primary' else 43}.0.{i}"


def link_down(key: str, h: float) -> bool:
    """The scripted link faults: ILM-002's backup 06-12h, EYV-002's primary 10-14h."""
    return (key == "ILM-002/backup" and 6 <= h < 12) or (key == "EYV-002/primary" and 10 <= h < 14)


def icmp_silent(key: str, h: float) -> bool:
    """MHR-001's links stop answering the monitor's questions at 16h: stale (unknown) from 18h."""
    return key.startswith("MHR-001/") and h >= 16


def terminal_listening(site: str, terminal: str, h: float) -> bool:
    """EYV-001's T2 is off 03-05h; MHR-001's terminals come up at 02h (its first ready)."""
    if site == "EYV-001" and terminal == "T2":
        return not 3 <= h < 5
    if site == "MHR-001":
        return h >= 2
    return True


class ScriptedIcmp:
    """The ICMP probe's targets and settings, with replies decided by the script (no raw sockets)."""

    kind = "icmp"
    settings_model = ICMP.settings_model

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock

    warm = staticmethod(ICMP.warm)
    requests_sent = staticmethod(ICMP.requests_sent)
    dropped = staticmethod(ICMP.dropped)

    async def run(self, targets: Sequence[Target], settings: ProbeSettings, deadline: float) -> list[Observation]:
        now = self.clock[0]
        h = (now - T0) / HOUR
        out = []
        for t in targets:
            if icmp_silent(t.key, h):
                continue
            if link_down(t.key, h):
                out.append(Observation(t.key, "icmp", False, now, {"sent": 3, "received": 0, "loss_ratio": 1.0},
                                       "timeout", "0/3 replies"))
            else:
                out.append(Observation(t.key, "icmp", True, now, dict(ICMP_OK)))
        return out

    async def close(self) -> None:
        pass


class CompressedTcp:
    """The real TCP probe against real listeners, its observations stamped with the injected clock."""

    kind = "tcp"
    settings_model = TCP.settings_model

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock

    warm = staticmethod(TCP.warm)
    requests_sent = staticmethod(TCP.requests_sent)
    dropped = staticmethod(TCP.dropped)

    async def run(self, targets: Sequence[Target], settings: ProbeSettings, deadline: float) -> list[Observation]:
        return [replace(o, at=self.clock[0]) for o in await TCP.run(targets, settings, deadline)]

    async def close(self) -> None:
        await TCP.close()


def write_config(directory: Path, port: int) -> Path:
    sites = []
    for i, (sid, name, county, area) in enumerate(SITES, start=1):
        sites.append({"id": sid, "name": name, "county": county, "area": area,
                      "links": [{"role": "primary", "medium": "fiber", "address": link_address("primary", i)},
                                {"role": "backup", "medium": "lte", "address": link_address("backup", i)}],
                      "terminals": [{"id": f"T{k}", "address": terminal_address(i, k), "port": port}
                                    for k in (1, 2)]})
    doc = {"programme": {"name": "آمادگی انتخابات استان ایلام", "deadline": "2026-03-15T08:00:00+03:30",
                         "timezone": "Asia/Tehran"},
           "probes": {"icmp": {"interval_seconds": HOUR, "jitter_seconds": 0},
                      "tcp": {"interval_seconds": HOUR, "timeout_seconds": 1.0, "jitter_seconds": 0}},
           "policy": {"stale_after_intervals": 1, "terminals_min_ratio": 1.0},
           "inventory": ["sites.yaml"]}
    (directory / "sites.yaml").write_text(yaml.safe_dump({"sites": sites}, allow_unicode=True), encoding="utf-8")
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


@dataclass
class Run:
    config_path: Path
    config: Config
    data_dir: Path
    truth: list[tuple[float, dict[str, str]]]  # (at, site -> state) after each evaluation
    outage: tuple[float, float]


class Listeners(Terminals):
    """One real TCP listener per terminal (the demo's), opened and closed as the script says."""

    def __init__(self, port: int) -> None:
        super().__init__([terminal_address(i, k) for i in range(1, len(SITES) + 1) for k in (1, 2)], port)

    async def set(self, h: float) -> None:
        await self.set_down({terminal_address(i, k) for i, (sid, *_rest) in enumerate(SITES, start=1)
                             for k in (1, 2) if not terminal_listening(sid, f"T{k}", h)})


async def _session(config: Config, data_dir: Path, clock: list[float], listeners: Listeners,
                   steps: list[int], truth: list[tuple[float, dict[str, str]]], stop_at: float,
                   crash_copy: Path | None = None) -> None:
    """One life of the monitor: open the store, evaluate at each step, close the store at ``stop_at``.

    ``crash_copy``: also copy the store's files as they are before it closes, as a kill -9 would leave them
    (committed rows, no ``closed`` marker)."""
    store = EventStore(data_dir, batch_seconds=0.01)
    store.open()
    try:
        probes: dict[str, Probe] = {"icmp": ScriptedIcmp(clock), "tcp": CompressedTcp(clock)}
        service = Service(config, clock=lambda: clock[0], probes=probes)
        recorder = Recorder(store, snapshot_every_seconds=HOUR)
        service.resume(recorder.resume_sites())
        service.on_snapshot(recorder)
        for h in steps:
            clock[0] = T0 + h * HOUR
            await listeners.set(h)
            snap = await service.run_once()
            truth.append((clock[0], {sid: r.state for sid, r in snap.sites.items()}))
        assert store.flush()
        if crash_copy is not None:
            shutil.copytree(data_dir, crash_copy)
        await service.close()
    finally:
        clock[0] = T0 + stop_at * HOUR
        store.close()


def fill_store(directory: Path, *, shard: str | None = None, config_path: Path | None = None, port: int | None = None,
               data_dir: Path | None = None, stop_at: float = STOP_AT, restart_at: float | None = RESTART_AT,
               crash_copy: Path | None = None) -> Run:
    """Fill a store: two lives of the monitor over 30 compressed hours, the second after a 2h50m stop.

    With ``shard`` ("K/N") the monitor runs as that shard of the config (``--shard K/N``), so several stores can
    be filled from one config (give its ``config_path`` and terminal ``port``). ``restart_at`` None: the monitor
    stops for good at ``stop_at``; with ``crash_copy`` it is also left there as a crash would leave it.
    """
    if config_path is None or port is None:
        port = free_port("127.41.0.1")
        config_path = write_config(directory, port)
    config = load_config(config_path)
    if shard is not None:
        config = select_shard(config, shard)
    data_dir = data_dir or directory / "data"
    clock = [T0 + FIRST_STEP * HOUR]
    truth: list[tuple[float, dict[str, str]]] = []
    # The store stamps its open/close markers with the wall clock: in compressed time that is ours.
    fake_time = types.SimpleNamespace(time=lambda: clock[0], monotonic=time.monotonic)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(monitor.store.events, "time", fake_time)

        async def both() -> None:
            listeners = Listeners(port)
            try:
                first = [h for h in range(FIRST_STEP, LAST_STEP + 1) if h < stop_at]
                await _session(config, data_dir, clock, listeners, first, truth, stop_at,
                               crash_copy if restart_at is None else None)
                if restart_at is None:
                    return
                second = [h for h in range(FIRST_STEP, LAST_STEP + 1) if h >= restart_at]
                clock[0] = T0 + restart_at * HOUR
                await _session(config, data_dir, clock, listeners, second, truth, LAST_STEP + 0.5)
            finally:
                await listeners.close()

        asyncio.run(both())
    outage = (T0 + stop_at * HOUR, T0 + (LAST_STEP + 0.5 if restart_at is None else restart_at) * HOUR)
    return Run(config_path, config, data_dir, truth, outage)


def fill_shards(directory: Path, n: int, stop: dict[int, float] | None = None) -> tuple[Run, list[Run]]:
    """Fill one unsharded store and the stores of shards 1..n, all from one config and one script.

    The shards' monitors stop and restart together with the unsharded one's, except shard K in ``stop``, whose
    monitor stops for good at that hour. Returns the unsharded run and the shards' runs.
    """
    port = free_port("127.41.0.1")
    config_path = write_config(directory, port)
    whole = fill_store(directory, config_path=config_path, port=port, data_dir=directory / "whole")
    shards = []
    for k in range(1, n + 1):
        at = (stop or {}).get(k)
        shards.append(fill_store(directory, shard=f"{k}/{n}", config_path=config_path, port=port,
                                 data_dir=directory / f"shard{k}", stop_at=STOP_AT if at is None else at,
                                 restart_at=RESTART_AT if at is None else None))
    return whole, shards
