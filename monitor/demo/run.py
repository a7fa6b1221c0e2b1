"""`readiness demo`: bring up the simulated Ilam province on this machine and run the real service on it.

Terminals are real TCP listeners on 127.13.x.y; each county's first site also has a web terminal served
over HTTPS (aiohttp, a throw-away CA made at start-up; one answers 500, one's certificate expires before
the deadline). Link faults are real packet drops: an nftables table
(root only) drops echo requests to chosen 127.x addresses, all of them or a random share. Every
``TICK_SECONDS`` the faults move, so the picture changes over time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monitor.config.loader import load_config
from monitor.demo import province as dp
from monitor.errors import ReadinessError

log = logging.getLogger(__name__)
TICK_SECONDS = 60.0
NFT_TABLE = "readiness_demo"


class Terminals:
    """The demo's polling-station terminals: one TCP listener each, closed and reopened by the faults."""

    def __init__(self, addresses: list[str], port: int = dp.TERMINAL_PORT) -> None:
        self.addresses = addresses
        self.port = port
        self.servers: dict[str, asyncio.Server] = {}

    async def set_down(self, down: set[str]) -> None:
        """Open every listener except those in ``down``."""
        for address in self.addresses:
            if address in down and address in self.servers:
                server = self.servers.pop(address)
                server.close()
            elif address not in down and address not in self.servers:
                try:
                    self.servers[address] = await asyncio.start_server(_answer, address, self.port)
                except OSError as exc:
                    raise ReadinessError(
                        f"cannot open the demo terminal {address}:{self.port}: {exc.strerror} "
                        "(is another `readiness demo` running?)"
                    ) from None

    async def close(self) -> None:
        for server in self.servers.values():
            server.close()
        self.servers.clear()


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


class WebTerminals:
    """The demo's web terminals: one HTTPS server each, with a certificate from a CA made at start-up.

    One answers 500 (``HTTPS_ERROR_SITE``); one's certificate expires before the deadline
    (``HTTPS_SHORT_CERT_SITE``); the others are healthy for a year. Faults close them like the TCP terminals.
    """

    def __init__(self, workdir: Path, sites: list[dict[str, Any]], deadline: float, now: float) -> None:
        from monitor.demo.tls import TestCA

        self.ca = TestCA(workdir / "tls", "readiness demo CA", ca_file=workdir / dp.CA_FILE)
        self.terminals = dp.https_terminals(sites)
        self.deadline, self.now = deadline, now
        self.runners: dict[str, Any] = {}

    async def _start(self, site: str, address: str) -> Any:
        import datetime as dt

        from aiohttp import web

        not_after = None
        if site == dp.HTTPS_SHORT_CERT_SITE:  # before the deadline, outside today's margin while it can be
            not_after = dt.datetime.fromtimestamp(max(self.deadline - 2 * 86400, self.now + 16 * 86400), dt.UTC)
        issued = self.ca.issue(site, [address], not_after=not_after)
        failing = site == dp.HTTPS_ERROR_SITE

        async def health(_: web.Request) -> web.Response:
            if failing:
                return web.Response(status=500, text="internal server error: ballot database unavailable")
            return web.Response(text=f"{site} web terminal ready")

        app = web.Application()
        app.add_routes([web.get("/health", health)])
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        try:
            await web.TCPSite(runner, address, dp.HTTPS_PORT, ssl_context=issued.server_context()).start()
        except OSError as exc:
            await runner.cleanup()
            raise ReadinessError(f"cannot open the demo web terminal {address}:{dp.HTTPS_PORT}: {exc.strerror}") \
                from None
        return runner

    async def set_down(self, down: set[str]) -> None:
        """Serve every web terminal except those in ``down``."""
        for site, address in self.terminals:
            if address in down and address in self.runners:
                await self.runners.pop(address).cleanup()
            elif address not in down and address not in self.runners:
                self.runners[address] = await self._start(site, address)

    async def close(self) -> None:
        for runner in self.runners.values():
            await runner.cleanup()
        self.runners.clear()


