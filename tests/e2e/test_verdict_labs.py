"""Fault labs for issue 11: the real Service, Recorder and EventStore, real ICMP and TCP, real faults.

Two network namespaces per test: "mon" holds the monitor (the service runs on a thread that entered it),
"net" holds everything it watches: the gateway 10.77.0.2 at the far end of the monitor's veth, and every
site address (10.78.0.0/16, local as a whole on its loopback), with one TCP listener on port 18081 for all terminals.
Faults are real: the monitor's veth set down, nftables drops in "net". The cycles are driven one by one
(`Service.probe_cycle`, the scheduler's job) so each test chooses the order in which probe kinds finish;
every assertion that matters reads the event store.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config.loader import Config, load_config
from monitor.core.reasons import texts
from monitor.errors import ConfigError
from monitor.runtime.recorder import Recorder
from monitor.runtime.service import Service
from monitor.runtime.snapshot import Snapshot
from monitor.store.events import EventStore
from monitor.web.metrics import SnapshotCollector
from probes.icmp import IcmpProbe
from probes.tcp import TcpProbe, TcpSettings
from tests.helpers import require_root, require_tool
from tests.lab import Namespace, sh, stop, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]

GATEWAY, PORT = "10.77.0.2", 18081
ACCEPT = f"""
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", {PORT}))
s.listen(1024)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    c.close()
"""
NFT_TABLE = "table inet lab {\n  chain input {\n    type filter hook input priority 0; policy accept;\n  }\n}\n"


@dataclass
class Lab:
    tmp: Path
    mon: Namespace
    net: Namespace
    procs: list[Any] = field(default_factory=list)

    def net_sh(self, *args: str, stdin: str | None = None) -> str:
        return sh("ip", "netns", "exec", self.net.name, *args, stdin=stdin)

    def drop(self, *addresses: str) -> None:
        """Drop everything sent to ``addresses`` inside "net" (on top of what is dropped already)."""
        for a in addresses:
            self.net_sh("nft", "add", "rule", "inet", "lab", "input", "ip", "daddr", a, "drop")

    def heal(self) -> None:
        self.net_sh("nft", "flush", "chain", "inet", "lab", "input")


@pytest.fixture
def lab(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Lab]:
    require_root("the verdict labs (namespaces, nftables)")
    for tool in ("ip", "nft"):
        require_tool(tool)
    tag = f"{os.getpid() % 100000}-{abs(hash(request.node.name)) % 10000}"
    lab = Lab(tmp_path, Namespace(f"rv-mon-{tag}"), Namespace(f"rv-net-{tag}"))
    try:
        lab.mon.create()
        lab.net.create()
        sh("ip", "-n", lab.mon.name, "link", "add", "mon-up", "type", "veth", "peer", "name", "net-mon",
           "netns", lab.net.name)
        lab.mon.ip("addr add 10.77.0.1/24 dev mon-up", "link set dev mon-up up")
        sh("ip", "-n", lab.mon.name, "route", "add", "default", "via", GATEWAY)
        # A prefix on lo is local as a whole: every 10.78.x.y answers from "net".
        lab.net.ip(f"addr add {GATEWAY}/24 dev net-mon", "link set dev net-mon up", "addr add 10.78.0.1/16 dev lo",
                   "addr add 10.79.0.1/32 dev lo")
        lab.net_sh("nft", "-f", "-", stdin=NFT_TABLE)
        proc = lab.net.popen([sys.executable, "-c", ACCEPT], tmp_path / "accept.log")
        lab.procs.append(proc)
        wait_for("the terminals' listener", lambda: "listening" in (tmp_path / "accept.log").read_text(), 30)
        yield lab
    finally:
        for proc in lab.procs:
            stop(proc)
        lab.mon.delete()
        lab.net.delete()


def write(tmp: Path, sites: list[dict[str, Any]], **extra: Any) -> Path:
    doc: dict[str, Any] = {
        "programme": {"name": "lab", "deadline": "2035-12-31T23:59:59+03:30"},
        "data_dir": str(tmp / "data"),
        "probes": {"icmp": {"interval_seconds": 5, "count": 1, "timeout_seconds": 0.5, "jitter_seconds": 0},
                   "tcp": {"interval_seconds": 5, "timeout_seconds": 1, "jitter_seconds": 0},
                   "snmp": {"enabled": False}},
        "policy": {"require_backup": False, "sustain_seconds": 0},
        **extra, "sites": sites,
    }
    path = tmp / "readiness.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def site(site_id: str, primary: str, terminals: list[str] = (), **extra: Any) -> dict[str, Any]:  # type: ignore[assignment]
    out = {"id": site_id, "name": f"مدرسه {site_id}", "county": "Ilam", "area": "urban",
           "links": [{"role": "primary", "medium": "fiber", "address": primary}],
           "terminals": [{"id": f"T{k}", "address": a, "port": PORT} for k, a in enumerate(terminals, 1)], **extra}
    return out


@dataclass
class Monitor:
    """The service as `readiness run` builds it, recording into an event store; cycles run on demand."""

    service: Service
    store: EventStore

    async def cycle(self, *kinds: str) -> Snapshot:
        for kind in kinds:
            await self.service.probe_cycle(kind)
        return self.service.snapshot

    def transitions(self) -> list[tuple[str, str | None, str, tuple[str, ...]]]:
        assert self.store.flush()
        return [(e.entity, e.old, e.new, e.reasons) for e in self.store.events(kinds=["transition"])]


def run_monitor(lab: Lab, config: Config, scenario: Callable[[Monitor], Awaitable[None]], timeout: float = 240) -> None:
    """Run ``scenario`` with a fresh service inside the monitor's namespace, recording into tmp/data."""

    async def main() -> None:
        service = Service(config, probes={"icmp": IcmpProbe(), "tcp": TcpProbe()})
        store = EventStore(lab.tmp / "data", batch_seconds=0.05)
        store.open()
        try:
            service.on_snapshot(Recorder(store))
            await scenario(Monitor(service, store))
        finally:
            await service.close()
            store.close()

    lab.mon.call(lambda: asyncio.run(main()), timeout=timeout)


