"""Hostile input (issue 18): numbers the code cannot schedule, files that never end, YAML that
multiplies itself, spreadsheets with giant cells and headers, and messages that must point at the truth.

Every case ends in a ConfigError whose Problems name the file, the line (or CSV row) and the field or
column, in bounded time and memory; through the command line that is exit 2 and no traceback.
"""

from __future__ import annotations

import asyncio
import copy
import io
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from monitor.cli.main import main
from monitor.config.importer import SiteWriter, import_csv
from monitor.config.loader import load_config
from monitor.config.yamlsource import MAX_INPUT_BYTES, Unreadable, read_input
from monitor.errors import ConfigError, Problem
from monitor.runtime.scheduler import Runner
from monitor.runtime.service import Service
from monitor.web.app import make_app
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
    runner = Runner(service, path, make_app=make_app)
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


# -- YAML that multiplies itself ------------------------------------------------------------------

def alias_bomb(levels: int = 9) -> str:
    """Return a ~1 KB billion-laughs document under an unused key: 9^9 strings once expanded."""
    out = ['  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefghi", "bcdefghij"[: levels - 1], strict=False):
        out.append(f"  {name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    return "\n".join(out) + "\n"


def test_an_alias_bomb_fails_fast_at_its_line(tmp_path: Path) -> None:
    """A 1 KB alias bomb (17 s and 1.66 GB before a MemoryError traceback): exit 2 at once, naming the alias line."""
    text = DEADLINE + "unused:\n" + alias_bomb()
    assert len(text) < 1100
    (tmp_path / "config.yml").write_text(text, encoding="utf-8")
    start = time.monotonic()
    proc = check_cli("config.yml", cwd=tmp_path)
    assert time.monotonic() - start < 20  # a subprocess on a loaded machine; the check itself takes milliseconds
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = text.splitlines().index(next(s for s in text.splitlines() if s.startswith("  f:"))) + 1
    assert proc.stderr.splitlines()[1:] == [
        f"  config.yml:{line}: invalid YAML: alias *e takes the document past the 100,000 nodes aliases may add (or "
        "as many as the text holds, if more): an alias bomb?"]


def test_an_alias_bomb_in_an_inventory(tmp_path: Path) -> None:
    """The same in an inventory file, in process: milliseconds and a few MB."""
    (tmp_path / "sites.yaml").write_text("x:\n" + alias_bomb() + "sites: []\n", encoding="utf-8")
    (tmp_path / "config.yml").write_text(DEADLINE + "inventory: [sites.yaml]\n", encoding="utf-8")
    tracemalloc.start()
    start = time.monotonic()
    try:
        [problem] = problems_of(tmp_path / "config.yml")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - start < 2
    assert peak < 16 << 20
    assert (problem.file, problem.line) == (str(tmp_path / "sites.yaml"), 7)
    assert problem.message.startswith("invalid YAML: alias *e takes the document past")


def test_aliases_that_share_blocks_still_load(tmp_path: Path) -> None:
    """Anchors and aliases within the limit keep working: 300 sites share one terminal list."""
    terminals = "  terminals: &t\n" + "".join(f"  - {{id: T{k}, address: 127.1.0.{k}}}\n" for k in range(1, 4))
    sites = "sites:\n- id: S0\n  name: n\n  county: c\n  area: urban\n" + terminals
    sites += "".join(f"- {{id: S{i}, name: n, county: c, area: urban, terminals: *t}}\n" for i in range(1, 300))
    (tmp_path / "config.yml").write_text(DEADLINE + sites, encoding="utf-8")
    config = load_config(tmp_path / "config.yml")
    assert len(config.sites) == 300 and all(len(s.terminals) == 3 for s in config.sites)


def test_aliases_may_add_as_many_nodes_as_the_text_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past ALIAS_MAX_NODES, aliases may still double the document (a big inventory that shares blocks)."""
    from monitor.config import yamlsource

    monkeypatch.setattr(yamlsource, "ALIAS_MAX_NODES", 1000)
    _compose = yamlsource._compose
    n = 500
    text = "a: &a [x, y, z]\nb:\n" + "".join(f"- [{i}, *a]\n" for i in range(n))  # each line: 2 nodes, alias adds 4
    with pytest.raises(yaml.YAMLError, match="alias bomb"):
        _compose(text)
    text = "a: &a [x, y, z]\nb:\n" + "".join(f"- [{i}, {i}, {i}, *a]\n" for i in range(n))  # 4 nodes, alias adds 4
    assert len(_compose(text)[0]["b"]) == n


# -- messages that point at the truth -------------------------------------------------------------

def test_a_nul_byte_is_placed_at_its_real_line_and_file(tmp_path: Path) -> None:
    """A NUL byte on line 19: that line of that file, not line 1 of `<unicode string>`."""
    lines = [f"# comment {i}" for i in range(3, 19)]
    text = DEADLINE + "listen: {port: 9108}\n" + "\n".join(lines) + "\ndata_dir: ./da\x00ta\n"
    assert text.splitlines()[18] == "data_dir: ./da\x00ta"
    (tmp_path / "config.yml").write_text(text, encoding="utf-8")
    assert problems_of(tmp_path / "config.yml") == [Problem(
        str(tmp_path / "config.yml"), "invalid YAML: character '\\x00' (U+0000) at column 15 is not allowed in YAML",
        19)]
    (tmp_path / "sites.yaml").write_text("sites:\n\n- id: S1\x07\n", encoding="utf-8")
    (tmp_path / "config.yml").write_text(DEADLINE + "inventory: [sites.yaml]\n", encoding="utf-8")
    assert problems_of(tmp_path / "config.yml") == [Problem(
        str(tmp_path / "sites.yaml"), "invalid YAML: character '\\x07' (U+0007) at column 9 is not allowed in YAML", 3)]


def test_invisible_characters_in_keys_are_shown(tmp_path: Path) -> None:
    """A byte order mark inside a key prints as \\ufeff, not as the valid-looking key it imitates."""
    path = tmp_path / "config.yml"
    path.write_text(DEADLINE + "maintenance:\n- {everything: true, reason: a, start: 2026-01-01, end: 2026-01-02}\n"
                    "- reason: b\n  \ufeffsites: [S1]\n  start: 2026-01-01\n  end: 2026-01-02\n"
                    "policy: {require\u200b_backup: true}\n", encoding="utf-8")
    messages = [str(p) for p in problems_of(path)]
    assert f"{path}:5: maintenance[1].\\ufeffsites: unknown key" in messages
    assert f"{path}:8: policy.require\\u200b_backup: unknown key" in messages
    assert all("\ufeff" not in m and "\u200b" not in m for m in messages)


def test_an_inventory_listed_twice_is_named_as_such(tmp_path: Path) -> None:
    """The same file twice (under two spellings): named with the config line, not each site a duplicate of itself."""
    (tmp_path / "sites.csv").write_text("site_id,name,county,area,primary_medium,primary_address\n"
                                        "S1,n,c,urban,fiber,127.0.0.1\nS2,n,c,urban,fiber,127.0.0.2\n",
                                        encoding="utf-8")
    path = tmp_path / "config.yml"
    path.write_text(DEADLINE + "inventory:\n- sites.csv\n- other.csv\n- ./sites.csv\n", encoding="utf-8")
    (tmp_path / "other.csv").write_text("site_id,name,county,area,primary_medium,primary_address\n"
                                        "S3,n,c,urban,fiber,127.0.0.3\n", encoding="utf-8")
    assert problems_of(path) == [Problem(
        str(path), "inventory file './sites.csv' is listed twice (first as inventory[0] on line 3)", 5, None,
        "inventory[2]")]


# -- spreadsheets: giant cells and headers, 100,000 rows -------------------------------------------

SHEET_HEADER = "site_id,name,county,area,primary_medium,primary_address"


def test_a_giant_cell_is_named_by_file_row_and_column(tmp_path: Path) -> None:
    """A cell over 131,072 characters (a `_csv.Error` traceback with no file or row): a placed problem."""
    path = tmp_path / "sites.csv"
    path.write_text(f"{SHEET_HEADER},notes\nS1,n,c,urban,fiber,127.0.0.1,\nS2,{'x' * 200_000},c,urban,fiber,127.0.0.2,"
                    f"\nS3,n,c,urban,fiber,127.0.0.3,{'y' * 70_000},{'z' * 66_000}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        import_csv(path, [])
    assert [str(p) for p in info.value.problems] == [
        f"{path}:3: site S2: name: a cell of 200,000 characters, more than the 65,536 a cell may hold",
        f"{path}:4: site S3: notes: a cell of 70,000 characters, more than the 65,536 a cell may hold",
        f"{path}:4: site S3: column 8: a cell of 66,000 characters, more than the 65,536 a cell may hold",
    ]
    (tmp_path / "config.yml").write_text(DEADLINE + "inventory: [sites.csv]\n", encoding="utf-8")
    proc = check_cli("config.yml", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "  sites.csv:3: site S2: name: a cell of 200,000 characters" in proc.stderr


def test_a_ten_megabyte_header_of_many_columns(tmp_path: Path) -> None:
    """A 10 MB header of five million columns (hung in a quadratic duplicate check): refused at once, before
    the csv module makes five million cells of it."""
    (tmp_path / "sites.csv").write_text(SHEET_HEADER + ",a" * 5_000_000 + "\nS1,n,c,urban,fiber,127.0.0.1\n",
                                        encoding="utf-8")
    (tmp_path / "config.yml").write_text(DEADLINE + "inventory: [sites.csv]\n", encoding="utf-8")
    start = time.monotonic()
    proc = check_cli("config.yml", cwd=tmp_path)
    assert time.monotonic() - start < 30
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.splitlines()[1:] == [
        "  sites.csv:1: 5,000,005 delimiters ',' on one line: no spreadsheet row has that many (at most 16,384 "
        "columns); is this the right file?"]


def test_too_many_columns(tmp_path: Path) -> None:
    """Past the 16,384 columns a spreadsheet program can have: refused with the header line; a data row of a
    million commas is refused before it becomes a million cells."""
    path = tmp_path / "sites.csv"
    path.write_text(SHEET_HEADER + ",c" * 20_000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        import_csv(path, [])
    assert [str(p) for p in info.value.problems] == [
        f"{path}:1: 20,006 columns, more than the 16,384 a spreadsheet can have (is this the right file, and its "
        "delimiter?)"]
    path.write_text(f"{SHEET_HEADER}\nS1,n,c,urban,fiber,127.0.0.1\nS2,n,c,urban,fiber,127.0.0.2{',' * 1_000_000}\n",
                    encoding="utf-8")
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError) as info:
            import_csv(path, [])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [(p.line, p.message[:31]) for p in info.value.problems] == [(3, "1,000,005 delimiters ',' on one")]
    assert peak < 32 << 20


def test_trailing_empty_columns_as_excel_exports_them(tmp_path: Path) -> None:
    """A sheet formatted out to column XFD exports 16,383 trailing delimiters on every line: still fine."""
    path = tmp_path / "sites.csv"
    tail = "," * (16_384 - 6)
    path.write_text(f"{SHEET_HEADER}{tail}\nS1,n,c,urban,fiber,127.0.0.1{tail}\n", encoding="utf-8")
    assert yaml.safe_load(import_csv(path, []))["sites"][0]["id"] == "S1"


def test_duplicate_columns_among_ten_megabytes_of_long_names(tmp_path: Path) -> None:
    """900 columns of 11,205-character names sharing a prefix: the duplicate is found (by counting, in one
    pass) and named; long header cells under the cell limit are fine."""
    prefix = "p" * 11_200
    names = [f"{prefix}{i:05d}" for i in range(899)] + [f"{prefix}00007"]
    path = tmp_path / "sites.csv"
    path.write_text(SHEET_HEADER + "," + ",".join(names) + "\nS1,n,c,urban,fiber,127.0.0.1\n", encoding="utf-8")
    assert path.stat().st_size > 10_000_000
    start = time.process_time()
    with pytest.raises(ConfigError) as info:
        import_csv(path, [])
    assert time.process_time() - start < 5
    assert [(p.line, p.field, p.message) for p in info.value.problems] == [
        (1, f"{prefix}00007", "column appears more than once")]


def write_sheet(path: Path, rows: int) -> None:
    """A province's export: two links and three terminals per site, Persian names, upstreams."""
    lines = [f"{SHEET_HEADER},backup_medium,backup_address,terminals,upstream,lat,lon"]
    for i in range(rows):
        a, b = i // 256 % 256, i % 256
        terminals = ";".join(f"T{k}@127.{20 + k}.{a}.{b}:8080" for k in range(3))
        lines.append(f'S{i:06d},"مدرسه {i}، ایلام",C{i % 30},{"urban" if i % 2 else "rural"},fiber,127.10.{a}.{b},'
                     f"lte,127.11.{a}.{b},{terminals},{f'S{i % 100:06d}' if i >= 100 else ''},33.5,46.4")
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8-sig")


@pytest.mark.slow
def test_a_big_sheet_imports_in_seconds_and_bounded_memory(tmp_path: Path) -> None:
    """20,000 rows through `readiness inventory import` (bench/import_csv.py does 100,000): before, 21 CPU
    seconds and 606 MiB; now about 4 s and 170 MiB. Bounds leave room for a slow machine."""
    write_sheet(tmp_path / "sites.csv", 20_000)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "inventory", "import", "sites.csv", "-o", "sites.yaml"],
                            cwd=tmp_path, env=env, stderr=subprocess.PIPE, preexec_fn=_limit_memory)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, err.decode()[-2000:]
    assert usage.ru_utime + usage.ru_stime < 15
    assert usage.ru_maxrss < 350 * 1024  # KiB
    sites = yaml.load((tmp_path / "sites.yaml").read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)["sites"]
    assert len(sites) == 20_000 and sites[-1]["name"] == "مدرسه 19999، ایلام" and sites[-1]["upstream"] == "S000099"