class LinkFaults:
    """Real loss on loopback: nftables drops echo requests to the addresses in two sets."""

    def __init__(self) -> None:
        self.nft = shutil.which("nft") or shutil.which("nft", path="/usr/sbin:/sbin")
        self.enabled = os.geteuid() == 0 and self.nft is not None
        if not self.enabled:
            log.warning("demo link faults need root and nftables: every link will answer")

    def _run(self, script: str) -> None:
        assert self.nft is not None
        run = subprocess.run([self.nft, "-f", "-"], input=script, text=True, check=False, capture_output=True)
        if run.returncode != 0:
            raise ReadinessError(f"nft failed ({run.returncode}): {run.stderr.strip()}")

    def start(self) -> None:
        if not self.enabled:
            return
        self.stop()
        self._run(f"""table ip {NFT_TABLE} {{
  set down {{ type ipv4_addr; }}
  set lossy {{ type ipv4_addr; }}
  chain output {{
    type filter hook output priority 0; policy accept;
    ip daddr @down icmp type echo-request drop
    ip daddr @lossy icmp type echo-request numgen random mod 100 < 25 drop
  }}
}}""")

    def apply(self, down: set[str], lossy: set[str]) -> None:
        if not self.enabled:
            return
        lines = [f"flush set ip {NFT_TABLE} down", f"flush set ip {NFT_TABLE} lossy"]
        if down:
            lines.append(f"add element ip {NFT_TABLE} down {{ {', '.join(sorted(down))} }}")
        if lossy:
            lines.append(f"add element ip {NFT_TABLE} lossy {{ {', '.join(sorted(lossy))} }}")
        self._run("\n".join(lines))

    def stop(self) -> None:
        if self.enabled:
            subprocess.run([self.nft or "nft", "delete", "table", "ip", NFT_TABLE], capture_output=True)


