"""One audit bundle from the stores of several shards (`readiness audit export --data-dir A --data-dir B ...`).

Each instance started with ``--shard K/N`` keeps its own store, and records which shard it is in its ``config``
rows (``payload.shard``, monitor/config/loader.py ``Config.record``). The bundle holds each shard's events as
they are in its store (``events-shard-K-of-N.jsonl``, its own hash chain, verified apart), and figures that
cover the whole inventory: each site from the store of the shard that owns it, a shard without a store (or
without a record for part of the period) blind for its sites. See monitor/audit/bundle.py for the format.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monitor.audit.bundle import FORMAT_SHARDS, shard_events_name
from monitor.audit.export import (
    AuditError,
    check_target,
    events_segment,
    finish,
    manifest_head,
    period_actions,
    when_json,
)
from monitor.audit.figures import (
    ConfigInForce,
    Figures,
    Period,
    ShardRecord,
    SiteFigures,
    _assemble,
    _maintenance,
    _read_store,
    _site_figures,
    _Timeline,
    _waivers,
    config_history,
    in_force,
    monitor_outages,
)
from monitor.config.loader import Config
from monitor.config.shard import owner
from monitor.core.intervals import merge
from monitor.core.reasons import BLIND, Reason
from monitor.store.chain import DB_FILENAME, connect_readonly
from monitor.store.events import SNAPSHOT_INTERVAL_SECONDS, EventStore

Shard = tuple[int, int]


def compute_shards(config: Config, stores: Sequence[tuple[tuple[int, int], Path | None]], period: Period,
                   county: str | None = None) -> Figures:
    """Return the figures of the whole inventory from one store per shard (``(K, N)``, its data dir or None).

    Each site is taken once, from the store of the shard that owns it (rendezvous hashing, as ``--shard K/N``
    chose), with that store's own blind time: when the shard's monitor was down, blind, or recorded nothing (its
    store begins after the period starts, or stops more than a snapshot interval before it ends), and the whole
    period for a shard whose store was not given. A shard's blind time is its sites' unknown time, never
    ready nor not_ready; the other shards' sites are untouched by it.
    """
    sites = [s for s in config.reported_sites() if county is None or s.county == county]
    by_id: dict[str, SiteFigures] = {}
    all_lines: dict[str, _Timeline] = {}
    all_blind: list[tuple[float, float]] = []
    versions: dict[str, dict[int, ConfigInForce]] = {}
    notes: list[str] = []
    records: list[ShardRecord] = []
    unknown: set[str] = set()
    dark_sites: set[str] = set()
    known = {f"site:{s.id}" for s in config.sites}
    for (k, n), data_dir in stores:
        owned = [s for s in sites if owner(s.id, n) == k]
        lines: dict[str, _Timeline] = {}
        in_force_here: list[ConfigInForce] = []
        if data_dir is None:
            blind = [(period.start, period.end)]
            notes.append(f"shard {k} of {n}: no store was given; its {len(owned)} site(s) are blind for the whole "
                         f"period")
        else:
            store = EventStore(data_dir)
            lines = _read_store(store, period)
            blind = merge(monitor_outages(data_dir, period) + _unrecorded(data_dir, period), period.start,
                          period.end)
            in_force_here = in_force(config_history(store), period)
            unknown |= {e for e in lines if e.startswith("site:") and e not in known}
        for c in in_force_here:  # a version in force twice in one shard's store counts its sites once
            versions.setdefault(c.version, {}).setdefault(k, c)
        waivers = _waivers(config, in_force_here, period, notes)
        ids = {s.id for s in owned}
        # Blind at the end of the period: its sites' last record is old news, so they end unknown (monitor.blind).
        dark = next((b for b in blind if b[0] < period.end <= b[1]), None)
        for site in owned:
            f = _site_figures(site, lines, period, blind, _maintenance(lines.get(f"site:{site.id}"), period, blind),
                              waivers.get(site.id, ()))
            if dark is not None:
                f.state, f.since = "unknown", dark[0]
                since = period.local(dark[0])
                f.reasons = (Reason(BLIND, f"shard {k} of {n} has no record from {since:%Y-%m-%d %H:%M}"),)
                dark_sites.add(site.id)
            by_id[site.id] = f
        # The owner's record of its sites only: a shard also watches the upstream nodes of its sites.
        all_lines.update({e: line for e, line in lines.items() if _entity_site(e) in ids})
        all_blind += blind
        records.append(ShardRecord((k, n), None if data_dir is None else Path(data_dir), tuple(sorted(ids)), blind))
    figures = [by_id[s.id] for s in sites]
    ordered = sorted((_merged(list(rows.values())) for rows in versions.values()), key=lambda c: c.since)
    fig = _assemble(config, period, county, figures, all_lines, merge(all_blind, period.start, period.end),
                    len(unknown), ordered, list(dict.fromkeys(notes)), dark_sites)
    fig.shards = records
    return fig


def _merged(rows: list[ConfigInForce]) -> ConfigInForce:
    """Return one config version as the shards recorded it: in force from the first shard's row; its sites the
    sum of the sites each shard reported (when every row says how many)."""
    first = min(rows, key=lambda c: c.since)
    payload = dict(first.payload)
    owned = [c.payload.get("reported") for c in rows]
    payload["sites"] = sum(owned) if all(isinstance(x, int) for x in owned) else None
    ends = [c.until for c in rows]
    until = None if any(u is None for u in ends) else max(u for u in ends if u is not None)
    return ConfigInForce(first.version, first.since, until, payload)


def _entity_site(entity: str) -> str:
    """Return the site id of ``site:ID``, ``link:ID/role`` or ``target:ID/terminal/T``."""
    return entity.partition(":")[2].partition("/")[0]


def _unrecorded(data_dir: str | Path, period: Period) -> list[tuple[float, float]]:
    """Return the parts of the period a store has no record of: before its first row, and after its last when
    that is more than a snapshot interval before the period's end (a running recorder writes one at least that
    often, so a shard that went quiet for longer was not running)."""
    conn = connect_readonly(data_dir)
    try:
        first, last = conn.execute("SELECT MIN(at), MAX(at) FROM events").fetchone()
    finally:
        conn.close()
    if first is None:
        return [(period.start, period.end)]
    out = []
    if first > period.start:
        out.append((period.start, min(first, period.end)))
    if period.end - last > SNAPSHOT_INTERVAL_SECONDS + 60:
        out.append((max(last, period.start), period.end))
    return out



def recorded_shards(data_dir: str | Path) -> list[Shard | None]:
    """Return the shard each ``config`` row of a store recorded, in order (None: a row from before shards were
    recorded, or an unsharded instance's)."""
    conn = connect_readonly(data_dir)
    try:
        rows = conn.execute("SELECT json_extract(payload, '$.shard') FROM events WHERE kind = 'config' "
                            "ORDER BY seq").fetchall()
    finally:
        conn.close()
    out: list[Shard | None] = []
    for (text,) in rows:
        value = _shard(text)
        out.append(None if value == (1, 1) else value)
    return out


def _shard(text: Any) -> Shard | None:
    import json

    try:
        k, n = json.loads(text) if isinstance(text, str) else (None, None)
    except (ValueError, TypeError):
        return None
    return (k, n) if isinstance(k, int) and isinstance(n, int) and 1 <= k <= n else None


def shard_stores(config: Config, data_dirs: Sequence[str | Path], *,
                 force: bool = False) -> list[tuple[Shard, Path | None]]:
    """Return (shard, store) for every shard 1..N, None for a shard whose store was not given.

    Refuses (AuditError, naming the directory): a directory that is not an event store, a store that is not
    one shard's (never sharded, or re-sharded), two stores of one shard, stores of deployments with a different
    number of shards, and (unless ``force``) a store that never recorded the config at hand in force — shards
    of one deployment run one config, so a different version means a different inventory or schedule.
    """
    found: dict[Shard, Path] = {}
    count: tuple[int, Path] | None = None
    for raw in data_dirs:
        path = Path(raw)
        if not (path / DB_FILENAME).is_file():
            raise AuditError(f"{path} is not an event store: it has no {DB_FILENAME} (give each shard's data dir)")
        shards = set(recorded_shards(path))
        if not shards or shards == {None}:
            raise AuditError(f"{path}: the store records no shard (its monitor ran without --shard K/N, or before "
                             f"stores recorded their shard); export it on its own, with one --data-dir")
        if len(shards) > 1:
            seen = ", ".join("unsharded" if s is None else f"{s[0]}/{s[1]}" for s in sorted(
                shards, key=lambda s: s or (0, 0)))
            raise AuditError(f"{path}: the store was recorded as more than one shard ({seen}); a multi-shard audit "
                             f"needs each store to be one shard's over its life")
        (shard,) = shards
        assert shard is not None
        if shard in found:
            raise AuditError(f"{found[shard]} and {path} are both shard {shard[0]} of {shard[1]}: give each "
                             f"shard's store once")
        if count is not None and count[0] != shard[1]:
            raise AuditError(f"{count[1]} is a shard of {count[0]} but {path} is shard {shard[0]} of {shard[1]}: "
                             f"the stores are not of one deployment")
        count = count or (shard[1], path)
        recorded = [c.version for c in config_history(EventStore(path))]
        if config.version not in recorded and not force:
            seen = ", ".join(dict.fromkeys(recorded)) or "none"
            raise AuditError(f"config {config.source} is version {config.version}, which the store in {path} "
                             f"(shard {shard[0]} of {shard[1]}) never recorded in force (it recorded: {seen}); "
                             f"the shards of one deployment run one config and inventory. Export with the config "
                             f"that was in force, or pass --force")
        found[shard] = path
    assert count is not None
    n = count[0]
    return [((k, n), found.get((k, n))) for k in range(1, n + 1)]


def export_shards(config: Config, data_dirs: Sequence[str | Path], out: str | Path, period: Period, *,
                  county: str | None = None, sign_key: str | Path | None = None,
                  force: bool = False) -> dict[str, Any]:
    """Write one bundle from the stores of a deployment's shards; return its manifest."""
    from monitor.audit import signing

    out = check_target(config, out, county)
    stores = shard_stores(config, data_dirs, force=force)
    key = signing.load_private_key(sign_key) if sign_key else None
    fig = compute_shards(config, stores, period, county)
    recorded = all(config.version in {c.version for c in config_history(EventStore(d))}
                   for _, d in stores if d is not None)
    if not recorded:
        fig.context_notes.insert(0, f"exported with --force: config {config.version} was not recorded in force by "
                                    f"every shard's store")
    events: dict[str, bytes] = {}
    entries = []
    for record, ((k, n), data_dir) in zip(fig.shards, stores, strict=True):
        entry: dict[str, Any] = {"shard": k, "shards": n, "sites": len(record.sites),
                                 "blind": [{"start": when_json(s, period.zone), "end": when_json(e, period.zone)}
                                           for s, e in record.blind]}
        if data_dir is None:
            entry.update(store=None, events=None, chain=None)
        else:
            name = shard_events_name(k, n)
            events[name], chain = events_segment(data_dir, period)
            entry.update(store=data_dir.name, events=name, chain=chain)
        entries.append(entry)
    manifest = manifest_head(config, period, county, fig, recorded, key)
    manifest["format"] = FORMAT_SHARDS
    manifest["shards"] = entries
    actions = [a for (_, data_dir) in stores if data_dir is not None for a in period_actions(data_dir, period, county)]
    return finish(out, fig, manifest, events, key, actions)
