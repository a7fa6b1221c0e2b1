"""`readiness status`: summary tables, the worst sites, Persian names on a terminal, and the fetch."""

from __future__ import annotations

import http.server
import io
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from rich.console import Console

from monitor.cli.status import has_rtl, render_status, status_from_url, visual, worst_sites
from monitor.core.readiness import SiteReadiness
from monitor.core.reasons import Reason
from monitor.errors import ReadinessError
from monitor.runtime.snapshot import Snapshot
from monitor.web.api import sites_json
from tests.monitor.fixtures import config, site

VISUAL = [
    # (scenario, logical text, visual order for a left-to-right terminal)
    ("ASCII is left alone", "primary.loss>1%", "primary.loss>1%"),
    ("one Persian word is reversed", "ایلام", "مالیا"),
    ("Persian words keep their reading order right to left", "دبستان شهید بهشتی", "یتشهب دیهش ناتسبد"),
    ("Persian digits keep their order", "مدرسه ۱۲", "۱۲ هسردم"),
    ("Latin digits keep their order", "مدرسه 305", "305 هسردم"),
    ("a Latin id inside a Persian name", "مدرسه S1", "S1 هسردم"),
    ("a Persian run inside an English line", "maintenance: تعویض فیبر", "maintenance: ربیف ضیوعت"),
    ("brackets around Persian stay around it", "maintenance: تعویض فیبر (۲ ساعت)",
     "maintenance: (تعاس ۲) ربیف ضیوعت"),
    ("a zero-width non-joiner stays between its letters", "می\u200cشود", "دوش\u200cیم"),
    ("a vowel mark stays after its letter", "مَدرسه", "هسردمَ"),
    ("a decimal number keeps its point", "دما 12.5 درجه", "هجرد 12.5 امد"),
    ("quotation marks around Persian stay around it", "دبستان «شهید» بهشتی", "یتشهب «دیهش» ناتسبد"),
    ("each line is a paragraph of its own", "الف\nب ج", "فلا\nج ب"),
]


@pytest.mark.parametrize(("scenario", "text", "expected"), VISUAL, ids=[c[0] for c in VISUAL])
def test_visual_order(scenario: str, text: str, expected: str) -> None:
    """Text with Persian is reordered as the Unicode bidi algorithm would display it."""
    assert visual(text) == expected, scenario
    assert sorted(visual(text)) == sorted(text)  # reordered, nothing lost


def test_has_rtl() -> None:
    """Only right-to-left letters count; Persian digits alone do not."""
    assert has_rtl("مدرسه") and not has_rtl("S1 ۱۲") and not has_rtl("")


def entry(site_id: str, state: str, county: str = "ایلام", area: str = "urban", reasons: tuple[str, ...] = (),
          since: str = "2026-01-05T06:00:00Z", name: str | None = None) -> dict[str, Any]:
    return {"id": site_id, "name": name or f"مدرسه {site_id}", "county": county, "area": area, "kind": "polling",
            "state": state, "reasons": list(reasons), "since": since}


