"""Remediation actions: who fixes what by when, folded from the events that record them. Pure.

An action is opened for a site (or a whole county) with an owner, a due time, a note and who opened it;
it stays ``open`` until someone closes it ``done`` (or ``cancelled``) with a result. Each step is one
record (kept as an ``action`` row of the hash-chained event store), and the list of actions is the fold
of those records: nothing is ever edited, so the history of an action cannot be rewritten unnoticed.

No I/O and no clock: times are parameters, as everywhere in monitor/core.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta, tzinfo
from typing import Any, Literal

from monitor.core.calendar import parse_when

ActionState = Literal["open", "done", "cancelled"]
ACTION_STATES: tuple[ActionState, ...] = ("open", "done", "cancelled")
CLOSED_STATES: tuple[ActionState, ...] = ("done", "cancelled")
ENTITY_PREFIX = "action:"
COUNTY_PREFIX = "county:"  # an action for a whole county names it so
TEXT_MAX = 2000


class ActionError(ValueError):
    """A request the action list refuses (unknown id, already closed, no result): the message says why."""


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """One step of an action as stored: ``entity`` is ``action:ID``; ``new`` the state after the step."""

    at: float
    entity: str
    old: str | None
    new: str
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Step:
    """Who did what to an action, and when."""

    at: float
    state: str
    by: str
    text: str  # the note when opened, the result when closed


@dataclass(frozen=True, slots=True)
class Action:
    """A remediation action as the records make it now."""

    id: str
    site: str | None  # None: the action is for the whole county
    county: str
    owner: str
    due: float  # unix seconds; overdue after this
    due_text: str  # the due date as it was given (Jalali or Gregorian)
    note: str
    state: ActionState
    opened_at: float
    opened_by: str
    closed_at: float | None = None
    closed_by: str | None = None
    result: str = ""
    steps: tuple[Step, ...] = ()

    @property
    def target(self) -> str:
        """Return what the action is for: the site id, or ``county:NAME``."""
        return self.site if self.site is not None else f"{COUNTY_PREFIX}{self.county}"

    def is_open(self) -> bool:
        return self.state == "open"

    def overdue(self, now: float) -> bool:
        """Whether the action is still open after its due time."""
        return self.state == "open" and now > self.due

    def covers(self, site: str, county: str) -> bool:
        """Whether this action is about ``site`` (its own, or its county's)."""
        return self.site == site or (self.site is None and self.county == county)


def _text(value: Any, what: str, *, required: bool = True) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ActionError(f"{what} must be text")
    value = value.strip()
    if required and not value:
        raise ActionError(f"{what} is required")
    if len(value) > TEXT_MAX:
        raise ActionError(f"{what} is longer than {TEXT_MAX} characters")
    return value


def due_time(text: str, zone: tzinfo) -> float:
    """Return the due time of ``text`` (Jalali or Gregorian, optionally with HH:MM) in ``zone``.

    A bare date is due by the end of that day: the action is overdue from the next midnight.
    """
    try:
        when, only_date = parse_when(text, zone)
    except ValueError as exc:
        raise ActionError(str(exc)) from None
    if only_date:
        when = when + timedelta(days=1)
    return when.timestamp()


def open_record(existing: Sequence[Action] | Mapping[str, Action], *, site: str | None, county: str, owner: str,
                due: float, due_text: str, note: str, by: str, at: float) -> ActionRecord:
    """Return the record that opens a new action; its id is the next free ``A<n>``."""
    count = len(existing)
    action_id = f"A{count + 1}"
    payload = {"id": action_id, "site": site, "county": _text(county, "county"), "owner": _text(owner, "owner"),
               "due": float(due), "due_text": _text(due_text, "due date"), "note": _text(note, "note", required=False),
               "by": _text(by, "who")}
    return ActionRecord(float(at), ENTITY_PREFIX + action_id, None, "open", payload)


def close_record(action: Action, *, state: str = "done", result: str, by: str, at: float) -> ActionRecord:
    """Return the record that closes ``action`` as ``done`` or ``cancelled``; a result is required."""
    if state not in CLOSED_STATES:
        raise ActionError(f"an action closes as {' or '.join(CLOSED_STATES)}, not {state!r}")
    if not action.is_open():
        raise ActionError(f"action {action.id} is already {action.state}")
    payload = {"id": action.id, "result": _text(result, "result"), "by": _text(by, "who")}
    return ActionRecord(float(at), ENTITY_PREFIX + action.id, action.state, state, payload)


def fold(records: Iterable[ActionRecord]) -> dict[str, Action]:
    """Return the actions the records make, by id in the order they were opened.

    Records that do not fit (a close of an unknown or closed action) are skipped: the store never
    holds them when written through this module, and a hand-made one changes nothing.
    """
    out: dict[str, Action] = {}
    for r in records:
        action_id = r.entity.removeprefix(ENTITY_PREFIX)
        p = r.payload
        if r.new == "open" and r.old is None and action_id not in out:
            out[action_id] = Action(
                action_id, p.get("site"), str(p.get("county", "")), str(p.get("owner", "")), float(p.get("due", 0)),
                str(p.get("due_text", "")), str(p.get("note", "")), "open", r.at, str(p.get("by", "")),
                steps=(Step(r.at, "open", str(p.get("by", "")), str(p.get("note", ""))),))
        elif r.new in CLOSED_STATES and action_id in out and out[action_id].is_open():
            a = out[action_id]
            by, result = str(p.get("by", "")), str(p.get("result", ""))
            out[action_id] = replace(a, state=r.new, closed_at=r.at, closed_by=by, result=result,  # type: ignore[arg-type]
                                     steps=(*a.steps, Step(r.at, r.new, by, result)))
    return out


def select(actions: Iterable[Action], now: float, *, site: str | None = None, county: str | None = None,
           owner: str | None = None, state: str | None = None, overdue: bool | None = None) -> list[Action]:
    """Return the actions matching every filter given (county and owner case-insensitively)."""
    out = []
    for a in actions:
        if site is not None and a.site != site:
            continue
        if county is not None and a.county.casefold() != county.casefold():
            continue
        if owner is not None and a.owner.casefold() != owner.casefold():
            continue
        if state is not None and a.state != state:
            continue
        if overdue is not None and a.overdue(now) != overdue:
            continue
        out.append(a)
    return out


def ready_since(action: Action, state: str | None, since: float | None) -> float | None:
    """Return since when the action's site has been (sustained) ready while the action is open, else None.

    The action is not closed by itself: its owner closes it with a result.
    """
    if not action.is_open() or action.site is None or state != "ready" or since is None:
        return None
    return since


@dataclass(frozen=True, slots=True)
class Unowned:
    """A polling place not ready for longer than the grace time with no open action on it (nor its county)."""

    site: str
    county: str
    since: float


def unowned(sites: Iterable[tuple[str, str]], states: Mapping[str, tuple[str, float | None]],
            actions: Iterable[Action], now: float, grace_seconds: float) -> list[Unowned]:
    """Return the unowned sites of ``sites`` ((id, county) of polling places) given their (state, since)."""
    open_actions = [a for a in actions if a.is_open()]
    sites_with = {a.site for a in open_actions if a.site is not None}
    counties_with = {a.county for a in open_actions if a.site is None}
    out = []
    for site, county in sites:
        state, since = states.get(site, ("unknown", None))
        if state != "not_ready" or since is None or now - since < grace_seconds:
            continue
        if site in sites_with or county in counties_with:
            continue
        out.append(Unowned(site, county, since))
    return out


def by_county(actions: Iterable[Action], now: float) -> dict[str, tuple[int, int]]:
    """Return county -> (open, overdue) counts."""
    out: dict[str, tuple[int, int]] = {}
    for a in actions:
        if a.is_open():
            n_open, n_over = out.get(a.county, (0, 0))
            out[a.county] = (n_open + 1, n_over + a.overdue(now))
    return out
