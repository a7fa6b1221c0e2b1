"""One audit bundle from several shards' stores (issue 13): each chain apart, figures for the whole inventory.

The stores come from `tests.monitor.audit_fill`: the real Service and Recorder, run once unsharded and once as
each of three shards (``--shard K/3``) over the same script, config and terminals, so the shards' stores
together hold what the unsharded store holds. Shard 1 owns ILM-001; shard 2 EYV-002 and MHR-001; shard 3
ILM-002 and EYV-001. A fourth store is shard 3 whose monitor stopped for good at 12h.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from monitor.audit.shards import recorded_shards
from monitor.cli.main import main
from monitor.config.shard import owner
from monitor.store.events import EventStore
from tests.helpers import free_port
from tests.monitor.audit_fill import HOUR, SITES, T0, Run, fill_store, write_config

DAY = ["--from", "1404-12-01", "--to", "1404-12-01"]
DIED_AT = 12.0  # shard 3's monitor stops for good at 12h of the audited day
SHARD_OF = {sid: owner(sid, 3) for sid, *_ in SITES}


@dataclass
class Stores:
    config: Path
    whole: Run
    shards: list[Run]  # shards 1..3
    died: Run  # shard 3, stopped for good at DIED_AT
    crashed: Path  # the same store as a crash at DIED_AT would leave it: no `closed` marker


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Stores:
    directory = tmp_path_factory.mktemp("shards")
    port = free_port("127.41.0.1")
    config = write_config(directory, port)
    whole = fill_store(directory, config_path=config, port=port, data_dir=directory / "whole")
    shards = [fill_store(directory, shard=f"{k}/3", config_path=config, port=port, data_dir=directory / f"shard{k}")
              for k in (1, 2, 3)]
    died = fill_store(directory, shard="3/3", config_path=config, port=port, data_dir=directory / "shard3-died",
                      stop_at=DIED_AT, restart_at=None, crash_copy=directory / "shard3-crashed")
    return Stores(config, whole, shards, died, directory / "shard3-crashed")


def export(config: Path, dirs: list[Path], out: Path, *extra: str) -> int:
    return main(["audit", "export", "--config", str(config), *(a for d in dirs for a in ("--data-dir", str(d))),
                 *DAY, "-o", str(out), *extra])


def summary(bundle: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((bundle / "summary.json").read_text(encoding="utf-8"))
    return data


def verify(bundle: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["audit", "verify", str(bundle), *extra])
    return code, capsys.readouterr().out


@pytest.fixture(scope="module")
def bundles(stores: Stores, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The single-instance bundle of the unsharded store, and the bundle of the three shards' stores."""
    out = tmp_path_factory.mktemp("bundles")
    assert export(stores.config, [stores.whole.data_dir], out / "whole") == 0
    assert export(stores.config, [r.data_dir for r in stores.shards], out / "shards") == 0
    return {"whole": out / "whole", "shards": out / "shards"}


# -- the store records its shard ------------------------------------------------------------------

def test_each_store_records_its_shard(stores: Stores) -> None:
    """The recorder writes the shard (K of N) and the sites it reports into its config rows; unsharded is 1 of 1."""
    assert recorded_shards(stores.whole.data_dir) == [None]
    for k, run in enumerate(stores.shards, start=1):
        assert recorded_shards(run.data_dir) == [(k, 3)]
        (config,) = EventStore(run.data_dir).events(kinds=("config",))
        assert config.payload["shard"] == [k, 3]
        assert config.payload["reported"] == sum(1 for s in SHARD_OF.values() if s == k)
    (whole,) = EventStore(stores.whole.data_dir).events(kinds=("config",))
    assert whole.payload["shard"] == [1, 1] and whole.payload["reported"] == len(SITES)


# -- the figures ----------------------------------------------------------------------------------

def test_shards_figures_equal_the_single_instance_audit(bundles: dict[str, Path]) -> None:
    """The three shards' stores give the figures the unsharded store gives over the same events: every site counted
    once, from its owner; summary.json (but for the shards' own section), the CSV and the workbook's figures."""
    whole, shards = summary(bundles["whole"]), summary(bundles["shards"])
    assert [s["shard"] for s in shards.pop("shards")] == [1, 2, 3]
    assert shards == whole
    assert (bundles["shards"] / "readiness.csv").read_bytes() == (bundles["whole"] / "readiness.csv").read_bytes()
    assert shards["at_end"]["polling_places"]["total"] == len(SITES)


