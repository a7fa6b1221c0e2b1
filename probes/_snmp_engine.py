"""The shared pysnmp engine: GET and GETBULK requests, multi-column walks, typed values, scrubbed reasons.

Private to ``probes.snmp``. Every failure is a ``_Failure`` (a word from ``SNMP_FAILURES`` and one short line),
and every reason that carries pysnmp's own words is scrubbed of the configured secrets first.

The engine's UDP sockets are bound to every address, so anyone can send to them. Its transports
(``_GuardedUdp``, ``_GuardedUdp6``) let pysnmp see only answers from agents it polled, to requests it
sent; they drop everything else before pysnmp decodes it, count it (``_Watch``) and log it at most once
a minute per kind. They also never send anything but a request: the engine answers no one.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

from pyasn1.error import PyAsn1Error
from pyasn1.type import univ
from pysnmp.carrier.asyncio.dgram import udp, udp6
from pysnmp.entity import config as lcd_config
from pysnmp.entity.engine import SnmpEngine
from pysnmp.entity.rfc3413 import cmdgen
from pysnmp.error import PySnmpError
from pysnmp.hlapi.v3arch.asyncio import CommunityData, Udp6TransportTarget, UdpTransportTarget, UsmUserData
from pysnmp.hlapi.v3arch.asyncio.lcd import CommandGeneratorLcdConfigurator
from pysnmp.proto import errind, rfc1902, rfc1905
from pysnmp.proto.mpmod.rfc3412 import SnmpV3MessageProcessingModel

OID = tuple[int, ...]

log = logging.getLogger("probes.snmp")

# Every failure an SNMP observation can carry: a subset of probes.base.FAILURES (a bounded metric label).
# The reason says more.
SNMP_FAILURES = (
    "timeout",  # no answer (agents also ignore a wrong community or privacy key)
    "auth_failed",  # the agent refused our credentials (the reason says how), or they cannot be built
    "no_such_object",  # the agent has no such interface or object
    "bad_response",  # a well-formed answer with the wrong content: types, ranges, counts, error-status
    "malformed",  # only datagrams that are no answer to our request came back: garbage, wrong request id ...
    "skipped",  # the cycle's deadline passed before this target was polled
    "error",  # anything else: a request that could not be sent, an internal error
)
# The USM reports (RFC 3414 usmStats) an agent sends when it refuses a v3 request, as pysnmp names them.
_USM_REPORTS = (
    (errind.WrongDigest, "wrong digest, the agent rejects the authentication key (usmStatsWrongDigests)"),
    (errind.UnknownUserName, "unknown user, the agent has no such user (usmStatsUnknownUserNames)"),
    (errind.UnsupportedSecurityLevel, "unsupported security level, the agent has this user without the "
                                      "authentication or privacy asked for (usmStatsUnsupportedSecLevels)"),
    (errind.DecryptionError, "decryption error, the agent cannot decrypt with the privacy key "
                             "(usmStatsDecryptionErrors)"),
    (errind.NotInTimeWindow, "not in time window, the agent's clock or boot count disagrees "
                             "(usmStatsNotInTimeWindows)"),
    (errind.UnknownEngineID, "unknown engine ID, the agent rejects its own engine ID as we know it "
                             "(usmStatsUnknownEngineIDs)"),
)
_AUTH_ERRORS = (errind.AuthenticationError, errind.AuthenticationFailure, errind.UnknownSecurityName,
                errind.UnsupportedAuthProtocol, errind.UnsupportedPrivProtocol, errind.UnknownCommunityName,
                errind.NoAuthentication, errind.NoEncryption, errind.EncryptionError)
_NULL = univ.Null("")
_TYPES = {"int": (univ.Integer.tagSet, "INTEGER"), "str": (univ.OctetString.tagSet, "OCTET STRING"),
          "oid": (univ.ObjectIdentifier.tagSet, "OBJECT IDENTIFIER"),
          "ticks": (rfc1902.TimeTicks.tagSet, "TimeTicks"), "c32": (rfc1902.Counter32.tagSet, "Counter32"),
          "c64": (rfc1902.Counter64.tagSet, "Counter64"), "gauge": (rfc1902.Gauge32.tagSet, "Gauge32")}


class _Failure(Exception):
    """A probe failure as a value: a word from ``SNMP_FAILURES`` (any other becomes ``error``) and one short line."""

    def __init__(self, failure: str, reason: str) -> None:
        failure = failure if failure in SNMP_FAILURES else "error"
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


class _Secrets(set[str]):
    """The configured secrets: a set that never shows its members in a repr or a log line."""

    def __repr__(self) -> str:
        return f"<{len(self)} secrets>"

    __str__ = __repr__


# --- the transports: answers from polled agents only, and never an answer from us --------------------

_PEER_TTL = 300.0  # seconds after our last request to a peer that its datagrams are still expected
_LOG_EVERY = 60.0  # seconds between two log lines about dropped datagrams of one kind
_IDS_KEPT = 4096  # request ids remembered per peer (each for _PEER_TTL at most)
_ANSWERS = (0xA2, 0xA8)  # Response-PDU, Report-PDU (RFC 3416); every other PDU tag asks or notifies


def _tlv(data: bytes, at: int, tag: int) -> tuple[int, int]:
    """Return where the value of the BER element at ``at`` starts and ends; it must carry ``tag``."""
    if at + 2 > len(data) or data[at] != tag:
        raise ValueError("not SNMP" if at == 0 else "unexpected BER tag")
    length, at = data[at + 1], at + 2
    if length & 0x80:  # long form; SNMP never uses the indefinite form (0x80)
        size = length & 0x7F
        if not 0 < size <= 4 or at + size > len(data):
            raise ValueError("bad BER length")
        length, at = int.from_bytes(data[at:at + size], "big"), at + size
    if at + length > len(data):
        raise ValueError("truncated")
    return at, at + length


def _integer(data: bytes, at: int) -> tuple[int, int]:
    start, end = _tlv(data, at, 0x02)
    if not 0 < end - start <= 8:
        raise ValueError("bad BER integer")
    return int.from_bytes(data[start:end], "big", signed=True), end


def _header(message: bytes) -> tuple[int, bool, int]:
    """Read just enough of an SNMP message: its version, whether it asks for an answer, and its request id
    (v3: msgID).

    A v1/v2c message asks when its PDU is not a Response or Report; a v3 message when it is reportable
    (RFC 3412 7.1: requests are reportable, answers and notifications are not; but pysnmp-based agents set
    the flag on their reports too, so on the way in only the msgID tells). Raises ValueError when the
    datagram is not an SNMP message at all (garbage, truncated BER, unknown version).
    """
    at, end = _tlv(message, 0, 0x30)
    version, at = _integer(message, at)
    if version in (0, 1):
        _, at = _tlv(message, at, 0x04)  # community
        if at >= end:
            raise ValueError("truncated")
        tag = message[at]
        pdu, _ = _tlv(message, at, tag)
        request_id, _ = _integer(message, pdu) if tag != 0xA4 else (0, 0)  # a v1 trap has no request id
        return version, tag not in _ANSWERS, request_id
    if version == 3:
        at, _ = _tlv(message, at, 0x30)  # msgGlobalData
        msg_id, at = _integer(message, at)
        _, at = _integer(message, at)  # msgMaxSize
        flags, flags_end = _tlv(message, at, 0x04)
        if flags_end - flags != 1:
            raise ValueError("bad msgFlags")
        return version, bool(message[flags] & 0x04), msg_id
    raise ValueError(f"SNMP version {version}")


def _peer(address: Any) -> tuple[str, int]:
    """Return a transport address as (canonical host, port), the same for what we send and what we get."""
    host = str(address[0])
    with contextlib.suppress(ValueError):
        host = ipaddress.ip_address(host).compressed
    return host, int(address[1])


class _Peer:
    """An agent we polled: when, with which request ids, and what it sent that was no answer."""

    __slots__ = ("ids", "last_malformed", "last_sent", "malformed")

    def __init__(self) -> None:
        self.ids: dict[int, float] = {}  # request id (v3: msgID) -> when we sent it (monotonic)
        self.last_sent = 0.0
        self.malformed = 0
        self.last_malformed = ""


class _Watch:
    """What the engine's transports let through: answers from polled agents to requests we sent.

    ``malformed_total`` counts datagrams from a polled agent that are no answer to us (not SNMP, truncated,
    a request id we never sent it, a request or trap instead of a response, or something pysnmp cannot
    decode); ``unsolicited_total`` counts datagrams from anyone we did not poll; ``refused_total`` counts
    messages pysnmp tried to send that were not requests (answers to someone: never sent).
    """

    def __init__(self) -> None:
        self.malformed_total = 0
        self.unsolicited_total = 0
        self.refused_total = 0
        self.mib: Any = None  # the engine's MIB builder, set when the engine starts
        self._parse_errors: tuple[Any, Any] = (None, None)  # (MIB builder, its snmpInASNParseErrs)
        self._peers: dict[tuple[str, int], _Peer] = {}
        self._logged: dict[str, tuple[float, int]] = {}  # kind -> (when last logged, dropped since)
        self._pruned = 0.0

    def sent(self, address: Any, message: bytes) -> bool:
        """Record a request pysnmp sends; return False (and refuse it) when it is anything else.

        A request asks (see ``_header``) and carries a request id not sent to this peer before: an
        answer carries the id of what it answers, and only datagrams with our ids reach pysnmp.
        """
        peer = self._peers.get(key := _peer(address))
        try:
            _, asks, request_id = _header(message)
        except ValueError:
            asks, request_id = False, 0
        if not asks or (peer is not None and request_id in peer.ids):
            self.refused_total += 1
            self.note("refused", address, "pysnmp tried to answer; not sent")
            return False
        if peer is None:
            peer = self._peers[key] = _Peer()
        now = time.monotonic()
        peer.last_sent, peer.ids[request_id] = now, now
        if len(peer.ids) > _IDS_KEPT:
            del peer.ids[next(iter(peer.ids))]
        if now - self._pruned > _PEER_TTL:  # forget peers and request ids nobody answers any more
            self._pruned = now
            self._peers = {k: p for k, p in self._peers.items() if now - p.last_sent <= _PEER_TTL}
            for p in self._peers.values():
                p.ids = {i: t for i, t in p.ids.items() if now - t <= _PEER_TTL}
        return True

    def admit(self, address: Any, datagram: bytes) -> bool:
        """Return whether pysnmp may see ``datagram``: an answer from a polled agent to a request we sent."""
        peer = self._peers.get(_peer(address))
        if peer is None or time.monotonic() - peer.last_sent > _PEER_TTL:
            self.unsolicited_total += 1
            self.note("unsolicited", address, "from an address we did not poll")
            return False
        try:
            version, asks, request_id = _header(datagram)
        except ValueError as exc:
            return self.malformed(address, str(exc))
        if asks and version != 3:
            return self.malformed(address, "a request or notification, not an answer")
        if request_id not in peer.ids:
            return self.malformed(address, "an answer to no request we sent it (wrong request id)")
        return True

    def malformed(self, address: Any, what: str) -> bool:
        """Count a datagram from a polled agent that is no answer; return False (it is dropped)."""
        self.malformed_total += 1
        peer = self._peers.get(_peer(address))
        if peer is not None:
            peer.malformed += 1
            peer.last_malformed = what
        self.note("malformed", address, what)
        return False

    def parse_errors(self) -> Any:
        """Return pysnmp's snmpInASNParseErrs counter (its ``syntax`` is the count), found on first use."""
        if self.mib is not None and self._parse_errors[0] is not self.mib:
            self._parse_errors = (self.mib, *self.mib.import_symbols("__SNMPv2-MIB", "snmpInASNParseErrs"))
        return self._parse_errors[1]

    def malformed_from(self, address: Any) -> tuple[int, str]:
        """Return how many malformed datagrams ``address`` has sent, and what the last one was."""
        peer = self._peers.get(_peer(address))
        return (peer.malformed, peer.last_malformed) if peer else (0, "")

    def note(self, kind: str, address: Any, what: str) -> None:
        """Log a dropped datagram, at most once per ``_LOG_EVERY`` seconds per kind, with how many went unlogged."""
        now = time.monotonic()
        last, quiet = self._logged.get(kind, (float("-inf"), 0))
        if now - last < _LOG_EVERY:
            self._logged[kind] = (last, quiet + 1)
            return
        self._logged[kind] = (now, 0)
        host, port = _peer(address)
        more = f"; {quiet} more dropped since the last report" if quiet else ""
        total = {"malformed": self.malformed_total, "unsolicited": self.unsolicited_total}.get(kind, self.refused_total)
        log.warning("SNMP: dropped a datagram from %s port %d: %s (%s, %d so far)%s", host, port, what, kind, total,
                    more)


