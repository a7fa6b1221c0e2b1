"""Poll N devices x K OIDs with our SNMP engine and with Net-SNMP's tools, side by side, and print a table.

The agent is Net-SNMP's snmpd on this machine, started with its own config and listening on ``--addresses``
loopback addresses (127.20.0.1 upwards, one port), so the N devices are spread over that many agents'
endpoints. Every run does the same work on both sides:

* ``get``: one GET of K OIDs per device (sysUpTime and ifTable/ifXTable objects of ifIndex 1). Ours: the
  probe's own request path (one shared pysnmp engine, one socket, ``--concurrency`` in flight). Net-SNMP:
  one ``snmpget`` process per device, ``--procs`` at a time (there is no multi-host snmpget).
* ``bulk``: one GETBULK of K repetitions per device (walking ifDescr); ours vs ``snmpbulkget``.
* ``cycle``: our whole probe cycle on N interface targets in steady state (one GET of ~14 OIDs each).

CPU is user+system seconds of the poller only (our process; Net-SNMP's child processes), per 1,000 devices;
the agent's own CPU is shown apart. Each figure is the median of ``--repeat`` runs after one warm-up.

    python bench/snmp_poll.py                         # 1,000 devices, K = 4 and 16, v2c
    python bench/snmp_poll.py --devices 3000 --oids 4 --versions 2c,3 --profile
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import itertools
import json
import os
import pstats
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pysnmp.hlapi.v3arch.asyncio import (
    USM_AUTH_HMAC192_SHA256,
    USM_PRIV_CFB128_AES,
    CommunityData,
    UsmUserData,
)

from monitor.config.loader import Config
from monitor.config.targets import snmp_targets
from monitor.demo.snmpsim import free_udp_port, snmp_answers
from probes.snmp import SnmpProbe, SnmpSettings, _Engine, _var_binds

COMMUNITY = "benchReadOnly7"
USER, AUTH_KEY, PRIV_KEY = "bench", "benchAuthKey123", "benchPrivKey123"
IF = "1.3.6.1.2.1.2.2.1"
IFX = "1.3.6.1.2.1.31.1.1.1"
# What the probe asks for, then more interface columns, for K up to 24.
OIDS = ["1.3.6.1.2.1.1.3.0", *(f"{IF}.{c}.1" for c in (7, 8, 9)), *(f"{IFX}.{c}.1" for c in (6, 10)),
        *(f"{IF}.{c}.1" for c in (14, 20, 13)), f"{IFX}.15.1", f"{IFX}.1.1",
        *(f"{IF}.{c}.1" for c in (2, 3, 4, 5, 6, 10, 11, 16, 17, 19)), *(f"{IFX}.{c}.1" for c in (7, 11, 18))]
BULK_COLUMN = f"{IF}.2"


@dataclass
class Run:
    seconds: float
    cpu_seconds: float
    agent_cpu_seconds: float
    pdus: int
    failed: int


@dataclass
class Row:
    work: str
    version: str
    tool: str
    devices: int
    oids: int
    pdus: int
    failed: int
    seconds: float
    pdus_per_second: float
    cpu_seconds: float
    cpu_seconds_per_1000_devices: float
    agent_cpu_seconds: float


class Snmpd:
    """Net-SNMP's agent on ``count`` loopback addresses and one high port, with its own config."""

    def __init__(self, count: int, work: Path) -> None:
        exe = shutil.which("snmpd") or shutil.which("snmpd", path="/usr/sbin:/sbin")
        if exe is None:
            sys.exit("snmpd is not installed (Debian package snmpd)")
        self.port = free_udp_port()
        self.addresses = [f"127.20.{i // 250}.{i % 250 + 1}" for i in range(count)]
        (work / "persist").mkdir()
        endpoints = ",".join(f"udp:{a}:{self.port}" for a in self.addresses)
        (work / "snmpd.conf").write_text(
            f"[snmp] persistentDir {work / 'persist'}\nagentaddress {endpoints}\n"
            f"rocommunity {COMMUNITY} 127.0.0.0/8\n"
            f'createUser {USER} SHA-256 "{AUTH_KEY}" AES "{PRIV_KEY}"\nrouser {USER} priv\n')
        self.process = subprocess.Popen(
            [exe, "-f", "-C", "-c", str(work / "snmpd.conf"), "-Lf", "/dev/null", "-M", "/dev/null", "-m", "",
             "-I", "-smux", "-p", str(work / "snmpd.pid")], env={**os.environ, "MIBS": ""}, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        until = time.monotonic() + 15
        while not snmp_answers(self.port, COMMUNITY, self.addresses[-1], timeout=0.2):
            if self.process.poll() is not None or time.monotonic() > until:
                sys.exit("snmpd did not start")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            self.process.wait(10)


def auth_data(version: str) -> Any:
    if version == "2c":
        return CommunityData("bench", COMMUNITY)
    return UsmUserData(USER, AUTH_KEY, PRIV_KEY, authProtocol=USM_AUTH_HMAC192_SHA256,
                       privProtocol=USM_PRIV_CFB128_AES)


async def ours_requests(engine: _Engine, agent: Snmpd, version: str, devices: int, k: int, bulk: bool,
                        args: argparse.Namespace) -> Run:
    auth = auth_data(version)
    transports = [await engine.transport(agent.addresses[i % len(agent.addresses)], agent.port,
                                         args.timeout, args.retries) for i in range(devices)]
    var_binds = _var_binds(tuple(int(x) for x in oid.split(".")) for oid in ([BULK_COLUMN] if bulk else OIDS[:k]))
    gate = asyncio.Semaphore(args.concurrency)
    failed = 0

    async def one(transport: Any) -> None:
        nonlocal failed
        async with gate:
            try:
                await engine.request(auth, transport, var_binds, bulk=k if bulk else 0)
            except Exception:  # a failed request is counted, not fatal, in a benchmark
                failed += 1

    return await timed(lambda: asyncio.gather(*(one(t) for t in transports)), agent, devices, lambda: failed)


async def ours_cycle(probe: SnmpProbe, agent: Snmpd, version: str, devices: int, args: argparse.Namespace) -> Run:
    auth = {"community": COMMUNITY} if version == "2c" else {
        "version": "3", "user": USER, "auth_protocol": "SHA256", "auth_key": AUTH_KEY, "priv_protocol": "AES",
        "priv_key": PRIV_KEY}
    config = Config.model_validate({
        "programme": {"deadline": "2026-06-01T08:00:00"}, "auths": {"bench": auth},
        "sites": [{"id": f"D{i}", "name": f"D{i}", "county": "bench", "area": "urban", "links": [
            {"role": "primary", "medium": "fiber", "address": "10.255.0.1", "snmp": {
                "device": agent.addresses[i % len(agent.addresses)], "port": agent.port, "auth": "bench",
                "if_index": 1}}]} for i in range(devices)]})
    targets = snmp_targets(config.sites)
    settings = SnmpSettings(timeout_seconds=args.timeout, retries=args.retries, concurrency=args.concurrency,
                            device_concurrency=64, interval_seconds=3600).with_credentials(config.auths)
    result: list[Any] = []

    async def cycle() -> None:
        result[:] = await probe.run(targets, settings, time.monotonic() + 600)

    await cycle()  # resolves every port once; the timed runs are the steady state
    return await timed(cycle, agent, devices, lambda: sum(not o.ok for o in result))


async def timed(work: Callable[[], Awaitable[Any]], agent: Snmpd, pdus: int, failed: Callable[[], int]) -> Run:
    agent_cpu, cpu, start = agent.cpu_seconds(), time.process_time(), time.perf_counter()
    await work()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return Run(seconds, cpu, agent.cpu_seconds() - agent_cpu, pdus, failed())


def netsnmp(agent: Snmpd, version: str, devices: int, k: int, bulk: bool, args: argparse.Namespace) -> Run:
    tool = shutil.which("snmpbulkget" if bulk else "snmpget")
    if tool is None:
        sys.exit("snmpget/snmpbulkget are not installed (Debian package snmp)")
    security = ["-v2c", "-c", COMMUNITY] if version == "2c" else [
        "-v3", "-l", "authPriv", "-u", USER, "-a", "SHA-256", "-A", AUTH_KEY, "-x", "AES", "-X", PRIV_KEY]
    common = [tool, *security, "-r", str(args.retries), "-t", f"{args.timeout:g}", "-On", "-Oq", "-m", "",
              "-M", "/dev/null"]
    extra = ["-Cn0", f"-Cr{k}", BULK_COLUMN] if bulk else OIDS[:k]
    env = {**os.environ, "MIBS": ""}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    agent_cpu, start = agent.cpu_seconds(), time.perf_counter()
    running: list[subprocess.Popen[bytes]] = []
    failed = 0
    for i in range(devices):
        while len(running) >= args.procs:
            failed += sum(p.wait() != 0 for p in running[:1])
            running = running[1:]
        host = f"{agent.addresses[i % len(agent.addresses)]}:{agent.port}"
        running.append(subprocess.Popen([*common, host, *extra], env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL))
    failed += sum(p.wait() != 0 for p in running)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return Run(seconds, cpu, agent.cpu_seconds() - agent_cpu, devices, failed)


def median(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]


def row(work: str, version: str, tool: str, devices: int, k: int, run: Run) -> Row:
    return Row(work, version, tool, devices, k, run.pdus, run.failed, round(run.seconds, 3),
               round(run.pdus / run.seconds, 1), round(run.cpu_seconds, 3),
               round(run.cpu_seconds / devices * 1000, 3), round(run.agent_cpu_seconds, 3))


async def bench(args: argparse.Namespace) -> tuple[list[Row], str]:
    work = Path(tempfile.mkdtemp(prefix="snmp-bench-"))
    agent = Snmpd(args.addresses, work)
    engine, probe = _Engine(), SnmpProbe()
    engine.ready()
    rows: list[Row] = []
    profile = ""
    try:
        for version in args.versions:
            for k in args.oids:
                for work_kind, bulk in (("get", False), ("bulk", True)):
                    if bulk and not args.bulk:
                        continue
                    await ours_requests(engine, agent, version, min(args.devices, 200), k, bulk, args)  # warm-up
                    runs = [await ours_requests(engine, agent, version, args.devices, k, bulk, args)
                            for _ in range(args.repeat)]
                    rows.append(row(work_kind, version, "readiness (pysnmp engine)", args.devices, k, median(runs)))
                    netsnmp(agent, version, min(args.devices, 50), k, bulk, args)  # warm-up
                    runs = [netsnmp(agent, version, args.devices, k, bulk, args) for _ in range(args.repeat)]
                    name = f"Net-SNMP {'snmpbulkget' if bulk else 'snmpget'} x{args.procs} procs"
                    rows.append(row(work_kind, version, name, args.devices, k, median(runs)))
            runs = [await ours_cycle(probe, agent, version, args.devices, args) for _ in range(args.repeat)]
            rows.append(row("cycle", version, "readiness SnmpProbe.run", args.devices, 14, median(runs)))
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            await ours_requests(engine, agent, args.versions[0], args.devices, args.oids[0], False, args)
            profiler.disable()
            profile = by_package(profiler)
    finally:
        engine.close()
        await probe.close()
        agent.stop()
        shutil.rmtree(work, ignore_errors=True)
    return rows, profile


def by_package(profiler: cProfile.Profile) -> str:
    """Return where our CPU went, by top-level package (own time of each function)."""
    stats = pstats.Stats(profiler)
    totals: dict[str, float] = defaultdict(float)
    for (path, _, _), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        parts = Path(path).parts
        package = "builtins" if path == "~" else next(
            (p for p in ("pyasn1", "pysnmp", "asyncio", "probes") if p in parts), "other")
        if package == "pyasn1":
            package = "pyasn1 " + ("decoder" if "decoder.py" in path else "encoder" if "encoder.py" in path
                                   else "types")
        totals[package] += own
    whole = sum(totals.values())
    return "\n".join(f"  {name:16} {seconds:7.3f}s {seconds / whole:6.1%}"
                     for name, seconds in sorted(totals.items(), key=lambda kv: -kv[1]))


def table(rows: list[Row], args: argparse.Namespace) -> str:
    head = ("| work | SNMP | poller | devices | OIDs | PDUs | failed | seconds | PDUs/s | CPU s | "
            "CPU s / 1,000 devices | agent CPU s |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        lines.append(f"| {r.work} | v{r.version} | {r.tool} | {r.devices:,} | {r.oids} | {r.pdus:,} | {r.failed} | "
                     f"{r.seconds:.2f} | {r.pdus_per_second:,.0f} | {r.cpu_seconds:.2f} | "
                     f"{r.cpu_seconds_per_1000_devices:.2f} | {r.agent_cpu_seconds:.2f} |")
    ratios = ["", "| work | SNMP | OIDs | PDUs/s ours : Net-SNMP | CPU per device Net-SNMP : ours |",
              "|---|---|---|---|---|"]
    for ours_row, theirs in itertools.pairwise(rows):
        if ours_row.tool.startswith("readiness (") and theirs.tool.startswith("Net-SNMP"):
            ratios.append(f"| {ours_row.work} | v{ours_row.version} | {ours_row.oids} | "
                          f"{ours_row.pdus_per_second / theirs.pdus_per_second:.1f}x | "
                          f"{theirs.cpu_seconds_per_1000_devices / ours_row.cpu_seconds_per_1000_devices:.1f}x |")
    cpus = os.cpu_count()
    note = (f"\n{cpus} CPUs; agent: Net-SNMP snmpd on {args.addresses} loopback addresses; timeout {args.timeout:g}s, "
            f"retries {args.retries}; ours {args.concurrency} in flight, Net-SNMP {args.procs} processes; "
            f"median of {args.repeat}.")
    return "\n".join(lines + ratios) + note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1_000)
    parser.add_argument("--oids", type=lambda v: [int(x) for x in v.split(",")], default=[4, 16],
                        help=f"OIDs per GET (and repetitions per GETBULK), up to {len(OIDS)}")
    parser.add_argument("--versions", type=lambda v: v.split(","), default=["2c"], help="2c and/or 3 (authPriv)")
    parser.add_argument("--addresses", type=int, default=100, help="loopback addresses snmpd listens on")
    parser.add_argument("--concurrency", type=int, default=256, help="our requests in flight")
    parser.add_argument("--procs", type=int, default=2 * (os.cpu_count() or 1), help="Net-SNMP processes at once")
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--retries", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-bulk", dest="bulk", action="store_false", help="skip the GETBULK rows")
    parser.add_argument("--profile", action="store_true", help="also show where our CPU goes, by package")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if max(args.oids) > len(OIDS):
        parser.error(f"--oids: at most {len(OIDS)}")
    rows, profile = asyncio.run(bench(args))
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        print(table(rows, args))
        if profile:
            print(f"\nwhere our CPU goes (GET of {args.oids[0]} OIDs, {args.versions[0]}):\n{profile}")


if __name__ == "__main__":
    main()
