"""A province on real probes: N sites (10,000 by default) monitored by `readiness run` in a namespace of its own,
and, in the same run, Debian's blackbox_exporter probing a 2,000-target ICMP subset, scraped by a real Prometheus.

Needs root (a network namespace, nftables) and Debian's prometheus and prometheus-blackbox-exporter.

    python bench/province.py                                  # 10,000 sites, 3 minutes per phase, 30 s cycle
    python bench/province.py --sites 500 --minutes 1 --json

The lab (bench/netlab.py): a namespace with lo up (inside it every 127.x.y.z answers ICMP), which this process
enters; one TCP listener on 0.0.0.0:8080 answers every terminal; nftables drops echo requests to 127.41/16 and
127.42/16 and nothing listens on 8081, so about 4% of the sites lose their primary, 5% their backup, 2% both and
4% a terminal (every state shows up; failures cost the probes too). The namespace, its processes (stopped by
PID) and the work directory are removed on the way out, Ctrl-C included.

Phase 1, the province: an inventory of N sites (CSV; primary and backup ICMP, two TCP terminals each: 4 targets
per site), ICMP (3 echoes, the default) and TCP every ``--interval`` s; the real service `readiness run` (event
store on) listens on 127.0.0.1:19108 and Prometheus scrapes it at the same interval. After ``--warmup-cycles``
cycles of each kind, a steady window of ``--minutes``:

- cpu_share: the service's CPU seconds (user + system, /proc/PID/stat) over the window / its wall seconds; 1.0 is
  one core. The window runs from the end of an ICMP cycle to the end of another, so it holds whole cycles.
  cpu_seconds_per_interval = cpu_share x interval. Goal at 10,000 sites and 30 s: cpu_share <= 0.20.
- rss_mb, rss_peak_mb: VmRSS at the end of the window, VmHWM; rss_median_mb, rss_window_max_mb: the median and
  the largest of VmRSS sampled every 5 s through the window (it moves with the cycle: a new snapshot and a render
  each ICMP and TCP cycle); kib_per_target = that median / targets, and
  kib_per_target_above_baseline = (the median - the VmRSS of the same service over a 1-site inventory, measured in
  the same run) / targets: the interpreter and its libraries are not per target. Goal: <= 2.5 per target.
- metrics: one plain scrape of /metrics (samples: lines that are not comments; megabytes; series per site, the
  average and the largest count of samples carrying a site label, and the largest among ready sites; the budget
  bounds every site: a site that is not ready adds one reason series whatever its reasons (issue 13);
  collect_seconds: the service's own readiness_exporter_collect_seconds, the time it took to render that body
  ahead of the scrape;
  first_seconds: that scrape's time), then the median and max time of 5 plain and 5 gzip scrapes (from the
  per-snapshot cache; a scrape that arrives as a new snapshot appears waits for its render: the max shows
  it). Goals: <= 15 series per site, ready or not, <= 0.25 s from the cache.
- api: /api/v1/sites?limit=1000: the first page twice (first: may build it; then: from the cache) and a walk of
  every page by cursor.
- under_load: ten clients walk /api/v1/sites page by page (limit 1000) without pause while one scraper fetches
  /metrics (gzip, as Prometheus does) ``--scrapes`` times one after another (bounded by 180 s): p50, p99 and max
  scrape time, pages read and their p99, and the service's CPU share meanwhile.
- states: the province's counts by state from /api/v1/summary; prometheus_cpu_share and listener_cpu_share:
  Prometheus and the TCP listener over the same window (not the service's).

Phase 2, the peer: the ICMP primaries of the first 2,000 sites (the same addresses, dropped ones included),
once more for ``--minutes`` after the warm-up, both scraped by one Prometheus every ``--interval`` s:
- blackbox_exporter (module icmp: one echo, timeout 1 s, ip4), one /probe per target per scrape;
- ours: a second `readiness run` over an inventory of those 2,000 sites with the primary link only, one echo per
  target per cycle (``--peer-count``; the same work as blackbox), timeout 1 s.
cpu_ms_per_probe = the process's CPU over the window / probes in the window (blackbox: scrapes of job blackbox
in the window, counted by Prometheus; ours: ICMP cycles in the window x targets). Ours is measured, not
apportioned: it is the whole service (probing, evaluation of 2,000 sites, /metrics, the event store), so it is
an upper bound for the probe itself; blackbox's is its whole process too (probe and /probe HTTP). ratio =
ours : theirs (below 1: ours costs less). Prometheus's own CPU is reported apart.

Everything is bounded: waits have time limits, loads have counts; ports are 127.0.0.1 high ports inside the
namespace. Figures depend on the machine and its load (printed with them); compare within one run.

Measured on the 2-core development machine (load average 0.3 to 0.4), 10,000 sites, 3 minutes per phase, 30 s,
at the stop that closed issue 13:

    service CPU share 0.143 (4.3 s per 30 s; goal 0.20); RSS median 172.5 MB over the window (max 181.5, 176.8 at
    its end): 4.42 KiB per target, 2.34 above the 1-site baseline of 81.1 MB (goal 2.5); /metrics 130,269
    samples, 12.2 MB (0.51 MB gzip), 13.0 series per site, at most 13 for every site (8,600 ready, 400 degraded,
    1,000 not ready), rendered in 0.58 s, from the cache 0.041 s plain and 0.0012 s gzip; /api/v1/sites page
    0.21 s, 0.002 s cached, 10 pages 3.4 s; with ten API clients /metrics p50 0.20 s, p99 1.02 s, max 1.5 s
    (200 scrapes)
    2,000 ICMP targets, one echo: ours 0.135 ms CPU per probe, blackbox_exporter 1.091 ms: 0.124 : 1;
    Prometheus 0.65 ms per blackbox scrape

The first run of this benchmark (main at 3868e00, load 0.5 to 1.4): CPU 0.253, 7.1 KiB per target above the baseline,
15.04 series per site (17 for a site not ready), /metrics 14.0 MB rendered in 1.46 s, p99 under load 2.2 s;
blackbox ratio 0.145 : 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from bench.netlab import (
    CpuWindow,
    Lab,
    Proc,
    cycle_end,
    cycles,
    get,
    head_series,
    lab,
    metrics_text,
    primary_address,
    query,
    samples,
    say,
    scrape_timeout,
    start_prometheus,
    wait_for,
    warm,
    write_config,
    write_inventory,
)

SERVICE_PORT, BASELINE_PORT, PEER_PORT, BLACKBOX_PORT, PROMETHEUS_PORT = 19108, 19109, 19110, 19115, 19090
PEER_TARGETS = 2000
ICMP_TIMEOUT_SECONDS = 1.0
GOALS = {"cpu_share": 0.20, "kib_per_target": 2.5, "series_per_site": 15, "metrics_cached_seconds": 0.25}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile: the smallest value with at least ``p`` % of the values at or below it."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def timed_get(url: str, gzip: bool = False) -> tuple[float, bytes]:
    import urllib.request
    req = urllib.request.Request(url, headers={"Accept-Encoding": "gzip" if gzip else "identity"})
    started = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as resp:
        body = resp.read()
    return time.perf_counter() - started, body


def steady(the: Lab, window: CpuWindow, seconds: float, port: int, proc: Proc, interval: float) -> list[int]:
    """Run the window from the end of an ICMP cycle of the service on ``port`` to the end of the one about
    ``seconds`` later, so that it holds whole cycles; check every process stays alive meanwhile. Return the
    service's resident memory (KiB) sampled every 5 s of the window."""
    cycle_end(port, "icmp", 2 * interval + 60, proc)
    say(f"steady window: {seconds:.0f} s to the end of an ICMP cycle")
    window.start()
    rss = [proc.memory_kib()[0]]
    until = time.monotonic() + max(0.0, seconds - interval / 2)
    while time.monotonic() < until:
        the.alive()
        time.sleep(min(5.0, max(0.0, until - time.monotonic())))
        rss.append(proc.memory_kib()[0])
    cycle_end(port, "icmp", 2 * interval + 60, proc)
    window.stop()
    return rss


