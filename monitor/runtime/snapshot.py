"""The immutable picture that exporters, the API and reports read; the probe loop swaps in a new one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from monitor.config.loader import Config
from monitor.core.figures import Figures
from monitor.core.figures import compute as compute_figures
from monitor.core.forecast import Forecast, Scope
from monitor.core.readiness import SiteReadiness
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
    skipped_total: int = 0
    errors_total: int = 0
    requests_total: int = 0  # echo requests, connects or SNMP PDUs sent since start
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
    # (time, ready, total) samples per scope: the forecast's own history, for the page's burn-up
    shares: Mapping[Scope, tuple[tuple[float, int, int], ...]] = field(default_factory=lambda: MappingProxyType({}))

    def figures(self) -> Figures:
        """Return the figures of this instance's sites (monitor/core/figures.py: the one definition)."""
        return compute_figures(self.config.reported_sites(), self.sites)
