"""The long-running loop: APScheduler jobs per probe kind, the web server, signals and reloads."""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from aiohttp import web
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.job import Job
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from monitor.config.loader import Config, load_config
from monitor.config.shard import select_shard
from monitor.errors import ConfigError, Problem
from monitor.runtime.heap import resettle, trim
from monitor.runtime.service import Service
from monitor.runtime.snapshot import Snapshot
from monitor.runtime.tasks import count_failure, spawn

# What serves HTTP: given the current snapshot and a reload, the aiohttp app (monitor.web.app.make_app).
AppFactory = Callable[[Callable[[], Snapshot], Callable[[], Awaitable[tuple[bool, str]]]], web.Application]
# Jobs beside the probes that follow the config, e.g. the committee's reports (monitor.cli.reports.report_jobs):
# given a config, job id -> (its trigger, the coroutine to run). Raises ValueError for a config it cannot schedule.
ConfigJobs = Callable[[Config], dict[str, tuple[BaseTrigger, Callable[[], Awaitable[None]]]]]
PROBE_PREFIX = "probe:"
# More to read again at a reload (the web config): given the new config, check it all (ConfigError refuses the
# reload, nothing changed) and return what puts it in force, called only once the service has switched.
ReloadPart = Callable[[Config], Callable[[], None]]

log = logging.getLogger(__name__)

# The watchdog looks at the loop this often; a gap of more than PAUSE_MIN_SECONDS (and more than the
# shortest interval) means nothing ran meanwhile: SIGSTOP, a suspended VM, a starved machine.
WATCH_SECONDS = 0.5
TRIM_SECONDS = 30.0  # how often the allocator's free pages go back to the system (monitor/runtime/heap.py)
PAUSE_MIN_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Plan:
    """The jobs a config asks for, built before any running job is touched."""

    probes: dict[str, tuple[IntervalTrigger, int]]  # kind -> (trigger, misfire grace seconds)
    others: dict[str, tuple[BaseTrigger, Callable[[], Awaitable[None]]]]  # job id -> (trigger, coroutine)


