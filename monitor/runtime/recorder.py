"""Glue between snapshots and the event store: transitions of sites, links and targets, and periodic
snapshots. It resumes from the store, so a restart records no spurious "recovered" transitions.

A blind monitor (`monitor.core.readiness.MonitorView`) is one event, not thousands: the entity ``monitor``
goes ``seeing`` -> ``blind`` (reasons: ``monitor.blind`` and why), and no site, link or target transition
is written until it sees again; then whatever really changed meanwhile is written, against the states
last recorded."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

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


def entity_states(sites: dict[str, SiteReadiness] | object) -> Iterator[tuple[str, str, tuple[str, ...]]]:
    """Yield (entity, state, reasons as text) for every site, link and terminal in a snapshot's sites."""
    assert hasattr(sites, "values")
    for r in sites.values():
        yield f"site:{r.site}", r.state, texts(r.reasons)
        for h in r.links:
            yield f"link:{r.site}/{h.role}", h.state, texts(h.reasons)
        for t in r.terminals:
            yield f"target:{r.site}/terminal/{t.id}", t.state, (t.reason,) if t.reason else ()


_BARE: dict[str, Entity] = {}  # state -> (state, ()): one tuple per state, shared by every link and target


def _last(entity: str, state: str, reasons: tuple[str, ...]) -> Entity:
    """Return what to remember of ``entity``: a site's reasons (a change of them is recorded), a link's or a
    target's state only (its reasons go to the store with a change of state, never compared): 40,000 links and
    terminals then hold no tuple of their own."""
    if entity.startswith("site:") or entity == MONITOR:
        return state, reasons
    bare = _BARE.get(state)
    if bare is None:
        bare = _BARE[state] = (state, ())
    return bare


class Recorder:
    """A snapshot listener that appends what changed to the store, and a snapshot every so often."""

    def __init__(self, store: EventStore, snapshot_every_seconds: float = 3600.0) -> None:
        self.store = store
        self.every = snapshot_every_seconds
        # A store that could not be created yet (a read-only dir) has recorded nothing: start from nothing.
        fresh = not store.path.exists()
        states = {} if fresh else store.last_states()  # read once: it also answers resume_sites()
        self.last: dict[str, Entity] = {k: _last(k, v[0], v[2]) for k, v in states.items()}
        self._resumed = {k[5:]: (v[0], v[1]) for k, v in states.items() if k.startswith("site:")}
        snapshot, config = (None, None) if fresh else (store.last_at("snapshot"), store.last_at("config"))
        self.last_snapshot_at = snapshot[0] if snapshot else 0.0
        self.snapshot_due = False  # True right after a periodic snapshot was written
        self.version = config[1] if config else ""  # the config version last recorded as in force
        # ... and the shard it was recorded as (a restart with another --shard is a new record of the config)
        last = None if fresh or config is None else store.last_payload("config")
        self.shard = tuple(last.get("shard", (1, 1))) if last else (1, 1)

    def resume_sites(self) -> dict[str, tuple[str, float]]:
        """Return site id -> (state, since) as the store last recorded them."""
        return dict(self._resumed)

    def __call__(self, new: Snapshot, old: Snapshot | None) -> None:
        version = new.config.version
        # Which config was in force, and as which shard, is part of the record.
        if version != self.version or tuple(new.config.shard) != self.shard:
            self.store.append_config(new.at, version, new.config.record())  # with its windows and waivers
            self.version, self.shard = version, tuple(new.config.shard)
        if not new.evaluated:
            return
        changes = []
        view = new.monitor
        seeing = self.last.get(MONITOR, ("seeing", ()))[0] != "blind"
        if view.blind == seeing:  # the monitor's own view changed: one event
            state, why = ("blind", (BLIND, view.reason)) if view.blind else ("seeing", ())
            changes.append(Transition(new.at, MONITOR, "seeing" if view.blind else "blind", state, why, version))
            self.last[MONITOR] = (state, why)
        for entity, state, reasons in () if view.blind else entity_states(new.sites):
            before = self.last.get(entity)
            if before is None or before[0] != state or (entity.startswith("site:") and before[1] != reasons):
                changes.append(Transition(new.at, entity, before[0] if before else None, state, reasons, version))
                self.last[entity] = _last(entity, state, reasons)
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
