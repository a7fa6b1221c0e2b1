"""The running service: config, probes, latest observations, and the snapshot they make."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING

from monitor.config.loader import Config, cycle_allowance
from monitor.config.targets import build_targets
from monitor.core.readiness import Freshness, MonitorView, SiteReadiness, evaluate
from monitor.runtime.snapshot import CycleStats, Snapshot
from monitor.runtime.tasks import install_thread_hook
from monitor.runtime.timeline import Timeline
from probes import PROBES, Observation, Probe, Target
from probes.base import FAILURES
from probes.errors import ProbeUnavailable

if TYPE_CHECKING:
    from monitor.runtime.actions import ActionDesk
    from monitor.store.events import StoreStatus

log = logging.getLogger(__name__)
FAILURE_LOG_EVERY_SECONDS = 60.0  # at most one log line per (kind, failure word) this often, with a count


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
                 probes: Mapping[str, Probe] | None = None, monotonic: Callable[[], float] = time.monotonic) -> None:
        install_thread_hook()  # a thread of ours (the store's writer) that dies is logged and counted
        self.clock = clock  # wall clock: what people read (since, observed_at, the store)
        self.monotonic = monotonic  # what freshness is judged on (the probes stamp time.monotonic())
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
        self._monitor = MonitorView()
        self.desk: ActionDesk | None = None  # remediation actions, when a store keeps them (attach_store)
        self.timeline = Timeline(config)
        self._evaluating = asyncio.Lock()  # the timeline's memory is updated by one evaluation at a time
        self._in_flight: set[asyncio.Task[object]] = set()  # probe cycles running now (stopped by close)
        self._closing = False
        self.once_note = ""  # run_once: how SNMP rates were measured (or that they were not)
        self._failure_log: dict[tuple[str, str], tuple[float, int]] = {}  # -> (last line at, failures since)
        self._retarget(config)
        self.snapshot = Snapshot(self.started_at, config, MappingProxyType({}), MappingProxyType(dict(self.cycles)),
                                 self.started_at, probing=tuple(self.kinds()))

    def kinds(self) -> list[str]:
        """Return the enabled probe kinds that have targets."""
        return [k for k in self.probes if self.config.probe_settings(k).enabled and self.targets.get(k)]

    def apply(self, config: Config) -> None:
        """Switch to ``config`` at once: new policy, new targets, old observations of vanished targets dropped."""
        self.timeline.reconfigure(config)
        self._retarget(config)

    def _retarget(self, config: Config) -> None:
        built = build_targets(config.sites, config.witnesses)
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

    def note_skipped(self, kind: str, *, missed: bool = False) -> None:
        """Count a cycle that was due but did not run: the previous one still ran, or (``missed``) the loop
        was late by more than the grace time, as after a pause."""
        c = self.cycles[kind]
        self.cycles[kind] = replace(c, skipped_total=c.skipped_total + 1, missed_total=c.missed_total + missed)

    async def probe_cycle(self, kind: str, *, then_evaluate: bool = True) -> None:
        """Run one cycle of ``kind`` over all its targets, then (by default) re-evaluate readiness."""
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            await self._probe_cycle(kind, then_evaluate)
        except asyncio.CancelledError:
            if self._closing:  # shutting down: a cycle cut short is no failure, and no traceback
                log.info("%s cycle stopped by shutdown", kind)
                return
            raise
        finally:
            if task is not None:
                self._in_flight.discard(task)

    async def _probe_cycle(self, kind: str, then_evaluate: bool) -> None:
        probe, settings = self.probes[kind], self.config.probe_settings(kind)
        targets = self.targets.get(kind, [])
        start = time.monotonic()
        # The caller owns time: the cycle must end before the next one is due.
        deadline = start + cycle_allowance(settings)
        c = self.cycles[kind]
        try:
            observations = await probe.run(targets, settings, deadline) if targets else []
        except ProbeUnavailable as exc:
            log.error("%s probe cannot run: %s", kind, exc)
            self.cycles[kind] = replace(c, errors_total=c.errors_total + 1, last_error=str(exc),
                                        cycles_total=c.cycles_total + 1)
            return
        except Exception as exc:
            if self._closing:  # the probe's sockets were closed under it
                log.info("%s cycle ended by shutdown: %s", kind, exc)
                return
            log.exception("%s probe cycle failed", kind)
            self.cycles[kind] = replace(c, errors_total=c.errors_total + 1, last_error=type(exc).__name__,
                                        cycles_total=c.cycles_total + 1)
            return
        for obs in observations:
            self.latest[obs.key] = obs
        requests = c.requests_total + probe.requests_sent(observations)
        drops = probe.dropped()
        self.cycles[kind] = replace(
            c, targets=len(targets), failed=sum(not o.ok for o in observations), requests_total=requests,
            duration_seconds=time.monotonic() - start, finished_at=self.clock(),
            cycles_total=c.cycles_total + 1, last_error="", failures_total=self._note_failures(kind, observations, c),
            malformed_total=drops.malformed, unsolicited_total=drops.unsolicited,
        )
        if then_evaluate:
            await self.evaluate_soon()

    def _note_failures(self, kind: str, observations: list[Observation], c: CycleStats) -> dict[str, int]:
        """Count the cycle's failed observations by failure word and log them, one line per word per while."""
        words: dict[str, list[Observation]] = {}
        for o in observations:
            if not o.ok:
                words.setdefault(o.failure if o.failure in FAILURES else "error", []).append(o)
        totals = dict(c.failures_total)
        now = self.monotonic()
        for word, failed in sorted(words.items()):
            totals[word] = totals.get(word, 0) + len(failed)
            last, pending = self._failure_log.get((kind, word), (float("-inf"), 0))
            pending += len(failed)
            if now - last >= FAILURE_LOG_EVERY_SECONDS:
                example = failed[0]
                log.warning("%s: %d failed %s observation(s) since the last such line (e.g. %s: %s)", kind, pending,
                            word, example.key, example.reason or word)
                last, pending = now, 0
            self._failure_log[(kind, word)] = (last, pending)
        return totals

    async def switch(self, config: Config) -> None:
        """Apply ``config`` between two evaluations, never during one."""
        async with self._evaluating:
            self.apply(config)

    async def evaluate_soon(self) -> Snapshot:
        """Evaluate on a worker thread, one evaluation at a time: a country-sized inventory takes seconds,
        and the event loop must keep reading echo replies and serving scrapes meanwhile. The thread gets
        copies of what the loop keeps writing (the latest observations, the cycle stats), taken here."""
        async with self._evaluating:
            latest, cycles = dict(self.latest), dict(self.cycles)
            return await asyncio.to_thread(self.evaluate, latest=latest, cycles=cycles)

    def evaluate(self, now: float | None = None, *, force: bool = False,
                 latest: Mapping[str, Observation] | None = None,
                 cycles: Mapping[str, CycleStats] | None = None, mono: float | None = None) -> Snapshot:
        """Judge every site from the latest observations (once warm) and publish a new snapshot.

        Freshness is judged on the monotonic clock (``mono``, read from ``self.monotonic`` unless ``now`` is
        given: a caller that passes only a wall-clock ``now`` is judged on it). Off the event loop, pass
        ``latest`` and ``cycles`` as copies taken on the loop.
        """
        if now is None:
            now = self.clock()
            mono = self.monotonic() if mono is None else mono
        latest = self.latest if latest is None else latest
        cycles = dict(self.cycles) if cycles is None else cycles
        config = self.config
        warm = force or all(cycles[k].cycles_total > 0 for k in self.kinds())
        if warm:  # before every kind has reported once, sites would look unknown for no reason
            fresh = freshness(config) if mono is None else freshness(config).at_monotonic(mono)
            raw = evaluate(config.sites, config.policy, latest, now, fresh, self._sites,
                           self.timeline.flaps, tuple(w.label for w in config.witnesses), self.timeline.healthy_since,
                           config.programme.deadline.timestamp())
            self._sites = MappingProxyType(self.timeline.process(config, raw, self._sites, now))
            if raw.monitor.blind != self._monitor.blind:
                if raw.monitor.blind:
                    log.error("the monitor is blind, sites it cannot see are unknown: %s", raw.monitor.reason)
                else:
                    log.warning("the monitor sees again")
            self._monitor = raw.monitor
        ok, at, error = self._reload
        old = self.snapshot
        self.snapshot = Snapshot(now, config, self._sites, MappingProxyType(dict(cycles)), self.started_at,
                                 warm, ok, at, error, forecasts=MappingProxyType(dict(self.timeline.forecasts)),
                                 proven=self.timeline.proven_now(), shares=self.timeline.share_samples(),
                                 store=self._store_status() if self._store_status is not None else None,
                                 monitor=self._monitor, probing=tuple(self.kinds()),
                                 actions=self.desk.actions() if self.desk is not None else None)
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

    async def run_once(self, *, rate_gap_seconds: float | None = 5.0) -> Snapshot:
        """Run every probe kind once, concurrently, and evaluate.

        SNMP traffic and error rates need two polls: unless ``rate_gap_seconds`` is None, SNMP is polled
        again that long after (at most its interval), so rates are measured, not missing. ``once_note``
        says which it was.
        """
        kinds = self.kinds()
        await asyncio.gather(*(self.probe_cycle(kind, then_evaluate=False) for kind in kinds))
        self.once_note = ""
        if "snmp" in kinds and any(t.key.endswith("/snmp") for t in self.targets.get("snmp", [])):
            if rate_gap_seconds is None:
                self.once_note = "SNMP traffic and error rates are not known (one poll): links show rates_unknown"
            else:
                gap = min(rate_gap_seconds, self.config.probe_settings("snmp").interval_seconds)
                await asyncio.sleep(gap)
                await self.probe_cycle("snmp", then_evaluate=False)
                self.once_note = f"SNMP traffic and error rates from two polls {gap:g}s apart"
        return await self.evaluate_soon()

    def shutting_down(self) -> None:
        """Mark the service as stopping, before anyone cancels its cycles (the scheduler's shutdown cancels the
        jobs it runs): a cycle cut short from now on ends quietly, as in ``close``."""
        self._closing = True

    async def close(self) -> None:
        """Stop the probe cycles still running (quietly: this is shutdown), then release every probe's resources."""
        self._closing = True
        running = [t for t in self._in_flight if t is not asyncio.current_task()]
        for t in running:
            t.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        for probe in self.probes.values():
            try:
                await probe.close()
            except Exception:
                log.exception("closing the %s probe failed", probe.kind)
