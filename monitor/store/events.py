"""The event store, the audit's system of record: append-only, hash-chained SQLite in the data dir.

What goes in: every state transition of a target, link or site (with its reasons and the config
version in force), a periodic snapshot of every site, config loads, and markers (store opened or
closed, events dropped). The hash chain and its canonical form are defined in `monitor.store.chain`.

How it is written: `append` only queues (it never blocks the event loop and never raises for disk
trouble); one writer thread commits the queue every ``batch_seconds`` in one transaction. The
database runs in WAL mode with ``synchronous=FULL``, so a commit has reached the disk when COMMIT
returns: whatever `flush` reported or ``status.committed_seq`` counts survives kill -9 and power
loss, and an interrupted batch leaves no trace. When a commit fails (disk full, read-only, locked,
I/O error) the batch stays in memory in order, ``status`` says why, the writer retries with backoff
and catches up when it can. Only if the queue outgrows ``max_queue`` are new events dropped — and
then a ``marker`` row records how many, so the gap is on the record too.

Append-only by construction: triggers refuse UPDATE and DELETE and any INSERT that does not extend
the chain. Someone with the file can drop them, which `monitor.store.chain.verify_store` then notices.
A chain cannot show rows cut off its end, so the writer also keeps the head outside the table: after
a commit, at most every ``checkpoint_seconds`` and when the store closes, it replaces
``events.checkpoint.json`` (fsynced) with the committed ``(seq, hash)``; verify checks the chain
still reaches it. Failing to write it is logged and never stops the record.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import socket
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from monitor.errors import StoreError
from monitor.store.chain import (
    CHECKPOINT_FILENAME,
    DB_FILENAME,
    GENESIS_HASH,
    HASHED_COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    VerifyResult,
    canonical_json,
    connect_readonly,
    hash_values,
    read_checkpoint,
    row_hash,
    verify_store,
    write_checkpoint,
)

__all__ = [
    "SNAPSHOT_INTERVAL_SECONDS", "Event", "EventStore", "StoreStatus", "Transition", "VerifyResult",
    "row_hash", "verify_store",
]

log = logging.getLogger(__name__)

SNAPSHOT_INTERVAL_SECONDS = 3600.0  # default period of the site snapshot rows
CHECKPOINT_SECONDS = 60.0  # how often (at most) the head is written to the checkpoint file
LOCK_FILENAME = "readiness.lock"
BATCH_MAX_ROWS = 20_000  # commit sooner than batch_seconds once this many rows wait
RETRY_MIN_SECONDS, RETRY_MAX_SECONDS = 0.05, 5.0

INSERT = f"INSERT INTO events ({', '.join(HASHED_COLUMNS)}, hash) VALUES ({', '.join('?' * 11)})"


@dataclass(frozen=True, slots=True)
class Transition:
    """One entity changed state, and why."""

    at: float  # unix seconds
    entity: str  # "site:ILM-001", "link:ILM-001/primary", "target:ILM-001/terminal/T1"
    old: str | None
    new: str
    reasons: tuple[str, ...]  # machine-readable ("backup.down", "terminals 3/5")
    config_version: str


@dataclass(frozen=True, slots=True)
class Event:
    """A stored row."""

    seq: int
    at: float
    kind: str  # "transition" | "snapshot" | "config" | "marker" | "action" | "report"
    entity: str
    old: str | None
    new: str
    reasons: tuple[str, ...]
    config_version: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """How the writer is doing; ``error`` is "" when ok."""

    ok: bool
    error: str
    queued: int  # events accepted but not yet committed
    committed_seq: int
    lag_seconds: float  # age of the oldest uncommitted event
    last_commit_at: float | None  # unix seconds
    dropped: int = 0  # events refused because the queue was full (each gap has a marker row)


class _Pending(NamedTuple):
    kind: str
    at: float
    entity: str
    old: str | None
    new: str
    reasons: str  # canonical JSON
    config_version: str
    payload: str  # canonical JSON
    queued_at: float  # time.monotonic()


def _pending(kind: str, at: float, entity: str, old: str | None, new: str, reasons: Iterable[str],
             config_version: str, payload: dict[str, Any] | None = None) -> _Pending:
    at = float(at)  # the column is REAL: an int would hash differently once read back
    if not math.isfinite(at):
        raise ValueError(f"event time must be finite, got {at!r} for {entity}")
    reasons = list(reasons)
    texts = [entity, new, config_version, *reasons, *([] if old is None else [old])]
    if not all(isinstance(t, str) for t in texts):  # SQLite would turn 5 into '5' and break the hash
        raise TypeError(f"entity, states, reasons and config version must be strings: {texts!r}")
    item = _Pending(kind, at, entity, old, new, canonical_json(reasons), config_version,
                    canonical_json(payload or {}), time.monotonic())
    # A row the writer cannot encode would block the queue behind it forever: refuse it here.
    "".join([*texts, item.payload]).encode("utf-8")
    return item


class EventStore:
    """The append-only, hash-chained event store of one data dir (one writer process per dir)."""

    def __init__(self, data_dir: str | Path, *, batch_seconds: float = 0.5, max_queue: int = 1_000_000,
                 checkpoint_seconds: float = CHECKPOINT_SECONDS):
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / DB_FILENAME
        self.batch_seconds = batch_seconds
        self.checkpoint_seconds = checkpoint_seconds
        self._checkpointed: tuple[int, float] = (-1, -math.inf)  # (seq, time.monotonic()) of the last checkpoint
        self._checkpoint_error = ""
        self.max_queue = max_queue
        self._cond = threading.Condition()
        self._queue: deque[_Pending] = deque()
        self._inflight: list[_Pending] = []  # taken by the writer, not yet committed
        self._enqueued = self._taken = self._committed = self._flush_target = 0
        self._failures = 0
        self._dropped = self._dropping = 0
        self._error = ""
        self._logged_error = ""
        self._head = (0, GENESIS_HASH)
        self._last_commit_at: float | None = None
        self._state = "new"  # new -> open -> closing -> closed
        self._give_up = False
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def open(self, *, wait_for_disk: bool = False) -> None:
        """Create the dir and database if needed, lock the dir, and start the writer thread.

        A dir that cannot be written (read-only, full) is a StoreError, unless ``wait_for_disk``: then the
        store opens anyway, ``status`` says why it cannot write, events queue in memory, and the writer
        takes the lock and opens the database as soon as the disk lets it. A dir in use by another
        process, or a database this version cannot handle, is refused either way."""
        if self._state != "new":
            raise StoreError(f"event store {self.path} was already opened")
        try:
            self._conn = self._prepare()
        except StoreError as exc:
            if not wait_for_disk or not isinstance(exc.__cause__, OSError | sqlite3.OperationalError):
                raise
            self._error = self._logged_error = str(exc)
            self._failures += 1
            log.error("event store %s cannot be written: %s; events wait in memory until it can", self.path, exc)
        self._state = "open"
        self._thread = threading.Thread(target=self._run, name="event-store-writer", daemon=True)
        self._thread.start()
        self._enqueue([self._marker("opened", {"pid": os.getpid(), "host": socket.gethostname(),
                                               "resumed_seq": self._head[0]})])
        log.info("event store %s open at row %d", self.path, self._head[0])

    def close(self, timeout: float = 10) -> None:
        """Commit what is queued (waiting at most ``timeout`` s if the disk refuses), then stop."""
        if self._state != "open":
            self._state = "closed"
            return
        self._enqueue([self._marker("closed", {"pid": os.getpid()})])
        with self._cond:
            self._state = "closing"
            self._cond.notify_all()
        assert self._thread is not None
        self._thread.join(timeout)
        if self._thread.is_alive() and self._error:  # still failing: stop waiting for the disk
            with self._cond:
                self._give_up = True
                self._cond.notify_all()
        self._thread.join()
        self._checkpoint(force=True)  # the writer is gone: the head is final
        with self._cond:
            lost = len(self._queue) + len(self._inflight)
        if lost:
            log.error("event store %s closed with %d events not written: %s", self.path, lost, self._error)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._unlock_dir()
        self._state = "closed"

    def __enter__(self) -> EventStore:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing --------------------------------------------------------------------------------

    def append(self, transitions: Iterable[Transition]) -> None:
        """Queue transitions for the writer; returns at once and never raises for disk trouble."""
        self._enqueue([_pending("transition", t.at, t.entity, t.old, t.new, t.reasons, t.config_version)
                       for t in transitions])

    def append_snapshot(self, at: float, sites: dict[str, dict[str, Any]], config_version: str) -> None:
        """Queue one snapshot row whose payload holds every site's state, reasons and since."""
        self._enqueue([_pending("snapshot", at, "sites", None, "snapshot", (), config_version,
                                {"sites": sites})])

    def append_config(self, at: float, config_version: str, details: dict[str, Any] | None = None) -> None:
        """Queue a row recording that ``config_version`` came into force (details: files, counts)."""
        self._enqueue([_pending("config", at, "config", None, config_version, (), config_version, details)])

    def append_action(self, at: float, entity: str, old: str | None, new: str, payload: dict[str, Any],
                      config_version: str = "") -> None:
        """Queue one step of a remediation action (``entity`` ``action:ID``, ``new`` its state after the step)."""
        self._enqueue([_pending("action", at, entity, old, new, (), config_version, payload)])

    def append_report(self, at: float, name: str, manifest_sha256: str, payload: dict[str, Any],
                      config_version: str = "") -> None:
        """Queue a row recording that report ``name`` was written, with the hash of its manifest."""
        self._enqueue([_pending("report", at, f"report:{name}", None, manifest_sha256, (), config_version, payload)])

    def _marker(self, what: str, payload: dict[str, Any]) -> _Pending:
        return _pending("marker", time.time(), "store", None, what, (), "", payload)

    def _enqueue(self, items: list[_Pending]) -> None:
        if not items:
            return
        with self._cond:
            if self._state in ("closing", "closed"):
                raise StoreError(f"event store {self.path} is closed")
            for item in items:
                if len(self._queue) + len(self._inflight) >= self.max_queue:
                    if not self._dropping:
                        log.error("event store %s: queue full (%d events), dropping new events until it "
                                  "catches up: %s", self.path, self.max_queue, self._error or "writer too slow")
                    self._dropping += 1
                    self._dropped += 1
                    continue
                if self._dropping:  # room again: put the gap on the record before the next event
                    self._queue.append(self._marker("dropped", {"events": self._dropping}))
                    self._enqueued += 1
                    self._dropping = 0
                self._queue.append(item)
                self._enqueued += 1
            self._cond.notify_all()

    def flush(self, timeout: float = 10) -> bool:
        """Wait until everything queued so far is committed: True, or False on a failed write or timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target, failures = self._enqueued, self._failures
            self._flush_target = max(self._flush_target, target)
            self._cond.notify_all()
            while self._committed < target:
                remaining = deadline - time.monotonic()
                alive = self._thread is not None and self._thread.is_alive()
                if self._failures > failures or remaining <= 0 or not alive:
                    return False
                self._cond.wait(remaining)
            return True

    # -- the writer thread ----------------------------------------------------------------------

    def _due_in(self) -> float | None:
        """Seconds until the queue should be written (0: now), None when there is nothing to write."""
        if not self._queue:
            return None
        if self._state != "open" or self._taken < self._flush_target or len(self._queue) >= BATCH_MAX_ROWS:
            return 0.0
        return max(0.0, self._queue[0].queued_at + self.batch_seconds - time.monotonic())

    def _run(self) -> None:
        delay, chunk = RETRY_MIN_SECONDS, BATCH_MAX_ROWS
        while True:
            with self._cond:
                if not self._inflight:
                    while (due := self._due_in()) != 0.0:
                        if due is None and self._state != "open":
                            return
                        self._cond.wait(due)
                    n = min(len(self._queue), BATCH_MAX_ROWS)
                    self._inflight = [self._queue.popleft() for _ in range(n)]
                    self._taken += n
                elif self._give_up:
                    return
                part = self._inflight[:chunk]
            try:
                self._write(part)
            except Exception as exc:
                self._write_failed(exc)
                # A batch bigger than the space left would never fit: halve it (order is kept,
                # the rest follows) and back off only once single rows fail too.
                if chunk > 1:
                    chunk = max(1, len(part) // 2)
                else:
                    delay = min(delay * 2, RETRY_MAX_SECONDS)
                with self._cond:
                    self._cond.wait_for(lambda: self._give_up, delay)
                continue
            delay, chunk = RETRY_MIN_SECONDS, min(chunk * 2, BATCH_MAX_ROWS)
            self._checkpoint()
            with self._cond:
                del self._inflight[: len(part)]
                self._committed += len(part)
                self._last_commit_at = time.time()
                if self._error:
                    log.warning("event store %s writing again at row %d (%d events to catch up)", self.path,
                                self._head[0], len(self._queue) + len(self._inflight))
                self._error = self._logged_error = ""
                self._cond.notify_all()

    def _write(self, batch: list[_Pending]) -> None:
        if self._lock_fd is None:  # opened while the disk refused (wait_for_disk): lock and open it now
            self._conn = self._prepare()
            log.warning("event store %s is writable now (chain head %d)", self.path, self._head[0])
        if self._conn is None:
            self._conn = self._connect()
        conn = self._conn
        seq, prev = self._head
        rows = []
        for p in batch:
            seq += 1
            fields = (seq, p.at, p.kind, p.entity, p.old, p.new, p.reasons, p.config_version, p.payload, prev)
            prev = hash_values(fields)
            rows.append((*fields, prev))
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(INSERT, rows)
            conn.execute("COMMIT")  # synchronous=FULL: on disk (WAL fsynced) when this returns
        except BaseException:
            # Start over from a fresh connection, which re-reads the head from disk: whatever
            # state SQLite was left in after ENOSPC/EIO, we trust only what was committed.
            self._conn = None
            try:
                conn.rollback()
                conn.close()
            except sqlite3.Error:
                pass
            raise
        self._head = (seq, prev)

    def _check_checkpoint(self, conn: sqlite3.Connection) -> None:
        """Refuse to extend a chain that no longer reaches its checkpoint (rows cut off or rewritten).

        Writing on would replace the checkpoint, the one trace of what was removed; the operator
        decides (``readiness audit verify --data-dir``, then move the checkpoint file aside).
        """
        saved = read_checkpoint(self.data_dir)
        if saved is None:
            return
        row = conn.execute("SELECT hash FROM events WHERE seq = ?", (saved.seq,)).fetchone()
        if saved.seq > self._head[0]:
            problem = (f"rows after seq {self._head[0]} are missing: the head recorded {saved.recorded} "
                       f"was {saved.seq}")
        elif saved.seq > 0 and (row is None or row[0] != saved.hash):
            problem = f"row {saved.seq} differs from the head recorded {saved.recorded} (history rewritten)"
        else:
            self._checkpointed = (saved.seq, -math.inf)
            return
        raise StoreError(f"{self.path}: {problem}; refusing to record on top of it (check it with `readiness "
                         f"audit verify --data-dir {self.data_dir}`; to go on anyway, move "
                         f"{self.data_dir / CHECKPOINT_FILENAME} aside)")

    def _checkpoint(self, *, force: bool = False) -> None:
        """Write the committed head to the checkpoint file when due (by the writer after a commit, or at close)."""
        seq, head_hash = self._head
        last_seq, last_at = self._checkpointed
        due = force or self._state != "open" or time.monotonic() - last_at >= self.checkpoint_seconds
        if seq == last_seq or not due:
            return
        try:
            write_checkpoint(self.data_dir, seq, head_hash, time.time())
        except OSError as exc:
            cause = f"cannot write {self.data_dir / CHECKPOINT_FILENAME}: {exc.strerror or exc}"
            if cause != self._checkpoint_error:
                log.warning("event store %s: %s (the record goes on; truncation of its tail is detectable "
                            "only up to the last checkpoint)", self.path, cause)
            self._checkpoint_error = cause
            return
        self._checkpointed, self._checkpoint_error = (seq, time.monotonic()), ""

    def _write_failed(self, exc: Exception) -> None:
        cause = f"cannot write {self.path}: {exc}"
        with self._cond:
            self._failures += 1
            self._error = cause
            self._cond.notify_all()
            if cause == self._logged_error:
                return
            self._logged_error = cause
        if isinstance(exc, sqlite3.Error | StoreError | OSError):
            log.error("%s (keeping %d events in memory, retrying)", cause, self.status.queued)
        else:
            log.exception("event store writer failed unexpectedly (retrying): %s", cause)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise StoreError(f"cannot open {self.path}: WAL journal not supported here (got {mode})")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA journal_size_limit=67108864")  # give WAL space back after checkpoints
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path} has schema {version}, newer than this readiness ({SCHEMA_VERSION})")
            if version < SCHEMA_VERSION:
                conn.executescript(f"BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")
            last = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        except BaseException:
            conn.close()
            raise
        self._head = (last[0], last[1]) if last else (0, GENESIS_HASH)
        return conn

    def _prepare(self) -> sqlite3.Connection:
        """Create the dir, lock it and connect: StoreError, with the OS or SQLite error as its cause."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create data dir {self.data_dir}: {exc.strerror or exc}") from exc
        self._lock_dir()
        try:
            conn = self._connect()
        except (sqlite3.Error, StoreError) as exc:
            self._unlock_dir()
            raise exc if isinstance(exc, StoreError) else StoreError(f"cannot open {self.path}: {exc}") from exc
        try:  # a store that no longer reaches its checkpoint lost rows: refuse rather than overwrite the evidence
            self._check_checkpoint(conn)
        except (sqlite3.Error, StoreError) as exc:
            conn.close()
            self._unlock_dir()
            raise exc if isinstance(exc, StoreError) else StoreError(f"cannot open {self.path}: {exc}") from exc
        return conn

    # -- the lock -------------------------------------------------------------------------------

    def _lock_dir(self) -> None:
        path = self.data_dir / LOCK_FILENAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"data dir {self.data_dir} is not usable: cannot open {path}: "
                             f"{exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreError(f"data dir {self.data_dir} is in use by another readiness process "
                             f"(pid {holder})") from None
        try:  # the pid is only a hint for the message above; a full disk must not stop us here
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass
        self._lock_fd = fd

    def _unlock_dir(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock; the file stays (removing it would race)
            self._lock_fd = None

    # -- reading --------------------------------------------------------------------------------

    @property
    def status(self) -> StoreStatus:
        """The writer's health, for /metrics and the status page."""
        with self._cond:
            pending = len(self._queue) + len(self._inflight)
            oldest = self._inflight[0] if self._inflight else (self._queue[0] if self._queue else None)
            error = self._error
            if self._dropping:
                error = "; ".join(filter(None, [error, f"queue full: {self._dropping} events dropped so far"]))
            return StoreStatus(
                ok=not error, error=error, queued=pending, committed_seq=self._head[0],
                lag_seconds=time.monotonic() - oldest.queued_at if oldest else 0.0,
                last_commit_at=self._last_commit_at, dropped=self._dropped,
            )

    def chain_head(self) -> tuple[int, str]:
        """(seq, hash) of the last committed row; (0, 64 zeros) when empty."""
        if self._state in ("open", "closing"):
            with self._cond:
                return self._head
        with self._reader() as conn:
            row = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else (0, GENESIS_HASH)

    def last_states(self) -> dict[str, tuple[str, float, tuple[str, ...]]]:
        """entity -> (state, since, reasons) from its latest committed transition (resume after restart)."""
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT e.entity, e.new, e.at, e.reasons FROM latest l JOIN events e ON e.seq = l.seq"
            ).fetchall()
        return {entity: (new, at, _loads_reasons(reasons)) for entity, new, at, reasons in rows}

    def events(self, start: float | None = None, end: float | None = None, kinds: Iterable[str] | None = None,
               entity_prefix: str | None = None) -> Iterator[Event]:
        """Stored rows in seq order with ``start <= at < end``, of the given kinds, for matching entities."""
        where: list[str] = []
        args: list[Any] = []
        if start is not None:
            where.append("at >= ?")
            args.append(start)
        if end is not None:
            where.append("at < ?")
            args.append(end)
        if kinds is not None:
            kinds = list(kinds)
            where.append(f"kind IN ({', '.join('?' * len(kinds))})")
            args.extend(kinds)
        if entity_prefix:
            where.append("entity >= ? AND substr(entity, 1, ?) = ?")  # the >= lets the index help
            args.extend([entity_prefix, len(entity_prefix), entity_prefix])
        sql = f"SELECT {', '.join(HASHED_COLUMNS)}, hash FROM events"
        sql += f" WHERE {' AND '.join(where)} ORDER BY seq" if where else " ORDER BY seq"
        with self._reader() as conn:
            for seq, at, kind, entity, old, new, reasons, cv, payload, prev, h in conn.execute(sql, args):
                yield Event(seq, at, kind, entity, old, new, _loads_reasons(reasons), cv,
                            json.loads(payload), prev, h)

    def last_at(self, kind: str) -> tuple[float, str] | None:
        """Return (at, new) of the newest row of ``kind``, without reading any payload."""
        with self._reader() as conn:
            row = conn.execute("SELECT at, new FROM events WHERE kind = ? ORDER BY seq DESC LIMIT 1",
                               (kind,)).fetchone()
        return (row[0], row[1]) if row else None

    def last_payload(self, kind: str) -> dict[str, Any] | None:
        """Return the payload of the newest row of ``kind`` (None: no such row)."""
        with self._reader() as conn:
            row = conn.execute("SELECT payload FROM events WHERE kind = ? ORDER BY seq DESC LIMIT 1",
                               (kind,)).fetchone()
        return json.loads(row[0]) if row else None

    def _reader(self) -> _Reader:
        return _Reader(self.data_dir)


class _Reader:
    """A short-lived read-only connection (WAL: readers never wait for the writer)."""

    def __init__(self, data_dir: Path) -> None:
        self.conn = connect_readonly(data_dir)

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()


def _loads_reasons(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))
