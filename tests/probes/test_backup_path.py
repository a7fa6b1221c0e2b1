"""The backup path is proven, or said not to be: a lab with two monitor interfaces.

mon-a (192.0.2.1) is the primary path, mon-b (198.51.100.1) the backup path; the site router holds
203.0.113.1 (primary address) and 203.0.113.2 (backup address) and answers over both. The backup path
is cut by nftables at the site (nothing enters through site-b). The main table sends 203.0.113.0/24
through mon-a, so without policy routing the backup's echoes, bound to 198.51.100.1, leave through the
primary's interface and are answered (through site-b, which is only cut inbound): the old probe called
that backup "up". With ``ip rule from 198.51.100.1 lookup 100`` they leave through mon-b and are lost.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.config.hostcheck import check_host
from monitor.config.loader import load_config
from monitor.core.readiness import evaluate, link_health
from monitor.runtime.service import freshness
from probes.base import Observation
from tests.helpers import require_root, require_tool
from tests.monitor.fixtures import write_config

REPO = Path(__file__).resolve().parents[2]
PRIMARY, BACKUP, SOURCE = "203.0.113.1", "203.0.113.2", "198.51.100.1"

# Inside the mon namespace: build the targets from a config, as the service does, run one ICMP cycle and
# the host check, print both as JSON.
RUNNER = """
import asyncio, dataclasses, json, sys, time
from monitor.config.hostcheck import check_host
from monitor.config.loader import load_config
from monitor.config.targets import icmp_targets
from probes.icmp import IcmpProbe, IcmpSettings

async def main(path):
    config = load_config(path)
    probe = IcmpProbe()
    try:
        s = IcmpSettings(count=3, spacing_seconds=0.05, timeout_seconds=0.5, interval_seconds=30)
        observations = await probe.run(icmp_targets(config.sites), s, time.monotonic() + 10)
    finally:
        await probe.close()
    errors, warnings = check_host(config)
    return {"observations": [dataclasses.asdict(o) for o in observations],
            "errors": [str(e) for e in errors], "warnings": [str(w) for w in warnings]}

print(json.dumps(asyncio.run(main(sys.argv[1]))))
"""


# Right after "link set up" the first packets may be lost: wait until both links answer an echo.
WARM = """
import asyncio, time
from probes.base import Target
from probes.icmp import IcmpProbe, IcmpSettings

async def main():
    s = IcmpSettings(count=1, timeout_seconds=0.5, interval_seconds=30)
    for _ in range(40):
        probe = IcmpProbe()
        try:
            got = await probe.run([Target("a", "a", "192.0.2.2"), Target("b", "b", "198.51.100.2")], s,
                                  time.monotonic() + 5)
        finally:
            await probe.close()
        if all(o.ok for o in got):
            return
        await asyncio.sleep(0.25)
    raise SystemExit("the lab's veth pairs never passed echoes")

asyncio.run(main())
"""


def sh(*args: str, stdin: str | None = None) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=60, check=False, cwd=REPO, env=env)
    assert run.returncode == 0, f"{' '.join(args)}: {run.stderr}"


class PathLab:
    def __init__(self, tag: str) -> None:
        self.mon, self.site = f"rdy-bpm-{tag}", f"rdy-bps-{tag}"

    def up(self) -> None:
        for ns in (self.mon, self.site):
            sh("ip", "netns", "add", ns)
        for name in ("a", "b"):
            sh("ip", "-n", self.mon, "link", "add", "name", f"mon-{name}", "type", "veth", "peer", "name",
               f"site-{name}", "netns", self.site)
        sh("ip", "-n", self.mon, "-batch", "-", stdin="\n".join([
            "link set dev lo up", "link set dev mon-a up", "link set dev mon-b up",
            "addr add 192.0.2.1/24 dev mon-a", f"addr add {SOURCE}/24 dev mon-b",
            "route add 203.0.113.0/24 via 192.0.2.2 dev mon-a",
        ]) + "\n")
        sh("ip", "-n", self.site, "-batch", "-", stdin="\n".join([
            "link set dev lo up", "link set dev site-a up", "link set dev site-b up",
            "addr add 192.0.2.2/24 dev site-a", "addr add 198.51.100.2/24 dev site-b",
            f"addr add {PRIMARY}/32 dev lo", f"addr add {BACKUP}/32 dev lo",
        ]) + "\n")
        for ns in (self.mon, self.site):  # replies may come back on the other link: no reverse-path filter
            for conf in ("all", "default", "mon-a", "mon-b", "site-a", "site-b"):
                subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv4.conf.{conf}.rp_filter=0"],
                               capture_output=True, timeout=30, check=False)
        sh("ip", "netns", "exec", self.mon, sys.executable, "-c", WARM)
        sh("ip", "netns", "exec", self.site, "nft", "-f", "-", stdin="""
