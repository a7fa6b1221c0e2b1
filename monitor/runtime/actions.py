"""The action desk: remediation actions read from and written to the event store, one writer per data dir.

The running service owns one (``Service.desk``, set by ``attach_store``) and the API writes through it;
``readiness actions --data-dir`` makes its own while the service is stopped, holding the store's writer
lock, so two writers never fork the chain.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from monitor.config.loader import Config
from monitor.core.actions import (
    COUNTY_PREFIX,
    Action,
    ActionError,
    ActionRecord,
    close_record,
    due_time,
    fold,
    open_record,
)
from monitor.errors import StoreError
from monitor.store.events import EventStore

log = logging.getLogger(__name__)
FLUSH_SECONDS = 10.0


class ActionDesk:
    """Actions of one store: the fold of its ``action`` rows, kept current as new ones are written."""

    def __init__(self, store: EventStore, config: Callable[[], Config | None], clock: Callable[[], float]) -> None:
        self.store = store
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._records = [ActionRecord(e.at, e.entity, e.old, e.new, e.payload) for e in self._recorded(store)]
        self._actions = fold(self._records)

    @staticmethod
    def _recorded(store: EventStore) -> list[Any]:
        """Return the store's action rows; none while a store that could not be created waits for its disk."""
        try:
            return list(store.events(kinds=("action",)))
        except StoreError:
            if store.status.ok:
                raise
            return []

    def actions(self) -> tuple[Action, ...]:
        """Return every action, in the order they were opened."""
        with self._lock:
            return tuple(self._actions.values())

    def get(self, action_id: str) -> Action | None:
        with self._lock:
            return self._actions.get(action_id)

    def _write(self, record: ActionRecord) -> bool:
        config = self._config()
        self.store.append_action(record.at, record.entity, record.old, record.new, dict(record.payload),
                                 config.version if config else "")
        self._records.append(record)
        self._actions = fold(self._records)
        return True

    def add(self, target: str, *, owner: str, due: str, note: str = "", by: str) -> tuple[Action, bool]:
        """Open an action for a site id (or ``county:NAME``); return it and whether it reached the disk."""
        config = self._config()
        if config is None:
            raise ActionError("no config: cannot tell the site's county or the programme's timezone")
        if target.startswith(COUNTY_PREFIX):
            wanted = target.removeprefix(COUNTY_PREFIX)
            county = next((s.county for s in config.sites if s.county.casefold() == wanted.casefold()), None)
            if county is None:
                raise ActionError(f"no county {wanted!r}; counties: "
                                  f"{', '.join(sorted({s.county for s in config.sites}))}")
            site: str | None = None
        else:
            found = config.site_map().get(target)
            if found is None:
                raise ActionError(f"no site {target!r} (for a whole county give county:NAME)")
            site, county = found.id, found.county
        when = due_time(due, ZoneInfo(config.programme.timezone))
        with self._lock:
            record = open_record(self._actions, site=site, county=county, owner=owner, due=when, due_text=due,
                                 note=note, by=by, at=self._clock())
            self._write(record)
            action = self._actions[record.payload["id"]]
        return action, self.store.flush(FLUSH_SECONDS)

    def close(self, action_id: str, *, result: str, by: str, state: str = "done") -> tuple[Action, bool]:
        """Close an open action with its result; return it and whether it reached the disk."""
        with self._lock:
            action = self._actions.get(action_id)
            if action is None:
                raise KeyError(action_id)
            record = close_record(action, state=state, result=result, by=by, at=self._clock())
            self._write(record)
            action = self._actions[action_id]
        return action, self.store.flush(FLUSH_SECONDS)
