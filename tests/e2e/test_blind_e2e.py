"""End to end: a real `readiness run`, Prometheus and Alertmanager, and a monitor whose own uplink goes down.

Two network namespaces (tests/lab.py `alert_lab`): "mon" holds the monitor, Prometheus, Alertmanager and the
webhook sink (all on 127.0.0.1 there) and one uplink veth, its only way out (default route via the gateway);
"site" holds the gateway 10.77.0.2 at the far end of that veth (the monitor's witness) and every site address
(10.78.0.0/16, local as a whole on its loopback). Setting the uplink down makes every probe fail in the
monitor's own stack: the monitor is blind, and must say so once (MonitorBlind) instead of paging for every site.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.store.chain import connect_readonly
from tests.helpers import require_root, require_tool
from tests.lab import MONITOR_PORT, AlertStack, Namespace, alert_lab, alerts_of, sh, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]

FOR_SCALE = 0.02  # MonitorBlind: for 1.2s, keep_firing_for 1.2s; SiteIsolated 2.4s, PrimaryLinkDown 6s
GATEWAY = "10.77.0.2"
SITES = [f"S{i}" for i in range(1, 7)]
SITE_ALERTS = {"SiteIsolated", "PrimaryLinkDown", "BackupLinkDown", "TerminalsUnreachable"}


def wire(mon: Namespace, site: Namespace) -> None:
    """The monitor's uplink ("uplink" in mon, "gw" in site) and a default route through it."""
    sh("ip", "-n", mon.name, "link", "add", "uplink", "type", "veth", "peer", "name", "gw", "netns", site.name)
    mon.ip("addr add 10.77.0.1/24 dev uplink", "link set dev uplink up")
    site.ip(f"addr add {GATEWAY}/24 dev gw", "link set dev gw up", "addr add 10.78.0.1/16 dev lo")
    sh("ip", "-n", mon.name, "route", "add", "default", "via", GATEWAY)


def readiness_config(tmp: Path) -> Path:
    """Six sites, each with a primary, a backup and two (ICMP) terminals, all behind the uplink; the gateway is
    the witness."""
    sites = [{
        "id": s, "name": f"مدرسه {s}", "county": "Ilam", "area": "urban" if i % 2 else "rural",
        "links": [{"role": "primary", "medium": "fiber", "address": f"10.78.1.{i}"},
                  {"role": "backup", "medium": "lte", "address": f"10.78.2.{i}"}],
        "terminals": [{"id": f"T{k}", "address": f"10.78.{2 + k}.{i}"} for k in (1, 2)],
    } for i, s in enumerate(SITES, 1)]
    doc = {
        "programme": {"name": "e2e-blind", "deadline": "2035-12-31T23:59:59+03:30"},
        "listen": {"host": "127.0.0.1", "port": MONITOR_PORT},
        "data_dir": str(tmp / "data"),
        "probes": {"icmp": {"interval_seconds": 2, "count": 1, "timeout_seconds": 0.5, "jitter_seconds": 0},
                   "tcp": {"interval_seconds": 2, "timeout_seconds": 0.5, "jitter_seconds": 0}},
        "policy": {"require_backup": True, "sustain_seconds": 0},
        "witnesses": [{"address": GATEWAY, "name": "gateway"}],
        "sites": sites,
    }
    path = tmp / "readiness.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[AlertStack]:
    require_root("the blind-monitor end-to-end test (network namespaces)")
    for tool in ("ip", "prometheus", "prometheus-alertmanager", "promtool"):
        require_tool(tool)
    with alert_lab(tmp_path, "rdy-blind", wire) as s:
        yield s


def transitions(data_dir: Path) -> list[tuple[int, str, str | None, str]]:
    """(seq, entity, old, new) of every transition the running monitor has stored (read-only, WAL)."""
    conn = connect_readonly(data_dir)
    try:
        rows = conn.execute("SELECT seq, entity, old, new FROM events WHERE kind = 'transition' ORDER BY seq")
        return [(int(r[0]), str(r[1]), r[2], str(r[3])) for r in rows]
    finally:
        conn.close()