table inet cut {
    chain input { type filter hook prerouting priority -300; policy accept; iifname "site-b" drop; }
}
""")

    def policy_route(self) -> None:
        sh("ip", "-n", self.mon, "-batch", "-", stdin="\n".join([
            "route add default via 198.51.100.2 dev mon-b table 100",
            f"rule add from {SOURCE} lookup 100 priority 100",
        ]) + "\n")

    def run(self, config: Path) -> dict[str, Any]:
        out = subprocess.run(["ip", "netns", "exec", self.mon, sys.executable, "-c", RUNNER, str(config)], cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                             timeout=60, check=False)
        assert out.returncode == 0, out.stderr
        return dict(json.loads(out.stdout))

    def down(self) -> None:
        for ns in (self.mon, self.site):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30, check=False)


@pytest.fixture
def lab() -> Iterator[PathLab]:
    require_root("the backup-path lab")
    for tool in ("ip", "nft"):
        require_tool(tool)
    lab = PathLab(f"{os.getpid() % 100000}")
    try:
        lab.up()
        yield lab
    finally:
        lab.down()


def lab_config(tmp_path: Path, source: str = SOURCE) -> Path:
    site = {"id": "S1", "name": "S1", "county": "Ilam", "area": "urban", "links": [
        {"role": "primary", "medium": "fiber", "address": PRIMARY},
        {"role": "backup", "medium": "lte", "address": BACKUP, "source": source}], "terminals": []}
    return write_config(tmp_path, [site])


def verdict(tmp_path: Path, answer: dict[str, Any]) -> tuple[dict[str, str], str, list[str]]:
    """Judge the lab's observations as the service would: link states, site state, site reasons."""
    config = load_config(lab_config(tmp_path))
    latest = {o["key"]: Observation(**{**o, "details": {k: tuple(v) for k, v in o["details"].items()}})
              for o in answer["observations"]}
    now = max(o.at for o in latest.values())
    r = evaluate(config.sites, config.policy, latest, now, freshness(config)).sites["S1"]
    return {h.role: h.state for h in r.links}, r.state, [str(x) for x in r.reasons]


@pytest.mark.root
def test_backup_through_the_primarys_interface_is_not_proven(lab: PathLab, tmp_path: Path) -> None:
    answer = lab.run(lab_config(tmp_path))
    obs = {o["key"]: o for o in answer["observations"]}
    backup = obs["S1/backup"]
    # The echoes are answered (the old verdict: backup up) but they left through mon-a.
    assert backup["ok"], backup
    assert backup["details"] == {"path_not_proven": ["mon-a"]}, backup
    assert obs["S1/primary"]["ok"] and obs["S1/primary"]["details"] == {}
    links, state, reasons = verdict(tmp_path, answer)
    assert links == {"primary": "up", "backup": "impaired"}
    assert state == "degraded" and reasons == ["backup.path_not_proven"]
    assert answer["errors"] == []
    [warning] = answer["warnings"]
    assert "site S1" in warning and "mon-a" in warning and "not proven" in warning


@pytest.mark.root
def test_with_policy_routing_the_cut_backup_is_down(lab: PathLab, tmp_path: Path) -> None:
    lab.policy_route()
    answer = lab.run(lab_config(tmp_path))
    obs = {o["key"]: o for o in answer["observations"]}
    backup = obs["S1/backup"]
    assert not backup["ok"] and backup["details"] == {}, backup  # left through mon-b, dropped at the site
    links, state, reasons = verdict(tmp_path, answer)
    assert links == {"primary": "up", "backup": "down"}
    assert state == "degraded" and reasons == ["backup.down"]
    assert answer["warnings"] == [] and answer["errors"] == []


@pytest.mark.root
def test_with_policy_routing_and_no_cut_the_backup_is_up_and_proven(lab: PathLab, tmp_path: Path) -> None:
    lab.policy_route()
    sh("ip", "netns", "exec", lab.site, "nft", "delete", "table", "inet", "cut")
    answer = lab.run(lab_config(tmp_path))
    obs = {o["key"]: o for o in answer["observations"]}
    assert obs["S1/backup"]["ok"] and obs["S1/backup"]["details"] == {}, obs["S1/backup"]
    links, state, _ = verdict(tmp_path, answer)
    assert links == {"primary": "up", "backup": "up"} and state == "ready"


@pytest.mark.root
def test_a_source_the_host_does_not_have_is_a_config_error(lab: PathLab, tmp_path: Path) -> None:
    answer = lab.run(lab_config(tmp_path, source="198.51.100.77"))
    [error] = answer["errors"]
    assert "site S1" in error and "links.backup.source" in error and "198.51.100.77" in error


def test_check_host_is_injectable(tmp_path: Path) -> None:
    """Without touching the host: a missing source is an error; a shared interface a warning."""
    config = load_config(lab_config(tmp_path))
    errors, warnings = check_host(config, address_exists=lambda a: False, route=lambda d, s: "eth0")
    assert [e.site for e in errors] == ["S1"] and warnings == []
    errors, warnings = check_host(config, address_exists=lambda a: True, route=lambda d, s: "eth0")
    assert errors == [] and [w.site for w in warnings] == ["S1"]
    routes = {(PRIMARY, None): "eth0", (BACKUP, SOURCE): "wwan0"}
    errors, warnings = check_host(config, address_exists=lambda a: True, route=lambda d, s: routes[(d, s)])
    assert errors == [] and warnings == []


def test_a_path_not_proven_link_is_impaired() -> None:
    """The core: answered or not, echoes that left through the primary's interface prove nothing."""
    from monitor.core.model import Link, MediumPolicy

    link = Link(role="backup", medium="lte", address=BACKUP, source=SOURCE)
    fresh = freshness_of(100.0)
    for ok in (True, False):
        o = Observation("S1/backup", "icmp", ok, 1000.0, {}, "" if ok else "timeout",
                        details={"path_not_proven": ("mon-a",)})
        h = link_health(link, o, None, MediumPolicy(), fresh, 1000.0)
        assert (h.state, [str(x) for x in h.reasons]) == ("impaired", ["backup.path_not_proven"])


def freshness_of(age: float):  # type: ignore[no-untyped-def]
    from monitor.core.readiness import Freshness

    return Freshness({"icmp": age})
