"""The SNMP client's own sockets and what comes back to them: it answers no one, a lying agent costs a counter
and one log line (never a traceback), and every failure says its cause with a word from a fixed set.

Peers are real: Net-SNMP's snmpd, and fake agents on 127.0.0.1 that answer with garbage, a wrong request id,
the wrong PDU, the wrong types, or ask the probe questions of their own.
"""

from __future__ import annotations

import ast
import asyncio
import logging
import re
import select
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pyasn1.codec.ber import decoder, encoder
from pyasn1.type import univ
from pysnmp.proto import api

from monitor.config.loader import Config
from monitor.demo.snmpsim import free_udp_port
from monitor.runtime.service import Service
from monitor.web.metrics import SnapshotCollector
from probes._snmp_engine import _Failure, _GuardedUdp, _header, _Watch
from probes.base import FAILURES
from probes.snmp import SNMP_FAILURES, SnmpProbe
from tests.probes.conftest import Snmpd
from tests.probes.test_snmp import cycle, make_config, settings, snmp_link, targets_of

V2C = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)


# --- SNMP messages built by hand, so that they can be wrong on purpose ----------------------------------


def tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    size = (n.bit_length() + 7) // 8
    return bytes([tag]) + (bytes([n]) if n < 0x80 else bytes([0x80 | size]) + n.to_bytes(size, "big")) + body


def integer(value: int) -> bytes:
    return encoder.encode(univ.Integer(value))


def oid(value: tuple[int, ...]) -> bytes:
    return encoder.encode(univ.ObjectIdentifier(value))


def v2c(community: bytes, request_id: int, var_binds: list[tuple[tuple[int, ...], bytes]], tag: int = 0xA2) -> bytes:
    """A v2c message: a response (0xA2) by default; 0xA0 is a GET, 0xA7 a trap."""
    binds = b"".join(tlv(0x30, oid(o) + value) for o, value in var_binds)
    pdu = tlv(tag, integer(request_id) + integer(0) + integer(0) + tlv(0x30, binds))
    return tlv(0x30, integer(1) + tlv(0x04, community) + pdu)


def v3_discovery(msg_id: int = 4242) -> bytes:
    """What a manager sends first to learn an agent's engine ID (RFC 3414 4): a reportable, empty GET."""
    header = tlv(0x30, integer(msg_id) + integer(65507) + tlv(0x04, b"\x04") + integer(3))
    usm = tlv(0x04, tlv(0x30, tlv(0x04, b"") + integer(0) + integer(0) + tlv(0x04, b"") * 3))
    scoped = tlv(0x30, tlv(0x04, b"") + tlv(0x04, b"") + tlv(0xA0, integer(msg_id) + integer(0) * 2 + tlv(0x30, b"")))
    return tlv(0x30, integer(3) + header + usm + scoped)


def parse_get(datagram: bytes) -> tuple[bytes, int, list[tuple[int, ...]]]:
    """Return a v2c request's community, request id and OIDs."""
    message, _ = decoder.decode(datagram, asn1Spec=V2C.Message())
    pdu = V2C.apiMessage.get_pdu(message)
    return (bytes(V2C.apiMessage.get_community(message)), int(V2C.apiPDU.get_request_id(pdu)),
            [tuple(name) for name, _ in V2C.apiPDU.get_varbinds(pdu)])


def silence(sock: socket.socket, seconds: float) -> list[bytes]:
    """Return every datagram ``sock`` receives within ``seconds``."""
    got, until = [], time.monotonic() + seconds
    while (left := until - time.monotonic()) > 0:
        if select.select([sock], [], [], left)[0]:
            got.append(sock.recv(65535))
    return got


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR], caplog.text
    assert "Traceback" not in caplog.text


@pytest.fixture
async def snmp_probe() -> Any:
    probe = SnmpProbe()
    yield probe
    await probe.close()


# --- pure parts -----------------------------------------------------------------------------------------


