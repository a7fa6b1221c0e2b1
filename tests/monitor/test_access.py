"""Access control the exporter-toolkit way, against a real server on 127.0.0.1: a web config with bcrypt
Basic auth users and admins, TLS from a test certificate, and the refusal to listen on a non-loopback
address without authentication."""

from __future__ import annotations

import base64
import logging
import ssl
from pathlib import Path

import aiohttp
import bcrypt
import pytest
import yaml

from monitor.cli.main import main
from monitor.config.loader import load_config
from monitor.config.webconfig import is_loopback, listen_refusal, load_web_config
from monitor.demo.tls import TestCA
from monitor.errors import ConfigError
from monitor.runtime.scheduler import Runner
from monitor.runtime.service import Service
from monitor.web.access import Access
from monitor.web.app import make_app
from probes.tcp import PROBE as TCP
from tests.monitor.fixtures import site, write_config

PASSWORDS = {"viewer": "look-only-123", "chair": "may-reload-456"}


def hashed(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


def write_web_config(tmp: Path, **extra: object) -> Path:
    doc = {"basic_auth_users": {u: hashed(p) for u, p in PASSWORDS.items()}, "admins": ["chair"], **extra}
    path = tmp / "web.yml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def serve(tmp: Path, web_path: Path):  # type: ignore[no-untyped-def]
    path = write_config(tmp, [site("S1")], probes={"tcp": {"interval_seconds": 5}})
    web = load_web_config(web_path)
    service = Service(load_config(path), probes={"tcp": TCP})
    access = Access(web.users, web.admins)
    runner = Runner(service, path, make_app=lambda get, reload: make_app(get, reload, access=access))
    url = await runner.start_http("127.0.0.1", 0, web.ssl_context)
    return runner, url


@pytest.fixture
async def guarded(tmp_path: Path):  # type: ignore[no-untyped-def]
    runner, url = await serve(tmp_path, write_web_config(tmp_path))
    yield url
    await runner._app_runner.cleanup()  # type: ignore[union-attr]


async def test_anonymous_gets_401_with_basic_challenge(guarded: str) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/", "/metrics", "/api/v1/summary", "/-/healthy"):
            async with http.get(guarded + path) as r:
                assert r.status == 401, path
                assert r.headers["WWW-Authenticate"].startswith("Basic ")
        async with http.post(guarded + "/-/reload") as r:
            assert r.status == 401


async def test_viewer_reads_but_may_not_post(guarded: str) -> None:
    async with aiohttp.ClientSession(headers=basic("viewer", PASSWORDS["viewer"])) as http:
        for path in ("/", "/metrics", "/api/v1/summary", "/api/v1/sites"):
            async with http.get(guarded + path) as r:
                assert r.status == 200, path
        async with http.post(guarded + "/-/reload") as r:
            assert r.status == 403
        async with http.post(guarded + "/api/v1/actions", json={"site": "S1", "owner": "x", "due": "2026-01-01"}) as r:
            assert r.status == 403


async def test_admin_may_reload(guarded: str) -> None:
    async with aiohttp.ClientSession(headers=basic("chair", PASSWORDS["chair"])) as http:
        async with http.post(guarded + "/-/reload") as r:
            assert r.status in (200, 400), await r.text()
        async with http.get(guarded + "/metrics") as r:
            assert r.status == 200


@pytest.mark.parametrize("headers", [basic("viewer", "wrong"), basic("nobody", "look-only-123"),
                                     basic("chair", PASSWORDS["viewer"]), {"Authorization": "Basic !!!"},
                                     {"Authorization": "Bearer abc"}])
async def test_wrong_credentials_get_401(guarded: str, headers: dict[str, str]) -> None:
    async with aiohttp.ClientSession(headers=headers) as http, http.get(guarded + "/api/v1/summary") as r:
        assert r.status == 401


async def test_tls_with_a_test_certificate(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "pki")
    issued = ca.issue("board", ["127.0.0.1"])
    web_path = write_web_config(tmp_path, tls_server_config={"cert_file": "pki/board.pem", "key_file": "pki/board.key"})
    runner, url = await serve(tmp_path, web_path)
    try:
        assert url.startswith("https://127.0.0.1:")
        trusting = ssl.create_default_context(cafile=str(ca.ca_file))
        async with aiohttp.ClientSession(headers=basic("viewer", PASSWORDS["viewer"])) as http:
            async with http.get(url + "/api/v1/summary", ssl=trusting) as r:
                assert r.status == 200
            with pytest.raises(aiohttp.ClientConnectorCertificateError):  # not trusted without the test CA
                async with http.get(url + "/api/v1/summary", ssl=ssl.create_default_context()):
                    pass
            with pytest.raises(aiohttp.ClientError):  # plain HTTP is not served on the TLS port
                async with http.get(url.replace("https:", "http:") + "/-/healthy"):
                    pass
    finally:
        await runner._app_runner.cleanup()  # type: ignore[union-attr]
    assert issued.cert_file.exists()


def test_successful_checks_are_cached_under_a_keyed_hash_never_the_password() -> None:
    access = Access({"viewer": hashed("pw").encode()}, frozenset())
    header = basic("viewer", "pw")["Authorization"]
    assert access.check(header) == "viewer"
    assert access.check(header) == "viewer"
    assert access.check(basic("viewer", "nope")["Authorization"]) is None
    [(key, (user, _))] = access._ok.items()
    assert user == "viewer" and b"pw" not in key and len(key) == 32
    assert "pw" not in repr(access) and "$2b$" not in repr(access)


def test_refusal_on_a_non_loopback_address_without_auth(tmp_path: Path) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.9.9.9")
    assert not is_loopback("0.0.0.0") and not is_loopback("") and not is_loopback("10.1.2.3")
    why = listen_refusal("0.0.0.0", None, insecure=False)
    assert why is not None and "--web.insecure" in why and "--web.config.file" in why
    assert listen_refusal("0.0.0.0", None, insecure=True) is None
    assert listen_refusal("127.0.0.1", None, insecure=False) is None
    assert listen_refusal("0.0.0.0", load_web_config(write_web_config(tmp_path)), insecure=False) is None
    tls_only = tmp_path / "tls-only.yml"
    ca = TestCA(tmp_path / "pki")
    ca.issue("board", ["127.0.0.1"])
    tls_only.write_text(yaml.safe_dump({"tls_server_config": {"cert_file": "pki/board.pem",
                                                              "key_file": "pki/board.key"}}))
    assert listen_refusal("0.0.0.0", load_web_config(tls_only), insecure=False) is not None


def test_cli_refuses_before_binding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 2 and why; the check runs before anything is bound (nothing listens on 0.0.0.0 here)."""
    path = write_config(tmp_path, [site("S1")])
    assert main(["run", str(path), "--listen-host", "0.0.0.0", "--no-store"]) == 2
    err = capsys.readouterr().err
    assert "refusing to listen on 0.0.0.0" in err and "--web.insecure" in err and "listen.host" in err


@pytest.mark.parametrize(("doc", "field", "words"), [
    ({"basic_auth_users": {"viewer": "plain-password"}}, "basic_auth_users", "not a bcrypt hash"),
    ({"basic_auth_users": {}, "admins": ["chair"]}, None, "admins not in basic_auth_users"),
    ({"basic_auth_user": {}}, "basic_auth_user", "Extra inputs"),
    ({"tls_server_config": {"cert_file": "missing.pem", "key_file": "missing.key"}},
     "tls_server_config.cert_file", "cannot read"),
    ({"tls_server_config": {"cert_file": "web.yml", "key_file": "web.yml"}},
     "tls_server_config.cert_file", "do not load"),
    ({"tls_server_config": {"cert_file": "a", "key_file": "b", "client_auth_type": "RequireAnyClientCert"}},
     "tls_server_config.client_auth_type", "not supported"),
])
def test_bad_web_config_exits_2_naming_file_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      doc: dict[str, object], field: str | None, words: str) -> None:
    web_path = tmp_path / "web.yml"
    web_path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(ConfigError):
        load_web_config(web_path)
    path = write_config(tmp_path, [site("S1")])
    assert main(["run", str(path), "--web.config.file", str(web_path), "--no-store"]) == 2
    err = capsys.readouterr().err
    assert str(web_path) in err and words in err
    if field:
        assert field in err
    assert "plain-password" not in err


def test_listen_web_config_key_is_read_from_the_config_directory(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "web.yml").write_text(yaml.safe_dump({"basic_auth_users": {"v": "$2b$04$short"}}))
    path = write_config(tmp_path, [site("S1")], listen={"host": "127.0.0.1", "port": 0, "web_config": "web.yml"})
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "web.yml" in err and "basic_auth_users" in err and "$2b$04$short" not in err


async def test_hashes_and_passwords_are_not_logged(guarded: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with (aiohttp.ClientSession(headers=basic("viewer", PASSWORDS["viewer"])) as http,
                http.post(guarded + "/-/reload") as r):
        assert r.status == 403
    assert PASSWORDS["viewer"] not in caplog.text and "$2b$" not in caplog.text
    assert basic("viewer", PASSWORDS["viewer"])["Authorization"].split()[1] not in caplog.text


async def test_a_reload_reads_the_web_config_again(tmp_path: Path) -> None:
    """SIGHUP / POST /-/reload read the web config again, all or nothing: a user taken out is refused at once, a new
    one admitted; a broken file refuses the whole reload and keeps the users in force; a renewed certificate is
    served from the next connection on."""
    import argparse
    import asyncio

    from monitor.cli.service import web_config_reload

    ca = TestCA(tmp_path / "pki")
    first = ca.issue("board", ["127.0.0.1"])
    tls = {"tls_server_config": {"cert_file": "pki/board.pem", "key_file": "pki/board.key"}}
    web_path = write_web_config(tmp_path, **tls)
    path = write_config(tmp_path, [site("S1")], probes={"tcp": {"interval_seconds": 5}})
    web = load_web_config(web_path)
    access = Access(web.users, web.admins)
    runner = Runner(Service(load_config(path), probes={"tcp": TCP}), path,
                    make_app=lambda get, reload: make_app(get, reload, access=access))
    args = argparse.Namespace(web_config_file=str(web_path), config=str(path), web_insecure=False)
    runner.also_reload.append(web_config_reload(args, "127.0.0.1", access, web))
    url = await runner.start_http("127.0.0.1", 0, web.ssl_context)
    trusting = ssl.create_default_context(cafile=str(ca.ca_file))

    async def status(user: str, password: str, method: str = "GET", path: str = "/api/v1/summary") -> int:
        async with aiohttp.ClientSession(headers=basic(user, password)) as http, \
                http.request(method, url + path, ssl=trusting) as r:
            return r.status

    def serial() -> int:
        import socket

        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as raw, \
                trusting.wrap_socket(raw, server_hostname="127.0.0.1") as tls_sock:
            cert = tls_sock.getpeercert()
        return int(cert["serialNumber"], 16)

    try:
        assert await status("viewer", PASSWORDS["viewer"]) == 200
        before = await asyncio.to_thread(serial)
        doc = yaml.safe_load(web_path.read_text())
        doc["basic_auth_users"] = {"auditor": hashed("reads-all-789"), "chair": doc["basic_auth_users"]["chair"]}
        web_path.write_text(yaml.safe_dump(doc))
        renewed = ca.issue("board", ["127.0.0.1"])  # the same files, a new certificate
        assert await status("chair", PASSWORDS["chair"], "POST", "/-/reload") == 200
        assert await status("viewer", PASSWORDS["viewer"]) == 401  # taken out: refused at once
        assert await status("auditor", "reads-all-789") == 200
        assert await status("auditor", "reads-all-789", "POST", "/-/reload") == 403
        assert await asyncio.to_thread(serial) != before and first.cert_file == renewed.cert_file
        doc["admins"] = ["nobody"]  # an admin who is not a user: the whole reload is refused
        web_path.write_text(yaml.safe_dump(doc))
        async with aiohttp.ClientSession(headers=basic("chair", PASSWORDS["chair"])) as http, \
                http.post(url + "/-/reload", ssl=trusting) as r:
            assert r.status == 400 and "web.yml" in await r.text() and "nobody" in await r.text()
        assert await status("auditor", "reads-all-789") == 200  # the users in force stay
    finally:
        await runner._app_runner.cleanup()  # type: ignore[union-attr]


async def test_status_with_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """`readiness status --url https://… --web.user U` with the password from the environment and the test CA
    trusted; without a user it says the service asks for one; without the variable it is bad input."""
    import asyncio

    ca = TestCA(tmp_path / "pki")
    ca.issue("board", ["127.0.0.1"])
    web_path = write_web_config(tmp_path, tls_server_config={"cert_file": "pki/board.pem", "key_file": "pki/board.key"})
    runner, url = await serve(tmp_path, web_path)
    runner.service.evaluate(force=True)
    common = ["status", "--url", url, "--web.ca-file", str(ca.ca_file)]
    try:
        monkeypatch.setenv("READINESS_WEB_PASSWORD", PASSWORDS["viewer"])
        assert await asyncio.to_thread(main, [*common, "--web.user", "viewer"]) == 0
        assert "S1" in capsys.readouterr().out
        assert await asyncio.to_thread(main, common) == 1
        assert "--web.user" in capsys.readouterr().err
        monkeypatch.setenv("READINESS_WEB_PASSWORD", "wrong")
        assert await asyncio.to_thread(main, [*common, "--web.user", "viewer"]) == 1
        assert "wrong user or password" in capsys.readouterr().err
        monkeypatch.delenv("READINESS_WEB_PASSWORD")
        assert await asyncio.to_thread(main, [*common, "--web.user", "viewer"]) == 2
        err = capsys.readouterr().err
        assert "READINESS_WEB_PASSWORD" in err and PASSWORDS["viewer"] not in err
    finally:
        await runner._app_runner.cleanup()  # type: ignore[union-attr]


async def test_actions_with_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """`readiness actions … --url https://… --web.user U` against a service with users, an admin and TLS from the
    test CA: the admin opens and closes an action, a viewer lists them but is refused a change (403, said so),
    without a user the service's 401 comes with what to give; the password never shows."""
    import asyncio

    from monitor.runtime.recorder import attach_store

    ca = TestCA(tmp_path / "pki")
    ca.issue("board", ["127.0.0.1"])
    web_path = write_web_config(tmp_path, tls_server_config={"cert_file": "pki/board.pem", "key_file": "pki/board.key"})
    path = write_config(tmp_path, [site("S1")], probes={"tcp": {"interval_seconds": 5}})
    web = load_web_config(web_path)
    service = Service(load_config(path), probes={"tcp": TCP})
    store = attach_store(service, str(tmp_path / "data"))
    access = Access(web.users, web.admins)
    runner = Runner(service, path, make_app=lambda get, reload: make_app(get, reload, access=access,
                                                                         desk=service.desk))
    url = await runner.start_http("127.0.0.1", 0, web.ssl_context)
    service.evaluate(force=True)

    async def cli(user: str | None, *args: str) -> tuple[int, str, str]:
        who = ["--web.user", user] if user else []
        code = await asyncio.to_thread(main, ["actions", *args, "--url", url, "--web.ca-file", str(ca.ca_file), *who])
        out, err = capsys.readouterr()
        return code, out, err

    try:
        monkeypatch.setenv("READINESS_WEB_PASSWORD", PASSWORDS["chair"])
        assert await cli("chair", "add", "S1", "--owner", "Ali", "--due", "2030-01-01", "--by", "chair") == \
            (0, "A1\n", "")
        monkeypatch.setenv("READINESS_WEB_PASSWORD", PASSWORDS["viewer"])
        code, out, _ = await cli("viewer", "list")
        assert code == 0 and out.startswith("A1\topen\tS1\tAli")
        code, _, err = await cli("viewer", "close", "A1", "--result", "done")
        assert code == 1 and "HTTP 403" in err and "admin" in err
        code, _, err = await cli(None, "list")
        assert code == 1 and "HTTP 401" in err and "--web.user" in err
        monkeypatch.setenv("READINESS_WEB_PASSWORD", PASSWORDS["chair"])
        assert await cli("chair", "close", "A1", "--result", "router replaced") == (0, "A1 done\n", "")
        monkeypatch.delenv("READINESS_WEB_PASSWORD")
        code, _, err = await cli("chair", "list")
        assert code == 2 and "READINESS_WEB_PASSWORD" in err
        assert all(p not in capsys.readouterr().err for p in PASSWORDS.values())
    finally:
        await runner._app_runner.cleanup()  # type: ignore[union-attr]
        store.close()
