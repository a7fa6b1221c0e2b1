"""Deadline forecast: Theil–Sen trend, the date every site is ready, and the share history."""

from __future__ import annotations

import json
import random
import time

import pytest

from monitor.core.forecast import PROVINCE, ShareHistory, forecast, slope_interval, theil_sen

DAY = 86400.0
T0 = 1_760_000_000.0  # a Unix time in 2025: the fit must not lose digits on real timestamps


def climb(days: float, start: float = 0.5, per_day: float = 0.05, step: float = 3600.0) -> list[tuple[float, float]]:
    """Hourly ready shares on a straight line from ``start``, ``per_day`` more each day."""
    n = int(days * DAY / step)
    return [(T0 + k * step, start + per_day * k * step / DAY) for k in range(n + 1)]


def test_theil_sen_recovers_a_line() -> None:
    """Points on y = 2 + 0.5x give slope 0.5 and intercept 2."""
    assert theil_sen([(x, 2 + 0.5 * x) for x in range(10)]) == pytest.approx((0.5, 2.0))


def test_outliers_do_not_move_theil_sen() -> None:
    """A fifth of the samples at 0% (a county PoP down for an hour) leave the trend where it was."""
    clean = climb(7)
    dirty = [(t, 0.0 if k % 5 == 0 else y) for k, (t, y) in enumerate(clean)]
    slope, intercept = theil_sen(dirty)
    assert slope * DAY == pytest.approx(0.05, rel=0.02)
    assert intercept + slope * clean[-1][0] == pytest.approx(clean[-1][1], abs=0.01)


def test_theil_sen_needs_two_times() -> None:
    """One time, however many samples, has no trend."""
    with pytest.raises(ValueError, match="two different times"):
        theil_sen([(1.0, 0.5), (1.0, 0.6)])


def test_theil_sen_subsamples_large_inputs_deterministically() -> None:
    """5,000 samples are thinned to 2,000 evenly spread ones: same answer every time, quickly."""
    points = [(T0 + k * 60.0, 0.2 + 1e-6 * k) for k in range(5000)]
    started = time.perf_counter()
    first = theil_sen(points)
    assert time.perf_counter() - started < 10
    assert first == theil_sen(list(reversed(points)))
    assert first[0] == pytest.approx(1e-6 / 60)


NOW = T0 + 7 * DAY
NO = "not enough history"

FORECASTS = [
    # (scenario, points, deadline, expected share at deadline (or NO), at risk, all ready at (None or days after T0))
    ("a linear climb reaches 100% on day 10, before a deadline on day 20", climb(7), T0 + 20 * DAY, 1.0, False, 10),
    ("the same climb is at risk for a deadline on day 9", climb(7), T0 + 9 * DAY, 0.95, True, 10),
    ("a flat 90% never gets there", climb(7, 0.9, 0.0), T0 + 20 * DAY, 0.9, True, None),
    ("a falling share never gets there", climb(7, 0.9, -0.01), T0 + 20 * DAY, 0.7, True, None),
    ("everyone is ready already", climb(7, 1.0, 0.0), T0 + 20 * DAY, 1.0, False, 7),
    ("all ready this hour but falling: at risk, and never all ready at this pace",
     [*climb(7, 1.0, -0.05)[:-1], (NOW, 1.0)], T0 + 20 * DAY, 0.35, True, None),
    ("one sample: no forecast", [(NOW - 60, 0.8)], T0 + 20 * DAY, NO, None, None),
    ("a few minutes of history: no forecast", [(NOW - 600 + k * 60, 0.2 + 0.01 * k) for k in range(11)],
     T0 + 20 * DAY, NO, None, None),
    ("no samples: no forecast", [], T0 + 20 * DAY, NO, None, None),
    ("the deadline has passed: the current share", climb(7), T0 + 6 * DAY, 0.85, True, 10),
    ("samples after now are not used", [*climb(7), (NOW + DAY, 0.0)], T0 + 9 * DAY, 0.95, True, 10),
    ("a steep climb is bounded at 100%", climb(7, 0.0, 0.1), T0 + 60 * DAY, 1.0, False, 10),
    ("a steep fall is bounded at 0%", climb(7, 0.9, -0.1), T0 + 60 * DAY, 0.0, True, None),
]


@pytest.mark.parametrize(("scenario", "points", "deadline", "share", "at_risk", "all_ready_day"), FORECASTS,
                         ids=[c[0] for c in FORECASTS])
