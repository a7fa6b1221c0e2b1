"""Mutated configs and spreadsheets, fed to `readiness check` and `readiness inventory import` in process.

Every case is generated from a seed and its number alone (``random.Random(f"{seed}:{kind}:{n}")``), so
any case can be run again by name. A case is a small valid province (a config with inline sites, a CSV
and a YAML inventory; or a spreadsheet export) after one to three mutations: lines deleted, doubled or
swapped, bytes flipped or inserted (NUL, invalid UTF-8, BOM, CR, quotes, delimiters), values replaced
by hostile ones (``.inf``, ``1e308``, 2**63, 10**54, undefined aliases, tags), invisible characters in
keys, an alias bomb, deep nesting, a megabyte line, lists of 300,000 entries, giant cells, a ten-megabyte
header, and inventories that are /dev/zero, a FIFO, a directory, the config itself or the same file twice.

The contract each case checks: exit code 0 or 2, no exception out of ``main`` and no traceback in its
output, done within ``CASE_SECONDS`` (a SIGALRM turns a hang into a recorded failure). Run as a module
it prints one JSON line per case and a last line with the process's peak memory; `tests/monitor/
test_fuzz.py` runs it in a subprocess with an address-space limit, `bench/fuzz_inputs.py` at scale.

    python -m tests.monitor.fuzz_inputs --seed 18 --configs 200 --sheets 150
    python -m tests.monitor.fuzz_inputs --seed 18 --case config:17     # one case again, with its files kept
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import random
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

CASE_SECONDS = 10.0  # a case still running after this long is a hang

CONFIG = """\
# A small province: inline nodes, a spreadsheet and a YAML inventory.
programme:
  name: آمادگی انتخابات استان ایلام
  deadline: 2026-12-31T23:59:59+03:30
  timezone: Asia/Tehran
  calendar: jalali
listen: {host: 127.0.0.1, port: 9108}
data_dir: ./data
probes:
  icmp: {interval_seconds: 60, count: 3, spacing_seconds: 0.5, timeout_seconds: 1.0, rate_per_second: 20000}
  tcp: {interval_seconds: 60, timeout_seconds: 3, jitter_seconds: 5, concurrency: 1024}
  snmp: {interval_seconds: 60, timeout_seconds: 2, retries: 1, max_repetitions: 25}
policy:
  require_backup: true
  terminals_min_ratio: 1.0
  stale_after_intervals: 3
  sustain_seconds: 0
  flap_max_changes: 4
  flap_window_seconds: 600
  forecast_days: 14
  media:
    fiber: {loss_max_ratio: 0.01, rtt_max_seconds: 0.05, rx_power_min_dbm: -25, rx_power_warn_dbm: -23}
    lte: {loss_max_ratio: 0.05, rtt_max_seconds: 0.15}
auths:
  core: {version: "2c", community: public}
  v3: {version: "3", user: monitor, auth_protocol: SHA256, auth_key: secret-key, priv_protocol: AES, priv_key: k2}
maintenance:
  - {sites: [ILM-001], reason: splice, start: 2026-06-01T02:00:00, end: 2026-06-01T04:00:00}
  - {counties: [Ilam], reason: weekly, weekly: {days: [fri], start: "02:00", duration_minutes: 60}}
  - {everything: true, reason: nightly, cron: "0 3 * * *", duration_minutes: 30}
waivers:
  - {site: ILM-002, requirement: backup, until: 2026-09-01, approved_by: committee, reason: no LTE}
inventory:
  - sites.csv
  - more-sites.yaml
sites:
  - id: AGG-ILM
    name: گره تجمیع ایلام
    county: Ilam
    area: urban
    kind: node
    location: {lat: 33.637, lon: 46.423}
    links:
      - role: primary
        medium: fiber
        address: 127.30.0.1
        snmp: {device: 127.0.0.1, port: 16100, auth: core, if_index: 3, rx_sensor: 12}
      - {role: backup, medium: microwave, address: 127.31.0.1}