def metrics_figures(base: str) -> dict[str, Any]:
    """The /metrics figures: samples, size, series per site, render time, plain and gzip times from the cache."""
    first, plain = timed_get(base + "/metrics")
    text = plain.decode()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    per_site: Counter[str] = Counter()
    ready: set[str] = set()
    for line in lines:
        at = line.find('site="')
        if at >= 0:
            site = line[at + 6:line.index('"', at + 6)]
            per_site[site] += 1
            if line.startswith("readiness_site_state{") and 'state="ready"' in line:
                ready.add(site)
    plain_times = [timed_get(base + "/metrics")[0] for _ in range(5)]
    gz = [timed_get(base + "/metrics", gzip=True) for _ in range(5)]
    collect = samples(text, "readiness_exporter_collect_seconds").get("", math.nan)
    return {"samples": len(lines), "megabytes": round(len(plain) / 1e6, 2),
            "gzip_megabytes": round(len(gz[-1][1]) / 1e6, 3),
            "series_per_site_avg": round(sum(per_site.values()) / max(1, len(per_site)), 2),
            "series_per_site_max": max(per_site.values(), default=0),
            "series_per_ready_site_max": max((v for k, v in per_site.items() if k in ready), default=0),
            "collect_seconds": round(collect, 3), "first_seconds": round(first, 4),
            "cached_seconds_median": round(statistics.median(plain_times), 4),
            "cached_seconds_max": round(max(plain_times), 4),
            "cached_gzip_seconds_median": round(statistics.median(t for t, _ in gz), 4),
            "cached_gzip_seconds_max": round(max(t for t, _ in gz), 4)}


