"""Reason codes: the one place that says which codes exist, which state each implies, and how each reads.

Inside the program a reason is a typed value, ``Reason(code, detail, subject)``; it becomes text only at
the edges (the JSON API, metrics labels, reports, the event store, the command line). Metrics carry
only the bounded ``code``; people read the whole text. The text forms never change, because the event
store, alert rules and dashboards hold them:

* ``primary.down``, ``primary.loss>1%``, ``backup.stale``, ``backup.missing``: link codes
  ``<role>.<name>``; each stands for a state of the link (`LINK_CODES`: a missing link counts as down),
  and what that state makes of the site depends on the role (`LINK_EFFECT`);
* ``isolated``, ``terminals 3/5``: not_ready; ``terminals.unknown 1/2``, ``upstream AGG-2 down``
  (subject: the node), ``upstream AGG-2 unconfirmed`` (a failure not yet attributable to the site: the
  node, or ``monitor`` itself, was not seen healthy since), ``not_probed 28/40`` (terminals the cycle
  never reached), ``monitor.blind`` (the monitor cannot trust its own view), ``no_data``: unknown;
  ``sustaining (5h of 24h)``: degraded;
* ``maintenance: fiber splice``, ``waived backup until 2026-06-01 (by X)`` (subject: the requirement):
  informational, they imply no state.

Warnings (``primary.snmp_unavailable``, ``primary.rx_power_warning<-23dBm``, ``primary.device_rebooted``)
are link codes of the same type that imply no state; ``certificate.before_deadline T1 2026-06-10`` is a site
warning (subject: the terminal, detail: the certificate's notAfter), and ``certificate.expiring T1
2026-05-20`` the degraded reason it becomes inside the policy's margin.
`Reason.parse` reads any text back (the event store, old records): ``str(Reason.parse(t)) == t``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

SiteState = Literal["ready", "degraded", "not_ready", "unknown"]
LinkState = Literal["up", "impaired", "flapping", "down", "unknown"]
SITE_STATES: tuple[SiteState, ...] = ("ready", "degraded", "not_ready", "unknown")
LINK_STATES: tuple[LinkState, ...] = ("up", "impaired", "flapping", "down", "unknown")
# The order of severity: a site is as bad as its worst reason.
SEVERITY: Mapping[SiteState, int] = {"ready": 0, "degraded": 1, "unknown": 2, "not_ready": 3}

ROLES = ("primary", "backup")
# What a link in each state makes of its site. A missing backup does not stop the vote today; it is a
# requirement the site still owes.
LINK_EFFECT: Mapping[str, Mapping[LinkState, SiteState]] = {
    "primary": {"up": "ready", "impaired": "degraded", "flapping": "degraded", "down": "not_ready",
                "unknown": "unknown"},
    "backup": {"up": "ready", "impaired": "degraded", "flapping": "degraded", "down": "degraded",
               "unknown": "unknown"},
}

# How a reason reads, by the shape of its code.
Form = Literal["bare", "limit", "count", "paren", "note", "upstream", "unconfirmed", "waiver", "verbatim"]
_FORMS: Mapping[Form, str] = {
    "bare": "{code}",  # isolated, primary.down
    "limit": "{code}{detail}",  # primary.loss>1%: the detail is the limit crossed
    "count": "{code} {detail}",  # terminals 3/5
    "paren": "{code} ({detail})",  # sustaining (5h of 24h)
    "note": "{code}: {detail}",  # maintenance: fiber splice
    "upstream": "{code} {subject} down",  # upstream AGG-2 down
    "unconfirmed": "upstream {subject} unconfirmed",  # upstream AGG-2 unconfirmed (code upstream.unconfirmed)
    "waiver": "{code} {subject} {detail}",  # waived backup until 2026-06-01 (by X)
    "verbatim": "{detail}",  # text this program does not know, kept as it was
}


@dataclass(frozen=True, slots=True)
class Code:
    """What one code means."""

    form: Form
    state: SiteState | None = None  # site codes: the state the reason implies (None: none)
    link: LinkState | None = None  # link codes: the state of the link; its role decides the site's
    informational: bool = False  # explains a state without being a fault of its own
    warning: bool = False  # a warning, never a reason: implies no state


# What the SNMP probe says when it has no optical power reading (probes/_snmp_entities.py), per direction.
OPTICS_WARNINGS = ("no_sensor", "sensor_unavailable", "unsupported_type", "no_light", "out_of_range")
OPTICS_DIRECTIONS = ("rx", "tx")

# Link codes: "<role>.<name>".
LINK_CODES: Mapping[str, Code] = {
    "down": Code("bare", link="down"),
    "admin_down": Code("bare", link="down"),
    "oper_down": Code("bare", link="down"),
    "missing": Code("bare", link="down"),  # no such link: as good as down
    "not_probed": Code("bare", link="unknown"),  # the cycle did not reach it, or our own stack could not send
    "stale": Code("bare", link="unknown"),
    "no_data": Code("bare", link="unknown"),
    "flapping": Code("bare", link="flapping"),
    "loss": Code("limit", link="impaired"),
    "rtt": Code("limit", link="impaired"),
    "jitter": Code("limit", link="impaired"),
    "rx_power": Code("limit", link="impaired"),
    "errors": Code("limit", link="impaired"),
    "path_not_proven": Code("bare", link="impaired"),  # a backup's echoes left through the primary's interface
    "snmp_unavailable": Code("bare", warning=True),
    "rx_power_warning": Code("limit", warning=True),
    "device_rebooted": Code("bare", warning=True),
    "rates_unknown": Code("bare", warning=True),  # one SNMP poll so far: no traffic or error rates to judge
    # Why a link that carries light has no optical reading, per direction ("primary.optics.no_light rx").
    **{f"optics.{why}": Code("count", warning=True) for why in OPTICS_WARNINGS},
}

ISOLATED, TERMINALS, TERMINALS_UNKNOWN, UPSTREAM = "isolated", "terminals", "terminals.unknown", "upstream"
UNCONFIRMED, NOT_PROBED, BLIND = "upstream.unconfirmed", "not_probed", "monitor.blind"
NO_DATA, SUSTAINING, MAINTENANCE, WAIVED, OTHER = "no_data", "sustaining", "maintenance", "waived", "other"
# A terminal's certificate (HTTP checks): subject the terminal, detail the notAfter date (UTC).
CERT_EXPIRING, CERT_BEFORE_DEADLINE = "certificate.expiring", "certificate.before_deadline"

SITE_CODES: Mapping[str, Code] = {
    ISOLATED: Code("bare", "not_ready"),  # both links down
    TERMINALS: Code("count", "not_ready"),  # too few terminals answer
    TERMINALS_UNKNOWN: Code("count", "unknown"),  # too few answer unless the unknown ones do
    UPSTREAM: Code("upstream", "unknown"),  # behind a dead node nobody can see
    UNCONFIRMED: Code("unconfirmed", "unknown"),  # a failure seen before its upstream was last seen healthy
    NOT_PROBED: Code("count", "unknown"),  # too few terminals answer unless the ones never probed do
    BLIND: Code("bare", "unknown"),  # the monitor's own view failed (witnesses, local send errors)
    NO_DATA: Code("bare", "unknown"),  # nothing known of the site at all
    SUSTAINING: Code("paren", "degraded"),  # healthy, not yet for long enough
    MAINTENANCE: Code("note", informational=True),
    WAIVED: Code("waiver", informational=True),
    OTHER: Code("verbatim", "degraded"),  # unknown text (old records): a fault until someone reads it
    CERT_EXPIRING: Code("waiver", "degraded"),  # expires within the policy's margin from now (or has expired)
    CERT_BEFORE_DEADLINE: Code("waiver", warning=True),  # expires before the deadline plus the margin
}


def code_of(code: str) -> Code:
    """Return what ``code`` means; raise ValueError for a code no table defines."""
    role, dot, name = code.partition(".")
    spec = LINK_CODES.get(name) if dot and role in ROLES else SITE_CODES.get(code)
    if spec is None:
        raise ValueError(f"unknown reason code {code!r}")
    return spec


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a site or link is in its state: a bounded ``code`` plus the free ``detail`` and ``subject``."""

    code: str
    detail: str = ""  # the limit crossed, the count, the window's reason, the waiver's term
    subject: str = ""  # upstream: the node; waived: the requirement

    def __post_init__(self) -> None:
        code_of(self.code)

    @property
    def spec(self) -> Code:
        return code_of(self.code)

    @property
    def role(self) -> str:
        """Return the link role of a link code (``primary``, ``backup``), else ``""``."""
        role, dot, _ = self.code.partition(".")
        return role if dot and role in ROLES else ""

    @property
    def name(self) -> str:
        """Return the code without its role (``primary.loss`` -> ``loss``)."""
        role = self.role
        return self.code[len(role) + 1:] if role else self.code

    @property
    def state(self) -> SiteState:
        """Return the site state this reason implies on its own (``ready`` when it implies none)."""
        spec = self.spec
        if spec.link is not None:
            return LINK_EFFECT[self.role][spec.link]
        return spec.state or "ready"

    @property
    def informational(self) -> bool:
        """Return whether the reason explains a state without being a fault (maintenance, waived)."""
        return self.spec.informational

    def __str__(self) -> str:
        return _FORMS[self.spec.form].format(code=self.code, detail=self.detail, subject=self.subject)

    @staticmethod
    def parse(text: str) -> Reason:
        """Return the reason that reads ``text``; text of no known form is kept whole under ``other``."""
        return _parse(text)


