"""ICMP echo: sent, received, loss ratio, min/avg/max RTT and jitter per target.

One non-blocking socket per (address family, source) carries every echo of a cycle: a paced sender
interleaves the targets, a reader callback drains the socket in batches and matches replies to requests.
Request ``i`` of a cycle (``i = echo * len(targets) + target``) travels as sequence number
``(i + offset) % 65536`` in "lane" ``i >> 16``. On a raw socket the lane is told by the ICMP id; on a
datagram ("ping") socket the kernel rewrites the id to the socket's port and delivers only that socket's
replies, so each lane gets its own socket and replies are matched on sequence and source address. The
payload starts with a random per-cycle token, so a late reply from an earlier cycle is never counted.
RTTs are monotonic: a request is stamped with ``time.monotonic_ns()`` when sent, and a reply with its
kernel receive timestamp (SO_TIMESTAMPNS, so event-loop latency stays out of it) moved onto the monotonic
clock by the offset between the two clocks read together when the socket is drained. A wall-clock step
between the echo and its reply changes no RTT; a step in the instant between a reply's arrival and its
read is caught (the RTT would leave [0, now - sent]) and that reply is timed by the monotonic clock alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import gc
import ipaddress
import itertools
import os
import secrets
import socket
import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from pydantic import Field

from probes.base import (
    MAX_INTERVAL_SECONDS,
    NOTHING_DROPPED,
    Dropped,
    Observation,
    ProbeSettings,
    Target,
    Values,
    requests_in,
)
from probes.errors import ProbeUnavailable
from probes.route import is_address, output_interface

KIND = "icmp"
PATH_NOT_PROVEN = "path_not_proven"  # Observation.details key: the echoes left through the primary's interface

# Linux values the socket module does not export.
SO_TIMESTAMPNS = 35
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33
SOL_RAW, ICMP_FILTER = 255, 1  # raw(7): bit set = ICMPv4 type dropped by the kernel
ICMP6_FILTER = 1  # RFC 3542 section 3.2; Linux sets a bit to block
IP_RECVERR, IPV6_RECVERR, MSG_ERRQUEUE = 11, 25, 0x2000
SO_EE_ORIGIN: dict[int, int] = {socket.AF_INET: 2, socket.AF_INET6: 3}  # ICMP, ICMP6

ECHO_REQUEST: dict[int, int] = {socket.AF_INET: 8, socket.AF_INET6: 128}
ECHO_REPLY: dict[int, int] = {socket.AF_INET: 0, socket.AF_INET6: 129}
UNREACHABLE: dict[int, int] = {socket.AF_INET: 3, socket.AF_INET6: 1}
EXCEEDED: dict[int, int] = {socket.AF_INET: 11, socket.AF_INET6: 3}
UNREACHABLE_CODES: dict[int, dict[int, str]] = {
    socket.AF_INET: {0: "network unreachable", 1: "host unreachable", 2: "protocol unreachable",
                     3: "port unreachable", 4: "fragmentation needed", 9: "network prohibited",
                     10: "host prohibited", 13: "administratively prohibited"},
    socket.AF_INET6: {0: "no route to destination", 1: "administratively prohibited",
                      2: "beyond scope of source", 3: "address unreachable", 4: "port unreachable",
                      5: "source address failed policy", 6: "reject route"},
}
SEND_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTDOWN}
HEADER = struct.Struct("!BBHHH")  # type, code, checksum, id, sequence
ID_SEQ = struct.Struct("!HH")
TIMESPEC = struct.Struct("=qq")
EXTENDED_ERR = struct.Struct("=IBBBBII")  # struct sock_extended_err
SEND_BATCH = 256  # requests sent before the sender yields to the reader
RECV_BATCH = 2048  # datagrams read per wake-up before the reader yields to the sender
SLACK_SECONDS = 0.005  # a sender this late shifts its schedule instead of bursting to catch up
MAX_RATE_PER_SECOND = 10_000_000  # far above what one socket sends; bench/icmp_sweep.py's "unpaced"

class _Unsendable(NamedTuple):
    """A target whose echoes cannot leave this host: our own failure (``bind_failed``, ``no_route``)."""

    failure: str
    reason: str


# What the send loop needs per target: the socket's sendto, the address, the echo type, the checksum
# base (-1 when the kernel computes the checksum) and the ICMP id.
_Route = tuple[Callable[..., int], object, int, int, int]


class IcmpSettings(ProbeSettings):
    """ICMP settings. ``rate_per_second`` paces all echoes together; ``concurrency`` does not apply."""

    count: int = Field(3, ge=1, le=100, description="echo requests per target per cycle")
    spacing_seconds: float = Field(0.5, ge=0.001, le=MAX_INTERVAL_SECONDS,
                                   description="between two echoes to one target")
    timeout_seconds: float = Field(1.0, gt=0, le=MAX_INTERVAL_SECONDS, description="wait for the last reply")
    payload_bytes: int = Field(56, ge=0, le=1472)
    rate_per_second: int = Field(20_000, ge=1, le=MAX_RATE_PER_SECOND,
                                 description="echo requests per second, all targets together")
    socket: Literal["auto", "raw", "datagram"] = "auto"
    receive_buffer_bytes: int = Field(8 << 20, ge=1 << 16, le=1 << 30, description="SO_RCVBUF of each ICMP socket")

    def cycle_budget_seconds(self) -> float:
        """Return spacing between echoes plus the wait for the last one."""
        return (self.count - 1) * self.spacing_seconds + self.timeout_seconds

    def cycle_seconds_for(self, targets: int) -> float:
        """Return the cycle length for ``targets``: each round of echoes is paced at ``rate_per_second``."""
        round_seconds = targets / self.rate_per_second
        return (self.count - 1) * max(self.spacing_seconds, round_seconds) + round_seconds + self.timeout_seconds


@dataclass(eq=False)
class _Endpoint:
    """One open ICMP socket. A raw socket carries every lane; a datagram socket carries one."""

    sock: socket.socket
    family: int
    raw: bool
    lane: int
    used: bool = True


class _Request(tuple[Any, ...]):
    """Where one target's echoes go: the socket address itself, as ``sendto`` takes it, one cached per address
    (issue 13: a 2-tuple, 72 bytes an address, where a record holding it and the address beside it took 160)."""

    __slots__ = ()
    source: str | None = None  # the address or interface to send from (a _SourcedRequest's)

    @property
    def sockaddr(self) -> tuple[Any, ...]:
        return self

    @property
    def host(self) -> str:
        """The address as recvmsg() renders a reply's source: the target's own string when equal."""
        return self[0]  # type: ignore[no-any-return]

    @property
    def family(self) -> int:
        return socket.AF_INET if len(self) == 2 else socket.AF_INET6


class _SourcedRequest(_Request):
    """A request sent from a given source (an attribute of its own: few targets have one)."""

    source: str | None

    def __new__(cls, sockaddr: tuple[Any, ...], source: str) -> _SourcedRequest:
        self = super().__new__(cls, sockaddr)
        self.source = source
        return self


_Where = _Request | str | _Unsendable  # str: why the target is no address we can send to

@dataclass
class _Cycle:
    """One run's requests: request i is echo i // n of target i % n."""

    n: int
    count: int
    hosts: list[str]
    timeout_ns: int
    token: bytes  # random per cycle, at the start of every payload
    payload: bytes
    ident: int  # raw sockets: the ICMP id of lane 0
    offset: int  # the sequence number of request 0
    lanes: int
    done: asyncio.Future[None]
    sent_ns: list[int]  # monotonic send time (time.monotonic_ns), 0 = not sent
    rtt_ns: list[int]  # -1 = no reply (yet)
    errors: dict[int, tuple[str, str]] = field(default_factory=dict)  # i -> (failure, reason)
    n_sent: int = 0
    n_done: int = 0  # answered or failed
    sending: bool = True

    def settle(self) -> None:
        """Wake the runner once every request sent is answered or failed."""
        if not self.sending and self.n_done >= self.n_sent and not self.done.done():
            self.done.set_result(None)

    def fail(self, i: int, failure: str, reason: str) -> None:
        """Record that request ``i`` will get no reply."""
        if self.sent_ns[i] and self.rtt_ns[i] < 0 and i not in self.errors:
            self.errors[i] = (failure, reason)
            self.n_done += 1
            self.settle()

    def error_reply(self, family: int, kind: int, code: int, lane: int, seq: int, dst: str) -> None:
        """Attribute a destination-unreachable or time-exceeded about our echo ``(lane, seq)`` to ``dst``."""
        i = (lane << 16) | ((seq - self.offset) & 0xFFFF)
        if lane >= self.lanes or i >= len(self.sent_ns) or self.hosts[i % self.n] != dst.split("%")[0]:
            return
        if kind == UNREACHABLE[family]:
            self.fail(i, "unreachable", UNREACHABLE_CODES[family].get(code, "destination unreachable"))
        elif kind == EXCEEDED[family]:
            self.fail(i, "unreachable", "time exceeded in transit")


