"""Maintenance windows and waivers: table-driven, with an injected clock in Asia/Tehran."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from monitor.core.readiness import Freshness, SiteReadiness, evaluate
from monitor.core.reasons import Reason, texts
from monitor.core.schedule import (
    Cron,
    MaintenanceWindow,
    Waiver,
    apply_schedule,
    maintenance_for,
    maintenance_intervals,
    state_of_reasons,
    waivers_for,
)
from probes.base import Observation
from tests.monitor.fixtures import config, obs, site

TEHRAN = ZoneInfo("Asia/Tehran")  # UTC+03:30 all year since 2023


def at(day: int, hour: int = 0, minute: int = 0, month: int = 1) -> float:
    """Return Unix seconds of 2026-<month>-<day> hh:mm in Tehran (2026-01-02 is a Friday)."""
    return datetime(2026, month, day, hour, minute, tzinfo=TEHRAN).timestamp()


def window(**kw: Any) -> MaintenanceWindow:
    return MaintenanceWindow.model_validate({"reason": "fiber splice", **kw})


FRIDAY_NIGHT = {"sites": ["S1"], "weekly": {"days": ["fri"], "start": "22:00", "duration_minutes": 240}}

# -- cron ---------------------------------------------------------------------------------------------

CRON_CASES = [
    # (scenario, expression, local time, fires)
    ("Friday 02:00 matches '0 2 * * 5'", "0 2 * * 5", datetime(2026, 1, 2, 2, 0), True),
    ("Friday 02:01 does not", "0 2 * * 5", datetime(2026, 1, 2, 2, 1), False),
    ("Saturday 02:00 does not", "0 2 * * 5", datetime(2026, 1, 3, 2, 0), False),
    ("every quarter hour: 10:45", "*/15 * * * *", datetime(2026, 1, 5, 10, 45), True),
    ("every quarter hour: not 10:50", "*/15 * * * *", datetime(2026, 1, 5, 10, 50), False),
    ("odd hours 9-17 on weekdays: Monday 11:00", "0 9-17/2 * * 1-5", datetime(2026, 1, 5, 11, 0), True),
    ("odd hours 9-17 on weekdays: not Monday 10:00", "0 9-17/2 * * 1-5", datetime(2026, 1, 5, 10, 0), False),
    ("odd hours 9-17 on weekdays: not Saturday 09:00", "0 9-17/2 * * 1-5", datetime(2026, 1, 3, 9, 0), False),
    ("list of days of the month: the 15th", "30 4 1,15 * *", datetime(2026, 1, 15, 4, 30), True),
    ("list of days of the month: not the 16th", "30 4 1,15 * *", datetime(2026, 1, 16, 4, 30), False),
    ("both day fields restricted: any Friday", "0 0 13 * 5", datetime(2026, 1, 2, 0, 0), True),
    ("both day fields restricted: any 13th", "0 0 13 * 5", datetime(2026, 1, 13, 0, 0), True),
    ("both day fields restricted: neither", "0 0 13 * 5", datetime(2026, 1, 14, 0, 0), False),
    ("7 is Sunday too", "0 0 * * 7", datetime(2026, 1, 4, 0, 0), True),
    ("day names", "0 0 * * sun", datetime(2026, 1, 4, 0, 0), True),
    ("months: not in January", "0 12 * 2 *", datetime(2026, 1, 5, 12, 0), False),
    ("months: February", "0 12 * 2 *", datetime(2026, 2, 5, 12, 0), True),
]


@pytest.mark.parametrize(("scenario", "expression", "when", "fires"), CRON_CASES, ids=[c[0] for c in CRON_CASES])
def test_cron_matches(scenario: str, expression: str, when: datetime, fires: bool) -> None:
    """Each expression fires (or not) at one local wall-clock time."""
    assert (when.time() in Cron(expression).times(when.date())) is fires, scenario


INVALID_CRON = [
    ("61 * * * *", "minute: 61 is outside 0-59"),
    ("* * *", "needs 5 fields"),
    ("0 0 * * 8", "day of week: 8 is outside 0-7"),
    ("*/0 * * * *", "bad step"),
    ("5-1 * * * *", "runs backwards"),
    ("x * * * *", "'x' is not a number"),
]


@pytest.mark.parametrize(("expression", "message"), INVALID_CRON, ids=[c[0] for c in INVALID_CRON])
def test_invalid_cron_is_a_config_error(expression: str, message: str) -> None:
    """A bad cron expression fails config validation and says which field is wrong."""
    with pytest.raises(ValidationError, match=message):
        window(everything=True, cron=expression, duration_minutes=60)


# -- the window model ---------------------------------------------------------------------------------

INVALID_WINDOWS = [
    ("no scope", {"weekly": FRIDAY_NIGHT["weekly"]}, "exactly one scope"),
    ("two scopes", {"sites": ["S1"], "counties": ["Ilam"], "weekly": FRIDAY_NIGHT["weekly"]}, "exactly one scope"),
    ("no timing", {"everything": True}, "exactly one of start/end"),
    ("one-off and weekly", {"everything": True, "start": "2026-01-01T00:00", "end": "2026-01-02T00:00",
                            "weekly": FRIDAY_NIGHT["weekly"]}, "exactly one of start/end"),
    ("start without end", {"everything": True, "start": "2026-01-01T00:00"}, "needs both start and end"),
    ("end before start", {"everything": True, "start": "2026-01-02T00:00", "end": "2026-01-01T00:00"},
     "end must be after start"),
    ("cron without duration", {"everything": True, "cron": "0 2 * * 5"}, "cron and duration_minutes go together"),
    ("weekly at 24:00", {"everything": True, "weekly": {"days": ["fri"], "start": "24:00", "duration_minutes": 60}},
     "not a time HH:MM"),
    ("weekly on no day", {"everything": True, "weekly": {"days": [], "start": "22:00", "duration_minutes": 60}},
     "at least 1 item"),
    ("a day that does not exist", {"everything": True,
                                   "weekly": {"days": ["fry"], "start": "22:00", "duration_minutes": 60}}, "fri"),
    ("unknown key", {"everything": True, "cron": "0 2 * * 5", "duration_minutes": 60, "repeat": 3},
     "Extra inputs are not permitted"),
    ("site id with a space", {"sites": ["S 1"], "cron": "0 2 * * 5", "duration_minutes": 60}, "ASCII letters"),
]


@pytest.mark.parametrize(("scenario", "doc", "message"), INVALID_WINDOWS, ids=[c[0] for c in INVALID_WINDOWS])
def test_invalid_window(scenario: str, doc: dict[str, Any], message: str) -> None:
    """A window that is ambiguous or impossible is refused when the config loads."""
    with pytest.raises(ValidationError, match=message):
        window(**doc)


def test_window_needs_a_reason() -> None:
    """Every maintenance window says why."""
    with pytest.raises(ValidationError, match="reason"):
        MaintenanceWindow.model_validate({"everything": True, "cron": "0 2 * * 5", "duration_minutes": 60})


WEEKLY_CASES = [
    # (scenario, local time, active)
    ("Friday 21:59, before it opens", at(2, 21, 59), False),
    ("Friday 22:00, it opens", at(2, 22, 0), True),
    ("Friday 23:30", at(2, 23, 30), True),
    ("Saturday 01:59, after midnight", at(3, 1, 59), True),
    ("Saturday 02:00, it has closed", at(3, 2, 0), False),
    ("Thursday 23:00, wrong day", at(1, 23, 0), False),
    ("the next Friday 22:30", at(9, 22, 30), True),
]


@pytest.mark.parametrize(("scenario", "now", "active"), WEEKLY_CASES, ids=[c[0] for c in WEEKLY_CASES])
def test_weekly_window_crosses_midnight_in_tehran(scenario: str, now: float, active: bool) -> None:
    """A weekly window Friday 22:00–02:00 crosses midnight in Asia/Tehran."""
    assert window(**FRIDAY_NIGHT).active(now, TEHRAN) is active, scenario


def test_weekly_intervals_over_two_weeks() -> None:
    """intervals() lists each Friday night once, clipped to the period asked for."""
    w = window(**FRIDAY_NIGHT)
    assert w.intervals(at(1), at(16), TEHRAN) == [(at(2, 22), at(3, 2)), (at(9, 22), at(10, 2))]
    assert w.intervals(at(3, 1), at(9, 23), TEHRAN) == [(at(3, 1), at(3, 2)), (at(9, 22), at(9, 23))]
    assert w.intervals(at(4), at(8), TEHRAN) == []


def test_window_times_are_read_in_the_programme_timezone() -> None:
    """Naive one-off times are Tehran wall-clock time; explicit offsets are kept."""
    naive = window(everything=True, start="2026-01-05T10:00", end="2026-01-05T12:00")
    utc = window(everything=True, start="2026-01-05T10:00Z", end="2026-01-05T12:00Z")
    assert naive.intervals(at(5), at(6), TEHRAN) == [(at(5, 10), at(5, 12))]
    assert utc.intervals(at(5), at(6), TEHRAN) == [(at(5, 13, 30), at(5, 15, 30))]
    assert naive.active(at(5, 11), TEHRAN) and not naive.active(at(5, 12), TEHRAN)


def test_cron_window_intervals_merge_when_they_overlap() -> None:
    """Hourly cron with a 90-minute duration is one long maintenance block, not overlapping pieces."""
    w = window(everything=True, cron="0 1-3 * * *", duration_minutes=90)
    assert w.intervals(at(5), at(6), TEHRAN) == [(at(5, 1), at(5, 4, 30))]


SCOPES = [
    # (scenario, window scope, site, county, applies)
    ("named site", {"sites": ["S1", "S2"]}, "S2", "Ilam", True),
    ("another site", {"sites": ["S1"]}, "S3", "Ilam", False),
    ("its county", {"counties": ["Ilam", "مهران"]}, "S9", "مهران", True),
    ("another county", {"counties": ["Ilam"]}, "S9", "Dehloran", False),
    ("everything", {"everything": True}, "S9", "Dehloran", True),
]


@pytest.mark.parametrize(("scenario", "scope", "site_id", "county", "applies"), SCOPES, ids=[c[0] for c in SCOPES])
def test_scope(scenario: str, scope: dict[str, Any], site_id: str, county: str, applies: bool) -> None:
    """A window covers named sites, whole counties or everything."""
    assert window(cron="0 2 * * 5", duration_minutes=60, **scope).applies_to(site_id, county) is applies


def test_maintenance_for_picks_an_open_window_that_covers_the_site() -> None:
    """Of several windows, the first one that covers the site and is open is returned."""
    other_site = window(sites=["S2"], cron="0 * * * *", duration_minutes=60)
    closed = window(counties=["Ilam"], reason="closed one", weekly={"days": ["sat"], "start": "01:00",
                                                                    "duration_minutes": 60})
    county = window(counties=["Ilam"], reason="county PoP upgrade", start="2026-01-05T09:00",
                    end="2026-01-05T17:00")
    windows = [other_site, closed, county]
    assert maintenance_for(windows, "S1", "Ilam", at(5, 10), TEHRAN) is county
    assert maintenance_for(windows, "S1", "Ilam", at(5, 18), TEHRAN) is None
    assert maintenance_intervals(windows, "S1", "Ilam", at(5), at(6), TEHRAN) == [(at(5, 9), at(5, 17))]


# -- waivers -------------------------------------------------------------------------------------------

def waiver(requirement: str = "backup", until: Any = "2026-06-01", site_id: str = "S1") -> Waiver:
    return Waiver.model_validate({"site": site_id, "requirement": requirement, "until": until,
                                  "approved_by": "Governor's ICT office", "reason": "LTE tower not built yet"})


def test_an_expired_waiver_stops_applying_by_itself() -> None:
    """A waiver until 2026-06-01 (Tehran midnight) applies before it and not from then on."""
    w = waiver(until=date(2026, 6, 1))
    assert w.active(at(31, 23, 59, month=5), TEHRAN)
    assert not w.active(at(1, 0, 0, month=6), TEHRAN)
    assert waivers_for([w, waiver(site_id="S2")], "S1", at(1, month=3), TEHRAN) == [w]
    assert waivers_for([w], "S1", at(2, month=6), TEHRAN) == []
    r = SiteReadiness("S1", "degraded", (Reason("backup.down"),), 0.0)
    assert apply_schedule(r, "Ilam", [], [w], at(1, month=3), TEHRAN).state == "ready"
    assert apply_schedule(r, "Ilam", [], [w], at(2, month=6), TEHRAN) is r


def test_waiver_validation() -> None:
    """A waiver names a known requirement, who approved it and why."""
    with pytest.raises(ValidationError, match="'backup', 'terminals', 'primary_quality' or 'optical_power'"):
        waiver(requirement="primary")
    with pytest.raises(ValidationError, match="approved_by"):
        Waiver.model_validate({"site": "S1", "requirement": "backup", "until": "2026-06-01", "reason": "x"})


# -- the state of a set of reasons, and applying the schedule ------------------------------------------

STATES = [
    # (reasons, state)
    ((), "ready"),
    (("backup.down",), "degraded"),
    (("backup.missing",), "degraded"),
    (("primary.loss>1%",), "degraded"),
    (("primary.rx_power<-25dBm",), "degraded"),
    (("primary.down",), "not_ready"),
    (("primary.oper_down",), "not_ready"),
    (("primary.admin_down",), "not_ready"),
    (("primary.missing",), "not_ready"),
    (("isolated", "primary.down", "backup.down"), "not_ready"),
    (("terminals 1/2",), "not_ready"),
    (("primary.stale",), "unknown"),
    (("backup.no_data",), "unknown"),
    (("terminals.unknown 1/2",), "unknown"),
    (("upstream AGG-2 down",), "unknown"),
    (("backup.down", "terminals.unknown 1/2"), "unknown"),
    (("primary.stale", "terminals 0/2"), "not_ready"),
    (("maintenance: fiber splice",), "ready"),
    (("waived backup until 2026-06-01 (by X)",), "ready"),
    (("sustaining (5h of 24h)",), "degraded"),
]


@pytest.mark.parametrize(("reasons", "state"), STATES, ids=[" + ".join(c[0]) or "none" for c in STATES])
def test_state_of_reasons(reasons: tuple[str, ...], state: str) -> None:
    """Reasons map to a state with readiness.py's severity: not_ready > unknown > degraded > ready."""
    assert state_of_reasons(map(Reason.parse, reasons)) == state