"""

SHEET_ROWS = [
    "site_id,name,county,area,lat,lon,upstream,primary_medium,primary_address,backup_medium,backup_address,terminals",
    'ILM-001,"دبستان شهید بهشتی، ایلام",Ilam,urban,33.63,46.42,AGG-ILM,fiber,127.32.0.1,lte,127.33.0.1,'
    '"T1@127.34.0.1:8080;T2@[::1]:8443"',
    "ILM-002,مدرسه امید,Ilam,rural,۳۳٫۶۴,۴۶٫۴۰,AGG-ILM,fiber,127.32.0.2,,,T1@127.34.0.2",
    'EYV-001,"خانه بهداشت ""سرابله""",Eyvan,rural,,,,vsat,127.32.0.3,lte,127.33.0.3,T1@127.34.0.3:80;T2@::1',
    "EYV-002,مسجد نور,Eyvan,urban,33.80,46.30,EYV-001,adsl,127.32.0.4,radio,127.33.0.4,",
]

MORE_SITES = """\
sites:
  - id: MHR-001
    name: حسینیه فجر
    county: Mehran
    area: urban
    upstream: AGG-ILM
    links:
      - {role: primary, medium: fiber, address: 127.32.1.1}
    terminals: &terminals
      - {id: T1, address: 127.34.1.1, port: 8080}
      - {id: T2, address: 127.34.1.2}
  - id: MHR-002
    name: مدرسه مهران
    county: Mehran
    area: rural
    links:
      - {role: primary, medium: lte, address: 127.32.1.2}
      - {role: backup, medium: vsat, address: 127.33.1.2}
    terminals: *terminals
"""

HOSTILE_VALUES = [
    ".inf", "-.inf", ".nan", "1e308", "-1e308", "1.0e+308", str(2**63), str(-(2**63)), str(10**54), "1.0e+54", "0",
    "-1", "0.0000001", "1e-300", "null", "~", "[]", "{}", "''", '""', '"\\0"', '"\\x00\\ufeff"', "*undefined",
    "&a x", "!!python/object/apply:os.system ['true']", "!!binary AAAA", "!!set {a, b}", "!!omap [a: 1]",
    "!custom x", "yes", "No", "0x7fffffffffffffff", "0o777", "1_000_000", "2026-13-45", "9999-12-31T23:59:59-12:00",
    "0001-01-01T00:00:00+14:00", "[1, [2, [3, [4]]]]", "{a: {b: {c: {}}}}", "<<: {a: 1}", "'=cmd|'' /C calc''!A0'",
    "\"\\u202e\"", "T1@[::1", "127.0.0.1.1", "::ffff:1.2.3.4", "fe80::1%eth0", "' '", "'\t'", "? complex",
    "- list", "@at", "`bt", "%d", "|\n  block", ">\n  folded",
]
HOSTILE_BYTES = [b"\x00", b"\xff", b"\xc3", b"\xef\xbb\xbf", b"\t", b"\r", b"\r\n", b"\n", b":", b": ", b"- ", b"[",
                 b"]", b"{", b"}", b"&a ", b"*a", b"!", b"%", b"#", b"'", b'"', b"\\", b",", b";", b"\xe2\x80\xa8",
                 b"\xe2\x80\x8b", b"\x7f", b"\x1b[31m", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]
SPECIAL_FILES = ["/dev/zero", "/dev/null", "/dev/urandom", "FIFO", "DIR", "config.yml", "sites.csv", "./sites.csv",
                 "missing.yaml", "", "a\x00b", "/proc/self/status", "/", "DIR/", "LOOP", "../" * 40 + "etc/hostname"]


