"""Causes are visible: every failed observation's failure word reaches the API, a bounded counter and the
log (one line per kind and word per while, with a count)."""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Sequence
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.config.loader import load_config
from monitor.runtime import service as service_module
from monitor.runtime.service import Service
from monitor.web.api import sites_json
from monitor.web.exposition import render
from monitor.web.metrics import SnapshotCollector
from probes.base import FAILURES, NOTHING_DROPPED, Dropped, Observation, ProbeSettings, Target
from probes.tcp import PROBE as TCP
from probes.tcp import _failure
from tests.monitor.fixtures import obs, site, write_config


def failure_counts(snap: object) -> dict[tuple[str, str], float]:
    text = render(SnapshotCollector(lambda: snap).collect()).decode()  # type: ignore[arg-type,return-value]
    return {(s.labels["kind"], s.labels["failure"]): s.value for fam in text_string_to_metric_families(text)
            for s in fam.samples if s.name == "readiness_target_failures_total"}


async def test_a_refused_terminal_reaches_the_api_metrics_and_log(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """A real listener and a closed port: the closed one says ``refused`` everywhere."""
    server = await asyncio.start_server(lambda r, w: w.close(), "127.23.47.1", 18080)  # T1 answers, T2 refuses
    try:
        path = write_config(tmp_path, [site("S1", n=47)], probes={"tcp": {"interval_seconds": 5}})
        service = Service(load_config(path), probes={"tcp": TCP})
        with caplog.at_level(logging.WARNING, logger="monitor.runtime.service"):
            snap = await service.run_once()
    finally:
        server.close()
    doc = sites_json(snap)
    terminals = {t["id"]: t for t in doc["sites"][0]["terminals"]}
    assert terminals["T1"]["state"] == "up" and terminals["T1"]["failure"] is None
    assert terminals["T2"]["state"] == "down" and terminals["T2"]["failure"] == "refused"
    counts = failure_counts(snap)
    assert counts[("tcp", "refused")] == 1.0 and counts[("tcp", "timeout")] == 0.0
    assert {f for k, f in counts if k == "tcp"} == set(FAILURES)  # bounded: every word, no other
    lines = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(lines) == 1 and "S1/terminal/T2" in lines[0] and "1 failed" in lines[0]


def test_a_link_carries_its_failure_word(tmp_path: Path) -> None:
    service = Service(load_config(write_config(tmp_path, [site("S1")])), clock=lambda: 1000.0)
    service.latest.update({"S1/primary": obs("S1/primary", ok=False),
                           "S1/backup": Observation("S1/backup", "icmp", False, 1000.0, {}, "unreachable",
                                                    "0/3 replies, host unreachable")})
    doc = sites_json(service.evaluate(force=True))
    links = {x["role"]: x for x in doc["sites"][0]["links"]}
    assert links["primary"]["failure"] == "timeout" and links["backup"]["failure"] == "unreachable"


class Failing:
    """A probe whose every target times out."""

    kind = "tcp"
    settings_model: type[ProbeSettings] = ProbeSettings

    async def warm(self) -> None: ...
    async def close(self) -> None: ...

    async def run(self, targets: Sequence[Target], settings: ProbeSettings, deadline: float) -> list[Observation]:
        return [Observation.failed(t, "tcp", "timeout", "no answer within 3s") for t in targets]

    def requests_sent(self, observations: Sequence[Observation]) -> int:
        return len(observations)

    def dropped(self) -> Dropped:
        return NOTHING_DROPPED


async def test_failures_are_logged_once_per_word_per_while(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = [100.0]
    service = Service(load_config(write_config(tmp_path, [site("S1", terminals=3)])),
                      probes={"tcp": Failing()}, monotonic=lambda: clock[0])  # type: ignore[dict-item]
    with caplog.at_level(logging.WARNING, logger="monitor.runtime.service"):
        for _ in range(4):  # four cycles within the minute: one line
            await service.probe_cycle("tcp", then_evaluate=False)
            clock[0] += 10
        clock[0] += service_module.FAILURE_LOG_EVERY_SECONDS
        await service.probe_cycle("tcp", then_evaluate=False)  # the next line counts what came meanwhile
    lines = [r.getMessage() for r in caplog.records if "timeout" in r.getMessage()]
    assert len(lines) == 2, lines
    assert "3 failed timeout" in lines[0] and "12 failed timeout" in lines[1]
    assert service.cycles["tcp"].failures_total == {"timeout": 15}


def test_tcp_tells_our_own_failures_apart() -> None:
    assert _failure(OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"))[0] == "bind_failed"
    assert _failure(OSError(errno.EMFILE, "Too many open files"))[0] == "local_error"
    assert _failure(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"))[0] == "refused"
    assert {"bind_failed", "local_error"} <= set(FAILURES)
