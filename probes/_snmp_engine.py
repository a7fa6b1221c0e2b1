"""The shared pysnmp engine: GET and GETBULK requests, multi-column walks, typed values, scrubbed reasons.

Private to ``probes.snmp``. Every failure is a ``_Failure`` (a word from ``FAILURES`` and one short line),
and every reason that carries pysnmp's own words is scrubbed of the configured secrets first.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
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

# Every failure an SNMP observation can carry: a bounded label for metrics. The reason says more.
FAILURES = (
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
    """A probe failure as a value: a word from ``FAILURES`` (any other becomes ``error``) and one short line."""

    def __init__(self, failure: str, reason: str) -> None:
        failure = failure if failure in FAILURES else "error"
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
            self._fail(indication, auth, transport)
        if status:
            at = _dotted(tuple(var_binds[int(index) - 1][0])) if 0 < int(index) <= len(var_binds) else "?"
            name = status.prettyPrint() if hasattr(status, "prettyPrint") else str(status)
            raise _Failure("auth_failed" if name in ("authorizationError", "noAccess") else "bad_response",
                           f"agent answered {name} at {at}")
        if not bulk and len(answer) != len(var_binds):
            raise _Failure("bad_response", f"asked for {len(var_binds)} objects, got {len(answer)}")
        return [(tuple(name), value) for name, value in answer]

    def _fail(self, indication: Any, auth: Any, transport: Any) -> NoReturn:
        """Raise the failure pysnmp's error indication stands for, with its cause in words."""
        if isinstance(indication, errind.RequestTimedOut):
            if isinstance(auth, UsmUserData):
                self.forget_engine_id(transport)
            waited = f"no answer within {transport.timeout:g}s x {transport.retries + 1} tries"
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

