"""Optics and neighbours: ENTITY-MIB, ENTITY-SENSOR-MIB and CISCO-ENTITY-SENSOR-MIB discovery and scaling,
ARP/neighbour tables.

Private to ``probes.snmp``. These functions walk and parse; the probe owns the per-device caches,
the locks and the cycle they belong to.

Optical power as devices really encode it:

- RFC 3433 ``entPhySensorTable`` with ``watts(6)``, any scale and precision (Arista EOS and SONiC use
  ``milli(8)`` with precision 4: tenths of a microwatt); dBm is 10*log10(mW). Its ``EntitySensorDataType``
  ends at ``truthvalue(12)``: there is no dBm in the standard table.
- ``other(1)``/``unknown(2)`` in that table on a sensor(8) entity named "... Rx Power Sensor", "... Tx Power
  Sensor", "... Receive/Transmit Power Sensor" (Cisco ASR 920 / IOS-XE, as LibreNMS documents it): the
  value, scaled, is dBm.
- Cisco's ``entSensorValueTable`` (CISCO-ENTITY-SENSOR-MIB, 1.3.6.1.4.1.9.9.91) with ``dBm(14)`` (or
  ``watts(6)``), indexed by the same entPhysicalIndex; it wins where a sensor is in both tables.

"Not available" is no reading, never -inf or an invented floor: a value of -1000000000 (EOS), an
entPhySensorOperStatus/entSensorStatus of unavailable(2) or nonoperational(3), or 0 W (SONiC's -inf).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from probes._snmp_engine import OID, _Engine, _Failure, _int_or_none, _text, _typed

IF_INDEX: OID = (1, 3, 6, 1, 2, 1, 2, 2, 1, 1)  # RFC 2863 ifIndex, what entAliasMappingIdentifier points at
ENT_PHYSICAL: OID = (1, 3, 6, 1, 2, 1, 47, 1, 1, 1, 1)  # RFC 6933 entPhysicalTable
ENT_ALIAS_ID: OID = (1, 3, 6, 1, 2, 1, 47, 1, 3, 2, 1, 2)  # entAliasMappingIdentifier
ENT_SENSOR: OID = (1, 3, 6, 1, 2, 1, 99, 1, 1, 1)  # RFC 3433 entPhySensorTable
CISCO_SENSOR: OID = (1, 3, 6, 1, 4, 1, 9, 9, 91, 1, 1, 1, 1)  # CISCO-ENTITY-SENSOR-MIB entSensorValueTable
NET_TO_PHYSICAL: OID = (1, 3, 6, 1, 2, 1, 4, 35, 1)  # RFC 4293 ipNetToPhysicalTable
NET_TO_MEDIA: OID = (1, 3, 6, 1, 2, 1, 4, 22, 1)  # RFC 1213 ipNetToMediaTable (deprecated, still common)
# Sensor types. Both tables share 1..12 (RFC 3433 EntitySensorDataType); Cisco's SensorDataType adds
# specialEnum(13), dBm(14) and dB(15), which only its own table may carry.
SENSOR_OTHER, SENSOR_UNKNOWN, SENSOR_WATTS, SENSOR_DBM = 1, 2, 6, 14
SENSOR_TYPES = {1: "other", 2: "unknown", 3: "voltsAC", 4: "voltsDC", 5: "amperes", 6: "watts", 7: "hertz",
                8: "celsius", 9: "percentRH", 10: "rpm", 11: "cmm", 12: "truthvalue", 13: "specialEnum", 14: "dBm",
                15: "dB"}
POWER_TYPES = frozenset({SENSOR_OTHER, SENSOR_UNKNOWN, SENSOR_WATTS, SENSOR_DBM})  # worth reading the names of
CLASS_SENSOR = 8  # entPhysicalClass sensor(8)
NOT_AVAILABLE = 1_000_000_000  # entPhySensorValue -1000000000: Arista's "no value" (the type's own bound)
# entPhySensorScale -> power of ten (RFC 3433; note exa(14) is 10^18 and peta(15) is 10^15)
SCALE_EXPONENT = {1: -24, 2: -21, 3: -18, 4: -15, 5: -12, 6: -9, 7: -6, 8: -3, 9: 0,
                  10: 3, 11: 6, 12: 9, 13: 12, 14: 18, 15: 15, 16: 21, 17: 24}
MAX_LANES = 8  # sensors per direction (QSFP: 4 lanes, QSFP-DD/OSFP: 8); the weakest one is reported
DBM_RANGE = (-80.0, 40.0)  # outside: no light or a broken sensor, not a reading

# Why a direction has no reading: bounded codes, carried in Observation.details["optics"] as "<code> rx|tx".
NO_SENSOR = "optics.no_sensor"  # no optical power sensor under (or named after) the port, none configured
SENSOR_UNAVAILABLE = "optics.sensor_unavailable"  # -1000000000, status unavailable/nonoperational, no instance
UNSUPPORTED_TYPE = "optics.unsupported_type"  # a sensor whose type or scale is not an optical power encoding
NO_LIGHT = "optics.no_light"  # 0 W: nothing the receiver can measure (SONiC writes -inf as 0)
OUT_OF_RANGE = "optics.out_of_range"  # a negative power, or dBm outside DBM_RANGE
OPTICS_CODES = (NO_SENSOR, SENSOR_UNAVAILABLE, UNSUPPORTED_TYPE, NO_LIGHT, OUT_OF_RANGE)

_RX = re.compile(r"(?<![a-z])(rx|receive)")
_TX = re.compile(r"(?<![a-z])(tx|transmit)")
_NOT_POWER = re.compile(r"bias|temperature|voltage|current")
_CISCO_NAMED = re.compile(r"(?<![a-z])(rx|tx|receive|transmit) power sensor")  # other(1)/unknown(2) as dBm

Walk = Callable[[Sequence[OID]], Awaitable[dict[OID, dict[OID, Any]]]]  # columns -> each column's rows by index


def _direction(text: str) -> str | None:
    """Return "rx" or "tx" for an optical power sensor's name, None for anything else."""
    if "power" not in text or _NOT_POWER.search(text):
        return None
    rx, tx = bool(_RX.search(text)), bool(_TX.search(text))
    return None if rx == tx else "rx" if rx else "tx"