def test_forecast(scenario: str, points: list[tuple[float, float]], deadline: float, share: float | str,
                  at_risk: bool | None, all_ready_day: float | None) -> None:
    """Each history, forecast at day 7, gives a share at the deadline, a risk and an all-ready date; or, with
    less than three days of hourly samples, no forecast at all."""
    f = forecast(points, deadline, NOW)
    if share == NO:
        assert not f.enough_history and f.share_at_deadline is None and f.slope_per_day is None, scenario
        assert f.share_now == (points[-1][1] if points else None)
    else:
        assert f.enough_history
        assert f.share_at_deadline == pytest.approx(share, abs=1e-6), scenario
    assert f.at_risk is at_risk
    if all_ready_day is None:
        assert f.all_ready_at is None
    else:
        assert f.all_ready_at == pytest.approx(T0 + all_ready_day * DAY, abs=60)


def test_the_minimum_is_three_days_of_hourly_samples() -> None:
    """72 hourly samples give a forecast; 71 do not; neither do 72 crammed into one day. The minimum is configured."""
    hourly = climb(3)
    assert forecast(hourly[-72:], T0 + 20 * DAY, hourly[-1][0]).enough_history
    assert not forecast(hourly[-71:], T0 + 20 * DAY, hourly[-1][0]).enough_history
    crammed = climb(1, step=1200)[:72]
    assert not forecast(crammed, T0 + 20 * DAY, crammed[-1][0]).enough_history
    assert forecast(crammed, T0 + 20 * DAY, crammed[-1][0], resolution_seconds=1200, min_history_days=0.9
                    ).enough_history
    assert forecast(hourly[-24:], T0 + 20 * DAY, hourly[-1][0], min_history_days=1).enough_history


def test_the_slope_comes_with_its_confidence_interval() -> None:
    """A clean line has no spread; noise widens the interval around the slope, and the range at the deadline."""
    clean = forecast(climb(7, 0.3, 0.02), T0 + 20 * DAY, NOW)
    assert clean.slope_per_day_low == pytest.approx(0.02) and clean.slope_per_day_high == pytest.approx(0.02)
    rnd = random.Random(3)
    noisy = [(t, y + rnd.uniform(-0.05, 0.05)) for t, y in climb(7, 0.3, 0.02)]
    f = forecast(noisy, T0 + 20 * DAY, NOW)
    assert f.slope_per_day_low < f.slope_per_day < f.slope_per_day_high  # type: ignore[operator]
    assert f.slope_per_day_low < 0.02 < f.slope_per_day_high  # type: ignore[operator]
    assert 0 <= f.share_at_deadline_low <= f.share_at_deadline <= f.share_at_deadline_high <= 1  # type: ignore[operator]
    slope, low, high = slope_interval([(x, 2 + 0.5 * x) for x in range(10)])
    assert slope == low == high == pytest.approx(0.5)


@pytest.mark.parametrize("seed", range(200))
def test_a_forecast_never_contradicts_itself(seed: int) -> None:
    """Random histories, deadlines and targets: at risk exactly when the share at the deadline is below the
    target; while at risk, all ready is after the deadline or never; every share within 0..100%."""
    rnd = random.Random(seed)
    start, per_day = rnd.uniform(0, 1.2), rnd.uniform(-0.1, 0.1)
    points = [(t, min(1.0, max(0.0, y + rnd.uniform(-0.1, 0.1)))) for t, y in climb(rnd.uniform(3, 10), start,
                                                                                     per_day)]
    now = points[-1][0] + rnd.uniform(0, DAY)
    deadline = now + rnd.uniform(-5, 40) * DAY
    target = rnd.choice([1.0, 0.95, 0.8])
    f = forecast(points, deadline, now, target=target)
    assert f.enough_history and f.share_at_deadline is not None
    assert f.at_risk is (f.share_at_deadline < target)
    for share in (f.share_now, f.share_at_deadline, f.share_at_deadline_low, f.share_at_deadline_high):
        assert share is not None and 0 <= share <= 1
    if f.at_risk:
        assert f.all_ready_at is None or f.all_ready_at > max(deadline, now)
    elif target == 1.0:
        assert f.all_ready_at is not None and f.all_ready_at <= max(deadline, now)


