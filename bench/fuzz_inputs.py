"""The larger corpus of mutated configs and spreadsheets: thousands of cases over several seeds.

Each seed runs `tests.monitor.fuzz_inputs` in its own subprocess under an address-space limit (as the CI
test does with one seed and 350 cases) and the results are summed up: cases, exit codes, failures
(exceptions, tracebacks, hangs, other exit codes) with the command that runs each again, the slowest
cases, CPU time and the largest peak memory of a run.

    python bench/fuzz_inputs.py                              # seeds 1-4, 1,500 configs and 1,000 sheets each
    python bench/fuzz_inputs.py --seeds 1 2 --configs 300 --sheets 300 --json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MEMORY_LIMIT = 2 << 30


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_seed(seed: int, configs: int, sheets: int) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    """Run one seed's cases in a subprocess; return its summary, its outcomes and its stderr tail."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "tests.monitor.fuzz_inputs", "--seed", str(seed), "--configs",
                           str(configs), "--sheets", str(sheets)], cwd=ROOT, env=env, capture_output=True, text=True,
                          encoding="utf-8", preexec_fn=_limit_memory)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines or not lines[-1].get("summary"):  # the run itself died: count it as one failure
        return ({"summary": True, "cases": len(lines), "failed": 1, "seconds": 0, "cpu_seconds": 0,
                 "peak_rss_kib": 0, "died": proc.returncode}, lines, proc.stderr[-3000:])
    return lines[-1], lines[:-1], proc.stderr[-3000:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--configs", type=int, default=1500)
    parser.add_argument("--sheets", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    codes: Counter[tuple[str, int | None]] = Counter()
    failures: list[str] = []
    slowest: list[tuple[float, str, int]] = []
    total = {"cases": 0, "seconds": 0.0, "cpu_seconds": 0.0, "peak_rss_kib": 0}
    for seed in args.seeds:
        summary, outcomes, stderr = run_seed(seed, args.configs, args.sheets)
        if "died" in summary:
            failures.append(f"seed {seed}: the run died (exit {summary['died']}): {stderr}")
        for o in outcomes:
            codes[(o["id"].split(":")[0], o["code"])] += 1
            slowest.append((o["seconds"], o["id"], seed))
            if o["error"]:
                failures.append(f"python -m tests.monitor.fuzz_inputs --seed {seed} --case {o['id']} --keep\n"
                                f"  {o['mutations']}\n  {o['error'][-800:]}")
        total["cases"] += summary["cases"]
        total["seconds"] += summary["seconds"]
        total["cpu_seconds"] += summary["cpu_seconds"]
        total["peak_rss_kib"] = max(total["peak_rss_kib"], summary["peak_rss_kib"])
    slowest.sort(reverse=True)
    report = {"seeds": args.seeds, **total, "failures": len(failures),
              "exit_codes": {f"{kind} {code}": n for (kind, code), n in sorted(codes.items(), key=str)},
              "slowest": [{"seconds": s, "case": c, "seed": seed} for s, c, seed in slowest[:5]]}
    if args.json:
        print(json.dumps({**report, "failure_details": failures}, indent=1, ensure_ascii=False))
    else:
        print(f"{report['cases']} cases over seeds {args.seeds}: {len(failures)} failed "
              f"(exception, traceback, hang or exit code other than 0 and 2)")
        print(f"exit codes: {report['exit_codes']}")
        print(f"{total['seconds']:.1f} s wall, {total['cpu_seconds']:.1f} s CPU, "
              f"largest peak memory of a run {total['peak_rss_kib'] / 1024:.0f} MiB")
        print("slowest cases: " + ", ".join(f"{s:.2f} s {c} (seed {seed})" for s, c, seed in slowest[:5]))
        for f in failures[:20]:
            print(f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
