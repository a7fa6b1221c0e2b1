"""The immutable picture that exporters, the API and reports read; the probe loop swaps in a new one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from monitor.config.loader import Config
from monitor.core.actions import Action
from monitor.core.figures import Figures
from monitor.core.figures import compute as compute_figures
from monitor.core.forecast import Forecast, Scope
from monitor.core.readiness import MonitorView, SiteReadiness
from probes.base import FAILURES

FAILURE_WORDS = FAILURES  # the bounded failure words (CycleStats.failures_total keys; a metric label)

if TYPE_CHECKING:
    from monitor.store.events import StoreStatus


@dataclass(frozen=True, slots=True)
class CycleStats:
    """How the probe cycles of one kind have gone."""

    kind: str
    interval_seconds: float
    targets: int = 0
    failed: int = 0
    duration_seconds: float = 0.0
    finished_at: float = 0.0
    cycles_total: int = 0
    skipped_total: int = 0  # due but not run: the previous cycle still ran, or missed (below)
    missed_total: int = 0  # due but not run because the loop was late by more than the grace time (a pause)
    errors_total: int = 0
    requests_total: int = 0  # echo requests, connects or SNMP PDUs sent since start
    malformed_total: int = 0  # datagrams from polled peers dropped as no answer (Probe.dropped)
    unsolicited_total: int = 0  # datagrams from peers never polled, dropped unanswered
    last_error: str = ""
    failures_total: Mapping[str, int] = field(default_factory=dict)  # failed observations by failure word


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything an exporter may show, as of ``at``."""

    at: float
    config: Config
    sites: Mapping[str, SiteReadiness]
    cycles: Mapping[str, CycleStats]
    started_at: float
    evaluated: bool = False
    reload_success: bool = True
    reload_at: float = 0.0
    reload_error: str = ""
    forecasts: Mapping[Scope, Forecast] = field(default_factory=lambda: MappingProxyType({}))  # by scope
    proven: frozenset[str] = frozenset()  # "SITE/role": links ever seen carrying echo traffic
    store: StoreStatus | None = None  # the event store's health; None when nothing is recorded
    monitor: MonitorView = field(default_factory=MonitorView)  # whether the monitor can trust its own view
    probing: tuple[str, ...] = ()  # the kinds that should be probing (enabled, with targets)
    actions: tuple[Action, ...] | None = None  # remediation actions; None when no store keeps them
    # (time, ready, total) samples per scope: the forecast's own history, for the page's burn-up
    shares: Mapping[Scope, tuple[tuple[float, int, int], ...]] = field(default_factory=lambda: MappingProxyType({}))

    def stall_limit(self, kind: str) -> float:
        """Seconds after which ``kind`` counts as stalled: twice its interval (and jitter), plus a cycle."""
        s = self.config.probe_settings(kind)
        c = self.cycles.get(kind)
        cycle = s.cycle_seconds_for(c.targets) if c is not None and c.targets else s.cycle_budget_seconds()
        return 2 * (s.interval_seconds + s.jitter_seconds) + cycle

    def stalled(self, now: float) -> dict[str, float]:
        """Return kind -> seconds since its last finished cycle (or since start), for every kind that
        should be probing and has not finished a cycle within its stall limit."""
        out = {}
        for kind in self.probing:
            c = self.cycles.get(kind)
            age = now - (c.finished_at if c is not None and c.finished_at else self.started_at)
            if age > self.stall_limit(kind):
                out[kind] = age
        return out

    def problems(self, now: float) -> tuple[str, ...]:
        """Why this monitor's word cannot be trusted at ``now`` (empty: it can): /-/ready and /metrics."""
        out = [] if self.evaluated else ["no evaluation yet"]
        for kind, age in sorted(self.stalled(now).items()):
            out.append(f"{kind} probing stalled: no cycle finished for {age:.0f}s "
                       f"(limit {self.stall_limit(kind):.0f}s)")
        if self.store is not None and not self.store.ok:
            out.append(f"store not writable: {self.store.error}")
        return tuple(out)

    def figures(self) -> Figures:
        """Return the figures of this instance's sites (monitor/core/figures.py: the one definition)."""
        return compute_figures(self.config.reported_sites(), self.sites)
