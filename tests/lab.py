"""Plumbing for the lab tests: namespaces, daemons run by PID, HTTP inside a namespace, a webhook sink."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[1]
CLONE_NEWNET = 0x40000000  # sched.h


def sh(*args: str, stdin: str | None = None) -> str:
    """Run a command, fail loudly with its stderr, return its stdout."""
    run = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=30, check=False)
    assert run.returncode == 0, f"{' '.join(args)}: {run.stderr.strip()}"
    return run.stdout


class Namespace:
    """A network namespace this test creates and deletes; code can run inside it, in a thread of its own."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._pool: ThreadPoolExecutor | None = None

    def create(self) -> None:
        sh("ip", "netns", "add", self.name)
        self.ip("link set dev lo up")

    def ip(self, *steps: str) -> None:
        """Run ``ip`` commands in the namespace as one batch (so two links go down in the same instant)."""
        sh("ip", "-n", self.name, "-batch", "-", stdin="\n".join(steps) + "\n")

    def popen(self, cmd: list[str], log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start ``cmd`` in the namespace; ``ip netns exec`` execs it, so the PID is the command's."""
        with log.open("wb") as out:
            return subprocess.Popen(["ip", "netns", "exec", self.name, *cmd], stdout=out, stderr=subprocess.STDOUT,
                                    **kwargs)

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 30) -> T:
        """Run ``fn(*args)`` on a thread that has entered the namespace (sockets it opens live there)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=2, initializer=self._enter)
        return self._pool.submit(fn, *args).result(timeout=timeout)

    def _enter(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns failed")
        finally:
            os.close(fd)

    def delete(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30, check=False)


def stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """Stop one process we started, by its PID: SIGTERM, then SIGKILL after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(grace)


def http(url: str, body: Any = None, timeout: float = 5) -> Any:
    """GET (or POST ``body`` as JSON) and return the decoded JSON answer, or the text if it is not JSON."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        text = resp.read().decode()
    try:
        return json.loads(text)
    except ValueError:
        return text


def wait_for(what: str, check: Callable[[], T], timeout: float, every: float = 0.25,
             on_timeout: Callable[[], str] = lambda: "") -> T:
    """Poll ``check`` until it returns something truthy (exceptions count as not yet); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
            last = value
        except Exception as exc:
            last = exc
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})\n{on_timeout()}")


class WebhookSink:
    """Collect Alertmanager webhook notifications: (receiver from the URL path, payload, arrival time)."""

    def __init__(self) -> None:
        self.notifications: list[tuple[str, dict[str, Any], float]] = []
        self._lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    def start(self, host: str, port: int) -> None:
        """Bind in the calling thread (call it inside a namespace) and serve on a thread of its own."""
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with sink._lock:
                    sink.notifications.append((self.path.rsplit("/", 1)[-1], payload, time.monotonic()))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def received(self) -> list[tuple[str, dict[str, Any], float]]:
        with self._lock:
            return list(self.notifications)

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def tail(path: Path, lines: int = 30) -> str:
    """Return the last lines of a log, for failure messages."""
    if not path.exists():
        return f"({path.name}: no log)"
    return f"--- {path.name} ---\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def alertmanager_config(tmp: Path, sink_port: int) -> Path:
    """Write tmp/alertmanager.yml: the committed example with every webhook pointed at the sink on 127.0.0.1:
    ``sink_port`` (``/hook/<receiver>``) and group timers cut to a second."""
    doc = yaml.safe_load((REPO / "config" / "alertmanager" / "alertmanager.yml").read_text())

    def shorten(route: dict[str, Any]) -> None:
        route.update(group_wait="1s", group_interval="1s")
        for child in route.get("routes", []):
            shorten(child)

    shorten(doc["route"])
    for receiver in doc["receivers"]:
        for hook in receiver["webhook_configs"]:
            hook["url"] = f"http://127.0.0.1:{sink_port}/hook/{receiver['name']}"
    path = tmp / "alertmanager.yml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path
