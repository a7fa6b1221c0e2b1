"""Sustained readiness and flap damping: scenarios on an injected clock, minute by minute."""

from __future__ import annotations

import json

import pytest

from monitor.core.history import Flap, FlapDamper, Sustained, SustainTracker, forget, progress

H, M = 3600.0, 60.0
DAY = 24 * H


def run(tracker: SustainTracker, timeline: list[tuple[float, str]], until: float, step: float = 5 * M,
        site: str = "S1") -> Sustained:
    """Feed ``tracker`` the raw state of ``timeline`` (start time, state) every ``step`` up to ``until``."""
    out = None
    t = timeline[0][0]
    while t <= until:
        state = [s for start, s in timeline if start <= t][-1]
        out = tracker.update(site, state, t)
        t += step
    assert out is not None
    return out


SUSTAIN = [
    # (scenario, timeline, evaluated at, expected state, expected reason)
    ("a site ready for 5 h of a 24 h window is degraded with `sustaining (5h of 24h)`",
     [(0, "ready")], 5 * H, "degraded", "sustaining (5h of 24h)"),
    ("ready for the whole window: ready", [(0, "ready")], DAY, "ready", None),
    ("a 10-minute slip fits the 1% budget: still ready at 24 h",
     [(0, "ready"), (10 * H, "degraded"), (10 * H + 10 * M, "ready")], DAY, "ready", None),
    ("a 20-minute outage breaks the streak: it starts over",
     [(0, "ready"), (10 * H, "not_ready"), (10 * H + 20 * M, "ready")], DAY, "degraded", "sustaining (13h of 24h)"),
    ("4 h the monitor could not see neither count nor break the streak",
     [(0, "ready"), (10 * H, "unknown"), (14 * H, "ready")], DAY, "ready", None),
    ("a site not ready now is not ready, whatever its history",
     [(0, "ready"), (DAY, "not_ready")], DAY + H, "not_ready", None),
    ("unknown passes through", [(0, "ready"), (3 * H, "unknown")], 4 * H, "unknown", None),
    ("degraded passes through unchanged", [(0, "degraded")], 2 * H, "degraded", None),
]


@pytest.mark.parametrize(("scenario", "timeline", "now", "state", "reason"), SUSTAIN, ids=[c[0] for c in SUSTAIN])
def test_sustained_readiness(scenario: str, timeline: list[tuple[float, str]], now: float, state: str,
                             reason: str | None) -> None:
    """Each timeline of raw states, sampled every 5 minutes, ends in one sustained verdict."""
    out = run(SustainTracker(DAY, 0.99), timeline, now)
    assert (out.state, out.reason and str(out.reason)) == (state, reason), scenario


def test_first_ready_at_and_sustained_seconds() -> None:
    """The site turns ready exactly when the window is met; first_ready_at records that moment."""
    tracker = SustainTracker(DAY, 0.99)
    before = run(tracker, [(0, "ready")], DAY - 5 * M)
    assert (before.ever_ready, before.first_ready_at, before.sustained_seconds) == (False, None, DAY - 5 * M)
    assert str(before.reason) == "sustaining (23h of 24h)"
    at_day = tracker.update("S1", "ready", DAY)
    assert (at_day.state, at_day.ever_ready, at_day.first_ready_at, at_day.availability_ratio) == (
        "ready", True, DAY, 1.0)


def test_low_availability_with_little_observed_time() -> None:
    """Mostly unknown, then 10 min degraded: within the budget, but 60 s up of 660 s seen is not 99%."""
    tracker = SustainTracker(DAY, 0.99)
    for t, state in [(0, "ready"), (60, "unknown"), (DAY - 600, "degraded"), (DAY, "ready")]:
        out = tracker.update("S1", state, t)
    assert (out.state, str(out.reason)) == ("degraded", "sustaining (availability 9.1% of 99%)")


def test_window_zero_is_a_pass_through() -> None:
    """With no window the raw state is the state, and first_ready_at and regressions are still kept."""
    tracker = SustainTracker(0, 0.99)
    states = ["not_ready", "ready", "degraded", "unknown", "ready", "not_ready"]
    outs = [tracker.update("S1", s, 60.0 * i) for i, s in enumerate(states)]
    assert [(o.state, o.reason) for o in outs] == [(s, None) for s in states]
    assert (outs[-1].first_ready_at, outs[-1].regressions) == (60.0, 2)


def test_regressions_count_ready_sites_that_slipped_back() -> None:
    """A ready site that degrades twice has two regressions; going unknown is not one of them."""
    tracker = SustainTracker(H, 0.9)  # budget: 6 minutes in the trailing hour
    timeline = [(0, "ready"), (2 * H, "degraded"), (2 * H + 2 * M, "ready"), (3 * H, "unknown"),
                (3 * H + 10 * M, "ready"), (4 * H, "not_ready"), (4 * H + M, "ready")]
    checkpoints = {t for t, _ in timeline[1:]}
    seen = []
    for k in range(int(4 * H / M) + 2):
        t = k * M
        out = tracker.update("S1", [s for start, s in timeline if start <= t][-1], t)
        if t in checkpoints:
            seen.append(out)
    assert [(s.state, s.regressions) for s in seen] == [
        ("degraded", 1), ("ready", 1), ("unknown", 1), ("ready", 1), ("not_ready", 2), ("ready", 2)]


