"""Deadline forecast: the ready share over time and a robust trend to the deadline. Pure; no clock.

The trend is a Theil–Sen line (the median of the slopes between every pair of samples): a few
outliers, such as an hour when a county PoP was down, do not move it, where least squares would.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import median
from typing import Any, TypeVar

DAY_SECONDS = 86400.0
MAX_FIT_POINTS = 2000  # the pairwise fit is quadratic: 2,000 points are ~2 million slopes
EXPORT_VERSION = 1
_FULL = 1.0 - 1e-9  # a share this close to 1 is everyone ready (float noise, not a missing site)

P = TypeVar("P")
Scope = tuple[str, str]  # ("province", ""), ("county", "Ilam"), ("area", "rural")
PROVINCE: Scope = ("province", "")


def _subsample(items: Sequence[P], limit: int) -> list[P]:
    """Return at most ``limit`` items evenly spread over ``items``, first and last included."""
    n = len(items)
    if n <= limit:
        return list(items)
    return [items[round(i * (n - 1) / (limit - 1))] for i in range(limit)]


def theil_sen(points: Sequence[tuple[float, float]], *, max_points: int = MAX_FIT_POINTS) -> tuple[float, float]:
    """Return (slope, intercept) of the Theil–Sen line through ``points`` (y = intercept + slope·x).

    Above ``max_points`` an evenly spaced, deterministic subsample is fitted.
    Raises ValueError with fewer than two distinct x.
    """
    pts = _subsample(sorted(points), max(2, max_points))
    if len({x for x, _ in pts}) < 2:
        raise ValueError("a trend needs points at two different times at least")
    x0 = pts[0][0]  # fit around the first x: Unix times times small slopes lose digits otherwise
    xs = [x - x0 for x, _ in pts]
    ys = [y for _, y in pts]
    slopes = [(ys[j] - ys[i]) / (xs[j] - xs[i])
              for i in range(len(xs)) for j in range(i + 1, len(xs)) if xs[j] != xs[i]]
    slope = median(slopes)
    intercept = median(y - slope * x for x, y in zip(xs, ys, strict=True))
    return slope, intercept - slope * x0


@dataclass(frozen=True, slots=True)
class Forecast:
    """Where the ready share is heading."""

    share_at_deadline: float  # within [0, 1]
    all_ready_at: float | None  # when the trend reaches 100%; None if it never does
    at_risk: bool  # share_at_deadline < 100%
    slope_per_day: float
    points: int  # samples the trend was fitted on
    share_now: float | None = None  # the latest sample's share


def _clip(share: float) -> float:
    return min(1.0, max(0.0, share))


def forecast(points: Sequence[tuple[float, float]], deadline: float, now: float, *, days: float = 14.0) -> Forecast:
    """Return the forecast at ``deadline`` from the (time, ready share) samples of the last ``days``.

    Without samples the share is taken as 0 (at risk: nothing shows the sites are ready). With
    samples at fewer than two times, the current share stands for the deadline. Once the deadline
    has passed, the share at the deadline is the current one.
    """
    past = sorted(p for p in points if p[0] <= now)
    if not past:
        return Forecast(0.0, None, True, 0.0, 0, None)
    current = past[-1][1]
    recent = [p for p in past if p[0] >= now - days * DAY_SECONDS]
    slope = intercept = 0.0
    fitted = len({t for t, _ in recent}) >= 2
    if fitted:
        slope, intercept = theil_sen(recent)
    # The robust fit gives the pace; the projection starts from where the province is now, so a
    # recent fall (sites gone dark after a long good run) is never forecast away as an outlier.
    fitted_at_deadline = intercept + slope * deadline
    projected = current + slope * (deadline - now)
    if current >= _FULL:
        all_ready_at: float | None = now
    elif fitted and slope > 0:
        all_ready_at = now + (1.0 - current) / slope
    else:
        all_ready_at = None
    share = _clip(min(fitted_at_deadline, projected) if fitted and deadline > now else current)
    return Forecast(share, all_ready_at, share < _FULL, slope * DAY_SECONDS, len(recent), current)


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

    def keys(self) -> list[Scope]:
        """Return the scopes with samples, sorted."""
        return sorted(self._samples)

    def samples(self, key: Scope) -> list[tuple[float, int, int]]:
        """Return the (time, ready, total) samples of ``key``, oldest first."""
        return list(self._samples.get(key, ()))

    def points(self, key: Scope) -> list[tuple[float, float]]:
        """Return (time, ready share) of ``key``, skipping samples with no sites."""
        return [(t, ready / total) for t, ready, total in self._samples.get(key, ()) if total > 0]

    def forecasts(self, deadline: float, now: float, *, days: float = 14.0) -> dict[Scope, Forecast]:
        """Return the forecast of every scope."""
        return {key: forecast(self.points(key), deadline, now, days=days) for key in self.keys()}

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
