"""Half-open time intervals ``[start, end)`` as ``(start, end)`` pairs of Unix seconds. Pure.

Maintenance windows (monitor.core.schedule), availability (monitor.core.availability) and the
audit's monitor outages (monitor.audit.figures) all merge intervals here, the same way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

Interval = tuple[float, float]


def merge(intervals: Iterable[Interval], start: float = -math.inf, end: float = math.inf) -> list[Interval]:
    """Return ``intervals`` clipped to [start, end) and sorted, empty ones dropped, overlapping or touching
    ones joined."""
    out: list[Interval] = []
    for s, e in sorted((max(s, start), min(e, end)) for s, e in intervals):
        if e <= s:
            continue
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out