def test_state_of_reasons_agrees_with_evaluate(tmp_path: Path) -> None:
    """For what evaluate() produces, recomputing the state from the reasons gives the same state."""
    cfg = config(tmp_path, [site("AGG", terminals=0, kind="node", n=9), site("S1", upstream="AGG")])
    tcp = lambda k, ok=True: Observation(k, "tcp", ok, 1000.0, {}, "" if ok else "refused")  # noqa: E731
    healthy = {"S1/primary": obs("S1/primary"), "S1/backup": obs("S1/backup"), "S1/terminal/T1": tcp("S1/terminal/T1"),
               "S1/terminal/T2": tcp("S1/terminal/T2"), "AGG/primary": obs("AGG/primary"),
               "AGG/backup": obs("AGG/backup")}
    down = obs("x", ok=False, loss_ratio=1.0)
    variants: list[dict[str, Observation | None]] = [
        {}, {"S1/backup": down}, {"S1/primary": down}, {"S1/primary": down, "S1/backup": down},
        {"S1/primary": obs("S1/primary", loss_ratio=0.3)}, {"S1/backup": obs("S1/backup", at=400.0)},
        {"S1/terminal/T2": tcp("S1/terminal/T2", ok=False)}, {"S1/terminal/T1": None},
        {"AGG/primary": down, "AGG/backup": down, "S1/primary": down, "S1/backup": down},
    ]
    fresh = Freshness({"icmp": 60.0, "tcp": 60.0})
    for changes in variants:
        merged: dict[str, Observation | None] = {**healthy, **changes}
        latest = {k: v for k, v in merged.items() if v is not None}
        for r in evaluate(cfg.sites, cfg.policy, latest, 1000.0, fresh).sites.values():
            assert state_of_reasons(r.reasons) == r.state, (changes, r.reasons)


