"""readiness.csv and readiness.xlsx: one row per site, the same columns in both.

The CSV is for machines (UTF-8 with a BOM so spreadsheet programs read Persian; seconds and
ratios as plain numbers; times ISO 8601 with the programme's offset). The workbook is for people:
a summary sheet then one sheet per county, a frozen header, durations as ``[h]:mm:ss``, ratios as
percentages, Persian text right-to-left, column widths that fit their contents.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from monitor.audit.figures import Figures, GroupFigures, SiteFigures, failed_text, waiver_text
from monitor.core.actions import Action
from monitor.core.availability import Availability
from monitor.core.calendar import format_jalali

Kind = str  # "text" | "rtl" | "time" | "ratio" | "seconds" | "int"
# A text cell starting with one of these is a formula (or DDE) to a spreadsheet program: OWASP's CSV
# injection list (= + - @ tab CR), and the fullwidth forms some programs read the same way.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_RTL_RE = re.compile("[\u0600-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufeff]")
_SHEET_BAD = re.compile(r"[\[\]:*?/\\]")
MAX_WIDTH = 60


@dataclass(frozen=True, slots=True)
class Column:
    key: str  # the CSV header
    title: str  # the workbook header: Persian / English
    kind: Kind
    value: Callable[[SiteFigures, Figures], Any]


def _ratio(a: Availability | None) -> float | None:
    return None if a is None else a.ratio


def _time(ts: float | None, fig: Figures) -> datetime | None:
    return None if ts is None else fig.period.local(ts)


def _jalali(ts: float | None, fig: Figures) -> str:
    return "" if ts is None else format_jalali(fig.period.local(ts))


SITE_COLUMNS: tuple[Column, ...] = (
    Column("site_id", "شناسه / Site", "text", lambda s, f: s.site.id),
    Column("name", "نام / Name", "rtl", lambda s, f: s.site.name),
    Column("county", "شهرستان / County", "rtl", lambda s, f: s.site.county),
    Column("owner", "مسئول / Owner", "rtl", lambda s, f: f.config.owner_of(s.site)[0] or ""),
    Column("area", "منطقه / Area", "text", lambda s, f: s.site.area),
    Column("kind", "نوع / Kind", "text", lambda s, f: s.site.kind),
    Column("state_at_end", "وضعیت / State at end", "text", lambda s, f: s.state),
    Column("state_since", "از / Since", "time", lambda s, f: _time(s.since, f)),
    Column("state_since_jalali", "از (شمسی) / Since (Jalali)", "text", lambda s, f: _jalali(s.since, f)),
    Column("first_ready", "نخستین آمادگی / First ready", "time", lambda s, f: _time(s.first_ready, f)),
    Column("first_ready_jalali", "نخستین آمادگی (شمسی) / First ready (Jalali)", "text",
           lambda s, f: _jalali(s.first_ready, f)),
    Column("site_availability", "دسترس‌پذیری سایت / Site availability", "ratio",
           lambda s, f: s.site_availability.ratio),
    Column("primary_availability", "لینک اصلی / Primary", "ratio", lambda s, f: _ratio(s.primary)),
    Column("backup_availability", "لینک پشتیبان / Backup", "ratio", lambda s, f: _ratio(s.backup)),
    Column("terminals_availability", "پایانه‌ها / Terminals", "ratio", lambda s, f: _ratio(s.terminals)),
    Column("ready_seconds", "آماده / Ready", "seconds", lambda s, f: s.site_availability.up_seconds),
    Column("degraded_seconds", "ناقص / Degraded", "seconds", lambda s, f: s.site_availability.other_seconds),
    Column("not_ready_seconds", "ناآماده / Not ready", "seconds", lambda s, f: s.site_availability.down_seconds),
    Column("maintenance_seconds", "نگهداری / Maintenance", "seconds", lambda s, f: s.maintenance_seconds),
    Column("blind_seconds", "نامعلوم / Blind (unknown)", "seconds", lambda s, f: s.blind_seconds),
    Column("failed_requirements", "الزامات برآورده‌نشده / Failed requirements", "text",
           lambda s, f: failed_text(s.failed)),
    Column("waivers", "معافیت‌ها / Waivers", "text",
           lambda s, f: "; ".join(waiver_text(w, f.period.zone) for w in s.waivers)),
    Column("reasons_at_end", "دلایل / Reasons at end", "text", lambda s, f: "; ".join(map(str, s.reasons))),
)


def neutralised(text: str) -> str:
    """Return a CSV text cell a spreadsheet program shows as text: a leading quote before a formula start
    (OWASP CSV injection guidance). Only text: a negative number stays a number."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _csv_value(value: Any, kind: Kind) -> str:
    if value is None or value == "":
        return ""
    if kind == "time":
        return str(value.isoformat(timespec="seconds"))
    if kind == "ratio":
        return f"{value:.6f}"
    if kind == "seconds":
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return neutralised(str(value))


