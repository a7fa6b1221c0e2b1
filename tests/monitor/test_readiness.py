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


# ---- issue 11: the monitor knows when it is blind; never probed is unknown; down beats flapping; attribution ----

def failed(key: str, failure: str, kind: str = "icmp", at: float = NOW) -> Observation:
    return Observation(key, kind, False, at, {}, failure, failure)


LOCAL_CASES = [
    # (scenario, changes to a healthy site, expected state, expected reasons)
    ("our own stack has no route to the primary: unknown, not down",
     {"S1/primary": failed("S1/primary", "no_route")}, "unknown", ("primary.not_probed",)),
    ("we cannot bind the backup's source: unknown, not down",
     {"S1/backup": failed("S1/backup", "bind_failed")}, "unknown", ("backup.not_probed",)),
    ("a router says the primary is unreachable: that is the network's, the link is down",
     {"S1/primary": failed("S1/primary", "unreachable")}, "not_ready", ("primary.down",)),
    ("a terminal the cycle never reached is unknown, not down",
     {"S1/terminal/T2": failed("S1/terminal/T2", "not_probed", "tcp")}, "unknown", ("not_probed 1/2",)),
    ("the old word for it, skipped, reads the same",
     {"S1/terminal/T2": failed("S1/terminal/T2", "skipped", "tcp")}, "unknown", ("not_probed 1/2",)),
    ("a terminal we have no route to is unknown",
     {"S1/terminal/T1": failed("S1/terminal/T1", "no_route", "tcp")}, "unknown", ("not_probed 1/2",)),
    ("one terminal never probed and one really down: down is down",
     {"S1/terminal/T1": failed("S1/terminal/T1", "not_probed", "tcp"),
      "S1/terminal/T2": failed("S1/terminal/T2", "refused", "tcp")}, "not_ready", ("terminals 0/2",)),
    ("one never probed, one stale: terminals.unknown",
     {"S1/terminal/T1": failed("S1/terminal/T1", "not_probed", "tcp"), "S1/terminal/T2": None},
     "unknown", ("terminals.unknown 2/2",)),
]


@pytest.mark.parametrize(("scenario", "changes", "state", "reasons"), LOCAL_CASES, ids=[c[0] for c in LOCAL_CASES])
def test_what_the_monitor_did_not_see_is_unknown(tmp_path: Path, scenario: str, changes: dict, state: str,
                                                 reasons: tuple) -> None:
    """Local failures and targets the cycle never reached make links and terminals unknown, never down."""
    latest = {**healthy(), **{f"S{i}/primary": obs(f"S{i}/primary") for i in range(2, 6)}}
    for key, value in changes.items():
        if value is None:
            latest.pop(key, None)
        else:
            latest[key] = value
    r = judge(tmp_path, latest)
    assert (r.state, texts(r.reasons)) == (state, reasons), scenario


def province(tmp_path: Path, n: int = 4, **extra: object):  # type: ignore[no-untyped-def]
    return config(tmp_path, [site(f"S{i}", n=i) for i in range(1, n + 1)], **extra)  # type: ignore[arg-type]


def every_link(n: int, make) -> dict[str, Observation]:  # type: ignore[no-untyped-def]
    out = {}
    for i in range(1, n + 1):
        out.update(healthy(f"S{i}"))
        out[f"S{i}/primary"], out[f"S{i}/backup"] = make(f"S{i}/primary"), make(f"S{i}/backup")
    return out


