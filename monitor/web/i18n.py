"""The board's words in Persian and English: labels, state names, every reason code in words, numbers and dates.

Persian is the default; English is the switch. Digits are Persian (۰–۹, ٫ and ٪) by default in Persian and may
be Latin by setting; English always writes Latin digits. Every reason code of monitor/core/reasons.py has its
words here in both languages (a test holds the tables to the codes).
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Literal

from monitor.core.calendar import MONTHS_FA, gregorian_to_jalali, persian_digits, short_duration
from monitor.core.reasons import Reason

Lang = Literal["fa", "en"]
LANGS: tuple[Lang, ...] = ("fa", "en")
MONTHS_EN_JALALI = ("Farvardin", "Ordibehesht", "Khordad", "Tir", "Mordad", "Shahrivar", "Mehr", "Aban", "Azar",
                    "Dey", "Bahman", "Esfand")
MONTHS_GREGORIAN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# State: the word and an icon, so a state is never told by colour alone.
STATE_ICON = {"ready": "✔", "degraded": "◐", "not_ready": "✖", "unknown": "?"}
STATE_WORDS: dict[str, dict[Lang, str]] = {
    "ready": {"fa": "آماده", "en": "ready"},
    "degraded": {"fa": "ناقص", "en": "degraded"},
    "not_ready": {"fa": "ناآماده", "en": "not ready"},
    "unknown": {"fa": "نامعلوم", "en": "unknown"},
}
# A link's and a terminal's state (monitor/core/reasons.py LinkState; terminals are up, down or unknown).
PART_STATE_WORDS: dict[str, dict[Lang, str]] = {
    "up": {"fa": "وصل", "en": "up"},
    "impaired": {"fa": "ضعیف", "en": "impaired"},
    "flapping": {"fa": "ناپایدار", "en": "flapping"},
    "down": {"fa": "قطع", "en": "down"},
    "unknown": {"fa": "نامعلوم", "en": "unknown"},
}
PART_STATE_CLASS = {"up": "ready", "impaired": "degraded", "flapping": "degraded", "down": "not_ready",
                    "unknown": "unknown"}
ROLE_WORDS: dict[str, dict[Lang, str]] = {
    "primary": {"fa": "لینک اصلی", "en": "primary link"},
    "backup": {"fa": "لینک پشتیبان", "en": "backup link"},
}
# Link codes (``<role>.<name>``), by name; {detail} is the limit crossed (``>1%``).
LINK_WORDS: dict[str, dict[Lang, str]] = {
    "down": {"fa": "قطع است", "en": "is down"},
    "admin_down": {"fa": "به دست مدیر خاموش شده", "en": "is shut down by an administrator"},
    "oper_down": {"fa": "درگاه قطع است", "en": "port is down"},
    "missing": {"fa": "وجود ندارد", "en": "is missing"},
    "stale": {"fa": "داده‌ی تازه ندارد", "en": "has no fresh data"},
    "no_data": {"fa": "داده‌ای ندارد", "en": "has no data"},
    "flapping": {"fa": "پیوسته قطع و وصل می‌شود", "en": "keeps going up and down"},
    "loss": {"fa": "اتلاف بسته {detail}", "en": "packet loss {detail}"},
    "rtt": {"fa": "تأخیر رفت‌وبرگشت {detail}", "en": "round-trip time {detail}"},
    "jitter": {"fa": "لرزش تأخیر {detail}", "en": "jitter {detail}"},
    "rx_power": {"fa": "توان نوری دریافتی {detail}", "en": "optical receive power {detail}"},
    "errors": {"fa": "خطای درگاه {detail}", "en": "interface errors {detail}"},
    "path_not_proven": {"fa": "مسیر جداگانه‌اش ثابت نشده", "en": "its own path is not proven"},
    "snmp_unavailable": {"fa": "SNMP پاسخ نمی‌دهد", "en": "SNMP does not answer"},
    "rx_power_warning": {"fa": "هشدار توان نوری {detail}", "en": "optical power warning {detail}"},
    "device_rebooted": {"fa": "دستگاه دوباره راه‌اندازی شد", "en": "the device rebooted"},
    "rates_unknown": {"fa": "نرخ ترافیک هنوز معلوم نیست", "en": "traffic rates not known yet"},
    "not_probed": {"fa": "در این دور سنجیده نشد", "en": "was not probed this cycle"},
    "optics.no_sensor": {"fa": "حسگر نوری ندارد ({detail})", "en": "has no optical sensor ({detail})"},
    "optics.sensor_unavailable": {"fa": "حسگر نوری در دسترس نیست ({detail})",
                                  "en": "optical sensor unavailable ({detail})"},
    "optics.unsupported_type": {"fa": "نوع حسگر نوری پشتیبانی نمی‌شود ({detail})",
                                "en": "unsupported optical sensor type ({detail})"},
    "optics.no_light": {"fa": "نوری دریافت نمی‌شود ({detail})", "en": "no light ({detail})"},
    "optics.out_of_range": {"fa": "خوانش نوری خارج از بازه ({detail})",
                            "en": "optical reading out of range ({detail})"},
}
# Site codes; {detail} and {subject} as monitor/core/reasons.py reads them.
SITE_WORDS: dict[str, dict[Lang, str]] = {
    "isolated": {"fa": "هر دو لینک قطع است", "en": "both links are down"},
    "terminals": {"fa": "پایانه‌های پاسخ‌گو {detail}", "en": "terminals answering {detail}"},
    "terminals.unknown": {"fa": "پایانه‌های نامعلوم {detail}", "en": "terminals unknown {detail}"},
    "upstream": {"fa": "پشت گره {subject} که قطع است", "en": "behind node {subject}, which is down"},
    "no_data": {"fa": "هیچ داده‌ای از محل نیست", "en": "no data from the site at all"},
    "sustaining": {"fa": "سالم، هنوز نه به اندازه‌ی کافی ({detail})",
                   "en": "healthy, not yet for long enough ({detail})"},
    "maintenance": {"fa": "در تعمیر و نگهداری: {detail}", "en": "in maintenance: {detail}"},
    "waived": {"fa": "معافیت {subject} {detail}", "en": "waived {subject} {detail}"},
    "other": {"fa": "{detail}", "en": "{detail}"},
    "upstream.unconfirmed": {"fa": "تا دیده‌شدن سلامت {subject} نامعلوم",
                             "en": "unconfirmed until {subject} is seen healthy"},
    "not_probed": {"fa": "پایانه‌های سنجیده‌نشده {detail}", "en": "terminals not probed {detail}"},
    "monitor.blind": {"fa": "پایشگر خودش نمی‌بیند", "en": "the monitor cannot see"},
    "certificate.expiring": {"fa": "گواهی {subject} رو به انقضا ({detail})",
                             "en": "certificate of {subject} expiring ({detail})"},
    "certificate.before_deadline": {"fa": "گواهی {subject} پیش از مهلت منقضی می‌شود ({detail})",
                                    "en": "certificate of {subject} expires before the deadline ({detail})"},
}

LABELS: dict[str, dict[Lang, str]] = {
    "title": {"fa": "آمادگی حوزه‌های رأی‌گیری", "en": "Polling site readiness"},
    "ready_share": {"fa": "سهم حوزه‌های آماده", "en": "Polling places ready"},
    "of": {"fa": "از", "en": "of"},
    "ready_of": {"fa": "{ready} از {total} حوزه آماده", "en": "{ready} of {total} polling places ready"},
    "target": {"fa": "هدف", "en": "target"},
    "deadline": {"fa": "مهلت", "en": "Deadline"},
    "days_left": {"fa": "{n} روز مانده", "en": "{n} days left"},
    "deadline_passed": {"fa": "مهلت گذشته است", "en": "the deadline has passed"},
    "forecast": {"fa": "پیش‌بینی در مهلت", "en": "Forecast at the deadline"},
    "forecast_range": {"fa": "بازه", "en": "range"},
    "at_risk": {"fa": "در خطر", "en": "at risk"},
    "on_track": {"fa": "در مسیر", "en": "on track"},
    "all_ready_at": {"fa": "همه آماده در", "en": "all ready by"},
    "never_at_pace": {"fa": "با این روند هرگز همه آماده نمی‌شوند", "en": "never all ready at this pace"},
    "not_enough_history": {"fa": "سابقه‌ی کافی نیست", "en": "not enough history"},
    "history_of": {"fa": "{have} از {need} ساعت", "en": "{have} of {need} hours"},
    "states": {"fa": "حوزه‌ها بر پایه‌ی وضعیت", "en": "Polling places by state"},
    "nodes": {"fa": "گره‌های شبکه (جدا از سهم آمادگی)", "en": "Network nodes (not in the ready share)"},
    "terminals": {"fa": "پایانه‌های روشن", "en": "Terminals up"},
    "unknown_n": {"fa": "{n} نامعلوم", "en": "{n} unknown"},
    "urban": {"fa": "شهری", "en": "urban"},
    "rural": {"fa": "روستایی", "en": "rural"},
    "counties": {"fa": "شهرستان‌ها (بدترین نخست)", "en": "Counties (worst first)"},
    "county": {"fa": "شهرستان", "en": "County"},
    "share": {"fa": "سهم آماده", "en": "Ready share"},
    "ready_total": {"fa": "آماده / کل", "en": "Ready / total"},
    "not_ready_count": {"fa": "ناآماده", "en": "Not ready"},
    "trend": {"fa": "روند روزانه", "en": "Trend per day"},
    "no_trend": {"fa": "سابقه‌ی کافی نیست", "en": "not enough history"},
    "worst": {"fa": "بدترین حوزه‌ها", "en": "Worst sites"},
    "sites_of": {"fa": "حوزه‌های {county}", "en": "Sites of {county}"},
    "site": {"fa": "محل", "en": "Site"},
    "state": {"fa": "وضعیت", "en": "State"},
    "reasons": {"fa": "علت", "en": "Reasons"},
    "for": {"fa": "مدت", "en": "For"},
    "owner": {"fa": "مسئول / اقدام باز", "en": "Owner / open action"},
    "due": {"fa": "مهلت", "en": "due"},
    "overdue": {"fa": "دیرکرد", "en": "overdue"},
    "all_ready": {"fa": "همه‌ی حوزه‌ها آماده‌اند.", "en": "Every site is ready."},
    "more": {"fa": "و {n} مورد دیگر", "en": "and {n} more"},
    "burnup": {"fa": "روند آمادگی تا مهلت", "en": "Readiness over time"},
    "burnup_none": {"fa": "هنوز سابقه‌ای ثبت نشده است.", "en": "No history recorded yet."},
    "map": {"fa": "نقشه", "en": "Map"},
    "map_none": {"fa": "هیچ محلی مختصات ندارد.", "en": "No site has a location."},
    "cluster": {"fa": "{n} محل", "en": "{n} sites"},
    "updated": {"fa": "آخرین ارزیابی", "en": "Last updated"},
    "ago": {"fa": "{t} پیش", "en": "{t} ago"},
    "not_yet": {"fa": "هنوز ارزیابی نشده", "en": "not evaluated yet"},
    "province": {"fa": "کل استان", "en": "whole province"},
    "back": {"fa": "بازگشت به کل استان", "en": "Back to the province"},
    "digits_latin": {"fa": "ارقام لاتین", "en": "Latin digits"},
    "digits_fa": {"fa": "ارقام فارسی", "en": "Persian digits"},
    "switch_lang": {"fa": "English", "en": "فارسی"},
    "health_stale": {"fa": "داده‌ها کهنه‌اند: ارقام زیر ممکن است امروزی نباشند.",
                     "en": "The data is stale: the figures below may not be current."},
    "health_blind": {"fa": "پایش کور است: پایشگر چیزی نمی‌بیند.", "en": "The monitor is blind: it sees nothing."},
    "health_note": {"fa": "سلامت پایشگر", "en": "Monitor health"},
    "unknown_county": {"fa": "شهرستان ناشناخته", "en": "unknown county"},
    "api": {"fa": "رابط برنامه‌نویسی", "en": "API"},
    "burnup_store": {"fa": "از دفتر رویدادها، یک نقطه در هر ساعت؛ جای خالی یعنی پایشگر خاموش یا کور بود.",
                     "en": "From the event store, one point an hour; a gap is time the monitor was stopped or blind."},
    "burnup_memory": {"fa": "از حافظه‌ی پیش‌بینی (این سرویس دفتر رویداد ندارد).",
                      "en": "From the forecast's memory (this service keeps no event store)."},
    "site_title": {"fa": "محل {id}", "en": "Site {id}"},
    "no_site": {"fa": "محلی با شناسه‌ی {id} در فهرست نیست.", "en": "There is no site {id} in the inventory."},
    "since": {"fa": "از", "en": "since"},
    "for_time": {"fa": "به مدت", "en": "for"},
    "kind_polling": {"fa": "حوزه‌ی رأی‌گیری", "en": "polling place"},
    "kind_node": {"fa": "گره‌ی شبکه", "en": "network node"},
    "upstream_node": {"fa": "وابسته به گره", "en": "depends on node"},
    "contact": {"fa": "تماس", "en": "contact"},
    "warnings": {"fa": "هشدارها", "en": "Warnings"},
    "links": {"fa": "لینک‌ها", "en": "Links"},
    "role": {"fa": "نقش", "en": "Role"},
    "medium": {"fa": "رسانه", "en": "Medium"},
    "address": {"fa": "نشانی", "en": "Address"},
    "loss": {"fa": "اتلاف بسته", "en": "Loss"},
    "rtt": {"fa": "تأخیر رفت‌وبرگشت", "en": "RTT"},
    "jitter": {"fa": "لرزش", "en": "Jitter"},
    "rx_power": {"fa": "توان نوری دریافتی", "en": "Optical rx power"},
    "at_most": {"fa": "حداکثر", "en": "max"},
    "at_least": {"fa": "حداقل", "en": "min"},
    "observed": {"fa": "آخرین سنجش", "en": "Observed"},
    "no_links": {"fa": "این محل لینکی ندارد.", "en": "This site has no links."},
    "terminals_list": {"fa": "پایانه‌ها", "en": "Terminals"},
    "terminal": {"fa": "پایانه", "en": "Terminal"},
    "no_terminals": {"fa": "این محل پایانه‌ای ندارد.", "en": "This site has no terminals."},
    "schedule": {"fa": "تعمیر و نگهداری و معافیت‌ها", "en": "Maintenance and waivers"},
    "in_maintenance_now": {"fa": "اکنون در تعمیر و نگهداری: {why}", "en": "In maintenance now: {why}"},
    "window": {"fa": "پنجره‌ی تعمیر", "en": "Maintenance window"},
    "waiver": {"fa": "معافیت", "en": "Waiver"},
    "until": {"fa": "تا", "en": "until"},
    "approved_by": {"fa": "تأییدکننده", "en": "approved by"},
    "expired": {"fa": "منقضی", "en": "expired"},
    "open_now": {"fa": "باز", "en": "open now"},
    "no_schedule": {"fa": "هیچ پنجره‌ی تعمیر یا معافیتی برای این محل نیست.",
                    "en": "No maintenance window or waiver covers this site."},
    "actions": {"fa": "مسئول و اقدام‌های باز", "en": "Owner and open actions"},
    "no_owner": {"fa": "مسئولی ثبت نشده", "en": "no owner on record"},
    "no_actions": {"fa": "اقدام بازی ثبت نشده است.", "en": "No open action."},
    "timeline": {"fa": "وضعیت در {days} روز گذشته", "en": "State over the last {days} days"},
    "timeline_none": {"fa": "این سرویس دفتر رویداد ندارد: سابقه‌ای برای نشان دادن نیست.",
                      "en": "This service keeps no event store: there is no history to show."},
    "timeline_empty": {"fa": "در این بازه چیزی ثبت نشده است.", "en": "Nothing was recorded in this period."},
    "changes": {"fa": "تغییرها", "en": "Changes"},
    "when": {"fa": "زمان", "en": "When"},
    "monitor_dark": {"fa": "پایشگر خاموش یا کور", "en": "monitor stopped or blind"},
    "site_of_node": {"fa": "محل", "en": "site"},
    "back_board": {"fa": "بازگشت به تابلو", "en": "Back to the board"},
    "location": {"fa": "مختصات", "en": "Location"},
}

_AGO_UNITS: dict[Lang, tuple[str, str, str, str]] = {"fa": ("ثانیه", "دقیقه", "ساعت", "روز"),
                                                     "en": ("s", "m", "h", "d")}


def words(key: str, lang: Lang, **values: object) -> str:
    """Return the label ``key`` in ``lang`` with ``values`` filled in (not yet localised in digits)."""
    return LABELS[key][lang].format(**values)


def part_state_words(state: str, lang: Lang) -> str:
    """Return a link's or terminal's state in ``lang``."""
    return PART_STATE_WORDS.get(state, PART_STATE_WORDS["unknown"])[lang]


def state_words(state: str, lang: Lang) -> str:
    """Return a state's name in ``lang``."""
    return STATE_WORDS.get(state, STATE_WORDS["unknown"])[lang]