def test_header_tells_requests_from_answers() -> None:
    """Just enough BER to know whether a datagram asks or answers, and its request id; anything else raises."""
    assert _header(v2c(b"public", 7, [(SYS_UPTIME, b"\x05\x00")], tag=0xA0)) == (1, True, 7)
    assert _header(v2c(b"public", -3, [(SYS_UPTIME, integer(5))])) == (1, False, -3)
    assert _header(v2c(b"public", 9, [], tag=0xA7)) == (1, True, 9)  # a trap asks nothing of us, but is no answer
    assert _header(v3_discovery(31337)) == (3, True, 31337)
    good = v2c(b"public", 7, [(SYS_UPTIME, integer(5))])
    for bad in (b"", bytes(range(7, 90)), b"\x30\x82\xff\xff\x02\x01\x01", good[:-1], b"\x60\x00",
                tlv(0x30, integer(2) + good[5:]), b"\x30\x80" + good[2:]):
        with pytest.raises(ValueError):
            _header(bad)


def test_watch_admits_only_answers_to_our_requests() -> None:
    """Peers we never polled are unsolicited; from a polled one, anything but an answer to our ids is malformed;
    pysnmp may send requests only, never an answer nor an id it used before."""
    watch, agent = _Watch(), ("127.0.0.1", 16161)
    assert not watch.admit(agent, v2c(b"c", 1, []))
    assert (watch.unsolicited_total, watch.malformed_total) == (1, 0)
    assert watch.sent(agent, v2c(b"c", 1, [(SYS_UPTIME, b"\x05\x00")], tag=0xA0))
    assert watch.admit(agent, v2c(b"c", 1, [(SYS_UPTIME, integer(5))]))
    assert not watch.admit(agent, v2c(b"c", 2, [(SYS_UPTIME, integer(5))]))  # wrong request id
    assert not watch.admit(agent, v2c(b"c", 1, [], tag=0xA0))  # a request, not an answer
    assert not watch.admit(agent, b"\x30\x82\xff\xff\x02\x01\x01")  # truncated
    assert not watch.admit(("127.0.0.2", 16161), v2c(b"c", 1, []))  # same port, another host
    assert (watch.unsolicited_total, watch.malformed_total) == (2, 3)
    assert watch.malformed_from(agent) == (3, "truncated")
    assert not watch.sent(agent, v2c(b"c", 5, []))  # a response: pysnmp answering someone
    assert not watch.sent(agent, v2c(b"c", 1, [], tag=0xA0))  # an id already used: an answer in disguise
    assert not watch.sent(agent, b"junk")
    assert watch.refused_total == 3


def test_decode_errors_stop_at_the_transport(caplog: pytest.LogCaptureFixture) -> None:
    """Whatever pysnmp raises on a datagram is counted as malformed at the transport callback, never raised into
    the event loop (which logs a traceback per datagram)."""
    loop = asyncio.new_event_loop()
    try:
        watch, agent = _Watch(), ("127.0.0.1", 16161)
        transport = _GuardedUdp(watch, loop)

        def choke(*_: Any) -> None:
            raise TypeError("ConstructedAsn1Type.clone() takes 1 positional argument but 2 were given")

        transport.register_callback(choke)
        watch.sent(agent, v2c(b"c", 1, [], tag=0xA0))
        transport._deliver(agent, v2c(b"c", 1, []))
    finally:
        loop.close()
    assert watch.malformed_total == 1
    assert watch.malformed_from(agent) == (1, "pysnmp cannot decode it (TypeError)")
    no_tracebacks(caplog)


