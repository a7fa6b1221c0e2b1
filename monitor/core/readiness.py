"""Readiness: a pure function of (config, latest observations, now). No clock, no I/O.

Reasons are machine-readable strings whose *code* is the leading dotted word
(``primary.loss>1%`` has code ``primary.loss``; ``terminals 3/5`` has code ``terminals``), so
metrics can carry the bounded code and people can read the whole text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from monitor.core.model import Link, MediumPolicy, Policy, Site
from probes.base import Observation

SiteState = Literal["ready", "degraded", "not_ready", "unknown"]
LinkState = Literal["up", "impaired", "flapping", "down", "unknown"]
SITE_STATES: tuple[SiteState, ...] = ("ready", "degraded", "not_ready", "unknown")
LINK_STATES: tuple[LinkState, ...] = ("up", "impaired", "flapping", "down", "unknown")
_SEVERITY = {"ready": 0, "degraded": 1, "unknown": 2, "not_ready": 3}
_PRIMARY_EFFECT: dict[str, SiteState] = {"up": "ready", "impaired": "degraded", "flapping": "degraded",
                                         "down": "not_ready", "unknown": "unknown"}
# A missing backup does not stop the vote today; it is a requirement the site still owes.
_BACKUP_EFFECT: dict[str, SiteState] = {"up": "ready", "impaired": "degraded", "flapping": "degraded",
                                        "down": "degraded", "unknown": "unknown"}
_CODE_RE = re.compile(r"^[a-z_]+(?:\.[a-z_]+)*")


def reason_code(reason: str) -> str:
    """Return the bounded code of a reason (``primary.loss>1%`` -> ``primary.loss``)."""
    m = _CODE_RE.match(reason)
    return m.group(0) if m else "other"


@dataclass(frozen=True, slots=True)
class LinkHealth:
    role: str
    medium: str
    address: str
    state: LinkState
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    values: Mapping[str, float] = field(default_factory=dict)  # icmp values, then snmp values
    observed_at: float | None = None


@dataclass(frozen=True, slots=True)
class TerminalHealth:
    id: str
    address: str
    port: int | None
    state: Literal["up", "down", "unknown"]
    reason: str = ""
    values: Mapping[str, float] = field(default_factory=dict)
    observed_at: float | None = None


@dataclass(frozen=True, slots=True)
class SiteReadiness:
    site: str
    state: SiteState
    reasons: tuple[str, ...]
    since: float
    links: tuple[LinkHealth, ...] = ()
    terminals: tuple[TerminalHealth, ...] = ()
    warnings: tuple[str, ...] = ()
    neighbours: Observation | None = None
    # Readiness over time (monitor/timeline.py): filled after the instantaneous verdict.
    first_ready_at: float | None = None
    ever_ready: bool = False
    regressions: int = 0
    maintenance: str = ""
    waivers: tuple[str, ...] = ()

    @property
    def terminals_up(self) -> int:
        return sum(t.state == "up" for t in self.terminals)

    def link(self, role: str) -> LinkHealth | None:
        """Return the health of the link with ``role``."""
        return next((h for h in self.links if h.role == role), None)


@dataclass(frozen=True, slots=True)
class Freshness:
    """How old an observation of each probe kind may be before it counts as stale."""

    max_age_seconds: Mapping[str, float]

    def fresh(self, obs: Observation | None, now: float) -> bool:
        """Return whether ``obs`` exists and is recent enough."""
        if obs is None:
            return False
        return now - obs.at <= self.max_age_seconds.get(obs.kind, 180.0)


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.3g}%"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3g}ms"


def link_health(link: Link, icmp: Observation | None, snmp: Observation | None, policy: MediumPolicy,
                fresh: Freshness, now: float) -> LinkHealth:
    """Judge one link from its ICMP and (optional) SNMP observations."""
    role = link.role
    reasons: list[str] = []
    warnings: list[str] = []
    values: dict[str, float] = {}
    state: LinkState = "up"
    if not fresh.fresh(icmp, now):
        state = "unknown"
        reasons.append(f"{role}.stale" if icmp else f"{role}.no_data")
    else:
        assert icmp is not None
        values.update(icmp.values)
        if not icmp.ok:
            state = "down"
            reasons.append(f"{role}.down")
        else:
            checks = (
                ("loss_ratio", policy.loss_max_ratio, "loss", _pct),
                ("rtt_avg_seconds", policy.rtt_max_seconds, "rtt", _ms),
                ("jitter_seconds", policy.jitter_max_seconds, "jitter", _ms),
            )
            for name, limit, word, fmt in checks:
                value = icmp.values.get(name)
                if value is not None and value > limit:
                    state = "impaired"
                    reasons.append(f"{role}.{word}>{fmt(limit)}")
    if link.snmp is not None:
        if not fresh.fresh(snmp, now) or snmp is None or not snmp.ok:
            warnings.append(f"{role}.snmp_unavailable")
        else:
            values.update(snmp.values)
            state = _snmp_verdict(role, snmp.values, policy, state, reasons, warnings,
                                  snmp.details.get("optics", ()))
    observed = icmp.at if icmp else None
    return LinkHealth(role, link.medium, link.address, state, tuple(reasons), tuple(warnings), values, observed)


def _snmp_verdict(role: str, v: Mapping[str, float], policy: MediumPolicy, state: LinkState,
                  reasons: list[str], warnings: list[str], optics: Sequence[str] = ()) -> LinkState:
    # The device's own word beats ICMP: the address may still answer over another path (RFC 2863 ifOperStatus).
    if v.get("admin_up") == 0:
        reasons.append(f"{role}.admin_down")
        return "down"
    if v.get("oper_up") == 0:
        reasons.append(f"{role}.oper_down")
        return "down"
    if policy.rx_power_min_dbm is not None or policy.rx_power_warn_dbm is not None:  # a medium that carries light
        # Why the probe has no receive/transmit power ("optics.no_sensor rx"): the light check cannot run.
        warnings += [f"{role}.{w}" for w in optics]
    if state in ("down", "unknown"):
        return state
    rx = v.get("rx_power_dbm")
    if rx is not None and policy.rx_power_min_dbm is not None and rx < policy.rx_power_min_dbm:
        state = "impaired"
        reasons.append(f"{role}.rx_power<{policy.rx_power_min_dbm:g}dBm")
    elif rx is not None and policy.rx_power_warn_dbm is not None and rx < policy.rx_power_warn_dbm:
        warnings.append(f"{role}.rx_power_warning<{policy.rx_power_warn_dbm:g}dBm")
    errors = v.get("in_errors_per_second", 0.0) + v.get("out_errors_per_second", 0.0)
    if errors > policy.errors_max_per_second:
        state = "impaired"
        reasons.append(f"{role}.errors>{policy.errors_max_per_second:g}/s")
    if v.get("rebooted") == 1:
        warnings.append(f"{role}.device_rebooted")
    return state


def terminal_health(site: Site, latest: Mapping[str, Observation], fresh: Freshness,
                    now: float) -> tuple[TerminalHealth, ...]:
    """Judge every terminal of ``site`` from its TCP (or ICMP) observation."""
    out = []
    for t in site.terminals:
        obs = latest.get(f"{site.id}/terminal/{t.id}")
        if not fresh.fresh(obs, now):
            out.append(TerminalHealth(t.id, t.address, t.port, "unknown", "stale" if obs else "no_data"))
            continue
        assert obs is not None
        out.append(TerminalHealth(t.id, t.address, t.port, "up" if obs.ok else "down",
                                  "" if obs.ok else (obs.failure or "down"), obs.values, obs.at))
    return tuple(out)


def _site_verdict(site: Site, links: tuple[LinkHealth, ...], terminals: tuple[TerminalHealth, ...],
                  policy: Policy) -> tuple[SiteState, list[str]]:
    reasons: list[str] = []
    state: SiteState = "ready"

    def worse(candidate: SiteState) -> None:
        nonlocal state
        if _SEVERITY[candidate] > _SEVERITY[state]:
            state = candidate

    by_role = {h.role: h for h in links}
    primary, backup = by_role.get("primary"), by_role.get("backup")
    if primary is None:
        worse("not_ready")
        reasons.append("primary.missing")
    else:
        reasons += primary.reasons
        worse(_PRIMARY_EFFECT[primary.state])
    if backup is None:
        if policy.require_backup:
            worse("degraded")
            reasons.append("backup.missing")
    else:
        reasons += backup.reasons
        worse(_BACKUP_EFFECT[backup.state])
    if primary is not None and primary.state == "down" and (backup is None or backup.state == "down"):
        reasons.insert(0, "isolated")
    if terminals:
        total = len(terminals)
        up = sum(t.state == "up" for t in terminals)
        unknown = sum(t.state == "unknown" for t in terminals)
        need = policy.terminals_min_ratio * total
        if up < need:
            if up + unknown >= need:
                worse("unknown")
                reasons.append(f"terminals.unknown {unknown}/{total}")
            else:
                worse("not_ready")
                reasons.append(f"terminals {up}/{total}")
    return state, reasons


def _order(sites: tuple[Site, ...]) -> list[Site]:
    """Return sites with every upstream before the sites behind it (config forbids cycles)."""
    by_id = {s.id: s for s in sites}
    done: set[str] = set()
    out: list[Site] = []
    for site in sites:
        chain = []
        node: Site | None = site
        while node is not None and node.id not in done and node not in chain:
            chain.append(node)
            node = by_id.get(node.upstream) if node.upstream else None
        for s in reversed(chain):
            done.add(s.id)
            out.append(s)
    return out


def upstream_down(result: SiteReadiness | None) -> bool:
    """Return whether a node blocks the sites behind it: isolated, or itself blocked."""
    if result is None:
        return False
    return "isolated" in result.reasons or any(r.startswith("upstream ") for r in result.reasons)


class Damper(Protocol):
    """Flap damping: maps a link's raw state to (state, flapping); see monitor/history.py."""

    def update(self, entity: str, state: str, now: float) -> tuple[str, bool]: ...