def alias_bomb(levels: int = 9) -> str:
    out = ['  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefghi", "bcdefghij"[: levels - 1], strict=False):
        out.append(f"  {name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    return "\n".join(out) + "\n"


@dataclass
class Case:
    """One generated input: its files (name -> bytes), the command and what was done to it."""

    id: str
    files: dict[str, bytes]
    argv: list[str]
    mutations: list[str] = field(default_factory=list)
    specials: list[str] = field(default_factory=list)  # FIFO, DIR or LOOP to create in the case directory


@dataclass
class Outcome:
    id: str
    code: int | None
    seconds: float
    mutations: list[str]
    error: str = ""  # an exception out of main, a traceback in the output, a hang or a wrong exit code
    peak_rss_kib: int = 0  # the process's peak so far: where it jumps, that case took the memory


# -- mutations ------------------------------------------------------------------------------------

def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def _mutate_bytes(rng: random.Random, data: bytes, what: list[str], sheet: bool) -> bytes:
    lines = _lines(data)
    choice = rng.randrange(12 if sheet else 10)
    i = rng.randrange(len(lines)) if lines else 0
    if choice == 0 and len(lines) > 1:
        what.append(f"delete line {i + 1}")
        del lines[i]
    elif choice == 1:
        what.append(f"double line {i + 1}")
        lines.insert(i, lines[i] if lines else b"")
    elif choice == 2 and len(lines) > 1:
        j = rng.randrange(len(lines))
        what.append(f"swap lines {i + 1} and {j + 1}")
        lines[i], lines[j] = lines[j], lines[i]
    elif choice == 3 and data:
        at = rng.randrange(len(data))
        what.append(f"flip byte {at}")
        return data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1:]
    elif choice == 4:
        at = rng.randrange(len(data) + 1)
        ins = rng.choice(HOSTILE_BYTES)
        what.append(f"insert {ins!r} at {at}")
        return data[:at] + ins + data[at:]
    elif choice == 5 and data:
        at = rng.randrange(len(data))
        what.append(f"truncate at {at}")
        return data[:at]
    elif choice == 6:
        n = rng.choice([1, 1000, 100_000, 1_000_000])
        what.append(f"a line of {n} characters at {i + 1}")
        lines.insert(i, (b"x: " if not sheet else b"") + b"y" * n)
    elif choice == 7:
        what.append("CR line ends" if rng.random() < 0.5 else "CRLF line ends")
        return data.replace(b"\n", b"\r" if what[-1].startswith("CR ") else b"\r\n")
    elif choice == 8:
        at = rng.randrange(len(data) + 1)
        what.append(f"invisible character at {at}")
        return data[:at] + rng.choice(["\ufeff", "\u200b", "\u200e", "\u202e", "\xa0"]).encode() + data[at:]
    elif choice == 9:
        what.append(f"{rng.choice(['UTF-16', 'Latin-1'])} encoding")
        text = data.decode("utf-8", "replace")
        return text.encode("utf-16") if what[-1].startswith("UTF-16") else text.encode("latin-1", "replace")
    elif choice == 10:  # spreadsheets only: cells
        return _mutate_cells(rng, lines, what)
    elif choice == 11:
        return _mutate_header(rng, lines, what)
    return b"\n".join(lines)


def _mutate_cells(rng: random.Random, lines: list[bytes], what: list[str]) -> bytes:
    i = rng.randrange(1, len(lines)) if len(lines) > 1 else 0
    cells = lines[i].split(b",")
    j = rng.randrange(len(cells))
    value = rng.choice([b"x" * 200_000, b"x" * 70_000, b'"unclosed', b'"a""b"', b"", b" ", b"-1", b"1e999", b"nan",
                        b"inf", b"\xd9\xa3\xd9\xab", b"T1@@", b";;;;", b"T1@[::1", b"T1@127.0.0.1:99999",
                        b";".join(b"T%d@127.0.0.%d" % (k, k % 250 + 1) for k in range(3000)), b"=cmd|' /C calc'!A0",
                        b"\x00", b"a,b,c,d,e,f,g,h", b"sep=;", b"URBAN", b"Fiber"])
    what.append(f"row {i + 1} cell {j + 1} = {value[:20]!r}{'...' if len(value) > 20 else ''}")
    cells[j] = value
    lines[i] = b",".join(cells)
    return b"\n".join(lines)


def _mutate_header(rng: random.Random, lines: list[bytes], what: list[str]) -> bytes:
    header = lines[0] if lines else b""
    choice = rng.randrange(6)
    if choice == 0:
        what.append("a ten-megabyte header of five million columns")
        header += b",a" * 5_000_000
    elif choice == 1:
        what.append("2,000 columns")
        header += b"".join(b",c%d" % k for k in range(2000))
    elif choice == 2:
        what.append("a duplicated column")
        names = header.split(b",")
        header += b"," + rng.choice(names)
    elif choice == 3:
        what.append("a column missing")
        names = header.split(b",")
        del names[rng.randrange(len(names))]
        header = b",".join(names)
    elif choice == 4:
        what.append("sep=; hint")
        return b"sep=;\n" + b"\n".join(line.replace(b",", b";") for line in lines)
    else:
        what.append("semicolon header")
        header = header.replace(b",", b";")
    lines[0] = header
    return b"\n".join(lines)


def _mutate_value(rng: random.Random, data: bytes, what: list[str]) -> bytes:
    """Replace the value of a random ``key: value`` line with a hostile one."""
    lines = _lines(data)
    candidates = [i for i, line in enumerate(lines) if b": " in line and not line.lstrip().startswith(b"#")]
    if not candidates:
        return data
    i = rng.choice(candidates)
    key, _, _ = lines[i].partition(b": ")
    value = rng.choice(HOSTILE_VALUES)
    what.append(f"line {i + 1}: {key.strip().decode('utf-8', 'replace')} = {value!r}")
    lines[i] = key + b": " + value.encode()
    return b"\n".join(lines)


def config_case(seed: int, n: int) -> Case:
    """Return config case ``n``: the province, one to three mutations, sometimes a hostile inventory list."""
    rng = random.Random(f"{seed}:config:{n}")
    files = {"config.yml": CONFIG.encode(), "sites.csv": ("\r\n".join(SHEET_ROWS) + "\r\n").encode("utf-8-sig"),
             "more-sites.yaml": MORE_SITES.encode()}
    what: list[str] = []
    specials: list[str] = []
    for _ in range(rng.randint(1, 3)):
        roll = rng.random()
        if roll < 0.12:
            names = [rng.choice(SPECIAL_FILES) for _ in range(rng.randint(1, 3))]
            what.append(f"inventory: {names}")
            specials += [s.rstrip("/") for s in names if s.rstrip("/") in ("FIFO", "DIR", "LOOP")]
            listed = ", ".join(json.dumps(s) for s in names)
            files["config.yml"] = files["config.yml"].replace(b"  - sites.csv\n  - more-sites.yaml\n",
                                                              f"  - sites.csv\n  - {listed}\n".encode())
        elif roll < 0.17:
            what.append("an alias bomb under an unused key")
            files["config.yml"] += b"unused:\n" + alias_bomb().encode()
        elif roll < 0.185:
            entries = rng.choice([10_001, 20_000, 300_000])
            what.append(f"a list of {entries} entries")
            if rng.random() < 0.5:
                files["more-sites.yaml"] = b"sites:\n" + b"- a\n" * entries
            else:
                files["config.yml"] += b"extra:\n" + b"- {}\n" * entries
        elif roll < 0.20:
            depth = rng.choice([100, 1000, 100_000])
            what.append(f"nesting {depth} deep")
            files["config.yml"] += b"deep: " + b"[" * depth + b"]" * depth + b"\n"
        elif roll < 0.55:
            name = rng.choice(["config.yml", "config.yml", "config.yml", "more-sites.yaml"])
            files[name] = _mutate_value(rng, files[name], what)
        else:
            name = rng.choice(["config.yml", "config.yml", "sites.csv", "more-sites.yaml"])
            files[name] = _mutate_bytes(rng, files[name], what, sheet=name.endswith(".csv"))
    return Case(f"config:{n}", files, ["check", "config.yml"], what, specials)


def sheet_case(seed: int, n: int) -> Case:
    """Return spreadsheet case ``n``: the export (BOM, CRLF, Persian) after one to three mutations."""
    rng = random.Random(f"{seed}:sheet:{n}")
    data = ("\r\n".join(SHEET_ROWS) + "\r\n").encode("utf-8-sig")
    what: list[str] = []
    for _ in range(rng.randint(1, 3)):
        data = _mutate_bytes(rng, data, what, sheet=True)
    return Case(f"sheet:{n}", {"sites.csv": data}, ["inventory", "import", "sites.csv", "-o", "sites.yaml"], what)


# -- running --------------------------------------------------------------------------------------

class _Hang(BaseException):
    """Raised by the alarm in a case that ran too long (BaseException: no `except Exception` eats it)."""


class _CurrentStderr(io.TextIOBase):
    """Logging's stream: whatever sys.stderr is at the time, so each case's log lines land in its output."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)


def _on_alarm(signum: int, frame: object) -> None:
    raise _Hang


def run_case(case: Case, directory: Path, main: Callable[[list[str]], int]) -> Outcome:
    """Write the case's files into ``directory``, run ``main`` on them there and judge the result."""
    for name, data in case.files.items():
        (directory / name).write_bytes(data)
    for special in case.specials:
        target = directory / special
        if not target.exists() and not target.is_symlink():
            if special == "FIFO":
                os.mkfifo(target)
            elif special == "DIR":
                target.mkdir()
            else:
                target.symlink_to(target.name)  # a symlink loop
    out, err = io.StringIO(), io.StringIO()
    code: int | None = None
    error = ""
    cwd = os.getcwd()
    start = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
    try:
        os.chdir(directory)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(case.argv))
    except _Hang:
        error = f"hang: still running after {CASE_SECONDS:g}s"
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 2
    except BaseException:  # MemoryError, RecursionError, anything: the case failed
        error = "exception: " + traceback.format_exc(limit=-8)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        os.chdir(cwd)
    seconds = time.monotonic() - start
    text = out.getvalue() + err.getvalue()
    if not error and "Traceback" in text:
        error = "traceback in the output: " + text[text.index("Traceback"):][:3000]
    if not error and code not in (0, 2):
        error = f"exit code {code}: {err.getvalue()[-1000:]}"
    return Outcome(case.id, code, round(seconds, 3), case.mutations, error,
                   resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def cases(seed: int, configs: int, sheets: int) -> Iterator[Case]:
    """Yield the cases one by one: a few of them hold ten megabytes, and the run should measure the code."""
    for n in range(configs):
        yield config_case(seed, n)
    for n in range(sheets):
        yield sheet_case(seed, n)


def run(seed: int, configs: int, sheets: int, only: str | None = None, keep: bool = False) -> int:
    """Run the cases, print one JSON line per case and a summary line; return 0 if none failed."""
    from monitor.cli.main import main

    logging.basicConfig(level=logging.INFO, stream=_CurrentStderr(), format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGALRM, _on_alarm)
    if only is not None:
        kind, _, number = only.partition(":")
        todo: Iterable[Case] = [(config_case if kind == "config" else sheet_case)(seed, int(number))]
    else:
        todo = cases(seed, configs, sheets)
    failed = count = 0
    start = time.monotonic()
    for case in todo:
        count += 1
        directory = Path(tempfile.mkdtemp(prefix=case.id.replace(":", "-") + "-"))
        try:
            outcome = run_case(case, directory, main)
        finally:
            if keep:
                print(f"kept {directory}", file=sys.stderr)
            else:
                shutil.rmtree(directory, ignore_errors=True)
        failed += bool(outcome.error)
        print(json.dumps(asdict(outcome), ensure_ascii=False), flush=True)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"summary": True, "cases": count, "failed": failed,
                      "seconds": round(time.monotonic() - start, 2),
                      "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2), "peak_rss_kib": usage.ru_maxrss}),
          flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run mutated configs and spreadsheets through check and import.")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--configs", type=int, default=200)
    parser.add_argument("--sheets", type=int, default=150)
    parser.add_argument("--case", help="run one case again, e.g. config:17 or sheet:4")
    parser.add_argument("--keep", action="store_true", help="keep each case's directory")
    args = parser.parse_args(argv)
    return run(args.seed, args.configs, args.sheets, args.case, args.keep)


if __name__ == "__main__":
    sys.exit(main())