@dataclass
class _Entities:
    """ENTITY-MIB and the sensor tables, as far as optics need them."""

    power: list[int]  # sensors whose type may carry optical power, in either sensor table
    parent: dict[int, int] = field(default_factory=dict)
    labels: dict[int, tuple[str, str]] = field(default_factory=dict)  # entPhysicalName, entPhysicalDescr
    alias: dict[int, set[int]] = field(default_factory=dict)  # ifIndex -> entities (entAliasMappingTable)

    def sensors(self, if_index: int, names: Sequence[str]) -> tuple[list[int], list[int]]:
        """Return the port's rx and tx power sensors (lanes in index order).

        The port is the entity entAliasMappingTable maps its ifIndex to, else the entities named like its
        ifName/ifDescr; its sensors are the power sensors contained in it. Where none is (Arista keeps its
        transceivers apart from its ports), the sensors named after the port.
        """
        wanted = {n.lower() for n in names if n}
        ports = self.alias.get(if_index) or {e for e, label in self.labels.items() if wanted & set(label)}
        found = [s for s in self.power if ports & self._ancestors(s)]
        if not found:
            words = [re.compile(rf"(?<![\w/.]){re.escape(n)}(?![\w/.])") for n in wanted]
            found = [s for s in self.power if any(w.search(" ".join(self.labels.get(s, ()))) for w in words)]
        rx: list[int] = []
        tx: list[int] = []
        for s in sorted(found):
            direction = _direction(" ".join(self.labels.get(s, ())))
            if direction:
                (rx if direction == "rx" else tx).append(s)
        return rx[:MAX_LANES], tx[:MAX_LANES]

    def _ancestors(self, entity: int) -> set[int]:
        seen: set[int] = set()
        while entity and entity not in seen and len(seen) < 16:
            seen.add(entity)
            entity = self.parent.get(entity, 0)
        return seen


