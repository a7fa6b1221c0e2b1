"""Glue between snapshots and the event store: transitions of sites, links and targets, and periodic
snapshots. It resumes from the store, so a restart records no spurious "recovered" transitions.

A blind monitor (`monitor.core.readiness.MonitorView`) is one event, not thousands: the entity ``monitor``
goes ``seeing`` -> ``blind`` (reasons: ``monitor.blind`` and why), and no site, link or target transition
is written until it sees again; then whatever really changed meanwhile is written, against the states
last recorded."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from monitor.core.readiness import SiteReadiness
from monitor.core.reasons import BLIND, texts
from monitor.runtime.actions import ActionDesk
from monitor.runtime.snapshot import Snapshot
from monitor.store.events import EventStore, Transition

if TYPE_CHECKING:
    from monitor.runtime.service import Service

log = logging.getLogger(__name__)
Entity = tuple[str, tuple[str, ...]]
MONITOR = "monitor"  # the entity of the monitor's own view: blind or seeing


Shape = tuple[tuple[str, ...], tuple[str, ...]]  # a site's link roles and terminal ids, in snapshot order


class _Seen(NamedTuple):
    """What the recorder remembers of one site: its state and reasons, and the state of each of its links and
    terminals (``states``, in the order of ``shape``). Shapes and state tuples repeat across thousands of sites:
    each is one shared copy, so a site costs one small tuple, not five string-keyed entries (issue 13)."""

    state: str
    reasons: tuple[str, ...]
    shape: Shape | None  # None: resumed from the store, its links' and terminals' states are in Recorder._resumed
    states: tuple[str, ...]


_MAX_SHARED = 4096


def _shared(pool: dict[Any, Any], value: Any) -> Any:
    """Return the pool's copy of ``value`` (added if new); the pool starts again past _MAX_SHARED values."""
    got = pool.get(value)
    if got is None:
        if len(pool) >= _MAX_SHARED:
            pool.clear()
        got = pool[value] = value
    return got


