"""Check N HTTP(S) targets with our probe and with blackbox_exporter, on the same local servers, and print a table.

Both do the same work per target: one GET on a fresh connection (our probe closes each connection, and
blackbox opens one per probe), the body read, status 2xx expected, the same timeout, the same number of checks
in flight (``--concurrency``). The servers are aiohttp applications in a process of their own on
127.43.0.1-8 (plain HTTP, or HTTPS with a CA made for the run with ``--tls``); neither tool is charged for
them. blackbox_exporter (Debian's ``prometheus-blackbox-exporter``: ``apt-get install -y
prometheus-blackbox-exporter``; its packaged service is not used) runs on 127.0.0.1 on a free port with a
temporary config and is driven the way Prometheus drives it: ``GET /probe?target=URL&module=http_2xx``, as
many at once as ``--concurrency``. Its CPU is read from /proc (user + system) before and after the sweep; the
driver's own CPU is not charged to it. Our CPU is this process's (getrusage) while ``HttpProbe.run`` runs.
Each figure is the median of ``--repeat`` timed sweeps after one untimed warm-up.

    python bench/http_sweep.py                        # 2,000 targets, concurrency 200, plain HTTP
    python bench/http_sweep.py --tls --sizes 500 2000 --json

Measured on the 2-core development machine under load from other jobs (load average about 6.8), 2,000
targets, concurrency 200, median of 3, blackbox_exporter 0.23.0 (Debian), aiohttp 3.14:

    plain HTTP   ours 834.8 targets/s, 0.445 ms CPU/target   blackbox 345.5 targets/s, 0.850 ms CPU/target
                 ratio 2.42x the throughput, 1.91x less CPU per target
    HTTPS        ours 147.8 targets/s, 2.156 ms CPU/target   blackbox 129.5 targets/s, 2.320 ms CPU/target
                 ratio 1.14x the throughput, 1.08x less CPU per target (the TLS handshake dominates both)

blackbox's throughput includes its /probe round trip from the driver (as with Prometheus), and on two cores
the servers, the driver and the tool under test share the CPU, so the figures are for comparison only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from monitor.demo.tls import TestCA
from probes.base import Target
from probes.http import HttpProbe, HttpSettings

HOSTS = [f"127.43.0.{i}" for i in range(1, 9)]
SERVER = """
import asyncio, ssl, sys
from aiohttp import web
hosts, port, cert, key = sys.argv[1].split(","), int(sys.argv[2]), sys.argv[3], sys.argv[4]
async def ok(_): return web.Response(text="terminal ready")
async def main():
    ctx = None
    if cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH); ctx.load_cert_chain(cert, key)
    app = web.Application(); app.add_routes([web.get("/{n}", ok)])
    runner = web.AppRunner(app, access_log=None); await runner.setup()
    for h in hosts:
        await web.TCPSite(runner, h, port, ssl_context=ctx, backlog=4096).start()
    print("up", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


@dataclass
class Run:
    seconds: float
    cpu_seconds: float
    ok: int


@dataclass
class Row:
    targets: int
    concurrency: int
    tls: bool
    ours_targets_per_second: float
    blackbox_targets_per_second: float
    ratio: float  # ours / blackbox, targets per second
    ours_cpu_ms_per_target: float
    blackbox_cpu_ms_per_target: float
    cpu_ratio: float  # blackbox / ours, CPU per target (above 1: ours is cheaper)
    ours_ok: int
    blackbox_ok: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu(pid: int) -> float:
    """Return user + system CPU seconds of process ``pid`` (and its reaped children) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def urls(n: int, scheme: str, port: int) -> list[str]:
    return [f"{scheme}://{HOSTS[i % len(HOSTS)]}:{port}/{i}" for i in range(n)]


async def ours(probe: HttpProbe, targets: list[Target], settings: HttpSettings) -> Run:
    cpu, start = cpu_self(), time.perf_counter()
    observations = await probe.run(targets, settings, time.monotonic() + 600)
    seconds = time.perf_counter() - start
    return Run(seconds, cpu_self() - cpu, sum(o.ok for o in observations))


async def blackbox(pid: int, port: int, targets: list[str], concurrency: int, timeout: float) -> Run:
    gate = asyncio.Semaphore(concurrency)
    base = f"http://127.0.0.1:{port}/probe?module=http_2xx&target="

    async def one(session: aiohttp.ClientSession, url: str) -> bool:
        async with gate, session.get(base + urllib.parse.quote(url, safe="")) as resp:
            return "\nprobe_success 1" in "\n" + await resp.text()

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout + 30)) as s:
        cpu, start = proc_cpu(pid), time.perf_counter()
        results = await asyncio.gather(*(one(s, u) for u in targets))
        seconds = time.perf_counter() - start
        used = proc_cpu(pid) - cpu
    return Run(seconds, used, sum(results))


def start_blackbox(exe: str, work: Path, ca_file: Path | None, timeout: float) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    tls = f"\n      tls_config:\n        ca_file: {ca_file}" if ca_file else ""
    (work / "blackbox.yml").write_text(
        "modules:\n  http_2xx:\n    prober: http\n"
        f"    timeout: {timeout:g}s\n"
        "    http:\n      preferred_ip_protocol: ip4\n      ip_protocol_fallback: false"
        f"{tls}\n")
    proc = subprocess.Popen([exe, f"--config.file={work / 'blackbox.yml'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--log.level=error"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    until = time.monotonic() + 15
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > until:
                raise SystemExit(f"blackbox_exporter did not start ({exe})") from None
            time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def sweep(args: argparse.Namespace, exe: str, work: Path) -> list[Row]:
    port = free_port()
    cert = key = ""
    ca_file: Path | None = None
    if args.tls:
        ca = TestCA(work / "ca")
        issued = ca.issue("servers", HOSTS)
        cert, key, ca_file = str(issued.cert_file), str(issued.key_file), ca.ca_file
    server = subprocess.Popen([sys.executable, "-c", SERVER, ",".join(HOSTS), str(port), cert, key],
                              stdout=subprocess.PIPE, start_new_session=True)
    bb, bb_port = start_blackbox(exe, work, ca_file, args.timeout)
    rows = []
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == b"up", "servers did not start"
        probe = HttpProbe()
        scheme = "https" if args.tls else "http"
        for n in args.sizes:
            settings = HttpSettings(interval_seconds=3600, timeout_seconds=args.timeout, concurrency=args.concurrency)
            extra = {"ca_file": str(ca_file)} if ca_file else {}
            targets = [Target(f"S/terminal/{i}", "S", "127.0.0.1", extra={"url": u, **extra})
                       for i, u in enumerate(urls(n, scheme, port))]
            plain = urls(n, scheme, port)
            mine: list[Run] = []
            theirs: list[Run] = []
            for i in range(args.repeat + 1):  # the first of each is a warm-up
                a = await ours(probe, targets, settings)
                await asyncio.sleep(args.pause)  # let TIME_WAIT sockets and the servers settle between tools
                b = await blackbox(bb.pid, bb_port, plain, args.concurrency, args.timeout)
                await asyncio.sleep(args.pause)
                if i:
                    mine.append(a)
                    theirs.append(b)
            a_tps = statistics.median(n / r.seconds for r in mine)
            b_tps = statistics.median(n / r.seconds for r in theirs)
            a_cpu = statistics.median(r.cpu_seconds / n for r in mine) * 1000
            b_cpu = statistics.median(r.cpu_seconds / n for r in theirs) * 1000
            rows.append(Row(n, args.concurrency, args.tls, round(a_tps, 1), round(b_tps, 1), round(a_tps / b_tps, 2),
                            round(a_cpu, 3), round(b_cpu, 3), round(b_cpu / a_cpu, 2) if a_cpu else 0.0,
                            min(r.ok for r in mine), min(r.ok for r in theirs)))
    finally:
        stop(bb)
        stop(server)  # type: ignore[arg-type]
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000])
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between sweeps")
    parser.add_argument("--tls", action="store_true", help="HTTPS servers with a CA made for the run")
    parser.add_argument("--blackbox", default=shutil.which("prometheus-blackbox-exporter")
                        or shutil.which("blackbox_exporter") or "")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.blackbox:
        print("blackbox_exporter not found: apt-get install -y prometheus-blackbox-exporter", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="http-sweep-") as tmp:
        rows = asyncio.run(sweep(args, args.blackbox, Path(tmp)))
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return 0
    print(f"{'targets':>8} {'conc':>5} {'tls':>4} {'ours t/s':>9} {'bbox t/s':>9} {'ratio':>6} "
          f"{'ours ms CPU/t':>14} {'bbox ms CPU/t':>14} {'CPU ratio':>9} {'ok ours/bbox':>13}")
    for r in rows:
        print(f"{r.targets:>8} {r.concurrency:>5} {'yes' if r.tls else 'no':>4} {r.ours_targets_per_second:>9.1f} "
              f"{r.blackbox_targets_per_second:>9.1f} {r.ratio:>6.2f} {r.ours_cpu_ms_per_target:>14.3f} "
              f"{r.blackbox_cpu_ms_per_target:>14.3f} {r.cpu_ratio:>9.2f} {f'{r.ours_ok}/{r.blackbox_ok}':>13}")
    print("ratio: ours/blackbox targets per second; CPU ratio: blackbox/ours CPU per target (>1: ours is cheaper)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
