"""Optical power as real devices report it: LibreNMS's recordings of two Arista EOS switches and an Edgecore
SONiC switch (ENTITY-SENSOR-MIB watts, milli, precision 4), and a Cisco IOS-XE router written after Cisco's
MIBs (CISCO-ENTITY-SENSOR-MIB dBm; RFC 3433 other(1) named "Rx Power Sensor"), all served by snmpsim.

The LibreNMS recordings and what LibreNMS's own tests expect of them live next to the checkout, in
../shared/peer-data/librenms/ (expected.json says where each came from). Without that folder those tests
skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pysnmp.proto import rfc1902, rfc1905

from monitor.demo.snmpsim import SnmpsimHandle
from probes._snmp_entities import (
    CISCO_SENSOR,
    ENT_SENSOR,
    NO_LIGHT,
    NO_SENSOR,
    OUT_OF_RANGE,
    SENSOR_UNAVAILABLE,
    UNSUPPORTED_TYPE,
    _classify,
    _Entities,
    _Sensor,
)
from probes.snmp import SnmpProbe, _optics_values, _Port
from tests.helpers import require
from tests.probes.test_snmp import cycle, make_config, settings, snmp_link, targets_of

Start = Callable[..., SnmpsimHandle]
PEER_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "peer-data" / "librenms"


@pytest.fixture
async def probe() -> Any:
    p = SnmpProbe()
    yield p
    await p.close()


# --- the encodings ---------------------------------------------------------------------------------


WATTS_MILLI_4 = _Sensor(1, ENT_SENSOR, True, -3 - 4)  # Arista, SONiC: tenths of a microwatt
WATTS_NANO_0 = _Sensor(2, ENT_SENSOR, True, -9)
DBM_UNITS_1 = _Sensor(3, CISCO_SENSOR, False, -1)  # Cisco: tenths of a dBm


@pytest.mark.parametrize(("sensor", "value", "status", "expected"), [
    (WATTS_MILLI_4, 6322, 1, -1.991),  # Arista Ethernet1 tx
    (WATTS_MILLI_4, 1, 1, -40.0),  # Arista Ethernet1 rx: 0.1 uW is a reading, the smallest there is
    (WATTS_MILLI_4, 890, 1, -10.506),  # SONiC Eth56 lane 2
    (WATTS_MILLI_4, 12110, 1, 0.831),
    (WATTS_MILLI_4, -1_000_000_000, 1, SENSOR_UNAVAILABLE),  # EOS: no value
    (WATTS_MILLI_4, 5310, 2, SENSOR_UNAVAILABLE),  # entPhySensorOperStatus unavailable(2)
    (WATTS_MILLI_4, 5310, 3, SENSOR_UNAVAILABLE),  # nonoperational(3)
    (WATTS_MILLI_4, None, None, SENSOR_UNAVAILABLE),  # no such instance
    (WATTS_MILLI_4, 0, 1, NO_LIGHT),  # SONiC writes -inf as 0: never -inf, never a made-up -40
    (WATTS_MILLI_4, -5, 1, OUT_OF_RANGE),
    (WATTS_MILLI_4, 5310, None, -2.749),  # an agent without the status column is believed
    (WATTS_NANO_0, 307_397, 1, -5.123),
    (DBM_UNITS_1, -73, 1, -7.3),
    (DBM_UNITS_1, 12, 1, 1.2),
    (DBM_UNITS_1, -1270, 1, OUT_OF_RANGE),  # -127 dBm: no light or a broken sensor, not a reading
])
def test_reading_in_dbm_or_why_not(sensor: _Sensor, value: int | None, status: int | None,
                                   expected: float | str) -> None:
    """Watts become 10*log10(mW); "not available" in any of its spellings is no reading, with its code."""
    assert sensor.reading(value, status) == expected


def _answer(std: tuple[int | None, ...], cisco: tuple[int | None, ...], klass: int | None, name: str,
            descr: str = "") -> list[tuple[tuple[int, ...], Any]]:
    """An answer to _sensor_type_oids for one sensor: RFC 3433 type/scale/precision, Cisco's, class, name, descr."""
    def integer(v: int | None) -> Any:
        return rfc1905.noSuchInstance if v is None else rfc1902.Integer32(v)
    values = [*map(integer, std), *map(integer, cisco), integer(klass), rfc1902.OctetString(name),
              rfc1902.OctetString(descr)]
    return [((1,), v) for v in values]


NONE3 = (None, None, None)


