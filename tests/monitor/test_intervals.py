"""One interval merge for maintenance windows, availability and the audit's monitor outages."""

from __future__ import annotations

import pytest

from monitor.core.intervals import merge


@pytest.mark.parametrize(("intervals", "start", "end", "merged"), [
    ([], 0, 10, []),
    ([(5, 6), (1, 2)], 0, 10, [(1, 2), (5, 6)]),
    ([(1, 3), (2, 4), (4, 5)], 0, 10, [(1, 5)]),  # overlapping and touching ones join
    ([(1, 9), (2, 3)], 0, 10, [(1, 9)]),  # one inside another
    ([(3, 3), (4, 2)], 0, 10, []),  # empty ones drop
    ([(-5, 1), (8, 15), (20, 30)], 0, 10, [(0, 1), (8, 10)]),  # clipped to the period
])
def test_merge(intervals: list[tuple[float, float]], start: float, end: float,
               merged: list[tuple[float, float]]) -> None:
    assert merge(intervals, start, end) == merged


def test_merge_without_a_period_only_joins() -> None:
    assert merge([(-5.0, 1.0), (1.0, 2.0), (100.0, 101.0)]) == [(-5.0, 2.0), (100.0, 101.0)]