# The layouts of an ICMP observation's values (probes.base.Values): every observation of one layout shares its
# keys. Jitter needs two replies; a target that answered nothing has no RTTs.
ECHO_KEYS = ("sent", "received", "loss_ratio", "rtt_min_seconds", "rtt_avg_seconds", "rtt_max_seconds",
             "jitter_seconds")
ONE_REPLY_KEYS = ECHO_KEYS[:6]
NO_REPLY_KEYS = ECHO_KEYS[:3]


def echo_values(sent: int, rtts: Sequence[float]) -> Values:
    """Return what ``sent`` echoes with replies after ``rtts`` (seconds, in sending order) measured."""
    received = len(rtts)
    loss = (sent - received) / sent
    if not received:
        return Values(NO_REPLY_KEYS, (float(sent), 0.0, loss))
    head = (float(sent), float(received), loss, min(rtts), sum(rtts) / received, max(rtts))
    if received == 1:
        return Values(ONE_REPLY_KEYS, head)
    # mean absolute difference of consecutive RTTs (RFC 3550 6.4.1, unsmoothed)
    return Values(ECHO_KEYS, (*head, sum(abs(b - a) for a, b in itertools.pairwise(rtts)) / (received - 1)))


def _clear_error(sendto: Callable[..., int]) -> None:
    """Clear a socket's pending error (SO_ERROR), so the next send reports only its own fate."""
    sock = getattr(sendto, "__self__", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)


