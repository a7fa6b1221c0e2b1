"""Honest self-health: reloads are all or nothing, /-/ready fails when probing stalls or the store cannot
write, missed cycles are counted, a pause records no fake history, a read-only data dir is survivable."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from monitor.config.loader import load_config
from monitor.runtime.recorder import attach_store
from monitor.runtime.scheduler import Runner
from monitor.runtime.service import Service
from monitor.store.events import EventStore, StoreStatus, verify_store
from monitor.web.app import make_app
from probes.base import NOTHING_DROPPED, Dropped, Observation, ProbeSettings, Target
from probes.icmp import PROBE as ICMP
from probes.tcp import PROBE as TCP
from tests.helpers import free_port, require_root, require_tool
from tests.monitor.fixtures import site, write_config
from tests.monitor.test_scheduler import fetch, wait_for
from tests.monitor.test_store import filled_store, tmpfs


class Quick:
    """A probe kind that answers at once: every target up, observed now."""

    def __init__(self, real: Any) -> None:
        self.kind = real.kind
        self.settings_model = real.settings_model
        self.runs = 0

    async def warm(self) -> None:
        pass

    async def run(self, targets: Sequence[Target], settings: ProbeSettings, deadline: float) -> list[Observation]:
        self.runs += 1
        values = {"sent": 1, "received": 1, "loss_ratio": 0.0, "rtt_avg_seconds": 0.001}
        return [Observation(t.key, self.kind, True, time.time(), values if self.kind == "icmp" else
                            {"connect_seconds": 0.001}) for t in targets]

    def requests_sent(self, observations: Sequence[Observation]) -> int:
        return len(observations)

    def dropped(self) -> Dropped:
        return NOTHING_DROPPED

    async def close(self) -> None:
        pass


def quick_service(path: Path, clock: Any = time.time) -> Service:
    return Service(load_config(path), clock=clock, probes={"icmp": Quick(ICMP), "tcp": Quick(TCP)})  # type: ignore[dict-item]


def jobs(runner: Runner) -> dict[str, float]:
    return {job.id: job.trigger.interval.total_seconds() for job in runner.scheduler.get_jobs()}


PROBES = {"icmp": {"interval_seconds": 5, "jitter_seconds": 0}, "tcp": {"interval_seconds": 5, "jitter_seconds": 0}}


# -- reloads: all or nothing ------------------------------------------------------------------------


async def test_a_reload_failing_while_scheduling_keeps_the_old_config_and_jobs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scheduler refuses the second new job: the old config and both old jobs stay, the reload says 400
    and /metrics says the reload failed."""
    path = write_config(tmp_path, [site("S1")], probes=PROBES)
    service = quick_service(path)
    runner = Runner(service, path, make_app=make_app)
    runner._schedule()
    runner.scheduler.start()
    try:
        before = jobs(runner)
        assert before == {"probe:icmp": 5.0, "probe:tcp": 5.0}
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        doc["probes"]["tcp"]["interval_seconds"] = 7
        doc["probes"]["icmp"]["interval_seconds"] = 7
        doc["sites"].append(site("S2", n=2))
        path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")

        real_add = runner.scheduler.add_job
        calls = []

        def failing_add(*args: Any, **kwargs: Any) -> Any:
            calls.append(kwargs.get("id"))
            if len(calls) == 2:
                raise RuntimeError("injected: the scheduler refuses this job")
            return real_add(*args, **kwargs)

        monkeypatch.setattr(runner.scheduler, "add_job", failing_add)
        ok, message = await runner.reload()
        monkeypatch.setattr(runner.scheduler, "add_job", real_add)
        assert not ok and "injected" in message
        assert jobs(runner) == before, "the old jobs keep running"
        assert [s.id for s in service.config.sites] == ["S1"], "the old config stays in force"
        assert service.cycles["tcp"].interval_seconds == 5
        assert not service.snapshot.reload_success
        ok, _ = await runner.reload()  # the same file, once the scheduler takes it
        assert ok and jobs(runner) == {"probe:icmp": 7.0, "probe:tcp": 7.0}
        assert [s.id for s in service.config.sites] == ["S1", "S2"]
    finally:
        runner.scheduler.shutdown(wait=False)


