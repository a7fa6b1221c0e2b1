"""A country-sized inventory: 50,000 sites, two links and three terminals each, loads and validates.

Addresses come from 127.0.0.0/8 and are only data here: nothing is sent. The time is printed (run with
``-s`` to see it), not asserted: it depends on the machine.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from monitor.cli.report import config_summary
from monitor.config.loader import load_config

SITES = 50_000
NODES = 100  # aggregation nodes: every other site hangs off one of them


def _address(block: int, i: int) -> str:
    return f"127.{block}.{i // 256}.{i % 256}"


def _upstream(i: int) -> str:
    return "" if i < NODES else f"S{i % NODES:05d}"


def write_csv(path: Path) -> None:
    """Write the inventory as a spreadsheet export."""
    rows = ["site_id,name,county,area,lat,lon,upstream,primary_medium,primary_address,backup_medium,"
            "backup_address,terminals"]
    for i in range(SITES):
        terminals = ";".join(f"T{k}@{_address(12 + k, i)}:8080" for k in range(3))
        rows.append(f"S{i:05d},مدرسه {i},C{i % 30},{'urban' if i % 2 else 'rural'},33.5,46.4,{_upstream(i)},"
                    f"fiber,{_address(10, i)},lte,{_address(11, i)},{terminals}")
    path.write_text("\r\n".join(rows) + "\r\n", encoding="utf-8")


def write_yaml(path: Path) -> None:
    """Write the inventory as YAML, block style, as `readiness inventory import` writes it."""
    parts = ["sites:\n"]
    for i in range(SITES):
        up = f"  upstream: {_upstream(i)}\n" if _upstream(i) else ""
        terminals = "".join(f"  - id: T{k}\n    address: {_address(12 + k, i)}\n    port: 8080\n" for k in range(3))
        area = "urban" if i % 2 else "rural"
        parts.append(f"- id: S{i:05d}\n  name: مدرسه {i}\n  county: C{i % 30}\n  area: {area}\n"
                     f"  location:\n    lat: 33.5\n    lon: 46.4\n{up}"
                     f"  links:\n  - role: primary\n    medium: fiber\n    address: {_address(10, i)}\n"
                     f"  - role: backup\n    medium: lte\n    address: {_address(11, i)}\n"
                     f"  terminals:\n{terminals}")
    path.write_text("".join(parts), encoding="utf-8")


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "yaml"])
def test_fifty_thousand_sites(tmp_path: Path, fmt: str) -> None:
    """50,000 sites in one inventory file load and validate; print how long it took."""
    (write_csv if fmt == "csv" else write_yaml)(tmp_path / f"sites.{fmt}")
    (tmp_path / "config.yml").write_text(
        f"programme: {{deadline: '2026-12-31T23:59:59+03:30'}}\ninventory: [sites.{fmt}]\n"
        # 150,000 terminals: enough connects at once that every one gets its turn within the interval.
        "probes: {tcp: {concurrency: 10000}}\n", encoding="utf-8")
    started = time.perf_counter()
    config = load_config(tmp_path / "config.yml")
    elapsed = time.perf_counter() - started
    print(f"\n{SITES:,} sites from {fmt.upper()}: load_config took {elapsed:.1f} s")
    assert len(config.sites) == SITES
    assert config_summary(config).startswith(f"ok: {SITES} sites, {2 * SITES} links, {3 * SITES} terminals; "
                                              f"urban {SITES // 2}, rural {SITES // 2}; by county: C0 1667")
    last = config.sites[-1]
    assert (last.id, last.upstream, last.terminals[2].address) == ("S49999", "S00099", "127.14.195.79")
