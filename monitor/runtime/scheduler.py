"""The long-running loop: APScheduler jobs per probe kind, the web server, signals and reloads."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

from aiohttp import web
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.config.loader import Config, load_config
from monitor.errors import ConfigError
from monitor.runtime.service import Service
from monitor.runtime.snapshot import Snapshot
from monitor.runtime.tasks import count_failure, spawn

# What serves HTTP: given the current snapshot and a reload, the aiohttp app (monitor.web.app.make_app).
AppFactory = Callable[[Callable[[], Snapshot], Callable[[], Awaitable[tuple[bool, str]]]], web.Application]

log = logging.getLogger(__name__)


class Runner:
    """Schedules probe cycles for a Service, serves HTTP, reloads on SIGHUP or POST /-/reload."""

    def __init__(self, service: Service, config_path: str | Path | None = None, *, make_app: AppFactory) -> None:
        self.service = service
        self.make_app = make_app  # passed in: the web layer reads snapshots, the runtime never imports it
        self.config_path = config_path
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self.scheduler.add_listener(self._on_max_instances, EVENT_JOB_MAX_INSTANCES)
        self.scheduler.add_listener(self._on_job_error, EVENT_JOB_ERROR)  # APScheduler logs the traceback
        self._stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self.site: web.TCPSite | None = None
        self._app_runner: web.AppRunner | None = None
        self.url = ""

    def _on_max_instances(self, event: JobExecutionEvent) -> None:
        kind = event.job_id.removeprefix("probe:")
        log.warning("%s cycle skipped: the previous one is still running", kind)
        self.service.note_skipped(kind)

    def _on_job_error(self, event: JobExecutionEvent) -> None:
        count_failure("probe_cycle")

    def _schedule(self) -> None:
        for job in self.scheduler.get_jobs():
            job.remove()
        now = datetime.now().astimezone()
        for i, kind in enumerate(self.service.kinds()):
            s = self.service.config.probe_settings(kind)
            self.scheduler.add_job(
                self.service.probe_cycle, IntervalTrigger(seconds=s.interval_seconds, jitter=s.jitter_seconds or None),
                args=[kind], id=f"probe:{kind}", max_instances=1, coalesce=True,
                misfire_grace_time=max(1, int(s.interval_seconds / 2)),
                next_run_time=now + timedelta(milliseconds=100 * i),
            )

    async def reload(self) -> tuple[bool, str]:
        """Load the config again; switch to it only if it is valid, else keep the old one."""
        if self.config_path is None:
            return False, "no config file to reload"
        async with self._reload_lock:
            try:
                config: Config = await asyncio.to_thread(load_config, self.config_path)
            except ConfigError as exc:
                msg = f"reload rejected, keeping the running config: {len(exc.problems)} problem(s)\n{exc}"
                log.error("%s", msg)
                self.service.note_reload(False, msg)
                await self.service.evaluate_soon()
                return False, msg
            old = self.service.config
            if (config.listen.host, config.listen.port) != (old.listen.host, old.listen.port):
                log.warning("listen address changes take effect at restart")
            await self.service.switch(config)
            self.service.note_reload(True)
            self._schedule()
            await self.service.evaluate_soon()
            msg = f"reloaded: {len(config.sites)} sites, config version {config.version}"
            log.info("%s", msg)
            return True, msg

    async def start_http(self, host: str, port: int) -> str:
        """Serve the app on host:port (port 0 picks a free one); return the base URL."""
        app = self.make_app(lambda: self.service.snapshot, self.reload)
        app_runner = web.AppRunner(app, access_log=None)
        await app_runner.setup()
        self.site = web.TCPSite(app_runner, host, port)
        await self.site.start()
        server = self.site._server
        sockets = getattr(server, "sockets", None) or []
        actual = sockets[0].getsockname()[1] if sockets else port
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{actual}"
        self._app_runner = app_runner
        return self.url

    def stop(self) -> None:
        """Ask the loop to shut down."""
        self._stop.set()

    async def run(self, host: str, port: int) -> None:
        """Serve HTTP on host:port and run until SIGTERM/SIGINT; SIGHUP reloads."""
        url = await self.start_http(host, port)
        log.info("serving %s/metrics and %s/api/v1/sites", url, url)
        await self.run_started()

    async def run_started(self) -> None:
        """Schedule the probes and run until SIGTERM/SIGINT (HTTP already started); SIGHUP reloads."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: spawn(self.reload(), "reload"))
        self._schedule()
        self.scheduler.start()
        try:
            await self._stop.wait()
        finally:
            log.info("shutting down")
            self.scheduler.shutdown(wait=False)
            if self._app_runner is not None:
                await self._app_runner.cleanup()
            await self.service.close()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