BLIND_CASES = [
    # (scenario, witnesses, latest observations, blind?, state of every site, reasons)
    ("every link fails with no route from us: blind", (),
     lambda: every_link(4, lambda k: failed(k, "no_route")), True, "unknown", ("monitor.blind",)),
    ("the witness does not answer while every link is down: blind, not isolated", ("gw",),
     lambda: {**every_link(4, down), "monitor/witness/gw": down("monitor/witness/gw")}, True, "unknown",
     ("monitor.blind",)),
    ("the witness answers and every link is down: the sites are isolated", ("gw",),
     lambda: {**every_link(4, down), "monitor/witness/gw": obs("monitor/witness/gw")}, False, "not_ready",
     ("isolated", "primary.down", "backup.down")),
    ("the witness does not answer but every site does: ready is what was seen", ("gw",),
     lambda: {**every_link(4, obs), "monitor/witness/gw": down("monitor/witness/gw")}, True, "ready", ()),
    ("a quarter of the links fail locally: not blind, those links are unknown", (),
     lambda: {**every_link(4, obs), "S1/primary": failed("S1/primary", "no_route"),
              "S2/primary": failed("S2/primary", "no_route")}, False, None, None),
]


@pytest.mark.parametrize(("scenario", "witnesses", "make", "blind", "state", "reasons"), BLIND_CASES,
                         ids=[c[0] for c in BLIND_CASES])
def test_monitor_blindness(tmp_path: Path, scenario: str, witnesses: tuple, make, blind: bool,  # type: ignore[no-untyped-def]
                           state: str | None, reasons: tuple | None) -> None:
    """Witnesses that do not answer, or most targets failing on our own side, make the monitor blind:
    every site that is not ready is unknown (monitor.blind), never not_ready."""
    cfg = province(tmp_path, witnesses=[{"address": "127.0.0.1", "name": w} for w in witnesses])
    result = evaluate(cfg.sites, cfg.policy, make(), NOW, FRESH, witnesses=witnesses)
    assert result.monitor.blind == blind, (scenario, result.monitor)
    if state is not None:
        assert {(r.state, texts(r.reasons)) for r in result.sites.values()} == {(state, reasons)}, scenario
    assert all(r.state != "not_ready" for r in result.sites.values()) or not blind


def test_blindness_says_why(tmp_path: Path) -> None:
    """The view names the witness that does not answer and counts the local failures per kind."""
    cfg = province(tmp_path, witnesses=[{"address": "127.0.0.1", "name": "gw"}, "127.0.0.2"])
    latest = {**every_link(4, lambda k: failed(k, "no_route")), "monitor/witness/gw": down("monitor/witness/gw"),
              "monitor/witness/127.0.0.2": obs("monitor/witness/127.0.0.2")}
    view = evaluate(cfg.sites, cfg.policy, latest, NOW, FRESH, witnesses=("gw", "127.0.0.2")).monitor
    assert view.blind and dict(view.witnesses) == {"gw": False, "127.0.0.2": True}
    assert "witness gw does not answer (timeout)" in view.reason
    assert "8 of 10 icmp targets fail on the monitor's own side" in view.reason  # 8 links and 2 witnesses


def link_over_time(tmp_path: Path, states: list[Observation | None], **policy: object) -> list[tuple[str, str]]:
    """Feed the primary of S1 one observation a minute (None: none, so stale); return (link, site) each minute."""
    cfg = config(tmp_path, [site("S1")], policy={"flap_max_changes": 2, "flap_window_seconds": 3600,
                                                 "flap_hold_seconds": 3600, **policy})
    fresh = Freshness({"icmp": 90.0, "tcp": 90.0})
    flaps, out, primary = None, [], None
    for i, o in enumerate(states):
        now = NOW + 60 * i
        latest = {k: Observation(v.key, v.kind, v.ok, now, v.values) for k, v in healthy().items()}
        if o is not None:
            primary = Observation(o.key, o.kind, o.ok, now, o.values, o.failure, o.reason)
        if primary is not None:
            latest["S1/primary"] = primary
        else:
            latest.pop("S1/primary")
        result = evaluate(cfg.sites, cfg.policy, latest, now, fresh, flaps=flaps)
        flaps = result.flaps
        r = result.sites["S1"]
        h = r.link("primary")
        assert h is not None
        out.append((h.state, r.state))
    return out


UP, DOWN = obs("S1/primary"), down("S1/primary")
LOSSY = obs("S1/primary", loss_ratio=0.34, received=2)

