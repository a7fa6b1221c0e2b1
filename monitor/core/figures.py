"""The figures every surface shows, defined once: polling places and network nodes, the state counts, the ready
share and terminals up, for the province, each county and urban/rural. Pure; no clock.

The page, the API, `readiness status`, `run --once`, /metrics, the forecast and the audit report take their
numbers from here; the recording rules of monitor/rules.py compute the same definitions from the metrics, and a
test holds them all to one computation.

- A **polling place** is a site of kind ``polling``: what must be ready. A **network node** (kind ``node``: an
  aggregation switch, a PoP) is a means, not an end: nodes are counted apart and never in the ready share.
- The **ready share** of a scope is its polling places in state ``ready`` over all its polling places (every
  state counts in the denominator, ``unknown`` included); ``None`` when the scope has no polling place.
- **Terminals up**: a terminal is up, down or unknown. Behind a node that is down (the site's verdict is the
  ``upstream`` reason) nothing at the site can be seen, so every terminal of it is unknown, whatever its probe
  said. A site's terminals-up count is ``None`` (shown ``?``) when all of its terminals are unknown; unknown is
  never shown as 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from monitor.core.model import Site
from monitor.core.readiness import SiteReadiness, TerminalHealth
from monitor.core.reasons import SITE_STATES, UPSTREAM

POLLING, NODE = "polling", "node"
AREAS = ("urban", "rural")
Scope = tuple[str, str]  # ("province", ""), ("county", "Ilam"), ("area", "rural"): as the forecast's scopes
PROVINCE: Scope = ("province", "")
TerminalState = Literal["up", "down", "unknown"]


def is_polling_place(site: Site) -> bool:
    """Return whether ``site`` counts in the ready share (a polling place, not a network node)."""
    return site.kind == POLLING


def site_state(r: SiteReadiness | None) -> str:
    """Return a site's state; a site with no verdict yet is ``unknown``."""
    return r.state if r is not None else "unknown"


def blind(r: SiteReadiness | None) -> bool:
    """Return whether nothing at the site can be seen: no verdict, or behind a node that is down."""
    return r is None or any(x.code == UPSTREAM for x in r.reasons)


def terminal_states(site: Site, r: SiteReadiness | None) -> tuple[TerminalState, ...]:
    """Return the state of each terminal of ``site``, in inventory order, unknown wherever the site is blind."""
    if blind(r):
        return tuple("unknown" for _ in site.terminals)
    assert r is not None
    by_id: dict[str, TerminalHealth] = {t.id: t for t in r.terminals}
    return _terminal_states(site, False, {k: t.state for k, t in by_id.items()})


def _terminal_states(site: Site, is_blind: bool, states: Mapping[str, str]) -> tuple[TerminalState, ...]:
    if is_blind:
        return tuple("unknown" for _ in site.terminals)
    out: list[TerminalState] = []
    for t in site.terminals:
        state = states.get(t.id, "unknown")
        out.append("up" if state == "up" else "down" if state == "down" else "unknown")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class SiteTerminals:
    """Terminals up, down, unknown and expected at one site."""

    up: int
    down: int
    unknown: int
    total: int

    @property
    def known_up(self) -> int | None:
        """Return the terminals up, or None when none of them can be seen (unknown is not 0)."""
        return None if self.total and self.unknown == self.total else self.up

    def text(self) -> str:
        """Return ``2/3``, ``?/3`` (nothing seen) or ``1/3 (1 unknown)``; ``–`` for a site without terminals."""
        if not self.total:
            return "–"
        if self.known_up is None:
            return f"?/{self.total}"
        return f"{self.up}/{self.total}" + (f" ({self.unknown} unknown)" if self.unknown else "")


def site_terminals(site: Site, r: SiteReadiness | None) -> SiteTerminals:
    """Return the terminal counts of ``site``."""
    return _count(terminal_states(site, r))


def recorded_terminals(site: Site, reasons: Iterable[str] | None, states: Mapping[str, str]) -> SiteTerminals:
    """Return the terminal counts of ``site`` from what a record holds rather than a verdict: the site's reason
    codes (None: no verdict recorded) and each terminal's last recorded state by terminal id. The same rule as
    `site_terminals`: behind a node that is down, or without a verdict, every terminal is unknown."""
    is_blind = reasons is None or UPSTREAM in set(reasons)
    return _count(_terminal_states(site, is_blind, states))


