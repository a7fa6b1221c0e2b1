"""Hostile input (issue 18): numbers the code cannot schedule, files that never end, YAML that
multiplies itself, spreadsheets with giant cells and headers, and messages that must point at the truth.

Every case ends in a ConfigError whose Problems name the file, the line (or CSV row) and the field or
column, in bounded time and memory; through the command line that is exit 2 and no traceback.
"""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import load_config
from monitor.errors import ConfigError, Problem
from monitor.scheduler import Runner
from monitor.service import Service
from monitor.yamlsource import MAX_INPUT_BYTES, Unreadable, read_input
from tests.monitor.fixtures import site, write_config

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = "programme: {deadline: '2026-12-31T23:59:59+03:30'}\n"


def problems_of(path: Path) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


# -- numbers the code can schedule ----------------------------------------------------------------

@pytest.mark.parametrize(("kind", "key", "value", "message"), [
    ("icmp", "interval_seconds", ".inf", "Input should be a finite number"),
    ("icmp", "interval_seconds", "1e308", "Input should be less than or equal to 86400"),
    ("tcp", "interval_seconds", str(2**63), "Input should be less than or equal to 86400"),
    ("snmp", "interval_seconds", ".nan", "Input should be a finite number"),
    ("tcp", "jitter_seconds", "1e308", "Input should be less than or equal to 86400"),
    ("icmp", "rate_per_second", str(10**54), "Input should be less than or equal to 10000000"),
    ("icmp", "rate_per_second", "1.0e+54", "number too large"),
    ("icmp", "spacing_seconds", ".inf", "Input should be a finite number"),
    ("icmp", "receive_buffer_bytes", str(2**40), "Input should be less than or equal to 1073741824"),
    ("snmp", "timeout_seconds", "-.inf", "Input should be a finite number"),
])
def test_probe_numbers_out_of_range_are_placed(tmp_path: Path, kind: str, key: str, value: str, message: str) -> None:
    """`.inf`, `1e308`, `2**63`, `1e54`: rejected by validation with file, line and field."""
    path = tmp_path / "config.yml"
    path.write_text(DEADLINE + f"probes:\n  {kind}:\n    {key}: {value}\n", encoding="utf-8")
    assert problems_of(path) == [Problem(str(path), message, 4, None, f"probes.{kind}.{key}")]


@pytest.mark.parametrize(("key", "value"), [
    ("stale_after_intervals", ".inf"), ("sustain_seconds", "1e308"), ("flap_max_changes", str(2**63)),
    ("flap_window_seconds", ".inf"), ("flap_hold_seconds", "1e300"), ("forecast_days", ".inf"),
    ("forecast_resolution_seconds", "1e-300"), ("terminals_min_ratio", ".nan"),
])
def test_policy_numbers_out_of_range_are_placed(tmp_path: Path, key: str, value: str) -> None:
    """Every policy number is finite and within what the history, flap and forecast code computes with."""
    path = tmp_path / "config.yml"
    path.write_text(DEADLINE + f"policy:\n  {key}: {value}\n", encoding="utf-8")
    [problem] = problems_of(path)
    assert (problem.file, problem.line, problem.field) == (str(path), 3, f"policy.{key}")


def test_site_numbers_out_of_range_are_placed(tmp_path: Path) -> None:
    """Coordinates and SNMP indexes: finite and within their domain."""
    s = site("S1", snmp=True)
    s["location"] = {"lat": float("nan"), "lon": float("inf")}
    s["links"][0]["snmp"]["if_index"] = 2**63
    path = write_config(tmp_path, [s])
    got = {(p.field, p.message) for p in problems_of(path)}
    assert got == {("location.lat", "Input should be a finite number"),
                   ("location.lon", "Input should be a finite number"),
                   ("links[0].snmp.if_index", "Input should be less than or equal to 2147483647")}


