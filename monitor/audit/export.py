"""`readiness audit export|verify|keygen`: bundles an auditor can check without trusting us.

A bundle (a directory, or a .zip) holds readiness.csv, readiness.xlsx, summary.json, report.html,
events.jsonl and manifest.json. events.jsonl is the contiguous run of store rows (every kind) from
the first to the last row written in the period, each with its ``prev_hash`` and ``hash``, so the
chain can be re-computed with `monitor.store.chain.row_hash`; the manifest records the run's ends, the
store's chain head at export, every file's SHA-256, the config's hash and, with ``--sign``, an
Ed25519 signature over its own canonical JSON (`monitor.store.chain.canonical_json`, without the
signature's ``value``). `verify_bundle` checks all of it and names each file and row at fault.
A sharded deployment's stores make one bundle together: monitor/audit/shards.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
from collections.abc import Sequence
from datetime import datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from monitor import __version__
from monitor.audit.bundle import EVENTS, FORMAT, MANIFEST, manifest_bytes, signed_bytes
from monitor.audit.figures import ConfigInForce, Figures, GroupFigures, Period, compute, config_history
from monitor.config.loader import Config
from monitor.core.actions import Action, ActionRecord, fold
from monitor.core.availability import Availability
from monitor.core.calendar import format_jalali, parse_when
from monitor.core.figures import Figures as CoreFigures
from monitor.core.figures import Tally
from monitor.errors import ReadinessError
from monitor.store.chain import HASHED_COLUMNS, canonical_json, connect_readonly
from monitor.store.events import EventStore


class AuditError(ReadinessError):
    """An export cannot be written (the output exists, the store is empty, a bad period)."""


def generator() -> str:
    """Return ``readiness-monitor <version>`` of the code writing the bundle."""
    try:
        return f"readiness-monitor {metadata.version('readiness-monitor')}"
    except metadata.PackageNotFoundError:
        return f"readiness-monitor {__version__}"


# -- the period -----------------------------------------------------------------------------------

DataDirs = str | Path | Sequence[str | Path]  # one store, or one per shard


def _dirs(data_dir: DataDirs) -> list[str | Path]:
    return [data_dir] if isinstance(data_dir, str | Path) else list(data_dir)


def requested_period(config: Config, data_dir: DataDirs, start: str | None, end: str | None,
                     now: float | None = None) -> Period:
    """Return the period ``--from``/``--to`` ask for (Jalali or Gregorian, in the programme's zone), unclipped.

    A bare date as ``--to`` includes that whole day. Without ``--from`` the period starts at the
    store's first row (the earliest of the shards' stores); without ``--to`` it ends now.
    """
    zone = ZoneInfo(config.programme.timezone)
    if start is None:
        firsts = _each_store(data_dir, "SELECT MIN(at) FROM events WHERE kind != 'marker'")
        if not firsts:
            raise AuditError(f"the store in {', '.join(map(str, _dirs(data_dir)))} holds no events yet")
        t0 = min(firsts)
    else:
        t0 = parse_when(start, zone)[0].timestamp()
    if end is None:
        t1 = time.time() if now is None else now
    else:
        when, only_date = parse_when(end, zone)
        if only_date:  # --to 1404-12-29 means up to the end of that day
            when = datetime.combine(when.date() + timedelta(days=1), when.time(), tzinfo=zone)
        t1 = when.timestamp()
    if t1 <= t0:
        raise AuditError(f"the period must end after it starts: {_iso(t0, zone)} .. {_iso(t1, zone)}")
    return Period(t0, t1, zone)


def last_recorded(data_dir: DataDirs) -> float | None:
    """Return the time of the store's last row (any kind; the latest of the shards'), None when it is empty."""
    lasts = _each_store(data_dir, "SELECT MAX(at) FROM events")
    return max(lasts) if lasts else None


def _each_store(data_dir: DataDirs, query: str) -> list[float]:
    """Return the one number ``query`` gives in each store of ``data_dir`` (a shard's each), those not NULL."""
    out = []
    for d in _dirs(data_dir):
        conn = connect_readonly(d)
        try:
            (value,) = conn.execute(query).fetchone()
        finally:
            conn.close()
        if value is not None:
            out.append(float(value))
    return out


def parse_period(config: Config, data_dir: DataDirs, start: str | None, end: str | None,
                 now: float | None = None) -> Period:
    """Return the period to export: `requested_period`, its end clipped to the last recorded moment.

    The record says nothing about time after its last row (or after now, if a clock ran ahead), so
    the end is at most ``min(last row's time, now)``; ``Period.requested_end`` then keeps what was
    asked for, and the report says the period was clipped.
    """
    asked = requested_period(config, data_dir, start, end, now)
    now = time.time() if now is None else now
    last = last_recorded(data_dir)
    if last is None:
        raise AuditError(f"the store in {', '.join(map(str, _dirs(data_dir)))} holds no events yet")
    bound = min(last, now)
    if asked.end <= bound:
        return asked
    if bound <= asked.start:
        raise AuditError(f"nothing is recorded in the period: the record ends at {_iso(bound, asked.zone)}, "
                         f"the period starts at {_iso(asked.start, asked.zone)}")
    return Period(asked.start, bound, asked.zone, requested_end=asked.end)


def _iso(ts: float, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, zone).isoformat(timespec="seconds")


def when_json(ts: float | None, zone: ZoneInfo) -> dict[str, Any] | None:
    """Return a time as Unix seconds, ISO 8601 in the programme's zone and Jalali."""
    if ts is None:
        return None
    local = datetime.fromtimestamp(ts, zone)
    return {"unix": ts, "iso": local.isoformat(timespec="seconds"), "jalali": format_jalali(local)}


def clipped_json(period: Period) -> dict[str, Any] | None:
    """Return what the report says when the period's end was clipped to the last recorded moment."""
    if period.requested_end is None:
        return None
    zone = period.zone
    return {"requested_end": when_json(period.requested_end, zone),
            "note": f"period clipped to {_iso(period.end, zone)}, the last recorded moment "
                    f"({_iso(period.requested_end, zone)} was asked for; nothing is on record after it)"}


# -- summary.json ---------------------------------------------------------------------------------

def availability_json(a: Availability) -> dict[str, Any]:
    return {"up_seconds": round(a.up_seconds, 3), "down_seconds": round(a.down_seconds, 3),
            "other_seconds": round(a.other_seconds, 3), "unknown_seconds": round(a.unknown_seconds, 3),
            "maintenance_seconds": round(a.maintenance_seconds, 3),
            "ratio": None if a.ratio is None else round(a.ratio, 6)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _tally_json(t: Tally) -> dict[str, Any]:
    """Return one scope's figures at the end of the period, as monitor/core/figures.py defines them."""
    return {**dict(t.states), "total": t.total, "ready_share": _round(t.share), "ready_share_text": t.share_text(),
            "terminals": {"up": t.terminals_up, "down": t.terminals_down, "unknown": t.terminals_unknown,
                          "total": t.terminals_total}}


def at_end_json(f: CoreFigures) -> dict[str, Any]:
    """Return the figures at the end of the period: polling places (the ready share), network nodes apart."""
    return {"polling_places": _tally_json(f.province),
            "nodes": {k: v for k, v in _tally_json(f.nodes).items() if not k.startswith("ready_share")},
            "counties": {name: {**_tally_json(t), "nodes": f.county_nodes[name].total if name in f.county_nodes
                                else 0} for name, t in f.counties.items()},
            "areas": {name: _tally_json(t) for name, t in f.areas.items()}}


def _group_json(g: GroupFigures, zone: ZoneInfo, at_end: Tally | None = None) -> dict[str, Any]:
    fc = g.forecast
    states = dict(at_end.states) if at_end is not None else dict(g.states)
    share = at_end.share if at_end is not None else g.ready_share
    return {
        "name": g.name, "sites": g.sites, "states_at_end": states,
        "ready_share_at_end": None if share is None else round(share, 6),
        "ever_ready": g.ever_ready,
        "availability": {"site": availability_json(g.site_availability), "primary": availability_json(g.primary),
                         "backup": availability_json(g.backup), "terminals": availability_json(g.terminals)},
        "maintenance_seconds": round(g.site_availability.maintenance_seconds, 3),
        "blind_seconds": round(g.site_availability.unknown_seconds, 3),
        "failed_requirements": {code: {"seconds": round(s, 3), "sites": g.failed_sites[code]}
                                for code, s in sorted(g.failed.items())},
        "waivers_in_force": g.waivers,
        "forecast": None if fc is None else {
            "status": "ok" if fc.enough_history else "not enough history",
            "share_at_deadline": _round(fc.share_at_deadline), "all_ready_at": when_json(fc.all_ready_at, zone),
            "share_at_deadline_range": [_round(fc.share_at_deadline_low), _round(fc.share_at_deadline_high)]
            if fc.enough_history else None,
            "at_risk": fc.at_risk, "slope_per_day": _round(fc.slope_per_day), "samples": fc.points,
            "share_now": fc.share_now,
        },
    }


def _config_json(c: ConfigInForce, zone: ZoneInfo) -> dict[str, Any]:
    recorded = "maintenance" in c.payload
    return {"version": c.version, "since": when_json(c.since, zone), "until": when_json(c.until, zone),
            "source": c.payload.get("source"), "sites": c.payload.get("sites"),
            "maintenance_windows": len(c.payload["maintenance"]) if recorded else None,
            "waivers": len(c.payload["waivers"]) if "waivers" in c.payload else None}


def summary_json(fig: Figures, info: dict[str, Any]) -> dict[str, Any]:
    """Return summary.json: the figures of the province, each county and urban/rural."""
    zone = fig.period.zone
    deadline = fig.config.programme.deadline.timestamp()
    return {
        "programme": info["programme"], "period": info["period"], "scope": {"county": fig.county},
        "deadline": {**(when_json(deadline, zone) or {}),
                     "days_left_at_end": round((deadline - fig.period.end) / 86400, 3)},
        "at_end": {"at": when_json(fig.period.end, zone), **at_end_json(fig.at_end)},
        "province": _group_json(fig.province, zone, fig.at_end.province),
        "counties": {name: _group_json(g, zone, fig.at_end.counties.get(name)) for name, g in fig.counties.items()},
        "areas": {name: _group_json(g, zone, fig.at_end.areas.get(name)) for name, g in fig.areas.items()},
        "monitor_outages": [{"start": when_json(s, zone), "end": when_json(e, zone)} for s, e in fig.outages],
        "config_versions_in_force": [_config_json(c, zone) for c in fig.config_versions],
        "context_notes": fig.context_notes,
        "store_sites_not_in_config": fig.unknown_entities,
        "generator": info["generator"],
        **({"shards": [{"shard": r.shard[0], "shards": r.shard[1], "store": None if r.data_dir is None
                        else r.data_dir.name, "sites": list(r.sites),
                        "blind": [{"start": when_json(s, zone), "end": when_json(e, zone)} for s, e in r.blind],
                        "blind_seconds": round(sum(e - s for s, e in r.blind), 3)} for r in fig.shards]}
           if fig.shards else {}),
    }


# -- events.jsonl ---------------------------------------------------------------------------------

def events_segment(data_dir: str | Path, period: Period) -> tuple[bytes, dict[str, Any]]:
    """Return events.jsonl (the contiguous rows from the period's first to its last) and its chain facts."""
    conn = connect_readonly(data_dir)
    try:
        first, last = conn.execute("SELECT MIN(seq), MAX(seq) FROM events WHERE at >= ? AND at < ?",
                                   (period.start, period.end)).fetchone()
        lines: list[bytes] = []
        chain: dict[str, Any] = {"rows": 0, "first_seq": None, "last_seq": None, "first_prev_hash": None,
                                 "last_hash": None}
        if first is not None:
            cursor = conn.execute(f"SELECT {', '.join(HASHED_COLUMNS)}, hash FROM events "
                                  f"WHERE seq BETWEEN ? AND ? ORDER BY seq", (first, last))
            for values in cursor:
                row = dict(zip((*HASHED_COLUMNS, "hash"), values, strict=True))
                row["reasons"], row["payload"] = _readable(row, "reasons"), _readable(row, "payload")
                lines.append(json.dumps(row, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n")
                if chain["rows"] == 0:
                    chain.update(first_seq=row["seq"], first_prev_hash=row["prev_hash"])
                chain.update(rows=chain["rows"] + 1, last_seq=row["seq"], last_hash=row["hash"])
    finally:
        conn.close()
    head_seq, head_hash = EventStore(data_dir).chain_head()
    chain.update(head_seq=head_seq, head_hash=head_hash)
    return b"".join(lines), chain


def _readable(row: dict[str, Any], key: str) -> Any:
    """Return the stored JSON text parsed, unless parsing would change the hash (then the text itself)."""
    text = row[key]
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if canonical_json(value) == text else text


# -- export ---------------------------------------------------------------------------------------

def config_sha256(config: Config) -> str:
    """Return the SHA-256 of the config file and its inventories, in the order the loader reads them."""
    path = Path(config.source)
    digest = hashlib.sha256(path.read_bytes())
    for name in config.inventory:
        digest.update((path.parent / name).read_bytes())
    return digest.hexdigest()


COMMITTEE_REPORT = "committee-report.pdf"


def period_actions(data_dir: str | Path, period: Period, county: str | None = None) -> list[Action]:
    """Return the remediation actions of the period as its end sees them: opened before the end, and still open
    at the start or opened or closed within (those closed before the start are the previous period's)."""
    store = EventStore(data_dir)
    actions = fold(ActionRecord(e.at, e.entity, e.old, e.new, e.payload)
                   for e in store.events(end=period.end, kinds=("action",)))
    return [a for a in actions.values() if (county is None or a.county == county)
            and (a.closed_at is None or a.closed_at >= period.start)]


def check_target(config: Config, out: str | Path, county: str | None) -> Path:
    """Return ``out`` as a path once it is sure the bundle can go there and ``county`` is one of the config's."""
    out = Path(out)
    if out.exists() and (out.is_file() or any(out.iterdir())):
        raise AuditError(f"{out} exists: an audit bundle is never written over another")
    if county is not None and county not in {s.county for s in config.sites}:
        known = ", ".join(sorted({s.county for s in config.sites}))
        raise AuditError(f"county {county!r} is not in the config (known: {known})")
    return out


def export(config: Config, data_dir: str | Path, out: str | Path, period: Period, *, county: str | None = None,
           sign_key: str | Path | None = None, force: bool = False, with_report: bool = False) -> dict[str, Any]:
    """Write the bundle ``out`` (a directory, or a zip when it ends in .zip); return its manifest.

    The config must be a version the store recorded in force at some time (its sites are what was
    monitored); ``force`` exports with any config, and the report says so. ``with_report`` adds the committee's
    report for the period as a PDF (headless Chromium), listed in the manifest like every other file.
    """
    from monitor.audit import signing

    out = check_target(config, out, county)
    recorded = [c.version for c in config_history(EventStore(data_dir))]
    if config.version not in recorded and not force:
        seen = ", ".join(dict.fromkeys(recorded)) or "none"
        raise AuditError(f"config {config.source} is version {config.version}, which the store in {data_dir} never "
                         f"recorded in force (it recorded: {seen}); the report would describe sites and a schedule "
                         f"that were not monitored. Export with the config that was in force, or pass --force")
    key = signing.load_private_key(sign_key) if sign_key else None
    fig = compute(config, data_dir, period, county)
    if config.version not in recorded:
        fig.context_notes.insert(0, f"exported with --force: config {config.version} was never recorded in force by "
                                    f"the store")
    events, chain = events_segment(data_dir, period)
    manifest = manifest_head(config, period, county, fig, config.version in recorded, key)
    manifest["chain"] = chain
    extra = {}
    if with_report:
        from monitor.audit import committee

        report = committee.build(config, data_dir, None, period=period)  # the whole province's, for the period
        extra[COMMITTEE_REPORT] = committee.render_pdf(committee.render_html(report))
        manifest["committee_report"] = {"file": COMMITTEE_REPORT, "scope": "province",
                                        "period": manifest["period"]}
    return finish(out, fig, manifest, {EVENTS: events}, key, period_actions(data_dir, period, county), extra)


def manifest_head(config: Config, period: Period, county: str | None, fig: Figures, recorded: bool,
                  key: Any) -> dict[str, Any]:
    """Return the manifest's programme, period, config and (with a key) signer; the chains are the caller's."""
    from monitor.audit import signing

    zone = period.zone
    manifest: dict[str, Any] = {
        "format": FORMAT, "generator": generator(), "created_at": when_json(time.time(), zone),
        "programme": {"name": config.programme.name, "timezone": config.programme.timezone,
                      "deadline": when_json(config.programme.deadline.timestamp(), zone)},
        "period": {"start": when_json(period.start, zone), "end": when_json(period.end, zone), "county": county,
                   "clipped": clipped_json(period)},
        "config": {"source": Path(config.source).name, "version": config.version, "sha256": config_sha256(config),
                   "sites": len(fig.sites), "recorded_in_store": recorded,
                   "versions_in_force": [c.version for c in fig.config_versions]},
    }
    if key is not None:
        pub = key.public_key()
        manifest["signature"] = {"algorithm": "ed25519", "public_key": signing.public_key_text(pub),
                                 "fingerprint": signing.fingerprint(pub)}
    return manifest


def finish(out: Path, fig: Figures, manifest: dict[str, Any], events: dict[str, bytes], key: Any,
           actions: list[Action], extra: dict[str, bytes] | None = None) -> dict[str, Any]:
    """Render the files, list their hashes in the manifest, sign it, write the bundle; return the manifest."""
    from monitor.audit import html as audit_report
    from monitor.audit import sheet as audit_sheet
    from monitor.audit import signing

    files = {
        "readiness.csv": audit_sheet.render_csv(fig),
        "readiness.xlsx": audit_sheet.render_xlsx(fig, actions),
        "summary.json": (json.dumps(summary_json(fig, manifest), ensure_ascii=False, indent=2) + "\n").encode(),
        **events,
        "report.html": audit_report.render_html(fig, manifest, actions).encode("utf-8"),
        **(extra or {}),
    }
    manifest["files"] = {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                         for name, data in files.items()}
    if key is not None:
        manifest["signature"]["value"] = signing.sign(key, signed_bytes(manifest))
    files[MANIFEST] = manifest_bytes(manifest)
    _write_bundle(out, files)
    return manifest


def _write_bundle(out: Path, files: dict[str, bytes]) -> None:
    if out.suffix.lower() == ".zip":
        tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in files.items():
                zf.writestr(name, data)
        os.replace(tmp, out)
        return
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():  # the manifest last: a bundle without one is visibly unfinished
        (out / name).write_bytes(data)
