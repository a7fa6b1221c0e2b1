"""TCP connect to a terminal's service port: open, refused or timed out, with the connect time."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import Field

from probes.base import MAX_INTERVAL_SECONDS, Observation, ProbeSettings, Target

if TYPE_CHECKING:
    from monitor.config import Config

KIND = "tcp"


class TcpSettings(ProbeSettings):
    timeout_seconds: float = Field(3.0, gt=0, le=MAX_INTERVAL_SECONDS)
    concurrency: int = Field(1024, ge=1, le=100_000)


def _failure(exc: OSError) -> tuple[str, str]:
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return "refused", "connection refused"
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable", (exc.strerror or "unreachable").lower()
    return "error", (exc.strerror or str(exc)).lower()


class TcpProbe:
    kind: str = KIND
    settings_model: type[ProbeSettings] = TcpSettings

    def targets(self, config: Config) -> list[Target]:
        """Return one target per terminal that declares a service port."""
        return [
            Target(f"{site.id}/terminal/{t.id}", site.id, t.address, t.port)
            for site in config.sites
            for t in site.terminals
            if t.port is not None
        ]

    async def _one(self, target: Target, limit: float, deadline: float, gate: asyncio.Semaphore) -> Observation:
        async with gate:
            timeout = min(limit, deadline - time.monotonic())
            if timeout <= 0:
                return Observation.failed(target, KIND, "skipped", "cycle deadline reached before connecting")
            start = time.perf_counter()
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(target.address, target.port), timeout=timeout
                )
            except TimeoutError:
                return Observation.failed(target, KIND, "timeout", f"no answer within {timeout:.3g}s")
            except OSError as exc:
                failure, reason = _failure(exc)
                return Observation.failed(target, KIND, failure, reason)
            connect = time.perf_counter() - start
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):  # proven open; how it closes is not our concern
                await asyncio.wait_for(writer.wait_closed(), timeout=1.0)
            return Observation(target.key, KIND, True, time.time(), {"connect_seconds": connect})

    async def run(self, targets: Sequence[Target], settings: ProbeSettings, deadline: float) -> list[Observation]:
        """Connect to every target, at most ``settings.concurrency`` at once, all done by ``deadline``."""
        gate = asyncio.Semaphore(settings.concurrency)
        limit = settings.timeout_seconds
        return list(await asyncio.gather(*(self._one(t, limit, deadline, gate) for t in targets)))

    async def close(self) -> None:
        """Hold nothing between cycles."""


PROBE = TcpProbe()
