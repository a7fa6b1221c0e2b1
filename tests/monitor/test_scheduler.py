"""The scheduler: never stacks cycles, reloads on SIGHUP, shuts down cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import yaml

from monitor.config.loader import load_config
from monitor.runtime.scheduler import Runner
from monitor.runtime.service import Service
from monitor.web.app import make_app
from probes.base import Observation, ProbeSettings, Target
from probes.tcp import PROBE as TCP
from tests.helpers import free_port
from tests.monitor.fixtures import site, write_config


class SlowTcp:
    """The TCP probe kind, slowed down: every cycle takes longer than the interval."""

    kind = "tcp"
    settings_model = TCP.settings_model
    warm = staticmethod(TCP.warm)
    requests_sent = staticmethod(TCP.requests_sent)
    dropped = staticmethod(TCP.dropped)
    running = 0
    most = 0

    async def run(self, targets: Sequence[Target], settings: ProbeSettings, deadline: float) -> list[Observation]:
        SlowTcp.running += 1
        SlowTcp.most = max(SlowTcp.most, SlowTcp.running)
        await asyncio.sleep(2.5)
        SlowTcp.running -= 1
        return []

    async def close(self) -> None:
        pass


async def test_overrunning_cycle_is_skipped_and_counted(tmp_path: Path) -> None:
    """A cycle still running when the next is due: the next is skipped and counted, never stacked."""
    path = write_config(tmp_path, [site("S1")],
                        probes={"tcp": {"interval_seconds": 1, "timeout_seconds": 0.5, "jitter_seconds": 0}})
    service = Service(load_config(path), probes={"tcp": SlowTcp()})  # type: ignore[dict-item]
    runner = Runner(service, path, make_app=make_app)
    runner._schedule()
    runner.scheduler.start()
    await asyncio.sleep(4.5)
    runner.scheduler.shutdown(wait=False)
    assert SlowTcp.most == 1
    assert service.cycles["tcp"].skipped_total >= 1


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return str(r.read().decode())


def wait_for(url: str, what: str, seconds: float = 20) -> str:
    end = time.monotonic() + seconds
    text = ""
    while time.monotonic() < end:
        try:
            text = fetch(url)
            if what in text:
                return text
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{what!r} not in {url} after {seconds}s: {text[:500]}")


def test_sighup_reloads_and_sigterm_stops(tmp_path: Path) -> None:
    """A real `readiness run`: SIGHUP with a new site reloads it, a bad file is rejected, SIGTERM exits 0."""
    port = free_port()
    path = write_config(tmp_path, [site("S1")], listen={"host": "127.0.0.1", "port": port},
                        probes={"tcp": {"interval_seconds": 2, "timeout_seconds": 1}, "icmp": {"enabled": False}})
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(url + "/-/ready", "ready")
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        doc["sites"].append(site("S2", n=2))
        path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        os.kill(proc.pid, signal.SIGHUP)
        wait_for(url + "/metrics", 'site="S2"')
        path.write_text("programme: [unclosed", encoding="utf-8")
        os.kill(proc.pid, signal.SIGHUP)
        text = wait_for(url + "/metrics", "readiness_config_last_reload_success 0.0")
        assert 'site="S2"' in text, "the old config must keep running"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        assert "reload rejected" in err and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _report_config(tmp_path: Path, reports: list[dict[str, object]]) -> Path:
    return write_config(tmp_path, [site("S1")], programme={"name": "t", "deadline": "2026-12-31T23:59:59+03:30",
                                                           "timezone": "Asia/Tehran"},
                        probes={"tcp": {"interval_seconds": 60}}, reports=reports)


def _report_jobs(runner: Runner) -> dict[str, tuple[str, str]]:
    """Report job id -> (its cron fields as APScheduler prints them, its timezone)."""
    return {j.id: (str(j.trigger), str(j.trigger.timezone)) for j in runner.scheduler.get_jobs()
            if j.id.startswith("report:")}


async def test_reload_replaces_the_report_jobs_all_or_nothing(tmp_path: Path) -> None:
    """A reload that changes `reports:` reschedules them (changed, added, removed) beside the probe jobs; a reload
    whose report jobs cannot be built keeps every old job, probes and reports alike, and the old config."""
    from monitor.cli.reports import report_jobs
    from monitor.store.events import EventStore

    path = _report_config(tmp_path, [{"name": "weekly", "schedule": "0 8 * * sat"}])
    service = Service(load_config(path))
    built = report_jobs(str(tmp_path / "data"), EventStore(tmp_path / "data"))  # the store is used only by a run

    def jobs(config):  # type: ignore[no-untyped-def]
        if any(r.name == "boom" for r in config.reports):  # a job the runner cannot build: all or nothing
            raise ValueError("report boom cannot be scheduled")
        return built(config)

    runner = Runner(service, path, make_app=make_app, config_jobs=jobs)
    runner._schedule()
    runner.scheduler.start()
    try:
        assert _report_jobs(runner) == {"report:weekly": ("cron[month='*', day='*', day_of_week='sat', hour='8', "
                                                          "minute='0']", "Asia/Tehran")}
        assert runner.scheduler.get_job("probe:tcp") is not None

        _report_config(tmp_path, [{"name": "weekly", "schedule": "30 9 * * sun"},
                                  {"name": "daily", "schedule": "0 7 * * *"}])
        ok, msg = await runner.reload()
        assert ok, msg
        assert "report:daily next " in msg and "T07:00+03:30" in msg and "report:weekly next " in msg
        assert _report_jobs(runner) == {
            "report:weekly": ("cron[month='*', day='*', day_of_week='sun', hour='9', minute='30']", "Asia/Tehran"),
            "report:daily": ("cron[month='*', day='*', day_of_week='*', hour='7', minute='0']", "Asia/Tehran")}
        weekly = runner.scheduler.get_job("report:weekly").next_run_time
        assert (weekly.weekday(), weekly.hour, weekly.minute) == (6, 9, 30)  # Sunday 09:30 in Tehran

        before = _report_jobs(runner)
        version = service.config.version
        _report_config(tmp_path, [{"name": "weekly", "schedule": "0 8 * * sat"},
                                  {"name": "boom", "schedule": "* * * * *"}])
        ok, msg = await runner.reload()
        assert not ok and "report boom cannot be scheduled" in msg
        assert _report_jobs(runner) == before and service.config.version == version
        assert runner.scheduler.get_job("probe:tcp") is not None

        _report_config(tmp_path, [])
        ok, msg = await runner.reload()
        assert ok, msg
        assert _report_jobs(runner) == {} and runner.scheduler.get_job("probe:tcp") is not None
    finally:
        runner.scheduler.shutdown(wait=False)
        await service.close()
