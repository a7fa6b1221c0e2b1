"""``readiness check|run|demo|status|inventory import``: the service and its inputs."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import sys
from pathlib import Path
from typing import Any

from monitor.cli import webclient
from monitor.cli.exits import EXIT_OK
from monitor.errors import Problem

log = logging.getLogger("readiness")


def cmd_check(args: argparse.Namespace) -> int:
    from monitor.cli.report import config_summary
    from monitor.config.hostcheck import check_host
    from monitor.config.loader import load_config
    from monitor.errors import ConfigError

    warnings: list[Problem] = []
    config = load_config(args.config, warnings)
    errors, host_warnings = check_host(config)  # what the config asks of this host (sources, backup paths)
    if errors:
        raise ConfigError(errors)
    if config.listen.web_config:
        from monitor.config.webconfig import load_web_config
        load_web_config(_web_config_path(args.config, config.listen.web_config))
    for w in [*warnings, *host_warnings]:
        print(f"warning: {w}", file=sys.stderr)
    print(config_summary(config))
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from monitor.config.hostcheck import check_host
    from monitor.config.loader import load_config
    from monitor.errors import ConfigError
    from monitor.runtime.heap import release_large_buffers

    release_large_buffers()  # before the inventory's text is read: see monitor/runtime/heap.py

    select = None
    if args.shard:
        from monitor.config.shard import select_shard
        select = functools.partial(select_shard, text=args.shard)
    config = load_config(args.config, select=select)  # a shard's probes are sized for its own sites
    errors, host_warnings = check_host(config)
    if errors:
        raise ConfigError(errors)
    for w in host_warnings:
        log.warning("%s", w)
    web = None if args.once else listener_access(config, args)
    return asyncio.run(_run(config, args, web))


def _web_config_path(config_path: str, value: str) -> Path:
    """listen.web_config is read from the config file's directory when relative."""
    return Path(config_path).parent / value