@pytest.mark.parametrize(("answer", "expected", "note"), [
    (_answer((6, 8, 4), NONE3, 8, "", "DOM RX Power Sensor for Ethernet1"), _Sensor(7, ENT_SENSOR, True, -7), ""),
    (_answer((6, 7, 2), NONE3, 8, "Eth1 Rx Power"), _Sensor(7, ENT_SENSOR, True, -8), ""),  # any scale, precision
    # Cisco's table wins where the sensor is in both.
    (_answer((1, 9, 1), (14, 9, 1), 8, "Te0/0/0 Receive Power Sensor"), _Sensor(7, CISCO_SENSOR, False, -1), ""),
    (_answer(NONE3, (14, 8, 0), 8, "Ethernet1/1 Lane 1 Transceiver Receive Power Sensor"),
     _Sensor(7, CISCO_SENSOR, False, -3), ""),
    (_answer(NONE3, (6, 7, 1), 8, "Gi0/1 Rx Power Sensor"), _Sensor(7, CISCO_SENSOR, True, -7), ""),
    # ASR 920: other(1) on a sensor named "... Rx Power Sensor" is dBm; so is unknown(2).
    (_answer((1, 9, 1), NONE3, 8, "subslot 0/0 transceiver 2 Rx Power Sensor"),
     _Sensor(7, ENT_SENSOR, False, -1), ""),
    (_answer((2, 9, 1), NONE3, None, "", "Gi0/2 Transmit Power Sensor"), _Sensor(7, ENT_SENSOR, False, -1), ""),
    # Some Cisco releases answer a nonsense precision: no decimals, as LibreNMS does.
    (_answer(NONE3, (14, 9, 1615384784), 8, "Te0/1 Rx Power Sensor"), _Sensor(7, CISCO_SENSOR, False, 0), ""),
    # ... but other(1) under any other name, or on an entity that is not a sensor, is not light.
    (_answer((1, 9, 1), NONE3, 8, "Gi0/2 Rx Power"), UNSUPPORTED_TYPE, "entPhySensorType other(1)"),
    (_answer((1, 9, 1), NONE3, 9, "Gi0/2 Rx Power Sensor"), UNSUPPORTED_TYPE, "entPhySensorType other(1)"),
    # RFC 3433 has no dBm: an agent writing 14 there says nothing the standard defines.
    (_answer((14, 9, 1), NONE3, 8, "Gi0/2 Rx Power Sensor"), UNSUPPORTED_TYPE, "entPhySensorType dBm(14)"),
    (_answer(NONE3, (8, 9, 1), 8, "Te0/0/0 Temperature Sensor"), UNSUPPORTED_TYPE, "entSensorType celsius(8)"),
    (_answer((6, 0, 4), NONE3, 8, "Eth1 Rx Power"), UNSUPPORTED_TYPE, "sensor scale 0 is not in RFC 3433"),
    (_answer(NONE3, NONE3, None, ""), NO_SENSOR, "in neither entPhySensorTable nor entSensorValueTable"),
])
def test_classify_the_encodings(answer: list[tuple[tuple[int, ...], Any]], expected: _Sensor | str,
                                note: str) -> None:
    """Which table and which encoding a sensor's power is read from; what is refused, with a note."""
    notes: list[str] = []
    assert _classify(7, answer, notes) == expected
    assert (note in notes[0]) if note else notes == [], notes


def test_lanes_found_through_the_entity_tree() -> None:
    """A port entity named like the port's ifDescr (SONiC) holds four lanes per direction; Arista's sensors
    sit under a transceiver slot apart from the port and are found by their names."""
    sonic = _Entities(power=[134, 133, 132, 131, 124, 123, 122, 121, 150], parent={
        131: 100, 132: 100, 133: 100, 134: 100, 121: 100, 122: 100, 123: 100, 124: 100, 150: 100, 100: 1},
        labels={100: ("ethernet0", "sfp/sfp+/sfp28 for eth6/3(port1)"),
                **{s: (f"dom rx power sensor for eth6/3(port1)/{s - 130}", "") for s in (131, 132, 133, 134)},
                **{s: (f"dom tx power sensor for eth6/3(port1)/{s - 120}", "") for s in (121, 122, 123, 124)},
                150: ("psu 1 output power", "")})
    assert sonic.sensors(1, ["Eth6/3(Port1)", "Ethernet0"]) == ([131, 132, 133, 134], [121, 122, 123, 124])
    arista = _Entities(power=[100301212, 100301213, 100302213], parent={
        100301213: 100301210, 100301212: 100301210, 100301210: 100301100, 100301100: 100301000, 100100001: 1},
        labels={100100001: ("", "ethernet1"), 100301212: ("", "dom tx power sensor for ethernet1"),
                100301213: ("", "dom rx power sensor for ethernet1"),
                100302213: ("", "dom rx power sensor for ethernet2")})
    assert arista.sensors(1, ["Ethernet1", "Ethernet1"]) == ([100301213], [100301212])


