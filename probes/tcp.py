"""TCP connect to a terminal's service port: open, refused or timed out, with the connect time.

Who failed matters: a connect that our own stack refuses at once (no route from us: ENETUNREACH or
EHOSTUNREACH from ``connect()`` itself, before any packet left) is the monitor's failure (``no_route``);
the same errors reported later, by an ICMP error or a neighbour that never answered, are the network's
or the site's (``unreachable``).
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import time
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from probes.base import (
    MAX_INTERVAL_SECONDS,
    NOTHING_DROPPED,
    Dropped,
    Observation,
    ProbeSettings,
    Target,
    Values,
    requests_in,
)

KIND = "tcp"
# What connect() itself may fail with when our own routing table has no way there.
LOCAL_UNREACHABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EACCES, errno.EPERM}
CONNECT_KEYS = ("connect_seconds",)  # the one layout of an open port's values, shared (probes.base.Values)


class TcpSettings(ProbeSettings):
    timeout_seconds: float = Field(3.0, gt=0, le=MAX_INTERVAL_SECONDS)
    concurrency: int = Field(1024, ge=1, le=100_000)

    def cycle_seconds_for(self, targets: int) -> float:
        """Return the cycle length for ``targets`` when every connect takes its whole timeout:
        ``concurrency`` connects at once, one round after another."""
        rounds = -(-targets // self.concurrency) if targets else 1
        return rounds * self.timeout_seconds


# Our own stack's failures, never the terminal's: no local address or port to connect from, no descriptors
# or buffers left for another socket.
BIND_ERRORS = frozenset({errno.EADDRNOTAVAIL, errno.EADDRINUSE})
LOCAL_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def _sockaddr(address: str, port: int | None) -> tuple[int, Any]:
    """Return the address family and socket address of a numeric address (the config holds no names): an
    IPv4 one directly, without a getaddrinfo call per connect; anything else as getaddrinfo(AI_NUMERICHOST)
    says (its gaierror is an OSError, as before)."""
    if port is not None:
        try:
            socket.inet_pton(socket.AF_INET, address)
            return socket.AF_INET, (address, port)
        except OSError:
            pass
    family, _, _, _, sockaddr = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM,
                                                   flags=socket.AI_NUMERICHOST)[0]
    return family, sockaddr


def _failure(exc: OSError) -> tuple[str, str]:
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return "refused", "connection refused"
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable", (exc.strerror or "unreachable").lower()
    if exc.errno in BIND_ERRORS:
        return "bind_failed", f"cannot bind a local address: {(exc.strerror or str(exc)).lower()}"
    if exc.errno in LOCAL_ERRORS:
        return "local_error", f"the monitor's own stack: {(exc.strerror or str(exc)).lower()}"
    return "error", (exc.strerror or str(exc)).lower()


class TcpProbe:
    kind: str = KIND
    settings_model: type[ProbeSettings] = TcpSettings

    async def _one(self, target: Target, limit: float, deadline: float) -> Observation:
        timeout = min(limit, deadline - time.monotonic())
        if timeout <= 0:
            return Observation.failed(target, KIND, "not_probed", "cycle deadline reached before connecting")
        try:
            family, sockaddr = _sockaddr(target.address, target.port)
            sock = socket.socket(family, socket.SOCK_STREAM)
        except ValueError as exc:
            return Observation.failed(target, KIND, "error", str(exc).lower())
        except OSError as exc:  # out of sockets is our own stack's failure (local_error), not the site's
            return Observation.failed(target, KIND, *_failure(exc))
        try:
            sock.setblocking(False)
            start = time.perf_counter()
            code = sock.connect_ex(sockaddr)
            if code in LOCAL_UNREACHABLE:  # refused by our own stack: nothing left this host
                why = os.strerror(code).lower()
                return Observation.failed(target, KIND, "no_route", f"no route from here: {why}")
            if code not in (0, errno.EINPROGRESS):
                return Observation.failed(target, KIND, *_failure(OSError(code, os.strerror(code))))
            if code:
                try:
                    # asyncio.timeout, not wait_for: wait_for wraps the connect in a task of its own, and at
                    # 20,000 connects a cycle that task was a third of the probe's CPU (issue 13).
                    async with asyncio.timeout(timeout):
                        await asyncio.get_running_loop().sock_connect(sock, sockaddr)
                except TimeoutError:
                    return Observation.failed(target, KIND, "timeout", f"no answer within {timeout:.3g}s")
                except OSError as exc:
                    return Observation.failed(target, KIND, *_failure(exc))
            connect = time.perf_counter() - start
        finally:
            sock.close()  # proven open (or not); how it closes is not our concern
        return Observation(target.key, KIND, True, time.time(), Values(CONNECT_KEYS, (connect,)),
                           mono=time.monotonic())

    async def run(self, targets: Sequence[Target], settings: ProbeSettings, deadline: float) -> list[Observation]:
        """Connect to every target, at most ``settings.concurrency`` at once, all done by ``deadline``.

        A target whose turn comes after the deadline is ``not_probed``: the cycle never reached it. The
        connects are made by ``concurrency`` workers taking the targets in turn, not by a task per target.
        """
        limit = settings.timeout_seconds
        out: list[Observation | None] = [None] * len(targets)
        turns = iter(range(len(targets)))

        async def worker() -> None:
            for i in turns:
                out[i] = await self._one(targets[i], limit, deadline)

        await asyncio.gather(*(worker() for _ in range(min(settings.concurrency, len(targets)))))
        return out  # type: ignore[return-value]  # every turn was taken: no None is left

    async def warm(self) -> None:
        """Hold nothing between cycles: nothing to warm."""

    async def close(self) -> None:
        """Hold nothing between cycles."""

    def requests_sent(self, observations: Sequence[Observation]) -> int:
        """Return one connect per observation."""
        return requests_in(observations)

    def dropped(self) -> Dropped:
        """Return zeros: each connect has a socket of its own, nothing shared to drop on."""
        return NOTHING_DROPPED


PROBE = TcpProbe()