def api_figures(base: str) -> dict[str, Any]:
    """/api/v1/sites: the first page twice, then every page by cursor."""
    first, _ = timed_get(base + "/api/v1/sites?limit=1000")
    again, _ = timed_get(base + "/api/v1/sites?limit=1000")
    started, pages, cursor = time.perf_counter(), 0, ""
    while True:
        _, body = timed_get(base + "/api/v1/sites?limit=1000" + (f"&cursor={cursor}" if cursor else ""))
        pages += 1
        cursor = json.loads(body).get("next_cursor") or ""
        if not cursor or pages > 1000:
            break
    return {"page_first_seconds": round(first, 4), "page_cached_seconds": round(again, 4),
            "all_pages": pages, "all_pages_seconds": round(time.perf_counter() - started, 3)}


async def under_load(base: str, scrapes: int, clients: int = 10, bound: float = 180.0) -> dict[str, Any]:
    """``clients`` read /api/v1/sites page after page while one scraper fetches /metrics ``scrapes`` times."""
    stop = asyncio.Event()
    page_times: list[float] = []
    scrape_times: list[float] = []
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=clients + 2),
                                     auto_decompress=False) as http:
        async def reader() -> None:
            cursor = ""
            while not stop.is_set():
                started = time.perf_counter()
                async with http.get(base + "/api/v1/sites?limit=1000" + (f"&cursor={cursor}" if cursor else "")) as r:
                    doc = json.loads(await r.read())
                page_times.append(time.perf_counter() - started)
                cursor = doc.get("next_cursor") or ""

        async def scraper() -> None:
            until = time.monotonic() + bound
            for _ in range(scrapes):
                started = time.perf_counter()
                async with http.get(base + "/metrics", headers={"Accept-Encoding": "gzip"}) as r:
                    await r.read()
                scrape_times.append(time.perf_counter() - started)
                if time.monotonic() > until:
                    break
            stop.set()

        readers = [asyncio.create_task(reader()) for _ in range(clients)]
        await asyncio.sleep(1)  # the readers are at it before the first scrape
        await scraper()
        await asyncio.gather(*readers)
    return {"clients": clients, "scrapes": len(scrape_times),
            "scrape_p50_seconds": round(percentile(scrape_times, 50), 4),
            "scrape_p99_seconds": round(percentile(scrape_times, 99), 4),
            "scrape_max_seconds": round(max(scrape_times), 4), "pages_read": len(page_times),
            "page_p50_seconds": round(percentile(page_times, 50), 4),
            "page_p99_seconds": round(percentile(page_times, 99), 4)}


