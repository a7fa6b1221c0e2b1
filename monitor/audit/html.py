"""report.html: the printable (A4) audit report, Persian and English, every date in both calendars.

Persian text runs right to left and English left to right: the page is RTL and each English label
or Latin value is isolated (`<bdi>`/`dir="ltr"`), so the bidi algorithm never reorders a date, a
site id or a percentage (Unicode TR9 explains the mixed-direction pitfalls this avoids). The
page uses only system fonts; DejaVu Sans covers Persian where Vazirmatn or Noto are missing.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

from monitor.audit.figures import Figures, GroupFigures, SiteFigures, duration_text, failed_text
from monitor.core.actions import Action
from monitor.core.availability import Availability
from monitor.core.calendar import format_jalali, persian_digits

STATE_LABELS = {"ready": ("آماده", "ready"), "degraded": ("ناقص", "degraded"),
                "not_ready": ("ناآماده", "not ready"), "unknown": ("نامعلوم", "unknown")}
NOWRAP_NAME_CHARS = 40
AREA_LABELS = {"urban": ("شهری", "urban"), "rural": ("روستایی", "rural")}

CSS = """
@page { size: A4; margin: 12mm 9mm 12mm 9mm; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { font-family: "Vazirmatn", "Noto Sans Arabic", "Noto Naskh Arabic", "DejaVu Sans", sans-serif;
       font-size: 8.5pt; line-height: 1.45; color: #111; margin: 0; }
h1 { font-size: 15pt; margin: 0 0 2mm; }
h2 { font-size: 11.5pt; margin: 6mm 0 2mm; border-bottom: 0.6pt solid #456; padding-bottom: 1mm;
     break-after: avoid; }
h1 .en, h2 .en, th .en { font-weight: normal; color: #456; }
.en { unicode-bidi: isolate; direction: ltr; }
.ltr { direction: ltr; unicode-bidi: isolate; }
table { border-collapse: collapse; width: 100%; margin: 1mm 0 3mm; font-size: 7pt; }
th, td { border: 0.4pt solid #999; padding: 0.6mm 0.8mm; vertical-align: top; text-align: right; }
th { background: #e4e9f0; font-size: 6.5pt; overflow-wrap: break-word; }
thead { display: table-header-group; }
tr { break-inside: avoid; }
td.num { direction: ltr; text-align: left; white-space: nowrap; }
td.name { white-space: nowrap; }
td.date { white-space: nowrap; font-size: 6.5pt; }
.date .g { color: #345; }
table.meta td:first-child { width: 28%; background: #f3f5f8; }
.ready { background: #dff0d8; } .degraded { background: #fcf0cf; }
.not_ready { background: #f5d5d5; } .unknown { background: #e6e6e6; }
section.county { break-before: page; }
.muted { color: #555; }
footer { margin-top: 6mm; font-size: 7.5pt; color: #444; }
"""


def _t(fa: str, en: str) -> str:
    """Return a bilingual label: Persian, then English isolated left to right."""
    return f'{escape(fa)} <span class="en" lang="en" dir="ltr">{escape(en)}</span>'


def _date(ts: float | None, fig: Figures, *, offset: bool = True) -> str:
    """Return a time in both calendars: Jalali (Persian digits) and Gregorian, with the UTC offset unless told."""
    if ts is None:
        return "—"
    return _dual(fig.period.local(ts), offset=offset)


def _dual(local: datetime, *, offset: bool = True) -> str:
    jalali = format_jalali(local, persian=True).replace("-", "/")  # ۱۴۰۴/۱۲/۰۱ as Iranian forms write it
    z = local.strftime("%z")
    gregorian = f"{local:%Y-%m-%d %H:%M}" + (f" {z[:3]}:{z[3:]}" if offset else "")
    return (f'<bdi class="j" dir="rtl" lang="fa">{jalali}</bdi><br>'
            f'<bdi class="g" dir="ltr" lang="en">{gregorian}</bdi>')


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.2f}%"


def _ratio_cell(a: Availability | None) -> str:
    return f'<td class="num">{_pct(None if a is None else a.ratio)}</td>'


def _state(state: str) -> str:
    fa, en = STATE_LABELS.get(state, (state, state))
    return f'<td class="{escape(state)}">{_t(fa, en)}</td>'


def _rtl(text: str) -> str:
    return f'<bdi dir="auto">{escape(text)}</bdi>'


def _name(text: str) -> str:
    """Return a name cell; short names stay on one line so a reader (or pdftotext) sees them whole."""
    return f'<td class="name">{_rtl(text)}</td>' if len(text) <= NOWRAP_NAME_CHARS else f"<td>{_rtl(text)}</td>"


def _table(headers: list[tuple[str, str]], rows: list[str]) -> str:
    head = "".join(f'<th>{escape(fa)}<br><span class="en" lang="en" dir="ltr">{escape(en)}</span></th>'
                   for fa, en in headers)
    body = "\n".join(rows) if rows else f'<tr><td colspan="{len(headers)}" class="muted">—</td></tr>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


GROUP_HEADERS = [("دامنه", "Scope"), ("سایت‌ها", "Sites"), ("آماده", "Ready"), ("ناقص", "Degraded"),
                 ("ناآماده", "Not ready"), ("نامعلوم", "Unknown"), ("سهم آماده", "Ready share"),
                 ("تاکنون آماده", "Ever ready"), ("دسترس‌پذیری سایت", "Site availability"),
                 ("لینک اصلی", "Primary"), ("لینک پشتیبان", "Backup"), ("پایانه‌ها", "Terminals"),
                 ("نگهداری", "Maintenance"), ("نامعلوم (کور)", "Blind")]


def _group_row(label: str, g: GroupFigures) -> str:
    s = g.states
    cells = [f"<td>{label}</td>", *(f'<td class="num">{n}</td>' for n in
                                     (g.sites, s["ready"], s["degraded"], s["not_ready"], s["unknown"])),
             f'<td class="num">{_pct(g.ready_share)}</td>', f'<td class="num">{g.ever_ready}</td>',
             _ratio_cell(g.site_availability), _ratio_cell(g.primary), _ratio_cell(g.backup),
             _ratio_cell(g.terminals),
             f'<td class="num">{duration_text(g.site_availability.maintenance_seconds)}</td>',
             f'<td class="num">{duration_text(g.site_availability.unknown_seconds)}</td>']
    return f"<tr>{''.join(cells)}</tr>"


def _forecast(g: GroupFigures, fig: Figures) -> str:
    fc = g.forecast
    if fc is None:
        return ""
    if not fc.enough_history:
        return (f"<p><b>{_t('پیش‌بینی', 'Forecast')}</b> — "
                f"{_t('سابقه کافی برای پیش‌بینی نیست', 'not enough history for a forecast')}</p>")
    risk = _t("در خطر", "at risk") if fc.at_risk else _t("در مسیر", "on track")
    when = _date(fc.all_ready_at, fig) if fc.all_ready_at is not None else _t("با روند کنونی هرگز", "never at "
                                                                               "the current trend")
    return (f"<p><b>{_t('پیش‌بینی', 'Forecast')}</b> — {_t('سهم آماده در مهلت', 'ready share at the deadline')}: "
            f'<bdi class="ltr">{_pct(fc.share_at_deadline)} ({_pct(fc.share_at_deadline_low)}–'
            f'{_pct(fc.share_at_deadline_high)})</bdi>; {_t("همه آماده", "all ready")}: {when}; '
            f'{_t("روند روزانه", "trend per day")}: <bdi class="ltr">{fc.slope_per_day * 100:+.2f}%</bdi>; '
            f"<b>{risk}</b></p>")


def _site_row(s: SiteFigures, fig: Figures) -> str:
    fa, en = AREA_LABELS.get(s.site.area, (s.site.area, s.site.area))
    cells = [f'<td class="num">{escape(s.site.id)}</td>', _name(s.site.name), f"<td>{_t(fa, en)}</td>",
             f"<td>{_rtl(fig.config.owner_of(s.site)[0] or '—')}</td>",
             _state(s.state), f'<td class="date">{_date(s.since, fig, offset=False)}</td>',
             f'<td class="date">{_date(s.first_ready, fig, offset=False)}</td>',
             _ratio_cell(s.site_availability), _ratio_cell(s.primary), _ratio_cell(s.backup), _ratio_cell(s.terminals),
             f'<td class="num">{duration_text(s.maintenance_seconds)}</td>',
             f'<td class="num">{duration_text(s.blind_seconds)}</td>']
    return f"<tr>{''.join(cells)}</tr>"


SITE_HEADERS = [("شناسه", "Site"), ("نام", "Name"), ("منطقه", "Area"), ("مسئول", "Owner"),
                ("وضعیت پایان دوره", "State at end"),
                ("از", "Since"), ("نخستین آمادگی", "First ready"), ("سایت", "Site"), ("اصلی", "Primary"),
                ("پشتیبان", "Backup"), ("پایانه‌ها", "Terminals"), ("نگهداری", "Maintenance"),
                ("کور", "Blind")]


def _not_ready(fig: Figures) -> str:
    rows = []
    for s in sorted(fig.sites, key=lambda s: (s.state == "degraded", s.site.county, s.site.id)):
        if s.state == "ready":
            continue
        reasons = "<br>".join(f'<bdi class="ltr">{escape(str(r))}</bdi>' for r in s.reasons) or "—"
        failed = escape(failed_text(s.failed)) or "—"
        rows.append(f'<tr><td class="num">{escape(s.site.id)}</td>{_name(s.site.name)}'
                    f"<td>{_rtl(s.site.county)}</td><td>{_rtl(fig.config.owner_of(s.site)[0] or '—')}</td>"
                    f"{_state(s.state)}<td class=\"date\">{_date(s.since, fig)}</td>"
                    f'<td class="ltr">{reasons}</td><td class="ltr">{failed}</td></tr>')
    headers = [("شناسه", "Site"), ("نام", "Name"), ("شهرستان", "County"), ("مسئول", "Owner"), ("وضعیت", "State"),
               ("از", "Since"), ("دلایل", "Reasons"),
               ("الزامات برآورده‌نشده در دوره", "Failed requirements in the period")]
    return _table(headers, rows)


def _waivers(fig: Figures) -> str:
    rows = []
    for s in fig.sites:
        for w in s.waivers:
            rows.append(f'<tr><td class="num">{escape(s.site.id)}</td>{_name(s.site.name)}'
                        f'<td class="ltr">{escape(w.requirement)}</td><td class="date">{_date(w.until, fig)}</td>'
                        f"<td>{_rtl(w.approved_by)}</td><td>{_rtl(w.reason)}</td></tr>")
    headers = [("شناسه", "Site"), ("نام", "Name"), ("الزام", "Requirement"), ("تا", "Until"),
               ("تأییدکننده", "Approved by"), ("دلیل", "Reason")]
    return _table(headers, rows)


def _clipped(info: dict[str, Any]) -> str:
    clipped = info["period"].get("clipped")
    if not clipped:
        return ""
    return (f'<br><b>{_t("دوره تا آخرین لحظه ثبت‌شده کوتاه شد", "Clipped to the last recorded moment")}</b>: '
            f'<bdi class="ltr">{escape(clipped["note"])}</bdi>')


def _versions(fig: Figures) -> str:
    items = [f'<bdi class="ltr">{escape(c.version)}</bdi> {_t("از", "from")} {_date(c.since, fig)}'
             + (f' {_t("تا", "until")} {_date(c.until, fig)}' if c.until is not None else "")
             for c in fig.config_versions]
    notes = [f'<b class="ltr">{escape(n)}</b>' for n in fig.context_notes]
    return "<br>".join(items + notes) or _t("هیچ", "none on record")


def _meta(fig: Figures, info: dict[str, Any]) -> str:
    p = fig.period
    scope = _rtl(fig.county) if fig.county else _t("همه شهرستان‌ها", "all counties")
    rows = [
        (_t("دوره", "Period"), f"{_dual(p.local(p.start))}<br>— {_dual(p.local(p.end))}" + _clipped(info)),
        (_t("منطقه زمانی", "Timezone"), f'<bdi class="ltr">{escape(fig.config.programme.timezone)}</bdi> — '
                                       + _t("همه زمان‌های این گزارش", "every time in this report")),
        (_t("مهلت", "Deadline"), _dual(fig.config.programme.deadline.astimezone(p.zone))),
        (_t("دامنه", "Scope"), scope),
        (_t("تهیه شده", "Generated"), _date(info["created_at"]["unix"], fig)),
        (_t("پیکربندی", "Config"), f'<bdi class="ltr">{escape(info["config"]["source"])} version '
                                   f'{escape(info["config"]["version"])}<br>sha256 {info["config"]["sha256"]}</bdi>'),
        (_t("نسخه‌های پیکربندی در دوره", "Config versions in force"), _versions(fig)),
        (_t("زنجیره رویدادها", "Event chain"), _chains(info)),
        (_t("سازنده", "Generator"), f'<bdi class="ltr">{escape(info["generator"])}</bdi>'),
    ]
    if "signature" in info:
        rows.append((_t("امضا", "Signed by"), f'<bdi class="ltr">Ed25519 {info["signature"]["fingerprint"]}</bdi>'))
    body = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="meta"><tbody>{body}</tbody></table>'


def _chain_text(chain: dict[str, Any]) -> str:
    return (f'rows {chain["first_seq"]}..{chain["last_seq"]} ({chain["rows"]}), last hash {chain["last_hash"]}'
            f'<br>store head at export: {chain["head_seq"]} {chain["head_hash"]}')


def _chains(info: dict[str, Any]) -> str:
    """Return the event chain of the bundle, or of each shard's store (each verified apart)."""
    if "shards" not in info:
        return f'<bdi class="ltr">{_chain_text(info["chain"])}</bdi>'
    items = []
    for entry in info["shards"]:
        name = f'shard {entry["shard"]} of {entry["shards"]}'
        if entry["chain"] is None:
            items.append(f'<bdi class="ltr">{name}: no store given</bdi> — '
                         + _t("سایت‌هایش در کل دوره کور گزارش شده‌اند", "its sites are reported blind"))
        else:
            items.append(f'<bdi class="ltr">{name} ({escape(entry["store"])}, {entry["events"]}): '
                         f'{_chain_text(entry["chain"])}</bdi>')
    return "<br>".join(items)


def _outages(fig: Figures) -> str:
    if fig.shards:
        return _shard_outages(fig)
    if not fig.outages:
        return ""
    rows = [f'<tr><td class="date">{_date(s, fig)}</td><td class="date">{_date(e, fig)}</td>'
            f'<td class="num">{duration_text(e - s)}</td></tr>' for s, e in fig.outages]
    note = _t("در این بازه‌ها هیچ سایتی دیده نمی‌شد (زمان کور).", "No site was seen during these intervals (blind time).")
    return (f"<h2>{_t('توقف پایشگر', 'Monitor outages')}</h2><p class=\"muted\">{note}</p>"
            + _table([("از", "From"), ("تا", "To"), ("مدت", "Duration")], rows))


def _shard_outages(fig: Figures) -> str:
    rows = [f'<tr><td><bdi class="ltr">{r.name}</bdi></td><td class="num">{len(r.sites)}</td>'
            f'<td class="date">{_date(s, fig)}</td><td class="date">{_date(e, fig)}</td>'
            f'<td class="num">{duration_text(e - s)}</td></tr>' for r in fig.shards for s, e in r.blind]
    if not rows:
        return ""
    note = _t("در این بازه‌ها سایت‌های آن بخش دیده نمی‌شد (زمان کور)؛ سایت‌های بخش‌های دیگر دیده می‌شدند.",
              "The shard's sites were not seen during these intervals (blind time); the other shards' sites were.")
    return (f"<h2>{_t('توقف پایشگر، به تفکیک بخش', 'Monitor outages, by shard')}</h2><p class=\"muted\">{note}</p>"
            + _table([("بخش", "Shard"), ("سایت‌ها", "Sites"), ("از", "From"), ("تا", "To"), ("مدت", "Duration")],
                     rows))


AVAILABILITY_NOTE = _t("دسترس‌پذیری = زمان آماده ÷ زمان دیده‌شده؛ زمان نگهداری و زمان کور جداگانه گزارش می‌شوند.",
                       "Availability = up time ÷ observed time; maintenance and blind (unknown) time are reported "
                       "apart and count neither way.")


def _headline(fig: Figures) -> str:
    """Return the figures at the end of the period in the words the live status page uses (monitor/core/figures.py):
    polling places ready and the ready share, network nodes apart, terminals up."""
    p, nodes = fig.at_end.province, fig.at_end.nodes
    states = ", ".join(f"{name.replace('_', ' ')} {p.states[name]}" for name in p.states)
    return (f'<p class="headline">{_t("در پایان دوره", "At the end of the period")}: '
            f'<bdi class="ltr" lang="en">Ready: {p.ready} of {p.total} polling places ({p.share_text()})'
            f' · {states} · Network nodes (not in the ready share): {nodes.total}'
            f' · Terminals up: {p.terminals_up} of {p.terminals_total} ({p.terminals_unknown} unknown)</bdi></p>')


ACTION_STATES = {"open": ("باز", "open"), "done": ("انجام شد", "done"), "cancelled": ("لغو شد", "cancelled")}


def _actions(actions: list[Action], fig: Figures) -> str:
    rows = []
    for a in actions:
        late = a.overdue(fig.period.end)
        state = _t(*ACTION_STATES.get(a.state, (a.state, a.state)))
        if late:
            state += " — " + _t("دیرکرد", "overdue")
        closed = _date(a.closed_at, fig) if a.closed_at is not None else "—"
        rows.append(f'<tr class="{"not_ready" if late else a.state}"><td class="num">{escape(a.id)}</td>'
                    f'<td>{_rtl(a.target)}</td><td>{_rtl(a.owner)}</td><td class="date">{_date(a.due, fig)}</td>'
                    f'<td>{state}</td><td class="date">{closed}</td><td>{_rtl(a.result or a.note or "—")}</td></tr>')
    headers = [("شناسه", "ID"), ("برای", "For"), ("مسئول", "Owner"), ("مهلت", "Due"), ("وضعیت", "State"),
               ("بسته شد", "Closed"), ("نتیجه یا یادداشت", "Result or note")]
    return (f'<section id="actions"><h2>{_t("اقدام‌های اصلاحی در دوره", "Remediation actions in the period")}</h2>'
            f"{_table(headers, rows)}</section>")


def render_html(fig: Figures, info: dict[str, Any], actions: list[Action] | None = None) -> str:
    """Return the whole report as one self-contained HTML page; with ``actions``, the period's remediation
    actions and who owns them."""
    programme = escape(fig.config.programme.name)
    groups = [_group_row(_t("استان", "Province"), fig.province)]
    groups += [_group_row(_t(*AREA_LABELS[name]), g) for name, g in fig.areas.items() if g.sites]
    counties = [_group_row(_rtl(name), g) for name, g in fig.counties.items()]
    county_forecasts = "".join(f"<p><b>{_rtl(name)}</b>: {_forecast(g, fig).removeprefix('<p>')}"
                               for name, g in fig.counties.items() if g.forecast is not None)
    by_county: dict[str, list[SiteFigures]] = {}
    for s in sorted(fig.sites, key=lambda s: (s.site.county, s.site.id)):
        by_county.setdefault(s.site.county, []).append(s)
    county_sections = "\n".join(
        f'<section class="county"><h2>{_t("شهرستان", "County")} {_rtl(name)} '
        f'<span class="muted">({persian_digits(str(len(sites)))} {_t("سایت", "sites")})</span></h2>'
        + _table(SITE_HEADERS, [_site_row(s, fig) for s in sites]) + "</section>"
        for name, sites in by_county.items())
    verify = f"readiness audit verify BUNDLE{' --pubkey KEY.pub' if 'signature' in info else ''}"
    return f"""<!DOCTYPE html>
<html lang="fa" dir="rtl">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{programme} — readiness audit report</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>{_t("گزارش ممیزی آمادگی", "Readiness audit report")}</h1>
<p><b>{programme}</b></p>
{_meta(fig, info)}
</header>
<section>
<h2>{_t("خلاصه استان", "Province summary")}</h2>
{_headline(fig)}
{_table(GROUP_HEADERS, groups)}
{_forecast(fig.province, fig)}
<p class="muted">{AVAILABILITY_NOTE}</p>
</section>
<section>
<h2>{_t("شهرستان‌ها", "Counties")}</h2>
{_table(GROUP_HEADERS, counties)}
{county_forecasts}
</section>
<section>
<h2>{_t("سایت‌های ناآماده در پایان دوره", "Sites not ready at the end of the period")}</h2>
{_not_ready(fig)}
</section>
<section>
<h2>{_t("معافیت‌های معتبر در دوره", "Waivers in force during the period")}</h2>
{_waivers(fig)}
</section>
{"" if actions is None else _actions(actions, fig)}
{_outages(fig)}
{county_sections}
<footer>{_t("درستی این بسته را با این فرمان بسنجید:", "Check this bundle with:")}
<bdi class="ltr"><code>{escape(verify)}</code></bdi></footer>
</body>
</html>
"""
