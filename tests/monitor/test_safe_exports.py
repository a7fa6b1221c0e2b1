"""Audit exports of hostile names (issue 18): formulas stay text in CSV and XLSX, HTML is escaped, JSON as is.

Site and county names come from the inventory, which a spreadsheet may well have produced: a name
like ``=HYPERLINK("http://x","y")`` or ``=cmd|' /C calc'!A0`` must never become a live formula (or a
DDE call) in the committee's spreadsheet program. OWASP's CSV injection guidance: a text cell that
starts with = + - @ tab or CR gets a leading single quote in CSV; in XLSX it is a string cell with
quotePrefix. Numbers are never touched.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path

import openpyxl
import pytest

from monitor.audit.sheet import SITE_COLUMNS, _csv_value, neutralised
from monitor.cli.main import main
from monitor.store.events import EventStore, Transition
from tests.monitor.audit_fill import HOUR, T0

HOSTILE = {
    "S1": '=HYPERLINK("http://x","y")',
    "S2": "=cmd|' /C calc'!A0",
    "S3": "@SUM(1+1)*cmd|' /C calc'!A0",
    "S4": "+1+cmd|' /C calc'!A0",
    "S5": "-2+3",
    "S6": "<script>alert('x')</script> & co",
    "S7": "#N/A",
    "S8": "مدرسه =1+1",  # a formula start inside the text is harmless
}
COUNTY = "=1+2"
READY = [c.key for c in SITE_COLUMNS].index("ready_seconds")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An audit bundle of a day over sites with hostile names, through the real `audit export`."""
    tmp = tmp_path_factory.mktemp("hostile-export")
    link = {"links": [{"role": "primary", "medium": "fiber", "address": "127.44.0.1"}], "area": "rural"}
    doc = {"programme": {"name": "=HYPERLINK(\"http://x\",\"programme\")", "deadline": "2026-03-15T08:00:00+03:30"},
           "policy": {"require_backup": False},
           "sites": [{"id": sid, "name": name, "county": COUNTY if sid in ("S1", "S2") else "Ilam", **link}
                     for sid, name in HOSTILE.items()]}
    config_path = tmp / "config.yaml"
    config_path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    data = tmp / "data"
    with EventStore(data, batch_seconds=0.01) as store:
        store.append([Transition(T0 - HOUR, f"site:{sid}", None, "ready" if i % 2 else "not_ready",
                                 () if i % 2 else ("-primary.down", "=1+1"), "v1")
                      for i, sid in enumerate(HOSTILE)])
        assert store.flush()
    out = tmp / "bundle"
    assert main(["audit", "export", "--config", str(config_path), "--data-dir", str(data), "--from", "1404-12-01",
                 "--to", "1404-12-01", "-o", str(out), "--force"]) == 0  # no config row recorded: forced
    return out


def test_csv_cells_starting_like_a_formula_get_a_quote(bundle: Path) -> None:
    """readiness.csv: every text cell that starts with = + - @ (tab, CR) starts with ' instead; numbers stay."""
    text = (bundle / "readiness.csv").read_bytes().decode("utf-8").lstrip("\ufeff")
    rows = {row["site_id"]: row for row in csv.DictReader(io.StringIO(text))}
    for sid, name in HOSTILE.items():
        want = "'" + name if name[0] in "=+-@" else name
        assert rows[sid]["name"] == want, sid
    assert rows["S1"]["county"] == "'=1+2" and rows["S3"]["county"] == "Ilam"
    assert rows["S1"]["reasons_at_end"] == "'-primary.down; =1+1"
    for row in rows.values():
        for key, value in row.items():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), (key, value)
        assert float(row["ready_seconds"]) + float(row["not_ready_seconds"]) == 24 * HOUR


def test_xlsx_has_no_formula_and_keeps_numbers(bundle: Path) -> None:
    """readiness.xlsx read back with openpyxl: not one formula cell; hostile names are string cells with
    quotePrefix, exactly as written; durations and ratios are numbers."""
    wb = openpyxl.load_workbook(bundle / "readiness.xlsx")
    names: dict[str, tuple[str, str, bool]] = {}
    numbers = 0
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (ws.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str) and cell.value.startswith(("=", "+", "-", "@")):
                    assert cell.data_type == "s" and cell.quotePrefix, (ws.title, cell.coordinate, cell.value)
                if isinstance(cell.value, int | float):
                    numbers += 1
        if ws.title != "Summary":
            for row in ws.iter_rows(min_row=2):
                names[str(row[0].value)] = (row[1].value, row[1].data_type, row[1].quotePrefix)
                if row[0].value in HOSTILE:  # a site row: its durations stay numbers, never neutralised text
                    assert isinstance(row[READY].value, int | float | timedelta), (ws.title, row[0].value)
    assert names["S1"] == (HOSTILE["S1"], "s", True)
    assert names["S2"] == (HOSTILE["S2"], "s", True)
    assert names["S5"] == ("-2+3", "s", True)
    assert names["S7"] == ("#N/A", "s", False)  # a string, not the error value
    assert names["S8"] == (HOSTILE["S8"], "s", False)
    summary = wb["Summary"]
    assert [c.value for c in summary["B"] if c.value == COUNTY] == [COUNTY]
    note = next(c for c in summary["A"] if isinstance(c.value, str) and c.value.startswith("=HYPERLINK"))
    assert note.data_type == "s" and note.quotePrefix
    assert numbers >= 40  # the summary's and every site row's figures


def test_html_escapes_and_json_keeps_the_text(bundle: Path) -> None:
    """report.html: escaped, never markup; summary.json: the names as they are."""
    html = (bundle / "report.html").read_text(encoding="utf-8")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in html
    assert "=HYPERLINK(&quot;http://x&quot;,&quot;y&quot;)" in html
    summary = json.loads((bundle / "summary.json").read_text(encoding="utf-8"))
    assert COUNTY in summary["counties"]
    assert summary["programme"]["name"] == '=HYPERLINK("http://x","programme")'


def test_the_bundle_verifies(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every file and row of the hostile bundle checks out; only its (absent) signature is left unproved,
    which strict verification reports as NOT VERIFIED (exit 1) rather than OK."""
    capsys.readouterr()
    code = main(["audit", "verify", str(bundle)])
    out = capsys.readouterr().out
    assert "FAIL" not in out and "NOT INTACT" not in out, out
    assert code == 1 and "NOT VERIFIED" in out, out


@pytest.mark.parametrize(("value", "kind", "want"), [
    (-1.5, "seconds", "-1.5"), (-0.25, "ratio", "-0.250000"), ("-1.5", "text", "'-1.5"), ("\tx", "rtl", "'\tx"),
    ("\rx", "text", "'\rx"), ("x=1", "text", "x=1"), ("\uff1dcmd", "text", "'\uff1dcmd"), ("", "text", ""),
])
def test_only_text_cells_are_neutralised(value: object, kind: str, want: str) -> None:
    """A negative number in a numeric column stays a number; the same characters as text get the quote."""
    assert _csv_value(value, kind) == want
    assert neutralised("'=x") == "'=x"  # already text to a spreadsheet
