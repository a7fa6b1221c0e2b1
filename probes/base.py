"""The one probe interface: many targets in, one observation per target out.

A probe kind is a module in this package with a ``PROBE`` object that satisfies :class:`Probe`.
Failures are values (``Observation.ok`` is False, with a failure kind and a short reason);
only programming errors raise, and the runner catches and logs those once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from monitor.config import Config

# The longest interval, timeout or jitter a config may set: a day. Longer is a mistake, and past
# about 10^14 s datetime and APScheduler overflow (a reload of `.inf` used to stop every probe job).
MAX_INTERVAL_SECONDS = 86_400.0


class ProbeSettings(BaseModel):
    """Settings every probe kind shares; kinds subclass it and add their own."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    enabled: bool = True
    interval_seconds: float = Field(60.0, gt=0, le=MAX_INTERVAL_SECONDS)
    timeout_seconds: float = Field(2.0, gt=0, le=MAX_INTERVAL_SECONDS)
    jitter_seconds: float = Field(5.0, ge=0, le=MAX_INTERVAL_SECONDS)
    concurrency: int = Field(512, ge=1, le=100_000)

    def cycle_budget_seconds(self) -> float:
        """Return the longest a cycle may take with these settings (before overhead)."""
        return self.timeout_seconds

    def cycle_seconds_for(self, targets: int) -> float:
        """Return the longest a cycle over ``targets`` targets may take (kinds that pace override this)."""
        return self.cycle_budget_seconds()

    @model_validator(mode="after")
    def _budget_fits_interval(self) -> ProbeSettings:
        budget = self.cycle_budget_seconds()
        if budget >= self.interval_seconds:
            raise ValueError(
                f"a cycle may take {budget:g}s (timeout and retries) which is not shorter than "
                f"interval_seconds={self.interval_seconds:g}"
            )
        return self


@dataclass(frozen=True, slots=True)
class Target:
    """One thing to probe: a link address, a terminal service, an SNMP interface."""

    key: str  # stable and unique: "ILM-001/primary", "ILM-001/terminal/T1", "ILM-001/primary/snmp"
    site: str
    address: str
    port: int | None = None
    source: str | None = None  # address or interface to send from (proves the backup path)
    extra: Mapping[str, Any] = field(default_factory=dict)  # kind-specific, never secrets


@dataclass(frozen=True, slots=True)
class Observation:
    """What one probe cycle saw of one target."""

    key: str
    kind: str
    ok: bool
    at: float  # unix seconds when the measurement finished
    values: Mapping[str, float] = field(default_factory=dict)  # unit in the name: rtt_avg_seconds
    failure: str = ""  # short machine word: timeout, refused, unreachable, no_such_object, error
    reason: str = ""  # one short human line, never a secret
    details: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # e.g. {"missing": ("T3",)}

    @classmethod
    def failed(cls, target: Target, kind: str, failure: str, reason: str, **values: float) -> Observation:
        """Build a failed observation for ``target``."""
        return cls(target.key, kind, False, time.time(), values, failure, reason)


class Probe(Protocol):
    """A probe kind: the registry in ``probes/__init__.py`` maps ``kind`` to one of these."""

    kind: str
    settings_model: type[ProbeSettings]

    def targets(self, config: Config) -> list[Target]:
        """Return this kind's targets for the config's inventory."""
        ...

    async def run(
        self, targets: Sequence[Target], settings: ProbeSettings, deadline: float
    ) -> list[Observation]:
        """Probe every target and return one observation per target by ``deadline`` (monotonic)."""
        ...

    async def close(self) -> None:
        """Release sockets, engines and other resources."""
        ...
