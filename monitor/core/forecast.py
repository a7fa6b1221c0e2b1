"""Deadline forecast: the ready share over time and a robust trend to the deadline. Pure; no clock.

The trend is a Theil–Sen line (the median of the slopes between every pair of samples): a few
outliers, such as an hour when a county PoP was down, do not move it, where least squares would. Its
uncertainty is the slope's confidence interval (Sen 1968), carried to the deadline as a range. Without a
configured minimum of history (3 days of hourly samples by default) there is no forecast at all: a trend
fitted on a few minutes said "+522%/day".
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist, median
from typing import Any, TypeVar

DAY_SECONDS = 86400.0
MAX_FIT_POINTS = 2000  # the pairwise fit is quadratic: 2,000 points are ~2 million slopes
EXPORT_VERSION = 1
_FULL = 1.0 - 1e-9  # a share this close to 1 is everyone ready (float noise, not a missing site)
CONFIDENCE = 0.95  # of the slope's interval

P = TypeVar("P")
Scope = tuple[str, str]  # ("province", ""), ("county", "Ilam"), ("area", "rural")
PROVINCE: Scope = ("province", "")


def _subsample(items: Sequence[P], limit: int) -> list[P]:
    """Return at most ``limit`` items evenly spread over ``items``, first and last included."""
    n = len(items)
    if n <= limit:
        return list(items)
    return [items[round(i * (n - 1) / (limit - 1))] for i in range(limit)]


def _fit_points(points: Sequence[tuple[float, float]], max_points: int) -> list[tuple[float, float]]:
    pts = _subsample(sorted(points), max(2, max_points))
    if len({x for x, _ in pts}) < 2:
        raise ValueError("a trend needs points at two different times at least")
    return pts


def _slopes(pts: Sequence[tuple[float, float]]) -> tuple[float, list[float], list[float], list[float]]:
    x0 = pts[0][0]  # fit around the first x: Unix times times small slopes lose digits otherwise
    xs = [x - x0 for x, _ in pts]
    ys = [y for _, y in pts]
    slopes = [(ys[j] - ys[i]) / (xs[j] - xs[i])
              for i in range(len(xs)) for j in range(i + 1, len(xs)) if xs[j] != xs[i]]
    return x0, xs, ys, slopes


def theil_sen(points: Sequence[tuple[float, float]], *, max_points: int = MAX_FIT_POINTS) -> tuple[float, float]:
    """Return (slope, intercept) of the Theil–Sen line through ``points`` (y = intercept + slope·x).

    Above ``max_points`` an evenly spaced, deterministic subsample is fitted.
    Raises ValueError with fewer than two distinct x.
    """
    x0, xs, ys, slopes = _slopes(_fit_points(points, max_points))
    slope = median(slopes)
    intercept = median(y - slope * x for x, y in zip(xs, ys, strict=True))
    return slope, intercept - slope * x0


def slope_interval(points: Sequence[tuple[float, float]], confidence: float = CONFIDENCE, *,
                   max_points: int = MAX_FIT_POINTS) -> tuple[float, float, float]:
    """Return (slope, low, high): the Theil–Sen slope and its ``confidence`` interval (Sen 1968).

    The interval is read off the sorted pairwise slopes, C = z·sqrt(n(n-1)(2n+5)/18) of them around the
    median (the normal approximation of Kendall's S; n is the number of points fitted).
    """
    pts = _fit_points(points, max_points)
    _, _, _, slopes = _slopes(pts)
    slopes.sort()
    n, m = len(pts), len(slopes)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    c = z * math.sqrt(n * (n - 1) * (2 * n + 5) / 18)
    low = min(m - 1, max(0, math.floor((m - c) / 2)))
    high = min(m - 1, max(0, math.ceil((m + c) / 2)))
    return median(slopes), slopes[low], slopes[high]


@dataclass(frozen=True, slots=True)
class Forecast:
    """Where the ready share is heading, or, without enough history, only where it is.

    Every projection is one bounded line from the current share at the Theil–Sen pace, so the figures agree:
    ``at_risk`` is exactly ``share_at_deadline < target``, and while at risk ``all_ready_at`` is after the
    deadline or None (never at this pace).
    """

    share_now: float | None  # the latest sample's share; None: no samples (or a scope without polling places)
    points: int  # samples in the fit window
    history_seconds: float  # from the first to the last of them
    target: float = 1.0  # the share the deadline asks for
    # None while there is not enough history: "not enough history" instead of a number.
    share_at_deadline: float | None = None  # within [0, 1]
    share_at_deadline_low: float | None = None  # the same line at the slope's lower confidence bound
    share_at_deadline_high: float | None = None  # ... and at its upper bound
    slope_per_day: float | None = None  # share points per day (0.01 = +1%/day)
    slope_per_day_low: float | None = None
    slope_per_day_high: float | None = None
    all_ready_at: float | None = None  # when the line reaches 100%; None: never at this pace (or no forecast)
    at_risk: bool | None = None  # share_at_deadline < target; None: no forecast

    @property
    def enough_history(self) -> bool:
        return self.share_at_deadline is not None


def _clip(share: float) -> float:
    return min(1.0, max(0.0, share))


def min_samples(min_history_days: float, resolution_seconds: float) -> int:
    """Return the samples a forecast needs: one per ``resolution_seconds`` over ``min_history_days`` (2 at least)."""
    return max(2, math.ceil(min_history_days * DAY_SECONDS / resolution_seconds - 1e-9))


def forecast(points: Sequence[tuple[float, float]], deadline: float, now: float, *, days: float = 14.0,
             min_history_days: float = 3.0, resolution_seconds: float = 3600.0, target: float = 1.0,
             confidence: float = CONFIDENCE) -> Forecast:
    """Return the forecast at ``deadline`` from the (time, ready share) samples of the last ``days``.

    With fewer samples than one per ``resolution_seconds`` over ``min_history_days`` (or spread over less
    time than that) there is no forecast: only the current share. Otherwise the share projects from the
    current one at the Theil–Sen slope, bounded to 0..100%, with the slope's ``confidence`` interval as
    a range; once the deadline has passed, the share at the deadline is the current one.
    """
    past = sorted(p for p in points if p[0] <= now)
    recent = [p for p in past if p[0] >= now - days * DAY_SECONDS]
    current = past[-1][1] if past else None
    span = recent[-1][0] - recent[0][0] if recent else 0.0
    need = min_samples(min_history_days, resolution_seconds)
    base = Forecast(current, len(recent), span, target)
    if current is None or len(recent) < need or span < (need - 1) * resolution_seconds - 1e-6:
        return base
    slope, low, high = slope_interval(recent, confidence)
    # The robust fit gives the pace; the projection starts from where the province is now, so a recent fall
    # (sites gone dark after a long good run) is never forecast away as an outlier.
    ahead = max(0.0, deadline - now)

    def at_deadline(s: float) -> float:
        return _clip(current + s * ahead)

    share = at_deadline(slope)
    if current >= _FULL and slope >= 0:
        all_ready_at: float | None = now
    elif slope > 0:
        all_ready_at = now + (1.0 - current) / slope
    else:
        all_ready_at = None
    return replace(base, share_at_deadline=share, share_at_deadline_low=at_deadline(low),
                   share_at_deadline_high=at_deadline(high), slope_per_day=slope * DAY_SECONDS,
                   slope_per_day_low=low * DAY_SECONDS, slope_per_day_high=high * DAY_SECONDS,
                   all_ready_at=all_ready_at, at_risk=share < target - 1e-9)


class ShareHistory:
    """(time, ready, total) samples per scope, at most one per ``resolution_seconds``, bounded.

    A sample in the same resolution bucket as the previous one replaces it, so the newest sample is
    always the current share.
    """

    def __init__(self, resolution_seconds: float = 3600.0, max_samples: int = 24 * 90) -> None:
        if resolution_seconds <= 0 or max_samples < 2:
            raise ValueError("resolution_seconds must be > 0 and max_samples >= 2")
        self.resolution_seconds = float(resolution_seconds)
        self.max_samples = max_samples
        self._samples: dict[Scope, deque[tuple[float, int, int]]] = {}

    def add(self, key: Scope, at: float, ready: int, total: int) -> None:
        """Record that ``ready`` of ``total`` sites of scope ``key`` were ready at ``at``."""
        if not 0 <= ready <= total:
            raise ValueError(f"ready {ready} must be within 0..total {total}")
        samples = self._samples.setdefault(key, deque(maxlen=self.max_samples))
        if samples:
            last = samples[-1][0]
            if at < last:
                return  # late or replayed: the record already covers that time
            if math.floor(at / self.resolution_seconds) == math.floor(last / self.resolution_seconds):
                samples.pop()
        samples.append((float(at), int(ready), int(total)))

    def record(self, at: float, sites: Iterable[tuple[str, str, str]]) -> None:
        """Record province, county and area counts from (county, area, state) of every reported site."""
        counts: dict[Scope, list[int]] = {PROVINCE: [0, 0]}
        for county, area, state in sites:
            for key in (PROVINCE, ("county", county), ("area", area)):
                c = counts.setdefault(key, [0, 0])
                c[0] += state == "ready"
                c[1] += 1
        for key, (ready, total) in counts.items():
            self.add(key, at, ready, total)

    def record_scopes(self, at: float, scopes: Mapping[Scope, tuple[int, int]]) -> None:
        """Record (ready, total) of each scope, as monitor.core.figures counts them."""
        for key, (ready, total) in scopes.items():
            self.add(key, at, ready, total)

    def keys(self) -> list[Scope]:
        """Return the scopes with samples, sorted."""
        return sorted(self._samples)

    def samples(self, key: Scope) -> list[tuple[float, int, int]]:
        """Return the (time, ready, total) samples of ``key``, oldest first."""
        return list(self._samples.get(key, ()))

    def points(self, key: Scope) -> list[tuple[float, float]]:
        """Return (time, ready share) of ``key``, skipping samples with no sites."""
        return [(t, ready / total) for t, ready, total in self._samples.get(key, ()) if total > 0]

    def forecasts(self, deadline: float, now: float, *, days: float = 14.0, min_history_days: float = 3.0,
                  target: float = 1.0) -> dict[Scope, Forecast]:
        """Return the forecast of every scope (sampled at this history's resolution)."""
        return {key: forecast(self.points(key), deadline, now, days=days, min_history_days=min_history_days,
                              resolution_seconds=self.resolution_seconds, target=target) for key in self.keys()}

    def export(self) -> dict[str, Any]:
        """Return the samples as JSON-able data for `restore`."""
        return {
            "version": EXPORT_VERSION,
            "resolution_seconds": self.resolution_seconds,
            "scopes": [{"scope": scope, "name": name, "samples": [list(s) for s in self._samples[(scope, name)]]}
                       for scope, name in self.keys()],
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Replace the samples with ``data`` from `export` (keeping at most ``max_samples`` each)."""
        if data.get("version") != EXPORT_VERSION:
            raise ValueError(f"cannot restore share history version {data.get('version')!r}")
        restored: dict[Scope, deque[tuple[float, int, int]]] = {}
        for entry in data["scopes"]:
            samples = sorted((float(t), int(r), int(n)) for t, r, n in entry["samples"])
            restored[(str(entry["scope"]), str(entry["name"]))] = deque(samples, maxlen=self.max_samples)
        self._samples = restored