def test_lanes_weakest_every_lit_lane_and_why_not() -> None:
    """Four lit lanes: the weakest and each lane. An SFP among SONiC's four lane sensors: its one lane, no
    lane values, no warning for the lanes it lacks. A dark lane among lit ones: reported. No lane lit: why."""
    port = _Port(0, optics={"rx": [_Sensor(s, ENT_SENSOR, True, -7) for s in (31, 32, 33, 34)],
                            "tx": [_Sensor(s, ENT_SENSOR, True, -7) for s in (21, 22, 23, 24)]})

    def read(rx: list[tuple[int, int]], tx: list[tuple[int, int]]) -> tuple[dict[str, float], Any]:
        got = {f"{d}:{base + n}{suffix}": x for d, base, lanes in (("rx", 31, rx), ("tx", 21, tx))
               for n, (value, status) in enumerate(lanes) for suffix, x in (("", value), (":status", status))}
        values: dict[str, float] = {}
        return values, _optics_values(port, got, values)

    values, details = read([(900, 1), (890, 1), (1100, 1), (1040, 1)], [(11780, 1), (0, 2), (0, 2), (0, 2)])
    assert values == {"rx_power_dbm": -10.506, "rx_lane1_power_dbm": -10.458, "rx_lane2_power_dbm": -10.506,
                      "rx_lane3_power_dbm": -9.586, "rx_lane4_power_dbm": -9.83, "tx_power_dbm": 0.711}
    assert details == {"optics_sensors": ("rx 31", "rx 32", "rx 33", "rx 34", "tx 21", "tx 22", "tx 23", "tx 24")}
    values, details = read([(900, 1), (0, 1), (1100, 1), (1040, 1)], [(0, 1), (0, 2), (-1_000_000_000, 1), (0, 2)])
    assert values["rx_power_dbm"] == -10.458 and "rx_lane2_power_dbm" not in values and "tx_power_dbm" not in values
    assert details["optics"] == ("optics.no_light rx", "optics.no_light tx")
    values, details = read([(0, 2)] * 4, [(0, 2), (-1_000_000_000, 1), (0, 3), (0, 2)])
    assert values == {} and details["optics"] == ("optics.sensor_unavailable rx", "optics.sensor_unavailable tx")


# --- LibreNMS's recordings of real switches --------------------------------------------------------------