def test_check_exits_2_on_an_infinite_interval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`readiness check` and a cold `readiness run` share the validation: exit 2, the line, no traceback."""
    path = tmp_path / "config.yml"
    path.write_text(DEADLINE + "probes:\n  tcp: {interval_seconds: .inf}\n", encoding="utf-8")
    for command in (["check", str(path)], ["run", str(path), "--once", "--no-store"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert f"{path}:3: probes.tcp.interval_seconds: Input should be a finite number" in err
        assert "Traceback" not in err


async def test_reload_of_an_infinite_interval_is_rejected(tmp_path: Path) -> None:
    """A reload is the same validation: `.inf` is rejected and the running jobs keep their interval."""
    path = write_config(tmp_path, [site("S1")], probes={"tcp": {"interval_seconds": 30}})
    service = Service(load_config(path))
    runner = Runner(service, path)
    runner._schedule()
    for value in (".inf", "1e308", str(2**63)):
        path.write_text(path.read_text(encoding="utf-8").replace("interval_seconds: 30",
                                                                 f"interval_seconds: {value}"), encoding="utf-8")
        ok, message = await runner.reload()
        assert not ok and "probes.tcp.interval_seconds" in message, message
        path.write_text(path.read_text(encoding="utf-8").replace(f"interval_seconds: {value}",
                                                                 "interval_seconds: 30"), encoding="utf-8")
    assert service.config.probe_settings("tcp").interval_seconds == 30
    assert runner.scheduler.get_job("probe:tcp") is not None
    await service.close()
    await asyncio.sleep(0)


# -- inputs are regular files of bounded size -----------------------------------------------------

MEMORY_LIMIT = 1 << 30  # address space of a `check` subprocess: a runaway read fails there, not on the machine


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def check_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m monitor check`` in a subprocess with bounded memory: a hang fails by timeout and a
    runaway read by MemoryError, instead of stalling the suite or the machine."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "monitor", "check", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, encoding="utf-8", timeout=60, preexec_fn=_limit_memory)


@pytest.mark.parametrize(("make", "kind"), [
    (lambda p: os.mkfifo(p), "a FIFO (named pipe)"),
    (lambda p: p.mkdir(), "a directory"),
    (lambda p: p.symlink_to("/dev/zero"), "a character device"),
])
def test_an_inventory_that_is_not_a_regular_file(tmp_path: Path, make: Callable[[Path], None], kind: str) -> None:
    """A FIFO (hung `check`), /dev/zero (1.9 GB in 6 s) or a directory: exit 2 at once, placed on the config line."""
    make(tmp_path / "sites.yaml")
    (tmp_path / "config.yml").write_text(DEADLINE + "inventory:\n- sites.yaml\n", encoding="utf-8")
    start = time.monotonic()
    proc = check_cli("config.yml", cwd=tmp_path)
    assert time.monotonic() - start < 30
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines()[1:] == [
        f"  config.yml:3: inventory[0]: cannot read inventory file 'sites.yaml': {kind}, not a regular file"]


def test_dev_zero_named_directly(tmp_path: Path) -> None:
    """`inventory: [/dev/zero]` and `check /dev/zero`: refused before a byte is read."""
    (tmp_path / "config.yml").write_text(DEADLINE + "inventory: [/dev/zero]\n", encoding="utf-8")
    proc = check_cli("config.yml", cwd=tmp_path)
    assert (proc.returncode, proc.stderr.splitlines()[1:]) == (2, [
        "  config.yml:2: inventory[0]: cannot read inventory file '/dev/zero': a character device, not a regular file"])
    proc = check_cli("/dev/zero", cwd=tmp_path)
    assert (proc.returncode, proc.stderr.splitlines()[1:]) == (2, [
        "  /dev/zero: cannot read: a character device, not a regular file"])


def test_a_fifo_as_the_config(tmp_path: Path) -> None:
    """`readiness check FIFO` with no writer: exit 2, no hang."""
    os.mkfifo(tmp_path / "config.yml")
    proc = check_cli("config.yml", cwd=tmp_path)
    assert proc.returncode == 2
    assert "config.yml: cannot read: a FIFO (named pipe), not a regular file" in proc.stderr


@pytest.mark.parametrize("name", ["sites.yaml", "sites.csv"])
def test_an_input_over_the_size_limit(tmp_path: Path, name: str) -> None:
    """A file larger than MAX_INPUT_BYTES is refused by its size, without reading it (sparse here)."""
    with (tmp_path / name).open("wb") as f:
        f.truncate(MAX_INPUT_BYTES + 1)
    (tmp_path / "config.yml").write_text(DEADLINE + f"inventory: [{name}]\n", encoding="utf-8")
    tracemalloc.start()
    try:
        [problem] = problems_of(tmp_path / "config.yml")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert problem.message == (f"cannot read inventory file {str(tmp_path / name)!r}: larger than 64 MiB, the most "
                               "a config or inventory file may hold")
    assert (problem.line, problem.field) == (2, "inventory[0]")
    assert peak < 8 << 20


def test_read_input_refuses_a_file_that_grows(tmp_path: Path) -> None:
    """The limit holds on what is read, not only on the size first seen."""
    path = tmp_path / "c.yml"
    path.write_bytes(b"a" * 100)
    assert read_input(path, limit=100) == b"a" * 100
    path.write_bytes(b"a" * 101)
    with pytest.raises(Unreadable, match="larger than"):
        read_input(path, limit=100)
    path.write_bytes(b"")
    assert read_input(path) == b""
