"""SNMP probe against real agents: snmpsim serving recorded devices (tests/data/snmp and devices built by
monitor.demo.snmpsim), and Net-SNMP's snmpd reading this machine's own interfaces and ARP table.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import shutil
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    get_cmd,
    set_cmd,
)
from pysnmp.proto.rfc1902 import Integer, OctetString, TimeTicks

from monitor.config.loader import Config
from monitor.config.targets import snmp_targets
from monitor.demo.snmpsim import (
    IF_ENTRY,
    IF_X_ENTRY,
    V3_DEVICE,
    DeviceSpec,
    Port,
    SnmpsimHandle,
    V3User,
    counter64,
    free_udp_port,
    interface_device,
    numeric,
    writable,
    write_device,
)
from probes import PROBES
from probes.base import Observation, Target
from probes.snmp import PROBE, SnmpProbe, SnmpSettings, _Device, _Entities, _inet_address, _rate
from tests.probes.conftest import RECORDINGS, Snmpd


class Targets(list[Target]):
    """The SNMP targets the service builds for a config, with the credentials its settings will carry."""

    def __init__(self, config: Config) -> None:
        super().__init__(snmp_targets(config.sites))
        self.auths = config.auths


def targets_of(config: Config) -> Targets:
    """Return the SNMP targets the service builds for ``config``."""
    return Targets(config)

Start = Callable[..., SnmpsimHandle]


def settings(**overrides: Any) -> SnmpSettings:
    return SnmpSettings(**{"timeout_seconds": 1.0, "retries": 0, "interval_seconds": 30, **overrides})


def snmp_link(role: str, port: int, auth: str, device: str = "127.0.0.1", **view: Any) -> dict[str, Any]:
    return {"role": role, "medium": "fiber", "address": "10.255.0.1" if role == "primary" else "10.255.0.2",
            "snmp": {"device": device, "port": port, "auth": auth, **view}}


def make_config(auths: dict[str, Any], *sites: tuple[str, list[dict[str, Any]], list[tuple[str, str]]]) -> Config:
    return Config.model_validate({
        "programme": {"deadline": "2026-06-01T08:00:00"}, "auths": auths,
        "sites": [{"id": sid, "name": "\u0634\u0639\u0628\u0647 " + sid, "county": "Ilam", "area": "urban",
                   "links": links, "terminals": [{"id": t, "address": a} for t, a in terminals]}
                  for sid, links, terminals in sites]})


@pytest.fixture
async def snmp_probe() -> Any:
    probe = SnmpProbe()
    yield probe
    await probe.close()


async def cycle(probe: SnmpProbe, targets: Sequence[Target], s: SnmpSettings | None = None,
                budget: float = 10.0) -> dict[str, Observation]:
    s = (s or settings()).with_credentials(getattr(targets, "auths", {}))
    observations = await probe.run(targets, s, time.monotonic() + budget)
    assert len(observations) == len(targets)
    return {o.key: o for o in observations}


async def raw_get(port: int, community: str, oid: str) -> int:
    """Read one integer with plain hlapi, independently of the probe."""
    engine = SnmpEngine()
    try:
        error, status, _, var_binds = await get_cmd(
            engine, CommunityData(community), await UdpTransportTarget.create(("127.0.0.1", port)),
            ContextData(), ObjectType(ObjectIdentity(oid)))
    finally:
        engine.close_dispatcher()
    assert not error and not status, (error, status)
    return int(var_binds[0][1])


def device_dir(tmp_path: Path, name: str, spec: DeviceSpec) -> Path:
    data = tmp_path / f"data-{name}"
    write_device(data, name, interface_device(spec))
    return data


# --- contract and pure parts -----------------------------------------------------------------------


def test_registered_and_settings_fit_the_cycle() -> None:
    """The probe is in the one registry, and config rejects retries x timeout that do not fit the interval."""
    assert PROBES["snmp"] is PROBE
    s = SnmpSettings()
    assert (s.retries, s.timeout_seconds, s.concurrency, s.interval_seconds) == (1, 2.0, 256, 60.0)
    assert s.cycle_budget_seconds() == 4.0
    with pytest.raises(ValueError, match="not shorter than interval_seconds"):
        SnmpSettings(timeout_seconds=10, retries=2, interval_seconds=30)
    config = make_config({"ro": {"community": "x"}})
    assert isinstance(config.probe_settings("snmp"), SnmpSettings)


def test_credentials_reach_the_probe_in_its_settings_only() -> None:
    """The config's auths ride on the SNMP settings the service hands the probe; probes.snmp cannot declare any."""
    config = make_config({"ro": {"community": "Sup3rSecretCommunity"}})
    s = config.probe_settings("snmp")
    assert isinstance(s, SnmpSettings) and set(s.auths) == {"ro"}
    assert "Sup3rSecretCommunity" not in repr(s) and "Sup3rSecretCommunity" not in str(s.model_dump())
    with pytest.raises(ValueError, match="top-level 'auths:'"):
        SnmpSettings(auths={"ro": {"community": "x"}})


