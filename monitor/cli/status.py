"""`readiness status`: the province, county and urban/rural summary and the worst sites, in a terminal.

Persian names: most terminals print characters in the order they receive them, left to right,
without the Unicode bidirectional algorithm (UAX #9), so a Persian name would read backwards. When
stdout is a terminal we send text in *visual* order (`visual`); to a pipe or file we write the
logical order, which is what any program reading it expects. ``READINESS_BIDI=logical`` (for a
terminal that reorders by itself, such as Konsole or mlterm) or ``=visual`` overrides the guess.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bidi import get_base_level, get_display
from bidi.mirror import MIRRORED
from rich.console import Console
from rich.table import Table
from rich.text import Text

from monitor.cli.webclient import context_of, refusal_hint
from monitor.core.calendar import short_duration
from monitor.errors import ReadinessError

DEFAULT_URL = "http://127.0.0.1:9108/api/v1/sites"
STATES = ("ready", "degraded", "not_ready", "unknown")
STATE_STYLE = {"ready": "green", "degraded": "yellow", "not_ready": "bold red", "unknown": "magenta"}
WORST_ORDER = {"not_ready": 0, "unknown": 1, "degraded": 2}
_LEVEL = re.compile(r"Level\(\s*(\d+),?\s*\)")
_PARAGRAPH = re.compile(r"(\r\n|[\n\r\x1c-\x1e\x85\u2029])")  # bidi class B: each paragraph on its own
_TRAILING = ("WS", "FSI", "LRI", "RLI", "PDI", "BN", "LRE", "RLE", "LRO", "RLO", "PDF")

# -- bidi: python-bidi resolves the levels (UAX #9 P2-I2, L1-L2); the L3 and L4 it leaves out are here ---------


def has_rtl(text: str) -> bool:
    """Return whether ``text`` holds a right-to-left letter (Persian, Arabic, Hebrew...)."""
    return any(unicodedata.bidirectional(c) in ("R", "AL") for c in text)


def _levels(line: str) -> list[int] | None:
    """Return the embedding level python-bidi resolves for each character of ``line``, or None.

    python-bidi hands the levels out only in its debug dump (unicode-bidi's BidiInfo, one level a
    UTF-8 byte); None if the dump does not read as expected, and the caller keeps get_display's order.
    """
    dump = str(get_display(line, debug=True))
    per_byte = [int(n) for n in _LEVEL.findall(dump.partition("levels:")[2].partition("paragraphs:")[0])]
    if len(per_byte) != len(line.encode()):
        return None
    levels, at = [], 0
    for c in line:
        levels.append(per_byte[at])
        at += len(c.encode())
    return levels


def _visual_line(line: str) -> str:
    shown = str(get_display(line))
    levels = _levels(line)
    if levels is None:
        return shown
    para = get_base_level(line)
    types = [unicodedata.bidirectional(c) for c in line]
    trailing = True
    for i in range(len(line) - 1, -1, -1):  # L1: separators and the whitespace before them, trailing whitespace
        if types[i] in ("S", "B"):
            levels[i], trailing = para, True
        elif trailing and types[i] in _TRAILING:
            levels[i] = para
        else:
            trailing = False
    units: list[list[int]] = []  # a base character and the combining marks on it
    for i, t in enumerate(types):
        if units and t == "NSM" and levels[i] == levels[units[-1][0]]:
            units[-1].append(i)
        else:
            units.append([i])
    unit_levels = [levels[u[0]] for u in units]
    order = list(range(len(units)))
    for level in range(max(unit_levels), (min(unit_levels) | 1) - 1, -1):  # L2, by units: L3 keeps marks after
        i = 0
        while i < len(order):
            if unit_levels[order[i]] < level:
                i += 1
                continue
            j = i
            while j < len(order) and unit_levels[order[j]] >= level:
                j += 1
            order[i:j] = order[i:j][::-1]
            i = j
    plain: list[str] = []
    out: list[str] = []
    for u in order:
        chars = [line[i] for i in units[u]]
        odd = unit_levels[u] % 2 == 1
        plain.extend(reversed(chars) if odd else chars)
        out.extend(MIRRORED.get(c, c) if odd else c for c in chars)  # L4
    return "".join(out) if "".join(plain) == shown else shown  # python-bidi's order is the reference


def visual(text: str) -> str:
    """Return ``text`` in visual (left-to-right display) order for a terminal without bidi.

    The order is python-bidi's (the Unicode bidi algorithm up to rule L2). It stops there (its issue
    #25), so two display rules are applied here: combining marks stay after their letter (L3), and
    brackets and other mirrored characters in a right-to-left run are drawn mirrored (L4).
    """
    if not has_rtl(text):
        return text
    return "".join(_visual_line(part) if part and not _PARAGRAPH.fullmatch(part) else part
                   for part in _PARAGRAPH.split(text))


def _display(console: Console, bidi: bool | None) -> Callable[[str], str]:
    choice = os.environ.get("READINESS_BIDI", "").strip().lower()
    if bidi is None:
        bidi = {"visual": True, "logical": False}.get(choice, console.is_terminal)
    return visual if bidi else (lambda s: s)


# -- the report ---------------------------------------------------------------------------------


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _zone(name: Any) -> tzinfo | None:
    try:
        return ZoneInfo(name) if isinstance(name, str) and name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _local(moment: datetime | None, zone: tzinfo | None) -> str:
    """Return ``moment`` as programme-local Jalali with the Gregorian beside it:
    ``1405-10-10 23:59 (2026-12-31) Asia/Tehran`` (as given, Gregorian only, without a zone)."""
    from monitor.core.calendar import format_jalali

    if moment is None:
        return "?"
    if zone is None or moment.tzinfo is None:
        return moment.isoformat(sep=" ", timespec="minutes")
    here = moment.astimezone(zone)
    return f"{format_jalali(here)} ({here:%Y-%m-%d}) {zone}"


def forecast_line(doc: dict[str, Any], zone: tzinfo | None) -> str:
    """Return the province's forecast at the deadline with its range, or "not enough history"."""
    f = (doc.get("forecast") or {}).get("province")
    if not isinstance(f, dict) or f.get("status") != "ok":
        return "Forecast at the deadline: not enough history"
    low, high = f.get("share_at_deadline_range") or (None, None)
    when = _when(f.get("all_ready_at"))
    ready = f"all ready {_local(when, zone)}" if when else "never all ready at this pace"
    return (f"Forecast at the deadline: {_share(f.get('share_at_deadline'))} ({_share(low)}–{_share(high)}), "
            f"{'AT RISK' if f.get('at_risk') else 'on track'}; {ready}")


