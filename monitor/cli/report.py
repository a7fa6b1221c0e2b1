"""Terminal output: the one-line config summary and the readiness table."""

from __future__ import annotations

import sys
from collections import Counter

from rich.console import Console
from rich.table import Table

from monitor.config.loader import Config
from monitor.core.reasons import texts
from monitor.runtime.snapshot import Snapshot

STYLES = {"ready": "green", "degraded": "yellow", "not_ready": "bold red", "unknown": "dim"}
ORDER = {"not_ready": 0, "unknown": 1, "degraded": 2, "ready": 3}


def config_summary(config: Config) -> str:
    """Return one line: sites, links, terminals; by county and urban/rural."""
    links = sum(len(s.links) for s in config.sites)
    terminals = sum(len(s.terminals) for s in config.sites)
    counties = Counter(s.county for s in config.sites)
    areas = Counter(s.area for s in config.sites)
    by_county = ", ".join(f"{c} {n}" for c, n in sorted(counties.items()))
    return (f"ok: {len(config.sites)} sites, {links} links, {terminals} terminals; "
            f"urban {areas.get('urban', 0)}, rural {areas.get('rural', 0)}; by county: {by_county}")


def readiness_table(snap: Snapshot, limit: int | None = None) -> Table:
    """Return a rich table of sites, worst first."""
    table = Table(title=f"{snap.config.programme.name}: readiness", show_lines=False)
    for col in ("site", "name", "county", "area", "state", "reasons", "terminals"):
        table.add_column(col, overflow="fold")
    sites = sorted(snap.config.sites, key=lambda s: (ORDER[snap.sites[s.id].state] if s.id in snap.sites else 1,
                                                     s.county, s.id))
    for site in sites[:limit]:
        r = snap.sites.get(site.id)
        state = r.state if r else "unknown"
        table.add_row(site.id, site.name, site.county, site.area, f"[{STYLES[state]}]{state}[/]",
                      ", ".join(texts(r.reasons)) if r else "no data",
                      f"{r.terminals_up}/{len(r.terminals)}" if r else "-")
    return table


def print_table(snap: Snapshot) -> None:
    """Print the readiness table and the state counts."""
    console = Console(file=sys.stdout, width=160 if not sys.stdout.isatty() else None)
    console.print(readiness_table(snap))
    counts: Counter[str] = Counter(r.state for r in snap.sites.values())
    console.print(" · ".join(f"{s}: {counts.get(s, 0)}" for s in ORDER))