def test_targets_carry_names_not_secrets() -> None:
    """One target per SNMP link, one neighbours target per site; the community stays inside the probe."""
    config = make_config({"ro": {"community": "Sup3rSecretCommunity"}},
                         ("S1", [snmp_link("primary", 1161, "ro", if_name="Gi0/1", neighbours=True),
                                 snmp_link("backup", 1161, "ro", if_index=7, rx_sensor=3071, tx_sensor=3072)],
                          [("T1", "10.20.0.11"), ("T2", "10.20.0.12")]),
                         ("S2", [{"role": "primary", "medium": "lte", "address": "10.9.9.9"}], []))
    targets = {t.key: t for t in targets_of(config)}
    assert set(targets) == {"S1/primary/snmp", "S1/backup/snmp", "S1/neighbours"}
    primary, backup, neighbours = targets["S1/primary/snmp"], targets["S1/backup/snmp"], targets["S1/neighbours"]
    assert (primary.address, primary.port, primary.site) == ("127.0.0.1", 1161, "S1")
    assert primary.extra == {"auth": "ro", "if_index": None, "if_name": "Gi0/1", "rx_sensor": None,
                             "tx_sensor": None, "role": "primary", "medium": "fiber"}
    assert (backup.extra["if_index"], backup.extra["rx_sensor"], backup.extra["tx_sensor"]) == (7, 3071, 3072)
    assert neighbours.extra["auth"] == "ro"
    assert neighbours.extra["expected"] == (("T1", "10.20.0.11"), ("T2", "10.20.0.12"))
    assert "Sup3rSecretCommunity" not in repr(list(targets.values()))


@pytest.mark.parametrize(("prev", "cur", "elapsed", "limit", "expected"), [
    ((64, 1_000), (64, 3_000), 2.0, 0.0, 1_000.0),  # plain increase
    ((64, 5), (64, 5), 1.0, 0.0, 0.0),  # idle
    ((32, 2**32 - 100), (32, 300), 1.0, 0.0, 400.0),  # Counter32 wrap
    ((64, 2**64 - 1_000), (64, 1_000), 1.0, 0.0, 2_000.0),  # Counter64 wrap
    ((64, 2**64 - 1_000), (64, 1_000), 1.0, 1_000.0, None),  # ... faster than the port can go: a reset
    ((64, 10**12), (64, 10), 60.0, 0.0, None),  # "clear counters" / agent restart: skip, never negative
    ((32, 1_000), (32, 0), 60.0, 0.0, None),  # a 32-bit reset is no wrap either
    ((32, 10), (64, 20), 60.0, 0.0, None),  # switched from 32- to 64-bit counters
    ((64, 10), (64, 20), 0.0, 0.0, None),  # no time passed
])
def test_rate_handles_wraps_and_resets(prev: tuple[int, int], cur: tuple[int, int], elapsed: float, limit: float,
                                       expected: float | None) -> None:
    """Counter deltas: wraps give the true rate, resets give no rate, nothing is ever negative."""
    assert _rate(prev, cur, elapsed, limit) == expected


def test_uptime_wrap_is_not_a_reboot() -> None:
    """sysUpTime wraps after 497 days; that, answers reordered in flight and a frozen sysUpTime are no
    reboot. Going back is, and so is an uptime shorter than the time since the last answer."""
    device = _Device(asyncio.Semaphore(1))
    device.observe_uptime(2**32 - 1_000, 100.0)
    device.observe_uptime(5_000, 160.0)  # 60 s later, wrapped past 2^32
    device.observe_uptime(4_990, 160.1)  # an answer that left the agent a moment earlier
    assert device.boots == 0
    device.observe_uptime(300, 220.0)  # restarted 3 s ago
    assert (device.boots, device.generation) == (1, 1)
    device.observe_uptime(5_000, 280.0)  # 50 s: more than before, but less than the 60 s since: again
    assert device.boots == 2
    frozen = _Device(asyncio.Semaphore(1))
    for t in range(10):  # an agent whose sysUpTime never moves is odd, not rebooting
        frozen.observe_uptime(9_000_000, t * 60.0)
    assert frozen.boots == 0


def test_sensor_matching_respects_port_boundaries() -> None:
    """Name matching finds Ethernet1/1's sensors, not Ethernet1/10's, and never a temperature sensor."""
    entities = _Entities(power=[11, 12, 101, 102], labels={
        11: ("dom rx power for ethernet1/1", ""), 12: ("dom tx power for ethernet1/1", ""),
        101: ("dom rx power for ethernet1/10", ""), 102: ("dom tx power for ethernet1/10", ""),
        13: ("ethernet1/1 rx temperature", "")})
    assert entities.sensors(1, ["Ethernet1/1", ""]) == ([11], [12])
    assert entities.sensors(10, ["Ethernet1/10", ""]) == ([101], [102])
    assert entities.sensors(2, ["Ethernet1/2", ""]) == ([], [])


@pytest.mark.parametrize(("index", "address"), [
    ((1, 4, 10, 20, 0, 11), "10.20.0.11"),
    ((1, 10, 20, 0, 11), "10.20.0.11"),  # agents that leave out the length
    ((2, 16, 253, 0, *([0] * 13), 5), "fd00::5"),
    ((1, 4, 10, 20, 0, 300), None),
    ((9, 4, 1, 2, 3, 4), None),
])
def test_arp_index_parsing(index: tuple[int, ...], address: str | None) -> None:
    """ipNetToPhysicalTable indexes carry the address type, its length and its octets (RFC 4001)."""
    assert _inet_address(index) == address


# --- snmpsim: recorded devices ---------------------------------------------------------------------