def _count(states: tuple[TerminalState, ...]) -> SiteTerminals:
    return SiteTerminals(states.count("up"), states.count("down"), states.count("unknown"), len(states))


@dataclass(frozen=True, slots=True)
class Tally:
    """Sites of one kind in one scope: how many in each state, the ready share and their terminals."""

    states: Mapping[str, int] = field(default_factory=lambda: MappingProxyType(dict.fromkeys(SITE_STATES, 0)))
    terminals_up: int = 0
    terminals_down: int = 0
    terminals_unknown: int = 0
    terminals_total: int = 0

    @property
    def total(self) -> int:
        return sum(self.states.values())

    @property
    def ready(self) -> int:
        return self.states["ready"]

    @property
    def share(self) -> float | None:
        """Return the ready share, None without sites."""
        return self.ready / self.total if self.total else None

    def share_text(self) -> str:
        """Return ``67.0%`` (one decimal, as every surface prints it) or ``–``."""
        return "–" if self.share is None else f"{self.share * 100:.1f}%"


class _Counter:
    def __init__(self) -> None:
        self.states: dict[str, int] = dict.fromkeys(SITE_STATES, 0)
        self.t = [0, 0, 0, 0]

    def add(self, state: str, t: SiteTerminals) -> None:
        self.states[state] += 1
        for i, n in enumerate((t.up, t.down, t.unknown, t.total)):
            self.t[i] += n

    def tally(self) -> Tally:
        return Tally(MappingProxyType(self.states), *self.t)


@dataclass(frozen=True, slots=True)
class Figures:
    """The figures of a set of sites: polling places by province, county and area; network nodes apart."""

    province: Tally
    counties: Mapping[str, Tally]  # polling places of each county, by name
    areas: Mapping[str, Tally]  # polling places, urban and rural (both always present)
    nodes: Tally  # network nodes, never in a ready share
    county_nodes: Mapping[str, Tally]  # network nodes of each county

    def scopes(self) -> dict[Scope, Tally]:
        """Return every scope's polling-place tally, keyed as the forecast keys them."""
        return {PROVINCE: self.province, **{("county", c): t for c, t in self.counties.items()},
                **{("area", a): t for a, t in self.areas.items()}}


def compute(sites: Iterable[Site], readiness: Mapping[str, SiteReadiness]) -> Figures:
    """Return the figures of ``sites`` (those a surface reports) judged by ``readiness``."""
    return tally(sites, lambda site: site_state(readiness.get(site.id)),
                 lambda site: site_terminals(site, readiness.get(site.id)))


def tally(sites: Iterable[Site], state_of: Callable[[Site], str],
          terminals_of: Callable[[Site], SiteTerminals]) -> Figures:
    """Return the figures of ``sites`` given each one's state and terminal counts: `compute` for a live verdict,
    the audit report for the states a record holds at the end of a period (with `recorded_terminals`)."""
    province, nodes = _Counter(), _Counter()
    counties: dict[str, _Counter] = {}
    county_nodes: dict[str, _Counter] = {}
    areas = {a: _Counter() for a in AREAS}
    for site in sites:
        state, t = state_of(site), terminals_of(site)
        if state not in SITE_STATES:
            state = "unknown"
        if is_polling_place(site):
            for c in (province, counties.setdefault(site.county, _Counter()), areas[site.area]):
                c.add(state, t)
        else:
            for c in (nodes, county_nodes.setdefault(site.county, _Counter())):
                c.add(state, t)
        counties.setdefault(site.county, _Counter())  # a county of nodes only still appears, with no share
    return Figures(province.tally(), MappingProxyType({k: v.tally() for k, v in sorted(counties.items())}),
                   MappingProxyType({k: v.tally() for k, v in areas.items()}), nodes.tally(),
                   MappingProxyType({k: v.tally() for k, v in sorted(county_nodes.items())}))


def cells(sites: Iterable[Site], readiness: Mapping[str, SiteReadiness]) -> dict[tuple[str, str, str, str], int]:
    """Return the number of sites by (county, area, kind, state): the finest cut, that /metrics exports."""
    out: dict[tuple[str, str, str, str], int] = {}
    for site in sites:
        key = (site.county, site.area, site.kind, site_state(readiness.get(site.id)))
        out[key] = out.get(key, 0) + 1
    return out
