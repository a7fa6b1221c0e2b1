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
import os
import unicodedata
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rich.console import Console
from rich.table import Table
from rich.text import Text

from monitor.errors import ReadinessError

DEFAULT_URL = "http://127.0.0.1:9108/api/v1/sites"
STATES = ("ready", "degraded", "not_ready", "unknown")
STATE_STYLE = {"ready": "green", "degraded": "yellow", "not_ready": "bold red", "unknown": "magenta"}
WORST_ORDER = {"not_ready": 0, "unknown": 1, "degraded": 2}
_OPENING = {"(": ")", "[": "]", "{": "}"}
_MIRROR = dict(zip("()[]{}<>«»‹›", ")(][}{><»«›‹", strict=True))

# -- bidi: enough of UAX #9 for names and reasons (no explicit embeddings or isolates) ------------


def has_rtl(text: str) -> bool:
    """Return whether ``text`` holds a right-to-left letter (Persian, Arabic, Hebrew...)."""
    return any(unicodedata.bidirectional(c) in ("R", "AL") for c in text)


def _clusters(text: str) -> list[str]:
    """Split ``text`` into a base character and the combining marks that follow it."""
    out: list[str] = []
    for c in text:
        if out and (unicodedata.combining(c) or unicodedata.category(c) in ("Mn", "Me")):
            out[-1] += c
        else:
            out.append(c)
    return out


def _strong(t: str) -> str:
    return "L" if t == "L" else "R"  # for neutrals, European and Arabic numbers count as R (N1)


def _brackets(clusters: list[str], types: list[str], base: str) -> None:
    """Give each pair of brackets one direction, so "(" and ")" stay around their content (N0)."""
    stack: list[tuple[int, str]] = []
    pairs: list[tuple[int, int]] = []
    for i, c in enumerate(clusters):
        if types[i] != "ON":
            continue
        if c[0] in _OPENING:
            stack.append((i, _OPENING[c[0]]))
        elif c[0] in _OPENING.values():
            for k in range(len(stack) - 1, -1, -1):
                if stack[k][1] == c[0]:
                    pairs.append((stack[k][0], i))
                    del stack[k:]
                    break
    strong = ("L", "R", "EN", "AN")
    for opening, closing in sorted(pairs):
        inside = {_strong(t) for t in types[opening + 1:closing] if t in strong}
        if not inside:
            continue
        direction = base
        if base not in inside:  # only the opposite direction inside: it wins if the text before agrees
            direction = next((_strong(t) for t in reversed(types[:opening]) if t in strong), base)
        types[opening] = types[closing] = direction


def _resolve(clusters: list[str], types: list[str], base: str) -> list[str]:
    """Resolve weak and neutral types (UAX #9 W1-W7, N0-N2) to L, R, EN or AN."""
    n = len(types)
    prev, strong = base, base
    for i, t in enumerate(types):
        if t == "NSM":  # W1 (combining marks are already inside their base's cluster)
            t = types[i] = prev
        if t in ("L", "R", "AL"):
            strong = t
        elif t == "EN" and strong == "AL":  # W2
            types[i] = "AN"
        prev = types[i]
    types[:] = ["R" if t == "AL" else t for t in types]  # W3
    for i in range(1, n - 1):  # W4
        if types[i] == "ES" and types[i - 1] == types[i + 1] == "EN":
            types[i] = "EN"
        elif types[i] == "CS" and types[i - 1] == types[i + 1] and types[i - 1] in ("EN", "AN"):
            types[i] = types[i - 1]
    for i in range(n):  # W5: terminators (%, currency) next to European digits
        if types[i] == "ET":
            j = i
            while j < n and types[j] == "ET":
                j += 1
            if (i > 0 and types[i - 1] == "EN") or (j < n and types[j] == "EN"):
                types[i:j] = ["EN"] * (j - i)
    strong = base
    for i, t in enumerate(types):  # W6, W7
        if t in ("ES", "ET", "CS"):
            types[i] = "ON"
        elif t in ("L", "R"):
            strong = t
        elif t == "EN" and strong == "L":
            types[i] = "L"
    _brackets(clusters, types, base)
    i = 0
    while i < n:  # N1, N2: a run of neutrals takes its neighbours' direction if they agree
        if types[i] in ("L", "R", "EN", "AN"):
            i += 1
            continue
        j = i
        while j < n and types[j] not in ("L", "R", "EN", "AN"):
            j += 1
        before = base if i == 0 else types[i - 1]
        after = base if j == n else types[j]
        side = [_strong(before), _strong(after)]
        types[i:j] = [side[0] if side[0] == side[1] else base] * (j - i)
        i = j
    return types