async def until_ready(m: Monitor, sites: list[str], kinds: tuple[str, ...] = ("icmp", "tcp")) -> Snapshot:
    """Run cycles until every site in ``sites`` is ready (a fresh veth may drop its first packets)."""
    for _ in range(20):
        snap = await m.cycle(*kinds)
        if all(snap.sites[s].state == "ready" for s in sites):
            return snap
        await asyncio.sleep(0.25)
    raise AssertionError({s: (r.state, texts(r.reasons)) for s, r in snap.sites.items()})


def blind_metric(snap: Snapshot) -> float:
    (family,) = [f for f in SnapshotCollector(lambda: snap).collect() if f.name == "readiness_monitor_blind"]
    return float(family.samples[0].value)


def not_ready_sites(transitions: list[tuple[str, str | None, str, tuple[str, ...]]]) -> list[Any]:
    return [t for t in transitions if t[0].startswith("site:") and t[2] == "not_ready"]


# ---- (a) the monitor's own veth goes down ----------------------------------------------------------------------

def test_monitor_uplink_down_is_blind_not_isolated(lab: Lab) -> None:
    """The monitor's veth set down: every probe fails in our own stack (no route). Every site is unknown with
    monitor.blind, readiness_monitor_blind is 1, the store gets one `monitor` event and no site, link or
    target transition; once the uplink is back, one more `monitor` event and the sites are ready again."""
    ids = [f"S{i}" for i in range(1, 9)]
    sites = [site(s, f"10.78.1.{i}", [f"10.78.2.{i}", f"10.78.3.{i}"]) for i, s in enumerate(ids, 1)]
    config = load_config(write(lab.tmp, sites, witnesses=[{"address": GATEWAY, "name": "gateway"}]))

    async def scenario(m: Monitor) -> None:
        await until_ready(m, ids)
        before = len(m.transitions())
        lab.mon.ip("link set dev mon-up down")
        for _ in range(3):
            snap = await m.cycle("tcp", "icmp")
            assert snap.monitor.blind, snap.monitor
            assert {(r.state, texts(r.reasons)) for r in snap.sites.values()} == {("unknown", ("monitor.blind",))}
            assert blind_metric(snap) == 1.0
        during = m.transitions()[before:]
        assert [t[:3] for t in during] == [("monitor", "seeing", "blind")], during
        assert "monitor.blind" in during[0][3]
        lab.mon.ip("link set dev mon-up up")
        sh("ip", "-n", lab.mon.name, "route", "replace", "default", "via", GATEWAY)
        snap = await until_ready(m, ids)
        assert not snap.monitor.blind and blind_metric(snap) == 0.0
        after = m.transitions()[before + 1:]
        assert after[0][:3] == ("monitor", "blind", "seeing"), after
        assert not_ready_sites(m.transitions()[before:]) == []
        # Back to what was recorded before: nothing changed, so nothing else is written.
        assert [t for t in after if t[0] != "monitor"] == [], after

    run_monitor(lab, config, scenario)


