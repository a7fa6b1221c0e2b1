"""The event store: hash chain, tampering, restart, kill -9, full and read-only disks, the dir lock."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.errors import StoreError
from monitor.store.chain import GENESIS_HASH, canonical_json
from monitor.store.events import EventStore, Transition, row_hash, verify_store
from tests.helpers import require_root, require_tool

ROOT = Path(__file__).resolve().parents[2]


def tr(i: int, entity: str = "site:ILM-001", new: str = "ready", reasons: tuple[str, ...] = ()) -> Transition:
    return Transition(1_714_000_000.0 + i, entity, None, new, reasons, "cfg-1")


def filled_store(data_dir: Path, n: int = 20) -> Path:
    """A closed store with the open marker, n transitions and the close marker (n + 2 rows)."""
    with EventStore(data_dir, batch_seconds=0.01) as store:
        store.append(tr(i, f"target:ILM-001/terminal/T{i % 3}", f"s{i}", (f"i={i}",)) for i in range(n))
        assert store.flush()
    return data_dir / "events.db"


def transitions(store: EventStore) -> list[tuple[str, str]]:
    return [(e.entity, e.new) for e in store.events(kinds=["transition"])]


# -- the chain ------------------------------------------------------------------------------------


def test_row_hash_follows_the_documented_canonical_form() -> None:
    """An auditor re-computing the hash from the docstring's recipe gets the same digest."""
    fields = {"seq": 1, "at": 1714000000.25, "kind": "transition", "entity": "site:ILM-001", "old": None,
              "new": "degraded", "reasons": ["backup.down"], "config_version": "cfg-1",
              "payload": {"name": "مدرسه شهید بهشتی"}, "prev_hash": GENESIS_HASH}
    text = ('{"at":1714000000.25,"config_version":"cfg-1","entity":"site:ILM-001","kind":"transition",'
            '"new":"degraded","old":null,"payload":"{\\"name\\":\\"مدرسه شهید بهشتی\\"}","prev_hash":"'
            + "0" * 64 + '","reasons":"[\\"backup.down\\"]","seq":1}')
    expected = hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert row_hash(fields) == expected
    stored = {**fields, "reasons": '["backup.down"]', "payload": canonical_json(fields["payload"])}
    assert row_hash({**stored, "hash": "ignored"}) == expected
    with pytest.raises(ValueError, match="missing"):
        row_hash({k: v for k, v in fields.items() if k != "seq"})


def test_rows_chain_from_genesis_and_hash_as_documented(tmp_path: Path) -> None:
    """Every stored row's hash is row_hash of its columns and prev_hash is the previous row's hash."""
    filled_store(tmp_path, 5)
    with sqlite3.connect(tmp_path / "events.db") as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute("SELECT * FROM events ORDER BY seq")]
    assert [r["seq"] for r in rows] == list(range(1, 8))
    prev = GENESIS_HASH
    for row in rows:
        assert row["prev_hash"] == prev
        assert row_hash(row) == row["hash"]
        prev = row["hash"]
    result = verify_store(tmp_path)
    assert result.ok and result.rows == 7 and (result.head_seq, result.head_hash) == (7, prev)
    assert EventStore(tmp_path).chain_head() == (7, prev)


def test_triggers_refuse_update_delete_and_an_insert_that_does_not_extend_the_chain(tmp_path: Path) -> None:
    """The table is append-only by construction, not by convention."""
    db = filled_store(tmp_path, 3)
    with sqlite3.connect(db) as conn:
        with pytest.raises(sqlite3.DatabaseError, match="UPDATE refused"):
            conn.execute("UPDATE events SET new = 'ready' WHERE seq = 2")
        with pytest.raises(sqlite3.DatabaseError, match="DELETE refused"):
            conn.execute("DELETE FROM events WHERE seq = 2")
        with pytest.raises(sqlite3.DatabaseError, match="must extend"):
            conn.execute("INSERT INTO events SELECT 99, at, kind, entity, old, new, reasons, config_version, "
                         "payload, hash, 'x' FROM events WHERE seq = 5")
        with pytest.raises(sqlite3.DatabaseError, match="must extend"):
            conn.execute("INSERT INTO events SELECT 6, at, kind, entity, old, new, reasons, config_version, "
                         "payload, prev_hash, hash FROM events WHERE seq = 5")
    assert verify_store(tmp_path).ok


