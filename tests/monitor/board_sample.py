"""A sample province for the board: the demo's inventory, evaluated once with faults and days of history.

Used by the board's tests. The README's screenshots come from the demo itself: `docs/screenshots.py`.
"""

from __future__ import annotations

import random
from pathlib import Path

from monitor.config.loader import load_config
from monitor.core.forecast import PROVINCE, ShareHistory
from monitor.runtime.service import Service
from monitor.runtime.snapshot import Snapshot
from probes.base import Observation
from tests.monitor.fixtures import ICMP_OK

ROOT = Path(__file__).parents[2]
NOW = 1_796_000_000.0  # 2026-11-30, before the demo's deadline
HOUR = 3600.0


def sample_snapshot(*, seed: int = 7, history_days: float = 6.0, now: float = NOW) -> Snapshot:
    """Return the demo province evaluated at ``now``: a few dead links, a dead county node, rising history."""
    config = load_config(ROOT / "config" / "demo.yaml")
    service = Service(config, clock=lambda: now)
    rnd = random.Random(seed)
    dead_node = "AGG-HLY"
    for s in config.sites:
        behind = s.upstream == dead_node or s.id == dead_node
        fault = "dead" if behind else rnd.choices(["", "dead", "backup", "terminal", "loss"], [70, 6, 12, 8, 4])[0]
        for link in s.links:
            key = f"{s.id}/{link.role}"
            ok = fault != "dead" and not (fault == "backup" and link.role == "backup")
            values = dict(ICMP_OK) if ok else {}
            if ok and fault == "loss" and link.role == "primary":
                values["loss_ratio"] = 0.34
            service.latest[key] = Observation(key, "icmp", ok, now, values, "" if ok else "timeout",
                                              "" if ok else "0/3 replies")
            if link.snmp is not None:
                skey = f"{key}/snmp"
                service.latest[skey] = Observation(skey, "snmp", False, now, {}, "timeout", "no answer")
        for k, t in enumerate(s.terminals):
            key = f"{s.id}/terminal/{t.id}"
            ok = fault != "dead" and not (fault == "terminal" and k < 2)
            service.latest[key] = Observation(key, "tcp", ok, now, {"connect_seconds": 0.002} if ok else {},
                                              "" if ok else "refused", "" if ok else "refused")
    first = service.evaluate(force=True)
    fig = first.figures()
    shares = service.timeline.shares = ShareHistory(resolution_seconds=HOUR)
    steps = int(history_days * 24)
    for i in range(steps, 0, -1):  # the share rose from about 62% to today's over the last days
        at = now - i * HOUR
        for key, tally in fig.scopes().items():
            if not tally.total:
                continue
            frac = 1 - i / steps
            ready = round(tally.total * (0.62 + (tally.ready / tally.total - 0.62) * frac)
                          + rnd.uniform(-0.02, 0.02) * tally.total)
            shares.add(key, at, max(0, min(tally.total, ready)), tally.total)
    snap = service.evaluate(force=True, now=now)
    assert PROVINCE in snap.forecasts
    return snap
