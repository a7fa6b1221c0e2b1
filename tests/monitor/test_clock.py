"""Time: freshness on the monotonic clock (a wall-clock step changes nothing), observations from the future
are not fresh, and ICMP round trips do not depend on the wall clock."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import probes.icmp as icmp_module
from monitor.config.loader import load_config
from monitor.core.readiness import Freshness
from monitor.runtime.service import Service
from probes.base import Observation, Target
from probes.icmp import IcmpProbe, IcmpSettings
from tests.helpers import require_root
from tests.monitor.fixtures import ICMP_OK, site, write_config


class Clocks:
    """A wall clock and a monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.wall, self.mono = 1_000_000.0, 500.0

    def obs(self, key: str, *, mono_ahead: float = 0.0) -> Observation:
        return Observation(key, "icmp", True, self.wall, dict(ICMP_OK), mono=self.mono + mono_ahead)


def link_states(service: Service) -> dict[str, str]:
    snap = service.evaluate()
    return {f"{r.site}/{h.role}": h.state for r in snap.sites.values() for h in r.links}


@pytest.fixture
def service(tmp_path: Path) -> tuple[Service, Clocks]:
    clocks = Clocks()
    svc = Service(load_config(write_config(tmp_path, [site("S1")], probes={"icmp": {"interval_seconds": 60}})),
                  clock=lambda: clocks.wall, monotonic=lambda: clocks.mono)
    for k in svc.cycles:  # warm: every kind has reported once
        svc.cycles[k] = svc.cycles[k].__class__(k, 60.0, cycles_total=1)
    return svc, clocks


def test_a_wall_clock_step_changes_no_freshness(service: tuple[Service, Clocks]) -> None:
    svc, clocks = service
    svc.latest.update({"S1/primary": clocks.obs("S1/primary"), "S1/backup": clocks.obs("S1/backup")})
    clocks.mono += 5
    assert link_states(svc) == {"S1/primary": "up", "S1/backup": "up"}
    clocks.wall += 86_400  # NTP steps the clock a day forward: five seconds have passed
    assert link_states(svc) == {"S1/primary": "up", "S1/backup": "up"}
    clocks.wall -= 2 * 86_400  # and back, a day before the observations
    assert link_states(svc) == {"S1/primary": "up", "S1/backup": "up"}
    clocks.mono += 3600  # an hour really passes: stale whatever the wall clock says
    clocks.wall = 1_000_000.0
    assert link_states(svc) == {"S1/primary": "unknown", "S1/backup": "unknown"}


def test_an_observation_from_the_future_is_not_fresh(service: tuple[Service, Clocks]) -> None:
    svc, clocks = service
    svc.latest.update({"S1/primary": clocks.obs("S1/primary", mono_ahead=30),
                       "S1/backup": clocks.obs("S1/backup")})
    assert link_states(svc) == {"S1/primary": "unknown", "S1/backup": "up"}


def test_freshness_on_the_wall_clock_rejects_the_future_too() -> None:
    fresh = Freshness({"icmp": 100.0})
    past, future = (Observation("k", "icmp", True, at) for at in (990.0, 1010.0))
    assert fresh.fresh(past, 1000.0) and not fresh.fresh(future, 1000.0)
    assert fresh.at_monotonic(50.0).fresh(Observation("k", "icmp", True, 5000.0, mono=40.0), 1000.0)


async def test_icmp_rtts_do_not_follow_the_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe's wall clock an hour behind the kernel's: RTTs on loopback are still microseconds."""
    require_root("raw ICMP sockets")
    stepped = SimpleNamespace(**{name: getattr(time, name) for name in ("monotonic", "monotonic_ns", "perf_counter")})
    stepped.time = lambda: time.time() - 3600
    stepped.time_ns = lambda: time.time_ns() - 3600 * 10**9
    monkeypatch.setattr(icmp_module, "time", stepped)
    probe = IcmpProbe()
    try:
        s = IcmpSettings(count=3, spacing_seconds=0.02, timeout_seconds=1.0, interval_seconds=30, socket="raw")
        [o] = await probe.run([Target("lo", "S", "127.0.0.1")], s, time.monotonic() + 10)
    finally:
        await probe.close()
    assert o.ok, o.reason
    assert o.values["received"] == 3 and 0 < o.values["rtt_max_seconds"] < 0.5