def province(the: Lab, args: argparse.Namespace) -> dict[str, Any]:
    """Phase 1: the service on N sites, scraped by Prometheus; the steady window, then the HTTP figures."""
    write_inventory(the.work / "sites.csv", args.sites)
    write_inventory(the.work / "one.csv", 1)
    write_config(the.work / "province.yml", "sites.csv", args.interval, SERVICE_PORT)
    write_config(the.work / "baseline.yml", "one.csv", args.interval, BASELINE_PORT)
    the.drop_echoes()
    listener = the.terminals()
    service = the.readiness("readiness", the.work / "province.yml")
    baseline = the.readiness("baseline", the.work / "baseline.yml")
    base = f"http://127.0.0.1:{SERVICE_PORT}"
    startup = 120 + args.sites / 100  # loading the inventory, the first evaluation
    wait_for("the service's /metrics", lambda: cycles(SERVICE_PORT) is not None, startup, service)
    prometheus = start_prometheus(the, "prometheus-province", PROMETHEUS_PORT, [
        {"job_name": "readiness", "scrape_timeout": scrape_timeout(args.interval),
         "static_configs": [{"targets": [f"127.0.0.1:{SERVICE_PORT}"]}]}], args.interval)
    warm(the, baseline, BASELINE_PORT, ("icmp", "tcp"), args.warmup_cycles, args.interval, startup)
    baseline_kib = baseline.memory_kib()[0]
    the.stop("baseline")
    warm(the, service, SERVICE_PORT, ("icmp", "tcp"), args.warmup_cycles, args.interval, startup)

    window = CpuWindow({"readiness": service, "prometheus": prometheus, "listener": listener})
    before = metrics_text(SERVICE_PORT)
    sampled = steady(the, window, args.minutes * 60, SERVICE_PORT, service, args.interval)
    after = metrics_text(SERVICE_PORT)
    rss, hwm = service.memory_kib()
    typical = statistics.median(sampled)

    targets_by_kind = {k.split('"')[1]: v for k, v in samples(after, "readiness_probe_targets").items() if v}

    def per_kind(text: str, name: str) -> dict[str, float]:
        return {kind: v for k, v in samples(text, name).items() if (kind := k.split('"')[1]) in targets_by_kind}

    done = {k: per_kind(after, "readiness_probe_cycles_total").get(k, 0) - v
            for k, v in per_kind(before, "readiness_probe_cycles_total").items()}
    skipped = {k: per_kind(after, "readiness_probe_cycles_skipped_total").get(k, 0) - v
               for k, v in per_kind(before, "readiness_probe_cycles_skipped_total").items()}
    durations = per_kind(after, "readiness_probe_cycle_duration_seconds")
    targets = int(sum(targets_by_kind.values()))
    summary = json.loads(get(base + "/api/v1/summary"))["summary"]
    out: dict[str, Any] = {
        "sites": args.sites, "targets": targets, "targets_by_kind": targets_by_kind, "interval_seconds": args.interval,
        "window_seconds": round(window.seconds, 1), "cycles_in_window": done, "cycles_skipped_in_window": skipped,
        "last_cycle_seconds": {k: round(v, 2) for k, v in durations.items()},
        "cpu_share": round(window.share("readiness"), 4),
        "cpu_seconds_per_interval": round(window.share("readiness") * args.interval, 3),
        "rss_mb": round(rss / 1024, 1), "rss_peak_mb": round(hwm / 1024, 1), "baseline_rss_mb": round(
            baseline_kib / 1024, 1),
        "rss_median_mb": round(typical / 1024, 1), "rss_window_max_mb": round(max(sampled) / 1024, 1),
        "kib_per_target": round(typical / max(1, targets), 3),
        "kib_per_target_above_baseline": round((typical - baseline_kib) / max(1, targets), 3),
        "prometheus_cpu_share": round(window.share("prometheus"), 4),
        "listener_cpu_share": round(window.share("listener"), 4),
        "states": {k: summary[k] for k in ("ready", "degraded", "not_ready", "unknown", "total")},
    }
    say("the /metrics and /api figures, then ten API clients against the scrapes")
    out["metrics"] = metrics_figures(base)
    out["api"] = api_figures(base)
    load = CpuWindow({"readiness": service})
    load.start()
    out["under_load"] = asyncio.run(under_load(base, args.scrapes))
    load.stop()
    out["under_load"]["cpu_share"] = round(load.share("readiness"), 4)
    out["prometheus_head_series"] = head_series(PROMETHEUS_PORT)
    for name in ("prometheus-province", "readiness", "terminals"):
        the.stop(name, grace=30)
    return out


