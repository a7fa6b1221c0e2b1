"""The cyclic garbage collector's share of the service's CPU (issue 13).

A province's config and inventory are half a million objects that live until the next reload, and every full
collection walked them all again: at 10,000 sites, 0.2-0.5 s a time, a few times a cycle, more CPU than
evaluating readiness (1.8 s of the 3.1 s two evaluations and two /metrics renders took; 0.5 s now). Once the
config is loaded, `settle` moves everything alive into the permanent generation (``gc.freeze``), where
collections do not look, and lets ten times as many younger collections pass between two full ones. Objects
still go as soon as nothing refers to them (reference counting); only reference cycles wait for a full
collection, which still comes every few cycles.

The service's big buffers (a /metrics body of 14 MB, its text before encoding, the inventory's text) are
allocated by glibc's malloc, which after freeing one raises its mmap threshold to that size (up to 32 MB): the
next ones come from the heap, and the heap keeps their pages. `release_large_buffers` pins the threshold, so a
buffer of 128 KiB or more is mapped on its own and goes back to the system when freed: measured with real
probes at 10,000 sites, 257 MiB resident after the first scrape, 204 MiB with it (issue 13).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging

log = logging.getLogger(__name__)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # mallopt(3)
ARENAS = 2  # the loop's and one for every worker thread together (glibc's default: 8 per core)
LARGE_BUFFER_BYTES = 128 * 1024  # glibc's default mmap threshold, fixed instead of sliding up

FULL_COLLECTION_EVERY = 100  # second-generation collections between two full ones (CPython's default: 10)


def release_large_buffers() -> bool:
    """Have every large buffer mapped on its own, so freeing it returns its memory; False where the C library
    has no mallopt (not glibc): nothing changes there."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = libc.mallopt if libc is not None else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    ok = bool(mallopt(M_MMAP_THRESHOLD, LARGE_BUFFER_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, LARGE_BUFFER_BYTES))
    # Renders and API pages are built in worker threads; each thread would get an arena of its own, whose freed
    # pages stay resident. Two arenas share them.
    ok = bool(mallopt(M_ARENA_MAX, ARENAS)) and ok
    global _trim
    _trim = getattr(libc, "malloc_trim", None)
    if not ok:
        log.debug("mallopt refused the thresholds: large buffers stay with the allocator's defaults")
    return ok


_trim = None  # glibc's malloc_trim, once release_large_buffers found it


def trim() -> None:
    """Give the pages malloc holds free (inside its heaps too, not only at their top) back to the system: after
    a cycle's renders, most of what they built is garbage. Nothing where the C library has no malloc_trim."""
    if _trim is not None:
        _trim(0)


_settled = False  # settle() was called: the process is the service (`readiness run`), not a test or a tool


def settle() -> None:
    """Collect what loading left behind, then keep what is alive now out of the collector's sight."""
    global _settled
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)
    _settled = True


def resettle() -> None:
    """After a reload: settle again, when the process settled at its start (the old config goes by refcount)."""
    if _settled:
        settle()
