"""Exact availability from transitions: maintenance and unknown are apart, never up or down."""

from __future__ import annotations

import random

import pytest

from monitor.core.availability import Availability, availability, failed_requirements
from monitor.core.reasons import Reason

H = 3600.0
UP, DOWN = frozenset({"up"}), frozenset({"down"})

CASES = [
    # (scenario, transitions, start, end, initial, maintenance, (up, down, other, unknown, maintenance) in hours)
    ("always up", [], 0, 24 * H, "up", [], (24, 0, 0, 0, 0)),
    ("availability excludes a 2 h maintenance window and 1 h of unknown",
     [(5 * H, "down"), (6 * H, "up"), (10 * H, "unknown"), (11 * H, "up")], 0, 24 * H, "up",
     [(14 * H, 16 * H)], (20, 1, 0, 1, 2)),
    ("maintenance overlapping unknown counts as maintenance",
     [(10 * H, "unknown"), (12 * H, "up")], 0, 24 * H, "up", [(11 * H, 13 * H)], (21, 0, 0, 1, 2)),
    ("maintenance overlapping an outage hides that part of it",
     [(2 * H, "down"), (4 * H, "up")], 0, 10 * H, "up", [(3 * H, 5 * H)], (7, 1, 0, 0, 2)),
    ("no initial state: unknown until the first transition", [(2 * H, "up")], 0, 10 * H, None, [], (8, 0, 0, 2, 0)),
    ("a transition before the start replaces the initial state", [(-5 * H, "down"), (3 * H, "up")], 0, 10 * H,
     "up", [], (7, 3, 0, 0, 0)),
    ("a transition at the start replaces the initial state", [(0, "down")], 0, 10 * H, "up", [], (0, 10, 0, 0, 0)),
    ("transitions after the end are ignored", [(12 * H, "down")], 0, 10 * H, "up", [], (10, 0, 0, 0, 0)),
    ("impaired is neither up nor down: it counts against availability", [(4 * H, "impaired"), (5 * H, "up")],
     0, 10 * H, "up", [], (9, 0, 1, 0, 0)),
    ("overlapping and out-of-period maintenance windows merge and clip",
     [], 0, 10 * H, "up", [(-2 * H, 1 * H), (8 * H, 9 * H), (8.5 * H, 12 * H), (4 * H, 4 * H)], (7, 0, 0, 0, 3)),
    ("all maintenance", [(1 * H, "down")], 0, 2 * H, "up", [(0, 2 * H)], (0, 0, 0, 0, 2)),
    ("several transitions at one instant: the last wins", [(1 * H, "down"), (1 * H, "up")], 0, 2 * H, "up", [],
     (2, 0, 0, 0, 0)),
    ("an empty period", [(1 * H, "down")], 5 * H, 5 * H, "up", [], (0, 0, 0, 0, 0)),
]


@pytest.mark.parametrize(("scenario", "transitions", "start", "end", "initial", "maintenance", "hours"), CASES,
                         ids=[c[0] for c in CASES])
def test_availability(scenario: str, transitions: list[tuple[float, str]], start: float, end: float,
                      initial: str | None, maintenance: list[tuple[float, float]],
                      hours: tuple[float, ...]) -> None:
    """Each period divides exactly into up, down, other, unknown and maintenance time."""
    a = availability(transitions, start, end, initial=initial, up_states=UP, down_states=DOWN,
                     maintenance=maintenance)
    got = (a.up_seconds, a.down_seconds, a.other_seconds, a.unknown_seconds, a.maintenance_seconds)
    assert got == tuple(h * H for h in hours), scenario
    assert sum(got) == end - start


def test_ratio_counts_only_observed_time() -> None:
    """20 h up, 1 h down, 1 h unknown and 2 h of maintenance is 20/21 available."""
    a = availability([(5 * H, "down"), (6 * H, "up"), (10 * H, "unknown"), (11 * H, "up")], 0, 24 * H,
                     initial="up", up_states=UP, down_states=DOWN, maintenance=[(14 * H, 16 * H)])
    assert a.ratio == pytest.approx(20 / 21)
    assert a.observed_seconds == 21 * H


def test_nothing_observed_has_no_ratio() -> None:
    """A period the monitor never saw has no availability, not 0% and not 100%."""
    assert availability([], 0, H, initial=None, up_states=UP, down_states=DOWN).ratio is None
    assert availability([], 0, H, initial="up", up_states=UP, down_states=DOWN, maintenance=[(0, H)]).ratio is None