FLAP_CASES = [
    ("a link toggled then removed is down at once, not flapping", [UP, DOWN, UP, DOWN, UP, DOWN],
     ("down", "not_ready")),
    ("a link toggled that comes back is held at flapping", [UP, DOWN, UP, DOWN, UP, DOWN, UP],
     ("flapping", "degraded")),
    ("stale periods are no changes: up, stale, up never flaps", [UP, None, None, None, UP, None, None, None, UP],
     ("up", "ready")),
    ("a partial-loss cycle followed by recovery is no flap", [UP, LOSSY, UP, LOSSY, UP, LOSSY, UP],
     ("up", "ready")),
]


@pytest.mark.parametrize(("scenario", "states", "last"), FLAP_CASES, ids=[c[0] for c in FLAP_CASES])
def test_down_beats_flapping(tmp_path: Path, scenario: str, states: list, last: tuple) -> None:
    """Damping holds a link that keeps coming back; a link down now is down; unknown and loss are no flaps."""
    assert link_over_time(tmp_path, states)[-1] == last, scenario


def chain(tmp_path: Path, witnesses: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    """AGG (a node) with S1..S4 behind it."""
    agg = site("AGG", terminals=0, kind="node", n=9)
    children = [site(f"S{i}", upstream="AGG", n=i) for i in range(1, 5)]
    return config(tmp_path, [agg, *children], witnesses=[{"address": "127.0.0.1", "name": w} for w in witnesses])


def terminal_fails(site_id: str, at: float, failure: str = "timeout") -> dict[str, Observation]:
    return {f"{site_id}/terminal/T{k}": failed(f"{site_id}/terminal/T{k}", failure, "tcp", at) for k in (1, 2)}


ATTRIBUTION_CASES = [
    # (scenario, the upstream's ICMP (ok, at), the children's terminals fail at, failure, witness at, children)
    ("terminals time out after the node was last seen: unconfirmed, not not_ready",
     (True, NOW), NOW + 5, "timeout", None, ("unknown", ("upstream AGG unconfirmed",))),
    ("the node is seen healthy after the timeouts: the failure is the site's",
     (True, NOW + 6), NOW + 5, "timeout", None, ("not_ready", ("terminals 0/2",))),
    ("seen healthy at the very moment counts (at >= failure)",
     (True, NOW + 5), NOW + 5, "timeout", None, ("not_ready", ("terminals 0/2",))),
    ("the node is down by then: upstream down",
     (False, NOW + 6), NOW + 5, "timeout", None, ("unknown", ("upstream AGG down",))),
    ("a refused connect is the terminal's own answer: no confirmation needed",
     (True, NOW), NOW + 5, "refused", None, ("not_ready", ("terminals 0/2",))),
    ("the monitor's witness was last seen before the failure: the top of the chain is unconfirmed",
     (True, NOW + 6), NOW + 5, "timeout", NOW, ("unknown", ("upstream monitor unconfirmed",))),
    ("the witness and the node both seen since: the site's",
     (True, NOW + 6), NOW + 5, "timeout", NOW + 6, ("not_ready", ("terminals 0/2",))),
]


@pytest.mark.parametrize(("scenario", "node", "fail_at", "failure", "witness_at", "children"), ATTRIBUTION_CASES,
                         ids=[c[0] for c in ATTRIBUTION_CASES])
def test_attribution_waits_for_the_chain(tmp_path: Path, scenario: str, node: tuple, fail_at: float,
                                         failure: str, witness_at: float | None, children: tuple) -> None:
    """A child's silent failure is the child's only once every node above it was seen healthy since."""
    witnesses = ("gw",) if witness_at is not None else ()
    cfg = chain(tmp_path, witnesses)
    ok, at = node
    latest: dict[str, Observation] = {}
    for key in ("AGG/primary", "AGG/backup"):
        latest[key] = obs(key, at=at) if ok else obs(key, ok=False, at=at, sent=3, received=0, loss_ratio=1.0)
    for i in range(1, 5):
        latest.update({k: Observation(k, "icmp", True, NOW, dict(obs(k).values)) for k in (f"S{i}/primary",
                                                                                           f"S{i}/backup")})
        latest.update(terminal_fails(f"S{i}", fail_at, failure))
    if witness_at is not None:
        latest["monitor/witness/gw"] = obs("monitor/witness/gw", at=witness_at)
    result = evaluate(cfg.sites, cfg.policy, latest, NOW + 10, FRESH, witnesses=witnesses).sites
    for i in range(1, 5):
        r = result[f"S{i}"]
        assert (r.state, texts(r.reasons)) == children, scenario


def test_the_race_never_yields_not_ready(tmp_path: Path) -> None:
    """The node dies; the children's TCP cycle reports first, then the ICMP cycle: at no step is a child
    not_ready (the order of probe kinds cannot blame the children)."""
    cfg = chain(tmp_path)
    latest = {k: obs(k) for k in ("AGG/primary", "AGG/backup")}
    for i in range(1, 5):
        latest.update(healthy(f"S{i}"))
    states = []
    # TCP first: the children's terminals time out at NOW + 3; ICMP still shows the node as it was at NOW.
    for i in range(1, 5):
        latest.update(terminal_fails(f"S{i}", NOW + 3))
    states.append(evaluate(cfg.sites, cfg.policy, latest, NOW + 3, FRESH).sites)
    # Then ICMP at NOW + 4: the node and the children's links are all silent.
    for key in latest:
        if not key.endswith("/terminal/T1") and not key.endswith("/terminal/T2"):
            latest[key] = obs(key, ok=False, at=NOW + 4, sent=3, received=0, loss_ratio=1.0)
    states.append(evaluate(cfg.sites, cfg.policy, latest, NOW + 4, FRESH).sites)
    for sites in states:
        assert all(sites[f"S{i}"].state == "unknown" for i in range(1, 5)), [
            (s.site, s.state, texts(s.reasons)) for s in sites.values()]
    assert texts(states[0]["S1"].reasons) == ("upstream AGG unconfirmed",)
    assert texts(states[1]["S1"].reasons) == ("upstream AGG down",)


def test_a_failure_measured_while_the_node_was_down_is_not_the_site_s(tmp_path: Path) -> None:
    """AGG is down at NOW, the children's terminals time out at NOW + 3, AGG is back at NOW + 4: the old
    timeouts were measured during the outage, so they stay unconfirmed until measured again (the streak memory
    passes from one evaluation to the next, like the flap memory)."""
    cfg = chain(tmp_path)
    latest: dict[str, Observation] = {}
    for i in range(1, 5):
        latest.update(healthy(f"S{i}"))
    latest.update({k: obs(k, ok=False, at=NOW, sent=3, received=0, loss_ratio=1.0) for k in ("AGG/primary",
                                                                                           "AGG/backup")})
    first = evaluate(cfg.sites, cfg.policy, latest, NOW, FRESH)
    assert first.healthy_since["AGG"] is None
    for i in range(1, 5):
        latest.update(terminal_fails(f"S{i}", NOW + 3))
    latest.update({k: obs(k, at=NOW + 4) for k in ("AGG/primary", "AGG/backup")})
    second = evaluate(cfg.sites, cfg.policy, latest, NOW + 4, FRESH, healthy_since=first.healthy_since)
    assert second.healthy_since["AGG"] == NOW + 4
    assert texts(second.sites["S1"].reasons) == ("upstream AGG unconfirmed",)
    # Measured again after AGG came back: now they are the site's.
    for i in range(1, 5):
        latest.update(terminal_fails(f"S{i}", NOW + 8))
    latest.update({k: obs(k, at=NOW + 9) for k in ("AGG/primary", "AGG/backup")})
    third = evaluate(cfg.sites, cfg.policy, latest, NOW + 9, FRESH, healthy_since=second.healthy_since)
    assert (third.sites["S1"].state, texts(third.sites["S1"].reasons)) == ("not_ready", ("terminals 0/2",))
