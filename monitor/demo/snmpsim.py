"""Simulated SNMP agents for tests and the demo: write snmpsim recordings and run snmpsim on loopback.

A device is one ``.snmprec`` file; its v2c community is the file's path below the data directory,
without the extension. snmpsim serves SNMPv3 requests with an empty context name from the file
``self.snmprec`` (:data:`V3_DEVICE`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto.api import v2c

# pysnmp 7's command responder looks the context name up before snmpsim can choose a file by the
# manager's address, so a v3 request with an empty context name needs a file registered under "":
# snmpsim strips a leading "self" from data file names, and "self.snmprec" becomes that file.
V3_DEVICE = "self"

# MIB objects the builders fill (RFC 3418, RFC 2863, RFC 6933, RFC 3433, RFC 4293).
SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
IF_NUMBER = "1.3.6.1.2.1.2.1.0"
IF_ENTRY = "1.3.6.1.2.1.2.2.1"
IF_X_ENTRY = "1.3.6.1.2.1.31.1.1.1"
ENT_PHYSICAL_ENTRY = "1.3.6.1.2.1.47.1.1.1.1"
ENT_ALIAS_MAPPING_IDENTIFIER = "1.3.6.1.2.1.47.1.3.2.1.2"
ENT_PHY_SENSOR_ENTRY = "1.3.6.1.2.1.99.1.1.1"
IP_NET_TO_PHYSICAL_ENTRY = "1.3.6.1.2.1.4.35.1"
IP_NET_TO_MEDIA_ENTRY = "1.3.6.1.2.1.4.22.1"


@dataclass(frozen=True, slots=True)
class Value:
    """One snmprec value: its tag (type, with an optional variation module) and its text."""

    tag: str
    text: str

    def line(self, oid: str) -> str:
        """Return the snmprec line for ``oid``."""
        return f"{oid}|{self.tag}|{self.text}"


def integer(value: int) -> Value:
    return Value("2", str(int(value)))


def octets(value: str | bytes) -> Value:
    """Return an OCTET STRING; anything but plain printable ASCII is written as hex."""
    raw = value.encode() if isinstance(value, str) else value
    if all(32 <= b < 127 for b in raw) and b"|" not in raw and not raw.startswith(b" "):
        return Value("4", raw.decode())
    return Value("4x", raw.hex())


def object_id(value: str) -> Value:
    return Value("6", value)


def ip_address(value: str) -> Value:
    return Value("64", value)


def counter32(value: int) -> Value:
    return Value("65", str(int(value)))


def gauge32(value: int) -> Value:
    return Value("66", str(int(value)))


def timeticks(value: int) -> Value:
    return Value("67", str(int(value)))


def counter64(value: int) -> Value:
    return Value("70", str(int(value)))


def no_such_object() -> Value:
    return Value("128", "")


_TAGS = {"Integer": "2", "Counter32": "65", "Gauge32": "66", "TimeTicks": "67", "Counter64": "70"}


def numeric(kind: str, *, initial: int = 0, rate: float = 1.0, wrap: bool = False,
            maximum: int | None = None) -> Value:
    """Return a value that grows by ``rate`` per second since snmpsim started (variation ``numeric``).

    With ``wrap`` it starts again from zero past ``maximum`` (default: the type's maximum), which is
    how a Counter32 or Counter64 wraps.
    """
    settings = [f"initial={initial}", f"rate={rate:g}"]
    if maximum is not None:
        settings.append(f"max={maximum}")
    if wrap:
        settings.append("wrap=1")
    return Value(f"{_TAGS[kind]}:numeric", ",".join(settings))


def delayed(value: Value, wait_ms: int) -> Value:
    """Return ``value`` answered after ``wait_ms`` milliseconds (variation ``delay``).

    snmpsim sleeps in its only thread, so a delayed device stalls every device of that snmpsim
    process: give it a process of its own. Over 99999 ms snmpsim drops the request instead.
    """
    if ":" in value.tag:
        raise ValueError("a delayed value cannot carry another variation module")
    base = value.tag.removesuffix("x")
    text = f"hexvalue={value.text}" if value.tag.endswith("x") else f"value={value.text}"
    return Value(f"{base}:delay", f"{text},wait={wait_ms}")


def writable(value: Value) -> Value:
    """Return ``value`` made writable with SNMP SET (variation ``writecache``), e.g. to take a port down
    during a demo: ``snmpset -v2c -c <community> 127.0.0.1:<port> 1.3.6.1.2.1.2.2.1.8.1 i 2``."""
    if ":" in value.tag:
        raise ValueError("a writable value cannot carry another variation module")
    base = value.tag.removesuffix("x")
    text = f"hexvalue={value.text}" if value.tag.endswith("x") else f"value={value.text}"
    return Value(f"{base}:writecache", text)


def _oid_key(oid: str) -> tuple[int, ...]:
    return tuple(int(part) for part in oid.strip(".").split("."))


def write_device(data_dir: str | Path, name: str, records: Mapping[str, Value]) -> Path:
    """Write ``records`` (OID -> value) as ``data_dir/name.snmprec``, sorted as snmpsim needs.

    The v2c community that reads it is ``name``.
    """
    path = Path(data_dir) / f"{name}.snmprec"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [records[oid].line(oid.strip(".")) for oid in sorted(records, key=_oid_key)]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="iso-8859-1")
    tmp.replace(path)
    return path


@dataclass(frozen=True, slots=True)
class Port:
    """One interface of a simulated device, with its optics."""

    if_index: int
    name: str  # ifName, e.g. "Gi0/1"
    descr: str = ""  # ifDescr; defaults to the name
    alias: str = ""  # ifAlias, any script
    admin_up: bool = True
    oper_up: bool = True
    last_change_ticks: int = 0  # sysUpTime when the port last changed state
    speed_mbps: int = 1000
    in_octets: Value | int = 0  # ifHCInOctets (Counter64), or any Value such as numeric(...)
    out_octets: Value | int = 0
    in_errors: Value | int = 0  # Counter32
    out_errors: Value | int = 0
    in_discards: Value | int = 0
    rx_dbm: float | None = None  # a transceiver with power sensors when either is set (encoded in watts,
    tx_dbm: float | None = None  # to a tenth of a microwatt: -26.4 dBm reads back as -26.383)


@dataclass(frozen=True, slots=True)
class Neighbour:
    """One ARP/neighbour entry the device learnt on ``if_index``."""

    if_index: int
    address: str
    mac: str = "02:00:00:00:00:01"
    state: int = 1  # ipNetToPhysicalState: reachable(1) ... incomplete(7)


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """A realistic router or switch: system group, IF-MIB, ENTITY-MIB with optics, ARP table."""

    ports: Sequence[Port]
    name: str = "router"
    uptime_ticks: int = 8_640_000  # one day
    uptime_grows: bool = True  # sysUpTime advances 100 ticks per second while snmpsim runs
    neighbours: Sequence[Neighbour] = ()
    # How optics are tied to ports: "alias" (entAliasMappingTable and containment, as Cisco does),
    # "contained" (containment only) or "name" (flat sensors named after the port).
    sensor_layout: str = "alias"
    arp_table: str = "physical"  # "physical" (ipNetToPhysicalTable), "media" (ipNetToMediaTable), "none"
    extra: Mapping[str, Value] = field(default_factory=dict)


def port_entity(port: Port) -> int:
    return 1000 + port.if_index


def rx_sensor(port: Port) -> int:
    return 3000 + port.if_index * 10 + 1


def tx_sensor(port: Port) -> int:
    return 3000 + port.if_index * 10 + 2


def _c32(value: Value | int) -> Value:
    return value if isinstance(value, Value) else counter32(value)


def _c64(value: Value | int) -> Value:
    return value if isinstance(value, Value) else counter64(value)


def _entity(records: dict[str, Value], index: int, descr: str, cls: int, contained_in: int, name: str) -> None:
    # entPhysicalDescr(2), entPhysicalContainedIn(4), entPhysicalClass(5), entPhysicalName(7)
    records[f"{ENT_PHYSICAL_ENTRY}.2.{index}"] = octets(descr)
    records[f"{ENT_PHYSICAL_ENTRY}.4.{index}"] = integer(contained_in)
    records[f"{ENT_PHYSICAL_ENTRY}.5.{index}"] = integer(cls)
    records[f"{ENT_PHYSICAL_ENTRY}.7.{index}"] = octets(name)


def optical_watts(dbm: float) -> int:
    """Return ``dbm`` as an entPhySensorValue in watts, scale milli(8), precision 4 (tenths of a microwatt),
    the way Arista EOS and SONiC report transceiver power; 0 is as dark as the encoding gets."""
    return round(10 ** (dbm / 10) * 10_000)


def _sensor(records: dict[str, Value], index: int, dbm: float) -> None:
    # RFC 3433 has no dBm: entPhySensorType watts(6), scale milli(8), precision 4, status ok(1)
    records[f"{ENT_PHY_SENSOR_ENTRY}.1.{index}"] = integer(6)
    records[f"{ENT_PHY_SENSOR_ENTRY}.2.{index}"] = integer(8)
    records[f"{ENT_PHY_SENSOR_ENTRY}.3.{index}"] = integer(4)
    records[f"{ENT_PHY_SENSOR_ENTRY}.4.{index}"] = integer(optical_watts(dbm))
    records[f"{ENT_PHY_SENSOR_ENTRY}.5.{index}"] = integer(1)


def _mac(text: str) -> bytes:
    return bytes(int(part, 16) for part in text.split(":"))


def interface_device(spec: DeviceSpec) -> dict[str, Value]:
    """Return the records of a device built from ``spec``."""
    r: dict[str, Value] = {
        SYS_DESCR: octets(f"readiness simulated router {spec.name}"),
        SYS_OBJECT_ID: object_id("1.3.6.1.4.1.8072.3.2.10"),
        SYS_UPTIME: (numeric("TimeTicks", initial=spec.uptime_ticks, rate=100) if spec.uptime_grows
                     else timeticks(spec.uptime_ticks)),
        SYS_NAME: octets(spec.name),
        IF_NUMBER: integer(len(spec.ports)),
    }
    _entity(r, 1, "chassis", 3, 0, spec.name)
    for p in spec.ports:
        i = p.if_index
        r[f"{IF_ENTRY}.1.{i}"] = integer(i)
        r[f"{IF_ENTRY}.2.{i}"] = octets(p.descr or p.name)
        r[f"{IF_ENTRY}.3.{i}"] = integer(6)  # ethernetCsmacd
        r[f"{IF_ENTRY}.5.{i}"] = gauge32(min(p.speed_mbps * 1_000_000, 4_294_967_295))
        r[f"{IF_ENTRY}.7.{i}"] = integer(1 if p.admin_up else 2)
        r[f"{IF_ENTRY}.8.{i}"] = integer(1 if p.oper_up and p.admin_up else 2)
        r[f"{IF_ENTRY}.9.{i}"] = timeticks(p.last_change_ticks)
        r[f"{IF_ENTRY}.13.{i}"] = _c32(p.in_discards)
        r[f"{IF_ENTRY}.14.{i}"] = _c32(p.in_errors)
        r[f"{IF_ENTRY}.20.{i}"] = _c32(p.out_errors)
        r[f"{IF_X_ENTRY}.1.{i}"] = octets(p.name)
        r[f"{IF_X_ENTRY}.6.{i}"] = _c64(p.in_octets)
        r[f"{IF_X_ENTRY}.10.{i}"] = _c64(p.out_octets)
        r[f"{IF_X_ENTRY}.15.{i}"] = gauge32(p.speed_mbps)
        r[f"{IF_X_ENTRY}.18.{i}"] = octets(p.alias)
        if p.rx_dbm is None and p.tx_dbm is None:
            continue
        port_ent, module = port_entity(p), 2000 + i
        if spec.sensor_layout == "name":
            holder = 1
        else:
            _entity(r, port_ent, f"{p.descr or p.name} port", 10, 1, p.name)
            _entity(r, module, "SFP-10G-LR transceiver", 9, port_ent, f"{p.name} transceiver")
            holder = module
            if spec.sensor_layout == "alias":
                r[f"{ENT_ALIAS_MAPPING_IDENTIFIER}.{port_ent}.0"] = object_id(f"{IF_ENTRY}.1.{i}")
        for sensor, dbm, word in ((rx_sensor(p), p.rx_dbm, "Receive"), (tx_sensor(p), p.tx_dbm, "Transmit")):
            if dbm is None:
                continue
            _entity(r, sensor, f"{word} Power Sensor", 8, holder, f"{p.name} {word} Power Sensor")
            _sensor(r, sensor, dbm)
    for n in spec.neighbours:
        addr = socket.inet_pton(socket.AF_INET6 if ":" in n.address else socket.AF_INET, n.address)
        if spec.arp_table == "physical":
            family = 2 if len(addr) == 16 else 1
            idx = f"{n.if_index}.{family}.{len(addr)}." + ".".join(str(b) for b in addr)
            r[f"{IP_NET_TO_PHYSICAL_ENTRY}.4.{idx}"] = octets(_mac(n.mac))
            r[f"{IP_NET_TO_PHYSICAL_ENTRY}.6.{idx}"] = integer(3)  # dynamic
            r[f"{IP_NET_TO_PHYSICAL_ENTRY}.7.{idx}"] = integer(n.state)
        elif spec.arp_table == "media" and len(addr) == 4:
            idx = f"{n.if_index}." + ".".join(str(b) for b in addr)
            r[f"{IP_NET_TO_MEDIA_ENTRY}.1.{idx}"] = integer(n.if_index)
            r[f"{IP_NET_TO_MEDIA_ENTRY}.2.{idx}"] = octets(_mac(n.mac))
            r[f"{IP_NET_TO_MEDIA_ENTRY}.3.{idx}"] = ip_address(n.address)
            r[f"{IP_NET_TO_MEDIA_ENTRY}.4.{idx}"] = integer(3)  # dynamic
    r.update(spec.extra)
    return r


# --- running snmpsim ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class V3User:
    """An SNMPv3 user for snmpsim. The keys go to snmpsim through a private file, not its argv."""

    user: str
    auth_key: str | None = None
    auth_proto: str = "SHA"  # MD5, SHA, SHA224, SHA256, SHA384, SHA512
    priv_key: str | None = None
    priv_proto: str = "AES"  # DES, AES, AES192, AES256


@dataclass
class SnmpsimHandle:
    """A running snmpsim process; stop it with :func:`stop_snmpsim` (or use it as a context manager)."""

    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log_path: Path
    work_dir: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        """Return what snmpsim logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        stop_snmpsim(self)

    def __enter__(self) -> SnmpsimHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_udp_port() -> int:
    """Return a UDP port on 127.0.0.1 that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def snmp_answers(port: int, community: str, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """Return whether a v2c GET of sysUpTime.0 on ``host:port`` gets an answer."""
    pdu = v2c.GetRequestPDU()
    v2c.apiPDU.set_defaults(pdu)
    v2c.apiPDU.set_varbinds(pdu, [((1, 3, 6, 1, 2, 1, 1, 3, 0), v2c.null)])
    msg = v2c.Message()
    v2c.apiMessage.set_defaults(msg)
    v2c.apiMessage.set_community(msg, community)
    v2c.apiMessage.set_pdu(msg, pdu)
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(encoder.encode(msg), (host, port))
            data, _ = sock.recvfrom(65535)
        except OSError:
            return False
    try:
        decoder.decode(data, asn1Spec=v2c.Message())
    except Exception:  # an answer we cannot parse is still an answer from something else
        return False
    return True


# An SNMPv3 engine-ID discovery request (noAuthNoPriv, empty user, reportable): RFC 3414 section 4
# obliges every SNMPv3 engine to answer it with a report, whatever its users and communities.
_DISCOVERY = bytes.fromhex("303a020103300f02024a69020300ffe30401040201030410300e0400020100020100040004000400"
                           "301204000400a00c020237f00201000201003000")


def snmp_engine_answers(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """Return whether an SNMP engine on ``host:port`` answers an SNMPv3 discovery request."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(_DISCOVERY, (host, port))
            data, _ = sock.recvfrom(65535)
        except OSError:
            return False
    return data.startswith(b"\x30")


def start_snmpsim(data_dir: str | Path, port: int | None = None, *, users: Iterable[V3User] = (),
                  engine_id: str | None = None, startup_timeout: float = 30.0,
                  work_dir: str | Path | None = None, log_level: str = "error") -> SnmpsimHandle:
    """Start ``snmpsim-command-responder`` on 127.0.0.1:``port`` serving ``data_dir``; wait until it answers.

    snmpsim refuses to run as root unless SNMPSIM_ALLOW_ROOT is set; we set it for the child only.
    """
    exe = shutil.which("snmpsim-command-responder") or shutil.which(
        "snmpsim-command-responder", path=str(Path(sys.executable).parent))
    if exe is None:
        raise FileNotFoundError("snmpsim-command-responder is not installed (pip install snmpsim)")
    data = Path(data_dir).resolve()
    if not any(data.rglob("*.snmprec")):
        raise ValueError(f"{data} holds no .snmprec file")
    port = port or free_udp_port()
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="snmpsim-"))
    work.mkdir(parents=True, exist_ok=True)
    args = [f"--cache-dir={work / 'cache'}", "--logging-method=stdout", f"--log-level={log_level}"]
    # The engine's options (data, users, endpoint) go in a 0600 file, so keys never appear in argv
    # or `ps`; at log level info snmpsim prints them in its own log, hence "error" by default.
    engine = [f"--v3-engine-id={engine_id or 'auto'}", f"--data-dir={data}"]
    for u in users:
        engine.append(f"--v3-user={u.user}")
        if u.auth_key:
            engine += [f"--v3-auth-key={u.auth_key}", f"--v3-auth-proto={u.auth_proto}"]
        if u.priv_key:
            engine += [f"--v3-priv-key={u.priv_key}", f"--v3-priv-proto={u.priv_proto}"]
    engine.append(f"--agent-udpv4-endpoint=127.0.0.1:{port}")
    args_file = work / "engine.args"
    fd = os.open(args_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(engine) + "\n")
    log_path = work / "snmpsim.log"
    env = {**os.environ, "SNMPSIM_ALLOW_ROOT": "true"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen([exe, *args, f"--args-from-file={args_file}"], stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                   start_new_session=True)
    handle = SnmpsimHandle(process, port, data, log_path, work)
    until = time.monotonic() + startup_timeout
    while time.monotonic() < until:
        if process.poll() is not None:
            raise RuntimeError(f"snmpsim exited with {process.returncode}:\n{handle.log()[-2000:]}")
        if snmp_engine_answers(port, timeout=0.2):
            return handle
        time.sleep(0.05)
    stop_snmpsim(handle)
    raise TimeoutError(f"snmpsim did not answer on 127.0.0.1:{port} within {startup_timeout:g}s:\n"
                       f"{handle.log()[-2000:]}")


def stop_snmpsim(handle: SnmpsimHandle, timeout: float = 5.0) -> None:
    """Stop the snmpsim process by its PID (SIGTERM, then SIGKILL)."""
    proc = handle.process
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
        except ProcessLookupError:
            pass
