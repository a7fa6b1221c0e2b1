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
from monitor.audit.export import AuditError, events_segment, finish, manifest_head, when_json
from monitor.audit.figures import Period, compute_shards, config_history
from monitor.config.loader import Config
from monitor.store.chain import DB_FILENAME, connect_readonly
from monitor.store.events import EventStore

Shard = tuple[int, int]


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

    out = Path(out)
    if out.exists() and (out.is_file() or any(out.iterdir())):
        raise AuditError(f"{out} exists: an audit bundle is never written over another")
    if county is not None and county not in {s.county for s in config.sites}:
        known = ", ".join(sorted({s.county for s in config.sites}))
        raise AuditError(f"county {county!r} is not in the config (known: {known})")
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
    return finish(out, fig, manifest, events, key)