def test_a_dead_shard_is_blind_for_its_sites_only(stores: Stores, bundles: dict[str, Path], tmp_path: Path) -> None:
    """Shard 3's monitor stops for good at 12h: its two sites are blind from 12h to the end of the day and end
    unknown (monitor.blind), never ready nor not_ready; the other shards' sites are exactly as in the full audit."""
    out = tmp_path / "died"
    assert export(stores.config, [stores.shards[0].data_dir, stores.shards[1].data_dir, stores.died.data_dir],
                  out) == 0
    got, full = summary(out), summary(bundles["shards"])
    shard3 = got["shards"][2]
    assert shard3["store"] == "shard3-died" and shard3["sites"] == ["EYV-001", "ILM-002"]
    ((start, end),) = [(b["start"]["unix"], b["end"]["unix"]) for b in shard3["blind"]]
    assert start == pytest.approx(T0 + DIED_AT * HOUR) and end == pytest.approx(T0 + 24 * HOUR)
    assert got["shards"][0]["blind"] == full["shards"][0]["blind"]  # the others: only the stop all shards shared
    csv_got = (out / "readiness.csv").read_text(encoding="utf-8-sig").splitlines()
    csv_full = (bundles["shards"] / "readiness.csv").read_text(encoding="utf-8-sig").splitlines()
    rows_got = {line.split(",")[0]: line for line in csv_got[1:]}
    rows_full = {line.split(",")[0]: line for line in csv_full[1:]}
    for sid, shard in SHARD_OF.items():
        assert (rows_got[sid] == rows_full[sid]) == (shard != 3), sid
    for sid in ("EYV-001", "ILM-002"):
        assert _row(out, sid)["state_at_end"] == "unknown"
        assert _row(out, sid)["reasons_at_end"].startswith("monitor.blind")
    assert got["at_end"]["polling_places"]["total"] == len(SITES)
    assert got["at_end"]["polling_places"]["unknown"] >= 2
    # Up to 12h a dead-shard site's seconds are those of the unsharded audit of 00:00-12:00; after, all blind.
    half = tmp_path / "half"
    assert main(["audit", "export", "--config", str(stores.config), "--data-dir", str(stores.whole.data_dir),
                 "--from", "1404-12-01", "--to", "1404-12-01 12:00", "-o", str(half)]) == 0
    for sid in ("EYV-001", "ILM-002"):
        died, before = _row(out, sid), _row(half, sid)
        seen = ("ready_seconds", "degraded_seconds", "not_ready_seconds", "maintenance_seconds")
        for column in seen:
            assert died[column] == before[column], (sid, column)
        assert float(died["blind_seconds"]) == pytest.approx(
            24 * HOUR - sum(float(before[c]) for c in seen)), sid


def _row(bundle: Path, sid: str) -> dict[str, str]:
    text = (bundle / "readiness.csv").read_text(encoding="utf-8-sig")
    return next(r for r in csv.DictReader(io.StringIO(text)) if r["site_id"] == sid)


def test_a_crashed_shard_is_blind_from_its_last_row(stores: Stores, tmp_path: Path) -> None:
    """Shard 3 killed after its 11h evaluation (no `closed` marker): a running recorder writes a row at least every
    snapshot interval, so from its last row on, more than an hour before the end, its sites are blind and end
    unknown; the other shards are as before."""
    out = tmp_path / "crashed"
    assert export(stores.config, [stores.shards[0].data_dir, stores.shards[1].data_dir, stores.crashed], out) == 0
    got = summary(out)
    ((start, end),) = [(b["start"]["unix"], b["end"]["unix"]) for b in got["shards"][2]["blind"]]
    assert start == pytest.approx(T0 + (DIED_AT - 1) * HOUR) and end == pytest.approx(T0 + 24 * HOUR)
    for sid in ("EYV-001", "ILM-002"):
        assert _row(out, sid)["state_at_end"] == "unknown"
    assert len(got["shards"][0]["blind"]) == 1  # shard 1: only the stop all shards shared


