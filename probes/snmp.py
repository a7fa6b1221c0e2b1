"""SNMP: state, traffic, errors and optics of each link's interface, and the terminals a site router sees.

One pysnmp engine serves every target. Each interface costs one GET per cycle carrying all its OIDs;
walks (interface names, ENTITY-MIB, ARP) use GETBULK over several columns at once and are cached per
device until it reboots. Credentials reach the probe in its settings (``SnmpSettings.auths``, filled from the config's
``auths:``; secrets redact themselves) and never leave the SNMP modules: targets carry the auth's name,
and every reason is scrubbed of the configured secrets before it is returned.

This module holds the probe, each interface's reading and the values it reports; its private helpers
are ``_snmp_engine`` (the shared engine, requests and walks), ``_snmp_auth`` (credentials) and
``_snmp_entities`` (optics discovery and scaling, neighbour tables).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from probes._snmp_auth import _Auths
from probes._snmp_engine import OID, SNMP_FAILURES, _dotted, _Engine, _Failure, _text, _typed, _var_binds
from probes._snmp_entities import (
    CISCO_SENSOR,
    ENT_ALIAS_ID,
    ENT_PHYSICAL,
    ENT_SENSOR,
    MAX_LANES,
    NET_TO_MEDIA,
    NET_TO_PHYSICAL,
    NO_LIGHT,
    NO_SENSOR,
    OPTICS_CODES,
    OUT_OF_RANGE,
    SCALE_EXPONENT,
    SENSOR_DBM,
    SENSOR_TYPE_OIDS,
    SENSOR_UNAVAILABLE,
    _classify,
    _discover_entities,
    _Entities,
    _neighbour_table,
    _Sensor,
    _sensor_type_oids,
)
from probes._snmp_entities import _inet_address as _inet_address  # re-exported: tests parse index tails with it
from probes.base import MAX_INTERVAL_SECONDS, CredentialedSettings, Dropped, Observation, ProbeSettings, Target
from probes.credentials import SnmpAuth

log = logging.getLogger(__name__)
KIND = "snmp"

SYS_UPTIME: OID = (1, 3, 6, 1, 2, 1, 1, 3, 0)
IF_ENTRY: OID = (1, 3, 6, 1, 2, 1, 2, 2, 1)  # RFC 2863 ifTable
IF_X_ENTRY: OID = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)  # ifXTable
IF_NAME, IF_DESCR = (*IF_X_ENTRY, 1), (*IF_ENTRY, 2)
SILENT = "the agent did not answer earlier this cycle"

# The OIDs and constants now defined in _snmp_entities are listed too: they were importable from here.
__all__ = [
    "CISCO_SENSOR",
    "ENT_ALIAS_ID",
    "ENT_PHYSICAL",
    "ENT_SENSOR",
    "IF_DESCR",
    "IF_ENTRY",
    "IF_NAME",
    "IF_X_ENTRY",
    "KIND",
    "MAX_LANES",
    "NET_TO_MEDIA",
    "NET_TO_PHYSICAL",
    "OID",
    "OPTICS_CODES",
    "PROBE",
    "SCALE_EXPONENT",
    "SENSOR_DBM",
    "SILENT",
    "SNMP_FAILURES",
    "SYS_UPTIME",
    "SnmpProbe",
    "SnmpSettings",
]


class SnmpSettings(CredentialedSettings):
    interval_seconds: float = Field(60.0, gt=0, le=MAX_INTERVAL_SECONDS)
    timeout_seconds: float = Field(2.0, gt=0, le=MAX_INTERVAL_SECONDS, description="wait for one answer, per try")
    retries: int = Field(1, ge=0, le=5, description="tries after the first, per request")
    max_repetitions: int = Field(25, ge=1, le=200, description="rows per GETBULK when walking")
    concurrency: int = Field(256, ge=1, le=100_000, description="targets in progress, all devices together")
    device_concurrency: int = Field(4, ge=1, le=64, description="targets in progress on one device")
    credential_type = SnmpAuth
    credential_name = "SNMP"
    auths: Mapping[str, SnmpAuth] = Field(default_factory=dict, exclude=True, repr=False)

    def cycle_budget_seconds(self) -> float:
        """Return the longest one request may take: every try waits the whole timeout."""
        return (self.retries + 1) * self.timeout_seconds


@dataclass
class _Device:
    """What one agent has shown us, with the caches a reboot (or a renumbering) invalidates."""

    gate: asyncio.Semaphore
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    generation: int = 0  # bumped on reboot, or when an ifIndex no longer carries its port's name
    boots: int = 0
    uptime: tuple[int, float] | None = None  # (sysUpTime ticks, monotonic seconds)
    names: tuple[int, dict[str, tuple[int, OID]]] | None = None  # name -> (ifIndex, ifName or ifDescr)
    entities: tuple[int, _Entities] | None = None
    silent_cycle: int = -1  # the cycle in which it last timed out (per auth: a wrong community looks the same)
    silent_failure: str = "timeout"  # how it failed then: timeout, or malformed (it sent only garbage)

    def observe_uptime(self, ticks: int, now: float) -> None:
        """Count a reboot when sysUpTime says the agent started later than it said before."""
        if self.uptime is not None:
            before, then = self.uptime
            elapsed = max(0.0, now - then)
            # Compare with the value expected now, modulo 2^32: sysUpTime wraps after 497 days without
            # any reboot (RFC 2578 7.1.8), and answers reordered in flight differ by a few ticks only.
            late = ((before + elapsed * 100) - ticks) % 2**32
            tolerance = 500 + elapsed  # 5 s, plus 1% of the time between the two readings
            # Went back, or up for less time than has passed since it last answered (restarted twice).
            if tolerance < late < 2**31 and (ticks < before or ticks < elapsed * 100):
                self.boots += 1
                self.generation += 1
                log.info("agent restarted: sysUpTime went from %d to %d", before, ticks)
        self.uptime = (ticks, now)


@dataclass
class _Port:
    """One interface target's state between cycles."""

    boots_seen: int
    generation: int = -1
    if_index: int = 0
    check: tuple[OID, str] | None = None  # (ifName.i or ifDescr.i, the name it must still carry)
    optics: dict[str, list[_Sensor]] = field(default_factory=dict)  # rx/tx -> its sensors (lanes)
    no_optics: dict[str, str] = field(default_factory=dict)  # rx/tx -> why it has no sensor to read
    notes: list[str] = field(default_factory=list)
    hc: bool | None = None  # the agent has ifHCInOctets/ifHCOutOctets (ifXTable); None: not known yet
    fields: list[tuple[str, str]] = field(default_factory=list)  # (name, kind) of each requested OID
    var_binds: list[tuple[Any, Any]] = field(default_factory=list)
    sample: tuple[float, dict[str, tuple[int, int]]] | None = None  # (monotonic, name -> (bits, value))
    speed_bps: float = 0.0
    last_change: int | None = None
    oper_changes: int = 0
    totals: dict[str, float] = field(default_factory=dict)  # counted since the monitor started: name -> sum of deltas

    def build_request(self) -> None:
        i = self.if_index
        octets = [("hc_in", (*IF_X_ENTRY, 6, i), "c64"), ("hc_out", (*IF_X_ENTRY, 10, i), "c64")] * (
            self.hc is not False) + [("in_octets", (*IF_ENTRY, 10, i), "c32"),
                                     ("out_octets", (*IF_ENTRY, 16, i), "c32")] * (self.hc is not True)
        wanted = [("uptime", SYS_UPTIME, "ticks"), ("admin", (*IF_ENTRY, 7, i), "int"),
                  ("oper", (*IF_ENTRY, 8, i), "int"), ("last_change", (*IF_ENTRY, 9, i), "ticks"), *octets,
                  ("in_errors", (*IF_ENTRY, 14, i), "c32"), ("out_errors", (*IF_ENTRY, 20, i), "c32"),
                  ("in_discards", (*IF_ENTRY, 13, i), "c32"), ("speed", (*IF_X_ENTRY, 15, i), "gauge")]
        if self.check:
            wanted.append(("name", self.check[0], "str"))
        for direction, sensors in self.optics.items():
            for s in sensors:
                wanted += [(f"{direction}:{s.index}", s.value_oid(), "int"),
                           (f"{direction}:{s.index}:status", s.status_oid(), "int")]
        self.fields = [(name, kind) for name, _, kind in wanted]
        self.var_binds = _var_binds(oid for _, oid, _ in wanted)

    def parse(self, answer: list[tuple[OID, Any]]) -> dict[str, Any]:
        """Return the answer by field name; a wrong type fails the port only for its status."""
        got: dict[str, Any] = {}
        for (name, kind), (oid, value) in zip(self.fields, answer, strict=True):
            try:
                got[name] = _typed(value, kind, _dotted(oid))
            except _Failure as exc:
                if name in ("admin", "oper"):
                    raise
                self.notes.append(exc.reason + " (ignored)")
        return got