async def test_recorded_router_interfaces_optics_and_neighbours(snmpsim_agents: Start, recordings: Path,
                                                              snmp_probe: SnmpProbe) -> None:
    """A Cisco-like router: ports found by ifName (and by a Persian-described ifIndex), optics through
    entAliasMappingTable (dBm in CISCO-ENTITY-SENSOR-MIB), a shut port without optics, and its ARP table
    against the site's terminals."""
    agent = snmpsim_agents(recordings)
    config = make_config(
        {"core": {"community": "core-router"}},
        ("ILM-001", [snmp_link("primary", agent.port, "core", if_name="Te0/0/0", neighbours=True),
                     snmp_link("backup", agent.port, "core", if_name="TenGigabitEthernet0/0/1")],
         [("T1", "10.20.0.11"), ("T2", "10.20.0.12"), ("T3", "10.20.0.13"), ("T4", "10.20.0.14")]),
        ("ILM-002", [snmp_link("primary", agent.port, "core", if_index=3),
                     snmp_link("backup", agent.port, "core", if_index=10)], []))
    obs = await cycle(snmp_probe, targets_of(config))
    primary = obs["ILM-001/primary/snmp"]
    assert primary.ok, primary.reason
    v = primary.values
    assert (v["if_index"], v["oper_up"], v["admin_up"]) == (1, 1, 1)
    assert (v["rx_power_dbm"], v["tx_power_dbm"]) == (-7.3, -2.1)
    assert v["uptime_seconds"] == pytest.approx(1_234_567.0)
    assert v["last_change_seconds"] == pytest.approx(1_234_567.0 - 42.0)
    assert (v["rebooted"], v["oper_changes"]) == (0, 0)
    assert "in_bps" not in v  # one reading is no rate
    backup = obs["ILM-001/backup/snmp"].values  # found through ifDescr
    assert (backup["if_index"], backup["rx_power_dbm"]) == (2, -26.4)
    shut = obs["ILM-002/primary/snmp"]
    assert shut.ok and shut.values["admin_up"] == 0 and shut.values["oper_up"] == 0
    assert "rx_power_dbm" not in shut.values and "tx_power_dbm" not in shut.values
    assert obs["ILM-002/backup/snmp"].values["rx_power_dbm"] == -12.5
    neighbours = obs["ILM-001/neighbours"]
    assert neighbours.ok, neighbours.reason
    # T3's ARP entry is incomplete(7); the router's own local(5) address and the WAN peer do not count.
    assert neighbours.values == {"terminals_expected": 4, "terminals_seen": 2, "unexpected_devices": 2}
    assert neighbours.details == {"missing": ("T3", "T4"), "unexpected": ("10.20.0.99", "fd00:20::11")}


async def test_flat_optics_named_after_ports_and_legacy_switch(snmpsim_agents: Start, recordings: Path,
                                                              snmp_probe: SnmpProbe) -> None:
    """Sensors found by name (watts in nanowatts: scale nano, precision 0), sensors given by the inventory, and
    an old switch with neither ifXTable nor ENTITY-MIB, whose ARP table is the deprecated ipNetToMediaTable."""
    agent = snmpsim_agents(recordings)
    config = make_config(
        {"dc": {"community": "flat-optics"}, "old": {"community": "legacy-switch"}},
        ("DC-1", [snmp_link("primary", agent.port, "dc", if_name="Ethernet1/1"),
                  snmp_link("backup", agent.port, "dc", if_index=10, rx_sensor=3101, tx_sensor=3102)], []),
        ("OLD-1", [snmp_link("primary", agent.port, "old", if_name="FastEthernet0/1", neighbours=True),
                   snmp_link("backup", agent.port, "old", if_index=2)],
         [("T1", "10.30.0.21"), ("T9", "10.30.0.29")]))
    targets = targets_of(config)
    obs = await cycle(snmp_probe, targets)
    dc = obs["DC-1/primary/snmp"].values
    assert (dc["rx_power_dbm"], dc["tx_power_dbm"]) == (-5.123, -0.987)
    assert obs["DC-1/backup/snmp"].values["rx_power_dbm"] == -9.0
    old = obs["OLD-1/primary/snmp"]
    assert old.ok and old.values["if_index"] == 1 and "rx_power_dbm" not in old.values
    down = obs["OLD-1/backup/snmp"].values
    assert (down["oper_up"], down["admin_up"], down["last_change_seconds"]) == (0, 1, 100.0)
    arp = obs["OLD-1/neighbours"]
    assert arp.values == {"terminals_expected": 2, "terminals_seen": 1, "unexpected_devices": 1}
    assert arp.details == {"missing": ("T9",), "unexpected": ("10.30.0.22",)}
    await asyncio.sleep(1.1)
    old = (await cycle(snmp_probe, targets))["OLD-1/primary/snmp"]
    assert old.values["in_bps"] == 0 and old.values["out_bps"] == 0  # 32-bit octets, static recording


