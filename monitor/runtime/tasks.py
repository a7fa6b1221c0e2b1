"""Background work that cannot die silently: every task and thread the service starts is supervised.

A supervised asyncio task that ends with an exception is logged with its traceback and counted under a
bounded name (``readiness_task_failures_total{task}``); a cancelled one is not a failure. Threads are
covered by :func:`install_thread_hook`, which does the same for any thread that dies of an exception.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

# The bounded names of background work (metric label values); anything else counts as "other".
TASKS = ("demo_faults", "reload", "watchdog", "prerender", "store_writer", "probe_cycle", "evaluation", "report",
         "other")
THREADS = {"event-store-writer": "store_writer"}

_lock = threading.Lock()
_failures: dict[str, int] = dict.fromkeys(TASKS, 0)
_hooked = False


def failures() -> dict[str, int]:
    """Return a copy of the failures counted so far, by task name (every name, zeros included)."""
    with _lock:
        return dict(_failures)


def count_failure(name: str) -> None:
    """Count one failure of background work ``name`` (unknown names count as ``other``)."""
    with _lock:
        key = name if name in _failures else "other"
        _failures[key] += 1


def _done(name: str, task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is None:
        return
    count_failure(name)
    log.error("background task %s died: %s", name, exc, exc_info=(type(exc), exc, exc.__traceback__))


def supervise(task: asyncio.Task[T], name: str) -> asyncio.Task[T]:
    """Log and count ``task`` if it ends with an exception; return it."""
    task.add_done_callback(lambda t: _done(name, t))
    return task


def spawn(coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
    """Start ``coro`` as a supervised task called ``name`` (one of `TASKS`)."""
    return supervise(asyncio.get_running_loop().create_task(coro, name=name), name)


def install_thread_hook() -> None:
    """Log and count any thread that dies of an exception (once per process; keeps the previous hook)."""
    global _hooked
    with _lock:
        if _hooked:
            return
        _hooked = True
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            previous(args)
            return
        thread = args.thread.name if args.thread is not None else "?"
        count_failure(THREADS.get(thread, "other"))
        log.error("thread %s died: %s", thread, args.exc_value,
                  exc_info=(args.exc_type, args.exc_value, args.exc_traceback))  # type: ignore[arg-type]

    threading.excepthook = hook