def _rate(prev: tuple[int, int], cur: tuple[int, int], elapsed: float, limit: float) -> float | None:
    """Return the per-second increase between two counter readings, None across a discontinuity."""
    (bits_before, before), (bits, value) = prev, cur
    if bits_before != bits or elapsed <= 0:
        return None
    delta = value - before
    if delta < 0:
        # A decrease is a wrap only if the wrapped delta is plausible; otherwise the counter was
        # reset (agent restart, "clear counters"): skip one cycle rather than report nonsense.
        delta += 2**bits
        if delta >= 2 ** (bits - 1) or (limit and delta / elapsed > limit):
            return None
    return delta / elapsed


class SnmpProbe:
    kind = KIND
    settings_model: type[ProbeSettings] = SnmpSettings

    def __init__(self) -> None:
        self._engine = _Engine()
        self._auths = _Auths(self._engine.secrets)
        self._devices: dict[tuple[str, int, str], _Device] = {}
        self._ports: dict[str, _Port] = {}
        self._cycle = 0
        self._credentials: dict[str, SnmpAuth] = {}
        self._keys: set[str] = set()
        self._reported = 0

    @property
    def pdus_sent(self) -> int:
        """Return how many requests this probe has sent (retries not counted)."""
        return self._engine.pdus_sent

    @property
    def malformed_total(self) -> int:
        """Return how many datagrams from polled agents were dropped as no answer to us (garbage, truncated,
        a wrong request id, a request instead of a response, undecodable), since this probe was made."""
        return self._engine.watch.malformed_total

    @property
    def unsolicited_total(self) -> int:
        """Return how many datagrams from addresses this probe did not poll were dropped unanswered."""
        return self._engine.watch.unsolicited_total

    def requests_sent(self, observations: Sequence[Observation]) -> int:
        """Return the PDUs sent since the last call: the engine counts them, walks included."""
        sent, self._reported = self._engine.pdus_sent - self._reported, self._engine.pdus_sent
        return sent

    def dropped(self) -> Dropped:
        """Return the datagrams the shared engine dropped unanswered: malformed, unsolicited."""
        return Dropped(self.malformed_total, self.unsolicited_total)

    def _configure(self, targets: Sequence[Target], auths: Mapping[str, SnmpAuth]) -> None:
        """Take the credentials the settings carry; forget devices and ports no target names any more."""
        if auths != self._credentials:
            self._auths.load(auths)
            self._credentials = dict(auths)
        keys = {t.key for t in targets}
        if keys != self._keys:
            devices = {(t.address, t.port or 161, t.extra["auth"]) for t in targets}
            self._ports = {k: v for k, v in self._ports.items() if k in keys}
            self._devices = {k: v for k, v in self._devices.items() if k in devices}
            self._keys = keys

    # --- the cycle ----------------------------------------------------------------------------

    async def warm(self) -> None:
        """Start the shared engine now rather than in the first cycle."""
        if self._engine.ready():
            self._devices, self._ports = {}, {}  # their locks belonged to the previous event loop

    async def run(self, targets: Sequence[Target], settings: ProbeSettings, deadline: float) -> list[Observation]:
        """Poll every target, ``settings.concurrency`` at a time, all done by ``deadline`` (monotonic)."""
        if not isinstance(settings, SnmpSettings):
            settings = SnmpSettings.model_validate(settings.model_dump())
        await self.warm()
        self._configure(targets, settings.auths)
        self._cycle += 1
        gate = asyncio.Semaphore(settings.concurrency)
        return list(await asyncio.gather(*(self._guarded(t, settings, deadline, gate) for t in targets)))

    async def _guarded(self, target: Target, settings: SnmpSettings, deadline: float,
                       gate: asyncio.Semaphore) -> Observation:
        name = str(target.extra.get("auth", ""))
        auth = self._auths.built.get(name, _Failure("auth_failed", f"auth {name!r} is not declared under 'auths'"))
        if isinstance(auth, _Failure):
            return Observation.failed(target, KIND, auth.failure, auth.reason)
        key = (target.address, target.port or 161, name)
        device = self._devices.get(key) or self._devices.setdefault(
            key, _Device(asyncio.Semaphore(settings.device_concurrency)))
        async with device.gate, gate:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return Observation.failed(target, KIND, "skipped", "cycle deadline reached before polling")
            if device.silent_cycle == self._cycle:
                return Observation.failed(target, KIND, device.silent_failure, SILENT)
            try:
                transport = await self._engine.transport(target.address, target.port or 161,
                                                         settings.timeout_seconds, settings.retries)
                work = (self._neighbours(target, auth, transport, settings) if "expected" in target.extra
                        else self._interface(target, auth, transport, device, settings))
                return await asyncio.wait_for(work, remaining)
            except TimeoutError:
                return Observation.failed(target, KIND, "timeout", "cycle deadline reached while polling")
            except _Failure as exc:
                if exc.failure in ("timeout", "malformed"):
                    device.silent_cycle, device.silent_failure = self._cycle, exc.failure
                return Observation.failed(target, KIND, exc.failure, exc.reason)
            except Exception as exc:  # a bug, or pysnmp choking on an answer: lose this target, not the cycle
                log.error("SNMP target %s failed", target.key, exc_info=True)
                return Observation.failed(target, KIND, "error", f"internal error: {type(exc).__name__}")

    # --- interfaces ---------------------------------------------------------------------------

    async def _interface(self, target: Target, auth: Any, transport: Any, device: _Device,
                         settings: SnmpSettings) -> Observation:
        port = self._ports.get(target.key) or self._ports.setdefault(target.key, _Port(device.boots))
        for attempt in (0, 1):
            changed = await self._prepare(target, port, device, auth, transport, settings)
            if attempt and not changed:
                break  # a reboot that renumbered nothing: the first answer stands
            port.notes = [n for n in port.notes if not n.endswith("(ignored)")]
            answer = await self._engine.request(auth, transport, port.var_binds)
            now = time.monotonic()
            got = port.parse(answer)
            if got.get("uptime") is not None:
                device.observe_uptime(got["uptime"], now)
            renamed = port.check is not None and _text(got.get("name")) != port.check[1]
            if renamed:
                device.generation += 1  # the index now carries another port (or none): walk the names again
            if port.generation == device.generation:
                break
        if renamed and port.check:
            raise _Failure("no_such_object", f"ifIndex {port.if_index} no longer carries {port.check[1]!r}")
        return self._interface_observation(target, port, device, got, now)

    async def _prepare(self, target: Target, port: _Port, device: _Device, auth: Any, transport: Any,
                       settings: SnmpSettings) -> bool:
        """Resolve the ifIndex and optical sensors again if the device's caches moved on; return if changed."""
        if port.generation == device.generation:
            return False
        before, generation, port.notes = (port.if_index, port.optics), device.generation, []
        if_name = target.extra.get("if_name")
        port.if_index, port.check = int(target.extra.get("if_index") or 0), None
        if if_name:
            names = await self._names(device, auth, transport, settings)
            found = names.get(if_name) or {k.lower(): v for k, v in names.items()}.get(if_name.lower())
            if found is None:
                raise _Failure("no_such_object", f"no interface named {if_name!r} in ifName or ifDescr")
            port.if_index, column = found
            port.check = ((*column, port.if_index), next(k for k, v in names.items() if v == found))
        if before[0] and port.if_index != before[0]:
            port.sample = None  # the old index's counters belong to another interface now
            if port.boots_seen == device.boots:
                port.last_change = None  # renumbered without a reboot: no flap to count
        port.optics, port.no_optics = await self._optics(target, port, device, auth, transport, settings)
        port.build_request()
        port.generation = generation
        return (port.if_index, port.optics) != before

    async def _names(self, device: _Device, auth: Any, transport: Any,
                     settings: SnmpSettings) -> dict[str, tuple[int, OID]]:
        async with device.lock:
            if device.silent_cycle == self._cycle:  # a walk waiting behind one that timed out
                raise _Failure(device.silent_failure, SILENT)
            if device.names is None or device.names[0] != device.generation:
                generation = device.generation
                rows = await self._walk(device, auth, transport, (IF_NAME, IF_DESCR), settings)
                names: dict[str, tuple[int, OID]] = {}
                for column in (IF_DESCR, IF_NAME):  # an ifName wins over an equal ifDescr
                    for index, value in rows[column].items():
                        raw = _typed(value, "str", f"{_dotted(column)}.{_dotted(index)}")
                        if raw and len(index) == 1:
                            names[_text(raw)] = (index[0], column)
                device.names = (generation, names)
            return device.names[1]

    async def _walk(self, device: _Device, auth: Any, transport: Any, columns: Sequence[OID],
                    settings: SnmpSettings) -> dict[OID, dict[OID, Any]]:
        """Walk under the device's lock; a timeout marks the device silent before the next waiter runs."""
        try:
            return await self._engine.walk(auth, transport, columns, settings.max_repetitions)
        except _Failure as exc:
            if exc.failure in ("timeout", "malformed"):
                device.silent_cycle, device.silent_failure = self._cycle, exc.failure
            raise

    async def _optics(self, target: Target, port: _Port, device: _Device, auth: Any, transport: Any,
                      settings: SnmpSettings) -> tuple[dict[str, list[_Sensor]], dict[str, str]]:
        """Return the port's rx/tx power sensors as the device encodes them, and why a direction has none.

        Sensors given as ``rx_sensor``/``tx_sensor`` are taken as they are; the others are looked for in
        the entity tree (:meth:`_Entities.sensors`).
        """
        i = port.if_index
        chosen = {d: [int(target.extra[f"{d}_sensor"])] for d in ("rx", "tx") if target.extra.get(f"{d}_sensor")}
        if len(chosen) < 2:
            entities = await self._entities(device, auth, transport, settings)
            if entities.power:
                answer = await self._engine.request(auth, transport, _var_binds([(*IF_NAME, i), (*IF_DESCR, i)]))
                names = [_text(_typed(v, "str", "ifName/ifDescr")) for _, v in answer]
                found = dict(zip(("rx", "tx"), entities.sensors(i, names), strict=True))
                chosen = {d: chosen.get(d) or found[d] for d in ("rx", "tx")}
        sensors = sorted({s for d in ("rx", "tx") for s in chosen.get(d, [])})
        kinds: dict[int, _Sensor | str] = {}
        for n in range(0, len(sensors), 4):  # 36 objects a request: small answers even for 8-lane optics
            batch = sensors[n:n + 4]
            answer = await self._engine.request(auth, transport, _var_binds(_sensor_type_oids(batch)))
            for k, s in enumerate(batch):
                kinds[s] = _classify(s, answer[k * SENSOR_TYPE_OIDS:(k + 1) * SENSOR_TYPE_OIDS], port.notes)
        optics: dict[str, list[_Sensor]] = {}
        why: dict[str, str] = {}
        for d in ("rx", "tx"):
            usable = [kind for s in chosen.get(d, []) if isinstance(kind := kinds[s], _Sensor)]
            if usable:
                optics[d] = usable
            else:  # the most telling reason of its sensors (unsupported beats absent), or none at all
                why[d] = max((kind for s in chosen.get(d, []) if isinstance(kind := kinds[s], str)),
                             key=lambda code: code != NO_SENSOR, default=NO_SENSOR)
        return optics, why

    async def _entities(self, device: _Device, auth: Any, transport: Any, settings: SnmpSettings) -> _Entities:
        async with device.lock:
            if device.silent_cycle == self._cycle:
                raise _Failure(device.silent_failure, SILENT)
            if device.entities is None or device.entities[0] != device.generation:
                generation = device.generation
                entities = await _discover_entities(
                    lambda columns: self._walk(device, auth, transport, columns, settings))
                device.entities = (generation, entities)
            return device.entities[1]

    def _interface_observation(self, target: Target, port: _Port, device: _Device, got: dict[str, Any],
                               now: float) -> Observation:
        oper, admin = got.get("oper"), got.get("admin")
        if oper is None or admin is None:
            raise _Failure("no_such_object", f"ifOperStatus.{port.if_index} or ifAdminStatus.{port.if_index}: "
                                             "no such instance")
        if not (1 <= oper <= 7 and 1 <= admin <= 3):
            raise _Failure("bad_response", f"ifOperStatus {oper} or ifAdminStatus {admin} out of range")
        values = {"if_index": float(port.if_index), "oper_up": float(oper == 1), "admin_up": float(admin == 1)}
        rebooted, port.boots_seen = port.boots_seen != device.boots, device.boots
        uptime, last_change = got.get("uptime"), got.get("last_change")
        if uptime is not None:
            values.update(uptime_seconds=uptime / 100, rebooted=float(rebooted))
            if last_change is not None:
                values["last_change_seconds"] = ((uptime - last_change) % 2**32) / 100
        if last_change is not None:
            if port.last_change is not None and last_change != port.last_change:
                port.oper_changes += 1
            port.last_change = last_change
            values["oper_changes"] = float(port.oper_changes)
        port.speed_bps = (got.get("speed") or 0) * 1e6
        if port.hc is None:  # ask for the 32-bit octet counters only where there are no 64-bit ones
            port.hc = got.get("hc_in") is not None or got.get("hc_out") is not None
            port.build_request()
        bits = 64 if port.hc else 32
        sample = {name: (bits if name.endswith("octets") else 32, got[field_name])
                  for name, field_name in (("in_octets", "hc_in" if port.hc else "in_octets"),
                                           ("out_octets", "hc_out" if port.hc else "out_octets"),
                                           ("in_errors", "in_errors"), ("out_errors", "out_errors"),
                                           ("in_discards", "in_discards")) if got.get(field_name) is not None}
        if port.sample is not None and not rebooted:
            then, before = port.sample
            for name, value_name, factor in _COUNTERS:
                if name in sample and name in before:
                    limit = 1.5 * port.speed_bps / 8 if factor == 8.0 else 0.0
                    rate = _rate(before[name], sample[name], now - then, limit)
                    if rate is not None:
                        values[value_name] = rate * factor
                        port.totals[name] = port.totals.get(name, 0.0) + rate * (now - then)
        port.sample = (now, sample)
        # Counters for Prometheus to rate(): what the device counted while we watched, free of its 32-bit wraps
        # and resets (a discontinuity adds nothing); they start at 0 when the monitor does.
        for name in sample:
            values[f"{name}_total"] = float(round(port.totals.setdefault(name, 0.0)))
        details: dict[str, tuple[str, ...]] = {}
        if admin == 1:  # a port its operator shut has no light to judge
            details = _optics_values(port, got, values)
        return Observation(target.key, KIND, True, time.time(), values, reason="; ".join(port.notes),
                           details=details, mono=time.monotonic())

    # --- neighbours ---------------------------------------------------------------------------

    async def _neighbours(self, target: Target, auth: Any, transport: Any, settings: SnmpSettings) -> Observation:
        """Compare the router's ARP/neighbour table with the site's terminals."""
        seen = await _neighbour_table(self._engine, auth, transport, settings.max_repetitions)  # address -> ifIndex
        expected = [(tid, str(ipaddress.ip_address(a))) for tid, a in target.extra["expected"]]
        known = {a for _, a in expected} | {str(ipaddress.ip_address(a)) for a in target.extra.get("ignore", ())}
        lans = {seen[a] for _, a in expected if a in seen}  # the interfaces the terminals are on
        unexpected = sorted((a for a, ifx in seen.items() if ifx in lans and a not in known),
                            key=lambda a: (":" in a, ipaddress.ip_address(a).packed))
        missing = tuple(tid for tid, a in expected if a not in seen)
        values = {"terminals_expected": float(len(expected)), "terminals_seen": float(len(expected) - len(missing)),
                  "unexpected_devices": float(len(unexpected))}
        return Observation(target.key, KIND, True, time.time(), values, mono=time.monotonic(),
                           details={"missing": missing, "unexpected": tuple(unexpected)})

    async def close(self) -> None:
        """Close the engine's sockets and forget every device."""
        self._engine.close()
        self._devices, self._ports = {}, {}


