"""The service keeps its config out of the garbage collector's sight (issue 13: full collections walked it)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from monitor.runtime import heap


@pytest.fixture
def restored() -> Iterator[None]:
    """Put the collector back as it was: a test process must not keep its objects frozen."""
    threshold, settled = gc.get_threshold(), heap._settled
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
    heap._settled = settled


def test_settle_freezes_what_is_alive_and_spaces_full_collections(restored: None) -> None:
    """What lives when the service settles is frozen; young objects are still collected; full collections
    come every FULL_COLLECTION_EVERY second-generation ones."""
    kept = [[i] for i in range(1000)]
    heap.settle()
    assert gc.get_freeze_count() >= len(kept)
    assert gc.get_threshold()[2] == heap.FULL_COLLECTION_EVERY
    cycle: list[object] = []
    cycle.append(cycle)  # garbage only the cyclic collector can free
    del cycle
    assert gc.collect() >= 1


def test_resettle_only_after_settle(restored: None) -> None:
    """A reload settles again only in a process that settled at its start (not in a test or a tool)."""
    gc.unfreeze()
    heap._settled = False
    heap.resettle()
    assert gc.get_freeze_count() == 0
    heap.settle()
    heap.resettle()
    assert gc.get_freeze_count() > 0


def test_large_buffers_are_mapped_on_their_own() -> None:
    """On glibc the service pins malloc's mmap threshold: a freed 14 MB /metrics body leaves no heap behind."""
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert heap.release_large_buffers()


def test_trim_gives_free_pages_back() -> None:
    """After release_large_buffers found glibc's malloc_trim, trim() returns what many small freed objects left
    in the heap: resident memory does not grow by what was freed."""
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("malloc_trim is glibc's")
    assert heap.release_large_buffers() and heap._trim is not None

    def rss_kib() -> int:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

    heap.trim()
    before = rss_kib()
    junk = [bytes(600) for _ in range(200_000)]  # ~130 MB of malloc'd (not pymalloc) blocks
    del junk
    heap.trim()
    assert rss_kib() - before < 32 * 1024
