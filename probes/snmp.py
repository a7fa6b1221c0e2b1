"""SNMP: state, traffic, errors and optics of each link's interface, and the terminals a site router sees.

One pysnmp engine serves every target. Each interface costs one GET per cycle carrying all its OIDs;
walks (interface names, ENTITY-MIB, ARP) use GETBULK over several columns at once and are cached per
device until it reboots. Credentials come from ``config.auths`` and never leave this module: targets
carry the auth's name, and every reason is scrubbed of the configured secrets before it is returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import re
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyasn1.error import PyAsn1Error
from pyasn1.type import univ
from pydantic import Field, SecretStr
from pysnmp.carrier.asyncio.dgram import udp, udp6
from pysnmp.entity import config as lcd_config
from pysnmp.entity.engine import SnmpEngine
from pysnmp.entity.rfc3413 import cmdgen
from pysnmp.error import PySnmpError
from pysnmp.hlapi.v3arch.asyncio import (
    USM_AUTH_HMAC96_MD5,
    USM_AUTH_HMAC96_SHA,
    USM_AUTH_HMAC128_SHA224,
    USM_AUTH_HMAC192_SHA256,
    USM_AUTH_HMAC256_SHA384,
    USM_AUTH_HMAC384_SHA512,
    USM_PRIV_CBC56_DES,
    USM_PRIV_CFB128_AES,
    USM_PRIV_CFB192_AES,
    USM_PRIV_CFB256_AES,
    CommunityData,
    Udp6TransportTarget,
    UdpTransportTarget,
    UsmUserData,
)
from pysnmp.hlapi.v3arch.asyncio.lcd import CommandGeneratorLcdConfigurator
from pysnmp.proto import errind, rfc1902, rfc1905
from pysnmp.proto.mpmod.rfc3412 import SnmpV3MessageProcessingModel

from probes.base import Observation, ProbeSettings, Target

if TYPE_CHECKING:
    from monitor.config import Config
    from monitor.model import SnmpAuth

log = logging.getLogger(__name__)
KIND = "snmp"

OID = tuple[int, ...]
SYS_UPTIME: OID = (1, 3, 6, 1, 2, 1, 1, 3, 0)
IF_ENTRY: OID = (1, 3, 6, 1, 2, 1, 2, 2, 1)  # RFC 2863 ifTable
IF_X_ENTRY: OID = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)  # ifXTable
IF_NAME, IF_DESCR = (*IF_X_ENTRY, 1), (*IF_ENTRY, 2)
ENT_PHYSICAL: OID = (1, 3, 6, 1, 2, 1, 47, 1, 1, 1, 1)  # RFC 6933 entPhysicalTable
ENT_ALIAS_ID: OID = (1, 3, 6, 1, 2, 1, 47, 1, 3, 2, 1, 2)  # entAliasMappingIdentifier
ENT_SENSOR: OID = (1, 3, 6, 1, 2, 1, 99, 1, 1, 1)  # RFC 3433 entPhySensorTable
NET_TO_PHYSICAL: OID = (1, 3, 6, 1, 2, 1, 4, 35, 1)  # RFC 4293 ipNetToPhysicalTable
NET_TO_MEDIA: OID = (1, 3, 6, 1, 2, 1, 4, 22, 1)  # RFC 1213 ipNetToMediaTable (deprecated, still common)
SENSOR_DBM = 14  # entPhySensorType dBm(14)
# entPhySensorScale -> power of ten (RFC 3433; note exa(14) is 10^18 and peta(15) is 10^15)
SCALE_EXPONENT = {1: -24, 2: -21, 3: -18, 4: -15, 5: -12, 6: -9, 7: -6, 8: -3, 9: 0,
                  10: 3, 11: 6, 12: 9, 13: 12, 14: 18, 15: 15, 16: 21, 17: 24}
SILENT = "the agent did not answer earlier this cycle"
MAX_LANES = 4  # sensors per direction (QSFP lanes); the weakest one is reported
_RX = re.compile(r"(?<![a-z])(rx|receive)")
_TX = re.compile(r"(?<![a-z])(tx|transmit)")

_AUTH_PROTOCOLS = {"MD5": USM_AUTH_HMAC96_MD5, "SHA": USM_AUTH_HMAC96_SHA, "SHA224": USM_AUTH_HMAC128_SHA224,
                   "SHA256": USM_AUTH_HMAC192_SHA256, "SHA384": USM_AUTH_HMAC256_SHA384,
                   "SHA512": USM_AUTH_HMAC384_SHA512}
# AES192/AES256 use the key extension of draft-reeder-snmpv3-usm-3desede (Cisco's, Net-SNMP's AES192C).
_PRIV_PROTOCOLS = {"DES": USM_PRIV_CBC56_DES, "AES": USM_PRIV_CFB128_AES, "AES192": USM_PRIV_CFB192_AES,
                   "AES256": USM_PRIV_CFB256_AES}
_AUTH_ERRORS = (errind.UnknownUserName, errind.WrongDigest, errind.DecryptionError, errind.AuthenticationError,
                errind.AuthenticationFailure, errind.UnknownSecurityName, errind.UnsupportedSecurityLevel,
                errind.UnsupportedAuthProtocol, errind.UnsupportedPrivProtocol, errind.NotInTimeWindow,
                errind.UnknownCommunityName, errind.NoAuthentication, errind.NoEncryption, errind.EncryptionError)
_NULL = univ.Null("")
_TYPES = {"int": (univ.Integer.tagSet, "INTEGER"), "str": (univ.OctetString.tagSet, "OCTET STRING"),
          "oid": (univ.ObjectIdentifier.tagSet, "OBJECT IDENTIFIER"),
          "ticks": (rfc1902.TimeTicks.tagSet, "TimeTicks"), "c32": (rfc1902.Counter32.tagSet, "Counter32"),
          "c64": (rfc1902.Counter64.tagSet, "Counter64"), "gauge": (rfc1902.Gauge32.tagSet, "Gauge32")}


class SnmpSettings(ProbeSettings):
    interval_seconds: float = Field(60.0, gt=0)
    timeout_seconds: float = Field(2.0, gt=0, description="wait for one answer, per try")
    retries: int = Field(1, ge=0, le=5, description="tries after the first, per request")
    max_repetitions: int = Field(25, ge=1, le=200, description="rows per GETBULK when walking")
    concurrency: int = Field(256, ge=1, le=100_000, description="targets in progress, all devices together")
    device_concurrency: int = Field(4, ge=1, le=64, description="targets in progress on one device")

    def cycle_budget_seconds(self) -> float:
        """Return the longest one request may take: every try waits the whole timeout."""
        return (self.retries + 1) * self.timeout_seconds


class _Failure(Exception):
    """A probe failure as a value: a machine word and one short line."""

    def __init__(self, failure: str, reason: str) -> None:
        super().__init__(failure, reason)
        self.failure, self.reason = failure, reason


def _missing(value: Any) -> bool:
    return isinstance(value, (rfc1905.NoSuchObject, rfc1905.NoSuchInstance, rfc1905.EndOfMibView, univ.Null))


def _typed(value: Any, kind: str, what: str) -> Any:
    """Return ``value`` as int, bytes or OID tuple; None when the agent has no such object."""
    if _missing(value):
        return None
    tag, name = _TYPES[kind]
    if value.tagSet != tag:
        raise _Failure("bad_response", f"{what} is {type(value).__name__}, expected {name}")
    if kind == "str":
        return bytes(value)
    return tuple(value) if kind == "oid" else int(value)


def _int_or_none(value: Any) -> int | None:
    try:
        return _typed(value, "int", "")  # type: ignore[no-any-return]
    except _Failure:
        return None


def _text(raw: Any) -> str:
    return bytes(raw).decode("utf-8", "replace").strip("\x00 ") if raw is not None else ""


def _dotted(oid: OID) -> str:
    return ".".join(map(str, oid))


def _var_binds(oids: Iterable[OID]) -> list[tuple[Any, Any]]:
    return [(rfc1902.ObjectName(oid), _NULL) for oid in oids]


def _secret(name: str, value: SecretStr | None, env: str | None) -> str:
    if value is not None:
        return value.get_secret_value()
    text = os.environ.get(env or "")
    if not text:
        raise _Failure("auth", f"auth {name}: environment variable {env} is not set")
    return text


class _Secrets(set[str]):
    """The configured secrets: a set that never shows its members in a repr or a log line."""

    def __repr__(self) -> str:
        return f"<{len(self)} secrets>"

    __str__ = __repr__


class _Engine:
    """The shared pysnmp engine, bound to the running event loop, and the requests made with it.

    It drives pysnmp's command generators with ready-made (ObjectName, Null) var-binds: hlapi's
    get_cmd resolves every OID through the MIB view, about 0.5 ms per OID on this machine.
    """

    def __init__(self) -> None:
        self.engine: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.lcd = CommandGeneratorLcdConfigurator()
        self.get_gen = cmdgen.GetCommandGenerator()
        self.bulk_gen = cmdgen.BulkCommandGeneratorSingleRun()
        self.transports: dict[tuple[str, int, float, int], Any] = {}
        self.pdus_sent = 0
        self.secrets = _Secrets()  # every community and key configured, to scrub pysnmp's messages

    def redact(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "<secret>")
        return text

    def ready(self) -> bool:
        """Start the engine (again, if the event loop changed); return whether it is new."""
        loop = asyncio.get_running_loop()
        if self.engine is not None and self.loop is loop:
            return False
        self.close()
        engine = SnmpEngine()
        for domain, transport, family, anywhere in ((udp.DOMAIN_NAME, udp.UdpAsyncioTransport, socket.AF_INET,
                                                     "0.0.0.0"),
                                                    (udp6.DOMAIN_NAME, udp6.Udp6AsyncioTransport,
                                                     socket.AF_INET6, "::")):
            try:
                sock = socket.socket(family, socket.SOCK_DGRAM)
            except OSError:
                continue  # no IPv6 on this host
            # Hundreds of answers arrive at once; with the default 208 KiB buffer (each datagram costs
            # ~2 KiB of kernel memory) the kernel drops them, and a drop looks like a timeout.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            sock.setblocking(False)
            sock.bind((anywhere, 0))
            lcd_config.add_transport(engine, domain, transport(loop=loop).open_server_mode(sock=sock))
        # Warm what the first request would otherwise load.
        engine.get_mib_builder().import_symbols("SNMP-FRAMEWORK-MIB", "SnmpEngineID", "SnmpAdminString")
        self.engine, self.loop, self.transports = engine, loop, {}
        return True

    def close(self) -> None:
        if self.engine is not None:
            with contextlib.suppress(PySnmpError, RuntimeError):  # its event loop may be gone already
                self.engine.close_dispatcher()
        self.engine = None

    async def transport(self, address: str, port: int, timeout: float, retries: int) -> Any:
        key = (address, port, timeout, retries)
        if key not in self.transports:
            cls = Udp6TransportTarget if ":" in address else UdpTransportTarget
            self.transports[key] = await cls.create((address, port), timeout=timeout, retries=retries)
        return self.transports[key]

    async def request(self, auth: Any, transport: Any, var_binds: Sequence[tuple[Any, Any]],
                      bulk: int = 0) -> list[tuple[OID, Any]]:
        """Send one GET (or a GETBULK of ``bulk`` repetitions) and return the answer's var-binds."""
        assert self.loop is not None
        future = self.loop.create_future()

        def done(_engine: Any, _handle: Any, indication: Any, status: Any, index: Any, answer: Any,
                 _ctx: Any) -> None:
            if not future.done():  # cancelled when the cycle's deadline passed
                future.set_result((indication, status, index, answer))

        try:
            addr_name, _ = self.lcd.configure(self.engine, auth, transport, b"")
            if bulk:
                self.bulk_gen.send_varbinds(self.engine, addr_name, None, b"", 0, bulk, var_binds, done)
            else:
                self.get_gen.send_varbinds(self.engine, addr_name, None, b"", var_binds, done)
        except (PySnmpError, PyAsn1Error) as exc:
            raise _Failure("error", f"cannot send: {type(exc).__name__}") from None
        self.pdus_sent += 1
        indication, status, index, answer = await future
        if indication:
            if isinstance(indication, errind.RequestTimedOut):
                if isinstance(auth, UsmUserData):
                    self.forget_engine_id(transport)
                hint = (" (a wrong community looks the same)" if isinstance(auth, CommunityData) else
                        " (a wrong privacy key looks the same)" if auth.privacy_key else "")
                raise _Failure("timeout", f"no answer within {transport.timeout:g}s x "
                                          f"{transport.retries + 1} tries{hint}")
            reason = self.redact(str(indication))  # pysnmp's words: scrub them, just in case
            raise _Failure("auth" if isinstance(indication, _AUTH_ERRORS) else "error", reason)
        if status:
            at = _dotted(tuple(var_binds[int(index) - 1][0])) if 0 < int(index) <= len(var_binds) else "?"
            name = status.prettyPrint() if hasattr(status, "prettyPrint") else str(status)
            raise _Failure("auth" if name in ("authorizationError", "noAccess") else "bad_response",
                           f"agent answered {name} at {at}")
        if not bulk and len(answer) != len(var_binds):
            raise _Failure("bad_response", f"asked for {len(var_binds)} objects, got {len(answer)}")
        return [(tuple(name), value) for name, value in answer]

    def forget_engine_id(self, transport: Any) -> None:
        """Make the next v3 request to this agent discover its engine ID again.

        pysnmp keeps a peer's engine ID for 300 s and uses it meanwhile; an agent whose engine ID
        changed (replaced hardware, reset configuration) ignores such requests, so a v3 timeout
        would last five minutes. The cache is private to pysnmp's SNMPv3 message processing model:
        if its shape changes, this does nothing and the 300 s expiry still heals.
        """
        model = self.engine.message_processing_subsystems.get(SnmpV3MessageProcessingModel.MESSAGE_PROCESSING_MODEL_ID)
        cache = getattr(model, "_SnmpV3MessageProcessingModel__engineIdCache", None)
        if isinstance(cache, dict):
            cache.pop((transport.TRANSPORT_DOMAIN, transport.transport_address), None)

    async def walk(self, auth: Any, transport: Any, columns: Sequence[OID], repetitions: int,
                   max_rows: int = 20_000) -> dict[OID, dict[OID, Any]]:
        """Walk ``columns`` side by side with GETBULK; return each column's rows by index.

        Our loop rather than bulk_walk_cmd, which walks one column and keeps retrying after a
        timeout: this one stops at the first error, at the end of each column (what
        lexicographicMode=False does) and at an OID that does not increase.
        """
        rows: dict[OID, dict[OID, Any]] = {c: {} for c in columns}
        cursor = {c: c for c in columns}
        active = list(columns)
        while active and sum(map(len, rows.values())) < max_rows:
            answer = await self.request(auth, transport, _var_binds(cursor[c] for c in active), repetitions)
            finished: set[OID] = set()
            moved = False
            for i, (oid, value) in enumerate(answer):
                col = active[i % len(active)]
                if col in finished:
                    continue
                if isinstance(value, rfc1905.EndOfMibView) or oid[:len(col)] != col or oid <= cursor[col]:
                    finished.add(col)
                    continue
                rows[col][oid[len(col):]] = value
                cursor[col], moved = oid, True
            active = [c for c in active if c not in finished] if moved else []
        return rows


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
    optics: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # rx/tx -> [(sensor, exponent)]
    notes: list[str] = field(default_factory=list)
    hc: bool | None = None  # the agent has ifHCInOctets/ifHCOutOctets (ifXTable); None: not known yet
    fields: list[tuple[str, str]] = field(default_factory=list)  # (name, kind) of each requested OID
    var_binds: list[tuple[Any, Any]] = field(default_factory=list)
    sample: tuple[float, dict[str, tuple[int, int]]] | None = None  # (monotonic, name -> (bits, value))
    speed_bps: float = 0.0
    last_change: int | None = None
    oper_changes: int = 0

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
            for s, _ in sensors:
                wanted += [(f"{direction}:{s}", (*ENT_SENSOR, 4, s), "int"),
                           (f"{direction}:{s}:status", (*ENT_SENSOR, 5, s), "int")]
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
        self._auths: dict[str, Any] = {}  # auth name -> CommunityData | UsmUserData | _Failure
        self._secrets = self._engine.secrets
        self._serial = 0
        self._devices: dict[tuple[str, int, str], _Device] = {}
        self._ports: dict[str, _Port] = {}
        self._cycle = 0

    @property
    def pdus_sent(self) -> int:
        """Return how many requests this probe has sent (retries not counted)."""
        return self._engine.pdus_sent

    # --- configuration ------------------------------------------------------------------------

    def targets(self, config: Config) -> list[Target]:
        """Return one target per link with an SNMP view, and one per site whose router lists neighbours."""
        self._load_auths(config.auths)
        out: list[Target] = []
        for site in config.sites:
            neighbours = False
            for link in site.links:
                s = link.snmp
                if s is None:
                    continue
                out.append(Target(f"{site.id}/{link.role}/snmp", site.id, s.device, s.port, extra={
                    "auth": s.auth, "if_index": s.if_index, "if_name": s.if_name, "rx_sensor": s.rx_sensor,
                    "tx_sensor": s.tx_sensor, "role": link.role, "medium": link.medium}))
                if s.neighbours and not neighbours:
                    neighbours = True
                    out.append(Target(f"{site.id}/neighbours", site.id, s.device, s.port, extra={
                        "auth": s.auth, "expected": tuple((t.id, t.address) for t in site.terminals),
                        "ignore": tuple(sorted({s.device, *(x.address for x in site.links)}))}))
        keys, devices = {t.key for t in out}, {(t.address, t.port or 161, t.extra["auth"]) for t in out}
        self._ports = {k: v for k, v in self._ports.items() if k in keys}
        self._devices = {k: v for k, v in self._devices.items() if k in devices}
        return out

    def _load_auths(self, auths: Mapping[str, SnmpAuth]) -> None:
        built: dict[str, Any] = {}
        users: dict[str, tuple[str, tuple[Any, ...]]] = {}
        for name, auth in auths.items():
            try:
                data = self._credentials(name, auth)
            except _Failure as exc:
                built[name] = exc
                continue
            old = self._auths.get(name)
            built[name] = old if _same(old, data) else data  # unchanged: keep pysnmp's configuration
            if isinstance(data, UsmUserData):
                keys = _usm_keys(data)
                first = users.setdefault(data.userName, (name, keys))
                if first[1] != keys:  # pysnmp's engine holds one set of keys per user name
                    built[name] = _Failure("auth", f"auth {name}: user {data.userName} is also used by auth "
                                                   f"{first[0]} with other keys")
        self._auths = built

    def _credentials(self, name: str, auth: SnmpAuth) -> Any:
        if auth.version == "2c":
            community = _secret(name, auth.community, auth.community_env)
            self._secrets.add(community)
            self._serial += 1  # the LCD row index: unique, <= 32 characters, derived from no secret
            return CommunityData(f"readiness-{self._serial}", community, mpModel=1)
        keys = [_secret(name, k, env) if proto else None for proto, k, env in (
            (auth.auth_protocol, auth.auth_key, auth.auth_key_env),
            (auth.priv_protocol, auth.priv_key, auth.priv_key_env))]
        self._secrets.update(k for k in keys if k)
        return UsmUserData(auth.user, keys[0], keys[1],
                           authProtocol=_AUTH_PROTOCOLS[auth.auth_protocol] if auth.auth_protocol else None,
                           privProtocol=_PRIV_PROTOCOLS[auth.priv_protocol] if auth.priv_protocol else None)

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
        self._cycle += 1
        gate = asyncio.Semaphore(settings.concurrency)
        return list(await asyncio.gather(*(self._guarded(t, settings, deadline, gate) for t in targets)))

    async def _guarded(self, target: Target, settings: SnmpSettings, deadline: float,
                       gate: asyncio.Semaphore) -> Observation:
        name = str(target.extra.get("auth", ""))
        auth = self._auths.get(name, _Failure("auth", f"auth {name!r} is not declared under 'auths'"))
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
                return Observation.failed(target, KIND, "timeout", SILENT)
            try:
                transport = await self._engine.transport(target.address, target.port or 161,
                                                         settings.timeout_seconds, settings.retries)
                work = (self._neighbours(target, auth, transport, settings) if "expected" in target.extra
                        else self._interface(target, auth, transport, device, settings))
                return await asyncio.wait_for(work, remaining)
            except TimeoutError:
                return Observation.failed(target, KIND, "timeout", "cycle deadline reached while polling")
            except _Failure as exc:
                if exc.failure == "timeout":
                    device.silent_cycle = self._cycle
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
        port.optics = await self._optics(target, port, device, auth, transport, settings)
        port.build_request()
        port.generation = generation
        return (port.if_index, port.optics) != before

    async def _names(self, device: _Device, auth: Any, transport: Any,
                     settings: SnmpSettings) -> dict[str, tuple[int, OID]]:
        async with device.lock:
            if device.silent_cycle == self._cycle:  # a walk waiting behind one that timed out
                raise _Failure("timeout", SILENT)
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
            if exc.failure == "timeout":
                device.silent_cycle = self._cycle
            raise

    async def _optics(self, target: Target, port: _Port, device: _Device, auth: Any, transport: Any,
                      settings: SnmpSettings) -> dict[str, list[tuple[int, int]]]:
        """Return the port's rx/tx dBm sensors, each with the power of ten that turns a reading into dBm."""
        i = port.if_index
        chosen = {d: [int(target.extra[f"{d}_sensor"])] for d in ("rx", "tx") if target.extra.get(f"{d}_sensor")}
        if len(chosen) < 2:
            entities = await self._entities(device, auth, transport, settings)
            if entities.dbm:
                answer = await self._engine.request(auth, transport, _var_binds([(*IF_NAME, i), (*IF_DESCR, i)]))
                names = [_text(_typed(v, "str", "ifName/ifDescr")) for _, v in answer]
                found = dict(zip(("rx", "tx"), entities.sensors(i, names), strict=True))
                chosen = {d: chosen.get(d) or found[d] for d in ("rx", "tx")}
        sensors = [s for d in ("rx", "tx") for s in chosen.get(d, [])]
        if not sensors:
            return {}
        oids = [(*ENT_SENSOR, column, s) for s in sensors for column in (1, 2, 3)]
        answer = await self._engine.request(auth, transport, _var_binds(oids))
        exponent: dict[int, int] = {}
        for n, s in enumerate(sensors):
            kind, scale, precision = (_int_or_none(v) for _, v in answer[3 * n:3 * n + 3])
            if kind != SENSOR_DBM or scale not in SCALE_EXPONENT:
                port.notes.append(f"entPhysicalIndex {s} is not a dBm sensor")
            else:  # RFC 3433: a precision of 1..9 counts decimals; -8..-1 only says how many digits are good
                exponent[s] = SCALE_EXPONENT[scale] - max(0, precision or 0)
        return {d: [(s, exponent[s]) for s in chosen.get(d, []) if s in exponent] for d in ("rx", "tx")}

    async def _entities(self, device: _Device, auth: Any, transport: Any, settings: SnmpSettings) -> _Entities:
        async with device.lock:
            if device.silent_cycle == self._cycle:
                raise _Failure("timeout", SILENT)
            if device.entities is None or device.entities[0] != device.generation:
                generation = device.generation
                types = await self._walk(device, auth, transport, [(*ENT_SENSOR, 1)], settings)
                entities = _Entities(sorted(ix[0] for ix, v in types[(*ENT_SENSOR, 1)].items()
                                            if len(ix) == 1 and _int_or_none(v) == SENSOR_DBM))
                if entities.dbm:  # else: no optics here, and no reason to walk the inventory
                    name, descr, parent = ((*ENT_PHYSICAL, c) for c in (7, 2, 4))
                    rows = await self._walk(device, auth, transport, [name, descr, parent, ENT_ALIAS_ID], settings)
                    for ix in rows[name].keys() | rows[descr].keys():
                        entities.labels[ix[0]] = (_text(rows[name].get(ix)).lower(), _text(rows[descr].get(ix)).lower())
                    entities.parent = {ix[0]: v for ix, value in rows[parent].items()
                                       if (v := _int_or_none(value)) is not None}
                    for ix, value in rows[ENT_ALIAS_ID].items():
                        mapped = _typed(value, "oid", "entAliasMappingIdentifier")
                        if mapped and mapped[:-1] == (*IF_ENTRY, 1):  # ifIndex.N
                            entities.alias.setdefault(mapped[-1], set()).add(ix[0])
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
        port.sample = (now, sample)
        if admin == 1:  # a port its operator shut has no light to judge
            for direction, sensors in port.optics.items():
                readings = [_scaled(got[f"{direction}:{s}"], exponent) for s, exponent in sensors
                            if got.get(f"{direction}:{s}:status") == 1 and got.get(f"{direction}:{s}") is not None]
                readings = [r for r in readings if -80 <= r <= 40]  # outside: no light or a broken sensor
                if readings:
                    values[f"{direction}_power_dbm"] = min(readings)  # the weakest lane decides
        return Observation(target.key, KIND, True, time.time(), values, reason="; ".join(port.notes))

    # --- neighbours ---------------------------------------------------------------------------

    async def _neighbours(self, target: Target, auth: Any, transport: Any, settings: SnmpSettings) -> Observation:
        """Compare the router's ARP/neighbour table with the site's terminals."""
        seen: dict[str, int] = {}  # address -> ifIndex
        mac, kind, state = ((*NET_TO_PHYSICAL, c) for c in (4, 6, 7))
        rows = await self._engine.walk(auth, transport, [mac, kind, state], settings.max_repetitions)
        for ix in rows[mac]:
            # ipNetToPhysicalType invalid(2) and local(5), ipNetToPhysicalState invalid(5) and incomplete(7)
            if _int_or_none(rows[kind].get(ix)) in (2, 5) or _int_or_none(rows[state].get(ix)) in (5, 7):
                continue
            address = _inet_address(ix[1:])
            if address:
                seen[address] = ix[0]
        if not rows[mac]:
            mac, kind = (*NET_TO_MEDIA, 2), (*NET_TO_MEDIA, 4)
            rows = await self._engine.walk(auth, transport, [mac, kind], settings.max_repetitions)
            for ix in rows[mac]:
                address = _inet_address((1, *ix[1:])) if len(ix) == 5 else None
                if address and _int_or_none(rows[kind].get(ix)) != 2:
                    seen[address] = ix[0]
        expected = [(tid, str(ipaddress.ip_address(a))) for tid, a in target.extra["expected"]]
        known = {a for _, a in expected} | {str(ipaddress.ip_address(a)) for a in target.extra.get("ignore", ())}
        lans = {seen[a] for _, a in expected if a in seen}  # the interfaces the terminals are on
        unexpected = sorted((a for a, ifx in seen.items() if ifx in lans and a not in known),
                            key=lambda a: (":" in a, ipaddress.ip_address(a).packed))
        missing = tuple(tid for tid, a in expected if a not in seen)
        values = {"terminals_expected": float(len(expected)), "terminals_seen": float(len(expected) - len(missing)),
                  "unexpected_devices": float(len(unexpected))}
        return Observation(target.key, KIND, True, time.time(), values,
                           details={"missing": missing, "unexpected": tuple(unexpected)})

    async def close(self) -> None:
        """Close the engine's sockets and forget every device."""
        self._engine.close()
        self._devices, self._ports = {}, {}


_COUNTERS = (("in_octets", "in_bps", 8.0), ("out_octets", "out_bps", 8.0),
             ("in_errors", "in_errors_per_second", 1.0), ("out_errors", "out_errors_per_second", 1.0),
             ("in_discards", "in_discards_per_second", 1.0))


def _scaled(value: int, exponent: int) -> float:
    # Divide rather than multiply by 10^-n: -73 / 10 is -7.3, -73 * 0.1 is -7.300000000000001.
    return value / 10 ** -exponent if exponent < 0 else float(value * 10**exponent)


def _usm_keys(data: Any) -> tuple[Any, ...]:
    return (data.userName, data.authentication_protocol, data.authentication_key, data.privacy_protocol,
            data.privacy_key)


def _same(old: Any, new: Any) -> bool:
    if isinstance(old, CommunityData) and isinstance(new, CommunityData):
        return bool(old.communityName == new.communityName)
    return isinstance(old, UsmUserData) and isinstance(new, UsmUserData) and _usm_keys(old) == _usm_keys(new)


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


PROBE = SnmpProbe()
