"""``readiness report build``, and the committee's scheduled reports a running service writes and mails."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.cli.exits import EXIT_OK
from monitor.errors import ReadinessError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from monitor.config.loader import Config
    from monitor.config.reports import ReportSpec
    from monitor.runtime.scheduler import ConfigJobs
    from monitor.store.events import EventStore

log = logging.getLogger("readiness.reports")


def produce(config: Config, data_dir: str | Path, spec: ReportSpec | None, out_dir: Path,
            store: EventStore | None, *, mail: bool = True, now: float | None = None) -> tuple[str, list[Path]]:
    """Build, write, record (when ``store`` is the writer) and mail (when it has recipients) one report."""
    from monitor.audit import committee

    report = committee.build(config, data_dir, spec, now=now)
    formats = spec.formats if spec else ("html", "pdf", "xlsx")
    digest = committee.write(report, out_dir, formats)
    if store is not None:
        committee.record(store, report, digest, out_dir)
        if not store.flush(10):
            log.error("report %s written to %s but not yet on the record: %s", report.name, out_dir,
                      store.status.error)
    files = [out_dir / name for name in report.files]
    if mail and spec is not None and spec.recipients:
        from monitor.audit.mail import send

        assert config.smtp is not None  # the loader refuses recipients without smtp
        start = datetime.fromtimestamp(report.period.start, report.period.zone)
        end = datetime.fromtimestamp(report.period.end, report.period.zone)
        from monitor.core.calendar import format_jalali

        subject = f"{report.title} — گزارش کمیته / committee report {format_jalali(end, with_time=False)}"
        body = (f"گزارش دوره‌ای آمادگی / Readiness committee report: {report.name}\n"
                f"دوره / period: {format_jalali(start)} .. {format_jalali(end)} "
                f"({start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} {config.programme.timezone})\n"
                f"manifest sha256: {digest}\n")
        send(config.smtp, spec.recipients, subject, body, files)
        log.info("report %s mailed to %s", report.name, ", ".join(spec.recipients))
    return digest, files


def report_jobs(data_dir: str, store: EventStore) -> ConfigJobs:
    """Return what the runner asks of a config: one cron job per report under ``reports:`` (programme timezone).

    The runner builds them before it switches to a config and replaces them on every reload, all or nothing
    with the probe jobs (monitor/runtime/scheduler.py): a reload that changes ``reports:`` reschedules them.
    """
    import asyncio

    from apscheduler.triggers.cron import CronTrigger

    from monitor.runtime.tasks import count_failure

    def jobs(config: Config) -> dict[str, tuple[Any, Callable[[], Awaitable[None]]]]:
        out: dict[str, tuple[Any, Callable[[], Awaitable[None]]]] = {}
        for spec in config.reports:
            async def run(spec: ReportSpec = spec) -> None:
                stamp = datetime.now().astimezone().strftime("%Y%m%dT%H%M%S")
                out_dir = Path(data_dir) / "reports" / spec.name / stamp
                try:
                    digest, _ = await asyncio.to_thread(produce, config, data_dir, spec, out_dir, store)
                except Exception:  # not built, or not mailed: logged with its cause and counted, never silent
                    log.exception("report %s failed", spec.name)
                    count_failure("report")
                    return
                log.info("report %s written to %s (manifest %s)", spec.name, out_dir, digest)

            trigger = CronTrigger.from_crontab(spec.schedule, timezone=config.programme.timezone)
            out[f"report:{spec.name}"] = (trigger, run)
        return out

    return jobs


def schedule_reports(config: Config, data_dir: str, store: EventStore) -> AsyncIOScheduler | None:
    """Start a scheduler of its own with the config's report jobs; None if there are none (tests, tools).

    The service does not use it: its runner holds the report jobs beside the probes (``report_jobs``).
    """
    if not config.reports:
        return None
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    scheduler = AsyncIOScheduler(timezone=config.programme.timezone)
    for job_id, (trigger, run) in report_jobs(data_dir, store)(config).items():
        scheduler.add_job(run, trigger, id=job_id, max_instances=1, coalesce=True, misfire_grace_time=3600)
    scheduler.start()
    return scheduler


def cmd_build(args: argparse.Namespace) -> int:
    from monitor.config.loader import load_config
    from monitor.errors import StoreError
    from monitor.store.events import EventStore

    config = load_config(args.config)
    data_dir = args.data_dir or config.data_dir
    spec = None
    if args.name:
        spec = next((r for r in config.reports if r.name == args.name), None)
        if spec is None:
            known = ", ".join(r.name for r in config.reports) or "none"
            raise ReadinessError(f"no report {args.name!r} in the config (reports: {known})")
    store: Any = None
    if args.record:
        store = EventStore(data_dir)
        try:
            store.open()
        except StoreError as exc:
            print(f"note: not recorded in the store ({exc}); a running service records its scheduled reports",
                  file=sys.stderr)
            store = None
    try:
        digest, files = produce(config, data_dir, spec, Path(args.output), store, mail=args.mail)
    finally:
        if store is not None:
            store.close()
    for f in files:
        print(f)
    print(f"manifest sha256 {digest}" + (" (recorded in the store)" if store is not None else ""))
    return EXIT_OK


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``report build``."""
    p = sub.add_parser("report", help="the committee's regular report")
    rsub = p.add_subparsers(dest="report_command", required=True)
    q = rsub.add_parser("build", help="build a report now (HTML, PDF, XLSX) for the period since the previous one")
    q.add_argument("--config", required=True)
    q.add_argument("--name", help="a report of the config's reports: (its formats, its period; default: adhoc)")
    q.add_argument("--data-dir", help="the event store (default: data_dir from the config)")
    q.add_argument("-o", "--output", required=True, metavar="DIR")
    q.add_argument("--record", action="store_true",
                   help="record the manifest hash in the store (needs its writer lock: the service stopped)")
    q.add_argument("--mail", action="store_true", help="mail it to the report's recipients")
    q.set_defaults(func=cmd_build)