def listener_access(config, args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """Load the web config (--web.config.file, else listen.web_config) and refuse an unauthenticated
    non-loopback listener unless --web.insecure: both before anything is bound (ConfigError, exit 2)."""
    from monitor.config.webconfig import listen_refusal, load_web_config
    from monitor.errors import ConfigError

    path = args.web_config_file or (
        config.listen.web_config and _web_config_path(args.config, config.listen.web_config))
    web = load_web_config(path) if path else None
    host = args.listen_host or config.listen.host
    why = listen_refusal(host, web, args.web_insecure)
    if why:
        raise ConfigError([Problem(str(args.config), why, field="listen.host")])
    if args.web_insecure and web is None:
        log.warning("serving %s without authentication (--web.insecure)", host)
    return web


def store_readers(service, data_dir) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Return what the app reads from the event store in ``data_dir``: availability over a period (the audit's
    figures) and the board's history (the ready share over time, a site's timeline). The web layer imports
    neither the audit nor the store (docs/architecture.md): this command builds them and hands them in."""
    from monitor.audit.availability import StoreAvailability
    from monitor.runtime.readback import StoreHistory

    return {"availability": StoreAvailability(lambda: service.config, data_dir),
            "history": StoreHistory(lambda: service.config, data_dir)}


def web_config_reload(args: argparse.Namespace, host: str, access, started):  # type: ignore[no-untyped-def]
    """Return the reload step for the web config (SIGHUP, POST /-/reload): read it again from the same place
    (--web.config.file, else the new config's listen.web_config) and check it as at start-up, refusing the whole
    reload on any problem; once the service has switched, put its users and admins in force and load its
    certificate and key again (a renewed certificate is served from the next connection on). Turning TLS on or
    off, or changing its other settings, takes effect at restart (the listener is bound), and says so."""
    from monitor.config.webconfig import listen_refusal, load_web_config
    from monitor.errors import ConfigError

    serving = started.ssl_context if started is not None else None  # the listener's, bound at start
    first_tls = started.config.tls_server_config if started is not None else None

    def part(config):  # type: ignore[no-untyped-def]
        path = args.web_config_file or (
            config.listen.web_config and _web_config_path(args.config, config.listen.web_config))
        fresh = load_web_config(path) if path else None
        why = listen_refusal(host, fresh, args.web_insecure)
        if why:
            raise ConfigError([Problem(str(path or args.config), why, field="basic_auth_users")])
        tls = fresh.config.tls_server_config if fresh is not None else None

        def commit() -> None:
            access.replace(fresh.users if fresh else {}, fresh.admins if fresh else frozenset())
            if serving is not None and tls is not None and fresh is not None:
                serving.load_cert_chain(fresh.path.parent / tls.cert_file, fresh.path.parent / tls.key_file)
                keep = {"cert_file", "key_file"}
                if first_tls is not None and tls.model_dump(exclude=keep) != first_tls.model_dump(exclude=keep):
                    log.warning("web config %s: TLS versions and client certificate settings take effect at "
                                "restart; its certificate and key are served from now on", path)
            elif (serving is not None) != (tls is not None):
                log.warning("web config %s: turning TLS %s takes effect at restart", path or "(none)",
                            "on" if tls is not None else "off")
            log.info("web config %s read again: %d users, %d admins", path or "(none)",
                     len(fresh.users) if fresh else 0, len(fresh.admins) if fresh else 0)
        return commit
    return part


async def _run(config, args: argparse.Namespace, web=None) -> int:  # type: ignore[no-untyped-def]
    from monitor.runtime.heap import settle
    from monitor.runtime.recorder import attach_store
    from monitor.runtime.scheduler import Runner
    from monitor.runtime.service import Service
    from monitor.web.app import make_app

    service = Service(config)
    if args.once:
        try:
            snap = await service.run_once()
        finally:
            await service.close()
        _report(snap, args.json)
        if service.once_note:
            print(f"note: {service.once_note}", file=sys.stderr)
        return EXIT_OK
    store = None if args.no_store else attach_store(service, args.data_dir or config.data_dir)
    await service.prepare()
    from monitor.web.access import Access

    # Always in place, so a reload can add users to a service that started without any.
    access = Access(web.users, web.admins) if web is not None else Access({})
    readers = store_readers(service, store.data_dir) if store is not None else {}
    jobs = None
    if store is not None:  # reports cover the store's history: without one there are none
        from monitor.cli.reports import report_jobs
        jobs = report_jobs(str(store.data_dir), store)
    runner = Runner(service, args.config, make_app=functools.partial(make_app, desk=service.desk, access=access,
                                                                     **readers), config_jobs=jobs)
    host = args.listen_host or config.listen.host
    port = config.listen.port if args.listen_port is None else args.listen_port
    runner.also_reload.append(web_config_reload(args, host, access, web))
    settle()  # the config and what it built live until a reload: out of the garbage collector's sight
    try:
        await runner.run(host, port, web.ssl_context if web is not None else None)
    finally:
        if store is not None:
            service.timeline.save(Path(store.data_dir) / "timeline.json")
            store.close()
    return EXIT_OK


def _report(snap, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    if as_json:
        from monitor.web.api import sites_json
        print(json.dumps(sites_json(snap), ensure_ascii=False, indent=1))
    else:
        from monitor.cli.report import print_table
        print_table(snap)


def cmd_demo(args: argparse.Namespace) -> int:
    from monitor.cli.reports import report_jobs
    from monitor.demo.run import run_demo
    from monitor.errors import ConfigError

    smtp: dict[str, object] = {}
    if args.smtp:
        host, sep, port = args.smtp.rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ConfigError([Problem("--smtp", f"{args.smtp!r} is not HOST:PORT, e.g. 127.0.0.1:2525")])
        smtp.update(host=host.strip("[]"), port=int(port))
    if args.smtp_ca_file:
        smtp["ca_file"] = str(Path(args.smtp_ca_file).resolve())
    return run_demo(once=args.once, as_json=args.json, port=args.port, report=_report, data_dir=args.data_dir,
                    smtp=smtp, config_jobs=report_jobs, readers=store_readers)


def cmd_inventory_import(args: argparse.Namespace) -> int:
    from monitor.config.importer import import_csv

    warnings: list[Problem] = []
    text = import_csv(Path(args.csv), warnings)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from rich.console import Console

    from monitor.cli.status import render_status, status_from_url
    from monitor.cli.webclient import headers_of

    headers = headers_of(args) or None
    doc = status_from_url(args.url.rstrip("/") + "/api/v1/sites", headers=headers, ca_file=args.web_ca_file)
    render_status(doc, Console(), worst=args.worst)
    return EXIT_OK


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the service commands: check, run, demo, status, inventory import."""
    p = sub.add_parser("check", help="validate a config and its inventories")
    p.add_argument("config")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("run", help="run the service (or one cycle with --once)")
    p.add_argument("config")
    p.add_argument("--once", action="store_true", help="probe once, print the report, exit")
    p.add_argument("--json", action="store_true", help="with --once: JSON as /api/v1/sites")
    p.add_argument("--listen-host", help="override listen.host")
    p.add_argument("--listen-port", type=int, help="override listen.port (0: any free port)")
    p.add_argument("--shard", help="K/N: monitor only shard K of N (rendezvous hashing on site id)")
    p.add_argument("--data-dir", help="event store directory (default: data_dir from the config, ./data)")
    p.add_argument("--no-store", action="store_true", help="do not record history")
    p.add_argument("--web.config.file", dest="web_config_file", metavar="FILE",
                   help="exporter-toolkit web config: tls_server_config, basic_auth_users (bcrypt), admins "
                        "(default: listen.web_config)")
    p.add_argument("--web.insecure", dest="web_insecure", action="store_true",
                   help="allow a non-loopback listen address without authentication")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="bring up the simulated Ilam province and run the service on it")
    p.add_argument("--once", action="store_true", help="one cycle, print the report, tear down")
    p.add_argument("--json", action="store_true")
    p.add_argument("--port", type=int, default=9108, help="HTTP port (default 9108)")
    p.add_argument("--data-dir", help="keep the demo's event store here (default: a temporary directory)")
    p.add_argument("--smtp", metavar="HOST:PORT",
                   help="the mail server of the demo's weekly report (STARTTLS and a login; default 127.0.0.1:2525; "
                        "the password from READINESS_DEMO_SMTP_PASSWORD)")
    p.add_argument("--smtp-ca-file", metavar="FILE", help="verify that server's certificate against this CA bundle")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("status", help="province, county and urban/rural summary and the worst sites")
    p.add_argument("--url", default="http://127.0.0.1:9108", help="a running readiness service")
    p.add_argument("--worst", type=int, default=20, help="how many of the worst sites to list")
    webclient.add_arguments(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("inventory", help="inventory tools")
    isub = p.add_subparsers(dest="inventory_command", required=True)
    q = isub.add_parser("import", help="convert a spreadsheet CSV export to inventory YAML")
    q.add_argument("csv")
    q.add_argument("-o", "--output")
    q.set_defaults(func=cmd_inventory_import)
