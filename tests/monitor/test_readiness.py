"""Readiness is a pure function: table-driven scenarios with an injected clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.core.readiness import Freshness, evaluate
from monitor.core.reasons import Reason, texts
from probes.base import Observation
from tests.monitor.fixtures import SNMP_OK, config, obs, site

NOW = 1000.0
FRESH = Freshness({"icmp": 60.0, "tcp": 60.0, "snmp": 120.0})


def healthy(site_id: str = "S1", terminals: int = 2, backup: bool = True) -> dict[str, Observation]:
    out = {f"{site_id}/primary": obs(f"{site_id}/primary")}
    if backup:
        out[f"{site_id}/backup"] = obs(f"{site_id}/backup")
    for k in range(1, terminals + 1):
        key = f"{site_id}/terminal/T{k}"
        out[key] = Observation(key, "tcp", True, NOW, {"connect_seconds": 0.001})
    return out


def judge(tmp_path: Path, latest: dict[str, Observation], **site_kw: object):  # type: ignore[no-untyped-def]
    cfg = config(tmp_path, [site("S1", **site_kw)])  # type: ignore[arg-type]
    return evaluate(cfg.sites, cfg.policy, latest, NOW, FRESH).sites["S1"]


def down(key: str) -> Observation:
    return obs(key, ok=False, sent=3, received=0, loss_ratio=1.0)


CASES = [
    # (scenario, changes to a healthy site, expected state, expected reasons)
    ("everything answers", {}, "ready", ()),
    ("backup link down", {"S1/backup": down("S1/backup")}, "degraded", ("backup.down",)),
    ("primary link down, backup up", {"S1/primary": down("S1/primary")}, "not_ready", ("primary.down",)),
    ("both links down", {"S1/primary": down("S1/primary"), "S1/backup": down("S1/backup")}, "not_ready",
     ("isolated", "primary.down", "backup.down")),
    ("primary loses 30% of echoes", {"S1/primary": obs("S1/primary", loss_ratio=0.3, received=2)}, "degraded",
     ("primary.loss>1%",)),
    ("primary RTT above fiber's 50 ms", {"S1/primary": obs("S1/primary", rtt_avg_seconds=0.2)}, "degraded",
     ("primary.rtt>50ms",)),
    ("primary jitter above 10 ms", {"S1/primary": obs("S1/primary", jitter_seconds=0.05)}, "degraded",
     ("primary.jitter>10ms",)),
    ("backup LTE loss 4% is within LTE's 5%", {"S1/backup": obs("S1/backup", loss_ratio=0.04)}, "ready", ()),
    ("primary data is stale", {"S1/primary": obs("S1/primary", at=NOW - 600)}, "unknown", ("primary.stale",)),
    ("one terminal of two refuses", {"S1/terminal/T2": Observation("S1/terminal/T2", "tcp", False, NOW, {},
                                                                   "refused", "connection refused")},
     "not_ready", ("terminals 1/2",)),
    ("a terminal never probed", {"S1/terminal/T2": None}, "unknown", ("terminals.unknown 1/2",)),
    ("everything stale", {k: None for k in ("S1/primary", "S1/backup", "S1/terminal/T1", "S1/terminal/T2")},
     "unknown", ("primary.no_data", "backup.no_data", "terminals.unknown 2/2")),
]


@pytest.mark.parametrize(("scenario", "changes", "state", "reasons"), CASES, ids=[c[0] for c in CASES])
def test_site_state(tmp_path: Path, scenario: str, changes: dict, state: str, reasons: tuple) -> None:
    """Each scenario changes a healthy site and expects one state with these reasons, in order."""
    latest = healthy()
    for key, value in changes.items():
        if value is None:
            latest.pop(key, None)
        else:
            latest[key] = value
    r = judge(tmp_path, latest)
    assert (r.state, texts(r.reasons)) == (state, reasons), scenario


def test_missing_backup_is_degraded(tmp_path: Path) -> None:
    """A site without a backup link owes a requirement: degraded, backup.missing."""
    r = judge(tmp_path, healthy(backup=False), backup=False)
    assert (r.state, texts(r.reasons)) == ("degraded", ("backup.missing",))


def test_backup_not_required_by_policy(tmp_path: Path) -> None:
    """With require_backup false, a primary-only site can be ready."""
    cfg = config(tmp_path, [site("S1", backup=False)], policy={"require_backup": False})
    assert evaluate(cfg.sites, cfg.policy, healthy(backup=False), NOW, FRESH).sites["S1"].state == "ready"


SNMP_CASES = [
    ("fiber port oper down although the address answers over another path", {"oper_up": 0}, "not_ready",
     ("primary.oper_down",), ()),
    ("port administratively down", {"admin_up": 0}, "not_ready", ("primary.admin_down",), ()),
    ("receive power below fiber's -25 dBm", {"rx_power_dbm": -27.0}, "degraded", ("primary.rx_power<-25dBm",), ()),
    ("receive power in the warning band", {"rx_power_dbm": -24.0}, "ready", (),
     ("primary.rx_power_warning<-23dBm",)),
    ("interface errors rising", {"in_errors_per_second": 5.0}, "degraded", ("primary.errors>1/s",), ()),
    ("device rebooted", {"rebooted": 1}, "ready", (), ("primary.device_rebooted",)),
]


@pytest.mark.parametrize(("scenario", "values", "state", "reasons", "warnings"), SNMP_CASES,
                         ids=[c[0] for c in SNMP_CASES])
def test_snmp_judgement(tmp_path: Path, scenario: str, values: dict, state: str, reasons: tuple,
                        warnings: tuple) -> None:
    """The device's own view of the carrying interface changes the link's health."""
    latest = healthy()
    latest["S1/primary/snmp"] = Observation("S1/primary/snmp", "snmp", True, NOW, {**SNMP_OK, **values})
    r = judge(tmp_path, latest, snmp=True)
    assert (r.state, texts(r.reasons), texts(r.warnings)) == (state, reasons, warnings), scenario


def test_missing_light_is_a_warning_where_the_medium_carries_light(tmp_path: Path) -> None:
    """The probe's reasons for having no optical power become the link's warnings on a fiber link that is up;
    a port that is down says that already, and a medium without light thresholds has nothing to miss."""
    latest = healthy()
    why = {"optics": ("optics.no_light rx", "optics.no_sensor tx")}
    values = {k: v for k, v in SNMP_OK.items() if "power" not in k}
    latest["S1/primary/snmp"] = Observation("S1/primary/snmp", "snmp", True, NOW, values, details=why)
    r = judge(tmp_path, latest, snmp=True)
    assert (r.state, texts(r.warnings)) == ("ready", ("primary.optics.no_light rx", "primary.optics.no_sensor tx"))
    assert {w.code for w in r.warnings} == {"primary.optics.no_light", "primary.optics.no_sensor"}
    latest["S1/primary/snmp"] = Observation("S1/primary/snmp", "snmp", True, NOW, {**values, "oper_up": 0},
                                            details=why)
    r = judge(tmp_path, latest, snmp=True)
    assert (r.state, texts(r.reasons), texts(r.warnings)) == ("not_ready", ("primary.oper_down",), ())
    latest["S1/primary/snmp"] = Observation("S1/primary/snmp", "snmp", True, NOW, values, details=why)
    copper = {"policy": {"media": {"fiber": {"loss_max_ratio": 0.01, "rtt_max_seconds": 0.05,
                                             "jitter_max_seconds": 0.01}}}}
    cfg = config(tmp_path, [site("S1", snmp=True)], **copper)
    assert evaluate(cfg.sites, cfg.policy, latest, NOW, FRESH).sites["S1"].warnings == ()


def test_snmp_unavailable_is_a_warning_not_a_verdict(tmp_path: Path) -> None:
    """An agent that does not answer leaves the ICMP verdict standing and says so."""
    latest = healthy()
    latest["S1/primary/snmp"] = Observation("S1/primary/snmp", "snmp", False, NOW, {}, "timeout", "no answer")
    r = judge(tmp_path, latest, snmp=True)
    assert (r.state, texts(r.warnings)) == ("ready", ("primary.snmp_unavailable",))


def test_upstream_down_makes_children_unknown(tmp_path: Path) -> None:
    """Behind an isolated aggregation node, a dark site is unknown (upstream AGG down), not not_ready."""
    agg = site("AGG", terminals=0, kind="node", n=9)
    cfg = config(tmp_path, [site("S1", upstream="AGG"), site("S2", upstream="AGG", n=2), agg])
    latest = {**healthy("S2"), "AGG/primary": down("AGG/primary"), "AGG/backup": down("AGG/backup"),
              "S1/primary": down("S1/primary"), "S1/backup": down("S1/backup")}
    result = evaluate(cfg.sites, cfg.policy, latest, NOW, FRESH).sites
    assert (result["AGG"].state, str(result["AGG"].reasons[0])) == ("not_ready", "isolated")
    assert (result["S1"].state, texts(result["S1"].reasons)) == ("unknown", ("upstream AGG down",))
    assert result["S2"].state == "ready"  # still reachable: nothing to blame on the node


def test_since_is_kept_while_the_state_holds(tmp_path: Path) -> None:
    """`since` moves only when the state changes."""
    cfg = config(tmp_path, [site("S1")])
    first = evaluate(cfg.sites, cfg.policy, healthy(), NOW, FRESH).sites
    later = {k: Observation(v.key, v.kind, v.ok, NOW + 30, v.values) for k, v in healthy().items()}
    second = evaluate(cfg.sites, cfg.policy, later, NOW + 30, FRESH, first).sites
    assert second["S1"].since == NOW
    later["S1/backup"] = down("S1/backup")
    third = evaluate(cfg.sites, cfg.policy, later, NOW + 60, FRESH, second).sites
    assert (third["S1"].state, third["S1"].since) == ("degraded", NOW + 60)


@pytest.mark.parametrize(("reason", "code"), [("primary.loss>1%", "primary.loss"), ("terminals 3/5", "terminals"),
                                              ("upstream AGG-2 down", "upstream"), ("isolated", "isolated"),
                                              ("backup.rx_power<-25dBm", "backup.rx_power")])
def test_reason_codes_are_bounded(reason: str, code: str) -> None:
    """Metrics carry the reason's code, never its free text."""
    assert Reason.parse(reason).code == code
    assert str(Reason.parse(reason)) == reason


def test_evaluate_takes_and_returns_its_memory(tmp_path: Path) -> None:
    """No hidden state: the flap memory goes in and comes out as values, and the same inputs give the same
    verdicts however often evaluate() runs; a backup changing state twice with a limit of one flaps."""
    cfg = config(tmp_path, [site("S1")], policy={"flap_max_changes": 1})
    latest = healthy()
    flaps = None
    for i, backup in enumerate([obs("S1/backup"), down("S1/backup"), obs("S1/backup")]):
        latest = {**latest, "S1/backup": backup}
        before = flaps
        result = evaluate(cfg.sites, cfg.policy, latest, NOW + i, FRESH, flaps=before)
        assert evaluate(cfg.sites, cfg.policy, latest, NOW + i, FRESH, flaps=before) == result
        flaps = result.flaps
    r = result.sites["S1"]
    backup_health = r.link("backup")
    assert backup_health is not None and backup_health.state == "flapping"
    assert (r.state, texts(r.reasons)) == ("degraded", ("backup.flapping",))
    assert flaps["S1/backup"].flapping and not flaps["S1/primary"].flapping
    assert evaluate(cfg.sites, cfg.policy, latest, NOW + 2, FRESH).sites["S1"].state == "ready"  # no memory given
