"""The committed Alertmanager config's inhibitions and routes, in a real Alertmanager fed synthetic alerts.

No namespaces: Alertmanager and the webhook sink listen on free ports of 127.0.0.1. The alerts carry the
labels the generated rules give them; the sink records which receiver got which alert.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port, require_tool
from tests.lab import WebhookSink, alertmanager_config, http, stop, tail, wait_for


def alert(name: str, severity: str, **labels: str) -> dict[str, Any]:
    return {"labels": {"alertname": name, "severity": severity, "job": "readiness", **labels},
            "annotations": {"summary": f"{name} {labels.get('site', '')}"}}


# (alert, receiver it must reach, or None: held back, with the alert that holds it back)
SCENARIO: list[tuple[dict[str, Any], str | None, str]] = [
    # A node is isolated: it pages; UpstreamDown (the node in `upstream`) holds back the sites behind it.
    (alert("SiteIsolated", "critical", site="AGG-ILM", county="Ilam", area="urban", instance="m1"), "ilam-oncall", ""),
    (alert("UpstreamDown", "info", site="AGG-ILM", upstream="AGG-ILM", county="Ilam", area="urban", instance="m1"),
     "province-digest", ""),
    (alert("PrimaryLinkDown", "warning", site="S5", upstream="AGG-ILM", county="Ilam", area="rural", role="primary",
           instance="m2"), None, "UpstreamDown"),
    (alert("SiteIsolated", "critical", site="S6", upstream="AGG-ILM", county="Ilam", area="rural", instance="m1"),
     None, "UpstreamDown"),
    # Behind another node, which is fine: not held back.
    (alert("PrimaryLinkDown", "warning", site="S7", upstream="AGG-MEH", county="Mehran", area="urban",
           role="primary", instance="m1"), "mehran-noc", ""),
    # An isolated site: its link and terminal alerts are held back; another site's are not.
    (alert("SiteIsolated", "critical", site="S8", county="Mehran", area="rural", instance="m1"), "mehran-oncall", ""),
    (alert("BackupLinkDown", "warning", site="S8", county="Mehran", area="rural", role="backup", instance="m1"),
     None, "SiteIsolated"),
    (alert("TerminalsUnreachable", "warning", site="S8", county="Mehran", area="rural", instance="m1"),
     None, "SiteIsolated"),
    (alert("ReadinessRegressed", "warning", site="S8", county="Mehran", area="rural", instance="m1"),
     None, "SiteIsolated"),
    (alert("LinkLossHigh", "warning", site="S9", county="Mehran", area="rural", role="backup", instance="m1"),
     "mehran-noc", ""),
    # A monitor that is not scraped: what it reported is held back.
    (alert("MonitorDown", "critical", instance="m3"), "monitoring-oncall", ""),
    (alert("BackupLinkDown", "warning", site="S10", county="Abdanan", area="rural", role="backup", instance="m3"),
     None, "MonitorDown"),
    # A monitor whose probes stopped: its site alerts are held back.
    (alert("ProbeDataStale", "critical", instance="m4", kind="icmp"), "monitoring-oncall", ""),
    (alert("SiteIsolated", "critical", site="S11", county="Abdanan", area="urban", instance="m4"),
     None, "ProbeDataStale"),
    # A blind monitor: one page to the monitoring team; the site and link alerts it still exports are held back.
    (alert("MonitorBlind", "critical", instance="m5"), "monitoring-oncall", ""),
    (alert("SiteIsolated", "critical", site="S12", county="Ilam", area="urban", instance="m5"), None, "MonitorBlind"),
    (alert("PrimaryLinkDown", "warning", site="S13", county="Ilam", area="urban", role="primary", instance="m5"),
     None, "MonitorBlind"),
    (alert("UpstreamDown", "info", site="AGG-M5", upstream="AGG-M5", county="Ilam", area="urban", instance="m5"),
     None, "MonitorBlind"),
]


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[tuple[str, WebhookSink]]:
    """A real Alertmanager on the committed config, webhooks pointed at an in-process sink."""
    binary = require_tool("prometheus-alertmanager")
    sink = WebhookSink()
    sink.start("127.0.0.1", free_port())
    assert sink.server is not None
    sink_port = sink.server.server_address[1]
    config = alertmanager_config(tmp_path, sink_port)
    port = free_port()
    log = tmp_path / "alertmanager.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([binary, f"--config.file={config}", f"--storage.path={tmp_path / 'am'}",
                                 f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
                                 "--log.level=warn"], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("Alertmanager ready", lambda: http(f"{url}/-/ready"), 20, on_timeout=lambda: tail(log))
        yield url, sink
    finally:
        stop(proc)
        sink.close()


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_inhibitions_and_routes(alertmanager: tuple[str, WebhookSink]) -> None:
    """SiteIsolated, UpstreamDown, MonitorDown, ProbeDataStale and MonitorBlind hold back exactly the alerts
    they should;
    everything else reaches the receiver its severity and county choose, once."""
    url, sink = alertmanager
    http(f"{url}/api/v2/alerts", [a for a, _, _ in SCENARIO])

    def key(labels: dict[str, str]) -> tuple[str, str, str]:
        return labels["alertname"], labels.get("site", ""), labels.get("instance", "")

    wanted = {key(a["labels"]): (receiver, by) for a, receiver, by in SCENARIO}
    status = {key(a["labels"]): a for a in http(f"{url}/api/v2/alerts")}
    assert set(status) == set(wanted)
    names_by_fingerprint = {a["fingerprint"]: a["labels"]["alertname"] for a in status.values()}
    for k, (receiver, by) in wanted.items():
        st = status[k]["status"]
        if receiver is None:
            assert st["state"] == "suppressed", (k, st)
            assert [names_by_fingerprint[f] for f in st["inhibitedBy"]] == [by], (k, st)
        else:
            assert st["state"] == "active", (k, st)

    expected = {(receiver, k) for k, (receiver, _) in wanted.items() if receiver is not None}

    def delivered() -> set[tuple[str, tuple[str, str, str]]]:
        return {(receiver, key(a["labels"])) for receiver, payload, _ in sink.received() for a in payload["alerts"]}

    wait_for("every active alert delivered", lambda: delivered() >= expected, 20,
             on_timeout=lambda: repr(sorted(delivered())))
    time.sleep(2.5)  # two group intervals: a held-back alert that leaks would arrive by now
    assert delivered() == expected
    counts: dict[tuple[str, tuple[str, str, str]], int] = {}
    for receiver, payload, _ in sink.received():
        for a in payload["alerts"]:
            counts[(receiver, key(a["labels"]))] = counts.get((receiver, key(a["labels"])), 0) + 1
    assert set(counts.values()) == {1}, counts
