"""A province in one process: N sites (10,000 by default), two links and two TCP terminals each.

What this measures today (honestly less than issue 13 asks): the observations are injected, not probed, so
there is no network namespace and no blackbox_exporter beside it. It measures what the metric budget and the
caches change: resident memory per target of the evaluated service, the CPU of one evaluation (the share of
one core it costs at a 30 s cycle), /metrics samples, size (plain and gzip) and time (first render, then from
the cache), the budget per site, and /api/v1/sites time (one 1,000-site page, then the same page cached),
each with the default settings and with ``metrics: {detail: true}`` (the ratio is the budget's saving).

    python bench/province.py                 # 10,000 sites
    python bench/province.py --sites 2000 --json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from aiohttp import web

from monitor.config.loader import load_config
from monitor.runtime.service import Service
from monitor.web.app import make_app
from probes.base import Observation
from tests.helpers import free_port
from tests.monitor.fixtures import obs, write_config
from tests.monitor.test_budget import inventory

CYCLE_SECONDS = 30.0


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def build(tmp: Path, sites: int, detail: bool) -> tuple[Service, int, float]:
    """Return the evaluated service, the resident memory it added (KiB) and one evaluation's CPU seconds."""
    gc.collect()
    before = rss_kib()
    extra = {"metrics": {"detail": True}} if detail else {}
    service = Service(load_config(write_config(tmp, inventory(sites), **extra)), clock=lambda: 1000.0)
    for i in range(sites):
        sid = f"S{i:04d}"
        service.latest[f"{sid}/primary"] = obs(f"{sid}/primary", ok=i % 10 != 0)
        service.latest[f"{sid}/backup"] = obs(f"{sid}/backup")
        for k in (1, 2):
            key = f"{sid}/terminal/T{k}"
            service.latest[key] = Observation(key, "tcp", True, 1000.0, {"connect_seconds": 0.001})
    service.evaluate(force=True)
    cpu = time.process_time()
    service.evaluate(force=True)
    cpu = time.process_time() - cpu
    gc.collect()
    return service, rss_kib() - before, cpu


async def measure(service: Service) -> dict[str, Any]:
    runner = web.AppRunner(make_app(lambda: service.snapshot))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}"
    out: dict[str, Any] = {}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600), auto_decompress=False) as http:
            async def timed(path: str, gz: bool = False) -> tuple[float, bytes]:
                started = time.perf_counter()
                async with http.get(url + path, headers={"Accept-Encoding": "gzip" if gz else "identity"}) as r:
                    body = await r.read()
                return time.perf_counter() - started, body
            first, plain = await timed("/metrics")
            cached, _ = await timed("/metrics")
            cached_gz, packed = await timed("/metrics", gz=True)
            text = plain.decode()
            samples = [line for line in text.splitlines() if line and not line.startswith("#")]
            per_site: Counter[str] = Counter()
            for line in samples:
                at = line.find('site="')
                if at >= 0:
                    per_site[line[at + 6:line.index('"', at + 6)]] += 1
            api_first, _ = await timed("/api/v1/sites?limit=1000")
            api_cached, _ = await timed("/api/v1/sites?limit=1000")
            out.update(samples=len(samples), megabytes=round(len(plain) / 1e6, 2),
                       gzip_megabytes=round(len(packed) / 1e6, 3), metrics_first_seconds=round(first, 3),
                       metrics_cached_seconds=round(cached, 4), metrics_cached_gzip_seconds=round(cached_gz, 4),
                       series_per_site_avg=round(sum(per_site.values()) / max(1, len(per_site)), 2),
                       series_per_site_max=max(per_site.values(), default=0),
                       api_page_first_seconds=round(api_first, 3), api_page_cached_seconds=round(api_cached, 4))
    finally:
        await runner.cleanup()
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", type=int, default=10_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = {}
    for detail in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            service, kib, cpu = build(Path(tmp), args.sites, detail)
            targets = sum(len(s.links) + len(s.terminals) for s in service.snapshot.config.sites)
            row = {"sites": args.sites, "targets": targets, "rss_mb": round(kib / 1024, 1),
                   "kib_per_target": round(kib / targets, 2), "evaluate_cpu_seconds": round(cpu, 3),
                   "cpu_share_at_30s": round(cpu / CYCLE_SECONDS, 4)}
            row.update(asyncio.run(measure(service)))
            rows["detail" if detail else "default"] = row
            del service
    rows["ratio_samples_detail_to_default"] = round(rows["detail"]["samples"] / rows["default"]["samples"], 2)
    rows["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for name, row in rows.items():
            print(f"{name}: {row}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
