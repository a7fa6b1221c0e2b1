"""Secrets never leave the process: not in `check` output, `run --once` reports and logs, the HTTP API,
/metrics, the event store or an audit bundle."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

from tests.monitor.fixtures import site

COMMUNITY = "c0mmunity-Zq81"
AUTH_KEY = "authkey-Hv27-long-enough"
PRIV_KEY = "privkey-Pw93-long-enough"
HTTP_TOKEN = "bearer-Tq55-web-token"
HTTP_PASSWORD = "basic-Jm40-web-password"


def write(tmp_path: Path) -> Path:
    s1 = site("S1", snmp=True)
    s2 = site("S2", n=2, snmp=True)
    s2["links"][0]["snmp"]["auth"] = "v3"
    s1["terminals"][0]["http"] = {"url": "/health", "auth": "web"}
    s2["terminals"][0]["http"] = {"url": "/health", "auth": "kiosk"}
    doc = {
        "programme": {"name": "secret test", "deadline": "2026-12-31T23:59:59+03:30"},
        "data_dir": str(tmp_path / "data"),
        "probes": {"snmp": {"timeout_seconds": 0.3, "retries": 0}, "icmp": {"count": 1, "timeout_seconds": 0.5},
                   "tcp": {"timeout_seconds": 0.5},
                   "http": {"timeout_seconds": 0.5}},
        "auths": {"lab": {"version": "2c", "community": COMMUNITY},
                  "v3": {"version": "3", "user": "monitor", "auth_protocol": "SHA256", "auth_key_env": "T_AUTH",
                         "priv_protocol": "AES", "priv_key": PRIV_KEY},
                  "web": {"scheme": "bearer", "token": HTTP_TOKEN},
                  "kiosk": {"scheme": "basic", "user": "monitor", "password_env": "T_HTTP_PASSWORD"}},
        "sites": [s1, s2],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def run(*args: str) -> str:
    env = {**os.environ, "T_AUTH": AUTH_KEY, "T_HTTP_PASSWORD": HTTP_PASSWORD}
    proc = subprocess.run([sys.executable, "-m", "monitor", "-v", *args], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout + proc.stderr


def assert_clean(text: str, where: str) -> None:
    for secret in (COMMUNITY, AUTH_KEY, PRIV_KEY, HTTP_TOKEN, HTTP_PASSWORD):
        assert secret not in text, f"a secret leaked into {where}"


def test_no_secret_in_any_output(tmp_path: Path) -> None:
    """check, run --once (table and JSON, debug logs), the store and an audit bundle hold no secret."""
    path = write(tmp_path)
    assert_clean(run("check", str(path)), "check")
    assert_clean(run("run", str(path), "--once"), "run --once")
    assert_clean(run("run", str(path), "--once", "--json"), "run --once --json")
    # Record something, then export it: neither the store nor the bundle may hold a secret.
    from monitor.config.loader import load_config
    from monitor.runtime.recorder import Recorder
    from monitor.runtime.service import Service
    from monitor.store.events import EventStore

    store = EventStore(tmp_path / "data")
    store.open()
    service = Service(load_config(path))
    recorder = Recorder(store)
    service.on_snapshot(recorder)
    service.evaluate(force=True)
    assert store.flush()
    store.close()
    for file in (tmp_path / "data").rglob("*"):
        if file.is_file():
            assert_clean(file.read_bytes().decode("utf-8", "replace"), str(file))
    out = tmp_path / "bundle"
    assert_clean(run("audit", "export", "--config", str(path), "--data-dir", str(tmp_path / "data"), "-o",
                     str(out)), "audit export")
    for file in out.rglob("*"):
        if file.suffix == ".xlsx":  # a zip of XML parts
            with zipfile.ZipFile(file) as book:
                for part in book.namelist():
                    assert_clean(book.read(part).decode("utf-8", "replace"), f"{file}:{part}")
        elif file.is_file():
            assert_clean(file.read_text(encoding="utf-8", errors="replace"), str(file))
