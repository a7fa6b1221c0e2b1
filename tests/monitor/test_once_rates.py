"""`run --once` with SNMP: rates come from a second poll, or are said to be unknown, never read as zero."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from monitor.config.loader import load_config
from monitor.core.model import Link, MediumPolicy
from monitor.core.readiness import Freshness, link_health
from monitor.runtime.service import Service
from probes.base import NOTHING_DROPPED, Dropped, Observation, ProbeSettings, Target
from tests.monitor.fixtures import ICMP_OK, SNMP_OK, site, write_config

FIRST_POLL = {k: v for k, v in SNMP_OK.items() if not k.endswith("_per_second") and not k.endswith("_bps")}


def test_a_first_poll_has_unknown_rates_not_zero_errors() -> None:
    link = Link(role="primary", medium="fiber", address="127.21.0.1",
                snmp={"device": "127.0.0.1", "auth": "lab", "if_index": 3})
    icmp = Observation("S1/primary", "icmp", True, 1000.0, ICMP_OK)
    fresh = Freshness({"icmp": 100.0, "snmp": 100.0})
    one = link_health(link, icmp, Observation("S1/primary/snmp", "snmp", True, 1000.0, FIRST_POLL), MediumPolicy(),
                      fresh, 1000.0)
    assert [str(w) for w in one.warnings] == ["primary.rates_unknown"]
    assert "in_errors_per_second" not in one.values
    two = link_health(link, icmp, Observation("S1/primary/snmp", "snmp", True, 1000.0, SNMP_OK), MediumPolicy(),
                      fresh, 1000.0)
    assert two.warnings == () and two.state == "up"


class Counting:
    """An SNMP probe whose first poll has no rates and whose second has 5 errors/s."""

    kind = "snmp"
    settings_model: type[ProbeSettings] = ProbeSettings

    def __init__(self) -> None:
        self.polls = 0

    async def warm(self) -> None: ...
    async def close(self) -> None: ...

    async def run(self, targets: Sequence[Target], settings: ProbeSettings, deadline: float) -> list[Observation]:
        self.polls += 1
        values = FIRST_POLL if self.polls == 1 else {**SNMP_OK, "in_errors_per_second": 5.0}
        return [Observation(t.key, "snmp", True, 1000.0, values) for t in targets]

    def requests_sent(self, observations: Sequence[Observation]) -> int:
        return len(observations)

    def dropped(self) -> Dropped:
        return NOTHING_DROPPED


class Answering:
    kind = "icmp"
    settings_model: type[ProbeSettings] = ProbeSettings

    async def warm(self) -> None: ...
    async def close(self) -> None: ...

    async def run(self, targets: Sequence[Target], settings: ProbeSettings, deadline: float) -> list[Observation]:
        return [Observation(t.key, "icmp", True, 1000.0, ICMP_OK) for t in targets]

    def requests_sent(self, observations: Sequence[Observation]) -> int:
        return len(observations)

    def dropped(self) -> Dropped:
        return NOTHING_DROPPED


async def test_run_once_polls_snmp_twice_and_judges_the_rates(tmp_path: Path) -> None:
    """Five errors a second are not ready-by-default: the second poll measures them and the link is impaired."""
    snmp = Counting()
    config = load_config(write_config(tmp_path, [site("S1", snmp=True, backup=False, terminals=0)]))
    service = Service(config, clock=lambda: 1000.0, probes={"icmp": Answering(), "snmp": snmp})  # type: ignore[dict-item]
    snap = await service.run_once(rate_gap_seconds=0.01)
    assert snmp.polls == 2
    primary = snap.sites["S1"].link("primary")
    assert primary is not None and primary.state == "impaired"
    assert [r.code for r in primary.reasons] == ["primary.errors"]
    assert "two polls" in service.once_note


async def test_run_once_with_one_poll_says_rates_are_unknown(tmp_path: Path) -> None:
    snmp = Counting()
    config = load_config(write_config(tmp_path, [site("S1", snmp=True, backup=False, terminals=0)]))
    service = Service(config, clock=lambda: 1000.0, probes={"icmp": Answering(), "snmp": snmp})  # type: ignore[dict-item]
    snap = await service.run_once(rate_gap_seconds=None)
    assert snmp.polls == 1
    primary = snap.sites["S1"].link("primary")
    assert primary is not None and [str(w) for w in primary.warnings] == ["primary.rates_unknown"]
    assert "not known" in service.once_note