def _drop_triggers(conn: sqlite3.Connection) -> None:
    for name in ("events_no_update", "events_no_delete", "events_extend_chain"):
        conn.execute(f"DROP TRIGGER {name}")


def _edit(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE events SET new = 'up' WHERE seq = 12")


def _edit_payload_whitespace(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE events SET payload = '{ }' WHERE seq = 1")


def _edit_and_rehash(conn: sqlite3.Connection) -> None:
    """A careful tamperer recomputes the changed row's own hash; the next row still points at the old one."""
    conn.execute("UPDATE events SET new = 'up', reasons = '[]' WHERE seq = 12")
    conn.row_factory = sqlite3.Row
    row = dict(conn.execute("SELECT * FROM events WHERE seq = 12").fetchone())
    conn.execute("UPDATE events SET hash = ? WHERE seq = 12", (row_hash(row),))


def _delete(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM events WHERE seq = 7")


def _delete_and_renumber(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM events WHERE seq = 7")
    conn.execute("UPDATE events SET seq = -(seq - 1) WHERE seq > 7")
    conn.execute("UPDATE events SET seq = -seq WHERE seq < 0")


def _insert(conn: sqlite3.Connection) -> None:
    """Make room at 10 and insert a forged row whose own hash and link to row 9 are right."""
    conn.execute("UPDATE events SET seq = -(seq + 1) WHERE seq >= 10")
    conn.execute("UPDATE events SET seq = -seq WHERE seq < 0")
    prev = conn.execute("SELECT hash FROM events WHERE seq = 9").fetchone()[0]
    forged = {"seq": 10, "at": 1714000100.0, "kind": "transition", "entity": "site:ILM-001", "old": "not_ready",
              "new": "ready", "reasons": "[]", "config_version": "cfg-1", "payload": "{}", "prev_hash": prev}
    conn.execute("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?)", (*forged.values(), row_hash(forged)))


def _append_forged(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO events SELECT 23, at, kind, entity, old, new, reasons, config_version, payload, "
                 "prev_hash, hash FROM events WHERE seq = 22")


def _delete_first(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM events WHERE seq = 1")


@pytest.mark.parametrize(
    ("tamper", "bad_seq", "reason"),
    [
        (_edit, 12, "row 12: hash mismatch (content changed)"),
        (_edit_payload_whitespace, 1, "row 1: hash mismatch (content changed)"),
        (_edit_and_rehash, 13, "row 13: prev_hash does not match row 12 (inserted or reordered)"),
        (_delete, 7, "row 7 missing (deleted)"),
        (_delete_first, 1, "row 1 missing (deleted)"),
        (_delete_and_renumber, 7, "row 7: prev_hash does not match row 6 (inserted or reordered)"),
        (_insert, 11, "row 11: prev_hash does not match row 10 (inserted or reordered)"),
        (_append_forged, 23, "row 23: prev_hash does not match row 22 (inserted or reordered)"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else None,
)
def test_verify_names_the_first_tampered_row(tmp_path: Path, tamper, bad_seq: int, reason: str) -> None:
    """Someone with the file drops the triggers and edits, inserts or deletes rows in SQLite."""
    db = filled_store(tmp_path, 20)
    assert verify_store(tmp_path).ok
    with sqlite3.connect(db) as conn:
        _drop_triggers(conn)
        tamper(conn)
    result = verify_store(tmp_path)
    assert not result.ok
    assert (result.first_bad_seq, result.reason) == (bad_seq, reason)
    assert any("events_no_update is missing" in w for w in result.warnings)
    assert reason in str(result)


def test_an_anchor_catches_rows_cut_off_the_end(tmp_path: Path) -> None:
    """Truncation leaves a valid chain; a head recorded earlier (an export's anchor) exposes it."""
    db = filled_store(tmp_path, 5)
    anchor = verify_store(tmp_path).head_seq, verify_store(tmp_path).head_hash
    assert verify_store(tmp_path, anchor=anchor).ok
    with sqlite3.connect(db) as conn:
        _drop_triggers(conn)
        conn.execute("DELETE FROM events WHERE seq >= 6")
    assert verify_store(tmp_path, checkpoint=False).ok  # the limit of any hash chain on its own
    result = verify_store(tmp_path, anchor=anchor, checkpoint=False)
    assert (result.ok, result.first_bad_seq) == (False, 6)
    assert result.reason == "rows after seq 5 are missing: the head recorded earlier was 7"


def test_the_checkpoint_catches_the_last_rows_deleted(tmp_path: Path) -> None:
    """The store keeps its head in a checkpoint file: deleting the last rows of the table shows, by seq and time."""
    db = filled_store(tmp_path, 5)  # 7 rows: opened, 5 transitions, closed
    saved = json.loads((tmp_path / "events.checkpoint.json").read_text())
    head = verify_store(tmp_path)
    assert head.proven and (saved["seq"], saved["hash"]) == (head.head_seq, head.head_hash) == (7, head.head_hash)
    assert f"reaches the head recorded at {saved['at_iso']} (events.checkpoint.json) (seq 7)" in str(head)
    with sqlite3.connect(db) as conn:
        _drop_triggers(conn)
        conn.execute("DELETE FROM events WHERE seq >= 6")
    result = verify_store(tmp_path)
    assert (result.ok, result.first_bad_seq, result.head_seq) == (False, 6, 5)
    assert result.reason == (f"rows after seq 5 are missing: the head recorded at {saved['at_iso']} "
                             f"(events.checkpoint.json) was 7")
    assert "chain intact" not in str(result) and "ok" not in str(result).split()
    # The store refuses to write on (which would replace the checkpoint, the trace of the cut).
    with pytest.raises(StoreError, match=r"rows after seq 5 are missing: .* refusing to record on top of it"):
        EventStore(tmp_path).open()
    assert json.loads((tmp_path / "events.checkpoint.json").read_text())["seq"] == 7


def test_a_missing_or_rewritten_checkpoint_is_reported(tmp_path: Path) -> None:
    """No checkpoint file: the tail cannot be proved (said, not passed over); a rewritten row at its seq shows."""
    db = filled_store(tmp_path, 3)
    checkpoint = tmp_path / "events.checkpoint.json"
    saved = checkpoint.read_bytes()
    checkpoint.unlink()
    result = verify_store(tmp_path)
    assert result.ok and not result.proven
    assert "not proved: no checkpoint file events.checkpoint.json" in str(result)
    checkpoint.write_bytes(saved)
    with sqlite3.connect(db) as conn:
        _drop_triggers(conn)
        conn.execute("DELETE FROM events WHERE seq = 5")
        row = conn.execute("SELECT * FROM events WHERE seq = 4").fetchone()
        fields = dict(zip(("seq", "at", "kind", "entity", "old", "new", "reasons", "config_version", "payload",
                           "prev_hash"), row[:10], strict=True))
        fields.update(seq=5, new="forged")  # a new last row 5, correctly chained, but not the one recorded
        fields["prev_hash"] = row[10]
        conn.execute("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                     (*fields.values(), row_hash(fields)))
    result = verify_store(tmp_path)
    assert (result.ok, result.first_bad_seq) == (False, 5)
    assert "row 5: hash differs from the head recorded at" in result.reason


def test_checkpoints_follow_commits_at_most_every_checkpoint_seconds(tmp_path: Path) -> None:
    """While open: written after the first commit, then not again until due; at close: the final head."""
    checkpoint = tmp_path / "events.checkpoint.json"
    with EventStore(tmp_path, batch_seconds=0.01, checkpoint_seconds=3600) as store:
        assert store.flush()
        assert json.loads(checkpoint.read_text())["seq"] == 1  # the "opened" marker
        store.append([tr(1), tr(2)])
        assert store.flush()
        assert json.loads(checkpoint.read_text())["seq"] == 1  # not due yet
    assert json.loads(checkpoint.read_text())["seq"] == 4 == verify_store(tmp_path).head_seq


def test_verify_without_a_store_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=f"no event store at {tmp_path}"):
        verify_store(tmp_path)


# -- writing and reading ----------------------------------------------------------------------------


def test_restart_resumes_last_states_and_extends_the_chain(tmp_path: Path) -> None:
    """After a restart the latest state per entity loads back and new rows continue the same chain."""
    with EventStore(tmp_path, batch_seconds=0.01) as store:
        store.append([
            Transition(100.0, "site:A", None, "unknown", ("no data",), "v1"),
            Transition(160.0, "site:A", "unknown", "not_ready", ("primary.down", "backup.down"), "v1"),
            Transition(170.0, "link:A/primary", None, "down", ("loss=100%",), "v1"),
            Transition(220.0, "site:A", "not_ready", "degraded", ("backup.down",), "v1"),
        ])
        store.append_snapshot(230.0, {"A": {"state": "degraded", "reasons": ["backup.down"], "since": 220.0}}, "v1")
    reopened = EventStore(tmp_path, batch_seconds=0.01)
    assert reopened.last_states() == {
        "site:A": ("degraded", 220.0, ("backup.down",)),
        "link:A/primary": ("down", 170.0, ("loss=100%",)),
    }
    with reopened:
        reopened.append([Transition(300, "link:A/primary", "down", "up", (), "v2")])
        assert reopened.flush()
        assert reopened.last_states()["link:A/primary"] == ("up", 300.0, ())
    assert verify_store(tmp_path).ok
    markers = [(e.new, e.payload.get("resumed_seq")) for e in reopened.events(kinds=["marker"])]
    assert markers == [("opened", 0), ("closed", None), ("opened", 7), ("closed", None)]


def test_events_filter_by_time_kind_and_entity_and_keep_payloads(tmp_path: Path) -> None:
    """Snapshots keep every site's state, reasons and since, Persian names included."""
    with EventStore(tmp_path, batch_seconds=0.01) as store:
        store.append(tr(i, f"link:ILM-00{i % 2}/primary", "down") for i in range(6))
        store.append([tr(10, "site:ILM-001", "ready")])
        store.append_snapshot(1_714_000_020.0, {"ILM-001": {"name": "دبستان فردوسی", "state": "ready",
                                                             "reasons": [], "since": 1_714_000_010.0}}, "cfg-1")
        store.append_config(1_714_000_030.0, "cfg-2", {"sites": 1})
        assert store.flush()
        assert [e.at - 1_714_000_000 for e in store.events(start=1_714_000_002, end=1_714_000_005)] == [2, 3, 4]
        assert [e.entity for e in store.events(entity_prefix="link:ILM-001")] == ["link:ILM-001/primary"] * 3
        (snap,) = store.events(kinds=["snapshot"])
        assert snap.payload["sites"]["ILM-001"]["name"] == "دبستان فردوسی"
        assert snap.config_version == "cfg-1"
        (config,) = store.events(kinds=["config"])
        assert (config.new, config.payload) == ("cfg-2", {"sites": 1})
        assert store.status.ok and store.status.committed_seq == store.chain_head()[0] == 10


def test_append_queues_and_status_shows_lag_until_the_batch_is_due(tmp_path: Path) -> None:
    """append only queues; a batch waits for batch_seconds unless someone flushes."""
    with EventStore(tmp_path, batch_seconds=60) as store:
        store.append(tr(i) for i in range(100))
        time.sleep(0.05)
        status = store.status
        assert (status.queued, status.committed_seq) == (101, 0)  # + the "opened" marker
        assert status.lag_seconds >= 0.05
        assert store.flush(5)
        assert (store.status.queued, store.status.committed_seq, store.status.lag_seconds) == (0, 101, 0.0)


def test_a_full_queue_drops_new_events_and_records_the_gap(tmp_path: Path) -> None:
    """Memory is bounded; what did not fit is counted, reported and marked in the chain."""
    with EventStore(tmp_path, batch_seconds=60, max_queue=50) as store:
        store.append(tr(i) for i in range(60))  # 49 fit next to the "opened" marker
        assert store.status.dropped == 11 and "11 events dropped" in store.status.error
        assert store.flush(5)
        store.append([tr(99, new="after")])
        assert store.flush(5)
        assert store.status.ok
        rows = list(store.events())
    assert [(e.kind, e.new, e.payload) for e in rows[-2:]] == [
        ("marker", "dropped", {"events": 11}), ("transition", "after", {})]
    assert verify_store(tmp_path).ok


def test_bad_input_is_a_programming_error_and_a_closed_store_refuses(tmp_path: Path) -> None:
    store = EventStore(tmp_path)
    store.open()
    with pytest.raises(ValueError, match="finite"):
        store.append([Transition(float("nan"), "site:A", None, "ready", (), "v")])
    with pytest.raises(TypeError, match="must be strings"):
        store.append([Transition(1.0, "site:A", None, "ready", ("ok",), 7)])  # type: ignore[arg-type]
    with pytest.raises(UnicodeEncodeError):
        store.append_snapshot(1.0, {"A": {"name": "\udc80"}}, "v")
    assert store.flush(5) and verify_store(tmp_path).ok
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.append([tr(1)])


def test_one_writer_per_data_dir(tmp_path: Path) -> None:
    """A second store on the same dir is refused with the holder's pid; after close it is free."""
    first = EventStore(tmp_path)
    first.open()
    try:
        with pytest.raises(StoreError, match=rf"data dir {tmp_path} is in use by another readiness "
                                             rf"process \(pid {os.getpid()}\)"):
            EventStore(tmp_path).open()
    finally:
        first.close()
    with EventStore(tmp_path):
        pass


def test_an_unusable_data_dir_is_a_clear_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a dir")
    with pytest.raises(StoreError, match=rf"cannot create data dir {tmp_path}/file/data"):
        EventStore(tmp_path / "file" / "data").open()
    (tmp_path / "events.db").write_text("this is not SQLite" * 100)
    with pytest.raises(StoreError, match=rf"cannot open {tmp_path}/events.db: file is not a database"):
        EventStore(tmp_path).open()
    EventStore(tmp_path / "x")  # constructing touches nothing


# -- crashes and full disks --------------------------------------------------------------------------


def _read_lines(proc: subprocess.Popen[str], lines: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.strip())


@pytest.mark.slow
def test_sigkill_mid_batch_loses_no_acknowledged_transition(tmp_path: Path) -> None:
    """The writer process is killed with SIGKILL at random moments, 30 times, resuming the same dir.

    After every kill the run's transitions are a gap-free prefix in order that holds everything the
    writer saw acknowledged, and the last states match the last rows; the chain verifies throughout.
    """
    rng = random.Random(20240614)
    acked: dict[int, int] = {}
    in_flight = 0  # kills that landed while a batch was queued or being committed
    for run in range(30):
        proc = subprocess.Popen([sys.executable, "-m", "tests.monitor.store_writer", str(tmp_path), str(run)],
                                cwd=ROOT, stdout=subprocess.PIPE, text=True)
        lines: list[str] = []
        reader = threading.Thread(target=_read_lines, args=(proc, lines))
        reader.start()
        if run % 4 == 1:
            time.sleep(rng.uniform(0.2, 0.6))  # some kills land while it still opens the store
        else:  # the rest once it is writing: a loaded machine may take seconds just to start Python
            deadline = time.monotonic() + 30
            while "OPEN" not in lines and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.02, 0.3))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        reader.join(10)
        assert not any(line.startswith("FLUSH FAILED") for line in lines), lines
        acks = [int(line.split()[1]) for line in lines if line.startswith("ACK")]
        acked[run] = acks[-1] if acks else -1
        in_flight += bool(lines) and lines[-1].startswith("SENT")

        if run % 10 == 9:  # the whole chain now and then (rows never change, so the end covers all)
            result = verify_store(tmp_path)
            assert result.ok, f"after kill {run}: {result}"
        store = EventStore(tmp_path)
        stored: list[int] = []
        last: dict[str, tuple[str, float, tuple[str, ...]]] = {}
        for e in store.events(kinds=["transition"], entity_prefix=f"target:crash/R{run}/"):
            assert e.reasons[0] == f"run={run}"
            stored.append(int(e.reasons[1].removeprefix("i=")))
            last[e.entity] = (e.new, e.at, e.reasons)
        assert stored == list(range(len(stored))), f"run {run}: stored transitions out of order or with gaps"
        assert len(stored) - 1 >= acked[run], f"run {run}: acknowledged up to {acked[run]}, {len(stored)} stored"
        states = store.last_states()
        assert {k: v for k, v in states.items() if k.startswith(f"target:crash/R{run}/")} == last
    assert sum(1 for top in acked.values() if top >= 0) >= 20, acked  # most runs got going
    assert in_flight >= 5, f"only {in_flight} kills landed mid-batch"
    assert verify_store(tmp_path).ok


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """Mount a small tmpfs (as root) for the test and always unmount it."""
    require_root("mounting a tmpfs")
    mount, umount = require_tool("mount"), require_tool("umount")
    where.mkdir()
    subprocess.run([mount, "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run([umount, "-l", str(where)], check=True)


def _fill(path: Path) -> None:
    """Write zeros to ``path`` until the file system has no byte left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (65536, 512):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * chunk)
    finally:
        os.close(fd)


@pytest.mark.root
def test_full_disk_is_reported_and_the_store_catches_up(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The disk fills up: appends still return at once, status names the file and the cause, the
    error is logged once, nothing crashes; once space is back every queued transition is committed."""
    caplog.set_level(logging.WARNING, logger="monitor.store.events")
    with tmpfs(tmp_path / "mnt", "4m") as mnt:
        store = EventStore(mnt / "data", batch_seconds=0.02)
        store.open()
        try:
            store.append(tr(i) for i in range(10))
            assert store.flush()
            _fill(mnt / "filler")
            with pytest.raises(StoreError, match=rf"cannot open {mnt}/other/events.db: database or disk is full"):
                EventStore(mnt / "other").open()

            started = time.perf_counter()
            for k in range(20):
                store.append(tr(100 + i, f"target:S{i}/terminal/T1", "down", ("x" * 200,))
                             for i in range(k * 250, (k + 1) * 250))
            assert time.perf_counter() - started < 1.0  # 5000 appends never wait for the disk
            assert not store.flush(10)
            time.sleep(1.0)  # several retries
            status = store.status
            assert not status.ok
            assert status.error == f"cannot write {store.path}: database or disk is full"
            assert status.queued == 5000 and status.committed_seq == 11 and status.lag_seconds > 1
            errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
            assert len(errors) == len(set(errors)) >= 1, errors  # once per distinct cause, not per retry
            assert store._thread is not None and store._thread.is_alive()

            (mnt / "filler").unlink()
            deadline = time.monotonic() + 30
            while store.status.queued and time.monotonic() < deadline:
                time.sleep(0.05)
            assert store.flush(5), store.status
            assert store.status.ok and store.status.queued == 0
            assert any("writing again" in r.getMessage() for r in caplog.records)
            assert [int(e.entity.split(":")[1].split("/")[0][1:]) for e in
                    store.events(entity_prefix="target:S")] == list(range(5000))
        finally:
            store.close()
        assert verify_store(mnt / "data").ok


@pytest.mark.root
def test_a_read_only_data_dir_is_a_clear_store_error(tmp_path: Path) -> None:
    """Both a fresh dir and an existing store on a read-only mount are refused at open, with the cause."""
    with tmpfs(tmp_path / "mnt", "4m") as mnt:
        filled_store(mnt / "data", 3)
        subprocess.run([require_tool("mount"), "-o", "remount,ro", str(mnt)], check=True)
        with pytest.raises(StoreError, match=rf"data dir {mnt}/data is not usable: .*Read-only file system"):
            EventStore(mnt / "data").open()
        with pytest.raises(StoreError, match=rf"cannot create data dir {mnt}/new: Read-only file system"):
            EventStore(mnt / "new").open()
        assert verify_store(mnt / "data").ok  # reading still works
        assert EventStore(mnt / "data").last_states()["target:ILM-001/terminal/T2"][0] == "s2"