class _Guarded:
    """The guard shared by ``_GuardedUdp`` and ``_GuardedUdp6``: pysnmp's asyncio datagram transports that
    send requests only, pass on answers from polled agents only, and never let a datagram pysnmp cannot
    decode raise into the event loop (asyncio would log a traceback for each)."""

    watch: _Watch
    loop: asyncio.AbstractEventLoop
    _callback_function: Any

    def send_message(self, message: bytes, address: Any) -> None:
        if self.watch.sent(address, bytes(message)):
            super().send_message(message, address)  # type: ignore[misc]

    def datagram_received(self, datagram: bytes, address: Any) -> None:
        if self._callback_function is not None and self.watch.admit(address, datagram):
            self.loop.call_soon(self._deliver, address, datagram)

    def _deliver(self, address: Any, datagram: bytes) -> None:
        callback = self._callback_function
        if callback is None:  # closed meanwhile
            return
        counter = self.watch.parse_errors()
        before = int(counter.syntax) if counter is not None else 0
        try:
            callback(self, address, datagram)
        except Exception as exc:  # pysnmp choked on it: a lying agent must not fill the log with tracebacks
            self.watch.malformed(address, f"pysnmp cannot decode it ({type(exc).__name__})")
            return
        if counter is not None and int(counter.syntax) > before:  # pysnmp dropped it quietly as bad BER
            self.watch.malformed(address, "BER that does not decode")


