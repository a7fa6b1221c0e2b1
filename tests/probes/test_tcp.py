"""TCP connect against real listeners on loopback: open, refused, black-holed."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator

import pytest

from probes.base import Target
from probes.tcp import PROBE, TcpSettings
from tests.helpers import free_port


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A listener whose accept queue is full: the kernel drops further SYNs, so connects hang."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):  # fill the queue; connects beyond it go unanswered
        c = socket.socket()
        c.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            c.connect(("127.0.0.1", port))
        fillers.append(c)
    time.sleep(0.2)
    yield port
    for c in fillers:
        c.close()
    server.close()


async def test_open_refused_and_blackholed(blackhole: int) -> None:
    """One open port, one closed port and one that never answers, in one cycle within its budget."""
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    open_port = server.sockets[0].getsockname()[1]
    targets = [Target("S/terminal/open", "S", "127.0.0.1", open_port),
               Target("S/terminal/closed", "S", "127.0.0.1", free_port()),
               Target("S/terminal/hole", "S", "127.0.0.1", blackhole)]
    settings = TcpSettings(timeout_seconds=1.0, interval_seconds=10)
    start = time.monotonic()
    result = {o.key.rsplit("/", 1)[1]: o for o in await PROBE.run(targets, settings, start + 5)}
    took = time.monotonic() - start
    server.close()
    assert result["open"].ok and 0 < result["open"].values["connect_seconds"] < 1
    assert (result["closed"].ok, result["closed"].failure) == (False, "refused")
    assert (result["hole"].ok, result["hole"].failure) == (False, "timeout")
    assert took < 3, "a black-holed port must cost at most its timeout"


async def test_deadline_bounds_the_cycle(blackhole: int) -> None:
    """The caller's deadline wins over a longer timeout."""
    targets = [Target(f"S/terminal/{i}", "S", "127.0.0.1", blackhole) for i in range(5)]
    settings = TcpSettings(timeout_seconds=5.0, interval_seconds=60, concurrency=2)
    start = time.monotonic()
    result = await PROBE.run(targets, settings, start + 0.5)
    assert time.monotonic() - start < 2.5
    assert all(not o.ok and o.failure in ("timeout", "not_probed") for o in result)


async def test_ipv6_loopback() -> None:
    """::1 works like 127.0.0.1."""
    try:
        server = await asyncio.start_server(lambda r, w: w.close(), "::1", 0)
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    port = server.sockets[0].getsockname()[1]
    [o] = await PROBE.run([Target("S/terminal/v6", "S", "::1", port)], TcpSettings(), time.monotonic() + 3)
    server.close()
    assert o.ok
