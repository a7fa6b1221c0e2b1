"""Readiness over simulated days (compressed time): sustained readiness, regressions, upstream blocking,
maintenance, waivers, flap damping and the forecast, through the real Service pipeline."""

from __future__ import annotations

from pathlib import Path

from monitor.config.loader import load_config
from monitor.core.reasons import texts
from monitor.runtime.service import Service
from probes.base import Observation
from tests.monitor.fixtures import obs, site, write_config

HOUR = 3600.0
T0 = 1_790_000_000.0  # 2026-09-21, well before the deadline


class World:
    """What the probes would see: every target answers unless told otherwise."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.down: set[str] = set()
        self.lossy: set[str] = set()  # a quarter of the echoes lost

    def step(self, now: float) -> dict[str, object]:
        latest = {}
        for kind, targets in self.service.targets.items():
            for t in targets:
                ok = t.key not in self.down
                if kind == "icmp" and t.key in self.lossy and ok:
                    latest[t.key] = obs(t.key, at=now, loss_ratio=0.25, received=3, sent=4)
                elif kind == "icmp":
                    latest[t.key] = obs(t.key, at=now) if ok else obs(t.key, ok=False, at=now, loss_ratio=1.0)
                else:
                    latest[t.key] = Observation(t.key, kind, ok, now, {"connect_seconds": 0.001} if ok else {},
                                                "" if ok else "refused")
        self.service.latest = latest  # type: ignore[assignment]
        snap = self.service.evaluate(now, force=True)
        return {sid: r for sid, r in snap.sites.items()}


def make(tmp_path: Path, **extra: object) -> tuple[Service, World]:
    sites = [site("AGG", terminals=0, kind="node", n=9), site("S1", upstream="AGG"), site("S2", upstream="AGG", n=2)]
    extra.setdefault("policy", {"sustain_seconds": 24 * HOUR, "sustain_availability_ratio": 0.95})
    service = Service(load_config(write_config(tmp_path, sites, **extra)))
    return service, World(service)


def test_sustained_readiness_and_regression(tmp_path: Path) -> None:
    """Ready only after 24 h healthy; first_ready_at kept; a slip back is a regression."""
    _service, world = make(tmp_path)
    r = world.step(T0)["S1"]
    assert (r.state, texts(r.reasons)) == ("degraded", ("sustaining (0h of 24h)",))
    r = world.step(T0 + 5 * HOUR)["S1"]
    assert r.state == "degraded" and "sustaining (5h of 24h)" in texts(r.reasons)
    for h in range(6, 25):
        r = world.step(T0 + h * HOUR)["S1"]
    assert (r.state, r.ever_ready, r.first_ready_at) == ("ready", True, T0 + 24 * HOUR)
    assert r.since == T0 + 24 * HOUR
    world.down |= {"S1/terminal/T1", "S1/terminal/T2"}
    r = world.step(T0 + 25 * HOUR)["S1"]
    assert (r.state, r.regressions, r.ever_ready) == ("not_ready", 1, True)
    assert r.first_ready_at == T0 + 24 * HOUR


def test_upstream_blocks_without_a_burst(tmp_path: Path) -> None:
    """The node dies and its sites go dark: they are unknown (upstream AGG down) in the same evaluation."""
    service, world = make(tmp_path, policy={"sustain_seconds": 0})
    world.step(T0)
    world.down |= {t.key for ts in service.targets.values() for t in ts if t.site in ("AGG", "S1", "S2")}
    result = world.step(T0 + 60)
    assert result["AGG"].state == "not_ready"
    assert all(texts(result[s].reasons) == ("upstream AGG down",) and result[s].state == "unknown"
               for s in ("S1", "S2"))


def test_maintenance_and_waiver(tmp_path: Path) -> None:
    """A window for the county notes maintenance first; a backup waiver lifts backup.down until it expires."""
    _service, world = make(
        tmp_path, policy={"sustain_seconds": 0},
        maintenance=[{"counties": ["Ilam"], "reason": "fiber splice", "start": "2026-09-21T10:00:00+03:30",
                      "end": "2026-09-21T12:00:00+03:30"}],
        waivers=[{"site": "S2", "requirement": "backup", "until": "2026-09-25", "approved_by": "ICT committee",
                  "reason": "LTE tower due in October"}],
    )
    world.down.add("S2/backup")
    r = world.step(T0)  # 2026-09-21 ~17:23 Tehran: no maintenance
    assert r["S2"].state == "ready" and r["S2"].waivers and "backup.down" not in texts(r["S2"].reasons)
    assert r["S1"].maintenance == ""
    inside = 1_789_972_200.0 + 60  # 2026-09-21T10:01+03:30
    r = world.step(inside)
    assert r["S1"].maintenance == "fiber splice" and str(r["S1"].reasons[0]) == "maintenance: fiber splice"
    assert r["S1"].state == "ready"  # nothing is wrong, and no sustain window is configured
    later = T0 + 5 * 24 * HOUR  # the waiver has expired by itself
    r = world.step(later)
    assert (r["S2"].state, r["S2"].waivers) == ("degraded", ()) and "backup.down" in texts(r["S2"].reasons)


def test_flapping_link_is_damped(tmp_path: Path) -> None:
    """A backup that changes state every minute is reported as flapping whenever it comes back, not as a
    storm of transitions; in the minutes it is down it reads down (down beats flapping)."""
    _service, world = make(tmp_path, policy={"sustain_seconds": 0, "flap_max_changes": 3,
                                            "flap_window_seconds": 600, "flap_hold_seconds": 600})
    states = []
    for minute in range(11):
        if minute % 2:
            world.down.add("S1/backup")
        else:
            world.down.discard("S1/backup")
        r = world.step(T0 + minute * 60)["S1"]
        states.append(r.link("backup").state)  # type: ignore[union-attr]
    assert states[-1] == "flapping" and "backup.flapping" in texts(r.reasons) and r.state == "degraded"
    assert states.count("flapping") >= 4
    assert states[5] == states[7] == states[9] == "down"


def test_forecast_moves_with_the_data(tmp_path: Path) -> None:
    """A province that gets better day by day is forecast to finish; a stuck one is at risk (one sample a day,
    two days of them at least)."""
    service, world = make(tmp_path, policy={"sustain_seconds": 0, "forecast_resolution_seconds": 24 * HOUR,
                                            "forecast_min_history_days": 2})
    world.down |= {"S1/terminal/T1", "S2/terminal/T1"}
    for day in range(3):
        world.step(T0 + day * 24 * HOUR)
    stuck = service.timeline.forecasts[("province", "")]
    assert stuck.at_risk and stuck.share_at_deadline < 1
    world.down.discard("S1/terminal/T1")
    for day in range(3, 6):
        world.step(T0 + day * 24 * HOUR)
    world.down.clear()
    for day in range(6, 9):
        world.step(T0 + day * 24 * HOUR)
    better = service.timeline.forecasts[("province", "")]
    assert better.share_now == 1.0 and better.share_at_deadline > stuck.share_at_deadline


def test_schedule_must_name_real_sites_and_counties(tmp_path: Path) -> None:
    """A waiver or window for a site or county that does not exist is a config error, placed precisely."""
    import pytest

    from monitor.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        make(tmp_path, maintenance=[{"counties": ["Ilaam"], "reason": "typo", "start": "2026-09-21T10:00:00",
                                     "end": "2026-09-21T12:00:00"}],
             waivers=[{"site": "S9", "requirement": "backup", "until": "2026-10-01", "approved_by": "x",
                       "reason": "y"}])
    text = str(err.value)
    assert "maintenance[0].counties[0]: maintenance names no county 'Ilaam' (counties: Ilam)" in text
    assert "site S9: waivers[0].site: waiver names no site 'S9'" in text


def test_demo_province_over_three_simulated_days(tmp_path: Path) -> None:
    """The demo province for 72 simulated hours, its moving faults as ground truth: sites sustain, some
    regress, sites behind a dead node are blocked, maintenance and a waiver show, the forecast moves."""
    import yaml

    from monitor.demo import province as dp
    from monitor.demo.run import faults

    sites = dp.province()
    no_backup = next(s["id"] for s in sites if s.get("kind") != "node" and len(s["links"]) == 1)
    doc = dp.config_doc()
    doc["policy"].update({"sustain_seconds": 24 * HOUR, "sustain_availability_ratio": 0.9})
    doc["maintenance"] = [{"counties": ["Mehran"], "reason": "fiber splice",
                           "start": "2026-09-21T20:00:00+03:30", "end": "2026-09-21T23:00:00+03:30"}]
    doc["waivers"] = [{"site": no_backup, "requirement": "backup", "until": "2026-12-01",
                       "approved_by": "ICT committee", "reason": "VSAT due in November"}]
    (tmp_path / "demo-sites.yaml").write_text(dp.dump({"sites": sites}), encoding="utf-8")
    (tmp_path / "demo.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    service = Service(load_config(tmp_path / "demo.yaml"))
    world = World(service)
    address = {t.key: t.address for ts in service.targets.values() for t in ts}
    ready_by_hour, blocked, maintenance, lossy_seen = [], 0, 0, 0
    for hour in range(72):
        down, lossy, terms = faults(sites, hour)
        world.down = {key for key, a in address.items() if a in down or a in terms}
        world.lossy = {key for key, a in address.items() if a in lossy}
        result = world.step(T0 + hour * HOUR)
        ready_by_hour.append(sum(r.state == "ready" for r in result.values()))
        blocked += sum(any(x.startswith("upstream ") for x in texts(r.reasons)) for r in result.values())
        maintenance += sum(bool(r.maintenance) for r in result.values())
        lossy_seen += sum("primary.loss>1%" in texts(r.reasons) for r in result.values())
    final = service.snapshot.sites
    assert max(ready_by_hour[:24]) == 0, "nobody is ready before a day has passed"
    assert ready_by_hour[-1] > 30, ready_by_hour
    assert blocked > 0 and maintenance > 0 and lossy_seen > 0
    assert any(r.regressions for r in final.values()), "moving faults must knock some ready sites back"
    assert final[no_backup].waivers and "backup.missing" not in texts(final[no_backup].reasons)
    province = service.timeline.forecasts[("province", "")]
    assert province.points >= 24 and province.slope_per_day > 0


def test_snapshots_share_the_proven_set_until_a_backup_is_proven(tmp_path: Path) -> None:
    """Each snapshot holds the proven backups; consecutive snapshots share one frozenset while nothing new was
    proven (20,000 keys are not copied per evaluation), and a newly proven backup shows in the next one."""
    service = Service(load_config(write_config(tmp_path, [site("S1"), site("S2")])), clock=lambda: 1000.0)
    service.latest.update({"S1/primary": obs("S1/primary"), "S1/backup": obs("S1/backup")})
    first = service.evaluate(force=True)
    second = service.evaluate(force=True)
    assert "S1/backup" in first.proven and "S2/backup" not in first.proven and second.proven is first.proven
    service.latest.update({"S2/primary": obs("S2/primary"), "S2/backup": obs("S2/backup")})
    third = service.evaluate(force=True)
    assert "S2/backup" in third.proven and "S2/backup" not in first.proven
    (tmp_path / "memory.json").write_text('{"proven": ["S1/backup"]}')
    service.timeline.load(tmp_path / "memory.json")  # a memory read back replaces the set: no stale answer
    assert service.evaluate(force=True).proven == service.timeline.proven