_CODE_RE = re.compile(r"^[a-z_]+(?:\.[a-z_]+)*")


def _read(form: Form, code: str, rest: str) -> Reason | None:
    if form == "bare":
        return Reason(code) if not rest else None
    if form == "limit":
        return Reason(code, rest)
    if form == "count" and rest.startswith(" "):
        return Reason(code, rest[1:])
    if form == "paren" and rest.startswith(" (") and rest.endswith(")"):
        return Reason(code, rest[2:-1])
    if form == "note" and rest.startswith(": "):
        return Reason(code, rest[2:])
    if form == "upstream" and rest.startswith(" ") and rest.endswith(" down"):
        return Reason(code, subject=rest[1:-5])
    if form == "upstream" and rest.startswith(" ") and rest.endswith(" unconfirmed"):
        return Reason(UNCONFIRMED, subject=rest[1:-12])  # shares its first word with upstream
    if form == "waiver" and rest.startswith(" "):
        subject, _, detail = rest[1:].partition(" ")
        return Reason(code, detail, subject)
    return None


@lru_cache(maxsize=4096)  # stored history repeats a few texts millions of times
def _parse(text: str) -> Reason:
    m = _CODE_RE.match(text)
    if m is not None:
        code = m.group(0)
        try:
            form = code_of(code).form
        except ValueError:
            form = "verbatim"
        reason = _read(form, code, text[len(code):])
        if reason is not None and str(reason) == text:
            return reason
    return Reason(OTHER, text)


