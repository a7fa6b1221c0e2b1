"""The cyclic garbage collector's share of the service's CPU (issue 13).

A province's config and inventory are half a million objects that live until the next reload, and every full
collection walked them all again: at 10,000 sites, 0.2-0.5 s a time, a few times a cycle, more CPU than
evaluating readiness. Once the config is loaded, `settle` moves everything alive into the permanent
generation (``gc.freeze``), where collections do not look, and lets ten times more young collections pass
between two full ones. Objects still go as soon as nothing refers to them (reference counting); only
reference cycles wait for a full collection, which still comes every few cycles.
"""

from __future__ import annotations

import gc

FULL_COLLECTION_EVERY = 100  # second-generation collections between two full ones (CPython's default: 10)


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
