"""Terminals checked over HTTP(S): up only if the check passes; certificates judged against the deadline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from monitor.core.readiness import Freshness, evaluate
from monitor.core.reasons import Reason, texts
from monitor.runtime.service import Service
from probes.base import Observation
from tests.monitor.fixtures import config, obs, site

DAY = 86400.0
NOW = 1_780_000_000.0  # 2026-05-28
DEADLINE = NOW + 30 * DAY
FRESH = Freshness({"icmp": 60.0, "tcp": 60.0, "snmp": 120.0, "http": 120.0})


def https(key: str, ok: bool = True, failure: str = "", **values: float) -> Observation:
    base = {"status_code": 200, "ttfb_seconds": 0.01, "total_seconds": 0.02, "tls_version": 1.3,
            "tls_cert_valid": 1, "tls_not_after_timestamp_seconds": NOW + 365 * DAY}
    return Observation(key, "http", ok, NOW, {**base, **values}, failure, failure)


def http_site() -> dict[str, Any]:
    s = site("S1")
    for t in s["terminals"]:
        t["http"] = {"url": "/health"}
    return s


def judge(tmp_path: Path, t1: Observation, t2: Observation | None = None, **policy: Any) -> Any:
    cfg = config(tmp_path, [http_site()], **({"policy": policy} if policy else {}))
    latest = {"S1/primary": obs("S1/primary", at=NOW), "S1/backup": obs("S1/backup", at=NOW),
              "S1/terminal/T1": t1, "S1/terminal/T2": t2 or https("S1/terminal/T2")}
    return evaluate(cfg.sites, cfg.policy, latest, NOW, FRESH, deadline=DEADLINE).sites["S1"]


def test_a_passing_check_is_up(tmp_path: Path) -> None:
    r = judge(tmp_path, https("S1/terminal/T1"))
    assert r.state == "ready" and r.terminals_up == 2 and r.warnings == ()


@pytest.mark.parametrize("failure", ["status_mismatch", "body_mismatch", "tls_invalid", "tls_expired", "timeout"])
def test_a_failing_check_is_down(tmp_path: Path, failure: str) -> None:
    """A terminal that accepts connections but answers 500, or a proxy's page, or a bad certificate, is down."""
    r = judge(tmp_path, https("S1/terminal/T1", ok=False, failure=failure, status_code=500))
    t1 = next(t for t in r.terminals if t.id == "T1")
    assert (t1.state, t1.reason) == ("down", failure)
    assert r.state == "not_ready" and "terminals 1/2" in texts(r.reasons)


def test_certificate_before_the_deadline_is_a_warning(tmp_path: Path) -> None:
    """Expiring after today's margin but before the deadline plus the margin: a warning, the site stays ready."""
    r = judge(tmp_path, https("S1/terminal/T1", tls_not_after_timestamp_seconds=DEADLINE + 3 * DAY))
    assert r.state == "ready"
    assert texts(r.warnings) == ("certificate.before_deadline T1 2026-06-30",)
    assert Reason.parse("certificate.before_deadline T1 2026-06-30") == r.warnings[0]


def test_certificate_inside_the_margin_is_a_reason(tmp_path: Path) -> None:
    """Five days left (margin 14): degraded, with the terminal and the date; the check itself still passes."""
    r = judge(tmp_path, https("S1/terminal/T1", tls_not_after_timestamp_seconds=NOW + 5 * DAY))
    assert r.state == "degraded" and r.terminals_up == 2
    assert texts(r.reasons) == ("certificate.expiring T1 2026-06-02",)
    assert r.reasons[0].subject == "T1" and Reason.parse(str(r.reasons[0])) == r.reasons[0]


def test_the_margin_is_policy(tmp_path: Path) -> None:
    """certificate_margin_days: 3 makes five days left a warning (before the deadline), not yet a reason."""
    r = judge(tmp_path, https("S1/terminal/T1", tls_not_after_timestamp_seconds=NOW + 5 * DAY),
              certificate_margin_days=3)
    assert r.state == "ready" and texts(r.warnings) == ("certificate.before_deadline T1 2026-06-02",)


def test_an_expired_certificate_is_down_and_a_reason(tmp_path: Path) -> None:
    r = judge(tmp_path, https("S1/terminal/T1", ok=False, failure="tls_expired", tls_cert_valid=0,
                              tls_not_after_timestamp_seconds=NOW - 2 * DAY))
    assert r.state == "not_ready"
    assert texts(r.reasons) == ("terminals 1/2", "certificate.expiring T1 2026-05-26")


def test_the_service_passes_the_programme_deadline(tmp_path: Path) -> None:
    cfg = config(tmp_path, [http_site()])  # deadline 2026-12-31
    service = Service(cfg, clock=lambda: NOW)
    service.latest.update({"S1/primary": obs("S1/primary", at=NOW), "S1/backup": obs("S1/backup", at=NOW),
                           "S1/terminal/T1": https("S1/terminal/T1", tls_not_after_timestamp_seconds=NOW + 60 * DAY),
                           "S1/terminal/T2": https("S1/terminal/T2")})
    r = service.evaluate(force=True).sites["S1"]
    assert r.state == "ready" and texts(r.warnings) == ("certificate.before_deadline T1 2026-07-27",)
