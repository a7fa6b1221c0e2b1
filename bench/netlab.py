"""The harness bench/province.py and bench/country.py share: a namespace, real peers, processes measured from /proc.

- ``Lab``: a network namespace this run creates (lo up, so every 127.x.y.z answers ICMP), which the bench
  process itself enters (its HTTP clients, and every process it starts, live there) and deletes on the way out,
  Ctrl-C and SIGTERM included. Processes are started with ``ip netns exec`` and stopped by PID; each also gets
  PR_SET_PDEATHSIG, so a bench killed outright does not leave them behind.
- Faults made with nftables inside the namespace: echo requests to ``DROPPED_BLOCKS`` are dropped (a dead link),
  and nothing listens on ``REFUSED_PORT`` (a terminal that refuses).
- ``write_inventory``: a spreadsheet export of N sites, two links and two TCP terminals each, with a fixed mix of
  faults (``fault_of``).
- ``Proc``: CPU seconds (user + system) and resident memory of a process, from /proc/PID/stat and status.
- ``start_prometheus``: Debian's Prometheus on 127.0.0.1 with a temporary config and TSDB.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.lab import enter_netns, sh, stop, tail  # noqa: E402

T = TypeVar("T")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1

TERMINAL_PORT = 8080  # the listener inside the namespace answers every 127.x address on it
REFUSED_PORT = 8081  # nothing listens here: a terminal that refuses
# Echo requests to these /16s are dropped in the namespace (nftables): the links there are down.
DROPPED_BLOCKS = (41, 42)
PRIMARY_BLOCK, BACKUP_BLOCK, TERMINAL_BLOCKS = 31, 32, (33, 34)
SITES_PER_BLOCK = 250 * 256  # 127.B.x.y with x < 256, y in 1..250

# Accept and close at once, in plain blocking Python: the cheapest honest TCP peer (its CPU is not the service's).
LISTENER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(4096)
print("up", flush=True)
while True:
    c, _ = s.accept(); c.close()
"""


# ---- the inventory ---------------------------------------------------------------------------------------------

def fault_of(i: int) -> str:
    """The fault site ``i`` is given: "" (none), "primary", "backup", "both" (links dropped), "terminal" (T2 refuses).

    About 4% lose the primary, 5% the backup, 2% both, 4% a terminal: every state shows up, most sites are fine.
    """
    if i % 50 == 3:
        return "both"
    if i % 25 == 7:
        return "primary"
    if i % 20 == 13:
        return "backup"
    if i % 25 == 11:
        return "terminal"
    return ""


def address(block: int, i: int) -> str:
    return f"127.{block}.{i // 250 % 256}.{i % 250 + 1}"


def primary_address(i: int) -> str:
    return address(DROPPED_BLOCKS[0] if fault_of(i) in ("primary", "both") else PRIMARY_BLOCK, i)


