"""ICMP echo against real peers: loopback (all of 127.0.0.0/8 answers, and ::1), and a lab of two network
namespaces joined by veth pairs where nftables drops, rejects and filters echo requests.

The lab's addresses (192.0.2.0/24, 198.51.100.0/24, 2001:db8::/64) exist only inside its namespaces; the
probe runs inside the "mon" namespace through ``ip netns exec``, so this machine never gets a route to them.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from probes.base import Observation, Target
from probes.icmp import IcmpProbe, IcmpSettings
from tests.helpers import require, require_root, require_tool

REPO = Path(__file__).resolve().parents[2]


def icmp_permitted() -> bool:
    """Return whether this process may open an ICMP socket (raw, or datagram via ping_group_range)."""
    for kind in (socket.SOCK_RAW, socket.SOCK_DGRAM):
        try:
            socket.socket(socket.AF_INET, kind, socket.IPPROTO_ICMP).close()
            return True
        except PermissionError:
            continue
    return False


def settings(**overrides: Any) -> IcmpSettings:
    values: dict[str, Any] = {"count": 3, "spacing_seconds": 0.05, "timeout_seconds": 1.0,
                              "interval_seconds": 30, "rate_per_second": 100_000}
    return IcmpSettings(**{**values, **overrides})


@pytest.fixture
async def probe() -> AsyncIterator[IcmpProbe]:
    require(icmp_permitted(), "ICMP sockets are not permitted here: run as root, or allow datagram ICMP with "
                              'sysctl -w net.ipv4.ping_group_range="0 2147483647"')
    p = IcmpProbe()
    yield p
    await p.close()


def by_key(observations: list[Observation]) -> dict[str, Observation]:
    return {o.key: o for o in observations}


def assert_answered(o: Observation, count: int) -> None:
    v = o.values
    assert o.ok, (o.key, o.failure, o.reason)
    assert (v["sent"], v["received"], v["loss_ratio"]) == (count, count, 0.0), o
    assert 0 < v["rtt_min_seconds"] <= v["rtt_avg_seconds"] <= v["rtt_max_seconds"] < 1.0, o
    if count > 1:
        assert 0 <= v["jitter_seconds"] < 1.0, o


# ---- loopback -------------------------------------------------------------------------------------------

async def test_loopback_v4_and_v6_all_answer(probe: IcmpProbe) -> None:
    """127.0.0.1, a few other 127.x.y.z addresses and ::1 all answer every echo, with sane RTTs."""
    addresses = ["127.0.0.1", "127.1.2.3", "127.10.0.1", "127.254.254.254", "::1"]
    targets = [Target(f"S{i}/primary", f"S{i}", a) for i, a in enumerate(addresses)]
    start = time.monotonic()
    result = await probe.run(targets, settings(), start + 10)
    assert [o.key for o in result] == [t.key for t in targets]
    for o in result:
        assert_answered(o, 3)
    assert time.monotonic() - start < 5, "three echoes 50 ms apart must not take seconds"


async def test_two_thousand_loopback_targets_without_loss(probe: IcmpProbe) -> None:
    """2,000 targets spread over 127.20.0.0/16, two echoes each, in one cycle: every echo is answered."""
    targets = [Target(f"S{i}/primary", f"S{i}", f"127.20.{i // 250}.{i % 250 + 1}") for i in range(2000)]
    result = await probe.run(targets, settings(count=2, spacing_seconds=0.02), time.monotonic() + 20)
    lost = [o.key for o in result if o.values.get("received") != 2]
    assert not lost, f"{len(lost)} targets lost echoes, e.g. {lost[:5]}"
    for o in result:
        assert_answered(o, 2)


async def test_more_requests_than_one_sequence_space(probe: IcmpProbe) -> None:
    """22,000 targets × 3 echoes = 66,000 requests: more than 16-bit sequence numbers can tell apart."""
    targets = [Target(f"S{i}/primary", f"S{i}", f"127.30.{i // 250}.{i % 250 + 1}") for i in range(22_000)]
    result = await probe.run(targets, settings(rate_per_second=1_000_000, spacing_seconds=0.2),
                             time.monotonic() + 30)
    received = sum(o.values.get("received", 0) for o in result)
    assert received == 66_000, f"{66_000 - received} echoes lost"


async def test_same_address_twice_and_small_payloads(probe: IcmpProbe) -> None:
    """Two targets with one address both get their own replies, with empty and tiny payloads too."""
    targets = [Target("A/primary", "A", "127.0.0.1"), Target("B/primary", "B", "127.0.0.1"),
               Target("C/primary", "C", "::1")]
    for payload in (0, 3, 56, 1400):
        for o in await probe.run(targets, settings(payload_bytes=payload), time.monotonic() + 10):
            assert_answered(o, 3)


async def test_bad_targets_are_failed_observations(probe: IcmpProbe) -> None:
    """A target that is not an address or whose source is of the wrong family fails alone, as data,
    and the cycle still ends as soon as the other echoes are answered, not at the timeout."""
    targets = [Target("A/primary", "A", "not-an-address"),
               Target("B/backup", "B", "::1", source="127.0.0.1"),
               Target("C/primary", "C", "127.0.0.1")]
    start = time.monotonic()
    result = by_key(await probe.run(targets, settings(count=1, timeout_seconds=10), start + 20))
    assert time.monotonic() - start < 5, "the cycle waited for replies to echoes it never sent"
    assert (result["A/primary"].ok, result["A/primary"].failure) == (False, "error")
    assert "not an IP address" in result["A/primary"].reason
    assert (result["B/backup"].ok, result["B/backup"].failure) == (False, "error")
    assert "source 127.0.0.1" in result["B/backup"].reason
    assert_answered(result["C/primary"], 1)


async def test_deadline_is_never_passed(probe: IcmpProbe) -> None:
    """A deadline shorter than the echoes' spacing: the first round is sent, the rest is not; on time."""
    targets = [Target(f"S{i}/primary", f"S{i}", f"127.40.0.{i + 1}") for i in range(50)]
    start = time.monotonic()
    result = await probe.run(targets, settings(count=5, spacing_seconds=1.0), start + 0.5)
    assert time.monotonic() - start < 0.5 + 0.5, "the probe overran its deadline"
    for o in result:
        assert o.ok and o.values["sent"] == o.values["received"] == 1, o
    skipped = await probe.run(targets, settings(), time.monotonic() - 1)
    assert {(o.ok, o.failure) for o in skipped} == {(False, "not_probed")}


