"""Where the memory of a province goes: resident memory per target, and what holds it (issue 13: <= 2.5 KB).

Builds the service of bench/province.py (N sites, two links and two TCP terminals each, observations injected,
probed every 30 s), evaluates it twice, then reports the resident memory the service added (KiB per target,
the figure issue 13 sets), step by step, and the size of each holder, measured by walking its objects
(``sys.getsizeof``; an object two holders share counts for the first):

    python bench/memory.py                  # 10,000 sites, 40,000 targets
    python bench/memory.py --sites 2000 --json
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.config.loader import load_config
from monitor.runtime.service import Service
from monitor.web.exposition import RenderCache
from monitor.web.metrics import SnapshotCollector
from probes.base import Observation, Values
from probes.icmp import echo_values
from probes.tcp import CONNECT_KEYS
from tests.monitor.fixtures import write_config
from tests.monitor.test_budget import inventory

GOAL_KIB_PER_TARGET = 2.5
PROBES = {"icmp": {"interval_seconds": 30}, "tcp": {"interval_seconds": 30, "concurrency": 4096}}


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def deep_size(root: object, seen: set[int]) -> int:
    """Return the bytes of ``root`` and everything it holds that ``seen`` does not hold already."""
    total, stack = 0, [root]
    while stack:
        o = stack.pop()
        if id(o) in seen or o is None or isinstance(o, (bool, type)):
            continue
        seen.add(id(o))
        total += sys.getsizeof(o)
        if isinstance(o, dict):
            stack += o.keys()
            stack += o.values()
        elif isinstance(o, (list, tuple, set, frozenset)):
            stack += o
        elif hasattr(o, "items") and callable(o.items):  # mappingproxy and other mappings
            for k, v in o.items():
                stack += (k, v)
        else:
            if hasattr(o, "__dict__"):
                stack.append(o.__dict__)
            for cls in type(o).__mro__:
                for name in getattr(cls, "__slots__", ()):
                    if name not in ("__dict__", "__weakref__") and hasattr(o, name):
                        stack.append(getattr(o, name))
    return total


def build(tmp: Path, sites: int) -> tuple[Service, list[tuple[str, int]]]:
    """Return the evaluated service and the resident memory (KiB) each step added."""
    steps: list[tuple[str, int]] = []
    path = write_config(tmp, inventory(sites), probes=PROBES)
    gc.collect()
    last = rss_kib()

    def step(name: str) -> None:
        nonlocal last
        gc.collect()
        now = rss_kib()
        steps.append((name, now - last))
        last = now

    config = load_config(path)
    step("config (the validated inventory)")
    service = Service(config, clock=lambda: 1000.0)
    step("service (targets, timeline)")
    # As the probes build them: keyed by the targets' own key strings, values in the probes' layouts (every
    # tenth primary answered nothing), one clock reading per ICMP cycle and one per TCP connect.
    keys = {t.key: t.key for kind in service.targets.values() for t in kind}
    at, mono = 1000.0, time.monotonic()
    for i in range(sites):
        sid = f"S{i:04d}"
        rtts = [0.001 + i * 1e-9, 0.002 + i * 1e-9, 0.0015 + i * 1e-9]
        for role, answered in (("primary", i % 10 != 0), ("backup", True)):
            key = keys[f"{sid}/{role}"]
            service.latest[key] = (Observation(key, "icmp", True, at, echo_values(3, rtts), mono=mono) if answered
                                   else Observation(key, "icmp", False, at, echo_values(3, ()), "timeout",
                                                    "0/3 replies", mono=mono))
        for k in (1, 2):
            key = keys[f"{sid}/terminal/T{k}"]
            connect = Values(CONNECT_KEYS, (0.001 + i * 1e-9,))
            service.latest[key] = Observation(key, "tcp", True, at + i * 1e-6, connect, mono=time.monotonic())
    step("latest observations")
    service.evaluate(force=True)
    service.evaluate(force=True)
    step("two evaluations (snapshot, timeline)")
    return service, steps


def holders(service: Service) -> list[tuple[str, int]]:
    """Return the bytes of each holder of per-target state, biggest first."""
    seen: set[int] = set()
    snap = service.snapshot
    parts: list[tuple[str, Callable[[], Any]]] = [
        ("config.sites (pydantic models)", lambda: service.config.sites),
        ("targets (probes.base.Target)", lambda: service.targets),
        ("latest observations", lambda: service.latest),
        ("snapshot.sites (SiteReadiness, links, terminals)", lambda: snap.sites),
        ("timeline: flap memory", lambda: service.timeline.flaps),
        ("timeline: healthy streaks", lambda: service.timeline.healthy_since),
        ("timeline: sustain history", lambda: service.timeline.sustain),
        ("timeline: share history, forecasts", lambda: (service.timeline.shares, service.timeline.forecasts)),
        ("timeline: proven backups", lambda: service.timeline.proven),
    ]
    out = [(name, deep_size(get(), seen)) for name, get in parts]
    return sorted(out, key=lambda x: -x[1])


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", type=int, default=10_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        service, steps = build(Path(tmp), args.sites)
        targets = sum(len(s.links) + len(s.terminals) for s in service.config.sites)
        added = sum(kib for _, kib in steps)
        before = rss_kib()
        cache = RenderCache(lambda: service.snapshot, lambda snap: SnapshotCollector(lambda: snap).collect())
        started = time.process_time()
        packed = cache.packed()  # what the cache keeps: the gzip form only
        render_cpu = time.process_time() - started
        gc.collect()
        metrics_kib = rss_kib() - before
        body = cache.body()  # the plain text, inflated for its size here (a plain scraper's, for its request)
        parts = holders(service)
    row: dict[str, Any] = {
        "sites": args.sites, "targets": targets, "rss_added_mib": round(added / 1024, 1),
        "kib_per_target": round(added / targets, 2), "goal_kib_per_target": GOAL_KIB_PER_TARGET,
        "steps_kib": dict(steps), "metrics_cache_kib": metrics_kib,
        "metrics_body_mb": round(len(body) / 1e6, 2), "metrics_gzip_mb": round(len(packed) / 1e6, 3),
        "metrics_render_cpu_seconds": round(render_cpu, 3),
        "holders_bytes_per_target": {name: round(size / targets) for name, size in parts},
    }
    if args.json:
        print(json.dumps(row, indent=1, ensure_ascii=False))
        return 0
    print(f"{args.sites:,} sites, {targets:,} targets: the service added {added / 1024:.1f} MiB resident, "
          f"{added / targets:.2f} KiB per target (goal <= {GOAL_KIB_PER_TARGET} KiB)")
    for name, kib in steps:
        print(f"  {kib / 1024:8.1f} MiB  {name}")
    print(f"then /metrics cached ({row['metrics_body_mb']} MB, gzip {row['metrics_gzip_mb']} MB, rendered in "
          f"{render_cpu:.2f} s CPU): {metrics_kib / 1024:.1f} MiB more")
    print("what holds it (bytes per target, objects walked; shared objects count once):")
    for name, size in parts:
        print(f"  {size / targets:8.0f}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