def write_inventory(path: Path, sites: int, counties: int = 10, *, icmp_only: bool = False) -> None:
    """Write ``sites`` polling places as a CSV export (the columns of `readiness inventory import`); with
    ``icmp_only``, the primary link alone (the same addresses), no backup and no terminals."""
    if sites > SITES_PER_BLOCK:
        raise SystemExit(f"at most {SITES_PER_BLOCK:,} sites: the addresses come from one /16 per role")
    rows = ["site_id,name,county,area,lat,lon,primary_medium,primary_address,backup_medium,backup_address,terminals"]
    for i in range(sites):
        fault = fault_of(i)
        backup = address(DROPPED_BLOCKS[1] if fault in ("backup", "both") else BACKUP_BLOCK, i)
        ports = (TERMINAL_PORT, REFUSED_PORT if fault == "terminal" else TERMINAL_PORT)
        terminals = ";".join(f"T{k + 1}@{address(block, i)}:{port}" for k, (block, port)
                             in enumerate(zip(TERMINAL_BLOCKS, ports, strict=True)))
        if icmp_only:
            backup = terminals = ""
        rows.append(f"S{i:05d},مدرسه {i},C{i % counties},{'urban' if i % 2 else 'rural'},"
                    f"{33 + i % 1000 / 1000:.3f},{46 + i // 1000 / 100:.3f},fiber,{primary_address(i)},"
                    f"{'' if icmp_only else 'lte'},{backup},{terminals}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def write_config(path: Path, inventory: str, interval: float, port: int, *, icmp: dict[str, Any] | None = None,
                 tcp: dict[str, Any] | None = None, tcp_enabled: bool = True) -> None:
    """Write a service config over ``inventory`` (relative to ``path``): ICMP and TCP every ``interval`` s, with
    the settings ``icmp`` and ``tcp`` add; TCP concurrency 4096 unless ``tcp`` says (the default 1,024 does
    not fit 20,000 terminals into a 30 s cycle), its timeout the default 3 s (shorter for short intervals)."""
    # The default jitter (5 s) at 30 s; shorter intervals (smoke runs) get a sixth of theirs.
    every = {"interval_seconds": interval, "jitter_seconds": min(5.0, interval / 6)}
    probes: dict[str, Any] = {"icmp": {**every, **(icmp or {})},
                              "tcp": {**every, "concurrency": 4096, "timeout_seconds": min(3.0, interval / 4),
                                      **(tcp or {}), "enabled": tcp_enabled}}
    doc = {"programme": {"name": "bench", "deadline": "2026-12-31T23:59:59+03:30"},
           "listen": {"host": "127.0.0.1", "port": port}, "inventory": [inventory], "probes": probes}
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")


# ---- processes -------------------------------------------------------------------------------------------------