def test_unknown_between_ready_and_a_fault_still_counts_as_a_regression() -> None:
    """Ready, then blind, then seen not ready: the site did slip back."""
    tracker = SustainTracker(0, 1.0)
    outs = [tracker.update("S1", s, t) for t, s in [(0, "ready"), (60, "unknown"), (120, "not_ready")]]
    assert [o.regressions for o in outs] == [0, 0, 1]


def test_memory_is_bounded_to_the_window() -> None:
    """Three days of a flapping site with a one-hour window keep only the last hour of changes."""
    tracker = SustainTracker(H, 0.99)
    for k in range(3 * 24 * 60):
        tracker.update("S1", "ready" if k % 2 else "degraded", k * M)
    changes = tracker.export()["sites"]["S1"]["changes"]
    now = 3 * DAY - M
    assert len(changes) <= 61 and changes[0][0] <= now - H < changes[1][0]


def test_a_gap_in_updates_is_unknown() -> None:
    """With max_gap_seconds, a monitor that was down for 10 h does not count 10 h of not_ready."""
    strict, gappy = SustainTracker(DAY, 0.5), SustainTracker(DAY, 0.5, max_gap_seconds=5 * M)
    timeline = [(0, "ready"), (2 * H + M, "not_ready"), (12 * H, "ready")]
    minutes = [k * M for k in range(121)] + [2 * H + M] + [12 * H + k * M for k in range(61)]
    for tracker in (strict, gappy):
        for t in minutes:
            out = tracker.update("S1", [s for start, s in timeline if start <= t][-1], t)
        assert str(out.reason) == "sustaining (13h of 24h)"  # within the 12 h budget: the streak holds either way
    up = 3 * H + M
    assert strict.update("S1", "ready", 13 * H).availability_ratio == pytest.approx(up / (13 * H))
    assert gappy.update("S1", "ready", 13 * H).availability_ratio == pytest.approx(up / (up + 5 * M))


def test_export_and_restore_resume_the_same_verdicts() -> None:
    """A tracker restored from JSON continues exactly where the exported one stopped."""
    timeline = [(0, "ready"), (5 * H, "degraded"), (5 * H + 5 * M, "ready"), (9 * H, "not_ready"), (10 * H, "ready")]
    original = SustainTracker(12 * H, 0.99)
    run(original, timeline, 20 * H)
    run(original, timeline, 20 * H, site="S2")
    copy = SustainTracker(12 * H, 0.99)
    copy.restore(json.loads(json.dumps(original.export())))
    assert copy.export() == original.export()
    for t in (21 * H, 22 * H, 23 * H):
        assert copy.update("S1", "ready", t) == original.update("S1", "ready", t)
    with pytest.raises(ValueError, match="version"):
        copy.restore({"version": 99, "sites": {}})


def test_forget_drops_removed_sites() -> None:
    """Sites removed from the config are forgotten."""
    tracker = SustainTracker(H, 0.99)
    tracker.update("S1", "ready", 0)
    tracker.update("S2", "ready", 0)
    tracker.forget({"S2"})
    assert list(tracker.export()["sites"]) == ["S2"]


@pytest.mark.parametrize(("elapsed", "window", "text"), [
    (5.5 * H, DAY, "5h of 24h"), (45 * M, 90 * M, "45m of 90m"), (10, 30, "10s of 30s"), (0, 2 * H, "0h of 2h"),
])
def test_progress_text(elapsed: float, window: float, text: str) -> None:
    """The sustaining reason uses the largest unit that states the window exactly."""
    assert progress(elapsed, window) == text


# -- flap damping ----------------------------------------------------------------------------------------

def flaps(changes: list[float], until: float, step: float = 30.0) -> list[tuple[float, str, bool]]:
    """Toggle up/down at each time in ``changes``; sample every ``step``; return each output change."""
    damper = FlapDamper(max_changes=4, window_seconds=600, hold_seconds=600)
    out: list[tuple[float, str, bool]] = []
    memory: Flap | None = None
    t = 0.0
    while t <= until:
        state = "up" if sum(c <= t for c in changes) % 2 == 0 else "down"
        memory = damper.step(memory, state, t)
        damped, flapping = memory.output
        if not out or out[-1][1:] != (damped, flapping):
            out.append((t, damped, flapping))
        t += step
    return out