def render_csv(fig: Figures) -> bytes:
    """Return readiness.csv: one row per site, in county then id order."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c.key for c in SITE_COLUMNS])
    for s in _ordered(fig.sites):
        writer.writerow([_csv_value(c.value(s, fig), c.kind) for c in SITE_COLUMNS])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _ordered(sites: list[SiteFigures]) -> list[SiteFigures]:
    return sorted(sites, key=lambda s: (s.site.county, s.site.id))


# -- the workbook ---------------------------------------------------------------------------------

_HEADER_FONT = Font(bold=True)
_HEADER_FILL = PatternFill("solid", fgColor="DDE4EE")
_FORMATS = {"time": "yyyy-mm-dd hh:mm:ss", "ratio": "0.00%", "seconds": "[h]:mm:ss", "int": "0"}
_WIDTHS = {"time": 20, "ratio": 9, "seconds": 11, "int": 8}


def _xlsx_value(value: Any, kind: Kind) -> Any:
    if value is None or value == "":
        return None
    if kind == "time":
        return value.replace(tzinfo=None)  # Excel has no zones: the programme's local time
    if kind == "seconds":
        return value / 86400.0  # Excel durations are fractions of a day
    return value


def _as_text(cell: Any) -> None:
    """Keep a string cell a string: openpyxl makes ``=...`` a formula and ``#N/A`` an error value, and a
    program may evaluate a cell that starts like a formula once someone edits it (quotePrefix stops that)."""
    if isinstance(cell.value, str):
        if cell.data_type != "s":
            cell.data_type = "s"
        if cell.value.startswith(FORMULA_STARTS):
            cell.quotePrefix = True


def _text_width(text: str) -> float:
    return max((len(line) for line in text.split("\n")), default=0) * (1.1 if _RTL_RE.search(text) else 1.0)


def _write_table(ws: Worksheet, headers: list[tuple[str, Kind]], rows: list[list[Any]]) -> None:
    ws.append([h for h, _ in headers])
    for cell in ws[1]:
        cell.font, cell.fill = _HEADER_FONT, _HEADER_FILL
        cell.alignment = Alignment(wrap_text=True, vertical="top", readingOrder=2 if _RTL_RE.search(
            str(cell.value)) else 1)
    widths = [min(MAX_WIDTH, max(12.0, _text_width(h) / 2 + 2)) for h, _ in headers]  # headers wrap to 2 lines
    for row in rows:
        ws.append([_xlsx_value(v, kind) for v, (_, kind) in zip(row, headers, strict=True)])
        for i, (value, (_, kind)) in enumerate(zip(row, headers, strict=True)):
            cell = ws.cell(ws.max_row, i + 1)
            if kind in _FORMATS:
                cell.number_format = _FORMATS[kind]
                widths[i] = max(widths[i], _WIDTHS[kind])
            elif value:
                _as_text(cell)
                text = str(value)
                widths[i] = min(MAX_WIDTH, max(widths[i], _text_width(text) + 2))
                if _RTL_RE.search(text):  # Persian reads right to left (readingOrder 2 = RTL)
                    cell.alignment = Alignment(horizontal="right", readingOrder=2)
    for i, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(i)].width = round(width, 1)
    ws.freeze_panes = "C2" if len(headers) > 2 else "A2"  # the header row and the site's id and name
    ws.auto_filter.ref = ws.dimensions
    ws.row_dimensions[1].height = 32


_GROUP_HEADERS: tuple[tuple[str, Kind], ...] = (
    ("دامنه / Scope", "text"), ("نام / Name", "text"), ("سایت‌ها / Sites", "int"), ("آماده / Ready", "int"),
    ("ناقص / Degraded", "int"), ("ناآماده / Not ready", "int"), ("نامعلوم / Unknown", "int"),
    ("سهم آماده / Ready share", "ratio"), ("تاکنون آماده / Ever ready", "int"),
    ("دسترس‌پذیری سایت / Site availability", "ratio"), ("لینک اصلی / Primary", "ratio"),
    ("لینک پشتیبان / Backup", "ratio"), ("پایانه‌ها / Terminals", "ratio"),
    ("نگهداری / Maintenance", "seconds"), ("نامعلوم / Blind", "seconds"),
    ("پیش‌بینی در مهلت / Forecast at deadline", "ratio"), ("همه آماده / All ready at", "time"),
    ("در خطر / At risk", "text"),
)


def _group_row(scope: str, g: GroupFigures, fig: Figures) -> list[Any]:
    fc = g.forecast
    all_ready = fc.all_ready_at if fc is not None else None
    return [scope, g.name, g.sites, g.states["ready"], g.states["degraded"], g.states["not_ready"],
            g.states["unknown"], g.ready_share, g.ever_ready, g.site_availability.ratio, g.primary.ratio,
            g.backup.ratio, g.terminals.ratio, g.site_availability.maintenance_seconds,
            g.site_availability.unknown_seconds, fc.share_at_deadline if fc is not None else None,
            None if all_ready is None else fig.period.local(all_ready),
            "" if fc is None or fc.at_risk is None else ("yes" if fc.at_risk else "no")]


def _sheet_title(name: str, used: set[str]) -> str:
    base = _SHEET_BAD.sub("-", name).strip("'")[:31] or "county"
    title, n = base, 2
    while title.lower() in used:
        suffix = f" ({n})"
        title, n = base[:31 - len(suffix)] + suffix, n + 1
    used.add(title.lower())
    return title


ACTION_HEADERS: tuple[tuple[str, Kind], ...] = (
    ("شناسه / ID", "text"), ("برای / For", "text"), ("شهرستان / County", "rtl"), ("مسئول / Owner", "rtl"),
    ("مهلت / Due", "time"), ("مهلت (شمسی) / Due (Jalali)", "text"), ("وضعیت / State", "text"),
    ("دیرکرد / Overdue at end", "text"), ("بسته شد / Closed", "time"), ("یادداشت / Note", "rtl"),
    ("نتیجه / Result", "rtl"),
)


def action_rows(actions: list[Action], fig: Figures) -> list[list[Any]]:
    """Return one row per action (ACTION_HEADERS), as the period's end sees it."""
    return [[a.id, a.target, a.county, a.owner, _time(a.due, fig), _jalali(a.due, fig), a.state,
             "yes" if a.overdue(fig.period.end) else "no", _time(a.closed_at, fig), a.note, a.result]
            for a in actions]