SITE_CASES = [
    # (scenario, up states, down states, expected ratio)
    ("only ready counts as up; degraded counts against", frozenset({"ready"}), frozenset({"not_ready"}), 6 / 9),
    ("a site that can vote: ready and degraded are up", frozenset({"ready", "degraded"}), frozenset({"not_ready"}),
     8 / 9),
    ("the caller may call unknown down", frozenset({"ready"}), frozenset({"not_ready", "unknown"}), 6 / 10),
]


@pytest.mark.parametrize(("scenario", "up", "down", "ratio"), SITE_CASES, ids=[c[0] for c in SITE_CASES])
def test_site_availability_depends_on_what_the_caller_calls_up(scenario: str, up: frozenset[str],
                                                               down: frozenset[str], ratio: float) -> None:
    """A site 6 h ready, 2 h degraded, 1 h not ready and 1 h unknown."""
    transitions = [(6 * H, "degraded"), (8 * H, "not_ready"), (9 * H, "unknown")]
    a = availability(transitions, 0, 10 * H, initial="ready", up_states=up, down_states=down)
    assert a.ratio == pytest.approx(ratio), scenario


def test_random_timelines_add_up() -> None:
    """On 200 random timelines the parts always add up to the period and match a brute-force count."""
    rng = random.Random(4)
    for _ in range(200):
        times = sorted(rng.randint(-10, 110) for _ in range(rng.randint(0, 12)))
        transitions = [(float(t), rng.choice(["up", "down", "impaired", "unknown"])) for t in times]
        maintenance = [(float(s), float(s + rng.randint(0, 30))) for s in (rng.randint(-10, 100) for _ in range(3))]
        initial = rng.choice(["up", "down", None])
        a = availability(transitions, 0, 100, initial=initial, up_states=UP, down_states=DOWN,
                         maintenance=maintenance)
        brute = {"up": 0.0, "down": 0.0, "impaired": 0.0, "unknown": 0.0, "maintenance": 0.0}
        for second in range(100):
            t = second + 0.5
            if any(s <= t < e for s, e in maintenance):
                brute["maintenance"] += 1
                continue
            seen: list[str | None] = [initial, *(s for at, s in transitions if at <= t)]
            state = seen[-1]
            brute[state or "unknown"] += 1
        assert (a.up_seconds, a.down_seconds, a.other_seconds, a.unknown_seconds, a.maintenance_seconds) == (
            brute["up"], brute["down"], brute["impaired"], brute["unknown"], brute["maintenance"])


def test_bad_input_is_refused() -> None:
    """Unsorted transitions or a period that ends before it starts are programming errors."""
    with pytest.raises(ValueError, match="not sorted"):
        availability([(2.0, "up"), (1.0, "down")], 0, 10, initial="up", up_states=UP, down_states=DOWN)
    with pytest.raises(ValueError, match="before it starts"):
        availability([], 10, 0, initial="up", up_states=UP, down_states=DOWN)


def test_availabilities_add() -> None:
    """Two terminals' availabilities sum to the site's terminal availability."""
    a = availability([(1 * H, "down")], 0, 2 * H, initial="up", up_states=UP, down_states=DOWN)
    b = availability([], 0, 2 * H, initial="up", up_states=UP, down_states=DOWN, maintenance=[(0, H)])
    total = a + b
    assert total == Availability(up_seconds=2 * H, down_seconds=H, maintenance_seconds=H)
    assert total.ratio == pytest.approx(2 / 3)


REASONS = [
    (2 * H, ("backup.down", "terminals 1/2")),
    (3 * H, ()),
    (5 * H, ("primary.loss>1%", "primary.loss>5%", "primary.rtt>50ms")),
]


@pytest.mark.parametrize(("scenario", "maintenance", "expected"), [
    ("how long each requirement failed over 6 h", [],
     {"backup.down": 3 * H, "terminals": H, "primary.loss": H, "primary.rtt": H}),
    ("maintenance time is not a failure", [(5 * H, 5.5 * H)],
     {"backup.down": 3 * H, "terminals": H, "primary.loss": 0.5 * H, "primary.rtt": 0.5 * H}),
])
def test_failed_requirements(scenario: str, maintenance: list[tuple[float, float]],
                             expected: dict[str, float]) -> None:
    """Backup down from the start for 3 h, one terminal short for 1 h, primary lossy and slow the last hour."""
    typed = [(at, tuple(map(Reason.parse, reasons))) for at, reasons in REASONS]
    got = failed_requirements(typed, 0, 6 * H, (Reason.parse("backup.down"),), maintenance=maintenance)
    assert got == expected, scenario


def test_failed_requirements_with_nothing_known_at_the_start() -> None:
    """With no initial reasons the clock starts at the first transition."""
    assert failed_requirements([(H, [Reason.parse("primary.stale")])], 0, 2 * H, None) == {"primary.stale": H}