def worse(a: SiteState, b: SiteState) -> SiteState:
    """Return the more severe of two states."""
    return b if SEVERITY[b] > SEVERITY[a] else a


def state_of_reasons(reasons: Iterable[Reason]) -> SiteState:
    """Return the site state that ``reasons`` amount to: the worst any of them implies."""
    state: SiteState = "ready"
    for reason in reasons:
        state = worse(state, reason.state)
    return state


def state_codes(reasons: Iterable[Reason]) -> tuple[str, ...]:
    """Return the codes of ``reasons`` that make a state, sorted, each once: no informational note (maintenance,
    a waiver) and no warning. Bounded (codes, never the detail): the metrics' ``reasons`` label (issue 13)."""
    return tuple(sorted({r.code for r in reasons if not (r.spec.informational or r.spec.warning)}))


def main_code(reasons: Iterable[Reason], state: SiteState) -> str | None:
    """Return the code of the site's main reason: the first (in the evaluator's order) whose implied state is
    ``state``, else the first of the worst; None when no reason makes a state."""
    main: Reason | None = None
    for r in reasons:
        if r.spec.informational or r.spec.warning:
            continue
        if r.state == state:
            return r.code
        if main is None or SEVERITY[r.state] > SEVERITY[main.state]:
            main = r
    return None if main is None else main.code


def texts(reasons: Iterable[Reason]) -> tuple[str, ...]:
    """Return the text of each reason (for the edges: JSON, reports, the event store)."""
    return tuple(str(r) for r in reasons)
