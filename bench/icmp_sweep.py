"""Sweep N loopback targets with our ICMP probe and with fping, side by side, and print a table.

Both get the same work: ``count`` echoes per target ``spacing`` apart, the same reply timeout, no retries,
and the same global send rate (ours: ``rate_per_second``; fping: ``-i 1000/rate`` ms; ``--rate 0`` lets
both send as fast as they can). Targets are spread over 127.0.0.0/8 (127.10.x.y upwards), which the
loopback answers without any setup. Each figure is the median of ``--repeat`` timed runs after one
untimed warm-up; our probe object is reused between runs as the service reuses it between cycles.

    python bench/icmp_sweep.py                      # 1,000 and 10,000 targets, 1 and 3 echoes
    python bench/icmp_sweep.py --sizes 10000 --counts 1 --rate 0 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probes.base import Target
from probes.icmp import IcmpProbe, IcmpSettings

UNPACED_RATE = 10_000_000  # "as fast as it goes" for our probe


@dataclass
class Run:
    seconds: float
    cpu_seconds: float
    replies: int
    sent: int


@dataclass
class Row:
    targets: int
    count: int
    ours_targets_per_second: float
    fping_targets_per_second: float
    ratio: float
    ours_reply_share: float
    fping_reply_share: float
    ours_seconds: float
    fping_seconds: float
    ours_cpu_seconds: float
    fping_cpu_seconds: float


def addresses(n: int) -> list[str]:
    """Return ``n`` distinct loopback addresses from 127.10.0.1 upwards (250 per /24)."""
    return [f"127.{10 + i // 62_500}.{i // 250 % 250}.{i % 250 + 1}" for i in range(n)]


async def ours(probe: IcmpProbe, hosts: list[str], count: int, args: argparse.Namespace) -> Run:
    targets = [Target(f"T{i}/primary", f"T{i}", h) for i, h in enumerate(hosts)]
    settings = IcmpSettings(count=count, spacing_seconds=args.spacing_ms / 1000, timeout_seconds=args.timeout_ms / 1000,
                            rate_per_second=args.rate or UNPACED_RATE, interval_seconds=3600)
    cpu, start = time.process_time(), time.perf_counter()
    result = await probe.run(targets, settings, time.monotonic() + 600)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    replies = int(sum(o.values.get("received", 0) for o in result))
    return Run(seconds, cpu, replies, int(sum(o.values.get("sent", 0) for o in result)))


def fping(fping_path: str, target_file: str, n: int, count: int, args: argparse.Namespace) -> Run:
    interval_ms = args.fping_interval_ms
    if interval_ms is None:
        interval_ms = 1000 / args.rate if args.rate else 0
    cmd = [fping_path, "-q", "-C", str(count), "-p", f"{args.spacing_ms:g}", "-i", f"{interval_ms:g}",
           "-t", f"{args.timeout_ms:g}", "-r", "0", "-f", target_file]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    # -C prints "host : rtt rtt -" per target on stderr; "-" is a lost echo.
    replies = sum(1 for line in out.stderr.splitlines() if " : " in line
                  for rtt in line.split(" : ", 1)[1].split() if rtt != "-")
    return Run(seconds, cpu, replies, n * count)


def median_run(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]


async def sweep(args: argparse.Namespace) -> list[Row]:
    fping_path = shutil.which("fping") or shutil.which("fping", path="/usr/sbin:/usr/bin")
    if fping_path is None:
        raise SystemExit("fping is not installed (apt-get install fping)")
    probe = IcmpProbe()
    rows: list[Row] = []
    try:
        for n in args.sizes:
            hosts = addresses(n)
            with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
                f.write("\n".join(hosts) + "\n")
                f.flush()
                for count in args.counts:
                    await ours(probe, hosts, count, args)  # warm-up: sockets, address cache
                    fping(fping_path, f.name, n, count, args)
                    a, b = [], []
                    for _ in range(args.repeat):  # alternate, so background load hits both alike
                        a.append(await ours(probe, hosts, count, args))
                        b.append(fping(fping_path, f.name, n, count, args))
                    mine, theirs = median_run(a), median_run(b)
                    rows.append(Row(
                        n, count, n / mine.seconds, n / theirs.seconds, theirs.seconds / mine.seconds,
                        mine.replies / (n * count), theirs.replies / (n * count), mine.seconds, theirs.seconds,
                        mine.cpu_seconds, theirs.cpu_seconds))
    finally:
        await probe.close()
    return rows


def table(rows: list[Row], args: argparse.Namespace) -> str:
    pace = f"{args.rate:,}/s (fping -i {1000 / args.rate:g} ms)" if args.rate else "unpaced (fping -i 0)"
    if args.fping_interval_ms is not None:
        pace = f"{args.rate:,}/s" if args.rate else "unpaced"
        pace += f", fping -i {args.fping_interval_ms:g} ms"
    lines = [f"loopback sweep: spacing {args.spacing_ms:g} ms, timeout {args.timeout_ms:g} ms, rate {pace}, "
             f"median of {args.repeat}",
             f"{'targets':>8} {'count':>5} {'ours t/s':>10} {'fping t/s':>10} {'ours/fping':>10} "
             f"{'ours replies':>12} {'fping replies':>13} {'ours s':>7} {'fping s':>7} {'ours cpu':>8} "
             f"{'fping cpu':>9}"]
    for r in rows:
        lines.append(f"{r.targets:>8,} {r.count:>5} {r.ours_targets_per_second:>10,.0f} "
                     f"{r.fping_targets_per_second:>10,.0f} {r.ratio:>10.2f} {r.ours_reply_share:>12.2%} "
                     f"{r.fping_reply_share:>13.2%} {r.ours_seconds:>7.3f} {r.fping_seconds:>7.3f} "
                     f"{r.ours_cpu_seconds:>8.3f} {r.fping_cpu_seconds:>9.3f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=lambda v: [int(x) for x in v.split(",")], default=[1_000, 10_000])
    parser.add_argument("--counts", type=lambda v: [int(x) for x in v.split(",")], default=[1, 3])
    parser.add_argument("--spacing-ms", type=float, default=10.0, help="between two echoes to one target")
    parser.add_argument("--timeout-ms", type=float, default=1000.0, help="wait for a reply")
    parser.add_argument("--rate", type=int, default=20_000, help="echoes per second, both tools; 0 = unpaced")
    parser.add_argument("--fping-interval-ms", type=float, default=None,
                        help="fping -i; default: the same rate as ours (1000 / rate)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per cell (the median is shown)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = parser.parse_args()
    rows = asyncio.run(sweep(args))
    if args.json:
        print(json.dumps({"settings": {k: v for k, v in vars(args).items() if k != "json"},
                          "rows": [asdict(r) for r in rows]}, indent=2, sort_keys=True))
    else:
        print(table(rows, args))


if __name__ == "__main__":
    main()
