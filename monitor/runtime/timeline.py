"""Readiness over time, applied after each instantaneous verdict: maintenance and waivers, flap damping,
sustained readiness, backups proven to carry traffic, and the deadline forecast.

The timeline holds readiness' memory between cycles: the flap memory that the pure `evaluate` takes and
returns, sustain streaks, share history and proven backups. That memory is not the audit record: the
event store is. All but the flap memory (minutes long) is saved to ``timeline.json`` in the data dir so
a restart resumes instead of starting over.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from monitor.core import figures
from monitor.core.forecast import Forecast, ShareHistory
from monitor.core.history import Flaps, SustainTracker
from monitor.core.readiness import Evaluation, HealthySince, SiteReadiness
from monitor.core.reasons import MAINTENANCE, SUSTAINING, WAIVED, Reason
from monitor.core.schedule import apply_schedule

if TYPE_CHECKING:
    from monitor.config.loader import Config

log = logging.getLogger(__name__)
PROVEN_STATES = frozenset({"up", "impaired"})


class Timeline:
    """The stateful half of readiness; the pure half is monitor/core/readiness.py."""

    def __init__(self, config: Config) -> None:
        policy = config.policy
        self.sustain = SustainTracker(policy.sustain_seconds, policy.sustain_availability_ratio)
        self.flaps: Flaps = MappingProxyType({})  # what evaluate() returned last, for the next evaluate()
        self.healthy_since: HealthySince = MappingProxyType({})  # the same, for the nodes' healthy streaks
        self.shares = ShareHistory(resolution_seconds=policy.forecast_resolution_seconds)
        self.proven: set[str] = set()  # "SITE/backup": links ever seen carrying echo traffic
        self._frozen: tuple[int, frozenset[str]] | None = None  # proven_now()'s last answer, with the set's size
        self.forecasts: dict[tuple[str, str], Forecast] = {}

    def reconfigure(self, config: Config) -> None:
        """Follow a reloaded policy, keeping what has been learnt so far (flap damping takes the policy's
        thresholds at each evaluation, over the same memory)."""
        fresh = Timeline(config)
        fresh.sustain.restore(self.sustain.export())
        fresh.shares.restore(self.shares.export())
        self.sustain, self.shares = fresh.sustain, fresh.shares

    def process(self, config: Config, evaluation: Evaluation,
                previous: Mapping[str, SiteReadiness], now: float) -> dict[str, SiteReadiness]:
        """Keep the flap memory of ``evaluation`` and return the final readiness of every site at ``now``."""
        self.flaps, self.healthy_since = evaluation.flaps, evaluation.healthy_since
        results = evaluation.sites
        tz = ZoneInfo(config.programme.timezone)
        out: dict[str, SiteReadiness] = {}
        for site in config.sites:
            r = results.get(site.id)
            if r is None:
                continue
            r = apply_schedule(r, site.county, config.maintenance, config.waivers, now, tz)
            maintenance = next((x.detail for x in r.reasons if x.code == MAINTENANCE), "")
            # Time in maintenance counts neither for nor against a sustaining streak.
            s = self.sustain.update(site.id, "unknown" if maintenance else r.state, now)
            state, reasons = r.state, r.reasons
            prev = previous.get(site.id)
            if not maintenance:
                state = s.state  # type: ignore[assignment]
                if s.reason and s.reason not in reasons:
                    reasons = (*reasons, s.reason)
            elif state == "ready" and config.policy.sustain_seconds > 0 and (prev is None or prev.state != "ready"):
                # Maintenance pauses a sustaining streak; it never makes a site ready by itself.
                state, reasons = "degraded", (*reasons, Reason(SUSTAINING, "paused for maintenance"))
            for h in r.links:
                if h.state in PROVEN_STATES and not any(x.name == "path_not_proven" for x in h.reasons):
                    self.proven.add(sys.intern(f"{site.id}/{h.role}"))  # the flap memory's copy
            since = prev.since if prev is not None and prev.state == state else now
            waivers = tuple(x for x in reasons if x.code == WAIVED)
            out[site.id] = replace(r, state=state, reasons=reasons, since=since, first_ready_at=s.first_ready_at,
                                   ever_ready=s.ever_ready, regressions=s.regressions, maintenance=maintenance,
                                   waivers=waivers)
        # The ready share of each scope as every surface counts it (polling places only, monitor/core/figures.py).
        scopes = figures.compute(config.reported_sites(), out).scopes()
        self.shares.record_scopes(now, {key: (t.ready, t.total) for key, t in scopes.items()})
        policy = config.policy
        self.forecasts = self.shares.forecasts(config.programme.deadline.timestamp(), now, days=policy.forecast_days,
                                               min_history_days=policy.forecast_min_history_days,
                                               target=policy.forecast_target_ratio)
        return out

    def share_samples(self) -> Mapping[tuple[str, str], tuple[tuple[float, int, int], ...]]:
        """Return the (time, ready, total) samples of every scope, immutable, for the snapshot (the burn-up)."""
        return MappingProxyType({key: tuple(self.shares.samples(key)) for key in self.shares.keys()})  # noqa: SIM118

    def export(self) -> dict[str, Any]:
        return {"version": 1, "sustain": self.sustain.export(), "shares": self.shares.export(),
                "proven": sorted(self.proven)}

    def restore(self, data: dict[str, Any]) -> None:
        self.sustain.restore(data.get("sustain", {}))
        self.shares.restore(data.get("shares", {}))
        self.proven = set(data.get("proven", []))
        self._frozen = None

    def proven_now(self) -> frozenset[str]:
        """Return the proven links as a frozenset for a snapshot: the same one while none was added (the set only
        grows, or is replaced by load), not a copy of 20,000 keys per evaluation."""
        if self._frozen is None or self._frozen[0] != len(self.proven):
            self._frozen = (len(self.proven), frozenset(self.proven))
        return self._frozen[1]

    def save(self, path: Path) -> None:
        """Write the memory atomically (a crash leaves the old file or the new one, never half)."""
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(self.export(), ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            log.error("cannot save %s: %s (the event store still holds the record)", path, exc.strerror or exc)

    def load(self, path: Path) -> None:
        """Resume from ``path`` if it exists and is readable; a bad file is reported and ignored."""
        try:
            self.restore(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.error("ignoring %s: %s; sustained readiness and the forecast start over", path, exc)
