"""The built-in demo province: committed files match the generator; one cycle shows a mix of states."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from monitor.core.reasons import Reason
from monitor.demo import province as demo_province
from monitor.demo.run import faults
from tests.helpers import require_root

ROOT = Path(__file__).parents[2]


def test_committed_demo_config_is_generated() -> None:
    """config/demo.yaml and config/demo-sites.yaml are what `python -m monitor.demo.province` writes."""
    for name, text in demo_province.files().items():
        assert (ROOT / "config" / name).read_text(encoding="utf-8") == text, f"regenerate config/{name}"


def test_province_shape() -> None:
    """About 120 sites across Ilam's counties, Persian names, urban and rural, distinct addresses."""
    sites = demo_province.province()
    polling = [s for s in sites if s.get("kind") != "node"]
    assert 100 <= len(polling) <= 140
    assert len({s["county"] for s in sites}) == len(demo_province.COUNTIES)
    assert {s["area"] for s in polling} == {"urban", "rural"}
    assert all(any("\u0600" <= ch <= "\u06ff" for ch in s["name"]) for s in sites)
    addresses = [link["address"] for s in sites for link in s["links"]] + \
                [t["address"] for s in sites for t in s.get("terminals", [])]
    assert len(addresses) == len(set(addresses))
    assert all(a.startswith("127.") for a in addresses)
    assert any(len(s["links"]) == 1 for s in polling), "some site has no backup"


def test_faults_move_over_time() -> None:
    """The faults differ from one tick to the next, so the picture is not frozen."""
    sites = demo_province.province()
    assert faults(sites, 0) != faults(sites, 1)
    down, lossy, terms = faults(sites, 0)
    assert down and lossy and terms


def test_demo_once_shows_a_mix_of_states() -> None:
    """`readiness demo --once --json`: real listeners and real drops give every kind of state."""
    require_root("the demo's link faults (nftables)")
    proc = subprocess.run([sys.executable, "-m", "monitor", "demo", "--once", "--json"], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    summary = doc["summary"]
    assert all(summary[state] > 0 for state in ("ready", "degraded", "not_ready", "unknown")), summary
    reasons = {Reason.parse(r).code for s in doc["sites"] for r in s["reasons"] + s["warnings"]}
    assert {"backup.down", "backup.missing", "upstream", "terminals"} <= reasons, reasons
    # From the simulated switches: optics under and near the threshold, a port oper down, a dead agent.
    assert {"primary.rx_power", "primary.rx_power_warning", "primary.oper_down",
            "primary.snmp_unavailable"} <= reasons, reasons
    fiber = next(s for s in doc["sites"] if s["id"] == "ILM-001")["links"][0]["values"]
    assert {"rx_power_dbm", "oper_up", "uptime_seconds"} <= set(fiber)  # rates need a second cycle
    nft = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
    assert "readiness_demo" not in nft.stdout, "the demo must remove its nftables table"