@pytest.fixture
def librenms(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """Return a data dir holding a copy of each recording (file name = community) and expected.json."""
    require(PEER_DATA.is_dir(), f"LibreNMS's device recordings are not at {PEER_DATA.resolve()} "
                                "(../shared/peer-data/librenms next to the checkout)")
    expected = json.loads((PEER_DATA / "expected.json").read_text(encoding="utf-8"))
    data = tmp_path / "librenms"
    data.mkdir()
    for name in expected["recordings"]:
        shutil.copyfile(PEER_DATA / f"{name}.snmprec", data / f"{name}.snmprec")
    return data, expected


def _mismatches(where: str, values: dict[str, float], details: dict[str, tuple[str, ...]], direction: str,
                want: dict[str, Any], tolerance: float, lanes: bool) -> list[str]:
    """Return what differs from LibreNMS's reading of one direction of one port."""
    got = values.get(f"{direction}_power_dbm")
    dbm = want.get("weakest_dbm", want["dbm"]) if lanes else want["dbm"]
    out = []
    if dbm is None:  # LibreNMS has no light reading: none from us either (or one at or under -40 dBm)
        if got is not None and got > -40:
            out.append(f"{where} {direction}: {got} dBm where LibreNMS has no reading")
        if got is None and not any(w.endswith(f" {direction}") for w in details.get("optics", ())):
            out.append(f"{where} {direction}: no reading and no reason given")
    elif got is None or abs(got - dbm) > tolerance:
        out.append(f"{where} {direction}: {got} dBm, LibreNMS {dbm} ({want['librenms']})")
    if lanes and "lanes" in want:
        for n, lane in enumerate(want["lanes"], 1):
            reading = values.get(f"{direction}_lane{n}_power_dbm")
            if reading is None or abs(reading - lane["dbm"]) > tolerance:
                out.append(f"{where} {direction} lane {n}: {reading} dBm, LibreNMS {lane['dbm']}")
    return out


async def test_librenms_recordings_match_librenms(snmpsim_agents: Start, librenms: tuple[Path, dict[str, Any]],
                                                  probe: SnmpProbe) -> None:
    """Every port LibreNMS's tests check on the two Arista EOS and the Edgecore SONiC recordings: oper and admin
    status, and receive and transmit power within 0.05 dB of LibreNMS, both with the sensors found from the
    port (the weakest lane, and every lane) and with the sensors given as rx_sensor/tx_sensor."""
    data, expected = librenms
    agent = snmpsim_agents(data)
    tolerance = expected["tolerance_db"]
    ports = [(rec, p) for rec, r in expected["recordings"].items() for p in r["ports"]]
    assert len(ports) == 13
    sites = [(f"{rec}-{p['if_index']}",
              [snmp_link("primary", agent.port, rec, if_name=p["if_name"]),
               snmp_link("backup", agent.port, rec, if_index=p["if_index"], rx_sensor=p["rx"]["sensor"],
                         tx_sensor=p["tx"]["sensor"])], []) for rec, p in ports]
    config = make_config({rec: {"community": rec} for rec in expected["recordings"]}, *sites)
    obs = await cycle(probe, targets_of(config), settings(timeout_seconds=5.0), budget=60)
    wrong: list[str] = []
    for rec, p in ports:
        for role, found in (("primary", True), ("backup", False)):
            o = obs[f"{rec}-{p['if_index']}/{role}/snmp"]
            where = f"{rec} {p['if_name']} ({'found' if found else 'given'})"
            if not o.ok:
                wrong.append(f"{where}: {o.failure} {o.reason}")
                continue
            v = o.values
            if (v["oper_up"], v["admin_up"]) != (float(p["oper"] == "up"), float(p["admin"] == "up")):
                wrong.append(f"{where}: oper_up {v['oper_up']} admin_up {v['admin_up']}, LibreNMS {p['oper']}/"
                             f"{p['admin']}")
            read = set(o.details.get("optics_sensors", ()))
            for d in ("rx", "tx"):
                lanes = [lane["sensor"] for lane in p[d].get("lanes", [])] if found else []
                sensors = lanes or [p[d]["sensor"]]
                if not {f"{d} {s}" for s in sensors} <= read:
                    wrong.append(f"{where} {d}: read {sorted(read)}, LibreNMS {sensors}")
                wrong += _mismatches(where, dict(v), dict(o.details), d, p[d], tolerance, found)
    assert not wrong, "\n".join(wrong)
    print(f"{len(ports)} of {len(ports)} ports match LibreNMS within {tolerance} dB, sensors found and given")


# --- a Cisco router, after Cisco's MIBs ---------------------------------------------------------------------


async def test_cisco_iosxe_power_sensors(snmpsim_agents: Start, recordings: Path, probe: SnmpProbe) -> None:
    """tests/data/snmp/cisco-iosxe.snmprec: transceivers under their ports (entAliasMappingTable), dBm(14) in
    CISCO-ENTITY-SENSOR-MIB with precision 1 and 2, an ASR 920-style other(1) "Rx Power Sensor" in RFC 3433's
    table, a transceiver without receive DOM, a copper port, and a temperature sensor given as rx_sensor."""
    agent = snmpsim_agents(recordings)
    config = make_config(
        {"c": {"community": "cisco-iosxe"}},
        ("C1", [snmp_link("primary", agent.port, "c", if_name="Te0/0/0"),
                snmp_link("backup", agent.port, "c", if_name="TenGigabitEthernet0/0/1")], []),
        ("C2", [snmp_link("primary", agent.port, "c", if_name="Gi0/0/2"),
                snmp_link("backup", agent.port, "c", if_index=4)], []),
        ("C3", [snmp_link("primary", agent.port, "c", if_name="Gi0/0/4"),
                snmp_link("backup", agent.port, "c", if_index=1, rx_sensor=1102)], []))
    obs = await cycle(probe, targets_of(config))
    assert all(o.ok for o in obs.values()), obs

    def power(key: str) -> tuple[float | None, float | None]:
        return obs[key].values.get("rx_power_dbm"), obs[key].values.get("tx_power_dbm")

    assert power("C1/primary/snmp") == (-7.3, -2.1)  # dBm, units, precision 1
    assert power("C1/backup/snmp") == (-23.45, -2.34)  # dBm, units, precision 2
    assert obs["C1/primary/snmp"].details == {"optics_sensors": ("rx 1106", "tx 1105")}
    assert power("C2/primary/snmp") == (-26.4, -2.4)  # other(1), named "... Rx Power Sensor"
    assert obs["C2/primary/snmp"].details["optics_sensors"] == ("rx 1126", "tx 1125")
    dark = obs["C2/backup/snmp"]  # entSensorStatus unavailable(2) on the receive side
    assert (dark.values["oper_up"], power("C2/backup/snmp")) == (0, (None, -3.0))
    assert dark.details["optics"] == ("optics.sensor_unavailable rx",)
    copper = obs["C3/primary/snmp"]
    assert power("C3/primary/snmp") == (None, None)
    assert copper.details == {"optics": ("optics.no_sensor rx", "optics.no_sensor tx")}
    given = obs["C3/backup/snmp"]  # a temperature sensor given as rx_sensor: refused; tx still found
    assert power("C3/backup/snmp") == (None, -2.1)
    assert given.details["optics"] == ("optics.unsupported_type rx",)
    assert "entPhysicalIndex 1102: entSensorType celsius(8) is not an optical power encoding" in given.reason