def _unavailable(what: str) -> ProbeUnavailable:
    python = os.path.realpath(sys.executable)
    return ProbeUnavailable(
        f"{what} are not permitted for this process: allow ICMP datagram sockets with "
        f'`sysctl -w net.ipv4.ping_group_range="0 2147483647"` (or any range holding group {os.getegid()}), '
        f"or raw sockets with `setcap cap_net_raw+ep {python}`")


def _checksum_base(icmp_type: int, payload: bytes) -> int:
    """Return the folded one's-complement sum of the type word and the payload (RFC 1071)."""
    padded = payload + b"\0" * (len(payload) & 1)
    total = (icmp_type << 8) + sum(struct.unpack(f"!{len(padded) // 2}H", padded))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _resolve(address: str, source: str | None) -> _Request | str:
    """Return where echoes to ``address`` go, or why they cannot go anywhere."""
    sockaddr: tuple[str, int] | tuple[str, int, int, int]
    try:  # the common case, without ipaddress's cost
        host = socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, address))
        if host == address:
            host = address  # hold the target's string, not an equal copy of it
        family, sockaddr = socket.AF_INET, (host, 0)
    except OSError:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return f"not an IP address: {address!r}"
        if ip.version == 4:
            return _resolve(str(ip), source)
        host = socket.inet_ntop(socket.AF_INET6, ip.packed)
        if host == address:
            host = address
        scope = getattr(ip, "scope_id", None)
        try:
            scope_index = (int(scope) if scope.isdigit() else socket.if_nametoindex(scope)) if scope else 0
        except OSError:
            return f"no interface {scope!r} for {address}"
        family, sockaddr = socket.AF_INET6, (host, 0, 0, scope_index)
    if source:
        with contextlib.suppress(ValueError):  # not an address: an interface name, for SO_BINDTODEVICE
            if (ipaddress.ip_address(source).version == 4) != (family == socket.AF_INET):
                return f"source {source} is not an IPv{4 if family == socket.AF_INET else 6} address"
    return _SourcedRequest(sockaddr, source) if source else _Request(sockaddr)


