"""Terminals with an `http:` check: the config accepts them, their targets go to the HTTP probe only, and
HTTP credentials are declared apart under `auths:` and reach only the HTTP probe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from monitor.config.loader import load_config
from monitor.config.targets import build_targets
from monitor.errors import ConfigError
from probes.credentials import HttpAuth, SnmpAuth
from tests.monitor.fixtures import site, write_config

AUTHS = {"lab": {"version": "2c", "community": "s3cret-community"},
         "portal": {"scheme": "bearer", "token_env": "PORTAL_TOKEN"},
         "kiosk": {"scheme": "basic", "user": "monitor", "password_env": "KIOSK_PASSWORD"}}


def http_site(**check: Any) -> dict[str, Any]:
    s = site("S1", snmp=True)
    s["terminals"][0]["http"] = {"url": "/health", **check}
    s["terminals"].append({"id": "T3", "address": "::1", "port": 8443, "http": {"url": "/"}})
    s["terminals"].append({"id": "T4", "address": "127.23.1.4",
                           "http": {"url": "http://127.23.1.4:8080/login", "auth": "kiosk"}})
    return s


def problems(tmp_path: Path, s: dict[str, Any], auths: dict[str, Any] | None = None) -> str:
    with pytest.raises(ConfigError) as exc:
        load_config(write_config(tmp_path, [s], auths=auths if auths is not None else AUTHS))
    return "\n".join(str(p) for p in exc.value.problems)


def test_http_terminals_are_probed_by_http_only(tmp_path: Path) -> None:
    """One kind per terminal and one key: HTTP when it has a check, TCP with a port, else ICMP."""
    config = load_config(write_config(tmp_path, [http_site(expect_body="ready", auth="portal")], auths=AUTHS))
    targets = build_targets(config.sites)
    keys = {kind: {t.key for t in ts} for kind, ts in targets.items()}
    http = {"S1/terminal/T1", "S1/terminal/T3", "S1/terminal/T4"}
    assert keys["http"] == http and keys["tcp"] == {"S1/terminal/T2"}
    assert not http & (keys["icmp"] | keys["tcp"])
    urls = {t.key: t.extra["url"] for t in targets["http"]}
    assert urls == {"S1/terminal/T1": "https://127.23.1.1:18080/health", "S1/terminal/T3": "https://[::1]:8443/",
                    "S1/terminal/T4": "http://127.23.1.4:8080/login"}
    t1 = next(t for t in targets["http"] if t.key == "S1/terminal/T1")
    assert t1.extra["auth"] == "portal" and t1.extra["expect_body"] == "ready" and t1.extra["tls_verify"] is True


def test_credentials_reach_their_own_probe(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, [http_site()], auths=AUTHS))
    assert isinstance(config.auths["portal"], HttpAuth) and isinstance(config.auths["lab"], SnmpAuth)
    assert set(config.probe_settings("http").auths) == {"portal", "kiosk"}  # type: ignore[attr-defined]
    assert set(config.probe_settings("snmp").auths) == {"lab"}  # type: ignore[attr-defined]


def test_auth_kinds_are_checked(tmp_path: Path) -> None:
    """A terminal names an HTTP auth, a link an SNMP one; each mistake is placed precisely."""
    s = http_site(auth="lab")
    s["links"][0]["snmp"]["auth"] = "portal"
    s["terminals"][2]["http"]["auth"] = "nope"
    text = problems(tmp_path, s)
    assert "terminals[0].http.auth: auth 'lab' is an SNMP auth, not HTTP" in text
    assert "links[0].snmp.auth: auth 'portal' is an HTTP auth, not SNMP" in text
    assert "terminals[2].http.auth: auth 'nope' is not declared under 'auths'" in text


@pytest.mark.parametrize(("check", "message"), [
    ({"url": "https://user:pw@127.0.0.1/"}, "must not carry credentials"),
    ({"url": "ftp://127.0.0.1/"}, "must be a path"),
    ({"headers": {"Authorization": "Bearer x"}}, "may carry a secret"),
    ({"expect_body": "("}, "not a regular expression"),
    ({"expect_status": [99]}, "greater than or equal to 100"),
    ({"method": "DELETE"}, "terminals[0].http.method"),
    ({"retries": 3}, "terminals[0].http.retries: unknown key"),
])
def test_bad_checks_are_rejected(tmp_path: Path, check: dict[str, Any], message: str) -> None:
    s = site("S1")
    s["terminals"][0]["http"] = check
    assert message in problems(tmp_path, s)


def test_http_auths_are_validated(tmp_path: Path) -> None:
    text = problems(tmp_path, site("S1"), auths={"a": {"scheme": "basic", "password_env": "X"},
                                                 "b": {"scheme": "bearer"}, "c": {"scheme": "digest", "user": "u"}})
    assert "auths.a: basic needs user" in text and "auths.b: bearer needs token or token_env" in text
    assert "auths.c.scheme" in text


def test_the_example_config_loads() -> None:
    """config/http-example.yaml (the README's example) is valid; its terminals split between TCP and HTTP."""
    config = load_config(Path(__file__).parents[2] / "config" / "http-example.yaml")
    targets = build_targets(config.sites)
    assert {t.key for t in targets["http"]} == {"ILM-001/terminal/W1", "ILM-001/terminal/K1"}
    assert {t.key for t in targets["tcp"]} == {"ILM-001/terminal/T1"}
    assert {t.extra["url"] for t in targets["http"]} == {"https://10.1.0.12:8443/health",
                                                         "http://10.1.0.13:8080/status"}