def test_a_missing_shard_store_is_blind_all_period(stores: Stores, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Only shards 1 and 3 given: shard 2's sites are blind the whole period and end unknown; its entry says so,
    and the bundle still verifies (no chain for shard 2, a note instead)."""
    out = tmp_path / "two"
    assert export(stores.config, [stores.shards[0].data_dir, stores.shards[2].data_dir], out) == 0
    got = summary(out)
    shard2 = got["shards"][1]
    assert shard2["store"] is None and shard2["blind_seconds"] == pytest.approx(24 * HOUR)
    for sid in ("EYV-002", "MHR-001"):
        row = _row(out, sid)
        assert row["state_at_end"] == "unknown"
        assert float(row["ready_seconds"]) == 0 and float(row["not_ready_seconds"]) == 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["format"] == "readiness-audit-bundle/2"
    assert manifest["shards"][1] == {**manifest["shards"][1], "events": None, "chain": None, "store": None}
    assert not (out / "events-shard-2-of-3.jsonl").exists()
    capsys.readouterr()
    main(["audit", "verify", str(out)])
    text = capsys.readouterr().out
    assert "FAIL" not in text and "note: shard 2 of 3: no store was given at export; its 2 site(s) are reported " \
        "blind" in text
    assert "proved: shard 1 of 3:" in text and "proved: shard 3 of 3:" in text
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "shard 2 of 3: no store given" in report and "Monitor outages, by shard" in report


# -- verify ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def signed(stores: Stores, keys: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("signed") / "shards.zip"
    assert export(stores.config, [r.data_dir for r in stores.shards], out, "--sign", str(keys[0])) == 0
    return out


def test_verify_checks_each_shards_chain(signed: Path, keys: tuple[Path, Path],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A signed multi-shard bundle (a zip) verifies: every file, each shard's chain apart, the signature."""
    code, out = verify(signed, capsys, "--pubkey", str(keys[1]))
    assert code == 0, out
    for k in (1, 2, 3):
        assert f"proved: shard {k} of 3: events-shard-{k}-of-3.jsonl is an unbroken run of its store's hash chain" \
            in out
    assert out.rstrip().endswith("is intact and signed by a trusted key")


def _unzipped(bundle: Path, into: Path) -> Path:
    import zipfile

    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(into)
    return into


def test_a_tampered_row_in_one_shard_is_named_with_its_shard(signed: Path, keys: tuple[Path, Path], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A transition in shard 2's events edited: the file, its shard, the line and the seq are named; shards 1 and 3
    still prove their chains."""
    copy = _unzipped(signed, tmp_path / "copy")
    path = copy / "events-shard-2-of-3.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    k = next(i for i, line in enumerate(lines) if b'"kind": "transition"' in line and b'"new": "down"' in line)
    seq = json.loads(lines[k])["seq"]
    lines[k] = lines[k].replace(b'"new": "down"', b'"new": "up"')
    path.write_bytes(b"".join(lines))
    code, out = verify(copy, capsys, "--pubkey", str(keys[1]))
    assert code == 1
    assert (f"FAIL events-shard-2-of-3.jsonl (shard 2 of 3) line {k + 1} (seq {seq}): content does not match its "
            f"hash (row edited)") in out
    assert "proved: shard 1 of 3:" in out and "proved: shard 3 of 3:" in out and "proved: shard 2 of 3" not in out


def test_a_row_rewritten_in_one_shards_store_is_named(stores: Stores, keys: tuple[Path, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Shard 3's store has a row rewritten (its trigger dropped): the bundle exported from it names shard 3 and
    the row; `verify --data-dir` on that store says the same."""
    forged = tmp_path / "shard3"
    shutil.copytree(stores.shards[2].data_dir, forged)
    with contextlib.closing(sqlite3.connect(forged / "events.db")) as conn:
        (seq,) = conn.execute("SELECT seq FROM events WHERE kind = 'transition' AND new = 'ready' AND at >= ? "
                              "ORDER BY seq LIMIT 1", (T0,)).fetchone()
        conn.execute("DROP TRIGGER events_no_update")
        conn.execute("UPDATE events SET new = 'not_ready' WHERE seq = ?", (seq,))
        conn.commit()
    out = tmp_path / "bundle"
    assert export(stores.config, [stores.shards[0].data_dir, stores.shards[1].data_dir, forged], out,
                  "--sign", str(keys[0])) == 0
    code, text = verify(out, capsys, "--pubkey", str(keys[1]))
    assert code == 1
    assert re.search(rf"FAIL events-shard-3-of-3\.jsonl \(shard 3 of 3\) line \d+ \(seq {seq}\): content does not "
                     r"match its hash", text), text
    assert "FAIL events-shard-1-of-3" not in text and "FAIL events-shard-2-of-3" not in text
    capsys.readouterr()
    assert main(["audit", "verify", "--data-dir", str(forged)]) == 1
    assert f"row {seq}: hash mismatch" in capsys.readouterr().out


# -- bad input ------------------------------------------------------------------------------------

def test_clear_errors_for_stores_that_do_not_make_one_deployment(stores: Stores, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 2 and a sentence naming the directory: not a store; one shard twice; an unsharded store; shards of
    deployments of different sizes; a shard that ran another config (inventory); nothing is written."""
    s1, s2, s3 = (r.data_dir for r in stores.shards)

    def refused(dirs: list[Path], *expected: str) -> None:
        capsys.readouterr()
        out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
        assert export(stores.config, dirs, out) == 2
        err = capsys.readouterr().err
        for text in expected:
            assert text in err, err
        assert not out.exists()

    empty = tmp_path / "not-a-store"
    empty.mkdir()
    refused([s1, empty], f"{empty} is not an event store: it has no events.db")
    refused([s1, s1], "a --data-dir is given twice")
    copy = tmp_path / "shard2-copy"
    shutil.copytree(s2, copy)
    refused([s1, s2, copy], f"{s2} and {copy} are both shard 2 of 3")
    refused([s1, stores.whole.data_dir], f"{stores.whole.data_dir}: the store records no shard")
    other = fill_store(tmp_path, shard="1/2", config_path=stores.config, port=_port(stores.config),
                       data_dir=tmp_path / "half-1", stop_at=2, restart_at=None)
    refused([s2, other.data_dir], f"{s2} is a shard of 3 but {other.data_dir} is shard 1 of 2")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    foreign = fill_store(elsewhere, shard="3/3", data_dir=elsewhere / "shard3", stop_at=2, restart_at=None)
    assert foreign.config.version != stores.shards[0].config.version
    refused([s1, s2, foreign.data_dir], f"which the store in {foreign.data_dir} (shard 3 of 3) never recorded in force")
    assert s3.exists()


def _port(config: Path) -> int:
    import yaml

    sites = yaml.safe_load((config.parent / "sites.yaml").read_text(encoding="utf-8"))["sites"]
    return int(sites[0]["terminals"][0]["port"])