async def test_agent_with_wrong_types_or_nothing(snmpsim_agents: Start, recordings: Path,
                                                 snmp_probe: SnmpProbe) -> None:
    """Wrong types and out-of-range values give ok=False with a reason; missing objects give no_such_object;
    a wrongly typed counter is left out, and the rest of the port still counts."""
    agent = snmpsim_agents(recordings)
    config = make_config(
        {"broken": {"community": "broken-agent"}, "ups": {"community": "system-only"}},
        ("B-1", [snmp_link("primary", agent.port, "broken", if_index=1),
                 snmp_link("backup", agent.port, "broken", if_index=2)], []),
        ("B-2", [snmp_link("primary", agent.port, "broken", if_index=3),
                 snmp_link("backup", agent.port, "broken", if_index=99)], []),
        ("U-1", [snmp_link("primary", agent.port, "ups", if_index=1),
                 snmp_link("backup", agent.port, "ups", if_name="eth0", neighbours=True)], [("T1", "10.1.1.1")]))
    obs = await cycle(snmp_probe, targets_of(config))
    string_status = obs["B-1/primary/snmp"]
    assert (string_status.ok, string_status.failure) == (False, "bad_response")
    assert string_status.reason == "1.3.6.1.2.1.2.2.1.8.1 is OctetString, expected INTEGER"
    counter = obs["B-1/backup/snmp"]
    assert counter.ok and counter.values["oper_up"] == 1 and "uptime_seconds" not in counter.values
    assert "1.3.6.1.2.1.31.1.1.1.6.2 is OctetString, expected Counter64 (ignored)" in counter.reason
    assert (obs["B-2/primary/snmp"].failure, obs["B-2/primary/snmp"].reason) == (
        "bad_response", "ifOperStatus 1 or ifAdminStatus 9 out of range")
    assert obs["B-2/backup/snmp"].failure == "no_such_object"
    assert obs["U-1/primary/snmp"].failure == "no_such_object"
    assert obs["U-1/backup/snmp"].reason == "no interface named 'eth0' in ifName or ifDescr"
    arp = obs["U-1/neighbours"]  # no ARP table at all: every terminal missing, and the probe says so
    assert arp.ok and arp.values["terminals_seen"] == 0 and arp.details["missing"] == ("T1",)


async def test_v3_auth_priv_and_auth_no_priv(snmpsim_agents: Start, tmp_path: Path, snmp_probe: SnmpProbe) -> None:
    """SNMPv3 users with SHA-2 and AES (authPriv) and with SHA (authNoPriv); a wrong key is an auth failure."""
    data = tmp_path / "v3"
    spec = DeviceSpec(ports=[Port(5, "xe-0/0/5", rx_dbm=-3.2, tx_dbm=-1.1)])
    write_device(data, V3_DEVICE, interface_device(spec))
    agent = snmpsim_agents(data, users=[V3User("priv-user", "AuthKeySha512!", "SHA512", "PrivKeyAes128!", "AES"),
                                        V3User("auth-user", "AuthKeySha1!", "SHA")])
    auths = {"priv": {"version": "3", "user": "priv-user", "auth_protocol": "SHA512", "auth_key": "AuthKeySha512!",
                      "priv_protocol": "AES", "priv_key": "PrivKeyAes128!"},
             "auth": {"version": "3", "user": "auth-user", "auth_protocol": "SHA", "auth_key": "AuthKeySha1!"}}
    config = make_config(auths, ("V3", [snmp_link("primary", agent.port, "priv", if_name="xe-0/0/5"),
                                        snmp_link("backup", agent.port, "auth", if_index=5)], []))
    obs = await cycle(snmp_probe, targets_of(config))
    for key in ("V3/primary/snmp", "V3/backup/snmp"):
        assert obs[key].ok, obs[key].reason
        assert (obs[key].values["if_index"], obs[key].values["rx_power_dbm"]) == (5, -3.2)
    wrong = make_config({"auth": {**auths["auth"], "auth_key": "NotTheKey123"}},
                        ("V3", [snmp_link("primary", agent.port, "auth", if_index=5)], []))
    probe = SnmpProbe()
    try:
        o = (await cycle(probe, targets_of(wrong)))["V3/primary/snmp"]
    finally:
        await probe.close()
    assert (o.ok, o.failure) == (False, "auth_failed")
    assert "NotTheKey123" not in repr(o)


# --- snmpsim: time, counters, restarts ---------------------------------------------------------------


async def test_counters_that_wrap_give_steady_rates(snmpsim_agents: Start, recordings: Path,
                                                    snmp_probe: SnmpProbe) -> None:
    """A Counter64 at 1 MB/s and a Counter32 at 1000 errors/s both wrap during the test: every rate
    stays near the truth, none is negative or absurd."""
    agent = snmpsim_agents(recordings)
    config = make_config({"w": {"community": "wrapping-counters"}},
                         ("W-1", [snmp_link("primary", agent.port, "w", if_name="Gi0/1")], []))
    targets = targets_of(config)
    in_bps, errors, octets, error_totals = [], [], [], []
    for _ in range(8):
        o = (await cycle(snmp_probe, targets))["W-1/primary/snmp"]
        assert o.ok, o.reason
        in_bps.append(o.values.get("in_bps"))
        errors.append(o.values.get("in_errors_per_second"))
        octets.append(o.values["in_octets_total"])
        error_totals.append(o.values["in_errors_total"])
        await asyncio.sleep(0.6)
    assert in_bps[0] is None and errors[0] is None
    assert all(r == pytest.approx(8e6, rel=0.25) for r in in_bps[1:]), in_bps
    assert all(r == pytest.approx(1000, rel=0.25) for r in errors[1:]), errors
    # The counters exported for Prometheus start at 0 and only grow, through the device's wraps.
    assert octets[0] == 0 and error_totals[0] == 0
    assert all(b > a for a, b in itertools.pairwise(octets)), octets
    assert all(b > a for a, b in itertools.pairwise(error_totals)), error_totals
    assert await raw_get(agent.port, "wrapping-counters", "1.3.6.1.2.1.31.1.1.1.6.1") < 2**63  # it did wrap