TRICKY = ["yes", "No", "null", "~", "", "1", "1.5", "0x1F", "2026-01-01", "12:30", "#x", "- a", ": b", "a: b", "'q'",
          '"dq"', "long name " * 20, "a\x00b", "\ufeff", "tab\tin", "multi\nline", "سلام، ایلام", "\u2028x", "@at",
          "`bt", "%p", "!t", "&a", "*a", "|", "> x", "?", "-", "--- x", "...", "=cmd", "+1", "-1", ".inf", "on",
          "a" * 130, "127.0.0.1", "::1", 3, 0, -1, 1.5, 33.63, 1e20, float("inf"), True, False, None, [], {},
          [1, "a"], {"k": "v", "yes": 1}]


def test_site_writer_writes_what_safe_dump_writes() -> None:
    """The fast writer is yaml.safe_dump, byte for byte, on every kind of value (quoting, folding, escapes)."""
    c = copy.deepcopy  # no object twice: safe_dump would write anchors for those
    doc = {"sites": [{"id": "S1", "v": c(v), "yes": c(v), "list": [c(v), {"x": c(v)}]} for v in TRICKY]}
    want = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=120)
    out = io.StringIO()
    writer = SiteWriter(out)
    for s in doc["sites"]:
        writer.write(s)
    writer.close()
    assert out.getvalue() == want
    out = io.StringIO()
    writer = SiteWriter(out)
    writer.write({"name": "مدرسه 😀"})  # beyond U+FFFF libyaml escapes; it reads back the same
    writer.close()
    assert yaml.safe_load(out.getvalue()) == {"sites": [{"name": "مدرسه 😀"}]}