def _tally(sites: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {state: sum(s["state"] == state for s in sites)
                           for state in ("ready", "degraded", "not_ready", "unknown")}
    out["total"] = len(sites)
    out["ready_share"] = out["ready"] / len(sites) if sites else None
    return out


def document(sites: list[dict[str, Any]]) -> dict[str, Any]:
    """An /api/v1/sites document whose summary is as the service computes it (polling places only)."""
    polling = [s for s in sites if s["kind"] == "polling"]
    counties = {s["county"] for s in polling}
    summary = {**_tally(polling),
               "counties": {c: _tally([s for s in polling if s["county"] == c]) for c in counties},
               "areas": {a: _tally([s for s in polling if s["area"] == a]) for a in ("urban", "rural")},
               "nodes": _tally([s for s in sites if s["kind"] == "node"])}
    return {"programme": {"name": "انتخابات ۱۴۰۵", "deadline": "2026-06-12T08:00:00+03:30",
                          "timezone": "Asia/Tehran"},
            "evaluated_at": "2026-01-05T10:00:00Z", "config_version": "abc123", "summary": summary, "sites": sites}


SITES = [
    entry("ILM-001", "ready"),
    entry("ILM-002", "degraded", reasons=("backup.down",), since="2026-01-05T09:00:00Z"),
    entry("ILM-003", "not_ready", area="rural", reasons=("isolated", "primary.down", "backup.down")),
    entry("MHR-001", "unknown", county="مهران", area="rural", reasons=("primary.stale",)),
    entry("MHR-002", "ready", county="مهران", area="rural"),
    entry("MHR-003", "degraded", county="مهران", reasons=("maintenance: تعویض فیبر",), since="2026-01-04T10:00:00Z"),
]


def render(doc: dict[str, Any], *, terminal: bool, worst: int = 20, **kw: Any) -> str:
    out = io.StringIO()
    console = Console(file=out, force_terminal=terminal, color_system=None, width=200)
    render_status(doc, console, worst, **kw)
    return out.getvalue()


def rows(text: str) -> list[list[str]]:
    """Return the cells of each table row in ``text``."""
    return [[c.strip() for c in line.strip().strip("│").split("│")] for line in text.splitlines() if "│" in line]


@pytest.fixture(autouse=True)
def _no_bidi_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("READINESS_BIDI", raising=False)


def test_summary_tables_in_logical_order_when_not_a_terminal() -> None:
    """Piped output has the province, county and area tables and keeps Persian in logical order."""
    text = render(document(SITES), terminal=False)
    for title in ("Province (polling places)", "Counties", "Urban / rural", "Worst sites (4 of 4 not fully ready)"):
        assert title in text
    province = text.split("Province")[1].split("Counties")[0]
    assert ["2", "2", "1", "1", "6", "33.3%"] in rows(province)
    counties = rows(text.split("Counties")[1].split("Urban / rural")[0])
    assert ["ایلام", "1", "1", "1", "0", "3", "33.3%"] in counties
    assert ["مهران", "1", "1", "0", "1", "3", "33.3%"] in counties
    assert "مدرسه ILM-003" in text and "مهران" in text and "انتخابات ۱۴۰۵" in text
    assert "urban" in text and "rural" in text
    assert ("evaluated 1404-10-15 13:30 (2026-01-05) Asia/Tehran · deadline 1405-03-22 08:00 (2026-06-12) "
            "Asia/Tehran · config abc123") in text  # Jalali, the Gregorian beside it
    assert "158 days to the deadline" in text
    assert "Forecast at the deadline: not enough history" in text

    assert "isolated, primary.down, backup.down" in text
    assert "maintenance: تعویض فیبر" in text


def test_status_shows_the_forecast_with_its_range() -> None:
    from monitor.cli.status import forecast_line
    doc = {"forecast": {"province": {"status": "ok", "share_at_deadline": 0.9, "share_at_deadline_range": [0.8, 0.95],
                                     "at_risk": True, "all_ready_at": None}}}
    assert forecast_line(doc, None) == ("Forecast at the deadline: 90.0% (80.0%–95.0%), AT RISK; "
                                        "never all ready at this pace")


def test_persian_names_are_in_visual_order_on_a_terminal() -> None:
    """On a terminal, names, counties and Persian reasons are reordered; ids and English are not."""
    text = render(document(SITES), terminal=True)
    assert visual("مدرسه ILM-003") in text and "مدرسه ILM-003" not in text
    assert visual("مهران") in text
    assert "maintenance: " + visual("تعویض فیبر") in text
    assert "ILM-003" in text and "primary.down" in text


@pytest.mark.parametrize(("setting", "reordered"), [("logical", False), ("visual", True)])
def test_environment_overrides_the_terminal_guess(monkeypatch: pytest.MonkeyPatch, setting: str,
                                                  reordered: bool) -> None:
    """READINESS_BIDI=logical serves terminals that reorder by themselves; =visual forces reordering."""
    monkeypatch.setenv("READINESS_BIDI", setting)
    text = render(document(SITES), terminal=setting == "logical")
    assert (visual("مهران") in text) is reordered


def test_worst_sites_order() -> None:
    """Not ready first, then unknown, then degraded; within a state the longest-standing first."""
    assert [s["id"] for s in worst_sites(SITES)] == ["ILM-003", "MHR-001", "MHR-003", "ILM-002"]


def test_worst_is_limited_and_says_how_many_more() -> None:
    """With worst=2 only two sites are listed, and the rest are counted."""
    text = render(document(SITES), terminal=False, worst=2)
    assert "Worst sites (2 of 4 not fully ready)" in text
    assert "ILM-003" in text and "MHR-001" in text and "MHR-003" not in text
    assert "… and 2 more" in text


def test_time_in_state() -> None:
    """The 'for' column says how long a site has been in its state, as of the evaluation."""
    text = render(document(SITES), terminal=False)
    assert "1d 00h" in text and "4h 00m" in text and "1h 00m" in text


def test_everything_ready() -> None:
    """With every site ready there is no worst table, just the good news."""
    text = render(document([entry("A", "ready"), entry("B", "ready")]), terminal=False)
    assert "All 2 sites are ready." in text and "Worst sites" not in text
    assert "No sites reported." in render(document([]), terminal=False)


def test_renders_the_real_api_document(tmp_path: Path) -> None:
    """The document sites_json builds renders as it is (one site never evaluated)."""
    cfg = config(tmp_path, [site("S1", n=1), site("S2", n=2)])
    r = SiteReadiness("S1", "degraded", (Reason("backup.down"),), 1_767_590_000.0)
    snap = Snapshot(1_767_600_000.0, cfg, {"S1": r}, {}, 1_767_500_000.0, evaluated=True)
    text = render(sites_json(snap), terminal=False)
    assert "backup.down" in text and "no_data" in text and "2h 46m" in text


# -- fetching -------------------------------------------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, bytes]]] = {}

    def do_GET(self) -> None:
        status, body = self.routes.get(self.path, (404, b"not found"))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    """A real HTTP server on loopback; yields its base URL and shuts down after the test."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    _Handler.routes = {
        "/api/v1/sites": (200, json.dumps(document(SITES)).encode()),
        "/broken/api/v1/sites": (500, b"oops"),
        "/html/api/v1/sites": (200, b"<html>"),
        "/list/api/v1/sites": (200, b"[]"),
        "/old/api/v1/sites": (200, json.dumps({"sites": SITES, "summary": {"ready": 2}}).encode()),
    }
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_status_from_url(server: str) -> None:
    """The document comes back as sent, whether the URL has the path or only host and port."""
    assert status_from_url(server + "/api/v1/sites") == document(SITES)
    assert status_from_url(server) == document(SITES)
    assert status_from_url(server + "/") == document(SITES)


@pytest.mark.parametrize(("path", "message"), [
    ("/broken/api/v1/sites", "answered HTTP 500"),
    ("/html/api/v1/sites", "did not return JSON"),
    ("/list/api/v1/sites", "no 'sites' list"),
    ("/old/api/v1/sites", "no figures summary"),
])
def test_status_from_url_bad_answers(server: str, path: str, message: str) -> None:
    """A service that answers wrongly is a ReadinessError naming the URL."""
    with pytest.raises(ReadinessError, match=message) as info:
        status_from_url(server + path)
    assert server in str(info.value)


def test_status_from_url_when_nothing_listens() -> None:
    """Connection refused says where it tried and what to check."""
    with socket.socket() as s:  # a port that was free a moment ago and has no listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api/v1/sites"
    with pytest.raises(ReadinessError, match="cannot reach the readiness service at") as info:
        status_from_url(url, timeout=2)
    assert url in str(info.value) and "readiness run" in str(info.value)