# ---- (b) a witness dropped by nftables --------------------------------------------------------------------------

def test_witness_dropped_is_blind(lab: Lab) -> None:
    """The core router (a witness) stops answering, and so does one site behind it: the monitor is blind, the
    dark site is unknown (monitor.blind), not not_ready; the sites it still sees stay ready."""
    ids = [f"S{i}" for i in range(1, 5)]
    sites = [site(s, f"10.78.1.{i}", [f"10.78.2.{i}"]) for i, s in enumerate(ids, 1)]
    config = load_config(write(lab.tmp, sites, witnesses=[GATEWAY, {"address": "10.79.0.1", "name": "core"}]))

    async def scenario(m: Monitor) -> None:
        await until_ready(m, ids)
        before = len(m.transitions())
        lab.drop("10.79.0.1", "10.78.1.1", "10.78.2.1")
        for _ in range(2):
            snap = await m.cycle("icmp", "tcp")
            assert snap.monitor.blind and "witness core does not answer" in snap.monitor.reason, snap.monitor
            assert dict(snap.monitor.witnesses) == {GATEWAY: True, "core": False}
            assert (snap.sites["S1"].state, texts(snap.sites["S1"].reasons)) == ("unknown", ("monitor.blind",))
            assert all(snap.sites[s].state == "ready" for s in ids[1:])
            assert blind_metric(snap) == 1.0
        during = m.transitions()[before:]
        assert [t[:3] for t in during] == [("monitor", "seeing", "blind")], during
        lab.heal()
        snap = await until_ready(m, ids)
        assert not snap.monitor.blind
        assert not_ready_sites(m.transitions()[before:]) == []

    run_monitor(lab, config, scenario)


# ---- (c) a link toggled several times, then removed --------------------------------------------------------------

def test_link_toggled_then_removed_is_down_not_flapping(lab: Lab) -> None:
    """The primary of S1 comes and goes until it is damped as flapping; then it is removed for good: the next
    cycle reads down (site not_ready), not flapping, and the store says so."""
    sites = [site("S1", "10.78.1.1"), site("S2", "10.78.1.2")]
    config = load_config(write(lab.tmp, sites, policy={"require_backup": False, "sustain_seconds": 0,
                                                       "flap_max_changes": 2, "flap_window_seconds": 3600,
                                                       "flap_hold_seconds": 3600}))

    async def scenario(m: Monitor) -> None:
        await until_ready(m, ["S1", "S2"], ("icmp",))
        seen = []
        for toggle in range(6):
            if toggle % 2 == 0:
                lab.drop("10.78.1.1")
            else:
                lab.heal()
            snap = await m.cycle("icmp")
            seen.append(snap.sites["S1"].link("primary").state)  # type: ignore[union-attr]
        assert "flapping" in seen, seen  # damping engaged while the link kept coming back
        lab.drop("10.78.1.1")  # removed for good
        snap = await m.cycle("icmp")
        s1 = snap.sites["S1"]
        assert (s1.link("primary").state, s1.state) == ("down", "not_ready"), (seen, texts(s1.reasons))  # type: ignore[union-attr]
        assert "primary.down" in texts(s1.reasons)
        link = [t for t in m.transitions() if t[0] == "link:S1/primary"]
        assert any(t[2] == "flapping" for t in link), link
        assert link[-1][2:] == ("down", ("primary.down",)), link
        assert snap.sites["S2"].state == "ready"

    run_monitor(lab, config, scenario)


# ---- (d) an upstream node and four children whose terminals fail before its ICMP does ------------------------------