NOTE = "waived {} until 2026-06-01 (by Governor's ICT office)"
APPLY = [
    # (scenario, state, reasons, waived requirement or None, in maintenance, expected state, expected reasons)
    ("maintenance keeps the state and comes first", "not_ready", ("primary.down",), None, True,
     "not_ready", ("maintenance: fiber splice", "primary.down")),
    ("a waived backup makes a site ready", "degraded", ("backup.down",), "backup", False,
     "ready", (NOTE.format("backup"),)),
    ("a waived missing backup too", "degraded", ("backup.missing",), "backup", False,
     "ready", (NOTE.format("backup"),)),
    ("a waived backup leaves other faults", "degraded", ("primary.loss>1%", "backup.down"), "backup", False,
     "degraded", ("primary.loss>1%", NOTE.format("backup"))),
    ("a waived stale backup is no longer unknown", "unknown", ("backup.stale",), "backup", False,
     "ready", (NOTE.format("backup"),)),
    ("an isolated site stays not ready", "not_ready", ("isolated", "primary.down", "backup.down"), "backup", False,
     "not_ready", ("isolated", "primary.down", NOTE.format("backup"))),
    ("waived terminals", "not_ready", ("terminals 1/2",), "terminals", False, "ready", (NOTE.format("terminals"),)),
    ("waived terminals, unknown ones too", "unknown", ("backup.down", "terminals.unknown 1/2"), "terminals", False,
     "degraded", ("backup.down", NOTE.format("terminals"))),
    ("primary quality: loss is lifted", "degraded", ("primary.loss>1%", "primary.rtt>50ms"), "primary_quality",
     False, "ready", (NOTE.format("primary_quality"),)),
    ("primary quality: down is not", "not_ready", ("primary.down",), "primary_quality", False,
     "not_ready", ("primary.down", NOTE.format("primary_quality"))),
    ("optical power", "degraded", ("primary.rx_power<-25dBm",), "optical_power", False,
     "ready", (NOTE.format("optical_power"),)),
    ("a waiver with nothing to lift is still on the record", "ready", (), "backup", False,
     "ready", (NOTE.format("backup"),)),
    ("maintenance and a waiver", "degraded", ("backup.down",), "backup", True,
     "ready", ("maintenance: fiber splice", NOTE.format("backup"))),
]


