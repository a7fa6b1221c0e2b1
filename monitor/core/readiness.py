"""Readiness: a pure function of (config, latest observations, now). No clock, no I/O.

Reasons are typed values (monitor.core.reasons): a bounded code for metrics, and a text form people read.

A site is ``not_ready`` only for a failure that is really its own; what the monitor cannot see is
``unknown``:

* a target the cycle never reached (``not_probed``) or that our own stack could not send to (the probe
  failures in ``probes.base.LOCAL_FAILURES``) is unknown, never down;
* the monitor is *blind* when a witness (``witnesses:`` in the config, probed by ICMP as
  ``monitor/witness/LABEL``) does not answer, or when most fresh observations of one probe kind are
  local failures: every site that is not ready is then ``unknown`` with ``monitor.blind``;
* a site's failure is attributed to it only when every node it depends on (its upstream chain, and the
  monitor itself through the witnesses) was seen healthy at or after the failing observation (compare the
  observations' ``at``), and had been seen healthy since its last failure already before it (a failure
  measured while the node was down and judged once it is back is no evidence against the site); until
  then it is ``unknown`` with ``upstream X unconfirmed``, so the order in which probe kinds finish cannot
  blame a site for its upstream's fault. Only silence needs that
  confirmation: an answer from the site itself (a refused connect, its device's own oper/admin status)
  proves the path when it was made.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Literal, NamedTuple

from monitor.core.history import Flap, FlapDamper, Flaps
from monitor.core.model import Link, MediumPolicy, Policy, Site
from monitor.core.reasons import (
    BLIND,
    CERT_BEFORE_DEADLINE,
    CERT_EXPIRING,
    ISOLATED,
    LINK_EFFECT,
    NOT_PROBED,
    ROLES,
    TERMINALS,
    TERMINALS_UNKNOWN,
    UNCONFIRMED,
    UPSTREAM,
    LinkState,
    Reason,
    SiteState,
    worse,
)
from probes.base import EMPTY, LOCAL_FAILURES, Observation, empty

WITNESS_SITE = "monitor"  # the Target.site of the witnesses: sites without an upstream hang off the monitor
WITNESS_PREFIX = f"{WITNESS_SITE}/witness/"
# Failures that mean the monitor did not look: the cycle never reached the target, or our own stack
# refused to send (no route from here, a source we cannot bind). Never the site's fault.
NOT_SEEN = frozenset({"skipped", "not_probed"}) | LOCAL_FAILURES


def witness_key(label: str) -> str:
    """Return the observation key of the witness ``label``."""
    return WITNESS_PREFIX + label


def not_seen(obs: Observation) -> bool:
    """Return whether ``obs`` failed because the monitor did not look (not the target's fault)."""
    return not obs.ok and obs.failure in NOT_SEEN


@dataclass(frozen=True, slots=True)
class LinkHealth:
    role: str
    medium: str
    address: str
    state: LinkState
    reasons: tuple[Reason, ...] = ()
    warnings: tuple[Reason, ...] = ()
    values: Mapping[str, float] = field(default_factory=empty)  # icmp values, then snmp values
    observed_at: float | None = None
    failure: str = ""  # the ICMP failure word (probes.base.FAILURES) when the echoes failed
    failed_at: float | None = None  # ICMP silent: when that observation was made (None: not silent)


@dataclass(frozen=True, slots=True)
class TerminalHealth:
    id: str
    address: str
    port: int | None
    state: Literal["up", "down", "unknown"]
    reason: str = ""
    values: Mapping[str, float] = field(default_factory=empty)
    observed_at: float | None = None
    failure: str = ""  # the probe's failure word (probes.base.FAILURES) when it failed


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
    """How old an observation of each probe kind may be before it counts as stale.

    ``monotonic`` is the caller's ``time.monotonic()`` now (core reads no clock): observations stamped
    with ``mono`` are judged on it, so a wall-clock step changes no verdict. Without it, or for an
    observation without ``mono`` (built by hand, or read back), the wall clock ``now`` is used. An
    observation from the future is not fresh.
    """

    max_age_seconds: Mapping[str, float]
    monotonic: float | None = None

    def at_monotonic(self, monotonic: float) -> Freshness:
        """Return this freshness judging on the monotonic now ``monotonic``."""
        return replace(self, monotonic=monotonic)

    def fresh(self, obs: Observation | None, now: float) -> bool:
        """Return whether ``obs`` exists, is not from the future and is recent enough."""
        if obs is None:
            return False
        by_mono = self.monotonic is not None and obs.mono is not None
        age = self.monotonic - obs.mono if by_mono else now - obs.at  # type: ignore[operator]
        return 0.0 <= age <= self.max_age_seconds.get(obs.kind, 180.0)


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
    values: Mapping[str, float] = EMPTY  # the ICMP observation's own; merged with SNMP's only when both are
    state: LinkState = "up"
    failed_at: float | None = None
    if not fresh.fresh(icmp, now):
        state = "unknown"
        reasons = (Reason(f"{role}.stale" if icmp else f"{role}.no_data"),)
    else:
        assert icmp is not None
        values = icmp.values
        if not_seen(icmp):  # the monitor did not look: nothing is known of the link
            state = "unknown"
            reasons = (Reason(f"{role}.not_probed"),)
        elif not icmp.ok:
            state, failed_at = "down", icmp.at
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
    if icmp is not None and state != "unknown" and "path_not_proven" in icmp.details:
        # The echoes left through the primary's interface: whatever came back says nothing of this path.
        state, reasons = "impaired", (Reason(f"{role}.path_not_proven"),)
    if link.snmp is not None:
        if not fresh.fresh(snmp, now) or snmp is None or not snmp.ok:
            warnings += (Reason(f"{role}.snmp_unavailable"),)
        else:
            values = {**values, **snmp.values}
            state, more, notes = _snmp_verdict(role, snmp.values, policy, state,
                                                 snmp.details.get("optics", ()))
            reasons, warnings = reasons + more, warnings + notes
    observed = icmp.at if icmp else None
    failure = (icmp.failure or "error") if icmp is not None and not icmp.ok and fresh.fresh(icmp, now) else ""
    return LinkHealth(role, link.medium, link.address, state, reasons, warnings, values, observed, failure=failure,
                      failed_at=failed_at)


def _snmp_verdict(role: str, v: Mapping[str, float], policy: MediumPolicy,
                  state: LinkState, optics: Sequence[str] = ()
                  ) -> tuple[LinkState, tuple[Reason, ...], tuple[Reason, ...]]:
    """Return the link's state after the device's own view, with the reasons and warnings it adds."""
    # The device's own word beats ICMP: the address may still answer over another path (RFC 2863 ifOperStatus).
    if v.get("admin_up") == 0:
        return "down", (Reason(f"{role}.admin_down"),), ()
    if v.get("oper_up") == 0:
        return "down", (Reason(f"{role}.oper_down"),), ()
    # Why the probe has no receive/transmit power ("optics.no_sensor rx"), on a medium that carries light:
    # the light check cannot run.
    lit = policy.rx_power_min_dbm is not None or policy.rx_power_warn_dbm is not None
    optics_warnings = tuple(Reason.parse(f"{role}.{w}") for w in optics) if lit else ()
    if state in ("down", "unknown"):
        return state, (), optics_warnings
    reasons: tuple[Reason, ...] = ()
    warnings: tuple[Reason, ...] = optics_warnings
    rx = v.get("rx_power_dbm")
    if rx is not None and policy.rx_power_min_dbm is not None and rx < policy.rx_power_min_dbm:
        state = "impaired"
        reasons += (Reason(f"{role}.rx_power", f"<{policy.rx_power_min_dbm:g}dBm"),)
    elif rx is not None and policy.rx_power_warn_dbm is not None and rx < policy.rx_power_warn_dbm:
        warnings += (Reason(f"{role}.rx_power_warning", f"<{policy.rx_power_warn_dbm:g}dBm"),)
    rates = [v[k] for k in ("in_errors_per_second", "out_errors_per_second") if k in v]
    if not rates:  # a first poll has no rates: unknown, never read as zero errors
        warnings += (Reason(f"{role}.rates_unknown"),)
    errors = sum(rates)
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
        if not_seen(obs):  # never reached, or our own stack could not send: unknown, not down
            word = "not_probed" if obs.failure == "skipped" else obs.failure
            out.append(TerminalHealth(t.id, t.address, t.port, "unknown", word, obs.values, obs.at))
            continue
        out.append(TerminalHealth(t.id, t.address, t.port, "up" if obs.ok else "down",
                                  "" if obs.ok else (obs.failure or "down"), obs.values, obs.at,
                                  "" if obs.ok else (obs.failure or "error")))
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
        unprobed = sum(t.state == "unknown" and t.reason in NOT_SEEN for t in terminals)
        need = policy.terminals_min_ratio * total
        if up < need:
            if up + unknown < need:
                short = Reason(TERMINALS, f"{up}/{total}")
            elif unprobed == unknown:  # the only doubt is what the cycle never reached
                short = Reason(NOT_PROBED, f"{unprobed}/{total}")
            else:
                short = Reason(TERMINALS_UNKNOWN, f"{unknown}/{total}")
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


@dataclass(frozen=True, slots=True)
class MonitorView:
    """Whether the monitor can trust its own view, and since when it was last seen healthy."""

    blind: bool = False
    reason: str = ""  # why it is blind, for people (the log, the API); "" when it sees
    witnesses: Mapping[str, bool | None] = field(default_factory=dict)  # label -> answered (None: no fresh data)
    # The latest time every witness was seen answering: a failure observed after it cannot yet be told from
    # the monitor's own. +inf without witnesses (nothing to confirm against), -inf when one never answered.
    seen_at: float = math.inf


def monitor_view(latest: Mapping[str, Observation], witnesses: Sequence[str], fresh: Freshness,
                 now: float) -> MonitorView:
    """Judge the monitor's own view: its witnesses, and whether most targets fail on its own side."""
    answered: dict[str, bool | None] = {}
    why: list[str] = []
    seen_at = math.inf
    for label in witnesses:
        o = latest.get(witness_key(label))
        if not fresh.fresh(o, now):
            answered[label], seen_at = None, -math.inf
            continue
        assert o is not None
        answered[label] = o.ok
        if o.ok:
            seen_at = min(seen_at, o.at)
        else:
            seen_at = -math.inf
            why.append(f"witness {label} does not answer ({o.failure or 'down'})")
    counts: dict[str, list[int]] = {}  # kind -> [local failures, fresh observations]
    for o in latest.values():
        if fresh.fresh(o, now):
            c = counts.setdefault(o.kind, [0, 0])
            c[1] += 1
            if not o.ok and o.failure in LOCAL_FAILURES:
                c[0] += 1
    for kind, (local, total) in sorted(counts.items()):
        if local * 2 > total:
            why.append(f"{local} of {total} {kind} targets fail on the monitor's own side")
    return MonitorView(bool(why), "; ".join(why), answered, seen_at)


# Node (or "monitor") -> when its current healthy streak began (None: not healthy now). Memory, like Flaps.
HealthySince = Mapping[str, float | None]


class Evaluation(NamedTuple):
    """What `evaluate` returns: the verdicts, the flap memory and the nodes' healthy streaks to pass to the
    next evaluation, and the monitor's view of itself."""

    sites: dict[str, SiteReadiness]
    flaps: Flaps
    monitor: MonitorView = MonitorView()
    healthy_since: HealthySince = MappingProxyType({})


def _streak(before: HealthySince, key: str, seen_at: float) -> float | None:
    """Return when the healthy streak of ``key`` began, now that it was last seen healthy at ``seen_at``."""
    if seen_at == -math.inf:
        return None  # not healthy now
    if key not in before:
        return -math.inf  # nothing remembered (the first evaluation): healthy as far as we know
    since = before[key]
    return seen_at if since is None else since


def _flap_state(state: LinkState) -> str:
    """Return what flap damping counts: whether the link is there (a lossy cycle is), or unknown."""
    return {"up": "up", "impaired": "up", "down": "down"}.get(state, "unknown")


def _damped(h: LinkHealth, flap: Flap) -> LinkHealth:
    if h.state in ("down", "unknown") or flap.output[0] != "flapping":
        return h  # down beats flapping; what the monitor did not see is unknown
    # One stable "flapping" verdict instead of a transition per flap.
    return replace(h, state="flapping", reasons=(Reason(f"{h.role}.flapping"),))


def _failed_at(links: Sequence[LinkHealth], terminals: Sequence[TerminalHealth]) -> float | None:
    """Return when the latest silent failure of the site was observed (None: none).

    Silence (echoes lost, a connect that timed out or was reported unreachable) may be the upstream's
    fault. An answer from the site itself proves the path at that moment and needs no confirmation: a
    refused connect (the terminal's host sent the reset), the device's own oper/admin status over SNMP.
    """
    times = [h.failed_at for h in links if h.state == "down" and h.failed_at is not None]
    times += [t.observed_at for t in terminals
              if t.state == "down" and t.reason != "refused" and t.observed_at is not None]
    return max(times, default=None)


def _seen_healthy(site: Site, latest: Mapping[str, Observation], fresh: Freshness, now: float) -> float | None:
    """Return when a node was last seen answering on any link (-inf: not lately), None if it has no links."""
    if not site.links:
        return None  # nothing to see it by: the chain is judged by the nodes around it
    times = [o.at for link in site.links if (o := latest.get(f"{site.id}/{link.role}")) is not None
             and o.ok and fresh.fresh(o, now)]
    return max(times, default=-math.inf)


def _unconfirmed_by(site: Site, failed_at: float, by_id: Mapping[str, Site], seen: Mapping[str, float | None],
                    since: HealthySince, view: MonitorView) -> str:
    """Return the first node up the chain (``monitor`` at the top) not seen healthy around ``failed_at``:
    seen healthy at or after it, in a healthy streak that had begun by then."""

    def doubtful(key: str, at: float) -> bool:
        start = since.get(key, -math.inf)
        return at < failed_at or start is None or start > failed_at

    node, walked = site.upstream, set()
    while node and node not in walked and node in by_id:
        walked.add(node)
        at = seen.get(node)
        if at is not None and doubtful(node, at):
            return node
        node = by_id[node].upstream
    if view.seen_at != math.inf and doubtful(WITNESS_SITE, view.seen_at):
        return WITNESS_SITE
    return ""


def evaluate(sites: tuple[Site, ...], policy: Policy, latest: Mapping[str, Observation], now: float,
             fresh: Freshness, previous: Mapping[str, SiteReadiness] | None = None,
             flaps: Flaps | None = None, witnesses: Sequence[str] = (),
             healthy_since: HealthySince | None = None, deadline: float | None = None) -> Evaluation:
    """Return the readiness of every site, upstream nodes first, in one consistent pass.

    Its memory comes in as values and goes out as values; nothing is changed in place. ``previous``
    are the verdicts last published (a state that holds keeps its ``since``); ``flaps`` is the flap
    memory the last evaluation returned (None: nothing seen yet). Links of sites not in ``sites``
    keep their flap memory unchanged. ``witnesses`` are the labels of the config's witnesses;
    ``healthy_since`` is the streak memory the last evaluation returned (None: nothing remembered).
    ``deadline`` (Unix seconds) is the programme's: certificates that
    expire before it (plus the policy's margin) are warnings.
    """
    previous = previous or {}
    damper = FlapDamper(policy.flap_max_changes, policy.flap_window_seconds, policy.flap_hold_seconds)
    before: Flaps = flaps or {}
    after = dict(before)
    view = monitor_view(latest, witnesses, fresh, now)
    by_id = {s.id: s for s in sites}
    seen: dict[str, float | None] = {}
    streaks_before: HealthySince = healthy_since or {}
    streaks = dict(streaks_before)
    if view.seen_at != math.inf:
        streaks[WITNESS_SITE] = _streak(streaks_before, WITNESS_SITE, view.seen_at)
    out: dict[str, SiteReadiness] = {}
    for site in _order(sites):
        seen[site.id] = at = _seen_healthy(site, latest, fresh, now)
        if at is not None:
            streaks[site.id] = _streak(streaks_before, site.id, at)
        links = []
        for link in site.links:
            h = link_health(link, latest.get(f"{site.id}/{link.role}"), latest.get(f"{site.id}/{link.role}/snmp"),
                            policy.media[link.medium], fresh, now)
            key = sys.intern(f"{site.id}/{link.role}")  # one copy for the flap memory, the proven set, the targets
            after[key] = damper.step(before.get(key), _flap_state(h.state), now)
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
        elif state == "not_ready" and (failed_at := _failed_at(links, terminals)) is not None:
            # Whatever order the probe kinds finished in: the site's own only once its chain was seen since.
            who = _unconfirmed_by(site, failed_at, by_id, seen, streaks, view)
            if who:
                unconfirmed = Reason(UNCONFIRMED, subject=who)
                state, reasons = unconfirmed.state, (unconfirmed,)
        if view.blind and state != "ready":
            state, reasons = "unknown", (Reason(BLIND),)
        prev = previous.get(site.id)
        since = prev.since if prev is not None and prev.state == state else now
        warnings = tuple(w for h in links for w in h.warnings) + certificates
        out[site.id] = SiteReadiness(site.id, state, reasons, since, tuple(links), terminals, warnings,
                                     latest.get(f"{site.id}/neighbours"))
    return Evaluation(out, MappingProxyType(after), view, MappingProxyType(streaks))
