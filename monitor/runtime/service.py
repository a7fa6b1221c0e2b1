"""The running service: config, probes, latest observations, and the snapshot they make."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING

from monitor.config.loader import Config
from monitor.config.targets import build_targets
from monitor.core.readiness import Freshness, SiteReadiness, evaluate
from monitor.runtime.snapshot import CycleStats, Snapshot
from monitor.runtime.timeline import Timeline
from probes import PROBES, Observation, Probe, Target
from probes.errors import ProbeUnavailable

if TYPE_CHECKING:
    from monitor.store.events import StoreStatus

log = logging.getLogger(__name__)


def freshness(config: Config) -> Freshness:
    """Return how old each kind's data may get before it is stale."""
    ages = {}
    for kind in PROBES:
        s = config.probe_settings(kind)
        ages[kind] = config.policy.stale_after_intervals * s.interval_seconds + s.cycle_budget_seconds()
    return Freshness(ages)


class Service:
    """Owns the probe state; hands out immutable snapshots."""

    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time,
                 probes: Mapping[str, Probe] | None = None) -> None:
        self.clock = clock
        self.probes = dict(probes or PROBES)
        self.latest: dict[str, Observation] = {}
        self.config = config
        self.targets: dict[str, list[Target]] = {}
        self.cycles: dict[str, CycleStats] = {}
        self.started_at = clock()
        self._sites: Mapping[str, SiteReadiness] = {}
        self._reload = (True, 0.0, "")
        self._listeners: list[Callable[[Snapshot, Snapshot | None], None]] = []
        self._store_status: Callable[[], StoreStatus] | None = None
        self.timeline = Timeline(config)
        self._evaluating = asyncio.Lock()  # the timeline's memory is updated by one evaluation at a time
        self._retarget(config)
        self.snapshot = Snapshot(self.started_at, config, MappingProxyType({}), MappingProxyType(dict(self.cycles)),
                                 self.started_at)

    def kinds(self) -> list[str]:
        """Return the enabled probe kinds that have targets."""
        return [k for k in self.probes if self.config.probe_settings(k).enabled and self.targets.get(k)]

    def apply(self, config: Config) -> None:
        """Switch to ``config`` at once: new policy, new targets, old observations of vanished targets dropped."""
        self.timeline.reconfigure(config)
        self._retarget(config)

    def _retarget(self, config: Config) -> None:
        built = build_targets(config.sites)
        targets = {kind: built.get(kind, []) for kind in self.probes}
        keys = {t.key for ts in targets.values() for t in ts}
        self.config, self.targets = config, targets
        self.latest = {k: v for k, v in self.latest.items() if k in keys}
        for kind in self.probes:
            interval = config.probe_settings(kind).interval_seconds
            old = self.cycles.get(kind)
            self.cycles[kind] = replace(old, interval_seconds=interval) if old else CycleStats(kind, interval)

    def on_snapshot(self, listener: Callable[[Snapshot, Snapshot | None], None]) -> None:
        """Call ``listener(new, old)`` after every evaluation (the store, for instance)."""
        self._listeners.append(listener)

    def watch_store(self, status: Callable[[], StoreStatus]) -> None:
        """Put ``status()``, the event store's health, into every snapshot (``Snapshot.store``)."""
        self._store_status = status

    def resume(self, states: Mapping[str, tuple[str, float]]) -> None:
        """Start from states recorded before a restart, so `since` carries over."""
        self._sites = MappingProxyType({
            site: SiteReadiness(site, state, (), since) for site, (state, since) in states.items()  # type: ignore[arg-type]
        })

    def warm(self) -> bool:
        """Return whether every enabled kind has finished a cycle (before that, sites would look unknown)."""
        return all(self.cycles[k].cycles_total > 0 for k in self.kinds())

    def note_reload(self, success: bool, error: str = "") -> None:
        """Record the outcome of a config reload for /metrics."""
        self._reload = (success, self.clock(), error)

    def note_skipped(self, kind: str) -> None:
        """Count a cycle that was skipped because the previous one still ran."""
        c = self.cycles[kind]
        self.cycles[kind] = replace(c, skipped_total=c.skipped_total + 1)

    async def probe_cycle(self, kind: str, *, then_evaluate: bool = True) -> None:
        """Run one cycle of ``kind`` over all its targets, then (by default) re-evaluate readiness."""
        probe, settings = self.probes[kind], self.config.probe_settings(kind)
        targets = self.targets.get(kind, [])
        start = time.monotonic()
        # The caller owns time: the cycle must end before the next one is due.
        deadline = start + max(settings.interval_seconds * 0.9, settings.cycle_budget_seconds() + 0.5)
        c = self.cycles[kind]
        try:
            observations = await probe.run(targets, settings, deadline) if targets else []
        except ProbeUnavailable as exc:
            log.error("%s probe cannot run: %s", kind, exc)
            self.cycles[kind] = replace(c, errors_total=c.errors_total + 1, last_error=str(exc),
                                        cycles_total=c.cycles_total + 1)
            return
        except Exception as exc:
            log.exception("%s probe cycle failed", kind)
            self.cycles[kind] = replace(c, errors_total=c.errors_total + 1, last_error=type(exc).__name__,
                                        cycles_total=c.cycles_total + 1)
            return
        for obs in observations:
            self.latest[obs.key] = obs
        requests = c.requests_total + probe.requests_sent(observations)
        self.cycles[kind] = replace(
            c, targets=len(targets), failed=sum(not o.ok for o in observations), requests_total=requests,
            duration_seconds=time.monotonic() - start, finished_at=self.clock(),
            cycles_total=c.cycles_total + 1, last_error="",
        )
        if then_evaluate:
            await self.evaluate_soon()

    async def switch(self, config: Config) -> None:
        """Apply ``config`` between two evaluations, never during one."""
        async with self._evaluating:
            self.apply(config)

    async def evaluate_soon(self) -> Snapshot:
        """Evaluate on a worker thread, one evaluation at a time: a country-sized inventory takes seconds,
        and the event loop must keep reading echo replies and serving scrapes meanwhile."""
        async with self._evaluating:
            return await asyncio.to_thread(self.evaluate)

    def evaluate(self, now: float | None = None, *, force: bool = False) -> Snapshot:
        """Judge every site from the latest observations (once warm) and publish a new snapshot."""
        now = self.clock() if now is None else now
        config = self.config
        warm = force or self.warm()
        if warm:  # before every kind has reported once, sites would look unknown for no reason
            raw = evaluate(config.sites, config.policy, self.latest, now, freshness(config), self._sites,
                           self.timeline.flaps, config.programme.deadline.timestamp())
            self._sites = MappingProxyType(self.timeline.process(config, raw, self._sites, now))
        ok, at, error = self._reload
        old = self.snapshot
        self.snapshot = Snapshot(now, config, self._sites, MappingProxyType(dict(self.cycles)), self.started_at,
                                 warm, ok, at, error, forecasts=MappingProxyType(dict(self.timeline.forecasts)),
                                 proven=frozenset(self.timeline.proven),
                                 store=self._store_status() if self._store_status is not None else None)
        for listener in self._listeners:
            try:
                listener(self.snapshot, old)
            except Exception:
                log.exception("snapshot listener failed")
        return self.snapshot

    async def prepare(self) -> None:
        """Warm what can be warmed before the first cycle (the shared SNMP engine)."""
        for probe in self.probes.values():
            if self.targets.get(probe.kind):
                await probe.warm()

    async def run_once(self) -> Snapshot:
        """Run every probe kind once, concurrently, and evaluate."""
        await asyncio.gather(*(self.probe_cycle(kind, then_evaluate=False) for kind in self.kinds()))
        return await self.evaluate_soon()

    async def close(self) -> None:
        """Release every probe's resources."""
        for probe in self.probes.values():
            try:
                await probe.close()
            except Exception:
                log.exception("closing the %s probe failed", probe.kind)