async def test_agent_restart_renumbers_ports(snmpsim_agents: Start, tmp_path: Path, snmp_probe: SnmpProbe) -> None:
    """The router reboots: sysUpTime goes back, Gi0/1 comes back as ifIndex 7 and its counters start over.
    Over v2c and v3 alike the probe says rebooted=1 once, finds the port again, counts the flap and
    reports no negative rate."""
    data = tmp_path / "edge"
    users = [V3User("mon", "EdgeAuthKey1", "SHA256", "EdgePrivKey1", "AES")]

    def boot(spec: DeviceSpec, port: int | None = None, engine_id: str = "80001f8880edbe0001") -> SnmpsimHandle:
        shutil.rmtree(data, ignore_errors=True)
        for name in ("edge", V3_DEVICE):
            write_device(data, name, interface_device(spec))
        return snmpsim_agents(data, users=users, port=port, engine_id=engine_id)

    agent = boot(DeviceSpec(uptime_ticks=50_000_000, ports=[Port(
        1, "Gi0/1", last_change_ticks=100, in_octets=numeric("Counter64", initial=10**12, rate=50_000),
        rx_dbm=-8.0, tx_dbm=-2.0)]))
    v3 = {"version": "3", "user": "mon", "auth_protocol": "SHA256", "auth_key": "EdgeAuthKey1",
          "priv_protocol": "AES", "priv_key": "EdgePrivKey1"}
    config = make_config({"e": {"community": "edge"}, "v3": v3},
                         ("E-1", [snmp_link("primary", agent.port, "e", if_name="Gi0/1"),
                                  snmp_link("backup", agent.port, "v3", if_name="Gi0/1")], []))
    targets = targets_of(config)
    keys = ("E-1/primary/snmp", "E-1/backup/snmp")
    first = await cycle(snmp_probe, targets)
    await asyncio.sleep(1.0)
    second = await cycle(snmp_probe, targets)
    for key in keys:
        assert (first[key].values["if_index"], first[key].values["rebooted"]) == (1, 0)
        assert second[key].values["in_bps"] == pytest.approx(400_000, rel=0.25)

    agent.stop()
    rebooted = DeviceSpec(uptime_ticks=3_000, ports=[Port(
        7, "Gi0/1", last_change_ticks=2_500, in_octets=numeric("Counter64", initial=0, rate=50_000),
        rx_dbm=-8.5, tx_dbm=-2.0)])
    agent = boot(rebooted, port=agent.port)
    third = await cycle(snmp_probe, targets)
    await asyncio.sleep(1.0)
    fourth = await cycle(snmp_probe, targets)
    for key in keys:
        v = third[key].values
        assert third[key].ok, third[key].reason
        assert (v["rebooted"], v["if_index"], v["oper_changes"]) == (1, 7, 1)
        # In watts to a tenth of a microwatt (as the simulator encodes it) -8.5 dBm reads back as -8.499.
        assert v["uptime_seconds"] < 60 and v["rx_power_dbm"] == pytest.approx(-8.5, abs=0.005)
        assert "in_bps" not in v  # across a restart there is no rate, certainly no negative one
        v = fourth[key].values
        assert (v["rebooted"], v["oper_changes"]) == (0, 1)
        assert v["in_bps"] == pytest.approx(400_000, rel=0.25)

    # The router is swapped for a spare with the same address: a new SNMP engine ID. pysnmp would
    # keep using the old one for five minutes; the probe makes it discover the new one after a miss.
    agent.stop()
    boot(rebooted, port=agent.port, engine_id="80001f8880edbe0002")
    fifth = await cycle(snmp_probe, targets)
    sixth = await cycle(snmp_probe, targets)
    assert fifth["E-1/primary/snmp"].ok and sixth["E-1/primary/snmp"].ok
    assert sixth["E-1/backup/snmp"].ok, (fifth["E-1/backup/snmp"], sixth["E-1/backup/snmp"])


async def test_link_flap_set_through_writecache(snmpsim_agents: Start, tmp_path: Path, snmp_probe: SnmpProbe) -> None:
    """A demo-style fault: ifOperStatus and ifLastChange are writable; a SET takes the link down, and the
    probe reports it down with one state change counted, while still ok=True (down is a value)."""
    records = interface_device(DeviceSpec(uptime_grows=False, uptime_ticks=500_000, ports=[Port(3, "Gi0/3")]))
    records[f"{IF_ENTRY}.8.3"] = writable(records[f"{IF_ENTRY}.8.3"])
    records[f"{IF_ENTRY}.9.3"] = writable(records[f"{IF_ENTRY}.9.3"])
    write_device(tmp_path / "flap", "flap", records)
    agent = snmpsim_agents(tmp_path / "flap")
    config = make_config({"f": {"community": "flap"}},
                         ("F", [snmp_link("primary", agent.port, "f", if_name="Gi0/3")], []))
    targets = targets_of(config)
    before = (await cycle(snmp_probe, targets))["F/primary/snmp"]
    engine = SnmpEngine()
    try:
        error, status, _, _ = await set_cmd(
            engine, CommunityData("flap"), await UdpTransportTarget.create(("127.0.0.1", agent.port)), ContextData(),
            ObjectType(ObjectIdentity(f"{IF_ENTRY}.8.3"), Integer(2)),
            ObjectType(ObjectIdentity(f"{IF_ENTRY}.9.3"), TimeTicks(499_000)))
    finally:
        engine.close_dispatcher()
    assert not error and not status, (error, status)
    after = (await cycle(snmp_probe, targets))["F/primary/snmp"]
    assert (before.values["oper_up"], before.values["oper_changes"]) == (1, 0)
    assert after.ok and (after.values["oper_up"], after.values["oper_changes"]) == (0, 1)
    assert after.values["last_change_seconds"] == 10.0