def test_a_value_yaml_cannot_build_is_placed(tmp_path: Path) -> None:
    """`2026-13-45` looks like a date to YAML: PyYAML's ValueError (a traceback, found by the fuzz test) is a
    placed problem, on the fast path and on the one that handles anchors."""
    for extra in ("", "anchored: &a 1\n"):
        path = tmp_path / "config.yml"
        path.write_text(DEADLINE + extra + "waivers:\n- {site: S1, until: 2026-13-45}\n", encoding="utf-8")
        assert problems_of(path) == [Problem(
            str(path), "invalid YAML: cannot read '2026-13-45' as a timestamp: month must be in 1..12",
            3 + bool(extra))]


# -- lists that would be millions of problems -----------------------------------------------------

def test_a_list_longer_than_any_config_needs(tmp_path: Path) -> None:
    """`waivers:` with 10,001 entries: one placed problem, not 30,003 (a 15 MB list of 3,000,000 took GBs)."""
    path = tmp_path / "config.yml"
    path.write_text(DEADLINE + "waivers:\n" + "- {}\n" * 10_001, encoding="utf-8")
    assert problems_of(path) == [Problem(str(path), "more than 10,000 entries in one list", 2, None, "waivers")]
    path.write_text(DEADLINE + "x: &a 1\nwaivers:\n" + "- {}\n" * 10_001, encoding="utf-8")  # the anchored path
    assert problems_of(path) == [Problem(str(path), "more than 10,000 entries in one list", 3, None, "waivers")]
    path.write_text(DEADLINE + "policy: {" + ", ".join(f"k{i}: 1" for i in range(10_001)) + "}\n", encoding="utf-8")
    assert problems_of(path) == [Problem(str(path), "more than 10,000 entries in one mapping", 2, None, "policy")]


