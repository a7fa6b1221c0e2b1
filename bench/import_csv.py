"""Time `readiness inventory import` (and `readiness check`) on a generated spreadsheet of N sites.

The sheet is what a province exports: two links and three terminals per site, Persian names, an
upstream for most sites, CRLF line ends. Each command runs in a fresh subprocess, so the figures are
the whole program's: wall seconds, CPU seconds and peak resident memory (``ru_maxrss`` from wait4).
Addresses come from 127.0.0.0/8 and are only data: nothing is sent.

    python bench/import_csv.py                  # 100,000 rows: import, then check
    python bench/import_csv.py --rows 10000 20000 --json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NODES = 100  # aggregation nodes: every other site hangs off one of them


def _address(block: int, i: int) -> str:
    return f"127.{block}.{i // 256 % 256}.{i % 256}"


def write_csv(path: Path, rows: int) -> None:
    """Write ``rows`` sites as a spreadsheet export (UTF-8 with a BOM, CRLF)."""
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        f.write("site_id,name,county,area,lat,lon,upstream,primary_medium,primary_address,backup_medium,"
                "backup_address,terminals\r\n")
        for i in range(rows):
            up = "" if i < NODES else f"S{i % NODES:06d}"
            terminals = ";".join(f"T{k}@{_address(12 + k + 4 * (i >> 16), i)}:8080" for k in range(3))
            f.write(f"S{i:06d},\"مدرسه {i}، ایلام\",C{i % 30},{'urban' if i % 2 else 'rural'},33.5,46.4,{up},"
                    f"fiber,{_address(10 + 4 * (i >> 16), i)},lte,{_address(11 + 4 * (i >> 16), i)},{terminals}\r\n")


@dataclass
class Result:
    command: str
    rows: int
    exit_code: int
    wall_seconds: float
    cpu_seconds: float
    peak_rss_mib: float


def measure(args: list[str], rows: int, cwd: Path) -> Result:
    """Run ``python -m monitor ARGS`` and return its exit code, times and peak memory."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "monitor", *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()  # drained as it comes: a full pipe must not stall the child
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(err.decode("utf-8", "replace")[-2000:])
    return Result(" ".join(args[:2]), rows, proc.returncode, round(wall, 2),
                  round(usage.ru_utime + usage.ru_stime, 2), round(usage.ru_maxrss / 1024, 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000])
    parser.add_argument("--no-check", action="store_true", help="time the import only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for rows in args.rows:
            sheet = d / f"sites-{rows}.csv"
            write_csv(sheet, rows)
            results.append(measure(["inventory", "import", sheet.name, "-o", f"sites-{rows}.yaml"], rows, d))
            if not args.no_check:
                (d / f"config-{rows}.yml").write_text(
                    f"programme: {{deadline: '2026-12-31T23:59:59+03:30'}}\ninventory: [{sheet.name}]\n",
                    encoding="utf-8")
                results.append(measure(["check", f"config-{rows}.yml"], rows, d))
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=1))
    else:
        print(f"{'command':<18}{'rows':>9}{'exit':>6}{'wall s':>9}{'cpu s':>9}{'peak MiB':>10}")
        for r in results:
            print(f"{r.command:<18}{r.rows:>9}{r.exit_code:>6}{r.wall_seconds:>9.2f}{r.cpu_seconds:>9.2f}"
                  f"{r.peak_rss_mib:>10.1f}")
    return 0 if all(r.exit_code == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
