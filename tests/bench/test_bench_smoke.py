"""The province and country benchmarks still run: each at a toy size, in its own namespace, with its real peers.

Only that they finish and print sane figures is checked (no timing: the machine is shared); the full sizes
are run by hand (README, "Development").
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import require_root, require_tool

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.root, pytest.mark.slow]


def bench(script: str, *args: str) -> dict[str, Any]:
    run = subprocess.run([sys.executable, str(REPO / "bench" / script), *args, "--json"], capture_output=True,
                         text=True, timeout=240, check=False, cwd=REPO)
    assert run.returncode == 0, f"{script} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return dict(json.loads(run.stdout))


def test_province_bench_runs() -> None:
    """50 sites and the 50-target ICMP subset beside blackbox_exporter: every figure is there, the faults show."""
    require_root("the province benchmark (a namespace, nftables)")
    require_tool("prometheus")
    require_tool("prometheus-blackbox-exporter")
    out = bench("province.py", "--sites", "50", "--minutes", "0.1", "--interval", "3", "--warmup-cycles", "1",
                "--scrapes", "10")
    p, q = out["province"], out["peer"]
    assert p["targets"] == 200 and p["states"]["total"] == 50
    assert p["states"]["ready"] and p["states"]["not_ready"]  # the lab's faults reach the verdicts
    assert p["metrics"]["series_per_site_max"] <= 15  # ready or not (issue 13)
    assert p["metrics"]["series_per_ready_site_max"] <= 15 and p["under_load"]["scrapes"] == 10
    assert q["targets"] == 50 and q["ours"]["probes"] > 0 and q["blackbox"]["probes"] > 0
    assert q["ours"]["success_share"] == q["blackbox"]["success_share"] == 0.94  # the same dropped addresses


def test_country_bench_runs() -> None:
    """Two shards of 40 sites on a real Prometheus: the roll-ups add up, one shard killed turns unknown."""
    require_root("the country benchmark (a namespace, nftables)")
    require_tool("prometheus")
    require_tool("promtool")
    out = bench("country.py", "--shards", "2", "--sites-per-shard", "40", "--interval", "3", "--scrape-interval",
                "2", "--minutes", "0.1", "--warmup-cycles", "1", "--for-scale", "0.02", "--kill", "2")
    assert out["rollups"]["equal_to_shards"] and sum(out["rollups"]["province"][s] for s in (
        "ready", "degraded", "not_ready", "unknown")) == 80
    killed = out["killed"]
    assert killed["province"]["unknown"] == killed["sites"] == out["per_shard"]["2"]["sites"]
    assert killed["shard_down"] in ("pending", "firing")
