"""Reason codes: one table of codes, the state each implies and the text each reads as."""

from __future__ import annotations

import re

import pytest

from monitor.core.reasons import (
    LINK_CODES,
    LINK_EFFECT,
    ROLES,
    SITE_CODES,
    Reason,
    code_of,
    main_code,
    state_codes,
    state_of_reasons,
)
from monitor.rules import has_reason, render_rules

# (reason built in the program, its text: the exact form the store, rules and dashboards hold)
TEXTS = [
    (Reason("primary.down"), "primary.down"),
    (Reason("backup.stale"), "backup.stale"),
    (Reason("primary.loss", ">1%"), "primary.loss>1%"),
    (Reason("backup.rx_power", "<-25dBm"), "backup.rx_power<-25dBm"),
    (Reason("primary.errors", ">1/s"), "primary.errors>1/s"),
    (Reason("primary.rx_power_warning", "<-23dBm"), "primary.rx_power_warning<-23dBm"),
    (Reason("isolated"), "isolated"),
    (Reason("terminals", "3/5"), "terminals 3/5"),
    (Reason("terminals.unknown", "1/2"), "terminals.unknown 1/2"),
    (Reason("upstream", subject="AGG-2"), "upstream AGG-2 down"),
    (Reason("maintenance", "تعویض فیبر"), "maintenance: تعویض فیبر"),
    (Reason("waived", "until 2026-06-01 (by ICT office)", "backup"), "waived backup until 2026-06-01 (by ICT office)"),
    (Reason("sustaining", "5h of 24h"), "sustaining (5h of 24h)"),
    (Reason("no_data"), "no_data"),
]


@pytest.mark.parametrize(("reason", "text"), TEXTS, ids=[t for _, t in TEXTS])
def test_text_form_and_back(reason: Reason, text: str) -> None:
    """A reason reads exactly as before the types, and the text parses back to the same value."""
    assert str(reason) == text
    assert Reason.parse(text) == reason


@pytest.mark.parametrize("text", ["Something else", "", "upstream AGG-2", "terminals", "isolated now",
                                  "frobnicated 3", "other text", "backup.bogus"])
def test_unknown_text_is_kept_whole(text: str) -> None:
    """Text of no known form (an old record) is kept verbatim under `other`, a fault until someone reads it."""
    reason = Reason.parse(text)
    assert (reason.code, str(reason), reason.state) == ("other", text, "degraded")


def test_codes_are_closed() -> None:
    """Only the table's codes exist: a typo is an error, not a new metric label."""
    with pytest.raises(ValueError, match="unknown reason code"):
        Reason("primary.lost")
    with pytest.raises(ValueError, match="unknown reason code"):
        Reason("tertiary.down")


def test_link_codes_follow_the_role() -> None:
    """A link code implies what its link state makes of the site for that role."""
    for name, spec in LINK_CODES.items():
        for role in ROLES:
            r = Reason(f"{role}.{name}")
            assert (r.role, r.name) == (role, name)
            assert r.state == (LINK_EFFECT[role][spec.link] if spec.link else "ready")
    assert (Reason("primary.down").state, Reason("backup.down").state) == ("not_ready", "degraded")
    assert (Reason("primary.missing").state, Reason("backup.missing").state) == ("not_ready", "degraded")


def test_informational_codes_imply_nothing() -> None:
    notes = {code for code, spec in SITE_CODES.items() if spec.informational}
    assert notes == {"maintenance", "waived"}
    assert state_of_reasons([Reason("maintenance", "x"), Reason("waived", "until y", "backup")]) == "ready"


def test_alert_rules_name_only_known_codes() -> None:
    """The alert rules select reasons by code, anywhere in a site's ``reasons``: every code they name is in the
    table, and they never match the old one-series-per-code ``reason`` label."""
    named = set()
    for m in re.finditer(r'reasons=~"\(\.\*,\)\?\(?([^()"]+)\)?\(,\.\*\)\?"', render_rules()):
        named |= {code.replace("\\\\.", ".") for code in m.group(1).split("|")}
    assert named == {"isolated", "terminals", "upstream"}, "the rules select by reason code"
    for code in named:
        code_of(code)
    assert not re.search(r'\breason=~?"', render_rules())


def _promql_regex(matcher: str) -> re.Pattern[str]:
    """The RE2 pattern of a ``label=~"..."`` matcher as Prometheus reads it: the string unescaped, anchored."""
    body = re.fullmatch(r'reasons=~"(.*)"', matcher)
    assert body is not None
    return re.compile(body.group(1).replace("\\\\", "\\"))


@pytest.mark.parametrize(("codes", "reasons", "match"), [
    (("isolated",), "isolated", True),
    (("isolated",), "backup.down,isolated,primary.down", True),
    (("isolated",), "primary.down", False),
    (("terminals",), "terminals.unknown", False),  # a code is matched whole, not as a prefix
    (("terminals",), "backup.loss,terminals", True),
    (("isolated", "upstream"), "upstream", True),
    (("isolated", "upstream"), "upstream.unconfirmed", False),
    (("primary.down",), "primary.down,terminals", True),
    (("primary.down",), "primaryxdown", False),  # the dot is a dot
])
def test_has_reason_matches_a_code_anywhere(codes: tuple[str, ...], reasons: str, match: bool) -> None:
    """has_reason's matcher finds a code whole anywhere in the comma-separated list (Prometheus anchors it)."""
    assert bool(_promql_regex(has_reason(*codes)).fullmatch(reasons)) is match


def test_state_codes_and_main_code() -> None:
    """The metrics' reasons: state-making codes only (no maintenance, waiver or warning), sorted, each once; the
    main one is the first whose state is the site's, else the first of the worst."""
    reasons = (Reason("maintenance", "fiber splice"), Reason("primary.down"), Reason("backup.loss", ">1%"),
               Reason("backup.rx_power_warning", "<-23dBm"), Reason("terminals", "0/2"),
               Reason("waived", "until 2026-06-01 (by X)", "optical_power"))
    assert state_codes(reasons) == ("backup.loss", "primary.down", "terminals")
    assert main_code(reasons, "not_ready") == "primary.down"
    assert main_code(reasons, "degraded") == "backup.loss"
    assert main_code(reasons, "unknown") == "primary.down"  # no reason says unknown: the worst, first
    assert main_code((Reason("isolated"), Reason("primary.down")), "not_ready") == "isolated"
    assert main_code((Reason("maintenance", "x"),), "ready") is None
    assert state_codes((Reason("maintenance", "x"), Reason("waived", "y", "backup"))) == ()