def faults(sites: list[dict[str, Any]], tick: int) -> tuple[set[str], set[str], set[str]]:
    """Return (link addresses down, lossy link addresses, terminal addresses down) for ``tick``."""
    rnd = random.Random(tick)
    base = random.Random(7)  # faults that last the whole demo
    down: set[str] = set()
    lossy: set[str] = set()
    terms: set[str] = set()
    polling = [s for s in sites if s.get("kind", "polling") == "polling"]
    for site in polling:
        links = {link["role"]: link["address"] for link in site["links"]}
        if "backup" in links and base.random() < 0.08:
            down.add(links["backup"])  # backup never delivered
        if base.random() < 0.05:
            terms.update(t["address"] for t in site["terminals"])  # terminals not installed yet
        if rnd.random() < 0.04:
            down.add(links["primary"])
        elif rnd.random() < 0.04:
            lossy.add(links["primary"])
        for t in site["terminals"]:
            if rnd.random() < 0.03:
                terms.add(t["address"])
    # One aggregation node falls over now and then: the sites behind it go dark with it.
    nodes = [s for s in sites if s.get("kind") == "node"]
    if tick % 3 != 2:
        node = nodes[(tick // 3) % len(nodes)] if tick else nodes[3]
        down.update(link["address"] for link in node["links"])
        for site in polling:
            if site.get("upstream") == node["id"]:
                down.update(link["address"] for link in site["links"])
                terms.update(t["address"] for t in site["terminals"])
    return down, lossy, terms


def simulated_past(sites: list[dict[str, Any]], now: float, days: int = 14
                   ) -> list[tuple[float, dict[str, tuple[str, tuple[str, ...]]]]]:
    """Return a simulated past fortnight, hour by hour: each polling place's (state, reasons) — a climb of the ready
    share from about a third to about 60%, the order in which sites got ready fixed, a little noise each hour."""
    rnd = random.Random(1405)
    polling = [s for s in sites if s.get("kind", "polling") == "polling"]
    order = sorted(polling, key=lambda s: rnd.random())  # the order in which sites got ready
    # What keeps a site from being ready while it is not: the same cause all along, as in the field.
    causes: dict[str, tuple[str, tuple[str, ...]]] = {}
    for s in polling:
        causes[s["id"]] = rnd.choice([("degraded", ("backup.down",)), ("not_ready", ("primary.down",)),
                                      ("not_ready", (f"terminals 0/{len(s['terminals'])}",))])
    hours = days * 24
    out: list[tuple[float, dict[str, tuple[str, tuple[str, ...]]]]] = []
    nothing: tuple[str, ...] = ()
    for h in range(hours, 0, -1):
        share = 0.62 - 0.3 * h / hours + rnd.uniform(-0.02, 0.02)
        ready = {s["id"] for s in order[: int(share * len(order))]}
        out.append((now - h * 3600.0, {s["id"]: ("ready", nothing) if s["id"] in ready else causes[s["id"]]
                                       for s in polling}))
    return out


def seed_history(service: Any, sites: list[dict[str, Any]], now: float, store: Any = None, days: int = 14) -> None:
    """Give the demo a simulated past fortnight, so its deadline forecast has a trend to follow from the first
    minute and its board a burn-up and site timelines: into the forecast's memory, and (``store``, a fresh demo
    store) as the site and link transitions the recorder would have written, with the config in force."""
    from monitor.store.events import Transition

    past = simulated_past(sites, now, days)
    county = {s["id"]: (s["county"], s["area"]) for s in sites}
    roles = {s["id"]: [link["role"] for link in s["links"]] for s in sites}
    for at, states in past:
        service.timeline.shares.record(at, [(*county[sid], state) for sid, (state, _) in states.items()])
    if store is None:
        return
    version = service.config.version
    store.append_config(past[0][0], version, service.config.record())
    last: dict[str, str] = {}
    for at, states in past:
        changes = []
        for sid, (state, reasons) in states.items():
            entity = f"site:{sid}"
            if last.get(entity) != state:
                changes.append(Transition(at, entity, last.get(entity), state, reasons, version))
                last[entity] = state
            for role in roles[sid]:
                down = reasons == (f"{role}.down",)
                link, link_state = f"link:{sid}/{role}", "down" if down else "up"
                if last.get(link) != link_state:
                    changes.append(Transition(at, link, last.get(link), link_state, reasons if down else (), version))
                    last[link] = link_state
        store.append(changes)


def _start_agent(workdir: Path, sites: list[dict[str, Any]]) -> Any:
    """Start the province's snmpsim agent; without snmpsim the demo runs on ICMP and TCP alone."""
    from monitor.demo import snmp as demo_snmp

    try:
        return demo_snmp.start(workdir, sites)
    except FileNotFoundError as exc:
        log.warning("no SNMP in this demo: %s", exc)
    except (RuntimeError, TimeoutError) as exc:
        raise ReadinessError(f"cannot start the demo's SNMP agent on 127.0.0.1:{dp.SNMP_PORT}: {exc}") from None
    return None


# Given the service and its data dir, what the app reads from the store (``make_app``'s ``availability`` and
# ``history``): built by the command (monitor/cli/service.py `store_readers`), as the demo may not import the audit.
Readers = Callable[[Any, Path], dict[str, Any]]


def run_demo(*, once: bool, as_json: bool, port: int, report: Callable[[Any, bool], None],
             data_dir: str | None = None, smtp: dict[str, Any] | None = None,
             config_jobs: Callable[[str, Any], Any] | None = None, readers: Readers | None = None) -> int:
    """Bring the province up, run the service on it (or one cycle with ``once``), tear it all down.

    ``smtp`` overrides the demo's mail server (host, port, ca_file); ``config_jobs(data_dir, store)`` gives the
    runner the config's other jobs (the committee's reports: monitor.cli.reports.report_jobs); ``readers`` what
    the app reads from the store.
    """
    return asyncio.run(_demo(once, as_json, port, report, data_dir, smtp, config_jobs, readers))


def _has_history(data_dir: Path) -> bool:
    from monitor.errors import StoreError
    from monitor.store.events import EventStore

    try:
        return EventStore(data_dir).last_at("transition") is not None
    except StoreError:
        return False


async def _demo(once: bool, as_json: bool, port: int, report: Callable[[Any, bool], None],
                data_dir: str | None, smtp: dict[str, Any] | None = None,
                config_jobs: Callable[[str, Any], Any] | None = None, readers: Readers | None = None) -> int:
    from monitor.runtime.recorder import attach_store
    from monitor.runtime.scheduler import Runner
    from monitor.runtime.service import Service
    from monitor.runtime.tasks import spawn
    from monitor.web.app import make_app

    sites = dp.province()
    workdir = Path(tempfile.mkdtemp(prefix="readiness-demo-"))
    store_dir = str(Path(data_dir).resolve()) if data_dir else str(workdir / "data")
    for name, text in dp.files(port, data_dir=store_dir, smtp=smtp).items():
        (workdir / name).write_text(text, encoding="utf-8")
    config = load_config(workdir / "demo.yaml")
    terminals = Terminals([t["address"] for s in sites for t in s.get("terminals", []) if "http" not in t])
    web = WebTerminals(workdir, sites, config.programme.deadline.timestamp(), time.time())
    links = LinkFaults()
    service = Service(config)
    agent = store = None
    try:
        agent = _start_agent(workdir, sites)
        links.start()
        tick = 0

        async def move_faults() -> None:
            down, lossy, terms = faults(sites, tick)
            links.apply(down, lossy)
            await terminals.set_down(terms)
            await web.set_down(terms)

        await move_faults()
        if once:
            snap = await service.run_once()
            report(snap, as_json)
            return 0
        # The demo records like production; its history goes with it unless --data-dir keeps it. A store with no
        # history yet gets the simulated fortnight first, so the recorder resumes from it.
        data = Path(store_dir)
        seeded = False
        if not _has_history(data):
            from monitor.store.events import EventStore

            with EventStore(data) as past:
                seed_history(service, sites, service.clock(), past)
            seeded = True
        store = attach_store(service, store_dir)
        if not seeded and not service.timeline.shares.keys():
            seed_history(service, sites, service.clock())
        await service.prepare()
        served = readers(service, store.data_dir) if readers is not None else {}
        runner = Runner(service, workdir / "demo.yaml", make_app=functools.partial(make_app, desk=service.desk,
                                                                                   **served),
                        config_jobs=config_jobs(store_dir, store) if config_jobs is not None else None)
        url = await runner.start_http(config.listen.host, port)
        print(f"readiness demo: {len(sites)} sites in {len(dp.COUNTIES)} counties", flush=True)
        print(f"  status page  {url}/", flush=True)
        print(f"  metrics      {url}/metrics", flush=True)
        print(f"  sites API    {url}/api/v1/sites", flush=True)
        print(f"  config       {workdir / 'demo.yaml'}", flush=True)
        print(f"  event store  {store.data_dir}", flush=True)
        print("Ctrl-C stops the demo and removes everything it set up.", flush=True)

        async def chaos() -> None:
            nonlocal tick
            while True:
                await asyncio.sleep(TICK_SECONDS)
                tick += 1
                await move_faults()

        mover = spawn(chaos(), "demo_faults")  # a mover that dies is logged and counted, never silent
        try:
            await runner.run_started()
        finally:
            mover.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await mover
        return 0
    finally:
        if store is not None:
            service.timeline.save(store.data_dir / "timeline.json")
            store.close()
        if agent is not None:
            agent.stop()
        links.stop()
        await terminals.close()
        await web.close()
        await service.close()
        shutil.rmtree(workdir, ignore_errors=True)