def duration(seconds: float) -> str:
    """Return a short human duration: ``45s``, ``12m``, ``3h 05m``, ``2d 04h``."""
    return short_duration(seconds)


def _share(share: Any) -> str:
    return f"{share * 100:.1f}%" if isinstance(share, int | float) else "–"


def _state_columns(table: Table) -> None:
    for state in STATES:
        table.add_column(state.replace("_", " "), justify="right", style=STATE_STYLE[state])
    table.add_column("total", justify="right")


def _counts_table(title: str, first: str, groups: dict[str, dict[str, Any]], show: Callable[[str], str]) -> Table:
    """Return a table of the polling places of each group (a county, urban/rural), the least ready first."""
    table = Table(title=title, title_justify="left")
    table.add_column(first)
    _state_columns(table)
    table.add_column("ready share", justify="right")

    def share(item: tuple[str, dict[str, Any]]) -> tuple[float, str]:
        value = item[1].get("ready_share")
        return (value if isinstance(value, int | float) else 1.0, item[0])

    for name, t in sorted(groups.items(), key=share):
        if not t.get("total"):
            continue  # a county of network nodes only has no polling place to count
        table.add_row(Text(show(name)), *(str(t.get(s, 0)) for s in STATES), str(t["total"]),
                      _share(t.get("ready_share")))
    return table


