"""A config whose ICMP or TCP cycle cannot fit its interval for this many targets is rejected at check time."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.errors import ConfigError
from probes.icmp import IcmpSettings
from tests.monitor.fixtures import config, site


def test_paced_rounds_count_in_the_cycle() -> None:
    """10,000 targets at 1,000 echoes/s take 10 s per round: three rounds and the last wait."""
    s = IcmpSettings(count=3, spacing_seconds=0.5, timeout_seconds=1, rate_per_second=1000, interval_seconds=60)
    assert s.cycle_seconds_for(10_000) == pytest.approx(2 * 10 + 10 + 1)
    assert s.cycle_seconds_for(10) == pytest.approx(2 * 0.5 + 0.01 + 1)


def test_too_many_targets_for_the_rate_is_a_config_error(tmp_path: Path) -> None:
    """Three sites (6 link targets) at 1 echo/s cannot finish 3 rounds in 10 s."""
    sites = [site(f"S{i}", n=i, terminals=0) for i in range(1, 4)]
    with pytest.raises(ConfigError) as err:
        config(tmp_path, sites, probes={"icmp": {"interval_seconds": 10, "rate_per_second": 1}})
    assert "probes.icmp: 6 targets take 19s per cycle, not shorter than interval_seconds=10" in str(err.value)
    assert config(tmp_path, sites, probes={"icmp": {"interval_seconds": 30, "rate_per_second": 1}}).sites


def test_tcp_rounds_count_in_the_cycle() -> None:
    """40 connects 4 at a time, each up to 3 s: ten rounds, 30 s when every one times out."""
    from probes.tcp import TcpSettings

    s = TcpSettings(concurrency=4, timeout_seconds=3, interval_seconds=10)
    assert s.cycle_seconds_for(40) == pytest.approx(30)
    assert s.cycle_seconds_for(4) == pytest.approx(3)
    assert s.cycle_seconds_for(0) == pytest.approx(3)


def test_tcp_concurrency_too_small_for_the_terminals_is_a_config_error(tmp_path: Path) -> None:
    """40 terminals, 4 connects at a time with a 3 s timeout, cannot all be reached in a 10 s interval: the
    check names the file, the line of `concurrency` and the field, and what would fit."""
    sites = [site(f"S{i}", n=i, terminals=4) for i in range(1, 11)]
    probes = {"tcp": {"interval_seconds": 10, "timeout_seconds": 3, "concurrency": 4}}
    with pytest.raises(ConfigError) as err:
        config(tmp_path, sites, probes=probes)
    (problem,) = err.value.problems
    path = tmp_path / "config.yaml"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert problem.file == str(path) and problem.field == "probes.tcp.concurrency"
    assert problem.line is not None and lines[problem.line - 1].strip() == "concurrency: 4"
    assert str(problem).startswith(f"{path}:{problem.line}: probes.tcp.concurrency: 40 terminals need up to 30s")
    assert "never be probed" in problem.message and "concurrency to at least 14" in problem.message
    assert config(tmp_path, sites, probes={"tcp": {**probes["tcp"], "concurrency": 14}}).sites