def test_children_never_not_ready_for_their_upstream(lab: Lab) -> None:
    """AGG dies with everything behind it. Whether the children's TCP cycle finishes before AGG's ICMP cycle
    or after, no child is ever recorded not_ready: first `upstream AGG unconfirmed`, then `upstream AGG down`.
    A child's own failure, with AGG alive, is still the child's once AGG has been seen since."""
    children = [f"S{i}" for i in range(1, 5)]
    sites = [site("AGG", "10.78.9.1", kind="node")]
    sites += [site(s, f"10.78.1.{i}", [f"10.78.2.{i}", f"10.78.3.{i}"], upstream="AGG")
              for i, s in enumerate(children, 1)]
    behind = ["10.78.9.1", *(f"10.78.{n}.{i}" for n in (1, 2, 3) for i in range(1, 5))]
    config = load_config(write(lab.tmp, sites))

    async def scenario(m: Monitor) -> None:
        ids = ["AGG", *children]
        await until_ready(m, ids)
        before = len(m.transitions())
        for order in (("tcp", "icmp"), ("icmp", "tcp")):
            lab.drop(*behind)
            for kind in order:
                snap = await m.cycle(kind)
                for s in children:
                    r = snap.sites[s]
                    assert r.state == "unknown", (order, kind, s, r.state, texts(r.reasons))
            assert {texts(snap.sites[s].reasons) for s in children} == {("upstream AGG down",)}
            lab.heal()
            await until_ready(m, ids)
        recorded = [t for t in m.transitions()[before:] if t[0] in {f"site:{s}" for s in children}]
        assert not_ready_sites(recorded) == [], recorded
        reasons = {t[3] for t in recorded if t[2] == "unknown"}
        assert ("upstream AGG unconfirmed",) in reasons and ("upstream AGG down",) in reasons, recorded
        # S1's own terminals die while AGG lives: unconfirmed until AGG's next ICMP cycle, then the site's.
        lab.drop("10.78.2.1", "10.78.3.1")
        snap = await m.cycle("tcp")
        assert texts(snap.sites["S1"].reasons) == ("upstream AGG unconfirmed",)
        snap = await m.cycle("icmp")
        assert (snap.sites["S1"].state, texts(snap.sites["S1"].reasons)) == ("not_ready", ("terminals 0/2",))
        assert not_ready_sites(m.transitions())[-1][:3] == ("site:S1", "unknown", "not_ready")

    run_monitor(lab, config, scenario)


# ---- (e) 40 black-holed terminals, 4 connects at a time ---------------------------------------------------------

def test_terminals_never_reached_are_unknown_and_check_rejects_the_config(lab: Lab) -> None:
    """40 sites with one black-holed terminal each, TCP 4 at a time with a 1 s timeout in a 5 s interval:
    the cycle reaches 16 of them (down: they really time out); the other 24 are not_probed, their sites
    unknown (not_probed 1/1), never recorded not_ready. `check` rejects that config."""
    ids = [f"S{i:02d}" for i in range(1, 41)]
    sites = [site(s, f"10.78.1.{i}", [f"10.78.2.{i}"]) for i, s in enumerate(ids, 1)]
    path = write(lab.tmp, sites)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["probes"]["tcp"]["concurrency"] = 4
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    (problem,) = err.value.problems
    assert problem.field == "probes.tcp.concurrency" and "40 terminals" in problem.message, problem
    # Run it anyway (as a config loaded before this check existed would): what the monitor makes of it.
    doc["probes"]["tcp"]["concurrency"] = 40
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    loaded = load_config(path)
    tcp = TcpSettings(interval_seconds=5, timeout_seconds=1, jitter_seconds=0, concurrency=4)
    config = loaded.model_copy(update={"probes": loaded.probes.model_copy(update={"tcp": tcp})})

    async def scenario(m: Monitor) -> None:
        await until_ready(m, ids)  # answered at once, 4 at a time is enough
        before = len(m.transitions())
        lab.drop(*(f"10.78.2.{i}" for i in range(1, 41)))
        await m.cycle("icmp")
        snap = await m.cycle("tcp")
        unprobed = [s for s in ids if snap.sites[s].terminals[0].reason == "not_probed"]
        probed = [s for s in ids if s not in unprobed]
        assert len(unprobed) >= 20 and len(probed) >= 4, (len(unprobed), len(probed))
        for s in unprobed:
            r = snap.sites[s]
            assert (r.terminals[0].state, r.state, texts(r.reasons)) == ("unknown", "unknown", ("not_probed 1/1",))
        for s in probed:
            r = snap.sites[s]
            assert (r.terminals[0].state, r.state, texts(r.reasons)) == ("down", "not_ready", ("terminals 0/1",))
        recorded = m.transitions()[before:]
        assert {t[0] for t in not_ready_sites(recorded)} == {f"site:{s}" for s in probed}
        assert {t[0] for t in recorded if t[0].startswith("target:") and t[2] == "down"} == {
            f"target:{s}/terminal/T1" for s in probed}

    run_monitor(lab, config, scenario)