async def _discover_entities(walk: Walk) -> _Entities:
    """Walk both sensor tables' types and, if any could be optical power, the inventory that places them."""
    std, cisco = (*ENT_SENSOR, 1), (*CISCO_SENSOR, 1)
    types = await walk([std, cisco])
    entities = _Entities(sorted({ix[0] for column in (std, cisco) for ix, v in types[column].items()
                                 if len(ix) == 1 and _int_or_none(v) in POWER_TYPES}))
    if entities.power:  # else: no optics here, and no reason to walk the inventory
        name, descr, parent = ((*ENT_PHYSICAL, c) for c in (7, 2, 4))
        rows = await walk([name, descr, parent, ENT_ALIAS_ID])
        for ix in rows[name].keys() | rows[descr].keys():
            entities.labels[ix[0]] = (_text(rows[name].get(ix)).lower(), _text(rows[descr].get(ix)).lower())
        entities.parent = {ix[0]: v for ix, value in rows[parent].items()
                           if (v := _int_or_none(value)) is not None}
        for ix, value in rows[ENT_ALIAS_ID].items():
            mapped = _typed(value, "oid", "entAliasMappingIdentifier")
            if mapped and mapped[:-1] == IF_INDEX:  # ifIndex.N
                entities.alias.setdefault(mapped[-1], set()).add(ix[0])
    return entities


@dataclass(frozen=True, slots=True)
class _Sensor:
    """One optical power sensor as the device encodes it."""

    index: int  # entPhysicalIndex
    table: OID  # ENT_SENSOR or CISCO_SENSOR: where its value and status are
    watts: bool  # the value is power in W x 10^exponent (else dBm x 10^exponent)
    exponent: int

    def value_oid(self) -> OID:
        return (*self.table, 4, self.index)  # entPhySensorValue / entSensorValue

    def status_oid(self) -> OID:
        return (*self.table, 5, self.index)  # entPhySensorOperStatus / entSensorStatus

    def reading(self, value: int | None, status: int | None) -> float | str:
        """Return the reading in dBm (to 0.001 dB), or the code saying why there is none."""
        # ok(1); unavailable(2) and nonoperational(3) in both MIBs. An agent without the column is believed.
        if status not in (None, 1) or value is None or abs(value) == NOT_AVAILABLE:
            return SENSOR_UNAVAILABLE
        if self.watts:
            if value <= 0:
                return NO_LIGHT if value == 0 else OUT_OF_RANGE
            dbm = 10 * math.log10(_scaled(value, self.exponent + 3))  # 10 * log10(mW)
        else:
            dbm = _scaled(value, self.exponent)
        return round(dbm, 3) if DBM_RANGE[0] <= dbm <= DBM_RANGE[1] else OUT_OF_RANGE


def _sensor_type_oids(sensors: Sequence[int]) -> list[OID]:
    """Return, per sensor: entPhySensorType, Scale, Precision; entSensorType, Scale, Precision;
    entPhysicalClass, Name and Descr: what :func:`_classify` reads, in that order."""
    return [oid for s in sensors for oid in (
        *((*ENT_SENSOR, c, s) for c in (1, 2, 3)), *((*CISCO_SENSOR, c, s) for c in (1, 2, 3)),
        *((*ENT_PHYSICAL, c, s) for c in (5, 7, 2)))]


SENSOR_TYPE_OIDS = 9  # per sensor, in _sensor_type_oids


