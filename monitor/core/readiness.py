"""Readiness: a pure function of (config, latest observations, now). No clock, no I/O.

Reasons are typed values (monitor.core.reasons): a bounded code for metrics, and a text form people read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Literal, NamedTuple

from monitor.core.history import Flap, FlapDamper, Flaps
from monitor.core.model import Link, MediumPolicy, Policy, Site
from monitor.core.reasons import (
    CERT_BEFORE_DEADLINE,
    CERT_EXPIRING,
    ISOLATED,
    LINK_EFFECT,
    ROLES,
    TERMINALS,
    TERMINALS_UNKNOWN,
    UPSTREAM,
    LinkState,
    Reason,
    SiteState,
    worse,
)
from probes.base import Observation


@dataclass(frozen=True, slots=True)
class LinkHealth:
    role: str
    medium: str
    address: str
    state: LinkState
    reasons: tuple[Reason, ...] = ()
    warnings: tuple[Reason, ...] = ()
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
    reasons: tuple[Reason, ...]
    since: float
    links: tuple[LinkHealth, ...] = ()
    terminals: tuple[TerminalHealth, ...] = ()
    warnings: tuple[Reason, ...] = ()
    neighbours: Observation | None = None
    # Readiness over time (monitor/timeline.py): filled after the instantaneous verdict.
    first_ready_at: float | None = None
    ever_ready: bool = False
    regressions: int = 0
    maintenance: str = ""  # the open window's reason
    waivers: tuple[Reason, ...] = ()  # the waived notes among the reasons

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
    reasons: tuple[Reason, ...] = ()
    warnings: tuple[Reason, ...] = ()
    values: dict[str, float] = {}
    state: LinkState = "up"
    if not fresh.fresh(icmp, now):
        state = "unknown"
        reasons = (Reason(f"{role}.stale" if icmp else f"{role}.no_data"),)
    else:
        assert icmp is not None
        values.update(icmp.values)
        if not icmp.ok:
            state = "down"
            reasons = (Reason(f"{role}.down"),)
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
                    reasons += (Reason(f"{role}.{word}", f">{fmt(limit)}"),)
    if link.snmp is not None:
        if not fresh.fresh(snmp, now) or snmp is None or not snmp.ok:
            warnings += (Reason(f"{role}.snmp_unavailable"),)
        else:
            values.update(snmp.values)
            state, more, notes = _snmp_verdict(role, snmp.values, policy, state)
            reasons, warnings = reasons + more, warnings + notes
    observed = icmp.at if icmp else None
    return LinkHealth(role, link.medium, link.address, state, reasons, warnings, values, observed)


def _snmp_verdict(role: str, v: Mapping[str, float], policy: MediumPolicy,
                  state: LinkState) -> tuple[LinkState, tuple[Reason, ...], tuple[Reason, ...]]:
    """Return the link's state after the device's own view, with the reasons and warnings it adds."""
    # The device's own word beats ICMP: the address may still answer over another path (RFC 2863 ifOperStatus).
    if v.get("admin_up") == 0:
        return "down", (Reason(f"{role}.admin_down"),), ()
    if v.get("oper_up") == 0:
        return "down", (Reason(f"{role}.oper_down"),), ()
    if state in ("down", "unknown"):
        return state, (), ()
    reasons: tuple[Reason, ...] = ()
    warnings: tuple[Reason, ...] = ()
    rx = v.get("rx_power_dbm")
    if rx is not None and policy.rx_power_min_dbm is not None and rx < policy.rx_power_min_dbm:
        state = "impaired"
        reasons += (Reason(f"{role}.rx_power", f"<{policy.rx_power_min_dbm:g}dBm"),)
    elif rx is not None and policy.rx_power_warn_dbm is not None and rx < policy.rx_power_warn_dbm:
        warnings += (Reason(f"{role}.rx_power_warning", f"<{policy.rx_power_warn_dbm:g}dBm"),)
    errors = v.get("in_errors_per_second", 0.0) + v.get("out_errors_per_second", 0.0)
    if errors > policy.errors_max_per_second:
        state = "impaired"
        reasons += (Reason(f"{role}.errors", f">{policy.errors_max_per_second:g}/s"),)
    if v.get("rebooted") == 1:
        warnings += (Reason(f"{role}.device_rebooted"),)
    return state, reasons, warnings


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


def certificate_notes(terminals: tuple[TerminalHealth, ...], policy: Policy, now: float,
                      deadline: float | None) -> tuple[tuple[Reason, ...], tuple[Reason, ...]]:
    """Return (reasons, warnings) about the terminals' certificates (HTTPS checks report ``not_after``).

    A certificate that expires within ``policy.certificate_margin_days`` from now (or has expired) is a
    degraded reason; one that expires before the deadline plus that margin, a warning.
    """
    margin = policy.certificate_margin_days * 86400.0
    reasons: list[Reason] = []
    warnings: list[Reason] = []
    for t in terminals:
        not_after = t.values.get("tls_not_after_timestamp_seconds")
        if not_after is None or t.state == "unknown":
            continue
        date = datetime.fromtimestamp(not_after, UTC).date().isoformat()
        if not_after - now < margin:
            reasons.append(Reason(CERT_EXPIRING, date, t.id))
        elif deadline is not None and not_after < deadline + margin:
            warnings.append(Reason(CERT_BEFORE_DEADLINE, date, t.id))
    return tuple(reasons), tuple(warnings)


def _site_verdict(links: tuple[LinkHealth, ...], terminals: tuple[TerminalHealth, ...],
                  policy: Policy) -> tuple[SiteState, tuple[Reason, ...]]:
    """Return the site's state and reasons: each link's state weighed by its role, then the terminals."""
    state: SiteState = "ready"
    reasons: list[Reason] = []
    by_role = {h.role: h for h in links}
    for role in ROLES:  # primary first: its reasons come first
        h = by_role.get(role)
        if h is not None:
            reasons += h.reasons
            state = worse(state, LINK_EFFECT[role][h.state])
        elif role == "primary" or policy.require_backup:
            missing = Reason(f"{role}.missing")
            reasons.append(missing)
            state = worse(state, missing.state)
    primary, backup = by_role.get("primary"), by_role.get("backup")
    if primary is not None and primary.state == "down" and (backup is None or backup.state == "down"):
        reasons.insert(0, Reason(ISOLATED))  # implies not_ready, as the primary being down already does
    if terminals:
        total = len(terminals)
        up = sum(t.state == "up" for t in terminals)
        unknown = sum(t.state == "unknown" for t in terminals)
        need = policy.terminals_min_ratio * total
        if up < need:
            short = (Reason(TERMINALS_UNKNOWN, f"{unknown}/{total}") if up + unknown >= need
                     else Reason(TERMINALS, f"{up}/{total}"))
            reasons.append(short)
            state = worse(state, short.state)
    return state, tuple(reasons)


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
    return any(r.code in (ISOLATED, UPSTREAM) for r in result.reasons)


class Evaluation(NamedTuple):
    """What `evaluate` returns: the verdicts, and the flap memory to pass to the next evaluation."""

    sites: dict[str, SiteReadiness]
    flaps: Flaps


def _damped(h: LinkHealth, flap: Flap) -> LinkHealth:
    if not flap.flapping:
        return h
    # One stable "flapping" verdict instead of a transition per flap.
    return replace(h, state="flapping", reasons=(Reason(f"{h.role}.flapping"),))


def evaluate(sites: tuple[Site, ...], policy: Policy, latest: Mapping[str, Observation], now: float,
             fresh: Freshness, previous: Mapping[str, SiteReadiness] | None = None,
             flaps: Flaps | None = None, deadline: float | None = None) -> Evaluation:
    """Return the readiness of every site, upstream nodes first, in one consistent pass.

    Its memory comes in as values and goes out as values; nothing is changed in place. ``previous``
    are the verdicts last published (a state that holds keeps its ``since``); ``flaps`` is the flap
    memory the last evaluation returned (None: nothing seen yet). Links of sites not in ``sites``
    keep their flap memory unchanged. ``deadline`` (Unix seconds) is the programme's: certificates that
    expire before it (plus the policy's margin) are warnings.
    """
    previous = previous or {}
    damper = FlapDamper(policy.flap_max_changes, policy.flap_window_seconds, policy.flap_hold_seconds)
    before: Flaps = flaps or {}
    after = dict(before)
    out: dict[str, SiteReadiness] = {}
    for site in _order(sites):
        links = []
        for link in site.links:
            h = link_health(link, latest.get(f"{site.id}/{link.role}"), latest.get(f"{site.id}/{link.role}/snmp"),
                            policy.media[link.medium], fresh, now)
            key = f"{site.id}/{link.role}"
            after[key] = damper.step(before.get(key), h.state, now)
            links.append(_damped(h, after[key]))
        terminals = terminal_health(site, latest, fresh, now)
        state, reasons = _site_verdict(tuple(links), terminals, policy)
        expiring, certificates = certificate_notes(terminals, policy, now, deadline)
        if expiring:
            state, reasons = worse(state, "degraded"), reasons + expiring
        if state in ("not_ready", "unknown") and site.upstream and upstream_down(out.get(site.upstream)):
            # Behind a dead node we cannot see, so we do not know: unknown, not not_ready.
            blocked = Reason(UPSTREAM, subject=site.upstream)
            state, reasons = blocked.state, (blocked,)
        prev = previous.get(site.id)
        since = prev.since if prev is not None and prev.state == state else now
        warnings = tuple(w for h in links for w in h.warnings) + certificates
        out[site.id] = SiteReadiness(site.id, state, reasons, since, tuple(links), terminals, warnings,
                                     latest.get(f"{site.id}/neighbours"))
    return Evaluation(out, MappingProxyType(after))