def test_forecast_uses_the_last_14_days() -> None:
    """A month-old plateau does not drag the trend of the last two weeks."""
    old = [(NOW - 30 * DAY + k * 3600, 0.1) for k in range(24 * 10)]
    recent = [(NOW - 14 * DAY + k * 3600, 0.3 + 0.05 * k / 24) for k in range(24 * 14 + 1)]
    f = forecast(old + recent, NOW + 5 * DAY, NOW)
    assert f.points == 24 * 14 + 1
    assert f.slope_per_day == pytest.approx(0.05)
    assert f.share_now == pytest.approx(1.0)
    assert (f.share_at_deadline, f.all_ready_at, f.at_risk) == (1.0, NOW, False)


# -- share history ----------------------------------------------------------------------------------------

def test_share_history_keeps_one_sample_per_resolution() -> None:
    """Samples every minute become one per hour; the newest of each hour is kept."""
    h = ShareHistory(resolution_seconds=3600)
    base = 1_760_000_400.0 - 1_760_000_400.0 % 3600  # the start of an hour
    for minute in range(150):
        h.add(PROVINCE, base + minute * 60, ready=minute, total=200)
    assert h.samples(PROVINCE) == [(base + 59 * 60, 59, 200), (base + 119 * 60, 119, 200),
                                   (base + 149 * 60, 149, 200)]
    h.add(PROVINCE, base, ready=1, total=200)  # late: ignored
    assert h.samples(PROVINCE)[-1] == (base + 149 * 60, 149, 200)


def test_share_history_is_bounded() -> None:
    """Only the newest max_samples are kept per scope."""
    h = ShareHistory(resolution_seconds=60, max_samples=10)
    for k in range(100):
        h.add(("county", "Ilam"), k * 60.0, 1, 2)
    assert [t for t, _, _ in h.samples(("county", "Ilam"))] == [k * 60.0 for k in range(90, 100)]


def test_record_counts_province_counties_and_areas() -> None:
    """One call records the province, each county and urban/rural from the sites' states."""
    h = ShareHistory()
    h.record(100.0, [("ایلام", "urban", "ready"), ("ایلام", "rural", "degraded"), ("مهران", "rural", "ready")])
    assert h.keys() == [("area", "rural"), ("area", "urban"), ("county", "ایلام"), ("county", "مهران"), PROVINCE]
    assert h.samples(PROVINCE) == [(100.0, 2, 3)]
    assert h.points(("county", "ایلام")) == [(100.0, 0.5)]
    assert h.points(("area", "rural")) == [(100.0, 0.5)]


def test_points_skip_empty_scopes_and_bad_counts_are_refused() -> None:
    """A scope with no sites has no share; more ready than total is a programming error."""
    h = ShareHistory()
    h.record(0.0, [])
    assert h.samples(PROVINCE) == [(0.0, 0, 0)] and h.points(PROVINCE) == []
    with pytest.raises(ValueError):
        h.add(PROVINCE, 10_000.0, 3, 2)


def test_share_history_export_restore_and_forecasts() -> None:
    """The history survives a JSON round trip and forecasts every scope."""
    h = ShareHistory()
    for t, share in climb(7):
        h.add(PROVINCE, t, round(share * 100), 100)
        h.add(("county", "Ilam"), t, 9, 10)
    copy = ShareHistory()
    copy.restore(json.loads(json.dumps(h.export())))
    assert copy.export() == h.export()
    forecasts = copy.forecasts(T0 + 20 * DAY, NOW)
    assert forecasts[PROVINCE].all_ready_at == pytest.approx(T0 + 10 * DAY, abs=3600)
    assert forecasts[("county", "Ilam")].at_risk
    with pytest.raises(ValueError, match="version"):
        copy.restore({"version": 0, "scopes": []})


def test_a_recent_fall_is_not_forecast_away() -> None:
    """Ready for 15 hours, then dark for 8 (a half-day minimum): the forecast starts from today's 0%, so it is at
    risk."""
    from monitor.core.forecast import forecast

    hour = 3600.0
    points = [(i * hour, 1.0) for i in range(15)] + [((15 + i) * hour, 0.0) for i in range(8)]
    now = 22 * hour
    f = forecast(points, deadline=now + 30 * 24 * hour, now=now, min_history_days=0.5)
    assert f.share_now == 0.0 and f.at_risk and f.share_at_deadline < 1.0
