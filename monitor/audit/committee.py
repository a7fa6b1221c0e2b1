"""The committee's regular report: what changed since the previous one, and who owes what.

It covers the period since the previous report of the same name (as the store recorded it; the first one
covers the week before): the ready share then and now, the forecast, counties worst first, sites that
regressed, actions opened and closed, overdue actions by owner, unowned not-ready sites and the monitor's
own blind time. Every figure comes from the event store (monitor/audit/figures.py for the period's figures),
every word is in Persian and English and every date in both calendars. Formats: HTML, PDF (headless
Chromium prints the HTML, so Persian is shaped and runs right to left) and XLSX (right-to-left sheets).

A report is a directory: its files and a ``manifest.json`` of their SHA-256; the manifest's own SHA-256
goes into the store as a ``report`` row, so a report cannot be swapped afterwards unnoticed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from monitor.audit.figures import Figures, Period, compute, duration_text
from monitor.audit.html import CSS, _date, _dual, _pct, _rtl, _t, _table
from monitor.config.loader import Config
from monitor.config.reports import ReportSpec
from monitor.core.actions import Action, ActionRecord, fold, unowned
from monitor.core.calendar import format_jalali
from monitor.core.figures import is_polling_place
from monitor.errors import ReadinessError
from monitor.store.events import EventStore

FIRST_PERIOD_SECONDS = 7 * 86400  # the first report of a name covers the week before
MANIFEST = "manifest.json"
FORMAT = "readiness-committee-report/1"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class ReportError(ReadinessError):
    """A report that cannot be built (nothing recorded, no Chromium for a PDF)."""


@dataclass(slots=True)
class Regression:
    site: str
    name: str
    county: str
    at: float
    new: str


@dataclass(slots=True)
class CommitteeReport:
    """Everything one report says."""

    name: str
    title: str
    period: Period
    config: Config
    figures: Figures
    share_then: float | None
    share_now: float | None
    counties: list[tuple[str, float | None, int, int]]  # name, ready share now, ready, sites; worst first
    regressions: list[Regression]
    opened: list[Action]
    closed: list[Action]
    overdue: dict[str, list[Action]]  # owner -> their overdue actions
    unowned: list[tuple[str, str, str, float, str | None]]  # site, name, county, not ready since, owner
    blind_seconds: float
    previous: float | None  # end of the previous report of this name, None for the first
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256, once written
    given_period: bool = False  # the period was given (an audit bundle's), not "since the previous report"


def _states_at(store: EventStore, t: float) -> dict[str, str]:
    """Return site id -> state as the store recorded it at ``t`` (the last transition before)."""
    out: dict[str, str] = {}
    for e in store.events(end=t, kinds=("transition",), entity_prefix="site:"):
        out[e.entity[5:]] = e.new
    return out


def previous_report(data_dir: str | Path, name: str) -> float | None:
    """Return the end of the period of the last report ``name`` recorded in the store, None if there is none."""
    last = None
    for e in EventStore(data_dir).events(kinds=("report",), entity_prefix=f"report:{name}"):
        if e.entity == f"report:{name}":
            last = float(e.payload.get("period_end", e.at))
    return last


def _last_recorded(data_dir: str | Path) -> tuple[float, float] | None:
    from monitor.store.chain import connect_readonly

    conn = connect_readonly(data_dir)
    try:
        row = conn.execute("SELECT MIN(at), MAX(at) FROM events WHERE kind != 'marker'").fetchone()
    finally:
        conn.close()
    return None if row is None or row[0] is None else (row[0], row[1])


def build(config: Config, data_dir: str | Path, spec: ReportSpec | None = None, *, now: float | None = None,
          period: Period | None = None) -> CommitteeReport:
    """Compute the report ``spec`` (default: one named ``adhoc``) for the period since its previous one, or for
    ``period`` when given (an audit bundle's)."""
    name = spec.name if spec else "adhoc"
    zone = ZoneInfo(config.programme.timezone)
    recorded = _last_recorded(data_dir)
    if recorded is None:
        raise ReportError(f"nothing recorded in {data_dir} yet: a report needs the service's history")
    now = time.time() if now is None else now
    given = period is not None
    previous = None if given else previous_report(data_dir, name)
    if period is None:
        end = min(now, recorded[1])
        start = previous if previous is not None else max(recorded[0], end - FIRST_PERIOD_SECONDS)
        start = min(start, end)
        period = Period(start, end, zone, requested_end=now if now > end else None)
    start, end = period.start, period.end
    fig = compute(config, data_dir, period)
    store = EventStore(data_dir)
    polling = [s for s in config.reported_sites() if is_polling_place(s)]
    then = _states_at(store, start + 1e-6) if previous is not None or start > recorded[0] else {}
    share_then = (sum(then.get(s.id) == "ready" for s in polling) / len(polling)) if polling and then else None
    share_now = fig.province.ready_share
    counties = sorted(((n, g.ready_share, g.states.get("ready", 0), g.sites) for n, g in fig.counties.items()),
                      key=lambda c: (c[1] if c[1] is not None else -1.0, c[0]))
    names = config.site_map()
    regressions = [Regression(e.entity[5:], names[e.entity[5:]].name if e.entity[5:] in names else e.entity[5:],
                              names[e.entity[5:]].county if e.entity[5:] in names else "", e.at, e.new)
                   for e in store.events(start, end, kinds=("transition",), entity_prefix="site:")
                   if e.old == "ready" and e.new != "ready"]
    actions = fold(ActionRecord(e.at, e.entity, e.old, e.new, e.payload)
                   for e in store.events(end=end, kinds=("action",)))
    opened = [a for a in actions.values() if start <= a.opened_at < end]
    closed = [a for a in actions.values() if a.closed_at is not None and start <= a.closed_at < end]
    overdue: dict[str, list[Action]] = {}
    for a in actions.values():
        if a.overdue(end):
            overdue.setdefault(a.owner, []).append(a)
    by_site = {f.site.id: f for f in fig.sites}
    states = {s.id: (by_site[s.id].state, by_site[s.id].since) if s.id in by_site else ("unknown", None)
              for s in polling}
    lost = unowned([(s.id, s.county) for s in polling], states, actions.values(), end,
                   config.actions.unowned_after_seconds)
    unowned_rows = [(u.site, names[u.site].name, u.county, u.since, config.owner_of(names[u.site])[0]) for u in lost]
    blind = sum(min(e, end) - max(s, start) for s, e in fig.outages if e > start and s < end)
    title = (spec.title if spec and spec.title else None) or config.programme.name
    return CommitteeReport(name, title, period, config, fig, share_then, share_now, counties, regressions, opened,
                           closed, dict(sorted(overdue.items())), unowned_rows, blind, previous,
                           given_period=given)


# -- HTML --------------------------------------------------------------------------------------------------

def _action_rows(actions: list[Action], fig: Figures, *, result: bool = False) -> list[str]:
    rows = []
    for a in actions:
        text = a.result if result else a.note
        rows.append(f'<tr><td class="num">{escape(a.id)}</td><td>{_rtl(a.target)}</td><td>{_rtl(a.owner)}</td>'
                    f'<td class="date">{_date(a.due, fig)}</td><td>{_rtl(text)}</td></tr>')
    return rows


def render_html(r: CommitteeReport) -> str:
    """Return the report as one self-contained, printable HTML page (Persian RTL with English isolated)."""
    fig = r.figures
    trend = ""
    if r.share_then is not None and r.share_now is not None:
        delta = (r.share_now - r.share_then) * 100
        trend = f' <bdi class="ltr">({delta:+.2f} pp)</bdi>'
    counties = [f'<tr><td>{_rtl(n)}</td><td class="num">{ready}/{total}</td><td class="num">{_pct(share)}</td></tr>'
                for n, share, ready, total in r.counties]
    regressions = [f'<tr><td class="num">{escape(x.site)}</td><td>{_rtl(x.name)}</td><td>{_rtl(x.county)}</td>'
                   f'<td class="date">{_date(x.at, fig)}</td><td class="num">{escape(x.new)}</td></tr>'
                   for x in r.regressions]
    action_headers = [("شناسه", "ID"), ("برای", "For"), ("مسئول", "Owner"), ("مهلت", "Due"), ("یادداشت", "Note")]
    overdue = []
    for owner, actions in r.overdue.items():
        for a in actions:
            overdue.append(f'<tr><td>{_rtl(owner)}</td><td class="num">{escape(a.id)}</td><td>{_rtl(a.target)}</td>'
                           f'<td class="date">{_date(a.due, fig)}</td>'
                           f'<td class="num">{duration_text(r.period.end - a.due)}</td></tr>')
    unowned_rows = [f'<tr><td class="num">{escape(s)}</td><td>{_rtl(n)}</td><td>{_rtl(c)}</td>'
                    f'<td class="date">{_date(since, fig)}</td><td>{_rtl(owner or "—")}</td></tr>'
                    for s, n, c, since, owner in r.unowned]
    fc = fig.province.forecast
    if fc is not None and fc.enough_history:
        risk = _t("در خطر", "at risk") if fc.at_risk else _t("در مسیر", "on track")
        forecast = (f"{_t('سهم آماده در مهلت', 'ready share at the deadline')}: "
                    f'<bdi class="ltr">{_pct(fc.share_at_deadline)} ({_pct(fc.share_at_deadline_low)}–'
                    f'{_pct(fc.share_at_deadline_high)})</bdi> — {risk}')
    else:
        forecast = _t("سابقه کافی برای پیش‌بینی نیست", "not enough history for a forecast")
    deadline = _dual(r.config.programme.deadline.astimezone(r.period.zone))
    previous = _date(r.previous, fig) if r.previous is not None else (
        _t("دوره‌ی بسته‌ی ممیزی", "the audit bundle's period") if r.given_period else _t("نخستین گزارش", "first report"))
    return f"""<!DOCTYPE html>
<html lang="fa" dir="rtl">
<head>
<meta charset="utf-8">
<title>{escape(r.title)} — committee report</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>{_t("گزارش دوره‌ای به کمیته", "Committee report")}</h1>
<p><b>{_rtl(r.title)}</b> — <bdi class="ltr">{escape(r.name)}</bdi></p>
<table class="meta">
<tr><td>{_t("دوره از", "Period from")}</td><td class="date">{_date(r.period.start, fig)}</td></tr>
<tr><td>{_t("دوره تا", "Period to")}</td><td class="date">{_date(r.period.end, fig)}</td></tr>
<tr><td>{_t("گزارش پیشین", "Previous report")}</td><td class="date">{previous}</td></tr>
<tr><td>{_t("مهلت", "Deadline")}</td><td class="date">{deadline}</td></tr>
</table>
</header>
<section>
<h2>{_t("سهم سایت‌های آماده", "Ready share")}</h2>
<p id="share">{_t("آغاز دوره", "then")}: <bdi class="ltr">{_pct(r.share_then)}</bdi> —
{_t("اکنون", "now")}: <bdi class="ltr">{_pct(r.share_now)}</bdi>{trend}</p>
<p id="forecast"><b>{_t("پیش‌بینی", "Forecast")}</b> — {forecast}</p>
<p id="blind">{_t("زمان کور پایشگر", "Monitor blind time")}: <bdi class="ltr">{duration_text(r.blind_seconds)}</bdi></p>
</section>
<section>
<h2>{_t("شهرستان‌ها، بدترین نخست", "Counties, worst first")}</h2>
{_table([("شهرستان", "County"), ("آماده", "Ready"), ("سهم آماده", "Ready share")], counties)}
</section>
<section>
<h2>{_t("پسرفت‌ها", "Regressions")}</h2>
{_table([("سایت", "Site"), ("نام", "Name"), ("شهرستان", "County"), ("زمان", "When"), ("وضعیت", "State")],
        regressions)}
</section>
<section>
<h2>{_t("اقدام‌های تأخیری به تفکیک مسئول", "Overdue actions by owner")}</h2>
{_table([("مسئول", "Owner"), ("شناسه", "ID"), ("برای", "For"), ("مهلت", "Due"), ("تأخیر", "Late by")], overdue)}
</section>
<section>
<h2>{_t("سایت‌های ناآماده بی‌اقدام", "Unowned not-ready sites")}</h2>
{_table([("سایت", "Site"), ("نام", "Name"), ("شهرستان", "County"), ("ناآماده از", "Not ready since"),
         ("مسئول", "Owner")], unowned_rows)}
</section>
<section>
<h2>{_t("اقدام‌های تازه", "New actions")}</h2>
{_table(action_headers, _action_rows(r.opened, fig))}
<h2>{_t("اقدام‌های بسته‌شده", "Closed actions")}</h2>
{_table([*action_headers[:4], ("نتیجه", "Result")], _action_rows(r.closed, fig, result=True))}
</section>
<footer>{_t("ساخته‌شده در", "Built at")} {_date(r.period.requested_end or r.period.end, fig)}</footer>
</body>
</html>
"""


# -- XLSX --------------------------------------------------------------------------------------------------

def render_xlsx(r: CommitteeReport) -> bytes:
    """Return the report as a workbook whose every sheet runs right to left."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    def local(ts: float | None) -> str:
        if ts is None:
            return ""
        when = datetime.fromtimestamp(ts, r.period.zone)
        return f"{format_jalali(when)} | {when:%Y-%m-%d %H:%M}"

    wb = Workbook()
    sheets: list[tuple[str, list[str], list[list[Any]]]] = [
        ("خلاصه Summary", ["مورد Item", "مقدار Value"], [
            ["دوره از Period from", local(r.period.start)], ["دوره تا Period to", local(r.period.end)],
            ["سهم آماده در آغاز Ready share then", r.share_then], ["سهم آماده اکنون Ready share now", r.share_now],
            ["زمان کور (ثانیه) Blind seconds", round(r.blind_seconds, 1)]]),
        ("شهرستان‌ها Counties", ["شهرستان County", "آماده Ready", "سایت‌ها Sites", "سهم Share"],
         [[n, ready, total, share] for n, share, ready, total in r.counties]),
        ("پسرفت‌ها Regressions", ["سایت Site", "نام Name", "شهرستان County", "زمان When", "وضعیت State"],
         [[x.site, x.name, x.county, local(x.at), x.new] for x in r.regressions]),
        ("تأخیری Overdue", ["مسئول Owner", "شناسه ID", "برای For", "مهلت Due", "یادداشت Note"],
         [[o, a.id, a.target, local(a.due), a.note] for o, acts in r.overdue.items() for a in acts]),
        ("بی‌اقدام Unowned", ["سایت Site", "نام Name", "شهرستان County", "ناآماده از Since", "مسئول Owner"],
         [[s, n, c, local(since), owner or ""] for s, n, c, since, owner in r.unowned]),
        ("اقدام‌ها Actions", ["شناسه ID", "برای For", "مسئول Owner", "مهلت Due", "وضعیت State", "نتیجه Result"],
         [[a.id, a.target, a.owner, local(a.due), a.state, a.result] for a in [*r.opened, *r.closed]]),
    ]
    first = True
    for title, headers, rows in sheets:
        ws = wb.active if first else wb.create_sheet()
        assert ws is not None
        first = False
        ws.title = title[:31]
        ws.append(headers)
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for row in rows:
            ws.append(row)
        for i, h in enumerate(headers):
            ws.column_dimensions[chr(ord("A") + i)].width = max(14, len(h) + 4)
        ws.sheet_view.rightToLeft = True
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


# -- PDF ---------------------------------------------------------------------------------------------------

def chromium() -> str | None:
    """Return the path of a headless-capable Chromium, if one is installed."""
    return next((p for p in (shutil.which(n) for n in CHROMIUM_NAMES) if p), None)


def render_pdf(html_text: str, *, timeout: float = 180) -> bytes:
    """Print the HTML to an A4 PDF with headless Chromium (Persian shaped, right to left)."""
    exe = chromium()
    if exe is None:
        raise ReportError(f"a PDF needs headless Chromium ({' or '.join(CHROMIUM_NAMES)} on PATH); "
                          "leave pdf out of the report's formats, or install it")
    with tempfile.TemporaryDirectory(prefix="readiness-pdf-") as tmp:
        page, pdf = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        page.write_text(html_text, encoding="utf-8")
        run = subprocess.run(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={Path(tmp) / 'profile'}", "--no-pdf-header-footer", f"--print-to-pdf={pdf}",
             page.as_uri()], capture_output=True, timeout=timeout, check=False)
        if run.returncode != 0 or not pdf.is_file():
            raise ReportError(f"Chromium could not print the report (exit {run.returncode}): "
                              f"{run.stderr.decode(errors='replace')[-500:]}")
        return pdf.read_bytes()


# -- writing -----------------------------------------------------------------------------------------------

def write(r: CommitteeReport, out_dir: str | Path, formats: tuple[str, ...] = ("html", "pdf", "xlsx")) -> str:
    """Write the report's files and manifest into ``out_dir``; return the manifest's SHA-256."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    html_text = render_html(r)
    stem = f"report-{r.name}"
    blobs: dict[str, bytes] = {}
    if "html" in formats:
        blobs[f"{stem}.html"] = html_text.encode("utf-8")
    if "pdf" in formats:
        blobs[f"{stem}.pdf"] = render_pdf(html_text)
    if "xlsx" in formats:
        blobs[f"{stem}.xlsx"] = render_xlsx(r)
    for name, blob in blobs.items():
        (out / name).write_bytes(blob)
    r.files = {name: hashlib.sha256(blob).hexdigest() for name, blob in blobs.items()}
    manifest = (json.dumps({"format": FORMAT, "name": r.name, "period_start": r.period.start,
                            "period_end": r.period.end, "config_version": r.config.version, "files": r.files},
                           ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode("utf-8")
    tmp = out / f".{MANIFEST}.tmp"
    tmp.write_bytes(manifest)
    os.replace(tmp, out / MANIFEST)
    return hashlib.sha256(manifest).hexdigest()


def record(store: EventStore, r: CommitteeReport, manifest_sha256: str, out_dir: str | Path) -> None:
    """Put the report on the record: a ``report`` row with its manifest hash and period (queued on ``store``)."""
    store.append_report(time.time(), r.name, manifest_sha256,
                        {"period_start": r.period.start, "period_end": r.period.end, "dir": str(out_dir),
                         "files": r.files}, r.config.version)