def test_more_sites_than_a_config_may_have(tmp_path: Path) -> None:
    """A 1 MB inventory of 300,000 non-sites (5.5 million took 138 s and 4.8 GB): refused at 250,000."""
    (tmp_path / "sites.yaml").write_text("sites:\n" + "- a\n" * 300_000, encoding="utf-8")
    (tmp_path / "config.yml").write_text(DEADLINE + "inventory: [sites.yaml]\n", encoding="utf-8")
    start = time.process_time()
    assert problems_of(tmp_path / "config.yml") == [
        Problem(str(tmp_path / "sites.yaml"), "more than 250,000 entries in one list", 1, None, "sites")]
    assert time.process_time() - start < 10


def test_more_rows_than_sites_a_config_may_have(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same bound for a spreadsheet, and for all inventories together (MAX_SITES lowered to 100 here)."""
    from monitor.config import inventory
    from monitor.config import loader as config

    monkeypatch.setattr(inventory, "MAX_SITES", 100)
    monkeypatch.setattr(config, "MAX_SITES", 150)
    rows = [f"S{i},n,c,urban,fiber,127.1.{i // 256}.{i % 256}" for i in range(101)]
    (tmp_path / "a.csv").write_text("\n".join([SHEET_HEADER, *rows]) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        import_csv(tmp_path / "a.csv", [])
    assert info.value.problems == [Problem(str(tmp_path / "a.csv"), "more than 100 rows: more sites than a config may "
                                                                    "have", 102)]
    (tmp_path / "a.csv").write_text("\n".join([SHEET_HEADER, *rows[:80]]) + "\n", encoding="utf-8")
    (tmp_path / "b.csv").write_text("\n".join([SHEET_HEADER, *rows[80:]]) + "\n", encoding="utf-8")
    (tmp_path / "c.csv").write_text("\n".join([SHEET_HEADER, *(r.replace("S", "C", 1) for r in rows[:80])]) + "\n",
                                    encoding="utf-8")
    (tmp_path / "config.yml").write_text(DEADLINE + "inventory: [a.csv, b.csv, c.csv]\n", encoding="utf-8")
    assert problems_of(tmp_path / "config.yml") == [
        Problem(str(tmp_path / "config.yml"), "181 sites, more than the 150 a config may have", 2, None, "inventory")]


def test_validation_stops_after_max_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_PROBLEMS (lowered to 5 here) validation stops, and says so where it stopped."""
    from monitor.config import loader as config

    monkeypatch.setattr(config, "MAX_PROBLEMS", 5)
    rows = [f"S{i},n,c,suburban,fiber,127.1.0.{i}" for i in range(1, 20)]
    (tmp_path / "a.csv").write_text("\n".join([SHEET_HEADER, *rows]) + "\n", encoding="utf-8")
    for load in (lambda: import_csv(tmp_path / "a.csv", []), lambda: load_config(tmp_path / "config.yml")):
        (tmp_path / "config.yml").write_text(DEADLINE + "inventory: [a.csv]\n", encoding="utf-8")
        with pytest.raises(ConfigError) as info:
            load()
        assert [p.message for p in info.value.problems] == [
            *["Input should be 'urban' or 'rural'"] * 5, "more than 5 problems: validation stopped here"]
        assert info.value.problems[-1].line == 7


def test_a_config_with_more_values_than_it_may_have(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Besides its sites, a config holds at most MAX_CONFIG_NODES values (lowered to 50 here): pydantic would
    make a problem of each of them at once."""
    from monitor.config import loader as config

    monkeypatch.setattr(config, "MAX_CONFIG_NODES", 50)
    site_ids = ", ".join("-" for _ in range(30))
    path = tmp_path / "config.yml"
    path.write_text(DEADLINE + "maintenance:\n" + f"- {{reason: x, sites: [{site_ids}]}}\n" * 3, encoding="utf-8")
    assert problems_of(path) == [Problem(str(path), "103 values besides the sites, more than the 50 a config may have",
                                         1)]
    path.write_text(DEADLINE + "sites:\n" + "- {id: S, name: n, county: c, area: urban}\n" * 20, encoding="utf-8")
    assert {p.message for p in problems_of(path)} == {"duplicate site id, first defined at " + f"{path}:3"}
