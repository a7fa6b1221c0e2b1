"""The event store's on-disk format: schema, hash chain and canonical row form, `row_hash`, `verify_store`.

Every row of the ``events`` table in ``<data-dir>/events.db`` carries the SHA-256 of the row before
it, so a changed, inserted or deleted row breaks the chain. This module is the whole definition of
that chain; the store writes it and ``readiness audit verify`` / the export code re-compute it.

Canonical form of a row (exactly what `row_hash` hashes)::

    hash = sha256(json.dumps(fields, sort_keys=True, separators=(",", ":"),
                             ensure_ascii=False).encode("utf-8")).hexdigest()

``fields`` is a JSON object with exactly these ten keys (every column except ``hash``), holding the
column values as stored in SQLite:

=============== =======================================================================================
seq             integer; 1 for the first row, then +1 per row, no gaps
at              number, unix seconds, a float written as Python writes floats: the shortest decimal
                that reads back to the same double, always with a fraction or exponent
                (``1714000000.0``, ``1714000000.25``)
kind            string: ``transition`` | ``snapshot`` | ``config`` | ``marker`` | ``action`` | ``report``
entity          string, e.g. ``site:ILM-001``
old             string, or null
new             string
reasons         string: the column text, itself canonical JSON (same dumps options) of a list of
                strings, e.g. ``["backup.down","terminals 3/5"]``; ``[]`` when there are none
config_version  string
payload         string: the column text, canonical JSON of an object; ``{}`` when empty
prev_hash       string, 64 lowercase hex digits: the ``hash`` of row ``seq - 1``; 64 zeros for row 1
=============== =======================================================================================

Because ``reasons`` and ``payload`` enter the hash as the exact text stored, a verifier never has to
re-serialise them; only ``at`` depends on float formatting. Non-ASCII text (Persian site names) is
hashed as raw UTF-8, not as ``\\u`` escapes.

What the chain cannot show on its own: rows cut off the *end* (the last row is as valid as any). Two
anchors close that gap, each a ``(seq, hash)`` head kept outside the table: the store's checkpoint
file ``events.checkpoint.json`` next to the database (the head as last committed, rewritten
atomically and fsynced at most every minute and when the store closes), and the head each export
bundle records in its manifest. `verify_store` checks the chain against both: a head recorded
earlier that the table no longer reaches is reported as rows missing from the end. The checkpoint
file lives on the same disk, so it shows truncation by accident or by someone who forgot it, not by
someone who rewrites both; a bundle's head, kept elsewhere (and signed), is the independent anchor.
Rows written after the last anchor and then removed cannot be shown by anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.errors import StoreError

DB_FILENAME = "events.db"
CHECKPOINT_FILENAME = "events.checkpoint.json"  # the chain head kept outside the table
CHECKPOINT_FORMAT = "readiness-store-checkpoint/1"
GENESIS_HASH = "0" * 64
HASHED_COLUMNS = (
    "seq", "at", "kind", "entity", "old", "new", "reasons", "config_version", "payload", "prev_hash",
)
TRIGGERS = ("events_no_update", "events_no_delete", "events_extend_chain")
SCHEMA_VERSION = 1  # PRAGMA user_version
# The store creates this; verification needs only the events table.
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,          -- 1, 2, 3, ... no gaps: a deleted row shows
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    entity TEXT NOT NULL,
    old TEXT,
    new TEXT NOT NULL,
    reasons TEXT NOT NULL,            -- canonical JSON list of strings
    config_version TEXT NOT NULL,
    payload TEXT NOT NULL,            -- canonical JSON object
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_at ON events (at);
CREATE INDEX IF NOT EXISTS events_entity ON events (entity);
-- Derived, not part of the record: the latest transition per entity, so a restart reads
-- one row per entity instead of scanning the whole history.
CREATE TABLE IF NOT EXISTS latest (entity TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS events_latest AFTER INSERT ON events WHEN NEW.kind = 'transition'
BEGIN INSERT OR REPLACE INTO latest (entity, seq) VALUES (NEW.entity, NEW.seq); END;
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events is append-only: DELETE refused'); END;
CREATE TRIGGER IF NOT EXISTS events_extend_chain BEFORE INSERT ON events
WHEN NEW.seq IS NOT (SELECT IFNULL(MAX(seq), 0) + 1 FROM events)
  OR NEW.prev_hash IS NOT IFNULL((SELECT hash FROM events WHERE seq = NEW.seq - 1), '{GENESIS_HASH}')
BEGIN SELECT RAISE(ABORT, 'events is a hash chain: an INSERT must extend it'); END;
"""


