"""Render /metrics for a large snapshot with our renderer and with prometheus_client, side by side.

The snapshot comes from the 50,000-site inventory of tests/monitor/test_scale.py (two links and three
terminals a site), cut to each ``--sizes`` value. Every link has fresh ICMP values, every primary SNMP
interface and optics values, every terminal a TCP connect time; one primary in ten loses 5% of its
echoes and one backup in twenty is down, so states and reasons vary. For each size the collector
builds the families once (timed on its own: both sides need it); then the same families are formatted
by ``monitor.web.exposition.render`` and by ``prometheus_client.generate_latest`` (through a registry
that yields them). A scrape costs collect + format. Times are CPU seconds of this process (a shared
machine's other work stays out of them); collect is timed once, each format the best of ``--repeat``
runs. Before timing, both outputs are parsed on a 1,000-site cut and must hold the same samples.
About 80 s of CPU with the defaults; ``--repeat 3`` gives steadier figures in twice the time.

    python bench/exposition.py                     # 10,000 and 50,000 sites
    python bench/exposition.py --sizes 2000 --repeat 5 --json
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector, CollectorRegistry

from monitor.config.loader import Config, load_config
from monitor.runtime.service import Service
from monitor.runtime.snapshot import Snapshot
from monitor.web.exposition import render
from monitor.web.metrics import SnapshotCollector
from probes.base import Observation
from tests.monitor import test_scale

T = TypeVar("T")
NOW = 1_767_600_000.0
SNMP = {"oper_up": 1, "admin_up": 1, "uptime_seconds": 86400, "last_change_seconds": 80000, "oper_changes": 0,
        "in_bps": 1e6, "out_bps": 2e6, "in_errors_per_second": 0, "out_errors_per_second": 0,
        "in_discards_per_second": 0, "rx_power_dbm": -12.5, "tx_power_dbm": -3.1,
        "in_octets_total": 1.25e8, "out_octets_total": 2.5e8, "in_errors_total": 0, "out_errors_total": 0,
        "in_discards_total": 0}


@dataclass
class Row:
    sites: int
    samples: int
    megabytes: float
    collect_seconds: float
    ours_seconds: float
    client_seconds: float
    format_ratio: float  # generate_latest / ours
    scrape_ratio: float  # (collect + generate_latest) / (collect + ours)


def _icmp(key: int, i: int, loss: float) -> dict[str, float]:
    rtt = 0.002 + (i % 50) / 10_000 + key / 1000
    return {"loss_ratio": loss, "rtt_min_seconds": rtt * 0.8, "rtt_avg_seconds": rtt, "rtt_max_seconds": rtt * 1.5,
            "jitter_seconds": rtt / 10}


def snapshot(config: Config) -> Snapshot:
    """Judge every site of ``config`` from fresh, varied observations and return the snapshot."""
    latest: dict[str, Observation] = {}
    for i, site in enumerate(config.sites):
        for k, link in enumerate(site.links):
            key = f"{site.id}/{link.role}"
            if link.role == "backup" and i % 20 == 0:
                latest[key] = Observation(key, "icmp", False, NOW, {"loss_ratio": 1.0}, "timeout", "no reply")
            else:
                latest[key] = Observation(key, "icmp", True, NOW, _icmp(k, i, 0.05 if i % 10 == 0 else 0.0))
            if link.role == "primary":
                latest[key + "/snmp"] = Observation(key + "/snmp", "snmp", True, NOW, SNMP)
        for t in site.terminals:
            key = f"{site.id}/terminal/{t.id}"
            latest[key] = Observation(key, "tcp", True, NOW, {"connect_seconds": 0.001 + (i % 7) / 1000})
    service = Service(config, clock=lambda: NOW)
    service.latest.update(latest)
    return service.evaluate(force=True)


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def _client(families: list[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(families))
    return generate_latest(registry)


def _collect(snap: Snapshot) -> list[Metric]:
    return list(SnapshotCollector(lambda: snap).collect())


def _best(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    times = []
    for _ in range(repeat):
        gc.collect()
        started = time.process_time()
        out = fn()
        times.append(time.process_time() - started)
    return min(times), out


def _samples(text: str) -> list[tuple[str, list[tuple[str, str]], float]]:
    return sorted((s.name, sorted(s.labels.items()), s.value) for fam in text_string_to_metric_families(text)
                  for s in fam.samples if s.name != "readiness_exporter_collect_seconds")


def _cut(config: Config, n: int) -> Config:
    # The first sites are the aggregation nodes every other site hangs off: any prefix is a whole inventory.
    return config.model_copy(update={"sites": config.sites[:n]})


def bench(args: argparse.Namespace) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        test_scale.write_csv(root / "sites.csv")
        (root / "config.yml").write_text("programme: {deadline: '2026-12-31T23:59:59+03:30'}\n"
                                         "inventory: [sites.csv]\n", encoding="utf-8")
        full = load_config(root / "config.yml")
    families = _collect(snapshot(_cut(full, 1000)))
    if _samples(render(families).decode()) != _samples(_client(families).decode()):
        raise SystemExit("the two renderers disagree on the 1,000-site check: the timings would mean nothing")
    rows = []
    for n in args.sizes:
        if n > len(full.sites):
            raise SystemExit(f"--sizes: at most {len(full.sites)} sites")
        collect_s, families = _best(partial(_collect, snapshot(_cut(full, n))), 1)
        ours_s, body = _best(partial(render, families), args.repeat)
        client_s, _ = _best(partial(_client, families), args.repeat)
        samples = sum(len(f.samples) for f in families)
        rows.append(Row(n, samples, round(len(body) / 1e6, 1), round(collect_s, 3), round(ours_s, 3),
                        round(client_s, 3), round(client_s / ours_s, 2),
                        round((collect_s + client_s) / (collect_s + ours_s), 2)))
        print(f"... {n:,} sites done", file=sys.stderr, flush=True)
    return rows


def table(rows: list[Row], repeat: int) -> str:
    lines = [f"CPU seconds; format: the same families rendered, best of {repeat}; scrape: collect (one run) + format",
             f"{'sites':>7} {'samples':>10} {'MB':>6} {'collect s':>10} {'ours s':>8} {'client s':>9} "
             f"{'format x':>9} {'scrape x':>9}"]
    for r in rows:
        lines.append(f"{r.sites:>7,} {r.samples:>10,} {r.megabytes:>6} {r.collect_seconds:>10.2f} "
                     f"{r.ours_seconds:>8.2f} {r.client_seconds:>9.2f} {r.format_ratio:>9.2f} {r.scrape_ratio:>9.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=lambda v: [int(x) for x in v.split(",")], default=[10_000, 50_000])
    parser.add_argument("--repeat", type=int, default=1, help="timed format runs per size (the best is shown)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = parser.parse_args()
    rows = bench(args)
    if args.json:
        print(json.dumps({"settings": {"sizes": args.sizes, "repeat": args.repeat},
                          "rows": [asdict(r) for r in rows]}, indent=2))
    else:
        print(table(rows, args.repeat))


if __name__ == "__main__":
    main()