def _damped(h: LinkHealth, site_id: str, damper: Damper | None, now: float) -> LinkHealth:
    if damper is None:
        return h
    _, flapping = damper.update(f"{site_id}/{h.role}", h.state, now)
    if not flapping:
        return h
    # One stable "flapping" verdict instead of a transition per flap.
    return replace(h, state="flapping", reasons=(f"{h.role}.flapping",))


def evaluate(sites: tuple[Site, ...], policy: Policy, latest: Mapping[str, Observation], now: float,
             fresh: Freshness, previous: Mapping[str, SiteReadiness] | None = None,
             damper: Damper | None = None) -> dict[str, SiteReadiness]:
    """Return the readiness of every site, upstream nodes first, in one consistent pass."""
    previous = previous or {}
    out: dict[str, SiteReadiness] = {}
    for site in _order(sites):
        links = tuple(
            _damped(link_health(link, latest.get(f"{site.id}/{link.role}"),
                                latest.get(f"{site.id}/{link.role}/snmp"), policy.media[link.medium], fresh, now),
                    site.id, damper, now)
            for link in site.links
        )
        terminals = terminal_health(site, latest, fresh, now)
        state, reasons = _site_verdict(site, links, terminals, policy)
        if state in ("not_ready", "unknown") and site.upstream and upstream_down(out.get(site.upstream)):
            # Behind a dead node we cannot see, so we do not know: unknown, not not_ready.
            state, reasons = "unknown", [f"upstream {site.upstream} down"]
        prev = previous.get(site.id)
        since = prev.since if prev is not None and prev.state == state else now
        warnings = tuple(w for h in links for w in h.warnings)
        out[site.id] = SiteReadiness(site.id, state, tuple(reasons), since, links, terminals, warnings,
                                     latest.get(f"{site.id}/neighbours"))
    return out
