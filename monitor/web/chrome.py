"""What the board's pages share: the view a request asks for, localised text, and the page's frame (head,
header, language switch, "updated N s ago", the monitor's health banner, the live script)."""

from __future__ import annotations

import html
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from monitor.runtime.snapshot import Snapshot
from monitor.web.i18n import (
    STATE_ICON,
    Lang,
    digits,
    duration,
    gregorian_text,
    jalali_text,
    local,
    share_text,
    state_words,
    words,
)

REFRESH_SECONDS = 15  # how often a page asks /api/v1/summary whether there is a new evaluation


# -- the view a request asks for ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class View:
    """What one request asks to see: language, digits, a county (or the province)."""

    lang: Lang = "fa"
    latin: bool = False
    county: str = ""

    @staticmethod
    def of(query: Mapping[str, str], counties: Iterable[str], allowed: tuple[str, ...] = ("lang", "digits", "county")
           ) -> View:
        """Return the view ``query`` asks for; ValueError names what is allowed (the page answers 400)."""
        unknown = sorted(set(query) - set(allowed))
        if unknown:
            raise ValueError(f"unknown parameter {unknown[0]!r}; allowed: {', '.join(allowed)}")
        lang_name = query.get("lang", "fa").strip().lower() or "fa"
        if lang_name not in ("fa", "en"):
            raise ValueError(f"unknown lang {lang_name!r}; allowed: fa, en")
        lang: Lang = "en" if lang_name == "en" else "fa"
        digits_name = query.get("digits", "").strip().lower()
        if digits_name not in ("", "latin", "fa"):
            raise ValueError(f"unknown digits {digits_name!r}; allowed: latin, fa")
        wanted = query.get("county", "").strip()
        county = ""
        if wanted:
            names = sorted(counties)
            match = next((c for c in names if c.casefold() == wanted.casefold()), None)
            if match is None:
                raise ValueError(f"unknown county {wanted!r}; allowed: {', '.join(names)}")
            county = match
        return View(lang, lang == "en" or digits_name == "latin", county)

    def href(self, path: str = "/", **change: str) -> str:
        """Return ``path`` with this view's parameters, ``change`` applied (an empty value drops one)."""
        params = {"lang": "en" if self.lang == "en" else "", "digits": "latin" if self.latin and self.lang == "fa"
                  else "", "county": self.county}
        params.update(change)
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v})
        return path + (f"?{query}" if query else "")


# -- small helpers ---------------------------------------------------------------------------------------


def esc(text: object) -> str:
    """Return ``text`` escaped for HTML text and attribute values."""
    return html.escape(str(text), quote=True)


class Text:
    """Localised text of one view: words, digits, dates."""

    def __init__(self, view: View, zone: ZoneInfo) -> None:
        self.view, self.zone = view, zone

    def w(self, key: str, **values: object) -> str:
        return esc(self.d(words(key, self.view.lang, **values)))

    def d(self, text: object) -> str:
        return digits(str(text), self.view.lang, self.view.latin)

    def share(self, share: float | None) -> str:
        return self.d(share_text(share))

    def date(self, ts: float, *, with_time: bool = True) -> str:
        when = local(ts, self.zone)
        jal = self.d(jalali_text(when, self.view.lang, with_time=with_time))
        greg = self.d(gregorian_text(when))
        return (f'<span class="date"><span class="jalali">{esc(jal)}</span> '
                f'<span class="greg" dir="ltr">({esc(greg)})</span></span>')

    def state(self, state: str) -> str:
        return (f'<span class="state st-{state}" data-state="{state}"><span class="icon" aria-hidden="true">'
                f'{STATE_ICON.get(state, "?")}</span> {esc(state_words(state, self.view.lang))}</span>')

    def dur(self, seconds: float) -> str:
        return esc(self.d(duration(seconds, self.view.lang)))


def frame(t: Text, snap: Snapshot, *, title: str, health: tuple[str, list[str]], body: str, path: str = "/",
          back: str = "", data: str = "") -> str:
    """Return a whole page: ``body`` inside the board's chrome, for ``t.view`` at ``path``."""
    view, lang = t.view, t.view.lang
    state, notes = health
    banner = ""
    if state != "fresh" or notes:
        key = {"stale": "health_stale", "blind": "health_blind"}.get(state, "health_note")
        banner = (f'<div class="banner health-{state}" role="alert" id="health" data-health="{state}">'
                  f'<b>⚠ {t.w(key)}</b> <small dir="ltr">{esc("; ".join(notes))}</small></div>')
    updated = (f'{t.w("updated")}: {t.date(snap.at)} · <span id="ago" data-at="{snap.at:.3f}"></span>'
               if snap.evaluated else t.w("not_yet"))
    other_lang = "" if lang == "en" else "en"
    nav = [f'<a id="lang-switch" href="{esc(view.href(path, lang=other_lang))}" hreflang="{other_lang or "fa"}">'
           f'{t.w("switch_lang")}</a>']
    if lang == "fa":
        nav.append(f'<a id="digits-switch" href="{esc(view.href(path, digits="" if view.latin else "latin"))}">'
                   f'{t.w("digits_fa" if view.latin else "digits_latin")}</a>')
    nav.append(f'<a href="/api/v1/summary">{t.w("api")}</a>')
    stale_after = max(REFRESH_SECONDS * 4.0, max(
        (snap.config.policy.stale_after_intervals * c.interval_seconds for c in snap.cycles.values()), default=0.0))
    return f"""<!doctype html>
<html lang="{lang}" dir="{'rtl' if lang == 'fa' else 'ltr'}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)} · {t.w("title")}</title>
<link rel="stylesheet" href="/static/board/board.css">
<noscript><meta http-equiv="refresh" content="60"></noscript>
</head>
<body data-lang="{lang}" data-latin="{int(view.latin)}" data-evaluated="{snap.at if snap.evaluated else ''}"
 data-refresh="{REFRESH_SECONDS}" data-stale-after="{stale_after:.0f}"{data}>
<main id="board">
<header><h1 dir="auto">{esc(title)}</h1><nav>{" · ".join(nav)}</nav>
<p class="updated">{updated}</p></header>
{banner}{back}
{body}
</main>
<script src="/static/board/board.js" defer></script>
</body></html>"""
