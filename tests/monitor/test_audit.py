"""Audit bundles: exported from a store a real run filled, verified, tampered with, printed by Chromium.

The store comes from `tests.monitor.audit_fill`: the real Service and Recorder over a small province
with real TCP listeners, in compressed time, with a stop of the monitor in the middle.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import time
import types
import zipfile
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import monitor.store.events
from monitor.audit import signing
from monitor.audit.export import AuditError, manifest_bytes, parse_period, requested_period, signed_bytes
from monitor.cli.main import main
from monitor.config.loader import Config, load_config
from monitor.store.chain import row_hash
from monitor.store.events import EventStore, Transition
from tests.helpers import require_tool
from tests.monitor.audit_fill import FIRST_STEP, HOUR, SITES, T0, TEHRAN, Run, fill_store


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return fill_store(tmp_path_factory.mktemp("audit"))


# -- helpers --------------------------------------------------------------------------------------

def export(run: Run, out: Path, *extra: str) -> int:
    return main(["audit", "export", "--config", str(run.config_path), "--data-dir", str(run.data_dir),
                 "--from", "1404-12-01", "--to", "1404-12-01", "-o", str(out), *extra])


def verify(bundle: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["audit", "verify", str(bundle), *extra])
    return code, capsys.readouterr().out




def flat_text(text: str) -> str:
    """Return text without bidi controls and with all whitespace runs as one space."""
    return " ".join(re.sub("[\u200e\u200f\u202a-\u202e\u2066-\u2069]", "", text).split())


def expected_seconds(run: Run) -> dict[str, Counter[str]]:
    """Site -> state -> seconds of the audited day, from the service's own snapshots (minute by minute:
    every change in the script falls on a minute); while the monitor was stopped the state is blind."""
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for minute in range(24 * 60):
        at = T0 + minute * 60 + 30
        if run.outage[0] <= at < run.outage[1]:
            for sid, *_ in SITES:
                out[sid]["unknown"] += 60
            continue
        states = [s for t, s in run.truth if t <= at][-1]
        for sid, state in states.items():
            out[sid][state] += 60
    return out


@pytest.fixture(scope="module")
def bundle(run: Run, keys: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A signed bundle of the audited day (1404-12-01), as a directory."""
    out = tmp_path_factory.mktemp("bundles") / "day"
    assert export(run, out, "--sign", str(keys[0])) == 0
    return out


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    text = path.read_bytes().decode("utf-8")
    assert text.startswith("\ufeff")  # spreadsheet programs need the BOM to read Persian
    return {row["site_id"]: row for row in csv.DictReader(io.StringIO(text.lstrip("\ufeff")))}


# -- the figures ----------------------------------------------------------------------------------

def test_figures_match_what_the_service_saw(run: Run, bundle: Path) -> None:
    """Ready, degraded, not-ready and blind seconds per site equal the service's own snapshots, minute by minute."""
    rows = read_csv(bundle / "readiness.csv")
    truth = expected_seconds(run)
    assert set(rows) == {sid for sid, *_ in SITES}
    for sid, row in rows.items():
        got = {"ready": float(row["ready_seconds"]), "degraded": float(row["degraded_seconds"]),
               "not_ready": float(row["not_ready_seconds"]), "unknown": float(row["blind_seconds"])}
        assert got == {k: float(truth[sid][k]) for k in got}, sid
        observed = got["ready"] + got["degraded"] + got["not_ready"]
        assert float(row["site_availability"]) == pytest.approx(got["ready"] / observed, abs=1e-6)
        assert float(row["maintenance_seconds"]) == 0
    # What the script did, in the bundle's words.
    assert rows["ILM-002"]["degraded_seconds"] == "21600"
    assert rows["ILM-002"]["failed_requirements"] == "backup.down 6h 00m"
    assert float(rows["ILM-002"]["backup_availability"]) == pytest.approx(
        (24 * HOUR - 6 * HOUR - 10200) / (24 * HOUR - 10200), abs=1e-6)
    assert rows["EYV-002"]["failed_requirements"] == "primary.down 4h 00m"
    assert rows["EYV-001"]["failed_requirements"] == "terminals 2h 00m"
    assert float(rows["EYV-001"]["terminals_availability"]) == pytest.approx(
        (2 * (24 * HOUR - 10200) - 2 * HOUR) / (2 * (24 * HOUR - 10200)), abs=1e-6)
    assert rows["MHR-001"]["first_ready"] == "2026-02-20T02:00:00+03:30"
    assert rows["MHR-001"]["first_ready_jalali"] == "1404-12-01 02:00"
    assert rows["MHR-001"]["state_at_end"] == "unknown"
    assert rows["MHR-001"]["state_since"] == "2026-02-20T17:00:00+03:30"
    assert rows["MHR-001"]["blind_seconds"] == str(7 * 3600)  # stale from 17:00, the monitor stopped within it
    assert "stale" not in rows["MHR-001"]["failed_requirements"]  # blindness is not a failed requirement
    assert rows["ILM-001"]["blind_seconds"] == "10200"  # 20:10-23:00, the monitor's stop
    last = [s for t, s in run.truth if t < T0 + 24 * HOUR][-1]
    assert {sid: row["state_at_end"] for sid, row in rows.items()} == last