def peer(the: Lab, args: argparse.Namespace) -> dict[str, Any]:
    """Phase 2: the same ICMP subset probed by blackbox_exporter and by our service, both scraped by Prometheus."""
    n = min(PEER_TARGETS, args.sites)
    addresses = [primary_address(i) for i in range(n)]
    write_inventory(the.work / "icmp.csv", n, icmp_only=True)
    write_config(the.work / "peer.yml", "icmp.csv", args.interval, PEER_PORT, tcp_enabled=False,
                 icmp={"count": args.peer_count, "timeout_seconds": ICMP_TIMEOUT_SECONDS})
    (the.work / "blackbox.yml").write_text(
        "modules:\n  icmp:\n    prober: icmp\n"
        f"    timeout: {ICMP_TIMEOUT_SECONDS:g}s\n"
        "    icmp:\n      preferred_ip_protocol: ip4\n      ip_protocol_fallback: false\n", encoding="utf-8")
    blackbox = the.start("blackbox", [args.blackbox, f"--config.file={the.work / 'blackbox.yml'}",
                                      f"--web.listen-address=127.0.0.1:{BLACKBOX_PORT}", "--log.level=error"])
    wait_for("blackbox_exporter", lambda: get(f"http://127.0.0.1:{BLACKBOX_PORT}/metrics"), 30, blackbox)
    ours = the.readiness("readiness-icmp", the.work / "peer.yml")
    wait_for("the ICMP-only service's /metrics", lambda: cycles(PEER_PORT) is not None, 120, ours)
    prometheus = start_prometheus(the, "prometheus-peer", PROMETHEUS_PORT, [
        {"job_name": "readiness", "scrape_timeout": scrape_timeout(args.interval),
         "static_configs": [{"targets": [f"127.0.0.1:{PEER_PORT}"]}]},
        {"job_name": "blackbox", "metrics_path": "/probe", "params": {"module": ["icmp"]},
         "scrape_timeout": scrape_timeout(args.interval), "static_configs": [{"targets": addresses}],
         "relabel_configs": [{"source_labels": ["__address__"], "target_label": "__param_target"},
                             {"source_labels": ["__param_target"], "target_label": "instance"},
                             {"target_label": "__address__", "replacement": f"127.0.0.1:{BLACKBOX_PORT}"}]}],
        args.interval)
    warm(the, ours, PEER_PORT, ("icmp",), args.warmup_cycles, args.interval, 60)

    def every_target_scraped() -> bool:
        # Prometheus spreads the 2,000 scrapes over the interval: wait until each has happened once.
        result = query(PROMETHEUS_PORT, 'count(up{job="blackbox"})')
        return bool(result) and float(result[0]["value"][1]) == n

    wait_for("Prometheus scraping every blackbox target", every_target_scraped, args.interval * 3 + 30, prometheus)
    window = CpuWindow({"ours": ours, "blackbox": blackbox, "prometheus": prometheus})
    before = metrics_text(PEER_PORT)
    steady(the, window, args.minutes * 60, PEER_PORT, ours, args.interval)
    after = metrics_text(PEER_PORT)
    time.sleep(1)  # the last scrapes of the window are ingested
    span = f"{round(window.seconds)}s"
    at = f"@ {window.t1:.3f}"
    theirs_probes = float(query(PROMETHEUS_PORT, f'sum(count_over_time(up{{job="blackbox"}}[{span}] {at}))')[0][
        "value"][1])
    theirs_success = float(query(PROMETHEUS_PORT, f'avg(avg_over_time(probe_success{{job="blackbox"}}[{span}] {at}))')[
        0]["value"][1])

    def icmp(text: str, name: str) -> float:
        return samples(text, name).get('kind="icmp"', 0.0)

    our_cycles = icmp(after, "readiness_probe_cycles_total") - icmp(before, "readiness_probe_cycles_total")
    our_targets = icmp(after, "readiness_probe_targets")
    our_probes = our_cycles * our_targets
    our_success = 1 - icmp(after, "readiness_probe_targets_failed") / max(1.0, our_targets)
    ours_ms = 1000 * window.used["ours"] / max(1.0, our_probes)
    theirs_ms = 1000 * window.used["blackbox"] / max(1.0, theirs_probes)
    out = {
        "targets": n, "interval_seconds": args.interval, "echoes_per_probe": args.peer_count,
        "window_seconds": round(window.seconds, 1),
        "ours": {"probes": int(our_probes), "cpu_seconds": round(window.used["ours"], 3),
                 "cpu_ms_per_probe": round(ours_ms, 4), "success_share": round(our_success, 4),
                 "rss_mb": round(ours.memory_kib()[0] / 1024, 1)},
        "blackbox": {"probes": int(theirs_probes), "cpu_seconds": round(window.used["blackbox"], 3),
                     "cpu_ms_per_probe": round(theirs_ms, 4), "success_share": round(theirs_success, 4),
                     "rss_mb": round(blackbox.memory_kib()[0] / 1024, 1)},
        "ratio_ours_to_theirs": round(ours_ms / theirs_ms, 3) if theirs_ms else None,
        "prometheus_cpu_share": round(window.share("prometheus"), 4),
        "prometheus_cpu_ms_per_blackbox_scrape": round(1000 * window.used["prometheus"] / max(1.0, theirs_probes), 4),
    }
    for name in ("prometheus-peer", "readiness-icmp", "blackbox"):
        the.stop(name, grace=30)
    return out