@pytest.mark.parametrize("interval", [float("inf"), 1e308, 2.0**63, 1e12])
async def test_an_unschedulable_interval_is_refused_and_probing_goes_on(tmp_path: Path, interval: float) -> None:
    """Whether validation or the scheduler refuses it, an absurd interval leaves every job running,
    /-/reload answers 400, readiness_config_last_reload_success is 0 and /-/ready stays truthful."""
    path = write_config(tmp_path, [site("S1")], probes=PROBES)
    service = quick_service(path)
    runner = Runner(service, path, make_app=make_app)
    url = await runner.start_http("127.0.0.1", 0)
    runner._schedule()
    runner.scheduler.start()
    try:
        await service.run_once()
        before = jobs(runner)
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        doc["probes"]["tcp"]["interval_seconds"] = interval
        path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        async with aiohttp.ClientSession() as s:
            async with s.post(url + "/-/reload") as r:
                assert r.status == 400, await r.text()
            async with s.get(url + "/metrics") as r:
                assert "readiness_config_last_reload_success 0.0" in await r.text()
            async with s.get(url + "/-/ready") as r:
                assert r.status == 200
        assert jobs(runner) == before
        assert service.config.probe_settings("tcp").interval_seconds == 5
    finally:
        runner.scheduler.shutdown(wait=False)
        await runner._app_runner.cleanup()  # type: ignore[union-attr]