def reason_words(reason: Reason | str, lang: Lang) -> str:
    """Return a reason in words: ``لینک پشتیبان: قطع است``, ``primary link: packet loss >1%``."""
    r = reason if isinstance(reason, Reason) else Reason.parse(reason)
    if r.role:
        return f"{ROLE_WORDS[r.role][lang]}: {LINK_WORDS[r.name][lang].format(detail=r.detail)}".strip()
    return SITE_WORDS[r.code][lang].format(detail=r.detail, subject=r.subject).strip()


def digits(text: str, lang: Lang, latin: bool) -> str:
    """Return ``text`` with Persian digits, decimal sign and percent sign, unless English or ``latin``."""
    if lang == "en" or latin:
        return text
    return persian_digits(text).replace(".", "٫").replace("%", "٪")


def share_text(share: float | None) -> str:
    """Return a share as every surface prints it (``67.0%``, one decimal), ``–`` for none."""
    return "–" if share is None else f"{share * 100:.1f}%"


def duration(seconds: float, lang: Lang) -> str:
    """Return a short duration: ``45s``, ``12m``, ``3h 5m``, ``2d 4h`` (Persian units, spaced, in Persian)."""
    return short_duration(seconds, _AGO_UNITS[lang], " " if lang == "fa" else "", pad=False)


def jalali_text(when: datetime, lang: Lang, *, with_time: bool = True) -> str:
    """Return the Jalali date with the month's name: ``13 آذر 1405 18:30`` / ``13 Azar 1405 18:30``."""
    jy, jm, jd = gregorian_to_jalali(when.year, when.month, when.day)
    month = MONTHS_FA[jm - 1] if lang == "fa" else MONTHS_EN_JALALI[jm - 1]
    text = f"{jd} {month} {jy}"
    return text + (f" {when:%H:%M}" if with_time else "")


def gregorian_text(when: datetime) -> str:
    """Return the Gregorian date beside it: ``4 Dec 2026``."""
    return f"{when.day} {MONTHS_GREGORIAN[when.month - 1]} {when.year}"


def local(ts: float, zone: tzinfo) -> datetime:
    """Return a Unix time as a datetime in the programme's zone."""
    return datetime.fromtimestamp(ts, zone)