def _mapping(value: Any) -> dict[Any, Any]:
    """Encode a read-only mapping (an observation's probes.base.Values) as the equal dict would be."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                            default=_mapping)
_KEY_ORDER = tuple((key, HASHED_COLUMNS.index(key)) for key in sorted(HASHED_COLUMNS))


def canonical_json(value: Any) -> str:
    """Serialise ``value`` the one way the chain accepts (sorted keys, no spaces, raw UTF-8)."""
    return _ENCODER.encode(value)


def hash_values(values: Sequence[Any]) -> str:
    """Hash a row given as its HASHED_COLUMNS values in order, reasons and payload as stored text."""
    return hashlib.sha256(_ENCODER.encode({key: values[i] for key, i in _KEY_ORDER}).encode("utf-8")).hexdigest()


def row_hash(fields: Mapping[str, Any]) -> str:
    """Return the chain hash of one row given its columns (a ``hash`` key, if present, is ignored).

    ``reasons`` and ``payload`` may be given as the stored JSON text or as a list/tuple and a dict;
    the latter are serialised canonically first, so both spellings hash the same.
    """
    keys = set(fields) - {"hash"}
    if keys != set(HASHED_COLUMNS):
        missing, extra = set(HASHED_COLUMNS) - keys, keys - set(HASHED_COLUMNS)
        raise ValueError(f"row fields must be exactly {HASHED_COLUMNS}: missing {missing}, unexpected {extra}")
    values = [fields[key] for key in HASHED_COLUMNS]
    for key in ("reasons", "payload"):
        i = HASHED_COLUMNS.index(key)
        if not isinstance(values[i], str):
            values[i] = canonical_json(list(values[i]) if key == "reasons" else values[i])
    return hash_values(values)


@dataclass(frozen=True, slots=True)
class Anchor:
    """A chain head ``(seq, hash)`` recorded outside the table, and where: the chain must still reach it."""

    seq: int
    hash: str
    recorded: str = "earlier"  # "at 2026-02-20T02:00:00Z (events.checkpoint.json)": ends "the head recorded …"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """What walking the chain found: ok, or the first bad row and why; and what it could not prove."""

    ok: bool
    rows: int  # rows checked (up to and including the first bad one)
    first_bad_seq: int | None = None
    reason: str = ""
    head_seq: int = 0  # last good row
    head_hash: str = GENESIS_HASH
    warnings: tuple[str, ...] = ()
    unproven: tuple[str, ...] = ()  # what could not be checked (a strict verify fails on these too)
    anchored: tuple[str, ...] = ()  # the anchors the chain was found to reach

    @property
    def proven(self) -> bool:
        """Whether the chain is intact and nothing was left unchecked."""
        return self.ok and not self.unproven

    def __str__(self) -> str:
        if self.ok:
            text = f"chain intact: {self.rows} rows, chain head {self.head_seq} {self.head_hash}"
        else:
            text = f"FAILED after {self.rows} rows: {self.reason}"
        return "\n".join([text, *(f"reaches {a}" for a in self.anchored),
                          *(f"not proved: {u}" for u in self.unproven), *(f"warning: {w}" for w in self.warnings)])


def _as_anchor(anchor: Anchor | tuple[int, str]) -> Anchor:
    return anchor if isinstance(anchor, Anchor) else Anchor(anchor[0], anchor[1])


def verify_rows(
    rows: Iterable[tuple[Any, ...]], anchor: Anchor | tuple[int, str] | None = None,
    anchors: Sequence[Anchor | tuple[int, str]] = (),
) -> VerifyResult:
    """Walk rows (HASHED_COLUMNS then hash, in seq order) and report the first one that breaks the chain.

    Each anchor is a head recorded earlier: the row at its seq must have its hash, and the chain
    must reach it (rows cut off the end show as missing).
    """
    pinned = [_as_anchor(a) for a in ([anchor] if anchor is not None else []) + list(anchors)]
    by_seq: dict[int, list[Anchor]] = {}
    for a in pinned:
        by_seq.setdefault(a.seq, []).append(a)
    expected, prev, checked = 1, GENESIS_HASH, 0

    def bad(seq: int, reason: str) -> VerifyResult:
        return VerifyResult(False, checked, seq, reason, expected - 1, prev)

    for row in rows:
        seq, prev_hash, stored = row[0], row[9], row[10]
        checked += 1
        if seq != expected:
            if isinstance(seq, int) and seq > expected:
                return bad(expected, f"row {expected} missing (deleted)")
            return bad(seq, f"row {seq}: unexpected sequence number, expected {expected} (inserted)")
        if prev_hash != prev:
            if seq == 1:
                return bad(1, "row 1: prev_hash is not the genesis hash (rows before it deleted, or inserted)")
            return bad(seq, f"row {seq}: prev_hash does not match row {seq - 1} (inserted or reordered)")
        try:
            computed = hash_values(row)
        except (TypeError, ValueError):  # a blob, NaN or infinity put in by hand: cannot be ours
            computed = ""
        if computed != stored:
            return bad(seq, f"row {seq}: hash mismatch (content changed)")
        for a in by_seq.get(seq, ()):
            if stored != a.hash:
                return bad(seq, f"row {seq}: hash differs from the head recorded {a.recorded}, {a.hash} "
                                f"(history rewritten)")
        expected, prev = seq + 1, stored
    for a in sorted(pinned, key=lambda a: -a.seq):
        if a.seq >= expected:
            return VerifyResult(
                False, checked, expected,
                f"rows after seq {expected - 1} are missing: the head recorded {a.recorded} was {a.seq}",
                expected - 1, prev,
            )
    reached = tuple(f"the head recorded {a.recorded} (seq {a.seq})" for a in pinned)
    return VerifyResult(True, checked, None, "", expected - 1, prev, anchored=reached)


# -- the checkpoint: the head kept next to the table ------------------------------------------------

def checkpoint_json(seq: int, head_hash: str, at: float) -> bytes:
    """Return the checkpoint file's bytes for head ``(seq, head_hash)`` committed by ``at``."""
    iso = datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return (canonical_json({"format": CHECKPOINT_FORMAT, "seq": seq, "hash": head_hash, "at": float(at),
                            "at_iso": iso}) + "\n").encode("utf-8")


