"""Plumbing for the lab tests: namespaces, daemons run by PID, HTTP inside a namespace, a webhook sink."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import yaml

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[1]
CLONE_NEWNET = 0x40000000  # sched.h


def sh(*args: str, stdin: str | None = None) -> str:
    """Run a command, fail loudly with its stderr, return its stdout."""
    run = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=30, check=False)
    assert run.returncode == 0, f"{' '.join(args)}: {run.stderr.strip()}"
    return run.stdout



def enter_netns(name: str) -> None:
    """Move the calling thread into network namespace ``name`` (sockets it opens from now on live there)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns failed")
    finally:
        os.close(fd)

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
        enter_netns(self.name)

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


# ---- the alerting lab: a real monitor, Prometheus, Alertmanager and the webhook sink, in a namespace ----------

# All on 127.0.0.1 of the lab's own "mon" namespace, so they never meet this machine's (or another lab's) ports.
MONITOR_PORT, PROMETHEUS_PORT, ALERTMANAGER_PORT, SINK_PORT = 19108, 19090, 19093, 19095


def prometheus_config(tmp: Path, rules: Path) -> Path:
    """The committed example with test intervals, ports and rules; its replica label and relabelling stay."""
    doc = yaml.safe_load((REPO / "config" / "prometheus" / "prometheus.yml").read_text())
    doc["global"].update(scrape_interval="1s", evaluation_interval="1s")
    doc["rule_files"] = [str(rules)]
    doc["alerting"]["alertmanagers"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{ALERTMANAGER_PORT}"]}]
    (job,) = doc["scrape_configs"]
    job["scrape_timeout"] = "1s"
    job["static_configs"] = [{"targets": [f"127.0.0.1:{MONITOR_PORT}"]}]
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def alerts_of(notification: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(alertname, site, status) of every alert in one webhook payload."""
    return [(a["labels"]["alertname"], a["labels"].get("site", ""), a["status"]) for a in notification["alerts"]]


@dataclass
class AlertStack:
    """Two namespaces: "mon" runs the monitor, Prometheus, Alertmanager and the sink; "site" holds what it watches."""

    mon: Namespace
    site: Namespace
    tmp: Path
    sink: WebhookSink
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def get(self, port: int, path: str) -> Any:
        return self.mon.call(http, f"http://127.0.0.1:{port}{path}")

    def logs(self) -> str:
        return "\n".join(tail(self.tmp / f"{name}.log") for name in ("readiness", "prometheus", "alertmanager"))

    def start(self, name: str, cmd: list[str]) -> None:
        self.procs[name] = self.mon.popen(cmd, self.tmp / f"{name}.log", cwd=REPO,
                                          env={**os.environ, "PYTHONPATH": str(REPO)})

    def alive(self) -> None:
        for name, proc in self.procs.items():
            assert proc.poll() is None, f"{name} exited with {proc.returncode}\n{self.logs()}"

    def rules(self, for_scale: float) -> Path:
        """Generate the alerting rules with every `for:` and `keep_firing_for:` scaled; promtool checks them."""
        rules = self.tmp / "readiness.rules.yml"
        sh(sys.executable, "-m", "monitor", "rules", "--for-scale", str(for_scale), "-o", str(rules))
        sh("promtool", "check", "rules", str(rules))
        return rules

    def start_monitor(self, config: Path) -> None:
        """`readiness run` on ``config`` (which must listen on 127.0.0.1:MONITOR_PORT); wait for its first verdict."""
        self.start("readiness", [sys.executable, "-m", "monitor", "run", str(config)])
        wait_for("the monitor's first evaluation", lambda: self.get(MONITOR_PORT, "/-/ready"), 20,
                 on_timeout=self.logs)

    def start_prometheus(self, rules: Path) -> None:
        self.start("prometheus", ["prometheus", f"--config.file={prometheus_config(self.tmp, rules)}",
                                  f"--storage.tsdb.path={self.tmp / 'tsdb'}",
                                  f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}", "--log.level=warn"])

    def start_alertmanager(self, wait: bool = True) -> None:
        """The committed routes and inhibitions, delivering to the sink."""
        self.start("alertmanager", ["prometheus-alertmanager",
                                    f"--config.file={alertmanager_config(self.tmp, SINK_PORT)}",
                                    f"--storage.path={self.tmp / 'am'}",
                                    f"--web.listen-address=127.0.0.1:{ALERTMANAGER_PORT}",
                                    "--cluster.listen-address=", "--log.level=warn"])
        if wait:
            wait_for("Alertmanager ready", lambda: self.get(ALERTMANAGER_PORT, "/-/ready"), 20, on_timeout=self.logs)

    def query(self, promql: str) -> list[dict[str, Any]]:
        answer = self.get(PROMETHEUS_PORT, f"/api/v1/query?query={quote(promql)}")
        assert answer["status"] == "success", answer
        return list(answer["data"]["result"])

    def prometheus_alerts(self) -> list[dict[str, Any]]:
        return list(self.get(PROMETHEUS_PORT, "/api/v1/alerts")["data"]["alerts"])

    def alertmanager_alerts(self) -> list[dict[str, Any]]:
        return list(self.get(ALERTMANAGER_PORT, "/api/v2/alerts"))

    def notified(self, alertname: str, site: str, status: str) -> list[tuple[str, dict[str, Any], float]]:
        """The notifications the sink received that carry ``alertname`` for ``site`` ("" for none) in ``status``."""
        self.alive()
        return [n for n in self.sink.received() if (alertname, site, status) in alerts_of(n[1])]

    def between_cycles(self, kind: str = "icmp") -> None:
        """Return right after a ``kind`` cycle finishes: more than a second before the next one starts, so a
        change made now (and the kernel's deferred carrier handling, up to a second) lands between two cycles."""
        def last_cycle() -> str:
            text = self.get(MONITOR_PORT, "/metrics")
            m = re.search(rf'^readiness_probe_last_cycle_timestamp_seconds\{{kind="{kind}"\}} (\S+)$', text, re.M)
            return m.group(1) if m else ""

        before = last_cycle()
        wait_for(f"an {kind} cycle to finish", lambda: last_cycle() != before, 10, every=0.05)


@contextlib.contextmanager
def alert_lab(tmp: Path, prefix: str, wire: Callable[[Namespace, Namespace], None]) -> Iterator[AlertStack]:
    """Create the "mon" and "site" namespaces, let ``wire(mon, site)`` connect them, start the sink in "mon";
    on the way out stop every process started through the stack (by PID) and delete both namespaces."""
    tag = os.getpid() % 100000
    mon, site = Namespace(f"{prefix}-mon-{tag}"), Namespace(f"{prefix}-site-{tag}")
    stack = AlertStack(mon, site, tmp, WebhookSink())
    try:
        mon.create()
        site.create()
        wire(mon, site)
        sh("ip", "netns", "exec", mon.name, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")
        mon.call(stack.sink.start, "127.0.0.1", SINK_PORT)
        yield stack
    finally:
        for proc in stack.procs.values():
            stop(proc)
        stack.sink.close()
        mon.delete()
        site.delete()