class Recorder:
    """A snapshot listener that appends what changed to the store, and a snapshot every so often."""

    def __init__(self, store: EventStore, snapshot_every_seconds: float = 3600.0) -> None:
        self.store = store
        self.every = snapshot_every_seconds
        # A store that could not be created yet (a read-only dir) has recorded nothing: start from nothing.
        fresh = not store.path.exists()
        states = {} if fresh else store.last_states()  # read once: it also answers resume_sites()
        monitor = states.get(MONITOR)
        self.monitor: Entity = (monitor[0], monitor[2]) if monitor else ("seeing", ())
        self.sites: dict[str, _Seen] = {k[5:]: _Seen(v[0], v[2], None, ()) for k, v in states.items()
                                        if k.startswith("site:")}
        # Links and terminals as the store last had them, until each site's first snapshot takes them over.
        self._resumed: dict[str, str] | None = {k: v[0] for k, v in states.items()
                                                if k.startswith(("link:", "target:"))}
        self._since = {k[5:]: (v[0], v[1]) for k, v in states.items() if k.startswith("site:")}
        self._shapes: dict[Shape, Shape] = {}
        self._states: dict[tuple[str, ...], tuple[str, ...]] = {}
        snapshot, config = (None, None) if fresh else (store.last_at("snapshot"), store.last_at("config"))
        self.last_snapshot_at = snapshot[0] if snapshot else 0.0
        self.snapshot_due = False  # True right after a periodic snapshot was written
        self.version = config[1] if config else ""  # the config version last recorded as in force
        # ... and the shard it was recorded as (a restart with another --shard is a new record of the config)
        last = None if fresh or config is None else store.last_payload("config")
        self.shard = tuple(last.get("shard", (1, 1))) if last else (1, 1)

    def resume_sites(self) -> dict[str, tuple[str, float]]:
        """Return site id -> (state, since) as the store last recorded them."""
        return dict(self._since)

    def __call__(self, new: Snapshot, old: Snapshot | None) -> None:
        version = new.config.version
        # Which config was in force, and as which shard, is part of the record.
        if version != self.version or tuple(new.config.shard) != self.shard:
            self.store.append_config(new.at, version, new.config.record())  # with its windows and waivers
            self.version, self.shard = version, tuple(new.config.shard)
        if not new.evaluated:
            return
        changes: list[Transition] = []
        view = new.monitor
        seeing = self.monitor[0] != "blind"
        if view.blind == seeing:  # the monitor's own view changed: one event
            state, why = ("blind", (BLIND, view.reason)) if view.blind else ("seeing", ())
            changes.append(Transition(new.at, MONITOR, "seeing" if view.blind else "blind", state, why, version))
            self.monitor = (state, why)
        if not view.blind:
            for r in new.sites.values():
                self._site(r, new.at, version, changes)
            self._resumed = None  # every site seen once: what the store had is taken over or gone with its site
        if changes:
            self.store.append(changes)
        self.snapshot_due = new.at - self.last_snapshot_at >= self.every
        if self.snapshot_due:
            self.last_snapshot_at = new.at
            body = {r.site: {"state": r.state, "since": r.since, "reasons": list(texts(r.reasons)),
                             "terminals_up": r.terminals_up, "terminals": len(r.terminals),
                             "links": {h.role: h.state for h in r.links}}
                    for r in new.sites.values()}
            self.store.append_snapshot(new.at, body, version)

    def _site(self, r: SiteReadiness, at: float, version: str, changes: list[Transition]) -> None:
        """Append the transitions of site ``r`` and its links and terminals since last seen; remember it."""
        shape: Shape = _shared(self._shapes, (tuple(h.role for h in r.links), tuple(t.id for t in r.terminals)))
        states: tuple[str, ...] = _shared(self._states, (*(h.state for h in r.links), *(t.state for t in r.terminals)))
        reasons = texts(r.reasons)
        seen = self.sites.get(r.site)
        if seen is not None and seen.shape == shape and seen.states == states and seen.state == r.state \
                and seen.reasons == reasons:
            return  # nothing changed: the common case, without a string built
        if seen is None or seen.state != r.state or seen.reasons != reasons:
            changes.append(Transition(at, f"site:{r.site}", seen.state if seen else None, r.state, reasons, version))
        before = self._before(r.site, seen)
        for h in r.links:
            entity = f"link:{r.site}/{h.role}"
            if before(entity) != h.state:
                changes.append(Transition(at, entity, before(entity), h.state, texts(h.reasons), version))
        for t in r.terminals:
            entity = f"target:{r.site}/terminal/{t.id}"
            if before(entity) != t.state:
                changes.append(Transition(at, entity, before(entity), t.state, (t.reason,) if t.reason else (),
                                          version))
        self.sites[r.site] = _Seen(r.state, reasons, shape, states)

    def _before(self, site: str, seen: _Seen | None) -> Callable[[str], str | None]:
        """Return the last recorded state of an entity of ``site`` (None: never recorded)."""
        if seen is not None and seen.shape is not None:
            roles, ids = seen.shape
            names = [f"link:{site}/{role}" for role in roles] + [f"target:{site}/terminal/{t}" for t in ids]
            return dict(zip(names, seen.states, strict=True)).get
        return (self._resumed or {}).get


def attach_store(service: Service, data_dir: str) -> EventStore:
    """Open the event store in ``data_dir``, resume states from it and record every snapshot into it.

    A data dir that cannot be written does not stop the service (see the README): it probes and serves,
    /-/ready fails with "store not writable", and the store catches up once the disk lets it."""
    store = EventStore(data_dir)
    store.open(wait_for_disk=True)
    recorder = Recorder(store)
    service.resume(recorder.resume_sites())
    memory = Path(data_dir) / "timeline.json"
    service.timeline.load(memory)
    service.on_snapshot(recorder)

    def save_memory(new: Snapshot, old: Snapshot | None) -> None:
        if recorder.snapshot_due:
            service.timeline.save(memory)

    service.on_snapshot(save_memory)
    service.watch_store(lambda: store.status)
    service.desk = ActionDesk(store, lambda: service.config, service.clock)
    status = store.status
    if status.ok:
        log.info("recording to %s (chain head %s)", data_dir, store.chain_head()[0])
    else:
        log.error("NOT RECORDING: %s. Probing and serving anyway; readiness_store_ok is 0 and /-/ready fails "
                  "until the data dir is writable, then the queued history is written", status.error)
    return store