def write_checkpoint(data_dir: str | Path, seq: int, head_hash: str, at: float) -> None:
    """Replace the checkpoint file atomically (write, fsync, rename, fsync the dir); OSError on failure."""
    directory = Path(data_dir)
    path = directory / CHECKPOINT_FILENAME
    tmp = directory / f".{CHECKPOINT_FILENAME}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, checkpoint_json(seq, head_hash, at))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read_checkpoint(data_dir: str | Path) -> Anchor | None:
    """Return the store's checkpoint as an anchor, None when there is no file; StoreError if it is garbled."""
    path = Path(data_dir) / CHECKPOINT_FILENAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        doc = json.loads(raw.decode("utf-8"))
        seq, head_hash, at = doc["seq"], doc["hash"], doc["at"]
        if doc.get("format") != CHECKPOINT_FORMAT or not isinstance(seq, int) or not isinstance(head_hash, str) \
                or not isinstance(at, int | float):
            raise ValueError("not a checkpoint")
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"{path} is not a store checkpoint ({exc})") from exc
    iso = datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return Anchor(seq, head_hash, f"at {iso} ({CHECKPOINT_FILENAME})")


def connect_readonly(data_dir: str | Path) -> sqlite3.Connection:
    """Open the store of ``data_dir`` for reading; StoreError if there is none."""
    path = Path(data_dir) / DB_FILENAME
    if not path.is_file():
        raise StoreError(f"no event store at {path}")
    # On a read-only mount SQLite cannot create the WAL index; nothing can write there either,
    # so the file may be read as immutable.
    frozen = "&immutable=1" if os.statvfs(path).f_flag & os.ST_RDONLY else ""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro{frozen}", uri=True, timeout=10)
        conn.execute("SELECT 1 FROM events LIMIT 1")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read {path}: {exc}") from exc
    return conn


def verify_store(data_dir: str | Path, *, anchor: Anchor | tuple[int, str] | None = None,
                 checkpoint: bool = True) -> VerifyResult:
    """Walk the whole chain of the store in ``data_dir``; name the first bad row and why.

    Safe while a writer is running (it reads one consistent WAL snapshot). ``anchor`` is a head
    recorded earlier (an export's); with ``checkpoint`` the store's own checkpoint file is one
    too. Either catches rows cut off the end; with neither, that is reported as not proved.
    """
    anchors: list[Anchor] = [] if anchor is None else [_as_anchor(anchor)]
    unproven: list[str] = []
    conn = connect_readonly(data_dir)
    try:
        if checkpoint:
            try:
                saved = read_checkpoint(data_dir)
            except StoreError as exc:
                saved = None
                unproven.append(f"{exc}: rows cut off the end cannot be detected")
            else:
                if saved is not None:
                    anchors.append(saved)
                elif conn.execute("SELECT 1 FROM events LIMIT 1").fetchone() is not None:
                    unproven.append(f"no checkpoint file {CHECKPOINT_FILENAME} (deleted, or a store older than "
                                    f"checkpoints): rows cut off the end cannot be detected")
        present = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        warnings = tuple(f"trigger {t} is missing (someone disabled append-only)" for t in TRIGGERS
                         if t not in present)
        cursor = conn.execute(f"SELECT {', '.join(HASHED_COLUMNS)}, hash FROM events ORDER BY seq")
        result = verify_rows(cursor, anchors=anchors)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read {Path(data_dir) / DB_FILENAME}: {exc}") from exc
    finally:
        conn.close()
    return VerifyResult(result.ok, result.rows, result.first_bad_seq, result.reason,
                        result.head_seq, result.head_hash, warnings, tuple(unproven), result.anchored)