_LANE_CODES = (SENSOR_UNAVAILABLE, OUT_OF_RANGE, NO_LIGHT)  # lanes without a reading: the later, the more telling


def _optics_values(port: _Port, got: dict[str, Any], values: dict[str, float]) -> dict[str, tuple[str, ...]]:
    """Add each direction's weakest lane (and, with several lit lanes, every lane) to ``values``; return the
    sensors read and, per direction without a reading, why (``details["optics"]``: "optics.no_light rx")."""
    why: list[str] = [f"{code} {d}" for d, code in port.no_optics.items()]
    for d, sensors in port.optics.items():
        lanes = [s.reading(got.get(f"{d}:{s.index}"), got.get(f"{d}:{s.index}:status")) for s in sensors]
        readings = [r for r in lanes if isinstance(r, float)]
        if readings:
            values[f"{d}_power_dbm"] = min(readings)  # the weakest lane decides
            if len(readings) > 1:
                values.update({f"{d}_lane{n}_power_dbm": r for n, r in enumerate(lanes, 1) if isinstance(r, float)})
            # A dark or broken lane among lit ones is news; an "unavailable" one is a lane the optic lacks
            # (SONiC lists four per port, an SFP has one).
            why += [f"{code} {d}" for code in (OUT_OF_RANGE, NO_LIGHT) if code in lanes]
        else:
            why.append(f"{max(lanes, key=lambda code: _LANE_CODES.index(str(code)))} {d}")
    read = tuple(f"{d} {s.index}" for d, group in port.optics.items() for s in group)
    return {k: v for k, v in (("optics", tuple(sorted(why))), ("optics_sensors", read)) if v}


_COUNTERS = (("in_octets", "in_bps", 8.0), ("out_octets", "out_bps", 8.0),
             ("in_errors", "in_errors_per_second", 1.0), ("out_errors", "out_errors_per_second", 1.0),
             ("in_discards", "in_discards_per_second", 1.0))


PROBE = SnmpProbe()
