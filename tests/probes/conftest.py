"""Real SNMP peers for the probe tests: snmpsim serving recorded devices, and Net-SNMP's snmpd.

Every agent listens on 127.0.0.1 on a free high port and is stopped by its PID when the test ends.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.demo.snmpsim import SnmpsimHandle, V3User, free_udp_port, snmp_answers, start_snmpsim
from tests.helpers import require, require_tool
from tests.lab import stop

RECORDINGS = Path(__file__).resolve().parents[1] / "data" / "snmp"


def _snmpsim_installed() -> bool:
    try:
        import snmpsim  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture
def snmpsim_agents(tmp_path: Path) -> Iterator[Callable[..., SnmpsimHandle]]:
    """Start snmpsim processes on demand (``start(data_dir, users=, port=, engine_id=)``); stop them all after."""
    require(_snmpsim_installed(), "snmpsim is not installed (pip install snmpsim)")
    handles: list[SnmpsimHandle] = []

    def start(data_dir: Path, users: Iterable[V3User] = (), port: int | None = None,
              engine_id: str | None = None) -> SnmpsimHandle:
        handle = start_snmpsim(data_dir, port, users=users, engine_id=engine_id,
                               work_dir=tmp_path / f"snmpsim-{len(handles)}")
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()


@pytest.fixture
def recordings(tmp_path: Path) -> Path:
    """Return a copy of tests/data/snmp (the slow agent left out: it needs a process of its own)."""
    target = tmp_path / "recordings"
    shutil.copytree(RECORDINGS, target, ignore=shutil.ignore_patterns("slow"))
    return target


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class Snmpd:
    """A running Net-SNMP agent and the credentials it accepts."""

    port: int
    pid: int
    community: str
    user: str
    auth_key: str
    priv_key: str
    log: Path
    ipv6: bool  # also listening on [::1]
    auth_only_user: str = "readiness-auth"  # a v3 user with an authentication key and no privacy (authNoPriv)


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    """Run Debian's snmpd on 127.0.0.1:<free port> with its own config: v2c, v3 authPriv SHA-256/AES, and a
    v3 user without privacy (same authentication key)."""
    exe = require_tool("snmpd")
    work = tmp_path_factory.mktemp("snmpd")
    port = free_udp_port()
    agent = Snmpd(port, 0, "roXq7community", "readiness", "authZz9keySha256", "privKk3keyAes", work / "snmpd.log",
                  _ipv6_loopback())
    (work / "persist").mkdir()
    (work / "snmpd.conf").write_text(
        f"[snmp] persistentDir {work / 'persist'}\n"
        f"agentaddress udp:127.0.0.1:{port}{f',udp6:[::1]:{port}' if agent.ipv6 else ''}\n"
        f"rocommunity {agent.community} 127.0.0.1\n"
        f"rocommunity6 {agent.community} ::1\n"
        f'createUser {agent.user} SHA-256 "{agent.auth_key}" AES "{agent.priv_key}"\n'
        f"rouser {agent.user} priv\n"
        f'createUser {agent.auth_only_user} SHA-256 "{agent.auth_key}"\n'
        f"rouser {agent.auth_only_user} auth\n"
    )
    env = {**os.environ, "MIBS": ""}  # no MIB files: answers stay numeric and startup quiet
    # -I -smux: no SMUX listener on TCP 199, which another snmpd on this machine may hold.
    process = subprocess.Popen([exe, "-f", "-C", "-c", str(work / "snmpd.conf"), "-Lf", str(agent.log),
                                "-M", "/dev/null", "-m", "", "-I", "-smux", "-p", str(work / "snmpd.pid")],
                               env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.STDOUT, start_new_session=True)
    agent = dataclasses.replace(agent, pid=process.pid)
    try:
        until = time.monotonic() + 15
        while not snmp_answers(port, agent.community, timeout=0.2):
            if process.poll() is not None or time.monotonic() > until:
                pytest.fail(f"snmpd did not start: {agent.log.read_text(errors='replace')[-1000:]}")
            time.sleep(0.1)
        yield agent
    finally:
        stop(process)
