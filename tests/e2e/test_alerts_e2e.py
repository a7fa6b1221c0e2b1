"""End to end: a real `readiness run`, Prometheus and Alertmanager, and a site whose two links go down; a site
whose fiber switch (snmpsim, optics encoded as real switches do) reports weak light.

Two network namespaces: "mon" holds the monitor, Prometheus, Alertmanager, the webhook sink and, where a
test needs it, snmpsim (all on 127.0.0.1 there), "site" holds the far ends of the veth pairs that stand for
the links of S1 and S2 (10.231.0.0/16, which exists only inside the lab). Prometheus uses the committed
example config and the generated rules with every `for:` scaled by 0.02; Alertmanager uses the committed
example with its webhooks pointed at the sink and its group timers cut to a second.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.demo.snmpsim import DeviceSpec, Port, interface_device, start_snmpsim, write_device
from tests.helpers import require_root, require_tool
from tests.lab import MONITOR_PORT, AlertStack, Namespace, alert_lab, alerts_of, sh, wait_for

FOR_SCALE = 0.02  # SiteIsolated 2.4s, PrimaryLinkDown 6s, BackupLinkDown 12s, ReadinessRegressed/OpticalPowerLow 18s
# Site -> (link role, monitor end, site end, /30 prefix)
LINKS = {
    "S1": [("primary", "s1p", "10.231.1"), ("backup", "s1b", "10.231.2")],
    "S2": [("primary", "s2p", "10.231.3"), ("backup", "s2b", "10.231.4")],
}


def readiness_config(tmp: Path, snmp_port: int | None = None) -> Path:
    """The lab's two sites; with ``snmp_port``, S1's primary fiber is port Gi0/1 of switch "s1-switch" there."""
    sites = []
    for n, (site_id, links) in enumerate(LINKS.items()):
        sites.append({
            "id": site_id, "name": ["دبستان فردوسی", "مدرسه حافظ"][n], "county": "Ilam",
            "area": ["urban", "rural"][n],
            "links": [{"role": role, "medium": "fiber" if role == "primary" else "lte", "address": f"{net}.2"}
                      for role, _, net in links],
        })
    if snmp_port:
        sites[0]["links"][0]["snmp"] = {"device": "127.0.0.1", "port": snmp_port, "auth": "s1-switch",
                                        "if_name": "Gi0/1"}
    doc = {
        "programme": {"name": "e2e", "deadline": "2035-12-31T23:59:59+03:30"},
        "listen": {"host": "127.0.0.1", "port": MONITOR_PORT},
        "data_dir": str(tmp / "data"),
        # One echo per link per cycle: a cycle that straddles a link change sees it down or up, never lossy.
        "probes": {"icmp": {"interval_seconds": 2, "count": 1, "timeout_seconds": 0.5, "jitter_seconds": 0},
                   "tcp": {"interval_seconds": 2, "timeout_seconds": 0.5, "jitter_seconds": 0}},
        # Ready as soon as healthy (no sustain period), so the site is ready again the cycle its links return.
        "policy": {"require_backup": True, "sustain_seconds": 0},
        "sites": sites,
    }
    if snmp_port:
        doc["auths"] = {"s1-switch": {"community": "s1-switch"}}
        doc["probes"]["snmp"] = {"interval_seconds": 2, "timeout_seconds": 0.5, "retries": 0, "jitter_seconds": 0}
    path = tmp / "readiness.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def links(stack: AlertStack, site_id: str, state: str) -> None:
    """Set the site ends of both links of ``site_id`` up or down, in one ``ip -batch``, between two cycles, so
    both links change in the same cycle, as they do when a site loses power."""
    stack.between_cycles("icmp")
    stack.site.ip(*(f"link set dev {dev}-s {state}" for _, dev, _ in LINKS[site_id]))


def wire(mon: Namespace, site: Namespace) -> None:
    """One veth pair per link; both ends are created inside the namespaces: this machine never sees the lab's
    addresses."""
    for site_links in LINKS.values():
        for _, dev, net in site_links:
            sh("ip", "-n", mon.name, "link", "add", "name", f"{dev}-m", "type", "veth", "peer", "name",
               f"{dev}-s", "netns", site.name)
            mon.ip(f"addr add {net}.1/30 dev {dev}-m", f"link set dev {dev}-m up")
            site.ip(f"addr add {net}.2/30 dev {dev}-s", f"link set dev {dev}-s up")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[AlertStack]:
    """The lab namespaces with their veths, and the webhook sink in the mon namespace; all torn down after."""
    require_root("the alerting end-to-end test (network namespaces)")
    for tool in ("ip", "prometheus", "prometheus-alertmanager"):
        require_tool(tool)
    with alert_lab(tmp_path, "rdy-e2e", wire) as s:
        yield s


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_isolated_site_pages_once_and_resolves(stack: AlertStack) -> None:
    """Both links of S1 go down: exactly one SiteIsolated page for S1 (to Ilam's on-call), its link alerts
    held back by inhibition; the links come back: the resolved notification arrives. S2 stays quiet."""
    started = time.monotonic()
    rules = stack.rules(FOR_SCALE)

    # 1. The monitor, then Prometheus; wait until both sites are ready in Prometheus and nothing is pending.
    stack.start_monitor(readiness_config(stack.tmp))
    stack.start_prometheus(rules)

    def settled() -> bool:
        stack.alive()
        ready = stack.query('readiness_site_state{state="ready"} == 1')
        ratio = [float(r["value"][1]) for r in stack.query("province:readiness_ready:ratio")]
        return ({r["metric"]["site"] for r in ready} == {"S1", "S2"} and ratio == [1.0]
                and not stack.prometheus_alerts())

    wait_for("S1 and S2 ready in Prometheus, the province 100% ready, no alert pending", settled, 30,
             on_timeout=stack.logs)

    # 2. Alertmanager (the committed routes and inhibitions).
    stack.start_alertmanager()

    # 3. Both links of S1 down.
    links(stack, "S1", "down")
    down_at = time.monotonic()

    def paged() -> list[tuple[str, dict[str, Any], float]]:
        return stack.notified("SiteIsolated", "S1", "firing")

    wait_for("the SiteIsolated notification for S1", paged, 30, on_timeout=stack.logs)
    paged_after = time.monotonic() - down_at

    # The link and regression alerts fire in Prometheus and reach Alertmanager, which holds them back
    # (inhibited by SiteIsolated).
    held = {"PrimaryLinkDown", "BackupLinkDown", "ReadinessRegressed"}

    def held_back() -> list[dict[str, Any]]:
        s1 = [a for a in stack.alertmanager_alerts() if a["labels"].get("site") == "S1"]
        return s1 if held <= {a["labels"]["alertname"] for a in s1} else []

    s1_alerts = wait_for(f"{', '.join(sorted(held))} for S1 in Alertmanager", held_back, 40, on_timeout=stack.logs)
    time.sleep(2.5)  # two group intervals: time for a notification that should not exist to leak
    for alert in s1_alerts:
        if alert["labels"]["alertname"] == "SiteIsolated":
            assert alert["status"]["state"] == "active", alert
        else:
            assert alert["status"]["state"] == "suppressed", alert
            assert alert["status"]["inhibitedBy"], alert
    assert {a["labels"]["alertname"] for a in s1_alerts} == {"SiteIsolated", *held}
    firing = {a["labels"]["alertname"] for a in stack.prometheus_alerts() if a["state"] == "firing"}
    assert {"SiteIsolated", *held} <= firing
    assert stack.sink.received() == paged(), "only the page may have been sent while S1 is isolated"

    # 4. Links back: the resolved notification.
    links(stack, "S1", "up")

    def resolved() -> list[tuple[str, dict[str, Any], float]]:
        return stack.notified("SiteIsolated", "S1", "resolved")

    wait_for("the resolved SiteIsolated notification for S1", resolved, 30, on_timeout=stack.logs)
    time.sleep(2.5)  # nothing else may follow (a link alert set free, a second page)

    # 5. Exactly two notifications: the page and its resolution, both to Ilam's on-call, with the site's name.
    received = stack.sink.received()
    summary = [(receiver, payload["status"], alerts_of(payload)) for receiver, payload, _ in received]
    assert summary == [
        ("ilam-oncall", "firing", [("SiteIsolated", "S1", "firing")]),
        ("ilam-oncall", "resolved", [("SiteIsolated", "S1", "resolved")]),
    ], summary
    page = received[0][1]["alerts"][0]
    assert page["labels"]["severity"] == "critical"
    assert page["labels"]["county"] == "Ilam" and page["labels"]["area"] == "urban"
    assert page["labels"]["name"] == "دبستان فردوسی"
    assert "replica" not in page["labels"], "Prometheus must drop its HA replica label before Alertmanager"
    assert page["annotations"]["summary"] == ("دبستان فردوسی (S1, Ilam, urban) is cut off: primary and backup "
                                              "links are both down")
    assert page["annotations"]["runbook_url"] == "docs/runbook.md#siteisolated"
    assert page["annotations"]["dashboard"] == "http://127.0.0.1:3000/d/readiness-site?var-county=Ilam&var-site=S1"
    took = time.monotonic() - started
    print(f"paged {paged_after:.1f}s after the links went down; whole scenario {took:.1f}s")
    assert took < 110


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_weak_light_from_a_watts_encoded_switch_fires_optical_power_low(stack: AlertStack) -> None:
    """S1's primary fiber lands on a switch that reports its transceiver the way Arista and SONiC do
    (ENTITY-SENSOR-MIB watts, milli, precision 4) and receives -27 dBm, under fiber's -25 dBm: the monitor
    reads it, Prometheus fires OpticalPowerLow for S1's primary and Alertmanager tells Ilam's NOC; S2 (no
    SNMP) stays quiet."""
    tmp = stack.tmp
    rules = stack.rules(FOR_SCALE)

    # 1. The switch: snmpsim inside the mon namespace, its port's receive sensor in tenths of a microwatt.
    records = interface_device(DeviceSpec(name="sw-s1", ports=[Port(1, "Gi0/1", rx_dbm=-27.0, tx_dbm=-2.5)]))
    rx = "1.3.6.1.2.1.99.1.1.1.{}.3011"  # entPhySensorTable column, sensor 3011 (Gi0/1's Receive Power Sensor)
    assert [records[rx.format(c)].text for c in (1, 2, 3, 4)] == ["6", "8", "4", "20"]  # watts, milli, 4: 2.0 uW
    write_device(tmp / "snmp", "s1-switch", records)
    agent = stack.mon.call(lambda: start_snmpsim(tmp / "snmp", work_dir=tmp / "snmpsim"))
    stack.procs["snmpsim"] = agent.process  # stopped by PID with the others

    # 2. The monitor, Prometheus and Alertmanager.
    stack.start_monitor(readiness_config(tmp, agent.port))
    stack.start_prometheus(rules)
    stack.start_alertmanager(wait=False)

    def light() -> list[dict[str, Any]]:
        stack.alive()
        return stack.query('readiness_link_rx_power_dbm{site="S1", role="primary"}')

    (series,) = wait_for("S1's primary receive power in Prometheus", light, 30, on_timeout=stack.logs)
    assert abs(float(series["value"][1]) - -27.0) <= 0.05, series  # 2.0 uW is -26.99 dBm
    s1 = next(s for s in stack.get(MONITOR_PORT, "/api/v1/sites")["sites"] if s["id"] == "S1")
    assert s1["state"] == "degraded" and s1["reasons"] == ["primary.rx_power<-25dBm"], s1
    assert s1["links"][0]["values"]["tx_power_dbm"] == pytest.approx(-2.5, abs=0.01)

    # 3. After its `for:` (15 min x 0.02), OpticalPowerLow fires and reaches Ilam's NOC.
    def notified() -> list[tuple[str, dict[str, Any], float]]:
        return stack.notified("OpticalPowerLow", "S1", "firing")

    receiver, payload, _ = wait_for("the OpticalPowerLow notification for S1", notified, 60, on_timeout=stack.logs)[0]
    assert receiver == "ilam-noc"
    (alert,) = [a for a in payload["alerts"] if a["labels"]["alertname"] == "OpticalPowerLow"]
    assert (alert["labels"]["role"], alert["labels"]["severity"], alert["labels"]["medium"]) == (
        "primary", "warning", "fiber")
    assert alert["annotations"]["summary"].endswith("receives -27.0 dBm"), alert["annotations"]
    firing = {(a["labels"]["alertname"], a["labels"].get("site")) for a in stack.prometheus_alerts()
              if a["state"] == "firing"}
    assert ("OpticalPowerLow", "S1") in firing and not any(site == "S2" for _, site in firing), firing