class _GuardedUdp(_Guarded, udp.UdpAsyncioTransport):
    def __init__(self, watch: _Watch, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        self.watch = watch


class _GuardedUdp6(_Guarded, udp6.Udp6AsyncioTransport):
    def __init__(self, watch: _Watch, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        self.watch = watch


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
        self.watch = _Watch()  # what the transports dropped, across restarts of the engine
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
        for domain, transport, family, anywhere in ((udp.DOMAIN_NAME, _GuardedUdp, socket.AF_INET, "0.0.0.0"),
                                                    (udp6.DOMAIN_NAME, _GuardedUdp6, socket.AF_INET6, "::")):
            try:
                sock = socket.socket(family, socket.SOCK_DGRAM)
            except OSError:
                continue  # no IPv6 on this host
            # Hundreds of answers arrive at once; with the default 208 KiB buffer (each datagram costs
            # ~2 KiB of kernel memory) the kernel drops them, and a drop looks like a timeout.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            sock.setblocking(False)
            sock.bind((anywhere, 0))
            lcd_config.add_transport(engine, domain, transport(self.watch, loop).open_server_mode(sock=sock))
        # Warm what the first request would otherwise load.
        engine.get_mib_builder().import_symbols("SNMP-FRAMEWORK-MIB", "SnmpEngineID", "SnmpAdminString")
        self.watch.mib = engine.get_mib_builder()
        self.engine, self.loop, self.transports = engine, loop, {}
        return True

    def bound_ports(self) -> list[tuple[str, int]]:
        """Return the (address, port) each of the engine's sockets is bound to (tests send to them)."""
        if self.engine is None:
            return []
        dispatcher = self.engine.transport_dispatcher
        return [t.transport.get_extra_info("sockname")[:2] for domain in (udp.DOMAIN_NAME, udp6.DOMAIN_NAME)
                if (t := dispatcher.get_transport(domain)) is not None and t.transport is not None]

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
        malformed_before, _ = self.watch.malformed_from(transport.transport_address)
        indication, status, index, answer = await future
        if indication:
            self._fail(indication, auth, transport, malformed_before)
        if status:
            at = _dotted(tuple(var_binds[int(index) - 1][0])) if 0 < int(index) <= len(var_binds) else "?"
            name = status.prettyPrint() if hasattr(status, "prettyPrint") else str(status)
            raise _Failure("auth_failed" if name in ("authorizationError", "noAccess") else "bad_response",
                           f"agent answered {name} at {at}")
        if not bulk and len(answer) != len(var_binds):
            raise _Failure("bad_response", f"asked for {len(var_binds)} objects, got {len(answer)}")
        return [(tuple(name), value) for name, value in answer]

    def _fail(self, indication: Any, auth: Any, transport: Any, malformed_before: int) -> NoReturn:
        """Raise the failure pysnmp's error indication stands for, with its cause in words."""
        if isinstance(indication, errind.RequestTimedOut):
            if isinstance(auth, UsmUserData):
                self.forget_engine_id(transport)
            waited = f"no answer within {transport.timeout:g}s x {transport.retries + 1} tries"
            malformed, what = self.watch.malformed_from(transport.transport_address)
            if malformed > malformed_before:
                raise _Failure("malformed", f"{waited}; the agent sent {malformed - malformed_before} malformed "
                                            f"datagram(s), the last one {what}")
            hint = (" (a wrong community looks the same)" if isinstance(auth, CommunityData) else
                    " (a wrong privacy key looks the same)" if auth.privacy_key else "")
            raise _Failure("timeout", waited + hint)
        user = f"user {auth.userName}: " if isinstance(auth, UsmUserData) else ""
        for report, words in _USM_REPORTS:
            if isinstance(indication, report):
                raise _Failure("auth_failed", self.redact(user + words))
        reason = self.redact(str(indication))  # pysnmp's words: scrub them, just in case
        raise _Failure("auth_failed" if isinstance(indication, _AUTH_ERRORS) else "error", reason)

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