class IcmpProbe:
    kind = KIND
    settings_model: type[ProbeSettings] = IcmpSettings

    def __init__(self) -> None:
        self._endpoints: dict[tuple[int, str | None, bool, int], _Endpoint] = {}
        self._raw_works: dict[int, bool] = {}  # "auto" remembers per family whether raw sockets open
        # address (or (address, source) when sent from a source) -> where its echoes go, kept across cycles
        self._resolved: dict[str | tuple[str, str], _Request | str] = {}
        self._running = False

    async def run(self, targets: Sequence[Target], settings: ProbeSettings, deadline: float) -> list[Observation]:
        """Ping every target ``settings.count`` times, ``spacing_seconds`` apart, all done by ``deadline``."""
        s = settings if isinstance(settings, IcmpSettings) else IcmpSettings.model_validate(settings.model_dump())
        if self._running:
            raise RuntimeError("IcmpProbe.run() is already running: run one cycle at a time")
        if not targets:
            return []
        self._running = True
        loop = asyncio.get_running_loop()
        readers: list[int] = []
        try:
            where: list[_Where] = list(self._where(targets))
            unproven = self._unproven(targets)
            n = len(targets)
            total = n * s.count
            token = secrets.token_bytes(8)[: s.payload_bytes]
            c = _Cycle(n, s.count, [w.host if isinstance(w, _Request) else "" for w in where],
                       int(s.timeout_seconds * 1e9), token, (token * (s.payload_bytes // 8 + 1))[: s.payload_bytes],
                       secrets.randbelow(1 << 16), secrets.randbelow(1 << 16), (total + 0xFFFF) >> 16,
                       loop.create_future(), [0] * total, [-1] * total)
            routes = self._routes(where, c, s)
            for ep in self._endpoints.values():
                if ep.used:
                    self._discard_pending(ep)
                    loop.add_reader(ep.sock.fileno(), self._reader(ep, c))
                    readers.append(ep.sock.fileno())
            last = await self._send(c, routes, s, deadline)
            c.sending = False
            c.settle()
            wait = min(last + s.timeout_seconds, deadline) - time.monotonic()
            if wait > 0 and not c.done.done():
                await asyncio.wait({c.done}, timeout=wait)
            collecting = gc.isenabled()
            gc.disable()  # 10,000 new observations would set off full collections midway
            try:
                out = self._observations(targets, where, c)
            finally:
                if collecting:
                    gc.enable()
            for j, interface in unproven.items():
                o = out[j]
                out[j] = dataclasses.replace(o, details={**o.details, PATH_NOT_PROVEN: (interface,)})
            return out
        finally:
            for fd in readers:
                loop.remove_reader(fd)
            self._running = False

    async def warm(self) -> None:
        """Open sockets lazily, per family and source, in the first cycle that needs them."""

    async def close(self) -> None:
        """Close the shared socket(s)."""
        for ep in self._endpoints.values():
            ep.sock.close()
        self._endpoints.clear()

    def requests_sent(self, observations: Sequence[Observation]) -> int:
        """Return the echo requests sent, as each observation counts them."""
        return requests_in(observations)

    def dropped(self) -> Dropped:
        """Return zeros: replies are matched to this cycle's requests, the rest is not counted as dropped."""
        return NOTHING_DROPPED

    # ---- paths ---------------------------------------------------------------------------------------------

    @staticmethod
    def _unproven(targets: Sequence[Target]) -> dict[int, str]:
        """Return target index -> interface for every backup whose echoes would leave through its primary's.

        A backup sent from a source *address* takes whatever route the kernel picks for (destination,
        source): without policy routing that is usually the primary's interface, and an answer would prove
        nothing about the backup path. Asked of the kernel every cycle (routes and rules change).
        """
        cache: dict[tuple[str, str | None], str | None] = {}

        def interface(destination: str, source: str | None) -> str | None:
            if source and not is_address(source):
                return source  # SO_BINDTODEVICE: it leaves through that device
            key = (destination, source)
            if key not in cache:
                try:
                    cache[key] = output_interface(destination, source)
                except (OSError, ValueError):
                    cache[key] = None
            return cache[key]

        out: dict[int, str] = {}
        for j, t in enumerate(targets):
            primary = t.extra.get("primary_address") if t.extra else None
            if not primary or not is_address(t.source):
                continue
            mine = interface(t.address, t.source)
            if mine is not None and mine == interface(primary, t.extra.get("primary_source") or None):
                out[j] = mine
        return out

    # ---- sockets -------------------------------------------------------------------------------------------

    def _where(self, targets: Sequence[Target]) -> list[_Request | str]:
        """Resolve every target once per address and source, cached across cycles.

        Most targets have no source: their address string alone is the key, not a tuple per target.
        """
        if len(self._resolved) > 4 * len(targets) + 1024:
            self._resolved.clear()  # the inventory shrank or changed a lot
        cache, out = self._resolved, []
        for t in targets:
            key = t.address if t.source is None else (t.address, t.source)
            r = cache.get(key)
            if r is None:
                r = cache[key] = _resolve(t.address, t.source)
            out.append(r)
        return out

    def _routes(self, where: list[_Where], c: _Cycle, s: IcmpSettings) -> list[list[_Route | None]]:
        """Open the sockets this cycle needs, close the others, and return each lane's per-target routes.

        A target whose socket cannot be opened (a source we do not have, no IPv6) gets the reason in ``where``.
        """
        for ep in self._endpoints.values():
            ep.used = False
        base4 = _checksum_base(ECHO_REQUEST[socket.AF_INET], c.payload)
        lanes: list[list[_Route | None]] = []
        for lane in range(c.lanes):
            ident, row = (c.ident + lane) & 0xFFFF, list[_Route | None]()
            shared: dict[tuple[int, str | None], _Route | _Unsendable] = {}  # one socket per family and source
            for j, w in enumerate(where):
                if not isinstance(w, _Request):
                    row.append(None)
                    continue
                key = (w.family, w.source)
                if key not in shared:
                    try:
                        ep = self._open(w.family, w.source, lane, s)
                    except OSError as exc:
                        why = (exc.strerror or str(exc)).lower()
                        # Our own failure: a source this host cannot bind, or a family it cannot send.
                        shared[key] = (_Unsendable("bind_failed", f"cannot send from {w.source}: {why}") if w.source
                                       else _Unsendable("no_route", "cannot open an ICMP socket for this "
                                                                    f"address family: {why}"))
                    else:
                        # The kernel computes ICMPv6 checksums (RFC 3542 section 3.1) and those of
                        # datagram sockets; raw ICMPv4 gets ours, updated per packet (RFC 1624).
                        checksum = base4 + ident if ep.raw and w.family == socket.AF_INET else -1
                        shared[key] = (ep.sock.sendto, None, ECHO_REQUEST[w.family], checksum, ident)
                route = shared[key]
                if isinstance(route, _Unsendable):
                    where[j] = route
                    row.append(None)
                else:
                    row.append((route[0], w.sockaddr, route[2], route[3], route[4]))
            lanes.append(row)
        for idle in [k for k, ep in self._endpoints.items() if not ep.used]:
            self._endpoints.pop(idle).sock.close()  # an idle raw socket would still copy every ICMP packet
        return lanes

    def _open(self, family: int, source: str | None, lane: int, s: IcmpSettings) -> _Endpoint:
        """Return the socket for (family, source, lane), opening it on first use."""
        raw = self._raw_works.get(family, True) if s.socket == "auto" else s.socket == "raw"
        key = (family, source, raw, 0 if raw else lane)
        ep = self._endpoints.get(key)
        if ep is None:
            proto = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
            try:
                sock = socket.socket(family, socket.SOCK_RAW if raw else socket.SOCK_DGRAM, proto)
            except PermissionError:
                if raw and s.socket == "auto":
                    self._raw_works[family] = False
                    return self._open(family, source, lane, s)
                raise _unavailable("raw ICMP sockets" if raw else "ICMP datagram sockets") from None
            try:
                self._configure(sock, family, raw, source, s)
            except OSError:
                sock.close()
                raise
            ep = self._endpoints[key] = _Endpoint(sock, family, raw, key[3])
        ep.used = True
        return ep

    @staticmethod
    def _configure(sock: socket.socket, family: int, raw: bool, source: str | None, s: IcmpSettings) -> None:
        sock.setblocking(False)
        for force, plain, size in ((SO_RCVBUFFORCE, socket.SO_RCVBUF, s.receive_buffer_bytes),
                                   (SO_SNDBUFFORCE, socket.SO_SNDBUF, 1 << 20)):
            try:  # FORCE goes past net.core.rmem_max when we may (CAP_NET_ADMIN)
                sock.setsockopt(socket.SOL_SOCKET, force, size)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, plain, size)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        # A raw socket sees every ICMP packet of the host: let the kernel drop all but replies and errors.
        if raw and family == socket.AF_INET:
            blocked = ~((1 << 0) | (1 << 3) | (1 << 11)) & 0xFFFFFFFF
            sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("=I", blocked))
        elif raw:
            blocked = ((1 << 256) - 1) & ~((1 << 1) | (1 << 3) | (1 << 129))
            words = [(blocked >> (32 * w)) & 0xFFFFFFFF for w in range(8)]
            sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("=8I", *words))
        elif family == socket.AF_INET:  # datagram sockets report ICMP errors through the error queue only
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
        if source is not None:
            try:
                ipaddress.ip_address(source)
            except ValueError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, source.encode())
            else:
                sock.bind((source, 0))

    @staticmethod
    def _discard_pending(ep: _Endpoint) -> None:
        """Drop what arrived between cycles: late replies, other processes' pings, stale errors."""
        for flags in (0, MSG_ERRQUEUE):
            for _ in range(1 << 16):
                try:
                    ep.sock.recvmsg(2048, 512, flags)
                except OSError:
                    break

    # ---- receiving -----------------------------------------------------------------------------------------

    def _reader(self, ep: _Endpoint, c: _Cycle) -> Callable[[], None]:
        """Return the callback that drains ``ep`` into cycle ``c`` whenever it is readable."""
        sock, family, raw = ep.sock, ep.family, ep.raw
        recvmsg, reply, header_len = sock.recvmsg, ECHO_REPLY[family], raw and family == socket.AF_INET
        n, hosts, sent_ns, rtt_ns, token, errors = c.n, c.hosts, c.sent_ns, c.rtt_ns, c.token, c.errors
        ident, offset, lanes, total, timeout_ns = c.ident, c.offset, c.lanes, len(c.sent_ns), c.timeout_ns
        unpack_id_seq, unpack_ts = ID_SEQ.unpack_from, TIMESPEC.unpack
        time_ns, mono_ns = time.time_ns, time.monotonic_ns
        lane_bits = ep.lane << 16

        def drain() -> None:
            answered = 0
            offset_ns = time_ns() - mono_ns()  # kernel timestamps are wall-clock: this moves them to monotonic
            for _ in range(RECV_BATCH):
                try:
                    data, anc, _flags, addr = recvmsg(2048, 64)
                except BlockingIOError:
                    break
                except InterruptedError:
                    continue
                except OSError:  # a pending socket error: clear it, the error queue tells which echo
                    sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    break
                at = (data[0] & 15) << 2 if header_len else 0  # raw IPv4 includes the IP header
                if len(data) < at + 8:
                    continue
                if data[at] != reply:
                    if raw:
                        self._raw_error(c, data, at, family)
                    continue
                got_ident, seq = unpack_id_seq(data, at + 4)
                if raw:
                    lane = (got_ident - ident) & 0xFFFF
                    if lane >= lanes:
                        continue  # another process's ping
                    i = (lane << 16) | ((seq - offset) & 0xFFFF)
                else:
                    i = lane_bits | ((seq - offset) & 0xFFFF)
                if i >= total or not data.startswith(token, at + 8):
                    continue
                if addr[0] != hosts[i % n] and addr[0].split("%")[0] != hosts[i % n]:
                    continue
                sent = sent_ns[i]
                if not sent or rtt_ns[i] >= 0 or (errors and i in errors):
                    continue  # not sent this cycle, or a duplicate
                upper = mono_ns() - sent  # the reply is here now: no RTT is longer
                if anc:
                    sec, nsec = unpack_ts(anc[0][2])
                    rtt = sec * 1_000_000_000 + nsec - offset_ns - sent
                    if not 0 <= rtt <= upper:  # the wall clock stepped between arrival and this read
                        rtt = upper
                else:
                    rtt = upper
                if rtt > timeout_ns:
                    errors[i] = ("timeout", "late")
                else:
                    rtt_ns[i] = max(rtt, 0)
                answered += 1
            if not raw:
                self._error_queue(ep, c)
            if answered:
                c.n_done += answered
                c.settle()

        return drain

    @staticmethod
    def _raw_error(c: _Cycle, data: bytes, at: int, family: int) -> None:
        """Parse an ICMP error a raw socket received: it quotes our echo request (RFC 792, RFC 4443)."""
        kind, code, inner = data[at], data[at + 1], at + 8
        if family == socket.AF_INET:
            if len(data) < inner + 28 or data[inner + 9] != socket.IPPROTO_ICMP:
                return
            dst = socket.inet_ntop(socket.AF_INET, data[inner + 16: inner + 20])
            echo = inner + ((data[inner] & 15) << 2)
        else:
            if len(data) < inner + 48 or data[inner + 6] != socket.IPPROTO_ICMPV6:
                return
            dst = socket.inet_ntop(socket.AF_INET6, data[inner + 24: inner + 40])
            echo = inner + 40
        if len(data) >= echo + 8 and data[echo] == ECHO_REQUEST[family]:
            got_ident, seq = ID_SEQ.unpack_from(data, echo + 4)
            c.error_reply(family, kind, code, (got_ident - c.ident) & 0xFFFF, seq, dst)

    @staticmethod
    def _error_queue(ep: _Endpoint, c: _Cycle) -> None:
        """Read the ICMP errors a datagram socket queued (IP_RECVERR): each quotes our echo request."""
        for _ in range(RECV_BATCH):
            try:
                data, anc, _flags, addr = ep.sock.recvmsg(2048, 512, MSG_ERRQUEUE)
            except OSError:
                return
            ee = next((d for _level, kind, d in anc if kind in (IP_RECVERR, IPV6_RECVERR)), None)
            if ee is None or len(ee) < EXTENDED_ERR.size or len(data) < 8 or not addr:
                continue
            err, origin, kind, code = EXTENDED_ERR.unpack_from(ee)[:4]
            seq = ID_SEQ.unpack_from(data, 4)[1]
            if origin == SO_EE_ORIGIN[ep.family]:
                c.error_reply(ep.family, kind, code, ep.lane, seq, addr[0])
            else:  # a local error, e.g. EMSGSIZE
                i = (ep.lane << 16) | ((seq - c.offset) & 0xFFFF)
                if i < len(c.sent_ns):
                    c.fail(i, "error", os.strerror(err).lower())

    # ---- sending -------------------------------------------------------------------------------------------

    async def _send(self, c: _Cycle, routes: list[list[_Route | None]], s: IcmpSettings, deadline: float) -> float:
        """Send every request on schedule, targets interleaved; return (monotonic) when the last one left.

        Echo k of target t is due at ``k * period + t / rate``: a round of all targets takes
        ``n / rate``, and one target's echoes are ``spacing_seconds`` apart unless the round takes longer.
        """
        n, count, total, rate = c.n, c.count, len(c.sent_ns), float(s.rate_per_second)
        period = max(s.spacing_seconds, n / rate)
        payload = c.payload
        pack, stamp_ns, monotonic, sent_ns, offset = HEADER.pack, time.monotonic_ns, time.monotonic, c.sent_ns, c.offset
        start = last = monotonic()
        i = 0
        while i < total:
            now = monotonic()
            if now >= deadline:
                break  # never sent: not counted as sent, nor as lost
            k, t = divmod(i, n)
            due = start + k * period + t / rate
            if due > now:
                await asyncio.sleep(min(due, deadline) - now)
                continue
            if now - due > SLACK_SECONDS:
                start += now - due - SLACK_SECONDS
            elapsed = now - start
            k_now = int(elapsed // period)
            limit = total if k_now >= count else k_now * n + min(n, int((elapsed - k_now * period) * rate) + 1)
            limit = min(max(limit, i + 1), i + SEND_BATCH, total, ((i >> 16) + 1) << 16)  # one lane per batch
            row, first = routes[i >> 16], i
            while i < limit:
                route = row[i % n]
                if route is None:  # a target that cannot be probed: not sent
                    first += 1
                    i += 1
                    continue
                sendto, sockaddr, echo, checksum, ident = route
                seq = (i + offset) & 0xFFFF
                if checksum >= 0:
                    x = checksum + seq
                    x = (x & 0xFFFF) + (x >> 16)
                    packet = pack(echo, 0, ~((x & 0xFFFF) + (x >> 16)) & 0xFFFF, ident, seq) + payload
                else:
                    packet = pack(echo, 0, 0, ident, seq) + payload
                sent_ns[i] = stamp_ns()
                try:
                    sendto(packet, sockaddr)
                except BlockingIOError:  # the send buffer is full: let it drain, then resend
                    sent_ns[i] = 0
                    break
                except OSError:
                    # A socket reports a queued ICMP error (sk_err: a router's unreachable about an earlier
                    # echo) on its next send, which fails although this request is fine: clear it and retry
                    # once. What the retry raises is our own stack's answer about this destination (no route
                    # from here): the monitor's failure, never the site's.
                    try:
                        _clear_error(sendto)
                        sent_ns[i] = stamp_ns()
                        sendto(packet, sockaddr)
                    except OSError as exc:
                        failure = "no_route" if exc.errno in SEND_UNREACHABLE else "error"
                        c.fail(i, failure, (exc.strerror or str(exc)).lower())
                i += 1
            c.n_sent += i - first
            last = monotonic()
            if i < total:
                await asyncio.sleep(0 if i == limit else 0.001)
        return last

    # ---- results -------------------------------------------------------------------------------------------

    @staticmethod
    def _observations(targets: Sequence[Target], where: list[_Where], c: _Cycle) -> list[Observation]:
        """Turn the per-request arrays into one observation per target (a hot loop at 10,000 targets)."""
        n, count, at, mono = c.n, c.count, time.time(), time.monotonic()
        sends = zip(*(c.sent_ns[k * n:(k + 1) * n] for k in range(count)), strict=True)
        replies = zip(*(c.rtt_ns[k * n:(k + 1) * n] for k in range(count)), strict=True)
        out: list[Observation] = []
        append = out.append
        for j, (target, w, sent_at, rtts_ns) in enumerate(zip(targets, where, sends, replies, strict=True)):
            if isinstance(w, str):
                append(Observation.failed(target, KIND, "error", w))
                continue
            if isinstance(w, _Unsendable):
                append(Observation.failed(target, KIND, w.failure, w.reason))
                continue
            sent = count - sent_at.count(0)
            rtts = [r / 1e9 for r in rtts_ns if r >= 0]
            if not rtts:
                append(IcmpProbe._lost(target, c, j, sent))
                continue
            append(Observation(target.key, KIND, True, at, echo_values(sent, rtts), mono=mono))
        return out

    @staticmethod
    def _lost(target: Target, c: _Cycle, j: int, sent: int) -> Observation:
        """Explain a target none of whose echoes was answered."""
        if not sent:
            return Observation.failed(target, KIND, "not_probed", "cycle deadline reached before sending")
        values = echo_values(sent, ())
        errors = [c.errors[i] for i in range(j, c.n * c.count, c.n) if i in c.errors]
        for failure in ("no_route", "unreachable", "error"):  # our own stack's verdict first
            reasons = [reason for kind, reason in errors if kind == failure]
            if reasons:
                return Observation.failed(target, KIND, failure, f"0/{sent} replies, {reasons[-1]}", values)
        late = sum(1 for _, reason in errors if reason == "late")
        reason = f"0/{sent} replies" + (f", {late} after the timeout" if late else "")
        return Observation.failed(target, KIND, "timeout", reason, values)


PROBE = IcmpProbe()