class Runner:
    """Schedules probe cycles for a Service, serves HTTP, reloads on SIGHUP or POST /-/reload."""

    def __init__(self, service: Service, config_path: str | Path | None = None, *, make_app: AppFactory,
                 config_jobs: ConfigJobs | None = None) -> None:
        self.service = service
        self.make_app = make_app  # passed in: the web layer reads snapshots, the runtime never imports it
        self.config_jobs = config_jobs  # passed in too: reports are the audit's, which the runtime never imports
        self.config_path = config_path
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self.scheduler.add_listener(self._on_max_instances, EVENT_JOB_MAX_INSTANCES)
        self.scheduler.add_listener(self._on_job_error, EVENT_JOB_ERROR)  # APScheduler logs the traceback
        self.scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)
        self._tick: float | None = None  # monotonic time the loop last ran; None: no watchdog, no pauses seen
        self._hold: tuple[float, float] | None = None  # (since, until) monotonic: verdicts held after a pause
        self._begun: dict[str, float] = {}  # kind -> monotonic start of its last cycle that has ended
        self._running: set[str] = set()  # kinds with a cycle under way
        self._stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self.also_reload: list[ReloadPart] = []  # read again with the config, all or nothing (the web config)
        self.site: web.TCPSite | None = None
        self._app_runner: web.AppRunner | None = None
        self.url = ""

    def _on_max_instances(self, event: JobSubmissionEvent) -> None:
        """Count every run time the scheduler dropped because the previous cycle still ran: without
        coalescing it hands them all at once, and those late by more than the grace time (the loop stood
        still while a cycle was in flight) were missed as well as skipped."""
        if not event.job_id.startswith(PROBE_PREFIX):
            log.warning("%s skipped: the previous run is still going", event.job_id)
            return
        kind = event.job_id.removeprefix(PROBE_PREFIX)
        job = self.scheduler.get_job(event.job_id)
        grace = job.misfire_grace_time if job is not None else None
        now = datetime.now().astimezone()
        times = event.scheduled_run_times or [now]
        missed = sum(1 for t in times if grace is not None and (now - t).total_seconds() > grace)
        log.warning("%s cycle skipped (%d run time(s), %d missed): the previous one is still running",
                    kind, len(times), missed)
        for i in range(len(times)):
            self.service.note_skipped(kind, missed=i < missed)

    def _on_job_error(self, event: JobExecutionEvent) -> None:
        count_failure("probe_cycle" if event.job_id.startswith(PROBE_PREFIX) else event.job_id.split(":")[0])

    def _on_missed(self, event: JobEvent) -> None:
        # Without coalescing, APScheduler reports each run time it missed by more than the grace time.
        if event.job_id.startswith(PROBE_PREFIX):
            self.service.note_skipped(event.job_id.removeprefix(PROBE_PREFIX), missed=True)

    async def _cycle(self, kind: str) -> None:
        """One scheduled cycle of ``kind``; then evaluate, unless verdicts are held after a pause."""
        self._running.add(kind)  # before the check: a pause found now must not re-run this very job
        self._check_pause()
        begun = time.monotonic()
        try:
            await self.service.probe_cycle(kind, then_evaluate=False)
        finally:
            self._running.discard(kind)
        self._check_pause()  # a pause while this cycle ran shows here, even before the watchdog wakes
        self._begun[kind] = begun
        if self._holding():
            return
        await self.service.evaluate_soon()

    async def _watch(self) -> None:
        """Notice when the whole process stood still (the loop's monotonic gap)."""
        self._tick = time.monotonic()
        trim_at = self._tick + TRIM_SECONDS
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            if time.monotonic() >= trim_at:  # what the renders of the last cycle freed, back to the system
                trim_at = time.monotonic() + TRIM_SECONDS
                trim()
            self._check_pause()

    def _check_pause(self) -> None:
        if self._tick is None:
            return
        now = time.monotonic()
        gap, self._tick = now - self._tick, now
        kinds = self.service.kinds()
        shortest = min((self.service.config.probe_settings(k).interval_seconds for k in kinds), default=0.0)
        if gap <= max(PAUSE_MIN_SECONDS, shortest) or not kinds:
            return
        # Every kind's data aged by the gap while nobody probed: judging now would record sites going
        # unknown, and back a moment later, that never did. Hold verdicts until each kind has probed afresh.
        wait = max(2 * (s.interval_seconds + s.jitter_seconds) + s.cycle_budget_seconds()
                   for s in map(self.service.config.probe_settings, kinds))
        self._hold = (now, now + wait)
        log.warning("nothing ran for %.1fs (the process was paused or starved): no verdict is recorded until "
                    "every probe kind has finished a fresh cycle (at most %.0fs)", gap, wait)
        due = datetime.now().astimezone()
        for job in self.scheduler.get_jobs():  # catch up now rather than at the next interval
            kind = job.args[0] if job.args and job.id.startswith(PROBE_PREFIX) else None
            if kind is None or kind in self._running:  # that job's next run comes when its cycle ends
                continue
            if job.next_run_time is not None and job.next_run_time <= due:
                # The run times the scheduler has not seen yet: one is served now, the rest were missed
                # (those it has already seen were counted through EVENT_JOB_MISSED).
                late = (due - job.next_run_time).total_seconds()
                for _ in range(int(late // job.trigger.interval.total_seconds())):
                    self.service.note_skipped(kind, missed=True)
            job.modify(next_run_time=due)

    def _holding(self) -> bool:
        """Whether verdicts are still held after a pause; releases the hold once every kind caught up."""
        if self._hold is None:
            return False
        since, until = self._hold
        behind = [k for k in self.service.kinds() if self._begun.get(k, -1.0) < since]
        if behind and time.monotonic() < until:
            return True
        if behind:
            log.warning("still no fresh cycle of %s after a pause; judging on the data there is",
                        ", ".join(behind))
        else:
            log.info("every probe kind has caught up after the pause; verdicts resume")
        self._hold = None
        return False

    def _plan(self, config: Config) -> Plan:
        """Build every enabled kind's trigger for ``config`` and work out its first two fire times, so an
        interval the scheduler cannot handle fails here, before a single running job is touched; the same for
        the config's other jobs (reports)."""
        plan: dict[str, tuple[IntervalTrigger, int]] = {}
        now = datetime.now().astimezone()
        for kind in self.service.probes:
            s = config.probe_settings(kind)
            if not s.enabled:
                continue
            trigger = IntervalTrigger(seconds=s.interval_seconds, jitter=s.jitter_seconds or None)
            first = trigger.get_next_fire_time(None, now)
            if first is None or trigger.get_next_fire_time(first, first) is None:
                raise ValueError(f"{kind}: interval_seconds={s.interval_seconds:g} gives no next run")
            grace = max(1, int(s.interval_seconds / 2))
            now + timedelta(seconds=grace)  # the scheduler adds it to run times: overflow here, not there
            plan[kind] = (trigger, grace)
        others = self.config_jobs(config) if self.config_jobs is not None else {}
        for job_id, (trigger, _) in others.items():
            if job_id.startswith(PROBE_PREFIX):
                raise ValueError(f"job id {job_id!r} is reserved for the probes")
            trigger.get_next_fire_time(None, now)  # a trigger that cannot fire fails here
        return Plan(plan, others)

    def _install(self, plan: Plan) -> None:
        """Replace the probe jobs by one per kind the service runs now, and the other jobs (reports) by the
        plan's; on any failure the old jobs stay, all of them."""
        old = self.scheduler.get_jobs()
        kinds = self.service.kinds()
        now = datetime.now().astimezone()
        try:
            for i, kind in enumerate(kinds):
                trigger, grace = plan.probes[kind]
                self.scheduler.add_job(
                    self._cycle, trigger, args=[kind], id=f"{PROBE_PREFIX}{kind}", max_instances=1,
                    coalesce=False, misfire_grace_time=grace, next_run_time=now + timedelta(milliseconds=100 * i),
                    replace_existing=True,
                )
            for job_id, (trigger, run) in plan.others.items():
                # A report runs once however late (a paused machine), within the hour.
                self.scheduler.add_job(run, trigger, id=job_id, max_instances=1, coalesce=True,
                                       misfire_grace_time=3600, replace_existing=True)
        except BaseException:
            self._restore(old)
            raise
        keep = {f"{PROBE_PREFIX}{k}" for k in kinds} | set(plan.others)
        for job in old:
            if job.id not in keep:
                self.scheduler.remove_job(job.id)

    def _restore(self, jobs: list[Job]) -> None:
        """Put ``jobs`` back as they were (same trigger, same next run) and drop any other job."""
        keep = {job.id for job in jobs}
        for job in self.scheduler.get_jobs():
            if job.id not in keep:
                self.scheduler.remove_job(job.id)
        for job in jobs:
            self.scheduler.add_job(
                job.func, job.trigger, args=job.args, id=job.id, max_instances=job.max_instances,
                coalesce=job.coalesce, misfire_grace_time=job.misfire_grace_time, next_run_time=job.next_run_time,
                replace_existing=True,
            )

    def _schedule(self) -> None:
        self._install(self._plan(self.service.config))

    async def reload(self) -> tuple[bool, str]:
        """Load the config again; switch to it only if it is valid, else keep the old one."""
        if self.config_path is None:
            return False, "no config file to reload"
        async with self._reload_lock:
            try:
                k, n = self.service.config.shard
                # A sharded instance stays the same shard across reloads, its probes sized for its own sites.
                select = functools.partial(select_shard, text=f"{k}/{n}") if n > 1 else None
                config: Config = await asyncio.to_thread(load_config, self.config_path, select=select)
                commits = [await asyncio.to_thread(part, config) for part in self.also_reload]
            except ConfigError as exc:
                msg = f"reload rejected, keeping the running config: {len(exc.problems)} problem(s)\n{exc}"
                log.error("%s", msg)
                self.service.note_reload(False, msg)
                if not self._holding():
                    await self.service.evaluate_soon()
                return False, msg
            old = self.service.config
            jobs = self.scheduler.get_jobs()
            kept = dict(self.service.latest)
            try:
                plan = self._plan(config)  # nothing has changed yet if this fails
                await self.service.switch(config)
                self._install(plan)
            except Exception as exc:
                # All or nothing: the old config and its jobs keep running, and /metrics says the reload failed.
                log.exception("reload failed while switching to the new config; keeping the running one")
                self._restore(jobs)
                if self.service.config is not old:
                    await self.service.switch(old)
                    for key, obs in kept.items():
                        self.service.latest.setdefault(key, obs)
                msg = f"reload failed, keeping the running config: {type(exc).__name__}: {exc}"
                self.service.note_reload(False, msg)
                if not self._holding():
                    await self.service.evaluate_soon()
                return False, msg
            if (config.listen.host, config.listen.port) != (old.listen.host, old.listen.port):
                log.warning("listen address changes take effect at restart")
            for commit in commits:
                commit()
            self.service.note_reload(True)
            resettle()  # the new config, out of the garbage collector's sight (monitor/runtime/heap.py)
            if not self._holding():
                await self.service.evaluate_soon()
            msg = f"reloaded: {len(config.sites)} sites, config version {config.version}"
            if plan.others:  # what else now runs on a schedule, and when next
                msg += "; " + ", ".join(f"{job_id} next {job.next_run_time.isoformat(timespec='minutes')}"
                                        for job_id in sorted(plan.others)
                                        if (job := self.scheduler.get_job(job_id)) is not None
                                        and job.next_run_time is not None)
            log.info("%s", msg)
            return True, msg

    async def start_http(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> str:
        """Serve the app on host:port (port 0 picks a free one), over TLS with ``ssl_context``; return the base URL."""
        app = self.make_app(lambda: self.service.snapshot, self.reload)
        app_runner = web.AppRunner(app, access_log=None)
        await app_runner.setup()
        self.site = web.TCPSite(app_runner, host, port, ssl_context=ssl_context)
        await self.site.start()
        server = self.site._server
        sockets = getattr(server, "sockets", None) or []
        actual = sockets[0].getsockname()[1] if sockets else port
        shown = f"[{host}]" if ":" in host else host
        self.url = f"{'https' if ssl_context is not None else 'http'}://{shown}:{actual}"
        self._app_runner = app_runner
        return self.url

    def stop(self) -> None:
        """Ask the loop to shut down."""
        self._stop.set()

    async def run(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> None:
        """Serve HTTP(S) on host:port and run until SIGTERM/SIGINT; SIGHUP reloads."""
        url = await self.start_http(host, port, ssl_context)
        log.info("serving %s/metrics and %s/api/v1/sites", url, url)
        await self.run_started()

    async def run_started(self) -> None:
        """Schedule the probes and run until SIGTERM/SIGINT (HTTP already started); SIGHUP reloads."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: spawn(self.reload(), "reload"))
        watchdog = spawn(self._watch(), "watchdog")
        try:
            try:
                self._schedule()
            except (OverflowError, ValueError) as exc:
                raise ConfigError([Problem(str(self.config_path or "config"),
                                           f"the probes cannot be scheduled: {exc}")]) from exc
            self.scheduler.start()
            await self._stop.wait()
        finally:
            log.info("shutting down")
            watchdog.cancel()
            self.service.shutting_down()  # the scheduler's shutdown cancels the cycles it runs: quietly
            if self.scheduler.running:
                self.scheduler.shutdown(wait=False)
            if self._app_runner is not None:
                await self._app_runner.cleanup()
            await self.service.close()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