def test_summary_adds_up_the_sites(bundle: Path) -> None:
    """summary.json's province, counties and areas sum the CSV's sites; the deadline and forecast are there."""
    rows = read_csv(bundle / "readiness.csv")
    summary = json.loads((bundle / "summary.json").read_text(encoding="utf-8"))

    def check(group: dict[str, Any], members: list[dict[str, str]]) -> None:
        assert group["sites"] == len(members)
        site = group["availability"]["site"]
        assert site["up_seconds"] == sum(float(r["ready_seconds"]) for r in members)
        assert site["other_seconds"] == sum(float(r["degraded_seconds"]) for r in members)
        assert site["down_seconds"] == sum(float(r["not_ready_seconds"]) for r in members)
        assert group["blind_seconds"] == sum(float(r["blind_seconds"]) for r in members)
        assert group["states_at_end"]["ready"] == sum(r["state_at_end"] == "ready" for r in members)
        assert group["forecast"]["share_now"] == pytest.approx(group["ready_share_at_end"])

    check(summary["province"], list(rows.values()))
    for county in ("Ilam", "Eyvan", "Mehran"):
        check(summary["counties"][county], [r for r in rows.values() if r["county"] == county])
    for area in ("urban", "rural"):
        check(summary["areas"][area], [r for r in rows.values() if r["area"] == area])
    assert summary["province"]["failed_requirements"]["terminals"] == {"seconds": 4 * HOUR, "sites": 2}
    assert summary["deadline"]["jalali"] == "1404-12-24 08:00"
    assert summary["deadline"]["days_left_at_end"] == pytest.approx(22 + 8 / 24, abs=1e-3)
    assert summary["period"]["start"]["jalali"] == "1404-12-01 00:00"
    assert summary["period"]["end"]["iso"] == "2026-02-21T00:00:00+03:30"
    assert [(o["start"]["jalali"], o["end"]["jalali"]) for o in summary["monitor_outages"]] == [
        ("1404-12-01 20:10", "1404-12-01 23:00")]
    # One day of records is less than the policy's minimum history (3 days): no forecast, and it says so.
    forecast = summary["province"]["forecast"]
    assert forecast["status"] == "not enough history"
    assert forecast["at_risk"] is None and forecast["share_at_deadline"] is None and forecast["all_ready_at"] is None