@pytest.mark.parametrize(("scenario", "state", "reasons", "requirement", "maintenance", "want_state", "want"),
                         APPLY, ids=[c[0] for c in APPLY])
def test_apply_schedule(scenario: str, state: str, reasons: tuple[str, ...], requirement: str | None,
                        maintenance: bool, want_state: str, want: tuple[str, ...]) -> None:
    """Maintenance is noted first; a waiver lifts its requirement's reasons and the state is recomputed."""
    r = SiteReadiness("S1", state, tuple(map(Reason.parse, reasons)), 500.0)  # type: ignore[arg-type]
    windows = [window(sites=["S1"], start="2026-01-05T09:00", end="2026-01-05T17:00")] if maintenance else []
    waivers = [waiver(requirement)] if requirement else []
    out = apply_schedule(r, "Ilam", windows, waivers, at(5, 10), TEHRAN)
    assert (out.state, texts(out.reasons)) == (want_state, want), scenario
    assert (out.site, out.since) == ("S1", 500.0)


def test_apply_schedule_without_anything_returns_the_result() -> None:
    """No open window and no waiver for this site: the very same result comes back."""
    r = SiteReadiness("S1", "degraded", (Reason("backup.down"),), 0.0)
    windows = [window(sites=["S1"], start="2026-01-05T09:00", end="2026-01-05T17:00")]
    assert apply_schedule(r, "Ilam", windows, [waiver(site_id="S2")], at(5, 18), TEHRAN) is r
