"""ICMP echo: sent, received, loss ratio, min/avg/max RTT and jitter per target.

PLACEHOLDER run(): the real batched engine (one socket, many requests in flight) replaces it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from probes.base import Observation, ProbeSettings, Target

if TYPE_CHECKING:
    from monitor.config import Config

KIND = "icmp"


class IcmpSettings(ProbeSettings):
    count: int = Field(3, ge=1, le=100, description="echo requests per target per cycle")
    spacing_seconds: float = Field(0.5, ge=0.001, description="between two echoes to one target")
    timeout_seconds: float = Field(1.0, gt=0, description="wait for the last reply")
    payload_bytes: int = Field(56, ge=0, le=1472)
    rate_per_second: int = Field(20_000, ge=1, description="echo requests per second, all targets together")
    socket: Literal["auto", "raw", "datagram"] = "auto"

    def cycle_budget_seconds(self) -> float:
        """Return spacing between echoes plus the wait for the last one."""
        return (self.count - 1) * self.spacing_seconds + self.timeout_seconds


class IcmpProbe:
    kind: str = KIND
    settings_model: type[ProbeSettings] = IcmpSettings

    def targets(self, config: Config) -> list[Target]:
        """Return every link address, and every terminal without a service port."""
        out: list[Target] = []
        for site in config.sites:
            out += [Target(f"{site.id}/{link.role}", site.id, link.address, source=link.source)
                    for link in site.links]
            out += [Target(f"{site.id}/terminal/{t.id}", site.id, t.address)
                    for t in site.terminals if t.port is None]
        return out

    async def run(self, targets: Sequence[Target], settings: ProbeSettings, deadline: float) -> list[Observation]:
        """Ping every target ``settings.count`` times."""
        raise NotImplementedError

    async def close(self) -> None:
        """Close the shared socket(s)."""


PROBE = IcmpProbe()
