"""Builders for configs, observations and snapshots used across the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from monitor.config.loader import Config, load_config
from probes.base import Observation

ICMP_OK = {"sent": 3, "received": 3, "loss_ratio": 0.0, "rtt_min_seconds": 0.001, "rtt_avg_seconds": 0.002,
           "rtt_max_seconds": 0.003, "jitter_seconds": 0.0005}
SNMP_OK = {"oper_up": 1, "admin_up": 1, "uptime_seconds": 86400, "last_change_seconds": 80000, "oper_changes": 0,
           "rebooted": 0, "in_bps": 1e6, "out_bps": 2e6, "in_errors_per_second": 0, "out_errors_per_second": 0,
           "in_discards_per_second": 0, "rx_power_dbm": -12.5, "tx_power_dbm": -3.1, "if_index": 3,
           "in_octets_total": 1.25e8, "out_octets_total": 2.5e8, "in_errors_total": 0, "out_errors_total": 0,
           "in_discards_total": 0}


def site(site_id: str = "S1", *, backup: bool = True, terminals: int = 2, upstream: str | None = None,
         snmp: bool = False, kind: str = "polling", n: int = 1) -> dict[str, Any]:
    """Return one inventory site dict with distinct loopback addresses."""
    links: list[dict[str, Any]] = [{"role": "primary", "medium": "fiber", "address": f"127.21.0.{n}"}]
    if snmp:
        links[0]["snmp"] = {"device": "127.0.0.1", "port": 16100, "auth": "lab", "if_index": 3}
    if backup:
        links.append({"role": "backup", "medium": "lte", "address": f"127.22.0.{n}"})
    out: dict[str, Any] = {"id": site_id, "name": f"مدرسه {site_id}", "county": "Ilam", "area": "urban",
                           "kind": kind, "links": links,
                           "terminals": [{"id": f"T{k}", "address": f"127.23.{n}.{k}", "port": 18080}
                                         for k in range(1, terminals + 1)]}
    if upstream:
        out["upstream"] = upstream
    return out


def write_config(tmp: Path, sites: list[dict[str, Any]], **extra: Any) -> Path:
    """Write a config with inline sites and return its path."""
    doc: dict[str, Any] = {"programme": {"name": "test", "deadline": "2026-12-31T23:59:59+03:30"},
                           "auths": {"lab": {"version": "2c", "community": "s3cret-community"}},
                           **extra, "sites": sites}
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def config(tmp: Path, sites: list[dict[str, Any]], **extra: Any) -> Config:
    """Write and load a config."""
    return load_config(write_config(tmp, sites, **extra))


def obs(key: str, kind: str = "icmp", ok: bool = True, at: float = 1000.0, **values: float) -> Observation:
    """Return an observation; ICMP defaults to a clean echo run."""
    base = dict(ICMP_OK) if kind == "icmp" and ok else {}
    base.update(values)
    return Observation(key, kind, ok, at, base, "" if ok else "timeout", "" if ok else "0/3 replies")