def test_failures_are_a_fixed_set() -> None:
    """Every failure word the SNMP modules write is in SNMP_FAILURES (a bounded label); any other becomes error."""
    assert _Failure("made_up", "x").failure == "error"
    probes_dir = Path(__file__).resolve().parents[2] / "probes"
    words = set()
    for path in [probes_dir / "snmp.py", *probes_dir.glob("_snmp_*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
                args = node.args[:1] if name == "_Failure" else node.args[2:3] if name == "failed" else []
                words |= {a.value for a in args if isinstance(a, ast.Constant)}
    assert words and words <= set(SNMP_FAILURES), words - set(SNMP_FAILURES)
    assert len(SNMP_FAILURES) == len(set(SNMP_FAILURES))
    assert set(SNMP_FAILURES) <= set(FAILURES)  # the service's one vocabulary


# --- the client answers no one --------------------------------------------------------------------------


def _unsolicited(community: str) -> list[bytes]:
    return [v3_discovery(), v2c(community.encode(), 77, [(SYS_UPTIME, b"\x05\x00")], tag=0xA0)]


async def test_the_client_answers_no_one(snmpd: Snmpd, snmp_probe: SnmpProbe) -> None:
    """After a cycle, a v3 discovery and a v2c GET sent from a fresh socket to the probe's own ports get no
    answer (they used to get a 99-byte report), are counted, and polling goes on. The same two datagrams sent
    to snmpd do get answers: they are real requests."""
    auths = {"v2": {"community": snmpd.community},
             "v3": {"version": "3", "user": snmpd.user, "auth_protocol": "SHA256", "auth_key": snmpd.auth_key,
                    "priv_protocol": "AES", "priv_key": snmpd.priv_key}}
    config = make_config(auths, ("LO", [snmp_link("primary", snmpd.port, "v2", if_name="lo"),
                                        snmp_link("backup", snmpd.port, "v3", if_name="lo")], []))
    targets = targets_of(config)
    first = await cycle(snmp_probe, targets, settings(timeout_seconds=2.0))
    assert all(o.ok for o in first.values()), first
    bound = snmp_probe._engine.bound_ports()
    assert bound and all(address in ("0.0.0.0", "::") for address, _ in bound), bound
    sent = 0
    for address, port in bound:
        family, loopback = (socket.AF_INET6, "::1") if ":" in address else (socket.AF_INET, "127.0.0.1")
        try:
            probe_side = socket.socket(family, socket.SOCK_DGRAM)
            probe_side.bind((loopback, 0))
        except OSError:
            continue  # no IPv6 loopback here
        with probe_side:
            for datagram in _unsolicited(snmpd.community):
                probe_side.sendto(datagram, (loopback, port))
                sent += 1
            answers = await asyncio.to_thread(silence, probe_side, 1.0)
        assert answers == [], f"the probe's {address} socket answered: {[len(a) for a in answers]} bytes"
    assert sent >= 2
    assert snmp_probe.unsolicited_total == sent
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as manager:
        manager.bind(("127.0.0.1", 0))
        for datagram in _unsolicited(snmpd.community):
            manager.sendto(datagram, ("127.0.0.1", snmpd.port))
        assert len(await asyncio.to_thread(silence, manager, 1.0)) == 2  # a report and a response
    again = await cycle(snmp_probe, targets, settings(timeout_seconds=2.0))
    assert all(o.ok for o in again.values()), again
    assert snmp_probe.malformed_total == 0


# --- lying peers ----------------------------------------------------------------------------------------


class FakeAgent(asyncio.DatagramProtocol):
    """A v2c "agent" on 127.0.0.1 that answers every request the way ``answer`` says; it keeps what it got."""

    def __init__(self, answer: Callable[[bytes, bytes, int, list[tuple[int, ...]]], list[bytes]]) -> None:
        self.answer = answer
        self.received: list[bytes] = []
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.append(data)
        community, request_id, oids = parse_get(data)
        for datagram in self.answer(data, community, request_id, oids):
            self.transport.sendto(datagram, addr)


def _garbage(_: bytes, community: bytes, request_id: int, oids: list[tuple[int, ...]]) -> list[bytes]:
    """Random bytes, truncated BER, what made pysnmp raise a TypeError, a cut answer, and an answer to our request
    id whose values do not decode (an empty BOOLEAN): only the last one gets past the header to pysnmp."""
    return [bytes(range(7, 90)), b"\x30\x82\xff\xff\x02\x01\x01", b"\x60\x00" + b"\x02\x01\x01" * 20,
            v2c(community, request_id, [(o, integer(1)) for o in oids])[:-3],
            v2c(community, request_id, [(o, b"\x01\x00") for o in oids])]


def _wrong_id(_: bytes, community: bytes, request_id: int, oids: list[tuple[int, ...]]) -> list[bytes]:
    return [v2c(community, request_id + 1, [(o, integer(1)) for o in oids])]


def _wrong_pdu(_: bytes, community: bytes, request_id: int, oids: list[tuple[int, ...]]) -> list[bytes]:
    return [v2c(community, request_id, [(o, integer(1)) for o in oids], tag=tag) for tag in (0xA0, 0xA3, 0xA7)]


def _wrong_types(_: bytes, community: bytes, request_id: int, oids: list[tuple[int, ...]]) -> list[bytes]:
    return [v2c(community, request_id, [(o, tlv(0x04, b"up")) for o in oids])]


def _asks_back(_: bytes, community: bytes, request_id: int, oids: list[tuple[int, ...]]) -> list[bytes]:
    return _unsolicited(community.decode())


@pytest.fixture
async def fake_agents() -> AsyncIterator[Callable[..., Any]]:
    started: list[tuple[Any, FakeAgent]] = []

    async def start(answer: Callable[..., list[bytes]]) -> tuple[int, FakeAgent]:
        transport, agent = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: FakeAgent(answer), local_addr=("127.0.0.1", 0))
        started.append((transport, agent))
        return transport.get_extra_info("sockname")[1], agent

    yield start
    for transport, _ in started:
        transport.close()


async def test_lying_agents_cost_a_counter_not_a_traceback(fake_agents: Callable[..., Any], snmp_probe: SnmpProbe,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """Garbage, truncated BER, a wrong request id, the wrong PDU, the wrong types, and an agent that sends requests
    of its own: each target fails with its cause, the drops are counted, the log has one line per minute and
    kind and no traceback, and nothing the agents sent was answered."""
    caplog.set_level(logging.DEBUG)
    kinds = {"garbage": _garbage, "wrong_id": _wrong_id, "wrong_pdu": _wrong_pdu, "wrong_types": _wrong_types,
             "asks_back": _asks_back}
    agents = {name: await fake_agents(answer) for name, answer in kinds.items()}
    config = make_config({"ro": {"community": "lies"}},
                         *[(name.upper(), [snmp_link("primary", port, "ro", if_index=1)], [])
                           for name, (port, _) in agents.items()])
    targets = targets_of(config)
    s = settings(timeout_seconds=0.5, retries=1)
    first = await cycle(snmp_probe, targets, s)
    after_one = snmp_probe.malformed_total
    second = await cycle(snmp_probe, targets, s)
    for obs in (first, second):
        failures = {key.split("/")[0].lower(): (o.ok, o.failure) for key, o in obs.items()}
        assert failures == {"garbage": (False, "malformed"), "wrong_id": (False, "malformed"),
                            "wrong_pdu": (False, "malformed"), "wrong_types": (False, "bad_response"),
                            "asks_back": (False, "malformed")}, obs
    garbage = second["GARBAGE/primary/snmp"].reason
    assert re.fullmatch(r"no answer within 0\.5s x 2 tries; the agent sent \d+ malformed datagram\(s\), the last one "
                        r"BER that does not decode", garbage), garbage
    assert "wrong request id" in second["WRONG_ID/primary/snmp"].reason
    assert second["WRONG_TYPES/primary/snmp"].reason.endswith("is OctetString, expected INTEGER")
    # garbage: 5 datagrams per try, 2 tries; wrong id 1 x 2; wrong PDU 3 x 2; asking back 2 x 2; per cycle.
    assert after_one >= 5 * 2 + 2 + 3 * 2 + 2 * 2
    assert snmp_probe.malformed_total >= 2 * after_one
    assert snmp_probe.unsolicited_total == 0  # they all came from agents we poll
    no_tracebacks(caplog)
    dropped = [r.getMessage() for r in caplog.records if "(malformed, " in r.getMessage()]
    assert len(dropped) == 1, dropped  # once a minute per kind, whatever the number
    for _, agent in agents.values():
        assert agent.received and all(_header(d)[1] for d in agent.received)  # requests only: we answered none


# --- causes, against Net-SNMP ---------------------------------------------------------------------------


async def test_snmpd_tells_wrong_keys_unknown_users_and_silence_apart(snmpd: Snmpd, snmp_probe: SnmpProbe) -> None:
    """Net-SNMP with a wrong authentication key, an unknown user, a privacy level the user does not have, and a
    port where no agent listens: each its own failure code and reason from SNMP_FAILURES, the USM report named, no
    key anywhere. A wrong privacy key is either reported or ignored (a timeout that says it may be that)."""
    good = {"version": "3", "user": snmpd.user, "auth_protocol": "SHA256", "auth_key": snmpd.auth_key,
            "priv_protocol": "AES", "priv_key": snmpd.priv_key}
    wrong_auth, wrong_priv = "NotTheAuthKey-5e1f", "NotThePrivKey-77ab"
    auths = {"wrong-auth": {**good, "auth_key": wrong_auth}, "unknown-user": {**good, "user": "nobody-here"},
             "no-priv-at-agent": {**good, "user": snmpd.auth_only_user}, "v2": {"community": snmpd.community}}
    dead = free_udp_port()
    sites = [(name.upper(), [snmp_link("primary", snmpd.port, name, if_name="lo")], []) for name in auths]
    config = make_config(auths, *sites, ("DEAD", [snmp_link("primary", dead, "v2", if_index=1)], []))
    s = settings(timeout_seconds=1.0)
    obs = {k.split("/")[0]: o for k, o in (await cycle(snmp_probe, targets_of(config), s)).items()}
    assert obs["V2"].ok, obs["V2"].reason
    got = {name: (o.failure, o.reason) for name, o in obs.items() if name != "V2"}
    assert got["WRONG-AUTH"] == ("auth_failed", "user readiness: wrong digest, the agent rejects the authentication "
                                                "key (usmStatsWrongDigests)")
    assert got["UNKNOWN-USER"][0] == "auth_failed" and "usmStatsUnknownUserNames" in got["UNKNOWN-USER"][1], got
    assert got["NO-PRIV-AT-AGENT"][0] == "auth_failed", got
    assert "usmStatsUnsupportedSecLevels" in got["NO-PRIV-AT-AGENT"][1], got
    assert got["DEAD"][0] == "timeout" and got["DEAD"][1].startswith("no answer within 1s x 1 tries"), got
    assert len(set(got.values())) == 4

    # pysnmp holds one set of keys per user name: the wrong privacy key needs a probe of its own.
    config = make_config({"wrong-priv": {**good, "priv_key": wrong_priv}},
                         ("WRONG-PRIV", [snmp_link("primary", snmpd.port, "wrong-priv", if_name="lo")], []))
    other = SnmpProbe()
    try:
        obs["WRONG-PRIV"] = (await cycle(other, targets_of(config), s))["WRONG-PRIV/primary/snmp"]
    finally:
        await other.close()
    failure, reason = obs["WRONG-PRIV"].failure, obs["WRONG-PRIV"].reason
    assert (failure == "auth_failed" and "usmStatsDecryptionErrors" in reason) or (
        failure == "timeout" and "a wrong privacy key looks the same" in reason), (failure, reason)
    assert all(o.failure in SNMP_FAILURES for o in obs.values() if not o.ok)
    shown = repr(obs)
    for secret in (snmpd.auth_key, snmpd.priv_key, snmpd.community, wrong_auth, wrong_priv):
        assert secret not in shown


# --- exported -------------------------------------------------------------------------------------------


async def test_the_service_exports_the_counters(fake_agents: Callable[..., Any]) -> None:
    """A service cycle over a lying agent carries the probe's counters into its cycle stats and /metrics
    (readiness_snmp_malformed_total, readiness_snmp_unsolicited_total)."""
    port, _ = await fake_agents(_garbage)
    config = Config.model_validate({
        "programme": {"deadline": "2026-06-01T08:00:00"}, "auths": {"ro": {"community": "lies"}},
        "probes": {"snmp": {"timeout_seconds": 0.5, "retries": 0, "interval_seconds": 30}},
        "sites": [{"id": "G", "name": "G", "county": "Ilam", "area": "urban",
                   "links": [snmp_link("primary", port, "ro", if_index=1)]}]})
    probe = SnmpProbe()
    service = Service(config, probes={"snmp": probe})
    try:
        await service.probe_cycle("snmp", then_evaluate=False)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            stranger.sendto(v3_discovery(), ("127.0.0.1", probe._engine.bound_ports()[0][1]))
            await asyncio.sleep(0.2)
        await service.probe_cycle("snmp", then_evaluate=False)
    finally:
        await service.close()
    stats = service.cycles["snmp"]
    assert (stats.malformed_total, stats.unsolicited_total) == (probe.malformed_total, 1)
    assert stats.malformed_total >= 2 * 5
    families = {f.name: f for f in SnapshotCollector(lambda: service.evaluate(force=True)).collect()}
    assert families["readiness_snmp_malformed"].samples[0].value == stats.malformed_total
    assert families["readiness_snmp_unsolicited"].samples[0].value == 1
