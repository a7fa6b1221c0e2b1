"""Terminal output: the one-line config summary and the readiness table."""

from __future__ import annotations

import sys
from collections import Counter

from rich.console import Console
from rich.table import Table

from monitor.config.loader import Config
from monitor.core.figures import Figures, site_terminals
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
                      site_terminals(site, r).text())
    return table


def figures_lines(fig: Figures) -> list[str]:
    """Return the figures as text lines: polling places and their ready share, terminals, network nodes apart."""
    p, t, n = fig.province, fig.province, fig.nodes
    lines = [f"polling places ready: {p.ready}/{p.total} ({p.share_text()}) · "
             + " · ".join(f"{s}: {p.states[s]}" for s in ORDER)]
    if t.terminals_total:
        lines.append(f"terminals up: {t.terminals_up}/{t.terminals_total} ({t.terminals_unknown} unknown)")
    if n.total:
        lines.append(f"network nodes (not in the ready share): {n.total} · "
                     + " · ".join(f"{s}: {n.states[s]}" for s in ORDER))
    return lines


def print_table(snap: Snapshot) -> None:
    """Print the readiness table and the figures."""
    console = Console(file=sys.stdout, width=160 if not sys.stdout.isatty() else None)
    console.print(readiness_table(snap))
    for line in figures_lines(snap.figures()):
        console.print(line, highlight=False)
