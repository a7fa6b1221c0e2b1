"""HTTP(S) checks against real aiohttp servers on loopback, with a CA made here: statuses, bodies, redirects,
timeouts, certificates (valid, expired, wrong name, expiring in 5 days), credentials, and 2,000 targets."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from monitor.demo.tls import DAY, TestCA
from probes.base import FAILURES, Target
from probes.credentials import HttpAuth
from probes.http import PROBE, HttpSettings
from tests.helpers import free_port

TOKEN = "t0ken-Bq73-never-logged"
PASSWORD = "pa55-Kd02-never-logged"


def app() -> web.Application:
    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="<h1>election terminal ready</h1>", content_type="text/html")

    async def error(_: web.Request) -> web.Response:
        return web.Response(status=500, text="internal error")

    async def proxy(_: web.Request) -> web.Response:
        return web.Response(text="<h1>Proxy error: upstream unavailable</h1>", content_type="text/html")

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(text="too late")

    async def moved(_: web.Request) -> web.Response:
        raise web.HTTPFound("/ok")

    async def loop(_: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def private(request: web.Request) -> web.Response:
        got = request.headers.get("Authorization", "")
        wanted = (f"Bearer {TOKEN}", "Basic " + base64.b64encode(f"monitor:{PASSWORD}".encode()).decode())
        if got not in wanted:  # a careless server that echoes what it was sent
            return web.Response(status=401, text=f"denied: {got}")
        return web.Response(text="private ready")

    a = web.Application()
    a.add_routes([web.get("/ok", ok), web.get("/error", error), web.get("/proxy", proxy), web.get("/slow", slow),
                  web.get("/moved", moved), web.get("/loop", loop), web.get("/private", private)])
    return a


@dataclass
class Lab:
    http: str  # http://127.41.0.1:PORT
    ca_file: Path
    https: dict[str, str]  # valid, expired, wrong_name, expiring -> https://127.41.0.N:PORT
    not_after: dict[str, float]


async def serve(host: str, port: int, context: ssl.SSLContext | None = None) -> web.AppRunner:
    runner = web.AppRunner(app(), access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=context).start()
    return runner


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    """A plain HTTP server and four HTTPS servers (each on its own loopback address), one CA."""
    ca = TestCA(tmp_path / "ca")
    now = dt.datetime.now(dt.UTC)
    port = free_port()
    hosts = {"valid": "127.41.0.2", "expired": "127.41.0.3", "wrong_name": "127.41.0.4", "expiring": "127.41.0.5"}
    certs = {
        "valid": ca.issue("valid", [hosts["valid"]]),
        "expired": ca.issue("expired", [hosts["expired"]], not_before=now - 60 * DAY, not_after=now - 2 * DAY),
        "wrong_name": ca.issue("wrong", ["other.example", "127.41.0.99"]),
        "expiring": ca.issue("expiring", [hosts["expiring"]], not_after=now + 5 * DAY),
    }
    runners = [await serve("127.41.0.1", port)]
    for name, host in hosts.items():
        runners.append(await serve(host, port, certs[name].server_context()))
    yield Lab(f"http://127.41.0.1:{port}", ca.ca_file, {k: f"https://{h}:{port}" for k, h in hosts.items()},
              {k: c.not_after.timestamp() for k, c in certs.items()})
    for r in runners:
        await r.cleanup()


def target(name: str, url: str, **extra: Any) -> Target:
    return Target(f"S/terminal/{name}", "S", "127.0.0.1", extra={"url": url, **extra})


async def check(*targets: Target, timeout: float = 3.0, within: float = 20.0,
                settings: HttpSettings | None = None) -> dict[str, Any]:
    s = settings or HttpSettings(timeout_seconds=timeout, interval_seconds=60)
    observations = await PROBE.run(list(targets), s, time.monotonic() + within)
    assert [o.key for o in observations] == [t.key for t in targets]
    for o in observations:
        assert o.kind == "http" and (o.ok or o.failure in FAILURES), o
    return {o.key.rsplit("/", 1)[1]: o for o in observations}


async def test_status_body_and_redirects(lab: Lab) -> None:
    """200 with the body expected; a 500; a proxy's page where the terminal's should be; redirects."""
    r = await check(
        target("ok", lab.http + "/ok", expect_body="terminal ready"),
        target("error", lab.http + "/error"),
        target("error_expected", lab.http + "/error", expect_status=(500,)),
        target("proxy", lab.http + "/proxy", expect_body="terminal ready"),
        target("moved", lab.http + "/moved"),
        target("moved_kept", lab.http + "/moved", follow_redirects=False),
        target("moved_expected", lab.http + "/moved", follow_redirects=False, expect_status=(302,)),
        target("loop", lab.http + "/loop"),
        target("head", lab.http + "/ok", method="HEAD"),
    )
    ok = r["ok"]
    assert ok.ok and ok.values["status_code"] == 200 and ok.values["body_match"] == 1
    assert 0 < ok.values["ttfb_seconds"] <= ok.values["total_seconds"]
    assert "tls_version" not in ok.values and "tls_cert_valid" not in ok.values
    assert (r["error"].ok, r["error"].failure, r["error"].values["status_code"]) == (False, "status_mismatch", 500)
    assert r["error"].reason == "status 500, expected 2xx"
    assert r["error_expected"].ok
    assert (r["proxy"].failure, r["proxy"].values["body_match"], r["proxy"].values["status_code"]) == (
        "body_mismatch", 0, 200)
    assert r["moved"].ok and r["moved"].values["redirects"] == 1 and r["moved"].values["status_code"] == 200
    assert (r["moved_kept"].failure, r["moved_kept"].values["status_code"]) == ("status_mismatch", 302)
    assert r["moved_expected"].ok
    assert (r["loop"].failure, r["loop"].reason) == ("bad_response", "more than 10 redirects")
    assert r["head"].ok
    assert PROBE.requests_sent(list(r.values())) == 9 + 1  # and the one redirect followed (the loop counts none)


async def test_refused_dns_and_slow(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """A closed port, a name that does not resolve (no query leaves the machine) and a server that never
    answers, each its own bounded word; the slow one costs its timeout, not the server's delay."""

    class NoNames(aiohttp.ThreadedResolver):
        async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> Any:
            raise OSError(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(aiohttp.connector, "DefaultResolver", NoNames)
    start = time.monotonic()
    r = await check(target("closed", f"http://127.41.0.1:{free_port()}/"),
                    target("dns", "http://terminal.invalid/"),
                    target("slow", lab.http + "/slow"), timeout=1.0)
    assert (r["closed"].failure, r["closed"].reason) == ("refused", "connection refused")
    assert (r["dns"].failure, r["dns"].reason) == ("dns", "cannot resolve terminal.invalid")
    assert (r["slow"].failure, r["slow"].reason) == ("timeout", "no headers within 1s")
    assert time.monotonic() - start < 15, "a slow server costs the check's timeout (generous bound)"


async def test_the_deadline_bounds_the_cycle(lab: Lab) -> None:
    """The caller's deadline wins over a longer timeout; checks that cannot start are skipped."""
    targets = [target(f"s{i}", lab.http + "/slow") for i in range(4)]
    settings = HttpSettings(timeout_seconds=20, interval_seconds=60, concurrency=2)
    start = time.monotonic()
    r = await check(*targets, settings=settings, within=1.0)
    assert time.monotonic() - start < 15
    assert {o.failure for o in r.values()} <= {"timeout", "skipped"} and "timeout" in {o.failure for o in r.values()}


async def test_certificates(lab: Lab) -> None:
    """Valid, expired, wrong name and expiring in 5 days, verified against the test CA; and against the system's."""
    ca = str(lab.ca_file)
    r = await check(*(target(name, url + "/ok", ca_file=ca) for name, url in lab.https.items()),
                    target("system_cas", lab.https["valid"] + "/ok"))
    valid = r["valid"]
    assert valid.ok and valid.values["tls_cert_valid"] == 1 and valid.values["tls_version"] in (1.2, 1.3)
    assert valid.values["tls_not_after_timestamp_seconds"] == pytest.approx(lab.not_after["valid"], abs=1)
    expired = r["expired"]
    assert (expired.ok, expired.failure, expired.values["tls_cert_valid"]) == (False, "tls_expired", 0)
    assert expired.values["tls_not_after_timestamp_seconds"] == pytest.approx(lab.not_after["expired"], abs=1)
    assert expired.reason.startswith("certificate expired 20")
    wrong = r["wrong_name"]
    assert (wrong.failure, wrong.values["tls_cert_valid"]) == ("tls_invalid", 0)
    assert "mismatch" in wrong.reason or "match" in wrong.reason
    assert "tls_not_after_timestamp_seconds" in wrong.values, "a misnamed certificate still reports its expiry"
    expiring = r["expiring"]  # valid today: the probe says so; readiness judges the date against the deadline
    assert expiring.ok and expiring.values["tls_not_after_timestamp_seconds"] == pytest.approx(
        lab.not_after["expiring"], abs=1)
    assert (r["system_cas"].failure, r["system_cas"].values["tls_cert_valid"]) == ("tls_invalid", 0)


async def test_tls_verify_off_still_checks_the_date(lab: Lab) -> None:
    """tls_verify: false accepts an unknown CA and a wrong name, never an expired certificate."""
    r = await check(target("wrong_name", lab.https["wrong_name"] + "/ok", tls_verify=False),
                    target("expired", lab.https["expired"] + "/ok", tls_verify=False))
    assert r["wrong_name"].ok and "tls_cert_valid" not in r["wrong_name"].values
    assert r["wrong_name"].values["tls_not_after_timestamp_seconds"] > time.time()
    assert (r["expired"].failure, r["expired"].values["tls_cert_valid"]) == ("tls_expired", 0)


async def test_a_missing_ca_file_is_a_value(lab: Lab, tmp_path: Path) -> None:
    r = await check(target("x", lab.https["valid"] + "/ok", ca_file=str(tmp_path / "nope.pem")))
    assert (r["x"].failure, r["x"].reason.startswith("cannot load ca_file")) == ("error", True)


async def test_credentials_from_the_environment(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bearer and basic credentials come from the environment; no reason ever carries them."""
    monkeypatch.setenv("T_HTTP_TOKEN", TOKEN)
    monkeypatch.setenv("T_HTTP_PASSWORD", PASSWORD)
    auths = {"bearer": HttpAuth(scheme="bearer", token_env="T_HTTP_TOKEN"),
             "basic": HttpAuth(scheme="basic", user="monitor", password_env="T_HTTP_PASSWORD"),
             "wrong": HttpAuth.model_validate({"scheme": "bearer", "token": "wr0ng-" + TOKEN}),
             "unset": HttpAuth(scheme="bearer", token_env="T_HTTP_UNSET")}
    settings = HttpSettings(timeout_seconds=3, interval_seconds=60).with_credentials({**auths, "snmp": object()})
    assert set(settings.auths) == set(auths), "only the HTTP auths ride on the HTTP settings"
    assert TOKEN not in repr(settings) and "wr0ng" not in repr(settings)
    url = lab.http + "/private"
    r = await check(target("bearer", url, auth="bearer"), target("basic", url, auth="basic"),
                    target("wrong", url, auth="wrong", expect_body="ready"), target("unset", url, auth="unset"),
                    target("undeclared", url, auth="nope"), target("none", url), settings=settings)
    assert r["bearer"].ok and r["basic"].ok
    assert (r["wrong"].failure, r["none"].failure) == ("status_mismatch", "status_mismatch")
    assert (r["unset"].failure, r["unset"].reason) == (
        "auth_failed", "auth unset: environment variable T_HTTP_UNSET is not set")
    assert (r["undeclared"].failure, r["undeclared"].reason) == (
        "auth_failed", "auth 'nope' is not declared under 'auths'")
    for o in r.values():
        assert TOKEN not in repr(o) and PASSWORD not in repr(o)
    with pytest.raises(ValueError, match="top-level 'auths:'"):
        HttpSettings(auths={"x": {"scheme": "bearer", "token": "y"}})


@pytest.fixture
def many_servers() -> Iterator[list[str]]:
    """Eight plain HTTP servers in a process of their own, so the probe's loop is measured alone."""
    import subprocess
    import sys

    port = free_port()
    hosts = [f"127.42.0.{i}" for i in range(1, 9)]
    code = (
        "import sys\nfrom aiohttp import web\n"
        "async def ok(r): return web.Response(text='ready')\n"
        "async def main():\n"
        "    a = web.Application(); a.add_routes([web.get('/{n}', ok)])\n"
        "    r = web.AppRunner(a, access_log=None); await r.setup()\n"
        f"    for h in {hosts!r}: await web.TCPSite(r, h, {port}, backlog=1024).start()\n"
        "    print('up', flush=True)\n"
        "    import asyncio; await asyncio.Event().wait()\n"
        "import asyncio; asyncio.run(main())\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        yield [f"http://{h}:{port}" for h in hosts]
    finally:
        proc.terminate()
        proc.wait(10)


async def test_two_thousand_targets_in_one_cycle(many_servers: list[str]) -> None:
    """2,000 checks at concurrency 200 all finish inside the interval (generous: a loaded 2-core machine)."""
    settings = HttpSettings(interval_seconds=60, timeout_seconds=10, concurrency=200)
    targets = [target(f"t{i}", f"{many_servers[i % 8]}/{i}", expect_body="ready") for i in range(2000)]
    start = time.monotonic()
    observations = await PROBE.run(targets, settings, start + 0.9 * settings.interval_seconds)
    took = time.monotonic() - start
    failed = [o for o in observations if not o.ok]
    assert not failed, failed[:3]
    assert len(observations) == 2000 and took < settings.interval_seconds
