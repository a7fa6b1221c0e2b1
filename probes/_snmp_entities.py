"""Optics and neighbours: ENTITY-MIB and ENTITY-SENSOR-MIB discovery and scaling, ARP/neighbour tables.

Private to ``probes.snmp``. These functions walk and parse; the probe owns the per-device caches,
the locks and the cycle they belong to.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from probes._snmp_engine import OID, _Engine, _int_or_none, _text, _typed

IF_INDEX: OID = (1, 3, 6, 1, 2, 1, 2, 2, 1, 1)  # RFC 2863 ifIndex, what entAliasMappingIdentifier points at
ENT_PHYSICAL: OID = (1, 3, 6, 1, 2, 1, 47, 1, 1, 1, 1)  # RFC 6933 entPhysicalTable
ENT_ALIAS_ID: OID = (1, 3, 6, 1, 2, 1, 47, 1, 3, 2, 1, 2)  # entAliasMappingIdentifier
ENT_SENSOR: OID = (1, 3, 6, 1, 2, 1, 99, 1, 1, 1)  # RFC 3433 entPhySensorTable
NET_TO_PHYSICAL: OID = (1, 3, 6, 1, 2, 1, 4, 35, 1)  # RFC 4293 ipNetToPhysicalTable
NET_TO_MEDIA: OID = (1, 3, 6, 1, 2, 1, 4, 22, 1)  # RFC 1213 ipNetToMediaTable (deprecated, still common)
SENSOR_DBM = 14  # entPhySensorType dBm(14)
# entPhySensorScale -> power of ten (RFC 3433; note exa(14) is 10^18 and peta(15) is 10^15)
SCALE_EXPONENT = {1: -24, 2: -21, 3: -18, 4: -15, 5: -12, 6: -9, 7: -6, 8: -3, 9: 0,
                  10: 3, 11: 6, 12: 9, 13: 12, 14: 18, 15: 15, 16: 21, 17: 24}
MAX_LANES = 4  # sensors per direction (QSFP lanes); the weakest one is reported
_RX = re.compile(r"(?<![a-z])(rx|receive)")
_TX = re.compile(r"(?<![a-z])(tx|transmit)")

Walk = Callable[[Sequence[OID]], Awaitable[dict[OID, dict[OID, Any]]]]  # columns -> each column's rows by index


@dataclass
class _Entities:
    """ENTITY-MIB and ENTITY-SENSOR-MIB, as far as optics need them."""

    dbm: list[int]
    parent: dict[int, int] = field(default_factory=dict)
    labels: dict[int, tuple[str, str]] = field(default_factory=dict)  # entPhysicalName, entPhysicalDescr
    alias: dict[int, set[int]] = field(default_factory=dict)  # ifIndex -> entities (entAliasMappingTable)

    def sensors(self, if_index: int, names: Sequence[str]) -> tuple[list[int], list[int]]:
        """Return the port's rx and tx dBm sensors: below its entity, else named after the port."""
        wanted = {n.lower() for n in names if n}
        ports = self.alias.get(if_index) or {e for e, label in self.labels.items() if wanted & set(label)}
        found = [s for s in self.dbm if ports & self._ancestors(s)]
        if not found:
            words = [re.compile(rf"(?<![\w/.]){re.escape(n)}(?![\w/.])") for n in wanted]
            found = [s for s in self.dbm if any(w.search(" ".join(self.labels.get(s, ()))) for w in words)]
        rx: list[int] = []
        tx: list[int] = []
        for s in found:
            text = " ".join(self.labels.get(s, ()))
            if bool(_RX.search(text)) != bool(_TX.search(text)):
                (rx if _RX.search(text) else tx).append(s)
        return rx[:MAX_LANES], tx[:MAX_LANES]

    def _ancestors(self, entity: int) -> set[int]:
        seen: set[int] = set()
        while entity and entity not in seen and len(seen) < 16:
            seen.add(entity)
            entity = self.parent.get(entity, 0)
        return seen


async def _discover_entities(walk: Walk) -> _Entities:
    """Walk the dBm sensors and, if there are any, the physical inventory that places them."""
    types = await walk([(*ENT_SENSOR, 1)])
    entities = _Entities(sorted(ix[0] for ix, v in types[(*ENT_SENSOR, 1)].items()
                                if len(ix) == 1 and _int_or_none(v) == SENSOR_DBM))
    if entities.dbm:  # else: no optics here, and no reason to walk the inventory
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


def _sensor_type_oids(sensors: Sequence[int]) -> list[OID]:
    """Return entPhySensorType, Scale and Precision of each sensor, in that order."""
    return [(*ENT_SENSOR, column, s) for s in sensors for column in (1, 2, 3)]


def _sensor_exponents(sensors: Sequence[int], answer: Sequence[tuple[OID, Any]], notes: list[str]) -> dict[int, int]:
    """Return the power of ten that turns each dBm sensor's reading into dBm; note the sensors that are not."""
    exponent: dict[int, int] = {}
    for n, s in enumerate(sensors):
        kind, scale, precision = (_int_or_none(v) for _, v in answer[3 * n:3 * n + 3])
        if kind != SENSOR_DBM or scale not in SCALE_EXPONENT:
            notes.append(f"entPhysicalIndex {s} is not a dBm sensor")
        else:  # RFC 3433: a precision of 1..9 counts decimals; -8..-1 only says how many digits are good
            exponent[s] = SCALE_EXPONENT[scale] - max(0, precision or 0)
    return exponent


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
