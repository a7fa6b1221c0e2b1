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