def visual(text: str) -> str:
    """Return ``text`` in visual (left-to-right display) order for a terminal without bidi."""
    if not has_rtl(text):
        return text
    clusters = _clusters(text)
    types = [unicodedata.bidirectional(c[0]) or "L" for c in clusters]
    first = next((t for t in types if t in ("L", "R", "AL")), "L")  # P2, P3
    base, para = ("L", 0) if first == "L" else ("R", 1)
    resolved = _resolve(clusters, types, base)
    levels = []
    for t in resolved:  # I1, I2
        if para == 0:
            levels.append({"L": 0, "R": 1}.get(t, 2))
        else:
            levels.append(1 if t == "R" else 2)
    k = len(clusters)
    while k and clusters[k - 1].isspace():  # L1: trailing whitespace at the paragraph level
        k -= 1
        levels[k] = para
    for level in range(max(levels), 0, -1):  # L2
        i = 0
        while i < len(clusters):
            if levels[i] < level:
                i += 1
                continue
            j = i
            while j < len(clusters) and levels[j] >= level:
                j += 1
            clusters[i:j], levels[i:j] = clusters[i:j][::-1], levels[i:j][::-1]
            i = j
    return "".join(_MIRROR.get(c, c) if lvl % 2 else c for c, lvl in zip(clusters, levels, strict=True))  # L4


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
    """Return ``moment`` as programme-local ``YYYY-MM-DD HH:MM Zone`` (as given without a zone)."""
    if moment is None:
        return "?"
    if zone is None or moment.tzinfo is None:
        return moment.isoformat(sep=" ", timespec="minutes")
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M} {zone}"


def duration(seconds: float) -> str:
    """Return a short human duration: ``45s``, ``12m``, ``3h 05m``, ``2d 4h``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def _share(ready: int, total: int) -> str:
    return f"{ready / total * 100:.1f}%" if total else "–"


def _counts_table(title: str, first: str, groups: dict[str, Counter[str]], show: Callable[[str], str]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(first)
    for state in STATES:
        table.add_column(state.replace("_", " "), justify="right", style=STATE_STYLE[state])
    table.add_column("total", justify="right")
    table.add_column("ready share", justify="right")

    def share(item: tuple[str, Counter[str]]) -> tuple[float, str]:
        total = item[1].total()
        return (item[1]["ready"] / total if total else 1.0, item[0])

    for name, counts in sorted(groups.items(), key=share):
        total = counts.total()
        table.add_row(Text(show(name)), *(str(counts[s]) for s in STATES), str(total),
                      _share(counts["ready"], total))
    return table


def _group(sites: Iterable[dict[str, Any]], field: str) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = {}
    for site in sites:
        out.setdefault(str(site.get(field) or "?"), Counter())[site.get("state") or "unknown"] += 1
    return out


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

    counts = Counter(s.get("state") or "unknown" for s in sites)
    province = Table(title="Province", title_justify="left")
    for state in STATES:
        province.add_column(state.replace("_", " "), justify="right", style=STATE_STYLE[state])
    province.add_column("total", justify="right")
    province.add_column("ready share", justify="right")
    province.add_row(*(str(counts[s]) for s in STATES), str(len(sites)), _share(counts["ready"], len(sites)))
    console.print(province)
    console.print(_counts_table("Counties", "county", _group(sites, "county"), show))
    console.print(_counts_table("Urban / rural", "area", _group(sites, "area"), show))

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


def status_from_url(url: str = DEFAULT_URL, *, timeout: float = 5.0) -> dict[str, Any]:
    """Fetch the /api/v1/sites document from a running service (a bare host:port gets the path)."""
    if url.rstrip("/").count("/") == 2:  # "http://host:port" or "http://host:port/"
        url = url.rstrip("/") + "/api/v1/sites"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise ReadinessError(f"{url} answered HTTP {exc.code} {exc.reason}") from None
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
    return doc