def test_a_cold_run_on_an_unschedulable_interval_is_a_config_error(tmp_path: Path) -> None:
    """`readiness run` on an interval the scheduler cannot take exits 2 with a message, never a traceback."""
    path = write_config(tmp_path, [site("S1")], probes={"tcp": {"interval_seconds": float("inf")},
                                                        "icmp": {"enabled": False}})
    done = subprocess.run([sys.executable, "-m", "monitor", "run", str(path), "--listen-port", "0", "--no-store"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "config.yaml" in done.stderr, done.stderr


# -- /-/ready tells the truth -----------------------------------------------------------------------


async def test_ready_fails_when_a_kind_has_not_finished_a_cycle_in_twice_its_interval(tmp_path: Path) -> None:
    """Every cycle finished long ago (no new one since): /-/ready is 503 naming the kinds, and /metrics has
    readiness_probing_stalled 1 for each and readiness_monitor_ready 0."""
    path = write_config(tmp_path, [site("S1")], probes=PROBES)
    service = quick_service(path, clock=lambda: time.time() - 3600)  # everything happened an hour ago
    await service.run_once()
    assert service.snapshot.evaluated
    runner = Runner(service, path, make_app=make_app)
    url = await runner.start_http("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/-/ready") as r:
                body = await r.text()
                assert r.status == 503
                assert "icmp probing stalled" in body and "tcp probing stalled" in body, body
            async with s.get(url + "/metrics") as r:
                text = await r.text()
        assert 'readiness_probing_stalled{kind="tcp"} 1.0' in text
        assert 'readiness_probing_stalled{kind="icmp"} 1.0' in text
        assert "readiness_monitor_ready 0.0" in text
        assert 'readiness_probing_stalled{kind="snmp"}' not in text  # no SNMP targets: not expected to probe
    finally:
        await runner._app_runner.cleanup()  # type: ignore[union-attr]


async def test_ready_when_every_kind_is_fresh_and_the_store_writes(tmp_path: Path) -> None:
    path = write_config(tmp_path, [site("S1")], probes=PROBES)
    service = quick_service(path)
    snap = await service.run_once()
    assert snap.problems(time.time()) == ()
    assert snap.stalled(time.time()) == {}
    limit = snap.stall_limit("tcp")
    assert limit == 2 * 5 + service.config.probe_settings("tcp").cycle_budget_seconds()
    assert set(snap.stalled(snap.cycles["tcp"].finished_at + limit + 1)) == {"icmp", "tcp"}


async def test_ready_fails_while_the_store_cannot_write(tmp_path: Path) -> None:
    """At run time as at start-up: a store that cannot write makes /-/ready fail, with the store's reason."""
    path = write_config(tmp_path, [site("S1")], probes=PROBES)
    service = quick_service(path)
    status = StoreStatus(False, "cannot write data/events.db: attempt to write a readonly database", 3, 10, 2.0,
                         None)
    service.watch_store(lambda: status)
    snap = await service.run_once()
    assert snap.problems(time.time()) == (
        "store not writable: cannot write data/events.db: attempt to write a readonly database",)


# -- skipped and missed cycles ----------------------------------------------------------------------


async def test_cycles_missed_while_the_loop_stood_still_are_counted(tmp_path: Path) -> None:
    """The event loop stands still for four intervals (as under SIGSTOP): the run times it missed are
    counted per kind, as missed and as skipped."""
    probes = {"icmp": {"interval_seconds": 1, "timeout_seconds": 0.5, "count": 1, "jitter_seconds": 0},
              "tcp": {"interval_seconds": 1, "timeout_seconds": 0.5, "jitter_seconds": 0}}
    path = write_config(tmp_path, [site("S1")], probes=probes)
    service = quick_service(path)
    runner = Runner(service, path, make_app=make_app)
    runner._schedule()
    runner.scheduler.start()
    try:
        while any(service.cycles[k].cycles_total < 1 for k in ("icmp", "tcp")):
            await asyncio.sleep(0.05)
        time.sleep(4.5)  # the point: nothing on this loop runs meanwhile
        for _ in range(100):  # the scheduler wakes, sees the run times it missed
            await asyncio.sleep(0.05)
            if all(service.cycles[k].missed_total for k in ("icmp", "tcp")):
                break
    finally:
        runner.scheduler.shutdown(wait=False)
    for kind in ("icmp", "tcp"):
        c = service.cycles[kind]
        assert c.missed_total >= 1 and c.skipped_total >= c.missed_total, c


async def until(predicate: Any, seconds: float = 30) -> None:
    """Let the loop run until ``predicate()`` holds (a generous bound for a loaded machine)."""
    end = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < end, "condition not reached in time"
        await asyncio.sleep(0.02)


class Held(Quick):
    """A probe kind whose cycle, once ``hold`` is set, does not end until the test releases it."""

    def __init__(self, real: Any) -> None:
        super().__init__(real)
        self.hold = False
        self.release = asyncio.Event()
        self.waiting = False

    async def run(self, targets: Sequence[Target], settings: ProbeSettings, deadline: float) -> list[Observation]:
        if self.hold:
            self.waiting = True
            await self.release.wait()
            self.waiting = False
        return await super().run(targets, settings, deadline)


async def test_cycles_missed_while_a_cycle_was_in_flight_are_counted(tmp_path: Path) -> None:
    """The loop stands still while a cycle is under way: when the scheduler wakes, that job is still
    running, so APScheduler hands every run time it dropped in one max-instances event. Each is counted
    as skipped, and those late by more than the grace time as missed too (not one skip for all of them)."""
    probes = {"tcp": {"interval_seconds": 1, "timeout_seconds": 0.5, "jitter_seconds": 0}}
    path = write_config(tmp_path, [site("S1")], probes=probes)
    held = Held(TCP)
    service = Service(load_config(path), probes={"tcp": held})  # type: ignore[dict-item]
    runner = Runner(service, path, make_app=make_app)
    runner._schedule()
    runner.scheduler.start()
    try:
        await until(lambda: service.cycles["tcp"].cycles_total >= 1)
        held.hold = True
        await until(lambda: held.waiting)
        time.sleep(4.5)  # the loop stands still; the cycle in flight cannot end until it is released
        await until(lambda: service.cycles["tcp"].skipped_total >= 1)
        held.release.set()
    finally:
        runner.scheduler.shutdown(wait=False)
    c = service.cycles["tcp"]
    assert c.missed_total >= 2 and c.skipped_total >= c.missed_total + 1, c


# -- a pause records no fake history ----------------------------------------------------------------


class Acceptor:
    """TCP listeners on loopback that accept and close, in a thread."""

    def __init__(self, addresses: list[tuple[str, int]]) -> None:
        self.socks = []
        for addr in addresses:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(addr)
            s.listen(64)
            s.settimeout(0.2)
            self.socks.append(s)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            for s in self.socks:
                try:
                    conn, _ = s.accept()
                    conn.close()
                except OSError:
                    pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for s in self.socks:
            s.close()


def metric(text: str, name: str, kind: str) -> float:
    for line in text.splitlines():
        if line.startswith(f'{name}{{kind="{kind}"}} '):
            return float(line.split()[-1])
    raise AssertionError(f"{name}{{kind={kind}}} not in the scrape")


@pytest.mark.root
def test_a_pause_records_no_unknown_and_back(tmp_path: Path) -> None:
    """A real `readiness run` (ICMP and TCP to loopback, with a store) is stopped for five intervals and
    continued: the skip counters rise, and the store holds no site, link or terminal that went unknown
    and came back, since no verdict is taken before every kind has probed afresh."""
    require_root("ICMP echo on loopback")
    port = free_port()
    sites = [site(f"S{n}", n=n) for n in (1, 2, 3)]
    probes = {"icmp": {"interval_seconds": 1, "timeout_seconds": 0.5, "count": 1, "jitter_seconds": 0},
              "tcp": {"interval_seconds": 1, "timeout_seconds": 0.5, "jitter_seconds": 0}}
    path = write_config(tmp_path, sites, listen={"host": "127.0.0.1", "port": port}, probes=probes,
                        policy={"stale_after_intervals": 2})
    acceptor = Acceptor([(f"127.23.{n}.{k}", 18080) for n in (1, 2, 3) for k in (1, 2)])
    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", str(path), "--data-dir", str(data)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url + "/-/ready", "ready")
        time.sleep(2)  # a few steady cycles
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(5)  # five intervals; the data's stale limit is 2.5 s
        os.kill(proc.pid, signal.SIGCONT)
        before = fetch(url + "/metrics")
        cycles = {k: metric(before, "readiness_probe_cycles_total", k) for k in ("icmp", "tcp")}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # a few cycles of each kind after the pause
            text = fetch(url + "/metrics")
            if all(metric(text, "readiness_probe_cycles_total", k) >= cycles[k] + 3 for k in cycles):
                break
            time.sleep(0.2)
        else:
            raise AssertionError("probing did not go on after SIGCONT")
        wait_for(url + "/-/ready", "ready")
        for kind in ("icmp", "tcp"):
            assert metric(text, "readiness_probe_cycles_skipped_total", kind) >= 1, text
            assert metric(text, "readiness_probe_cycles_missed_total", kind) >= 1, text
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "Traceback" not in err, err
        assert "paused or starved" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        acceptor.close()
    store = EventStore(data)
    transitions = list(store.events(kinds=["transition"]))
    assert transitions, "the first verdicts are recorded"
    later = [(e.entity, e.old, e.new) for e in transitions if e.old is not None]
    assert later == [], f"state changes that never happened: {later[:10]}"
    assert all(e.new != "unknown" for e in transitions if not e.entity.startswith("site:")), transitions
    assert verify_store(data).ok


# -- a read-only data dir ---------------------------------------------------------------------------


def remount(mnt: Path, mode: str) -> None:
    subprocess.run([require_tool("mount"), "-o", f"remount,{mode}", str(mnt)], check=True)


@pytest.mark.root
def test_a_read_only_data_dir_at_start_up_probes_serves_and_catches_up(tmp_path: Path) -> None:
    """Start-up on a read-only mount: the service probes and serves anyway, says so loudly (log,
    readiness_store_ok 0, /-/ready 503 "store not writable"); once the mount is writable the history
    queued meanwhile is written, chained and verifiable. The same as when the disk turns read-only later."""
    port = free_port()
    path = write_config(tmp_path, [site("S1")], listen={"host": "127.0.0.1", "port": port},
                        probes={"tcp": {"interval_seconds": 1, "timeout_seconds": 0.5}, "icmp": {"enabled": False}})
    url = f"http://127.0.0.1:{port}"
    with tmpfs(tmp_path / "mnt", "4m") as mnt:
        remount(mnt, "ro")
        proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", str(path), "--data-dir", str(mnt / "data")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            text = wait_for(url + "/metrics", "readiness_probe_cycles_total{kind=\"tcp\"} 2")
            assert "readiness_store_ok 0.0" in text and "readiness_monitor_ready 0.0" in text
            try:
                fetch(url + "/-/ready")
                raise AssertionError("/-/ready must fail while nothing can be recorded")
            except urllib.error.HTTPError as exc:
                assert exc.code == 503
                assert "store not writable" in exc.read().decode()
            remount(mnt, "rw")
            wait_for(url + "/metrics", "readiness_store_ok 1.0")
            wait_for(url + "/-/ready", "ready")
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, err
        assert "NOT RECORDING" in err and "Read-only file system" in err and "Traceback" not in err, err
        assert verify_store(mnt / "data").ok
        rows = list(EventStore(mnt / "data").events())
        assert rows[0].kind == "marker" and rows[0].new == "opened"
        assert {e.entity for e in rows if e.kind == "transition"} >= {"site:S1", "target:S1/terminal/T1"}


@pytest.mark.root
async def test_a_read_only_store_resumes_its_states_and_writes_once_it_can(tmp_path: Path) -> None:
    """An existing store on a read-only mount: states resume from it (no spurious "first seen"), the
    snapshot says why it cannot write, and the chain goes on from its head once the mount is writable."""
    path = write_config(tmp_path, [site("S1")], probes=PROBES)
    with tmpfs(tmp_path / "mnt", "4m") as mnt:
        filled_store(mnt / "data", 3)
        remount(mnt, "ro")
        service = quick_service(path)
        store = attach_store(service, str(mnt / "data"))
        try:
            assert not store.status.ok and "Read-only file system" in store.status.error
            snap = await service.run_once()
            assert any(p.startswith("store not writable: ") for p in snap.problems(time.time()))
            remount(mnt, "rw")
            for _ in range(200):
                if store.status.ok and not store.status.queued:
                    break
                await asyncio.sleep(0.05)
            assert store.status.ok, store.status
            assert service.evaluate().problems(time.time()) == ()
        finally:
            store.close()
        assert verify_store(mnt / "data").ok
        rows = list(EventStore(mnt / "data").events())
        assert [r.seq for r in rows] == list(range(1, len(rows) + 1)) and len(rows) > 5
        assert rows[5].new == "opened"  # after the 3 transitions and the markers of the first run


async def test_stopping_during_a_cycle_logs_no_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The service is stopped while a cycle is under way: the scheduler's shutdown cancels that job, which is
    shutdown, not a failure — no ERROR, no traceback, no readiness_task_failures_total."""
    import logging

    from monitor.runtime.tasks import failures

    probes = {"tcp": {"interval_seconds": 1, "timeout_seconds": 0.5, "jitter_seconds": 0}}
    path = write_config(tmp_path, [site("S1")], probes=probes)
    held = Held(TCP)
    service = Service(load_config(path), probes={"tcp": held})  # type: ignore[dict-item]
    runner = Runner(service, path, make_app=make_app)
    before = dict(failures())
    caplog.set_level(logging.INFO)
    run = asyncio.create_task(runner.run("127.0.0.1", free_port()))
    await until(lambda: service.cycles["tcp"].cycles_total >= 1)
    held.hold = True
    await until(lambda: held.waiting)
    runner.stop()
    await asyncio.wait_for(run, 30)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    assert dict(failures()) == before