def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the bench dies, so a killed bench leaves no daemon behind."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Proc:
    """A process we started: its CPU and memory read from /proc."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu(self) -> float:
        """User + system CPU seconds so far (its reaped children's included)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(x) for x in fields[11:15]) / CLK_TCK

    def memory_kib(self) -> tuple[int, int]:
        """(resident now, peak resident) in KiB: VmRSS and VmHWM."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        rss = re.search(r"^VmRSS:\s+(\d+)", status, re.M)
        hwm = re.search(r"^VmHWM:\s+(\d+)", status, re.M)
        return (int(rss.group(1)) if rss else 0, int(hwm.group(1)) if hwm else 0)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def check(self) -> None:
        if not self.alive():
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}\n{tail(self.log)}")


class CpuWindow:
    """CPU seconds of some processes between ``start()`` and ``stop()``, with the wall time between."""

    def __init__(self, procs: dict[str, Proc]) -> None:
        self.procs = procs
        self.t0 = self.t1 = 0.0
        self.cpu0: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def start(self) -> None:
        self.cpu0 = {name: p.cpu() for name, p in self.procs.items()}
        self.t0 = time.time()

    def stop(self) -> None:
        self.used = {name: p.cpu() - self.cpu0[name] for name, p in self.procs.items()}
        self.t1 = time.time()

    @property
    def seconds(self) -> float:
        return self.t1 - self.t0

    def share(self, name: str) -> float:
        """CPU seconds per wall second: 1.0 is one core busy all the time."""
        return self.used[name] / self.seconds


# ---- the namespace ---------------------------------------------------------------------------------------------

@dataclass
class Lab:
    """A namespace of this run's own, entered by this process, and the processes started in it."""

    prefix: str
    keep: bool = False  # keep the work directory (logs, configs) after the run
    name: str = ""
    work: Path = Path()
    procs: dict[str, Proc] = field(default_factory=dict)

    def start(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> Proc:
        """Start ``cmd`` in the namespace (``ip netns exec`` execs it: the PID is the command's), logging to work/."""
        log = self.work / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(["ip", "netns", "exec", self.name, *cmd], stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=REPO, env={**os.environ, **(env or {})},
                                     start_new_session=True, preexec_fn=_die_with_parent)
        proc = self.procs[name] = Proc(name, popen, log)
        return proc

    def stop(self, name: str, grace: float = 10.0) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None:
            stop(proc.popen, grace)

    def kill(self, name: str) -> None:
        """SIGKILL, as a crash would: no goodbye to anyone."""
        proc = self.procs.pop(name)
        os.kill(proc.pid, signal.SIGKILL)
        proc.popen.wait(10)

    def alive(self) -> None:
        for proc in self.procs.values():
            proc.check()

    def python(self, name: str, code: str, *args: str) -> Proc:
        return self.start(name, [sys.executable, "-c", code, *args])

    def readiness(self, name: str, config: Path, *args: str) -> Proc:
        """`readiness run` on ``config`` in the namespace, its event store in work/NAME-data."""
        return self.start(name, [sys.executable, "-m", "monitor", "run", str(config), "--data-dir",
                                 str(self.work / f"{name}-data"), *args], env={"PYTHONPATH": str(REPO)})

    def terminals(self) -> Proc:
        """The TCP peer of every terminal: one listener on 0.0.0.0:TERMINAL_PORT answers all of 127/8."""
        proc = self.python("terminals", LISTENER, str(TERMINAL_PORT))
        wait_for("the terminal listener", lambda: "up" in proc.log.read_text(), 20, proc)
        return proc

    def drop_echoes(self) -> None:
        """nftables in the namespace: echo requests to DROPPED_BLOCKS are dropped on arrival (the input hook: a drop
        on output would fail the send with EPERM, a local error, where a dead link only never answers)."""
        nets = ", ".join(f"127.{b}.0.0/16" for b in DROPPED_BLOCKS)
        sh("ip", "netns", "exec", self.name, "nft", "-f", "-", stdin=(
            "table ip bench {\n chain in {\n  type filter hook input priority 0; policy accept;\n"
            f"  ip daddr {{ {nets} }} icmp type echo-request drop\n }}\n}}\n"))


def _terminate(signum: int, _: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def lab(prefix: str, keep: bool = False) -> Iterator[Lab]:
    """Create the namespace and enter it (call before any thread starts: setns moves only the calling thread, and
    threads started later inherit it); on the way out (an error, Ctrl-C, SIGTERM) stop every process by PID and
    delete the namespace and the work directory."""
    if os.geteuid() != 0:
        raise SystemExit("this benchmark needs root: it creates a network namespace (ip netns) and nftables rules")
    # Both stop the run the same way (SIGINT too: a shell that started us in the background may ignore it).
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    the = Lab(prefix, keep, name=f"{prefix}-{os.getpid()}")
    the.work = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    try:
        sh("ip", "netns", "add", the.name)
        sh("ip", "-n", the.name, "link", "set", "dev", "lo", "up")
        # Any user may open an ICMP datagram socket (the service as root uses a raw one anyway).
        sh("ip", "netns", "exec", the.name, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")
        enter_netns(the.name)
        yield the
    finally:
        # A second Ctrl-C must not cut the cleaning short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for name in list(the.procs)[::-1]:
            with contextlib.suppress(Exception):
                the.stop(name)
        subprocess.run(["ip", "netns", "del", the.name], capture_output=True, timeout=30, check=False)
        if keep:
            print(f"work directory kept: {the.work}", file=sys.stderr)
        else:
            shutil.rmtree(the.work, ignore_errors=True)


# ---- progress, waiting and HTTP

_STARTED = time.monotonic()


def say(message: str) -> None:
    """A line of progress on stderr (the figures go to stdout)."""
    elapsed = int(time.monotonic() - _STARTED)
    print(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {message}", file=sys.stderr, flush=True)


def wait_for(what: str, check: Callable[[], T], timeout: float, proc: Proc | None = None, every: float = 0.5) -> T:
    """Poll ``check`` until it returns something truthy (exceptions count as not yet); give up after ``timeout``."""
    started = time.monotonic()
    deadline = started + timeout
    say(f"waiting for {what} (at most {timeout:.0f} s)")
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None:
            proc.check()
        try:
            value = check()
            if value:
                say(f"  done in {time.monotonic() - started:.0f} s")
                return value
            last = value
        except Exception as exc:
            last = exc
        time.sleep(every)
    raise RuntimeError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})"
                       + (f"\n{tail(proc.log)}" if proc else ""))


def get(url: str, timeout: float = 60) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return bytes(resp.read())


def metrics_text(port: int) -> str:
    """The service's /metrics, fetched gzipped (the service sends its cached body; cheap for it)."""
    import gzip
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        body = resp.read()
        if resp.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
    return str(body.decode())


def samples(text: str, name: str) -> dict[str, float]:
    """Values of the samples of ``name`` in an exposition, keyed by their label text ('' for none)."""
    out = {}
    for m in re.finditer(rf"^{re.escape(name)}(?:\{{([^}}]*)\}})? (\S+)$", text, re.M):
        out[m.group(1) or ""] = float(m.group(2))
    return out


def cycles(port: int) -> dict[str, float]:
    """readiness_probe_cycles_total by kind, from the service's /metrics."""
    text = metrics_text(port)
    return {k.split('"')[1]: v for k, v in samples(text, "readiness_probe_cycles_total").items()}


def warm(the: Lab, proc: Proc, port: int, kinds: tuple[str, ...], n: int, interval: float, startup: float) -> None:
    """Wait until ``n`` cycles of every kind have finished (the first cycles are not the steady state)."""
    def done() -> bool:
        seen = cycles(port)
        the.alive()
        return all(seen.get(k, 0) >= n for k in kinds)
    wait_for(f"{n} cycles of {', '.join(kinds)}", done, startup + (n + 1) * interval * 1.5, proc, every=1)


def last_cycle(port: int, kind: str) -> float:
    """readiness_probe_last_cycle_timestamp_seconds of ``kind``: when its last cycle finished."""
    text = metrics_text(port)
    return samples(text, "readiness_probe_last_cycle_timestamp_seconds").get(f'kind="{kind}"', 0.0)


def cycle_end(port: int, kind: str, timeout: float, proc: Proc) -> None:
    """Return right after the next ``kind`` cycle of the service on ``port`` finishes."""
    before = last_cycle(port, kind)
    wait_for(f"the next {kind} cycle to finish", lambda: last_cycle(port, kind) != before, timeout, proc, every=0.5)


def start_prometheus(the: Lab, name: str, port: int, scrape_configs: list[dict[str, Any]], interval: float,
                     rules: Path | None = None) -> Proc:
    """Prometheus on 127.0.0.1:``port`` scraping every ``interval`` s (rules evaluated as often); wait until ready."""
    doc: dict[str, Any] = {"global": {"scrape_interval": f"{interval:g}s", "evaluation_interval": f"{interval:g}s"},
                           "scrape_configs": scrape_configs}
    if rules is not None:
        doc["rule_files"] = [str(rules)]
    config = the.work / f"{name}.yml"
    config.write_text(yaml.safe_dump(doc), encoding="utf-8")
    proc = the.start(name, ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={the.work / name}-tsdb",
                            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"])
    wait_for("Prometheus ready", lambda: get(f"http://127.0.0.1:{port}/-/ready"), 60, proc)
    return proc


def scrape_timeout(interval: float) -> str:
    return f"{min(10.0, interval):g}s"


def query(port: int, promql: str, at: float | None = None) -> list[dict[str, Any]]:
    """An instant query (at Unix time ``at``, else now); the result vector."""
    import json
    from urllib.parse import quote
    when = "" if at is None else f"&time={at:.3f}"
    answer = json.loads(get(f"http://127.0.0.1:{port}/api/v1/query?query={quote(promql)}{when}"))
    if answer.get("status") != "success":
        raise RuntimeError(f"{promql}: {answer}")
    return list(answer["data"]["result"])


def scalar(port: int, promql: str) -> float | None:
    result = query(port, promql)
    return float(result[0]["value"][1]) if result else None


def head_series(port: int) -> int:
    """Series in Prometheus's head block (its own /api/v1/status/tsdb)."""
    import json
    return int(json.loads(get(f"http://127.0.0.1:{port}/api/v1/status/tsdb"))["data"]["headStats"]["numSeries"])