async def test_probe_is_reused_across_cycles_and_after_close(probe: IcmpProbe) -> None:
    """The long-lived probe runs cycle after cycle, and reopens its sockets after close()."""
    targets = [Target("S/primary", "S", "127.0.0.1"), Target("S/backup", "S", "::1")]
    for _ in range(3):
        for o in await probe.run(targets, settings(count=1), time.monotonic() + 5):
            assert_answered(o, 1)
    await probe.close()
    for o in await probe.run(targets, settings(count=2, spacing_seconds=0.01), time.monotonic() + 5):
        assert_answered(o, 2)


async def test_resolved_addresses_are_cached_without_copies(probe: IcmpProbe) -> None:
    """Issue 13: a target without a source is cached under its address string alone, and its request holds the
    target's own string; one with a source, or an address written the long way, has an entry of its own."""
    v4, v6 = "127.0.0.1", "0:0:0:0:0:0:0:1"
    targets = [Target("A/primary", "A", v4), Target("A/backup", "A", v4, source="127.0.0.1"),
               Target("B/primary", "B", v6)]
    for o in await probe.run(targets, settings(count=1), time.monotonic() + 5):
        assert_answered(o, 1)
    cache = probe._resolved
    assert set(cache) == {v4, (v4, "127.0.0.1"), v6}
    mine, backup, long = cache[v4], cache[(v4, "127.0.0.1")], cache[v6]
    assert not isinstance(mine, str) and not isinstance(backup, str) and not isinstance(long, str)
    assert mine.host is v4 and mine.sockaddr[0] is v4 and mine.source is None and backup.source == "127.0.0.1"
    assert long.host == "::1" and long.sockaddr == ("::1", 0, 0, 0)
    # The request is the socket address itself: one 2-tuple an address (72 bytes), no record around it.
    import sys
    assert mine.sockaddr is mine and mine == (v4, 0) and sys.getsizeof(mine) == sys.getsizeof((v4, 0))