def render_xlsx(fig: Figures, actions: list[Action] | None = None) -> bytes:
    """Return readiness.xlsx: a summary sheet, then one sheet per county, then the period's remediation actions
    (when ``actions`` is given)."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Summary"
    rows = [_group_row("province", fig.province, fig)]
    rows += [_group_row("county", g, fig) for g in fig.counties.values()]
    rows += [_group_row("area", g, fig) for g in fig.areas.values() if g.sites]
    _write_table(ws, list(_GROUP_HEADERS), rows)
    ws.freeze_panes = "A2"
    start, end = fig.period.local(fig.period.start), fig.period.local(fig.period.end)
    note = (f"{fig.config.programme.name} — {format_jalali(start)} .. {format_jalali(end)} "
            f"({start.isoformat(timespec='minutes')} .. {end.isoformat(timespec='minutes')}, "
            f"{fig.config.programme.timezone})")
    _as_text(ws.cell(ws.max_row + 2, 1, note))
    used = {"summary"}
    by_county: dict[str, list[SiteFigures]] = {}
    for s in _ordered(fig.sites):
        by_county.setdefault(s.site.county, []).append(s)
    for county, sites in by_county.items():
        sheet = wb.create_sheet(_sheet_title(county, used))
        _write_table(sheet, [(c.title, c.kind) for c in SITE_COLUMNS],
                     [[c.value(s, fig) for c in SITE_COLUMNS] for s in sites])
    if actions is not None:
        _write_table(wb.create_sheet(_sheet_title("اقدام‌ها Actions", used)), list(ACTION_HEADERS),
                     action_rows(actions, fig))
    for sheet in wb.worksheets:  # the committee reads Persian: every sheet runs right to left
        sheet.sheet_view.rightToLeft = True
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