def worst_sites(sites: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the sites that are not ready: not_ready, then unknown, then degraded; longest first."""
    def key(site: dict[str, Any]) -> tuple[int, float, str]:
        since = _when(site.get("since"))
        return (WORST_ORDER[site.get("state") or "unknown"], since.timestamp() if since else float("inf"),
                str(site.get("id")))
    return sorted((s for s in sites if (s.get("state") or "unknown") in WORST_ORDER), key=key)


def render_status(doc: dict[str, Any], console: Console, worst: int = 20, *, bidi: bool | None = None) -> None:
    """Print the summary tables and the ``worst`` sites of an /api/v1/sites document."""
    show = _display(console, bidi)
    sites: list[dict[str, Any]] = list(doc.get("sites") or [])
    programme = doc.get("programme") or {}
    evaluated = _when(doc.get("evaluated_at"))
    zone = _zone(programme.get("timezone"))
    console.print(Text(show(str(programme.get("name") or "Readiness")), style="bold"))
    console.print(f"evaluated {_local(evaluated, zone) if evaluated else 'not yet'} · "
                  f"deadline {_local(_when(programme.get('deadline')), zone)} · "
                  f"config {doc.get('config_version') or '?'}", markup=False, highlight=False)

    # The figures are the service's (monitor/core/figures.py): polling places only, network nodes apart.
    fig = doc.get("summary") or {}
    province = Table(title="Province (polling places)", title_justify="left")
    _state_columns(province)
    province.add_column("ready share", justify="right")
    province.add_row(*(str(fig.get(s, 0)) for s in STATES), str(fig.get("total", 0)), _share(fig.get("ready_share")))
    console.print(province)
    deadline = _when(programme.get("deadline"))
    if deadline and evaluated:
        days = (deadline - evaluated).total_seconds() / 86400
        console.print(f"{math.ceil(days)} days to the deadline" if days > 0 else "the deadline has passed",
                      highlight=False)
    console.print(forecast_line(doc, zone), markup=False, highlight=False)
    terminals = fig.get("terminals") or {}
    if terminals.get("total"):
        console.print(f"Terminals up: {terminals.get('up', 0)} of {terminals['total']} "
                      f"({terminals.get('unknown', 0)} unknown)", highlight=False)
    nodes = fig.get("nodes") or {}
    if nodes.get("total"):
        console.print("Network nodes (not in the ready share): " + " · ".join(
            f"{s.replace('_', ' ')} {nodes.get(s, 0)}" for s in STATES) + f" · total {nodes['total']}",
            highlight=False)
    console.print(_counts_table("Counties", "county", dict(fig.get("counties") or {}), show))
    console.print(_counts_table("Urban / rural", "area", dict(fig.get("areas") or {}), show))

    bad = worst_sites(sites)
    if not bad:
        console.print(f"All {len(sites)} sites are ready." if sites else "No sites reported.")
        return
    table = Table(title=f"Worst sites ({min(worst, len(bad))} of {len(bad)} not fully ready)", title_justify="left")
    for name in ("site", "name", "county", "state", "for", "reasons"):
        table.add_column(name, overflow="fold")
    for site in bad[:worst]:
        state = site.get("state") or "unknown"
        since = _when(site.get("since"))
        age = duration((evaluated - since).total_seconds()) if evaluated and since else ""
        reasons = ", ".join(str(r) for r in site.get("reasons") or [])
        table.add_row(Text(str(site.get("id", "?"))), Text(show(str(site.get("name", "")))),
                      Text(show(str(site.get("county", "")))), Text(state, style=STATE_STYLE.get(state, "")),
                      age, Text(show(reasons)))
    console.print(table)
    if len(bad) > worst:
        console.print(f"… and {len(bad) - worst} more", highlight=False)


def status_from_url(url: str = DEFAULT_URL, *, timeout: float = 5.0, headers: dict[str, str] | None = None,
                    ca_file: str | None = None) -> dict[str, Any]:
    """Fetch the /api/v1/sites document from a running service (a bare host:port gets the path), with ``headers``
    (Basic auth) and, for https, the CA in ``ca_file`` trusted (default: the system's)."""
    if url.rstrip("/").count("/") == 2:  # "http://host:port" or "http://host:port/"
        url = url.rstrip("/") + "/api/v1/sites"
    context = context_of(ca_file)
    try:
        request = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise ReadinessError(f"{url} answered HTTP {exc.code} {exc.reason}"
                             f"{refusal_hint(exc.code, bool(headers))}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise ReadinessError(f"cannot reach the readiness service at {url}: {reason} "
                             "(is `readiness run` running and listening there?)") from None
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise ReadinessError(f"{url} did not return JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("sites"), list):
        raise ReadinessError(f"{url} did not return a sites document (no 'sites' list)")
    if not isinstance(doc.get("summary"), dict) or "counties" not in doc["summary"]:
        raise ReadinessError(f"{url} has no figures summary: is the service older than this command?")
    return doc