async def test_ports_renumbered_without_reboot(snmpsim_agents: Start, tmp_path: Path, snmp_probe: SnmpProbe) -> None:
    """ifName moves to another ifIndex while sysUpTime runs on (a hot-swapped line card): the probe notices
    the name check fail, finds the port again, and neither mixes the two ports' counters nor counts a flap."""
    records = interface_device(DeviceSpec(ports=[
        Port(1, "Gi0/1", last_change_ticks=100, in_octets=counter64(10**9)),
        Port(2, "Gi0/2", last_change_ticks=200, in_octets=counter64(10**12))]))
    for index in (1, 2):
        records[f"{IF_X_ENTRY}.1.{index}"] = writable(records[f"{IF_X_ENTRY}.1.{index}"])
    write_device(tmp_path / "swap", "swap", records)
    agent = snmpsim_agents(tmp_path / "swap")
    config = make_config({"s": {"community": "swap"}},
                         ("S", [snmp_link("primary", agent.port, "s", if_name="Gi0/1")], []))
    targets = targets_of(config)
    before = (await cycle(snmp_probe, targets))["S/primary/snmp"]
    engine = SnmpEngine()
    try:
        error, status, _, _ = await set_cmd(
            engine, CommunityData("swap"), await UdpTransportTarget.create(("127.0.0.1", agent.port)), ContextData(),
            ObjectType(ObjectIdentity(f"{IF_X_ENTRY}.1.1"), OctetString("Gi0/2")),
            ObjectType(ObjectIdentity(f"{IF_X_ENTRY}.1.2"), OctetString("Gi0/1")))
    finally:
        engine.close_dispatcher()
    assert not error and not status, (error, status)
    await asyncio.sleep(0.5)
    after = (await cycle(snmp_probe, targets))["S/primary/snmp"]
    await asyncio.sleep(0.5)
    later = (await cycle(snmp_probe, targets))["S/primary/snmp"]
    assert before.values["if_index"] == 1
    assert after.ok and (after.values["if_index"], after.values["rebooted"], after.values["oper_changes"]) == (2, 0, 0)
    assert "in_bps" not in after.values  # 10^12 - 10^9 octets in half a second would be a lie
    assert (later.values["in_bps"], later.values["oper_changes"]) == (0, 0)


async def test_slow_and_dead_agents_never_stall_the_cycle(snmpsim_agents: Start, tmp_path: Path,
                                                          recordings: Path, snmp_probe: SnmpProbe) -> None:
    """An agent that answers after 2.5 s and a port nobody answers on time out within timeout x tries;
    forty targets on the dead agent fail fast; the healthy agent's targets are unaffected."""
    slow_dir = tmp_path / "slow"
    shutil.copytree(RECORDINGS / "slow", slow_dir)
    slow = snmpsim_agents(slow_dir)  # a process of its own: snmpsim sleeps in its only thread
    healthy = snmpsim_agents(recordings)
    dead = free_udp_port()
    sites = [("OK", [snmp_link("primary", healthy.port, "core", if_name="Te0/0/0")], []),
             ("SLOW", [snmp_link("primary", slow.port, "slow", if_index=1)], [])]
    sites += [(f"DEAD-{i}", [snmp_link("primary", dead, "core", if_index=1)], []) for i in range(40)]
    config = make_config({"core": {"community": "core-router"}, "slow": {"community": "slow-agent"}}, *sites)
    s = settings(timeout_seconds=0.5, retries=1, device_concurrency=4)
    started = time.monotonic()
    obs = await cycle(snmp_probe, targets_of(config), s, budget=5.0)
    elapsed = time.monotonic() - started
    assert elapsed < s.cycle_budget_seconds() + 1.0, elapsed
    assert obs["OK/primary/snmp"].ok
    assert (obs["SLOW/primary/snmp"].failure, obs["SLOW/primary/snmp"].reason) == (
        "timeout", "no answer within 0.5s x 2 tries (a wrong community looks the same)")
    dead_obs = [o for k, o in obs.items() if k.startswith("DEAD-")]
    assert {o.failure for o in dead_obs} == {"timeout"}
    assert sum(o.reason == "the agent did not answer earlier this cycle" for o in dead_obs) >= 30