@pytest.mark.timeout(150)
def test_blind_monitor_pages_once_and_no_site(stack: AlertStack) -> None:
    """The monitor's own uplink goes down: one MonitorBlind page (to the monitoring on-call), no site or link
    alert notified, one monitor event in the store; the uplink comes back: MonitorBlind resolves."""
    started = time.monotonic()
    data = stack.tmp / "data"
    rules = stack.rules(FOR_SCALE)

    def site_pages() -> list[tuple[str, str, str, str]]:
        return [(receiver, *a) for receiver, payload, _ in stack.sink.received() for a in alerts_of(payload)
                if a[0] in SITE_ALERTS]

    def evidence() -> str:
        try:
            firing = sorted((a["labels"]["alertname"], a["labels"].get("site", ""), a["state"])
                            for a in stack.prometheus_alerts())
            sites = {s["id"]: (s["state"], s["reasons"]) for s in stack.get(MONITOR_PORT, "/api/v1/sites")["sites"]}
        except Exception as exc:  # the evidence must not hide the failure
            firing, sites = [], {"error": (repr(exc), [])}
        received = [(r, p["status"], alerts_of(p)) for r, p, _ in stack.sink.received()]
        return f"prometheus alerts: {firing}\nsites: {sites}\nsink: {received}\n{stack.logs()}"

    # 1. Healthy: every site ready in Prometheus, the monitor not blind, nothing pending; then Alertmanager.
    stack.start_monitor(readiness_config(stack.tmp))
    stack.start_prometheus(rules)

    def settled() -> bool:
        stack.alive()
        ready = {r["metric"]["site"] for r in stack.query('readiness_site_state{state="ready"} == 1')}
        blind = [float(r["value"][1]) for r in stack.query("readiness_monitor_blind")]
        return ready == set(SITES) and blind == [0.0] and not stack.prometheus_alerts()

    wait_for("every site ready in Prometheus, the monitor seeing, no alert pending", settled, 40,
             on_timeout=evidence)
    stack.start_alertmanager()
    time.sleep(2.5)  # two group intervals: a notification that should not exist has time to arrive
    assert stack.sink.received() == [], evidence()
    before = transitions(data)
    last_seq = before[-1][0] if before else 0

    # 2. The monitor's own uplink down, between two ICMP cycles.
    stack.between_cycles("icmp")
    stack.mon.ip("link set dev uplink down")

    def paged() -> list[tuple[str, dict[str, Any], float]]:
        return stack.notified("MonitorBlind", "", "firing")

    wait_for("the MonitorBlind notification", paged, 30, on_timeout=evidence)
    # Hold the blind period for a while: long enough for SiteIsolated (2.4s) and PrimaryLinkDown (6s) to fire
    # had the monitor blamed the sites.
    time.sleep(8)
    sites = stack.get(MONITOR_PORT, "/api/v1/sites")["sites"]
    assert {(s["state"], tuple(s["reasons"])) for s in sites} == {("unknown", ("monitor.blind",))}, evidence()
    assert [float(r["value"][1]) for r in stack.query("readiness_monitor_blind")] == [1.0], evidence()
    (page,) = paged()
    receiver, payload, _ = page
    assert (receiver, payload["status"], alerts_of(payload)) == (
        "monitoring-oncall", "firing", [("MonitorBlind", "", "firing")]), evidence()
    alert = payload["alerts"][0]
    assert alert["labels"]["severity"] == "critical" and alert["labels"]["instance"], alert
    assert alert["annotations"]["runbook_url"] == "docs/runbook.md#monitorblind"
    assert site_pages() == [], evidence()
    assert len(stack.sink.received()) == 1, evidence()

    def stored() -> list[tuple[int, str, str | None, str]]:
        return [t for t in transitions(data) if t[0] > last_seq]

    during = wait_for("the monitor event in the store", stored, 10, on_timeout=evidence)
    assert [t[1:] for t in during] == [("monitor", "seeing", "blind")], during

    # 3. The uplink back (setting it down took the default route with it): MonitorBlind resolves.
    stack.mon.ip("link set dev uplink up")
    sh("ip", "-n", stack.mon.name, "route", "replace", "default", "via", GATEWAY)

    def resolved() -> list[tuple[str, dict[str, Any], float]]:
        return stack.notified("MonitorBlind", "", "resolved")

    wait_for("the resolved MonitorBlind notification", resolved, 40, on_timeout=evidence)

    def seeing_and_ready() -> bool:
        ready = {r["metric"]["site"] for r in stack.query('readiness_site_state{state="ready"} == 1')}
        return ready == set(SITES)

    wait_for("every site ready again in Prometheus", seeing_and_ready, 30, on_timeout=evidence)
    time.sleep(2.5)  # nothing else may follow (a site alert set free once MonitorBlind no longer inhibits it)

    # 4. Two notifications in all, both to the monitoring on-call; the store: blind, then seeing, no site
    # ever not_ready.
    summary = [(r, p["status"], alerts_of(p)) for r, p, _ in stack.sink.received()]
    assert summary == [
        ("monitoring-oncall", "firing", [("MonitorBlind", "", "firing")]),
        ("monitoring-oncall", "resolved", [("MonitorBlind", "", "resolved")]),
    ], evidence()
    after = stored()
    assert [t[1:] for t in after if t[1] == "monitor"] == [("monitor", "seeing", "blind"),
                                                          ("monitor", "blind", "seeing")], after
    assert [t for t in after if t[1].startswith("site:") and t[3] == "not_ready"] == [], after
    took = time.monotonic() - started
    print(f"blind scenario {took:.1f}s")
    assert took < 120
