"""Observations with compact values (probes.base.Values) show exactly as the dicts they replace (issue 13)."""

from __future__ import annotations

import json
from pathlib import Path

from monitor.config.loader import load_config
from monitor.runtime.service import Service
from monitor.runtime.snapshot import Snapshot
from monitor.store.chain import canonical_json
from monitor.web.api import sites_json
from monitor.web.chrome import View
from monitor.web.exposition import render
from monitor.web.metrics import SnapshotCollector
from monitor.web.site_page import render_site
from probes.base import Observation, Values
from probes.icmp import echo_values
from probes.tcp import CONNECT_KEYS
from tests.monitor.fixtures import site, write_config

RTTS = {"S1/primary": [0.0012, 0.0034, 0.0021], "S1/backup": [0.0251], "S2/primary": [], "S2/backup": [0.09, 0.31]}


def plain(v: Values) -> dict[str, float]:
    return dict(v.items())


def snapshot(tmp_path: Path, compact: bool) -> Snapshot:
    """Return a snapshot of two sites: echoes all, one, none or some answered, terminals open or not probed."""
    service = Service(load_config(write_config(tmp_path, [site("S1"), site("S2", n=2)])), clock=lambda: 1000.0)
    for key, rtts in RTTS.items():
        values = echo_values(3, rtts)
        service.latest[key] = Observation(key, "icmp", bool(rtts), 1000.0, values if compact else plain(values),
                                          "" if rtts else "timeout", "" if rtts else "0/3 replies")
    for n, key in enumerate(("S1/terminal/T1", "S1/terminal/T2", "S2/terminal/T1")):
        values = Values(CONNECT_KEYS, (0.000731 * (n + 1),))
        service.latest[key] = Observation(key, "tcp", True, 1000.0, values if compact else plain(values))
    return service.evaluate(force=True)


def without_timing(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if "collect_seconds" not in line)


def test_api_metrics_page_and_store_json_are_the_same_as_with_dicts(tmp_path: Path) -> None:
    """The same measurements as Values and as dicts: the API's JSON, /metrics, the site pages and the store's
    canonical JSON are the same text."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    compact, dicts = snapshot(tmp_path / "a", True), snapshot(tmp_path / "b", False)
    assert isinstance(compact.sites["S1"].links[0].values, Values)
    assert isinstance(dicts.sites["S1"].links[0].values, dict)
    doc = sites_json(compact)
    assert json.dumps(doc, ensure_ascii=False, indent=1) == json.dumps(sites_json(dicts), ensure_ascii=False, indent=1)
    link = next(x for x in doc["sites"] if x["id"] == "S1")["links"][0]
    assert link["values"]["rtt_max_seconds"] == 0.0034 and link["values"]["sent"] == 3.0
    ours = without_timing(render(SnapshotCollector(lambda: compact).collect()).decode())
    assert ours == without_timing(render(SnapshotCollector(lambda: dicts).collect()).decode())
    assert 'site="S1"' in ours
    for site_ in compact.config.sites:
        assert render_site(compact, View("en", True), site_) == render_site(dicts, View("en", True), site_)
    for rtts in RTTS.values():
        values = echo_values(3, rtts)
        assert canonical_json({"values": values}) == canonical_json({"values": plain(values)})