def test_events_are_the_stores_rows_with_their_hashes(run: Run, bundle: Path) -> None:
    """events.jsonl is the store's contiguous run of rows over the period, byte for byte the hashed values."""
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    rows = [json.loads(line) for line in (bundle / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    store = EventStore(run.data_dir)
    stored = {e.seq: e for e in store.events()}
    in_period = [e.seq for e in stored.values() if T0 <= e.at < T0 + 24 * HOUR]
    assert [r["seq"] for r in rows] == list(range(min(in_period), max(in_period) + 1))
    for r in rows:
        e = stored[r["seq"]]
        assert (r["hash"], r["prev_hash"], r["entity"], r["new"], r["at"]) == (e.hash, e.prev_hash, e.entity, e.new,
                                                                                e.at)
        assert row_hash(r) == r["hash"]
    transitions = {e.seq for e in store.events(T0, T0 + 24 * HOUR, kinds=["transition"])}
    assert transitions <= {r["seq"] for r in rows}
    assert any(r["kind"] == "marker" and r["new"] == "closed" for r in rows)  # the stop is on the record
    chain = manifest["chain"]
    assert (chain["head_seq"], chain["head_hash"]) == store.chain_head()
    assert (chain["first_seq"], chain["last_seq"], chain["rows"]) == (rows[0]["seq"], rows[-1]["seq"], len(rows))
    assert chain["first_prev_hash"] == stored[rows[0]["seq"] - 1].hash
    config_bytes = run.config_path.read_bytes() + (run.config_path.parent / "sites.yaml").read_bytes()
    assert manifest["config"]["sha256"] == hashlib.sha256(config_bytes).hexdigest()
    assert manifest["config"]["version"] == run.config.version
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == hashlib.sha256((bundle / name).read_bytes()).hexdigest()


def test_county_export_has_only_that_county(run: Run, tmp_path: Path, bundle: Path) -> None:
    """--county Eyvan: its sites and figures only; the events are the same chain run."""
    assert export(run, tmp_path / "eyvan", "--county", "Eyvan") == 0
    rows = read_csv(tmp_path / "eyvan" / "readiness.csv")
    assert set(rows) == {"EYV-001", "EYV-002"}
    summary = json.loads((tmp_path / "eyvan" / "summary.json").read_text(encoding="utf-8"))
    assert list(summary["counties"]) == ["Eyvan"] and summary["scope"]["county"] == "Eyvan"
    full = json.loads((bundle / "summary.json").read_text(encoding="utf-8"))
    assert summary["counties"]["Eyvan"] == full["counties"]["Eyvan"]
    assert (tmp_path / "eyvan" / "events.jsonl").read_bytes() == (bundle / "events.jsonl").read_bytes()


def test_period_in_either_calendar(run: Run) -> None:
    """--from 1404-12-01 is --from 2026-02-20 (Tehran midnight); a bare --to includes that day."""
    jalali = parse_period(run.config, run.data_dir, "1404-12-01", "1404-12-01")
    gregorian = parse_period(run.config, run.data_dir, "2026-02-20", "2026-02-20")
    assert (jalali.start, jalali.end) == (gregorian.start, gregorian.end) == (T0, T0 + 24 * HOUR)
    nowruz = requested_period(run.config, run.data_dir, "1404-12-29 12:00", "1405-01-01")
    assert nowruz.local(nowruz.start) == datetime(2026, 3, 20, 12, 0, tzinfo=TEHRAN)
    assert nowruz.local(nowruz.end) == datetime(2026, 3, 22, 0, 0, tzinfo=TEHRAN)
    default = requested_period(run.config, run.data_dir, None, None, now=T0 + 30 * HOUR)
    assert default.start == T0 + FIRST_STEP * HOUR and default.end == T0 + 30 * HOUR
    # What is exported ends at the last recorded moment (the monitor's "closed" marker at 26:30).
    clipped = parse_period(run.config, run.data_dir, None, None, now=T0 + 30 * HOUR)
    assert (clipped.start, clipped.end, clipped.requested_end) == (default.start, T0 + 26.5 * HOUR, T0 + 30 * HOUR)
    with pytest.raises(AuditError, match="nothing is recorded in the period"):
        parse_period(run.config, run.data_dir, "1404-12-29 12:00", "1405-01-01")


SMALL_SITE = {"links": [{"role": "primary", "medium": "fiber", "address": "127.44.0.1"},
                         {"role": "backup", "medium": "lte", "address": "127.44.0.2"}], "area": "rural"}


def small_config(directory: Path, **extra: Any) -> tuple[Path, Config]:
    """Two sites (S1 in Ilam, S2 in Eyvan), written as config.yaml in ``directory`` and loaded."""
    doc = {"programme": {"name": "test", "deadline": "2026-03-15T08:00:00+03:30"},
           "sites": [{"id": "S1", "name": "مدرسه فردوسی", "county": "Ilam", **SMALL_SITE},
                     {"id": "S2", "name": "مسجد نور", "county": "Eyvan", **SMALL_SITE}], **extra}
    path = directory / "config.yaml"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path, load_config(path)


@pytest.fixture
def store_clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The store's wall clock (its open/close markers), set by the test."""
    clock = [T0 - 3 * HOUR]
    monkeypatch.setattr(monitor.store.events, "time",
                        types.SimpleNamespace(time=lambda: clock[0], monotonic=time.monotonic))
    return clock


def test_a_future_end_is_clipped_to_the_last_recorded_moment(tmp_path: Path, store_clock: list[float],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """--to a day not yet over, with the monitor running: the period ends at the last row, and says so.

    S1 is ready until 01:00 and not ready from then on; the last row is the 02:00 snapshot. Counting
    its current state up to the end of a day to come would make up hours nobody has seen.
    """
    config_path, config = small_config(tmp_path)
    data, out = tmp_path / "data", tmp_path / "bundle"
    with EventStore(data, batch_seconds=0.01) as store:  # still running while the export is made
        store.append_config(T0 - 2 * HOUR, config.version, config.record())
        store.append([Transition(T0 - HOUR, "site:S1", None, "ready", (), config.version),
                      Transition(T0 - HOUR, "site:S2", None, "ready", (), config.version),
                      Transition(T0 + HOUR, "site:S1", "ready", "not_ready", ("primary.down",), config.version)])
        store.append_snapshot(T0 + 2 * HOUR, {"S1": {"state": "not_ready"}, "S2": {"state": "ready"}},
                              config.version)
        assert store.flush()
        capsys.readouterr()
        to = "1406-01-01"  # 2027-03-21: later than the test's today, as --to today is later than now
        assert main(["audit", "export", "--config", str(config_path), "--data-dir", str(data), "--from", "1404-12-01",
                     "--to", to, "-o", str(out)]) == 0
        printed = capsys.readouterr().out
    assert "note: period clipped to 2026-02-20T02:00:00+03:30, the last recorded moment" in printed
    rows = read_csv(out / "readiness.csv")
    assert (rows["S1"]["ready_seconds"], rows["S1"]["not_ready_seconds"]) == ("3600", "3600")
    assert rows["S1"]["site_availability"] == "0.500000" and rows["S1"]["blind_seconds"] == "0"
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["period"]["end"]["iso"] == "2026-02-20T02:00:00+03:30"
    assert summary["period"]["clipped"]["requested_end"]["jalali"] == "1406-01-02 00:00"
    assert summary["province"]["availability"]["site"]["ratio"] == pytest.approx(3 / 4)
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Clipped to the last recorded moment" in html and "period clipped to 2026-02-20T02:00:00+03:30" in html


def test_bad_input_exits_2(run: Run, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An impossible date, an unknown county, an existing output: exit 2 and say which."""
    base = ["audit", "export", "--config", str(run.config_path), "--data-dir", str(run.data_dir)]
    assert main([*base, "--from", "1404-12-30", "-o", str(tmp_path / "a")]) == 2
    assert "1404-12-30" in capsys.readouterr().err
    assert main([*base, "--county", "Nowhere", "-o", str(tmp_path / "b")]) == 2
    assert "Nowhere" in capsys.readouterr().err
    assert main([*base, "-o", str(bundle)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main([*base, "--from", "1404-12-02", "--to", "1404-12-01", "-o", str(tmp_path / "c")]) == 2
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


# -- verify and tampering -------------------------------------------------------------------------

def test_verify_passes_on_an_intact_bundle(bundle: Path, keys: tuple[Path, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A fresh signed bundle verifies against the trusted key, given or pinned; without one it is not verified."""
    code, out = verify(bundle, capsys, "--pubkey", str(keys[1]))
    assert code == 0, out
    assert "FAIL" not in out and "NOT PROVED" not in out and f"the given key {keys[1]}" in out
    assert out.splitlines()[-1] == f"OK: {bundle} is intact and signed by a trusted key"
    pinned = tmp_path / "trusted_keys"
    fp = signing.fingerprint(signing.load_public_key(keys[1]))
    pinned.write_text(f"# the election committee\n{fp} committee 1404\n")
    code, out = verify(bundle, capsys, "--trusted-keys", str(pinned))
    assert code == 0 and f"signed by {fp}, pinned in {pinned} (committee 1404)" in out
    code, out = verify(bundle, capsys)  # self-consistent, but nothing says whose key signed it
    assert code == 1 and "OK" not in out
    assert f"NOT PROVED: signature not checked against a trusted key: it is signed by {fp}" in out
    assert out.splitlines()[-1].startswith(f"NOT VERIFIED: {bundle}: no check failed, but 1 thing(s)")


def tampered(bundle: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "tampered"
    shutil.copytree(bundle, copy)
    return copy


def flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


def event_lines(copy: Path) -> list[bytes]:
    return (copy / "events.jsonl").read_bytes().splitlines(keepends=True)


@pytest.mark.parametrize("kind", ["readiness.csv", "readiness.xlsx", "summary.json", "report.html"])
def test_a_changed_byte_in_a_file_is_named(kind: str, bundle: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """One bit flipped in the middle of a file: verify fails and names the file."""
    copy = tampered(bundle, tmp_path)
    flip_byte(copy / kind)
    code, out = verify(copy, capsys)
    assert code == 1
    assert f"FAIL {kind}: SHA-256" in out
    assert out.count("FAIL") == 1, out  # nothing else is blamed


def test_an_edited_event_is_named_by_line_and_seq(bundle: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A transition's new state changed from not_ready to ready: the file and the row are named."""
    copy = tampered(bundle, tmp_path)
    lines = event_lines(copy)
    k = next(i for i, line in enumerate(lines) if b'"new": "not_ready"' in line)
    seq = json.loads(lines[k])["seq"]
    lines[k] = lines[k].replace(b'"new": "not_ready"', b'"new": "ready"')
    (copy / "events.jsonl").write_bytes(b"".join(lines))
    code, out = verify(copy, capsys)
    assert code == 1
    assert "FAIL events.jsonl: SHA-256" in out
    assert f"FAIL events.jsonl line {k + 1} (seq {seq}): content does not match its hash (row edited)" in out


def test_an_edited_event_with_a_recomputed_hash_breaks_the_link(bundle: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The forger re-computes the edited row's hash: the next row's prev_hash no longer matches."""
    copy = tampered(bundle, tmp_path)
    lines = event_lines(copy)
    row = json.loads(lines[5])
    row["new"] = "ready" if row["new"] != "ready" else "degraded"
    row["hash"] = row_hash(row)
    lines[5] = json.dumps(row, ensure_ascii=False, sort_keys=True).encode() + b"\n"
    (copy / "events.jsonl").write_bytes(b"".join(lines))
    code, out = verify(copy, capsys)
    assert code == 1
    assert f"FAIL events.jsonl line 7 (seq {row['seq'] + 1}): prev_hash does not match seq {row['seq']}'s hash" in out


def test_a_dropped_event_is_named(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One row removed from the middle of events.jsonl."""
    copy = tampered(bundle, tmp_path)
    lines = event_lines(copy)
    seq = json.loads(lines[10])["seq"]
    del lines[10]
    (copy / "events.jsonl").write_bytes(b"".join(lines))
    code, out = verify(copy, capsys)
    assert code == 1
    assert f"FAIL events.jsonl seq {seq}: missing after line 10 (dropped)" in out
    assert "FAIL events.jsonl: SHA-256" in out


def test_the_last_event_dropped_is_named(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Cutting the end off the run is caught against the manifest's last row."""
    copy = tampered(bundle, tmp_path)
    lines = event_lines(copy)
    seq = json.loads(lines[-1])["seq"]
    (copy / "events.jsonl").write_bytes(b"".join(lines[:-1]))
    code, out = verify(copy, capsys)
    assert code == 1
    assert f"FAIL events.jsonl seq {seq}: missing after line {len(lines) - 1} (dropped)" in out


def test_two_reordered_events_are_named(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two neighbouring rows swapped."""
    copy = tampered(bundle, tmp_path)
    lines = event_lines(copy)
    lines[7], lines[8] = lines[8], lines[7]
    (copy / "events.jsonl").write_bytes(b"".join(lines))
    first = json.loads(lines[8])["seq"]
    code, out = verify(copy, capsys)
    assert code == 1
    assert f"FAIL events.jsonl line 9 (seq {first}): comes after seq {first + 1}: out of order (reordered)" in out


def test_a_changed_manifest_is_named(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A value in the manifest changed (the chain head moved back): the signature no longer verifies."""
    copy = tampered(bundle, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    manifest["chain"]["head_seq"] = manifest["chain"]["last_seq"] + 1
    (copy / "manifest.json").write_bytes(manifest_bytes(manifest))
    code, out = verify(copy, capsys)
    assert code == 1
    assert "FAIL manifest.json signature: does not verify" in out


def test_a_changed_byte_in_the_manifest_is_named(bundle: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Even a byte that changes no value (an indent) shows: the manifest has one byte form."""
    copy = tampered(bundle, tmp_path)
    raw = (copy / "manifest.json").read_bytes()
    (copy / "manifest.json").write_bytes(raw.replace(b'\n  "chain"', b'\n   "chain"', 1))
    code, out = verify(copy, capsys)
    assert code == 1
    assert "FAIL manifest.json: edited" in out


def test_a_swapped_signature_is_named(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The signature replaced by another key's signature of the same manifest."""
    copy = tampered(bundle, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    other = Ed25519PrivateKey.generate()
    manifest["signature"]["value"] = signing.sign(other, signed_bytes(manifest))
    (copy / "manifest.json").write_bytes(manifest_bytes(manifest))
    code, out = verify(copy, capsys)
    assert code == 1
    assert "FAIL manifest.json signature: does not verify" in out


def test_a_bundle_re_signed_by_another_key_fails_against_the_trusted_key(
        bundle: Path, keys: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A forger changes the summary and re-signs with their own key: never verified; a trusted key names the forgery."""
    copy = tampered(bundle, tmp_path)
    summary = (copy / "summary.json").read_bytes().replace(b'"ever_ready": 5', b'"ever_ready": 4')
    (copy / "summary.json").write_bytes(summary)
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"]["summary.json"] = {"sha256": hashlib.sha256(summary).hexdigest(), "bytes": len(summary)}
    other = Ed25519PrivateKey.generate()
    forger = signing.fingerprint(other.public_key())
    manifest["signature"] = {"algorithm": "ed25519", "public_key": signing.public_key_text(other.public_key()),
                             "fingerprint": forger}
    manifest["signature"]["value"] = signing.sign(other, signed_bytes(manifest))
    (copy / "manifest.json").write_bytes(manifest_bytes(manifest))
    code, out = verify(copy, capsys)  # self-consistent, so nothing fails...
    assert code == 1 and "OK" not in out and "FAIL" not in out  # ...but nothing is trusted either
    assert f"NOT PROVED: signature not checked against a trusted key: it is signed by {forger}" in out
    code, out = verify(copy, capsys, "--pubkey", str(keys[1]))
    assert code == 1  # not the committee's
    assert f"FAIL manifest.json signature: made with key {forger}, not a trusted one" in out
    pinned = tmp_path / "pinned"
    pinned.write_text(signing.public_key_text(signing.load_public_key(keys[1])) + " committee\n")
    code, out = verify(copy, capsys, "--trusted-keys", str(pinned))
    assert code == 1 and f"made with key {forger}, not a trusted one" in out


def test_added_and_removed_files_are_named(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file slipped in and a file taken out."""
    copy = tampered(bundle, tmp_path)
    (copy / "readiness.xlsx").unlink()
    (copy / "corrections.csv").write_text("site_id\n")
    code, out = verify(copy, capsys)
    assert code == 1
    assert "FAIL readiness.xlsx: missing" in out
    assert "FAIL corrections.csv: not listed in the manifest (added)" in out


def test_zip_bundle_verifies_and_tampering_shows(run: Run, keys: tuple[Path, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """OUT.zip: the same files; a member rewritten, or the archive's bytes changed, is caught."""
    out = tmp_path / "day.zip"
    assert export(run, out, "--sign", str(keys[0])) == 0
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == sorted(["readiness.csv", "readiness.xlsx", "summary.json", "events.jsonl",
                                                "report.html", "manifest.json"])
        members = {name: zf.read(name) for name in zf.namelist()}
    assert verify(out, capsys, "--pubkey", str(keys[1]))[0] == 0
    members["summary.json"] = members["summary.json"].replace(b'"ever_ready": 5', b'"ever_ready": 4')
    forged = tmp_path / "forged.zip"
    with zipfile.ZipFile(forged, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    code, text = verify(forged, capsys)
    assert code == 1 and "FAIL summary.json: SHA-256" in text
    broken = tmp_path / "broken.zip"
    shutil.copy(out, broken)
    with zipfile.ZipFile(out) as zf:
        info = zf.getinfo("report.html")
    flip_byte(broken, info.header_offset + 30 + len(info.filename) + info.compress_size // 2)
    code, text = verify(broken, capsys)
    assert code == 1 and "FAIL report.html: corrupt in the zip" in text


def test_verify_data_dir_checks_the_store(run: Run, bundle: Path, keys: tuple[Path, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """`verify --data-dir`: the store's chain (issue 4); with a bundle, also that the store still holds it."""
    capsys.readouterr()
    assert main(["audit", "verify", "--data-dir", str(run.data_dir)]) == 0
    assert "chain intact" in capsys.readouterr().out
    code, out = verify(bundle, capsys, "--data-dir", str(run.data_dir), "--pubkey", str(keys[1]))
    assert code == 0 and "holds the exported rows" in out
    forged = tmp_path / "data"
    shutil.copytree(run.data_dir, forged)
    seq = json.loads(event_lines(bundle)[3])["seq"]
    with contextlib.closing(sqlite3.connect(forged / "events.db")) as conn:
        conn.execute("DROP TRIGGER events_no_update")
        conn.execute("UPDATE events SET new = new || '!' WHERE seq = ?", (seq,))
        conn.commit()
    capsys.readouterr()
    assert main(["audit", "verify", "--data-dir", str(forged)]) == 1
    out = capsys.readouterr().out
    assert f"row {seq}: hash mismatch" in out and "events_no_update is missing" in out
    code, out = verify(bundle, capsys, "--data-dir", str(forged), "--pubkey", str(keys[1]))
    assert code == 1 and f"row {seq}: hash mismatch" in out
    assert f"1 exported row(s) differ from the store or are gone from it, first seq {seq}" in out
    assert "unchanged" not in out and "OK" not in out and "chain is intact" not in out  # never next to a mismatch


def test_rows_cut_off_the_stores_end_are_reported(run: Run, bundle: Path, keys: tuple[Path, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The last store rows deleted (a valid, shorter chain): the checkpoint and the bundle's head both show it."""
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    head = manifest["chain"]["head_seq"]
    saved = json.loads((run.data_dir / "events.checkpoint.json").read_text())
    assert saved["seq"] == head
    cut = tmp_path / "data"
    shutil.copytree(run.data_dir, cut)
    with contextlib.closing(sqlite3.connect(cut / "events.db")) as conn:
        conn.execute("DROP TRIGGER events_no_delete")
        conn.execute("DELETE FROM events WHERE seq > ?", (head - 2,))
        conn.commit()
    capsys.readouterr()
    assert main(["audit", "verify", "--data-dir", str(cut)]) == 1
    out = capsys.readouterr().out
    assert (f"rows after seq {head - 2} are missing: the head recorded at {saved['at_iso']} "
            f"(events.checkpoint.json) was {head}") in out
    code, out = verify(bundle, capsys, "--data-dir", str(cut), "--pubkey", str(keys[1]))
    assert code == 1
    assert f"rows after seq {head - 2} are missing: the head recorded at export (manifest.json) was {head}" in out
    assert "OK" not in out and "chain is intact" not in out
    # With the checkpoint file gone as well, the bundle's head still shows the cut.
    (cut / "events.checkpoint.json").unlink()
    code, out = verify(bundle, capsys, "--data-dir", str(cut), "--pubkey", str(keys[1]))
    assert code == 1 and f"the head recorded at export (manifest.json) was {head}" in out
    assert "NOT PROVED: store" in out and "no checkpoint file events.checkpoint.json" in out


# -- keys -----------------------------------------------------------------------------------------

def test_keygen_writes_safe_permissions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The private key is 0600 whatever the umask, the public 0644; nothing is overwritten; lax keys are refused."""
    old = os.umask(0)
    try:
        assert main(["audit", "keygen", "-o", str(tmp_path / "k")]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "k.pub").stat().st_mode) == 0o644
    assert "SHA256:" in capsys.readouterr().out
    before = (tmp_path / "k.key").read_bytes()
    assert main(["audit", "keygen", "-o", str(tmp_path / "k")]) == 1
    assert (tmp_path / "k.key").read_bytes() == before
    os.chmod(tmp_path / "k.key", 0o644)
    with pytest.raises(signing.SigningKeyError, match="chmod 600"):
        signing.load_private_key(tmp_path / "k.key")
    key = signing.load_public_key(tmp_path / "k.pub")
    (tmp_path / "raw.pub").write_text(signing.public_key_text(key) + "\n")
    assert signing.fingerprint(signing.load_public_key(tmp_path / "raw.pub")) == signing.fingerprint(key)
    assert base64.b64decode(signing.public_key_text(key)).__len__() == 32


# -- the spreadsheet and the printed report -------------------------------------------------------

def test_workbook_layout(bundle: Path) -> None:
    """A summary sheet, one per county, then the period's remediation actions; frozen header; Persian right to
    left; widths that fit; CSV's numbers."""
    wb = openpyxl.load_workbook(bundle / "readiness.xlsx")
    assert wb.sheetnames == ["Summary", "Eyvan", "Ilam", "Mehran", "اقدام‌ها Actions"]
    rows = read_csv(bundle / "readiness.csv")
    summary = wb["Summary"]
    assert summary.freeze_panes == "A2"
    assert [summary.cell(r, 2).value for r in range(2, 7)] == ["province", "Eyvan", "Ilam", "Mehran", "urban"]
    for county in ("Eyvan", "Ilam", "Mehran"):
        ws = wb[county]
        assert ws.freeze_panes == "C2"
        header = [c.value for c in ws[1]]
        assert header[1] == "نام / Name" and all(c.font.bold for c in ws[1])
        for row in ws.iter_rows(min_row=2):
            values = dict(zip(header, row, strict=True))
            sid = values["شناسه / Site"].value
            name = values["نام / Name"]
            assert name.value == rows[sid]["name"] and name.alignment.readingOrder == 2
            assert ws.column_dimensions["B"].width >= len(name.value)
            ratio = values["دسترس‌پذیری سایت / Site availability"]
            assert ratio.value == pytest.approx(float(rows[sid]["site_availability"]), abs=1e-6)
            assert ratio.number_format == "0.00%"
            blind = values["نامعلوم / Blind (unknown)"]
            assert blind.value.total_seconds() == pytest.approx(float(rows[sid]["blind_seconds"]))  # a duration
            assert blind.number_format == "[h]:mm:ss"


def chromium(url: str, profile: Path, *args: str) -> None:
    exe = require_tool("chromium")
    subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={profile}", *args, url], check=True, capture_output=True, timeout=180)


def test_report_prints_in_chromium(bundle: Path, tmp_path: Path) -> None:
    """Headless Chromium prints report.html to an A4 PDF holding the site names and both calendars, and to a PNG."""
    pdftotext = require_tool("pdftotext")
    pdfinfo = require_tool("pdfinfo")
    url = (bundle / "report.html").as_uri()
    pdf, png = tmp_path / "report.pdf", tmp_path / "report.png"
    chromium(url, tmp_path / "profile", "--no-pdf-header-footer", f"--print-to-pdf={pdf}")
    chromium(url, tmp_path / "profile", "--window-size=1240,1754", f"--screenshot={png}")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    info = subprocess.run([pdfinfo, str(pdf)], capture_output=True, text=True, check=True).stdout
    assert "(A4)" in info
    text = flat_text(subprocess.run([pdftotext, str(pdf), "-"], capture_output=True, text=True, check=True).stdout)
    for sid, name, _county, _area in SITES:
        assert name in text and sid in text
    assert "Readiness audit report" in text and "گزارش ممیزی آمادگی" in text
    assert "۱۴۰۴/۱۲/۰۱" in text and "2026-02-20 00:00 +03:30" in text  # the period's start, both calendars
    assert "۱۴۰۴/۱۲/۲۴" in text and "2026-03-15 08:00 +03:30" in text  # the deadline
    assert "Sites not ready at the end of the period" in text and "primary.no_data" in text


# -- maintenance and waivers ----------------------------------------------------------------------

def test_maintenance_and_waivers_are_reported_apart(tmp_path: Path, keys: tuple[Path, Path],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A primary down only inside its maintenance window fails nothing; a waiver in force is listed with who and why.

    Both come from the record: the site's reasons carry the window while it is open, and the config
    row the monitor wrote when the config came into force carries the waiver with who and why.
    """
    config_path, config = small_config(
        tmp_path,
        maintenance=[{"sites": ["S1"], "reason": "fiber splice", "start": "2026-02-20T02:00:00+03:30",
                      "end": "2026-02-20T04:00:00+03:30"}],
        waivers=[{"site": "S2", "requirement": "backup", "until": "2026-03-01", "approved_by": "ICT committee",
                  "reason": "no LTE coverage in the village"}])
    v = config.version
    data = tmp_path / "data"
    waived = "waived backup until 2026-03-01 (by ICT committee)"
    with EventStore(data, batch_seconds=0.01) as store:
        store.append_config(T0 - 2 * HOUR, v, config.record())
        store.append([
            Transition(T0 - HOUR, "site:S1", None, "ready", (), v),
            Transition(T0 + 2 * HOUR, "site:S1", "ready", "not_ready", ("maintenance: fiber splice", "primary.down"),
                       v),
            Transition(T0 + 4 * HOUR, "site:S1", "not_ready", "ready", (), v),
            Transition(T0 - HOUR, "site:S2", None, "ready", (waived,), v),
            Transition(T0 - HOUR, "link:S2/backup", None, "down", ("backup.down",), v),
        ])
        assert store.flush()
    out = tmp_path / "bundle"
    assert main(["audit", "export", "--config", str(config_path), "--data-dir", str(data), "--from", "1404-12-01",
                 "--to", "1404-12-01", "-o", str(out), "--sign", str(keys[0])]) == 0
    rows = read_csv(out / "readiness.csv")
    assert float(rows["S1"]["maintenance_seconds"]) == 2 * HOUR
    assert float(rows["S1"]["ready_seconds"]) == 22 * HOUR and rows["S1"]["site_availability"] == "1.000000"
    assert rows["S1"]["failed_requirements"] == ""  # primary.down only while in maintenance
    assert rows["S2"]["failed_requirements"] == ""  # the waiver note is not a failure
    assert rows["S2"]["backup_availability"] == "0.000000"  # the link is down all the same
    assert rows["S2"]["waivers"] == ("backup until 2026-03-01 00:00 (by ICT committee: no LTE coverage in the "
                                     "village)")
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["province"]["maintenance_seconds"] == 2 * HOUR and summary["province"]["waivers_in_force"] == 1
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "no LTE coverage in the village" in html and "ICT committee" in html and "۱۴۰۴/۱۲/۱۰" in html
    # The committee's key pinned in the data dir's trusted_keys: verify finds it there.
    (data / "trusted_keys").write_text(signing.fingerprint(signing.load_public_key(keys[1])) + " committee\n")
    capsys.readouterr()
    assert main(["audit", "verify", str(out), "--data-dir", str(data)]) == 0
    assert f"pinned in {data / 'trusted_keys'} (committee)" in capsys.readouterr().out


def store_with_two_versions(tmp_path: Path) -> tuple[Path, Path, Path]:
    """v1 (no window) in force from 22:00 the day before; at 06:00 v2 adds a window for S1 02:00-04:00 of that day.

    S1 was not ready 02:00-04:00 (primary down) under v1: the monitor saw no maintenance then.
    Returns the data dir and both configs.
    """
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    v1_path, v1 = small_config(tmp_path / "v1")
    v2_path, v2 = small_config(tmp_path / "v2", maintenance=[
        {"sites": ["S1"], "reason": "fiber splice, booked late", "start": "2026-02-20T02:00:00+03:30",
         "end": "2026-02-20T04:00:00+03:30"}])
    assert v1.version != v2.version
    data = tmp_path / "data"
    with EventStore(data, batch_seconds=0.01) as store:
        store.append_config(T0 - 2 * HOUR, v1.version, v1.record())
        store.append([Transition(T0 - HOUR, "site:S1", None, "ready", (), v1.version),
                      Transition(T0 - HOUR, "site:S2", None, "ready", (), v1.version),
                      Transition(T0 + 2 * HOUR, "site:S1", "ready", "not_ready", ("primary.down",), v1.version),
                      Transition(T0 + 4 * HOUR, "site:S1", "not_ready", "ready", (), v1.version)])
        store.append_config(T0 + 6 * HOUR, v2.version, v2.record())
        assert store.flush()
    return data, v1_path, v2_path


def test_a_window_added_later_does_not_rewrite_past_availability(tmp_path: Path) -> None:
    """Exported with the later config (v2), the 02:00-04:00 outage still counts: it was not maintenance then."""
    data, v1_path, v2_path = store_with_two_versions(tmp_path)
    csvs, summaries = [], []
    for name, config_path in (("with-v1", v1_path), ("with-v2", v2_path)):
        out = tmp_path / name
        assert main(["audit", "export", "--config", str(config_path), "--data-dir", str(data), "--from", "1404-12-01",
                     "--to", "1404-12-01", "-o", str(out)]) == 0
        csvs.append(read_csv(out / "readiness.csv"))
        summaries.append(json.loads((out / "summary.json").read_text(encoding="utf-8")))
    s1 = csvs[1]["S1"]
    assert (s1["maintenance_seconds"], s1["not_ready_seconds"], s1["failed_requirements"]) == (
        "0", "7200", "primary.down 2h 00m")
    assert s1["site_availability"] == f"{22 / 24:.6f}"
    assert csvs[0] == csvs[1]  # the config at hand changes nothing the record says
    versions = summaries[1]["config_versions_in_force"]
    assert [(c["version"], c["since"]["iso"], c["until"] and c["until"]["iso"], c["maintenance_windows"])
            for c in versions] == [
        (load_config(v1_path).version, "2026-02-19T22:00:00+03:30", "2026-02-20T06:00:00+03:30", 0),
        (load_config(v2_path).version, "2026-02-20T06:00:00+03:30", None, 1)]
    assert summaries[1]["context_notes"] == []
    html = (tmp_path / "with-v2" / "report.html").read_text(encoding="utf-8")
    assert "Config versions in force" in html and load_config(v1_path).version in html


def test_a_config_the_store_never_saw_is_refused_unless_forced(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A config version never recorded in force: refused (exit 2); with --force exported, and the report says so."""
    data, v1_path, _ = store_with_two_versions(tmp_path)
    (tmp_path / "v3").mkdir()
    v3_path, v3 = small_config(tmp_path / "v3", waivers=[
        {"site": "S1", "requirement": "backup", "until": "2026-03-01", "approved_by": "nobody", "reason": "made up"}])
    base = ["audit", "export", "--config", str(v3_path), "--data-dir", str(data), "--from", "1404-12-01",
            "--to", "1404-12-01"]
    capsys.readouterr()
    assert main([*base, "-o", str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err
    assert f"is version {v3.version}, which the store in {data} never recorded in force" in err
    assert load_config(v1_path).version in err and "--force" in err
    assert not (tmp_path / "refused").exists()
    out = tmp_path / "forced"
    assert main([*base, "-o", str(out), "--force"]) == 0
    assert f"warning: config {v3.version} was never recorded in force (--force)" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["context_notes"][0] == (f"exported with --force: config {v3.version} was never recorded in "
                                           f"force by the store")
    assert summary["province"]["waivers_in_force"] == 0  # v3's waiver was never in force
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["config"]["recorded_in_store"] is False
    assert "exported with --force" in (out / "report.html").read_text(encoding="utf-8")