FLAPS = [
    # (scenario, change times, sampled until, output changes)
    ("a link flapping 6 times in 10 minutes is reported once as flapping",
     [60, 120, 180, 240, 300, 360], 1200,
     [(0, "up", False), (60, "down", False), (120, "up", False), (180, "down", False), (240, "up", False),
      (300, "down", False), (360, "flapping", True), (960, "up", False)]),
    ("four changes in 10 minutes are within the limit", [60, 120, 180, 240], 1200,
     [(0, "up", False), (60, "down", False), (120, "up", False), (180, "down", False), (240, "up", False)]),
    ("changes every 5 minutes never flap", [300, 600, 900, 1200, 1500, 1800], 2000,
     [(0, "up", False), (300, "down", False), (600, "up", False), (900, "down", False), (1200, "up", False),
      (1500, "down", False), (1800, "up", False)]),
    ("a change while flapping restarts the hold", [60, 120, 180, 240, 300, 700], 1500,
     [(0, "up", False), (60, "down", False), (120, "up", False), (180, "down", False), (240, "up", False),
      (300, "down", False), (720, "flapping", True), (1320, "up", False)]),
]


@pytest.mark.parametrize(("scenario", "changes", "until", "expected"), FLAPS, ids=[c[0] for c in FLAPS])
def test_flap_damping(scenario: str, changes: list[float], until: float,
                      expected: list[tuple[float, str, bool]]) -> None:
    """More than 4 changes in 10 minutes hold the link at flapping until it is stable for 10 minutes;
    while it is down it reads down (down beats flapping)."""
    assert flaps(changes, until) == expected, scenario


def test_flap_damper_keeps_entities_apart() -> None:
    """One flapping link does not make another one flap."""
    damper = FlapDamper(max_changes=1, window_seconds=600, hold_seconds=60)
    memory: dict[str, Flap] = {}

    def update(entity: str, state: str, now: float) -> tuple[str, bool]:
        memory[entity] = damper.step(memory.get(entity), state, now)
        return memory[entity].output

    update("a", "up", 0)
    update("a", "down", 10)
    assert update("a", "up", 20) == ("flapping", True)
    assert update("b", "up", 20) == ("up", False)
    assert memory["a"].flapping and not memory["b"].flapping
    memory = forget(memory, {"b"})
    assert "a" not in memory  # not flapping: nothing is known of it any more


def test_flap_damper_rejects_nonsense_settings() -> None:
    """Zero changes or an empty window cannot define flapping."""
    with pytest.raises(ValueError):
        FlapDamper(max_changes=0)
    with pytest.raises(ValueError):
        FlapDamper(window_seconds=0)


def test_retuned_damper_keeps_history_and_uses_new_thresholds() -> None:
    """A reloaded policy with a lower change limit flags a link already changing, without losing its past."""
    d = FlapDamper(max_changes=10, window_seconds=600, hold_seconds=600)
    memory: Flap | None = None
    for i, state in enumerate(["up", "down", "up", "down"]):
        memory = d.step(memory, state, 1000.0 + i)
        assert memory.output == (state, False)
    d = FlapDamper(max_changes=3, window_seconds=600, hold_seconds=600)  # the reloaded policy's, same memory
    assert d.step(memory, "up", 1004.0).output == ("flapping", True)


def run_damper(states: list[str], max_changes: int = 2) -> list[tuple[str, bool]]:
    """Feed one state a minute to a damper (window 10 minutes, hold 10 minutes); return each output."""
    damper = FlapDamper(max_changes=max_changes, window_seconds=600, hold_seconds=600)
    memory: Flap | None = None
    out = []
    for i, state in enumerate(states):
        memory = damper.step(memory, state, 60.0 * i)
        out.append(memory.output)
    return out


DAMPING_RULES = [
    # (scenario, raw states a minute apart, output of the last step)
    ("a flapping link that stays down is down, not flapping", ["up", "down", "up", "down", "up", "down"],
     ("down", False)),
    ("a flapping link that comes back is held at flapping", ["up", "down", "up", "down", "up", "down", "up"],
     ("flapping", True)),
    ("unknown periods are no changes: up, unknown, up never flaps",
     ["up", "unknown", "up", "unknown", "up", "unknown", "up"], ("up", False)),
    ("an unknown period keeps the memory: the link that comes back after it is still flapping",
     ["up", "down", "up", "down", "unknown", "unknown", "up"], ("flapping", True)),
    ("up, unknown, down is one change", ["up", "unknown", "down", "unknown", "up", "unknown", "down"],
     ("down", False)),
    ("the first known state after unknown is no change", ["unknown", "up", "unknown", "down"], ("down", False)),
]


@pytest.mark.parametrize(("scenario", "states", "last"), DAMPING_RULES, ids=[c[0] for c in DAMPING_RULES])
def test_damping_rules(scenario: str, states: list[str], last: tuple[str, bool]) -> None:
    """Down beats flapping, and the monitor's blindness (unknown) is no change of the link."""
    assert run_damper(states)[-1] == last, scenario


def test_unknown_between_changes_counts_no_change() -> None:
    """up, unknown, down, unknown, up: two changes (up->down, down->up), so a limit of two never flaps."""
    damper = FlapDamper(max_changes=2, window_seconds=600, hold_seconds=600)
    memory: Flap | None = None
    for i, state in enumerate(["up", "unknown", "down", "unknown", "up"]):
        memory = damper.step(memory, state, 60.0 * i)
    assert memory is not None and memory.changes == (120.0, 240.0) and not memory.flapping