def _classify(sensor: int, answer: Sequence[tuple[OID, Any]], notes: list[str]) -> _Sensor | str:
    """Return how ``sensor`` encodes optical power, from its :func:`_sensor_type_oids` answer; else the code
    saying why it cannot (with a note naming the sensor)."""
    std_type, std_scale, std_precision, c_type, c_scale, c_precision, klass = (
        _int_or_none(v) for _, v in answer[:7])
    label = " ".join(_label(v) for _, v in answer[7:9]).lower()
    if c_type in (SENSOR_DBM, SENSOR_WATTS):  # Cisco's own table says what it is
        return _encoded(sensor, CISCO_SENSOR, c_type == SENSOR_WATTS, c_scale, c_precision, notes)
    if std_type == SENSOR_WATTS:
        return _encoded(sensor, ENT_SENSOR, True, std_scale, std_precision, notes)
    if std_type in (SENSOR_OTHER, SENSOR_UNKNOWN) and klass in (None, CLASS_SENSOR) and _CISCO_NAMED.search(label):
        return _encoded(sensor, ENT_SENSOR, False, std_scale, std_precision, notes)
    if std_type is None and c_type is None:
        notes.append(f"entPhysicalIndex {sensor} is in neither entPhySensorTable nor entSensorValueTable")
        return NO_SENSOR
    kind, table = (c_type, "entSensorType") if c_type is not None else (std_type, "entPhySensorType")
    notes.append(f"entPhysicalIndex {sensor}: {table} {SENSOR_TYPES.get(kind or 0, '?')}({kind}) "
                 "is not an optical power encoding")
    return UNSUPPORTED_TYPE


def _label(value: Any) -> str:
    try:
        return _text(_typed(value, "str", "entPhysicalName"))
    except _Failure:
        return ""


def _encoded(sensor: int, table: OID, watts: bool, scale: int | None, precision: int | None,
             notes: list[str]) -> _Sensor | str:
    if scale not in SCALE_EXPONENT:
        notes.append(f"entPhysicalIndex {sensor}: sensor scale {scale} is not in RFC 3433")
        return UNSUPPORTED_TYPE
    # RFC 3433: a precision of 1..9 counts decimals; -8..0 only says how many digits are good. Anything
    # else is an agent bug (some Cisco releases answer 1615384784): no decimals.
    decimals = precision if precision is not None and 1 <= precision <= 9 else 0
    return _Sensor(sensor, table, watts, SCALE_EXPONENT[scale] - decimals)


def _scaled(value: int, exponent: int) -> float:
    # Divide rather than multiply by 10^-n: -73 / 10 is -7.3, -73 * 0.1 is -7.300000000000001.
    return value / 10 ** -exponent if exponent < 0 else float(value * 10**exponent)


async def _neighbour_table(engine: _Engine, auth: Any, transport: Any, repetitions: int) -> dict[str, int]:
    """Return the router's ARP/neighbour entries, address -> ifIndex: IP-MIB's table, else RFC 1213's."""
    seen: dict[str, int] = {}  # address -> ifIndex
    mac, kind, state = ((*NET_TO_PHYSICAL, c) for c in (4, 6, 7))
    rows = await engine.walk(auth, transport, [mac, kind, state], repetitions)
    for ix in rows[mac]:
        # ipNetToPhysicalType invalid(2) and local(5), ipNetToPhysicalState invalid(5) and incomplete(7)
        if _int_or_none(rows[kind].get(ix)) in (2, 5) or _int_or_none(rows[state].get(ix)) in (5, 7):
            continue
        address = _inet_address(ix[1:])
        if address:
            seen[address] = ix[0]
    if not rows[mac]:
        mac, kind = (*NET_TO_MEDIA, 2), (*NET_TO_MEDIA, 4)
        rows = await engine.walk(auth, transport, [mac, kind], repetitions)
        for ix in rows[mac]:
            address = _inet_address((1, *ix[1:])) if len(ix) == 5 else None
            if address and _int_or_none(rows[kind].get(ix)) != 2:
                seen[address] = ix[0]
    return seen


def _inet_address(index: OID) -> str | None:
    """Return the address in an ipNetToPhysicalTable index tail: type, length, octets (RFC 4001)."""
    if len(index) < 2:
        return None
    family, rest = index[0], index[1:]
    if rest[0] == len(rest) - 1:
        rest = rest[1:]  # the length prefix of a non-IMPLIED InetAddress (some agents leave it out)
    size = {1: 4, 2: 16, 3: 8, 4: 20}.get(family)  # ipv4, ipv6, ipv4z, ipv6z
    if size is None or len(rest) != size or not all(0 <= b <= 255 for b in rest):
        return None
    return str(ipaddress.ip_address(bytes(rest[:4] if family in (1, 3) else rest[:16])))