# ---- network-namespace lab --------------------------------------------------------------------------------

# Runs the probe inside a namespace: reads a JSON spec on stdin, prints the observations as JSON.
RUNNER = """
import asyncio, dataclasses, json, sys, time
from probes.errors import ProbeUnavailable
from probes.base import Target
from probes.icmp import IcmpProbe, IcmpSettings

async def main(spec):
    probe = IcmpProbe()
    try:
        targets = [Target(**t) for t in spec["targets"]]
        observations = await probe.run(targets, IcmpSettings(**spec["settings"]), time.monotonic() + spec["budget"])
        return {"observations": [dataclasses.asdict(o) for o in observations]}
    except ProbeUnavailable as exc:
        return {"unavailable": str(exc)}
    finally:
        await probe.close()

print(json.dumps(asyncio.run(main(json.load(sys.stdin)))))
"""

LOSSY = [f"192.0.2.{i}" for i in range(31, 35)]  # each drops 30% of echo requests
REJECTED, FILTERED, QUIET = "192.0.2.4", "192.0.2.5", "192.0.2.6"
LAB_RULES = f"""
table inet lab {{
    chain input {{
        type filter hook input priority 0; policy accept;
        ip daddr {{ {", ".join(LOSSY)} }} icmp type echo-request numgen random mod 100 < 30 drop
        ip daddr {REJECTED} icmp type echo-request reject with icmp type host-unreachable
        ip6 daddr 2001:db8::4 icmpv6 type echo-request reject with icmpv6 type admin-prohibited
        ip saddr 192.0.2.1 ip daddr {FILTERED} icmp type echo-request drop
        ip daddr {QUIET} icmp type echo-request drop
    }}
}}
"""


@dataclass
class Lab:
    mon: str
    site: str

    def run(self, targets: list[dict[str, Any]], budget: float = 15, *, prefix: tuple[str, ...] = (),
            **overrides: Any) -> dict[str, Any]:
        """Run the probe in the mon namespace and return its JSON answer."""
        spec = {"targets": targets, "settings": {**settings().model_dump(), **overrides}, "budget": budget}
        cmd = ["ip", "netns", "exec", self.mon, *prefix, sys.executable, "-c", RUNNER]
        out = subprocess.run(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, input=json.dumps(spec),
                             capture_output=True, text=True, timeout=budget + 30, check=False)
        assert out.returncode == 0, out.stderr
        return dict(json.loads(out.stdout))

    def wait_until_ready(self) -> None:
        """Wait for the veths to pass traffic: right after "link set up", the first packets may be dropped."""
        probes = [target("READY/v4", "192.0.2.2"), target("READY/v6", "2001:db8::2")]
        for _ in range(20):
            answer = self.run(probes, count=1, timeout_seconds=0.5)
            if all(o["ok"] for o in answer.get("observations", [])):
                return
            time.sleep(0.25)
        pytest.fail(f"the lab's veth pair never passed echoes: {answer}")

    def observe(self, targets: list[dict[str, Any]], **overrides: Any) -> dict[str, dict[str, Any]]:
        answer = self.run(targets, **overrides)
        assert "observations" in answer, answer
        return {o["key"]: o for o in answer["observations"]}


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """mon and site namespaces; veth a (192.0.2.0/24, 2001:db8::/64) and veth b (198.51.100.0/24, site end down)."""
    require_root("the namespace lab")
    for tool in ("ip", "nft"):
        require_tool(tool)
    tag = f"{os.getpid() % 100000}"
    lab = Lab(f"rdy-mon-{tag}", f"rdy-site-{tag}")
    try:
        sh("ip", "netns", "add", lab.mon)
        sh("ip", "netns", "add", lab.site)
        # Both ends are created inside the namespaces: the lab never touches this machine's namespace.
        for name in ("a", "b"):
            sh("ip", "-n", lab.mon, "link", "add", "name", f"mon-{name}", "type", "veth", "peer", "name",
               f"site-{name}", "netns", lab.site)
        steps = [
            (lab.mon, "addr add 192.0.2.1/24 dev mon-a"), (lab.mon, "addr add 192.0.2.11/24 dev mon-a"),
            (lab.mon, "-6 addr add 2001:db8::1/64 dev mon-a nodad"),
            (lab.mon, "addr add 198.51.100.1/24 dev mon-b"),
            (lab.site, "-6 addr add 2001:db8::2/64 dev site-a nodad"),
            (lab.site, "-6 addr add 2001:db8::4/64 dev site-a nodad"),
            (lab.site, "addr add 198.51.100.2/24 dev site-b"),
            (lab.mon, "route add unreachable 203.0.113.0/24"),  # sending there fails at once
        ]
        for host in ["192.0.2.2", *LOSSY, REJECTED, FILTERED, QUIET]:
            steps.append((lab.site, f"addr add {host}/24 dev site-a"))
        for ns in (lab.mon, lab.site):
            steps += [(ns, "link set dev lo up"), (ns, f"link set dev {'mon' if ns == lab.mon else 'site'}-a up")]
        steps += [(lab.mon, "link set dev mon-b up")]  # the site end of b stays down: a dead link
        for ns, step in steps:
            sh("ip", "-n", ns, *step.split())
        rules = subprocess.run(["ip", "netns", "exec", lab.site, "nft", "-f", "-"], input=LAB_RULES,
                               capture_output=True, text=True, timeout=30, check=False)
        assert rules.returncode == 0, rules.stderr
        lab.wait_until_ready()
        yield lab
    finally:
        for ns in (lab.mon, lab.site):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30, check=False)