def goals(p: dict[str, Any]) -> dict[str, bool]:
    return {"cpu_share <= 0.20": p["cpu_share"] <= GOALS["cpu_share"],
            "KiB per target <= 2.5 (above baseline)": p["kib_per_target_above_baseline"] <= GOALS["kib_per_target"],
            "series per site <= 15": p["metrics"]["series_per_site_max"] <= GOALS["series_per_site"],
            "/metrics from cache <= 0.25 s (median)":
                p["metrics"]["cached_seconds_median"] <= GOALS["metrics_cached_seconds"]}


def table(r: dict[str, Any]) -> str:
    p = r["province"]
    m, a, u = p["metrics"], p["api"], p["under_load"]
    lines = [
        f"province: {p['sites']:,} sites, {p['targets']:,} targets {p['targets_by_kind']}, every "
        f"{p['interval_seconds']:g} s; steady window {p['window_seconds']:g} s, cycles {p['cycles_in_window']} "
        f"(skipped {p['cycles_skipped_in_window']}), last cycle {p['last_cycle_seconds']} s",
        f"  service CPU share        {p['cpu_share']:.3f} of one core "
        f"({p['cpu_seconds_per_interval']:.2f} s per interval)",
        f"  RSS                      median {p['rss_median_mb']:.1f} MB over the window (max "
        f"{p['rss_window_max_mb']:.1f}, at its end {p['rss_mb']:.1f}, peak {p['rss_peak_mb']:.1f}; 1-site baseline "
        f"{p['baseline_rss_mb']:.1f}): {p['kib_per_target']:.2f} KiB/target, "
        f"{p['kib_per_target_above_baseline']:.2f} above baseline",
        f"  /metrics                 {m['samples']:,} samples, {m['megabytes']} MB ({m['gzip_megabytes']} MB gzip), "
        f"series/site avg {m['series_per_site_avg']} max {m['series_per_site_max']} (ready sites: "
        f"{m['series_per_ready_site_max']}), rendered in {m['collect_seconds']} s (first scrape "
        f"{m['first_seconds']} s)",
        f"  /metrics from cache      plain {m['cached_seconds_median']} s (max {m['cached_seconds_max']}), gzip "
        f"{m['cached_gzip_seconds_median']} s (max {m['cached_gzip_seconds_max']})",
        f"  /api/v1/sites            page {a['page_first_seconds']} s, again {a['page_cached_seconds']} s, "
        f"{a['all_pages']} pages in {a['all_pages_seconds']} s",
        f"  under load               {u['clients']} API clients: /metrics p50 {u['scrape_p50_seconds']} s, p99 "
        f"{u['scrape_p99_seconds']} s, max {u['scrape_max_seconds']} s over {u['scrapes']} scrapes; "
        f"{u['pages_read']} pages, page p99 {u['page_p99_seconds']} s; service CPU {u['cpu_share']:.2f}",
        f"  states                   {p['states']}",
        f"  Prometheus               CPU share {p['prometheus_cpu_share']:.3f}, "
        f"{p['prometheus_head_series']:,} series; "
        f"TCP listener CPU share {p['listener_cpu_share']:.3f}",
    ]
    q = r.get("peer")
    if q:
        lines += [f"peer: {q['targets']:,} ICMP targets every {q['interval_seconds']:g} s, "
                  f"{q['echoes_per_probe']} echo(es) per probe, window {q['window_seconds']:g} s",
                  f"  {'':10} {'probes':>8} {'CPU s':>8} {'ms/probe':>9} {'success':>8} {'RSS MB':>7}"]
        for name in ("ours", "blackbox"):
            x = q[name]
            lines.append(f"  {name:10} {x['probes']:>8,} {x['cpu_seconds']:>8.2f} {x['cpu_ms_per_probe']:>9.4f} "
                         f"{x['success_share']:>8.2%} {x['rss_mb']:>7.1f}")
        lines.append(f"  CPU per probe, ours : theirs = {q['ratio_ours_to_theirs']} : 1 (ours: the whole service); "
                     f"Prometheus CPU share {q['prometheus_cpu_share']:.3f} "
                     f"({q['prometheus_cpu_ms_per_blackbox_scrape']} ms per blackbox scrape)")
    lines.append("goals: " + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in r["goals"].items()))
    lines.append(f"load average {r['load_average_before']} before, {r['load_average_after']} after; "
                 f"{r['cores']} cores")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", type=int, default=10_000)
    ap.add_argument("--minutes", type=float, default=3.0, help="steady window of each phase")
    ap.add_argument("--interval", type=float, default=30.0, help="probe cycle and scrape interval, seconds")
    ap.add_argument("--warmup-cycles", type=int, default=2, help="cycles of each kind before the window opens")
    ap.add_argument("--scrapes", type=int, default=200, help="/metrics scrapes while ten clients read the API")
    ap.add_argument("--peer-count", type=int, default=1, help="our echoes per ICMP target in the peer phase")
    ap.add_argument("--blackbox", default="/usr/bin/prometheus-blackbox-exporter")
    ap.add_argument("--no-peer", action="store_true", help="skip phase 2 (blackbox_exporter)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    for tool in ("prometheus", *(() if args.no_peer else (args.blackbox,))):
        if not any(Path(d, tool).exists() for d in ("", "/usr/bin", "/usr/sbin")):
            print(f"{tool} is not installed: apt-get install -y prometheus prometheus-blackbox-exporter",
                  file=sys.stderr)
            return 2
    result: dict[str, Any] = {"load_average_before": load_average(), "cores": os.cpu_count()}
    try:
        with lab("provbench", keep=args.keep) as the:
            result["province"] = province(the, args)
            if not args.no_peer:
                result["peer"] = peer(the, args)
    except KeyboardInterrupt:
        print("interrupted: the namespace and its processes are gone", file=sys.stderr)
        return 130
    result["load_average_after"] = load_average()
    result["goals"] = goals(result["province"])
    print(json.dumps(result, indent=1) if args.json else table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