async def test_deadline_shorter_than_the_timeout(snmp_probe: SnmpProbe) -> None:
    """The caller owns time: with 0.3 s left, the cycle ends at 0.3 s even though a try may wait 2 s."""
    config = make_config({"ro": {"community": "x"}},
                         *[(f"S{i}", [snmp_link("primary", free_udp_port(), "ro", if_index=1)], []) for i in range(5)])
    await snmp_probe.warm()  # the engine's start-up is the service's prepare(), not part of the 0.3 s under test
    started = time.monotonic()
    obs = await snmp_probe.run(targets_of(config), settings(timeout_seconds=2.0).with_credentials(config.auths),
                               time.monotonic() + 0.3)
    # Well short of one try's 2 s: the deadline, not the timeout, ended the cycle (a loaded 2-core machine
    # may add a second of scheduling delay, so the bound sits below the timeout rather than near 0.3 s).
    assert time.monotonic() - started < 1.9
    assert {(o.failure, o.reason) for o in obs} == {("timeout", "cycle deadline reached while polling")}


async def test_garbage_answers_are_survived(snmp_probe: SnmpProbe) -> None:
    """An agent that answers every request with random bytes and a truncated BER sequence: no valid answer in
    time, and the probe says why (``malformed``, not a plain timeout)."""

    class Garbage(asyncio.DatagramProtocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.transport.sendto(bytes(range(7, 90)), addr)
            self.transport.sendto(b"\x30\x82\xff\xff\x02\x01\x01", addr)

    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(Garbage, local_addr=("127.0.0.1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        config = make_config({"ro": {"community": "x"}}, ("G", [snmp_link("primary", port, "ro", if_name="x")], []))
        o = (await cycle(snmp_probe, targets_of(config)))["G/primary/snmp"]
    finally:
        transport.close()
    assert (o.ok, o.failure) == (False, "malformed")


async def test_secrets_stay_out_of_logs_and_observations(snmpsim_agents: Start, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Communities and keys from config and environment: never in logs, reprs, reasons or targets; a
    missing environment variable is named, its value never."""
    secrets = {"community": "Comm-7f3a9c-secret", "auth": "AuthKey-41d2e8", "priv": "PrivKey-9b7c11"}
    data = tmp_path / "secret"
    write_device(data, secrets["community"], interface_device(DeviceSpec(ports=[Port(1, "Gi0/1")])))
    write_device(data, V3_DEVICE, interface_device(DeviceSpec(ports=[Port(1, "Gi0/1")])))
    agent = snmpsim_agents(data, users=[V3User("mon", secrets["auth"], "SHA256", secrets["priv"], "AES")])
    monkeypatch.setenv("READINESS_TEST_PRIV", secrets["priv"])
    auths = {"v2": {"community": secrets["community"]},
             "v3": {"version": "3", "user": "mon", "auth_protocol": "SHA256", "auth_key": secrets["auth"],
                    "priv_protocol": "AES", "priv_key_env": "READINESS_TEST_PRIV"},
             "v2-wrong": {"community": "Wrong-" + secrets["community"]},
             "v2-env": {"community_env": "READINESS_TEST_UNSET_VARIABLE"}}
    config = make_config(auths, ("S", [snmp_link("primary", agent.port, "v2", if_name="Gi0/1"),
                                       snmp_link("backup", agent.port, "v3", if_index=1)], []),
                         ("W", [snmp_link("primary", agent.port, "v2-wrong", if_index=1),
                                snmp_link("backup", agent.port, "v2-env", if_index=1)], []))
    caplog.set_level(logging.DEBUG)
    probe = SnmpProbe()
    try:
        targets = targets_of(config)
        obs = await cycle(probe, targets, settings(timeout_seconds=0.5))
        probe_state = repr(vars(probe))
    finally:
        await probe.close()
    assert obs["S/primary/snmp"].ok and obs["S/backup/snmp"].ok, obs
    assert obs["W/primary/snmp"].failure == "timeout"
    assert (obs["W/backup/snmp"].failure, obs["W/backup/snmp"].reason) == (
        "auth_failed", "auth v2-env: environment variable READINESS_TEST_UNSET_VARIABLE is not set")
    captured = capsys.readouterr()
    exposed = "\n".join([caplog.text, captured.out, captured.err, repr(obs), repr(targets), repr(config),
                         probe_state, str(config.model_dump())])
    for secret in secrets.values():
        assert secret not in exposed


# --- Net-SNMP snmpd: this machine's interfaces -------------------------------------------------------


def _admin_up(name: str) -> bool:
    flags = int(Path(f"/sys/class/net/{name}/flags").read_text(), 16)
    return bool(flags & 0x1)  # IFF_UP


def _lo_traffic(megabytes: int) -> None:
    """Push ``megabytes`` through the loopback interface over TCP."""
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    peer, _ = server.accept()
    chunk = b"\0" * 65536
    for _ in range(megabytes * 16):
        client.sendall(chunk)
        got = 0
        while got < len(chunk):
            got += len(peer.recv(1 << 20))
    for s in (client, peer, server):
        s.close()


@pytest.fixture
def snmpd_config(snmpd: Snmpd) -> Iterator[Config]:
    interfaces = [name for _, name in socket.if_nameindex()]
    auths = {"v2": {"community": snmpd.community},
             "v3": {"version": "3", "user": snmpd.user, "auth_protocol": "SHA256", "auth_key": snmpd.auth_key,
                    "priv_protocol": "AES", "priv_key": snmpd.priv_key}}
    sites = [("LO", [snmp_link("primary", snmpd.port, "v2", if_name="lo"),
                     snmp_link("backup", snmpd.port, "v3", if_name="lo")], [])]
    sites += [(f"IF{i}", [snmp_link("primary", snmpd.port, "v3", if_index=socket.if_nametoindex(n))], [])
              for i, n in enumerate(interfaces)]
    if snmpd.ipv6:
        sites.append(("LO6", [snmp_link("primary", snmpd.port, "v2", device="::1", if_name="lo")], []))
    yield make_config(auths, *sites)


async def test_snmpd_reads_this_machines_interfaces(snmpd: Snmpd, snmpd_config: Config,
                                                    snmp_probe: SnmpProbe) -> None:
    """Net-SNMP answers for the real ifTable, over v2c and v3 authPriv (SHA-256, AES), on 127.0.0.1 and ::1:
    lo resolves to the kernel's ifindex, every interface's admin state matches /sys, and loopback traffic
    shows up in bits per second."""
    targets = targets_of(snmpd_config)
    first = await cycle(snmp_probe, targets, settings(timeout_seconds=2.0))
    lo_index = socket.if_nametoindex("lo")
    for key in ("LO/primary/snmp", "LO/backup/snmp", *(["LO6/primary/snmp"] * snmpd.ipv6)):
        assert first[key].ok, first[key].reason
        assert (first[key].values["if_index"], first[key].values["oper_up"]) == (lo_index, 1)
        assert 0 < first[key].values["uptime_seconds"] < 3600
    for i, (_, name) in enumerate(socket.if_nameindex()):
        o = first[f"IF{i}/primary/snmp"]
        assert o.ok, o.reason
        assert o.values["admin_up"] == float(_admin_up(name)), name
    # Net-SNMP refreshes its interface counters every few seconds; wait out its cache around the traffic.
    await asyncio.sleep(3.5)
    before = await cycle(snmp_probe, targets, settings(timeout_seconds=2.0))
    await asyncio.to_thread(_lo_traffic, 64)
    await asyncio.sleep(3.5)
    after = await cycle(snmp_probe, targets, settings(timeout_seconds=2.0))
    assert before["LO/primary/snmp"].values["in_bps"] >= 0
    for key in ("LO/primary/snmp", "LO/backup/snmp"):
        bits = after[key].values["in_bps"] * 7.0  # over the ~7 s between the two readings
        assert bits >= 64 * 2**20 * 8 * 0.5, after[key].values
        assert after[key].values["in_errors_per_second"] == 0


async def test_snmpd_arp_table_against_terminals(snmpd: Snmpd, snmp_probe: SnmpProbe) -> None:
    """The neighbours this machine's kernel knows (/proc/net/arp) are seen through snmpd's
    ipNetToPhysicalTable; a terminal that is not there is reported missing."""
    known = []
    for line in Path("/proc/net/arp").read_text().splitlines()[1:]:
        address, _, flags, *_ = line.split()
        if int(flags, 16) & 0x2:  # ATF_COM: a complete entry
            known.append(address)
    terminals = [(f"K{i}", a) for i, a in enumerate(known)] + [("GHOST", "198.51.100.250")]
    config = make_config({"v2": {"community": snmpd.community}},
                         ("ARP", [snmp_link("primary", snmpd.port, "v2", if_name="lo", neighbours=True)], terminals))
    o = (await cycle(snmp_probe, targets_of(config), settings(timeout_seconds=2.0)))["ARP/neighbours"]
    assert o.ok, o.reason
    assert o.values["terminals_expected"] == len(terminals)
    assert o.values["terminals_seen"] == len(known)
    assert o.details["missing"] == ("GHOST",)


async def test_many_targets_one_cycle(snmpsim_agents: Start, tmp_path: Path, snmp_probe: SnmpProbe) -> None:
    """Three hundred interfaces on thirty devices, polled in one cycle with one engine and one socket."""
    data = tmp_path / "many"
    spec = DeviceSpec(ports=[Port(i, f"Gi0/{i}", in_octets=counter64(i * 1000), rx_dbm=-5 - i / 10)
                             for i in range(1, 11)])
    for d in range(30):
        write_device(data, f"dev{d}", interface_device(spec))
    agent = snmpsim_agents(data)
    auths = {f"a{d}": {"community": f"dev{d}"} for d in range(30)}
    sites = [(f"S{d}-{i}", [snmp_link("primary", agent.port, f"a{d}", if_name=f"Gi0/{i}"),
                            snmp_link("backup", agent.port, f"a{d}", if_index=11 - i)], [])
             for d in range(30) for i in range(1, 6)]
    targets = targets_of(make_config(auths, *sites))
    obs = await cycle(snmp_probe, targets, settings(timeout_seconds=5.0), budget=25)
    assert all(o.ok for o in obs.values()), [o for o in obs.values() if not o.ok][:3]
    assert obs["S29-5/primary/snmp"].values["rx_power_dbm"] == pytest.approx(-5.5, abs=0.005)  # 0.1 uW steps
    sent = snmp_probe.pdus_sent
    obs = await cycle(snmp_probe, targets, settings(timeout_seconds=5.0), budget=25)
    assert all(o.ok for o in obs.values())
    assert snmp_probe.pdus_sent - sent == len(targets)  # steady state: one GET per interface, walks cached