def target(key: str, address: str, source: str | None = None) -> dict[str, Any]:
    return {"key": key, "site": key.split("/")[0], "address": address, "source": source}


@pytest.mark.root
@pytest.mark.parametrize("mode", ["raw", "datagram"])
def test_lab_loss_matches_the_drop_rate(lab: Lab, mode: str) -> None:
    """Four site addresses drop 30% of echo requests at random: 400 echoes show 30% loss within 4.5 sigma."""
    if mode == "datagram":
        sh("ip", "netns", "exec", lab.mon, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")
    targets = [target(f"L{i}/primary", a) for i, a in enumerate(LOSSY)] + [target("OK/primary", "192.0.2.2")]
    result = lab.observe(targets, socket=mode, count=100, spacing_seconds=0.01)
    sent = sum(result[t["key"]]["values"]["sent"] for t in targets[:4])
    received = sum(result[t["key"]]["values"]["received"] for t in targets[:4])
    assert sent == 400
    mean, sigma = 0.3 * sent, math.sqrt(sent * 0.3 * 0.7)
    assert abs((sent - received) - mean) <= 4.5 * sigma, f"{sent - received} of {sent} lost, expected ~{mean:.0f}"
    for t in targets[:4]:
        o = result[t["key"]]
        assert o["ok"] and 0 < o["values"]["loss_ratio"] < 1, o
        assert o["values"]["loss_ratio"] == pytest.approx(1 - o["values"]["received"] / 100)
    clean = result["OK/primary"]
    assert clean["ok"] and clean["values"]["received"] == 100, clean


@pytest.mark.root
@pytest.mark.parametrize("mode", ["raw", "datagram"])
def test_lab_unreachable_down_and_silent(lab: Lab, mode: str) -> None:
    """Rejected echoes are "unreachable" (a router said so: the network's verdict), a route to nowhere in our
    own table is "no_route" (our stack refused to send: the monitor's failure), a dead veth and a silent host
    are lost."""
    if mode == "datagram":
        sh("ip", "netns", "exec", lab.mon, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")
    targets = [target("V4/primary", "192.0.2.2"), target("V6/primary", "2001:db8::2"),
               target("R4/primary", REJECTED), target("R6/primary", "2001:db8::4"),
               target("DOWN/primary", "198.51.100.2"), target("QUIET/primary", QUIET),
               target("NOROUTE/primary", "203.0.113.1")]
    start = time.monotonic()
    result = lab.observe(targets, socket=mode, count=3, spacing_seconds=0.05, timeout_seconds=1.0)
    assert time.monotonic() - start < 15
    for key in ("V4/primary", "V6/primary"):
        assert result[key]["ok"] and result[key]["values"]["received"] == 3, result[key]
    for key, why in (("R4/primary", "host unreachable"), ("R6/primary", "administratively prohibited")):
        o = result[key]
        assert (o["ok"], o["failure"]) == (False, "unreachable"), o
        assert o["reason"] == f"0/3 replies, {why}", o
    down = result["DOWN/primary"]
    assert not down["ok"] and down["failure"] in ("timeout", "unreachable"), down
    noroute = result["NOROUTE/primary"]
    assert (noroute["ok"], noroute["failure"]) == (False, "no_route"), noroute
    assert noroute["reason"] == "0/3 replies, no route to host", noroute
    quiet = result["QUIET/primary"]
    assert (quiet["ok"], quiet["failure"], quiet["reason"]) == (False, "timeout", "0/3 replies"), quiet
    assert quiet["values"] == {"sent": 3, "received": 0, "loss_ratio": 1.0}


@pytest.mark.root
def test_lab_datagram_sockets_past_one_sequence_space(lab: Lab) -> None:
    """Datagram sockets: 22,000 loopback targets × 3 = 66,000 echoes need a second socket; none is lost."""
    sh("ip", "netns", "exec", lab.mon, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")
    targets = [target(f"S{i}/primary", f"127.30.{i // 250}.{i % 250 + 1}") for i in range(22_000)]
    result = lab.observe(targets, socket="datagram", rate_per_second=1_000_000, spacing_seconds=0.2)
    assert sum(o["values"]["received"] for o in result.values()) == 66_000


@pytest.mark.root
def test_lab_source_address_is_used(lab: Lab) -> None:
    """The site drops echoes from 192.0.2.1 only: sent from 192.0.2.11 (the backup path) they are answered."""
    targets = [target("F/primary", FILTERED), target("F/backup", FILTERED, source="192.0.2.11"),
               target("G/backup", "192.0.2.2", source="192.0.2.99"), target("H/backup", "2001:db8::2", "mon-a")]
    result = lab.observe(targets, count=2, spacing_seconds=0.05, timeout_seconds=0.5)
    assert (result["F/primary"]["ok"], result["F/primary"]["failure"]) == (False, "timeout")
    assert result["F/backup"]["ok"] and result["F/backup"]["values"]["received"] == 2, result["F/backup"]
    g = result["G/backup"]
    assert (g["ok"], g["failure"]) == (False, "bind_failed") and "192.0.2.99" in g["reason"], g
    assert result["H/backup"]["ok"], result["H/backup"]  # an interface name: SO_BINDTODEVICE


@pytest.mark.root
def test_lab_no_permission_raises_probe_unavailable(lab: Lab) -> None:
    """Without CAP_NET_RAW and outside ping_group_range, the probe says how to allow ICMP instead of failing."""
    setpriv = shutil.which("setpriv")
    require(setpriv is not None, "setpriv (util-linux) is needed to drop CAP_NET_RAW")
    assert setpriv is not None
    sh("ip", "netns", "exec", lab.mon, "sysctl", "-qw", "net.ipv4.ping_group_range=1 0")
    try:
        drop = (setpriv, "--inh-caps=-net_raw", "--bounding-set=-net_raw")
        answer = lab.run([target("V4/primary", "192.0.2.2")], prefix=drop, count=1)
    finally:
        sh("ip", "netns", "exec", lab.mon, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")
    assert "unavailable" in answer, answer
    assert "ping_group_range" in answer["unavailable"] and "setcap cap_net_raw+ep" in answer["unavailable"]

