"""The service's own faults are loud: no background task or thread dies silently, shutdown is quiet,
and the evaluation thread never reads what the event loop is still writing."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from monitor.config.loader import load_config
from monitor.runtime import service as service_module
from monitor.runtime import tasks
from monitor.runtime.service import Service
from tests.monitor.fixtures import obs, site, write_config

ROOT = Path(__file__).resolve().parents[2]


async def test_a_task_that_dies_is_logged_with_its_traceback_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    async def mover() -> None:
        raise RuntimeError("nft: table readiness_demo: No such file or directory")

    before = tasks.failures()["demo_faults"]
    with caplog.at_level(logging.ERROR):
        task = tasks.spawn(mover(), "demo_faults")
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)  # done callbacks run on the next turn of the loop
    assert tasks.failures()["demo_faults"] == before + 1
    record = next(r for r in caplog.records if "demo_faults" in r.getMessage())
    assert record.exc_info is not None and "nft: table" in record.getMessage()


async def test_a_cancelled_task_is_no_failure() -> None:
    before = tasks.failures()
    task = tasks.spawn(asyncio.sleep(10), "reload")
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0)
    assert tasks.failures() == before


def test_a_thread_that_dies_is_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    tasks.install_thread_hook()

    def boom() -> None:
        raise OSError(9, "Bad file descriptor")

    before = tasks.failures()["store_writer"]
    with caplog.at_level(logging.ERROR):
        t = threading.Thread(target=boom, name="event-store-writer")
        t.start()
        t.join()
    assert tasks.failures()["store_writer"] == before + 1
    assert any(r.exc_info and "event-store-writer" in r.getMessage() for r in caplog.records)


def test_no_unsupervised_tasks_in_monitor() -> None:
    """Every task the service starts goes through monitor.runtime.tasks (spawn or supervise)."""
    bare = re.compile(r"asyncio\.(create_task|ensure_future)\(|loop\.create_task\(|threading\.Thread\(")
    allowed = {ROOT / "monitor" / "runtime" / "tasks.py", ROOT / "monitor" / "store" / "events.py"}  # hooked
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in sorted((ROOT / "monitor").rglob("*.py")) if p not in allowed
                 for n, line in enumerate(p.read_text().splitlines(), 1) if bare.search(line)]
    assert offenders == []


def test_the_evaluation_thread_gets_copies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the loop writes while the thread evaluates never reaches that evaluation."""
    service = Service(load_config(write_config(tmp_path, [site("S1")])), clock=lambda: 1000.0)
    for k in service.cycles:
        service.cycles[k] = service.cycles[k].__class__(k, 60.0, cycles_total=1)
    seen: dict[str, object] = {}
    real = service_module.evaluate

    def spy(sites, policy, latest, now, fresh, previous, flaps, *memory):  # type: ignore[no-untyped-def]
        before = set(latest)
        service.latest["S1/backup"] = obs("S1/backup")  # the loop writing during the evaluation
        seen["changed"] = set(latest) != before
        return real(sites, policy, latest, now, fresh, previous, flaps, *memory)

    monkeypatch.setattr(service_module, "evaluate", spy)
    service.latest["S1/primary"] = obs("S1/primary")

    async def go() -> None:
        await service.evaluate_soon()

    asyncio.run(go())
    assert seen == {"changed": False}


def test_shutdown_mid_cycle_logs_no_traceback(tmp_path: Path) -> None:
    """SIGTERM while an SNMP cycle waits on a dead agent: the service stops with no traceback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # a port nobody answers on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    s1 = site("S1", snmp=True)
    s1["links"][0]["snmp"]["port"] = dead
    path = write_config(tmp_path, [s1, site("S2", n=2)], probes={
        "icmp": {"interval_seconds": 2, "timeout_seconds": 0.5, "count": 2, "spacing_seconds": 0.1,
                 "jitter_seconds": 0},
        "tcp": {"interval_seconds": 2, "timeout_seconds": 0.5, "jitter_seconds": 0},
        "snmp": {"interval_seconds": 30, "jitter_seconds": 0}})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", str(path), "--listen-port", "0", "--no-store"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stderr is not None
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if "serving" in line or not line:
                break
        assert "serving" in lines[-1], "".join(lines)
        time.sleep(1.5)  # the SNMP cycle (started 0.2 s after serving) waits for a dead agent for seconds
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(lines) + err
    assert proc.returncode == 0, text
    assert "shutting down" in text
    for bad in ("Traceback", "CancelledError", "Bad file descriptor", "EBADF"):
        assert bad not in text, text
