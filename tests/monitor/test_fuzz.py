"""A few hundred mutated configs and spreadsheets through `check` and `inventory import` (issue 18).

The cases come from `tests.monitor.fuzz_inputs` with a fixed seed, so a failure names a case that can be
run again (``python -m tests.monitor.fuzz_inputs --seed 18 --case config:17 --keep``). They run in one
subprocess with an address-space limit: every case must exit 0 or 2 with no exception and no traceback,
none may take CASE_SECONDS (a hang), and the whole run must stay within a CPU and a memory budget.
`bench/fuzz_inputs.py` runs a larger corpus.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections import Counter
from pathlib import Path

from tests.monitor.fuzz_inputs import CASE_SECONDS, config_case, sheet_case

ROOT = Path(__file__).resolve().parents[2]
SEED, CONFIGS, SHEETS = 18, 200, 150
MEMORY_LIMIT = 2 << 30  # address space of the run: a runaway case dies of MemoryError there, not the machine


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def test_cases_are_deterministic() -> None:
    """A case is its seed and number: the same files and mutations every time."""
    assert config_case(SEED, 7) == config_case(SEED, 7) and config_case(SEED, 7) != config_case(SEED, 8)
    assert sheet_case(SEED, 3) == sheet_case(SEED, 3)


def test_mutated_configs_and_sheets_exit_0_or_2_without_traceback() -> None:
    """350 cases: exit 0 or 2, no traceback, no hang, bounded CPU time and memory."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "tests.monitor.fuzz_inputs", "--seed", str(SEED), "--configs",
                           str(CONFIGS), "--sheets", str(SHEETS)], cwd=ROOT, env=env, capture_output=True, text=True,
                          encoding="utf-8", timeout=600, preexec_fn=_limit_memory)
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines and lines[-1].get("summary"), proc.stdout[-2000:] + proc.stderr[-2000:]
    summary, outcomes = lines[-1], lines[:-1]
    failures = [f"{o['id']} {o['mutations']}: {o['error'][-1500:]}" for o in outcomes if o["error"]]
    assert not failures, "\n\n".join(failures[:10])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(outcomes) == summary["cases"] == CONFIGS + SHEETS
    assert [o["id"] for o in outcomes] == [*(f"config:{n}" for n in range(CONFIGS)), *(f"sheet:{n}" for n in
                                                                                    range(SHEETS))]
    codes = Counter((o["id"].split(":")[0], o["code"]) for o in outcomes)
    assert set(codes) == {("config", 0), ("config", 2), ("sheet", 0), ("sheet", 2)}, codes  # both sides reached
    assert max(o["seconds"] for o in outcomes) < CASE_SECONDS
    assert summary["cpu_seconds"] < 45, summary  # about 5 s
    assert summary["peak_rss_kib"] < 400 * 1024, summary  # about 190 MiB, the ten-megabyte cases included
