"""Owners and remediation actions: the pure fold, the config, the CLI on a stopped store and through a running
service, the API, the metrics, and the hash chain that keeps their history."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from monitor.cli.main import main
from monitor.config.importer import import_csv
from monitor.core.actions import (
    ActionError,
    close_record,
    due_time,
    fold,
    open_record,
    ready_since,
    select,
    unowned,
)
from monitor.errors import ConfigError
from monitor.store.events import EventStore
from tests.helpers import free_port
from tests.lab import http, wait_for
from tests.monitor.fixtures import config, site, write_config

TEHRAN = ZoneInfo("Asia/Tehran")


# ---- the pure model ------------------------------------------------------------------------------------------

def test_fold_open_close_and_history() -> None:
    records = []
    actions: dict[str, Any] = {}
    records.append(open_record(actions, site="S1", county="Ilam", owner="Ali", due=2000.0, due_text="1405-09-10",
                               note="splice the fibre", by="op1", at=1000.0))
    actions = fold(records)
    records.append(open_record(actions, site=None, county="Ilam", owner="Sara", due=5000.0, due_text="2026-12-01",
                               note="", by="op1", at=1100.0))
    actions = fold(records)
    assert list(actions) == ["A1", "A2"]
    assert actions["A1"].overdue(2001.0) and not actions["A1"].overdue(1999.0)
    with pytest.raises(ActionError, match="result is required"):
        close_record(actions["A1"], result="  ", by="op2", at=3000.0)
    records.append(close_record(actions["A1"], result="spliced", by="op2", at=3000.0))
    actions = fold(records)
    a1 = actions["A1"]
    assert (a1.state, a1.result, a1.closed_by, a1.closed_at) == ("done", "spliced", "op2", 3000.0)
    assert not a1.overdue(9999.0), "a closed action is never overdue"
    assert [s.state for s in a1.steps] == ["open", "done"]
    with pytest.raises(ActionError, match="already done"):
        close_record(a1, result="again", by="op2", at=3100.0)
    with pytest.raises(ActionError, match="done or cancelled"):
        close_record(actions["A2"], state="open", result="x", by="op", at=1.0)
    assert [a.id for a in select(actions.values(), 9999.0, state="open", overdue=True)] == ["A2"]
    assert [a.id for a in select(actions.values(), 0, owner="ali")] == ["A1"]
    assert actions["A2"].covers("S9", "Ilam") and actions["A2"].target == "county:Ilam"


def test_due_dates_in_both_calendars() -> None:
    """A bare date is due by the end of that day in the programme's timezone; Jalali and Gregorian agree."""
    jalali = due_time("1405-09-10", TEHRAN)
    assert jalali == due_time("2026-12-01", TEHRAN) == due_time("۱۴۰۵/۰۹/۱۰", TEHRAN)
    assert jalali == due_time("2026-12-02 00:00", TEHRAN)
    assert due_time("2026-12-01 08:30", TEHRAN) < jalali
    with pytest.raises(ActionError, match="cannot read"):
        due_time("next friday", TEHRAN)


def test_due_times_to_the_second_in_both_calendars() -> None:
    """A full timestamp is due at that very second: Jalali or Gregorian, local or with an offset, Persian digits."""
    from datetime import datetime

    expected = datetime(2026, 12, 1, 8, 30, 15, tzinfo=TEHRAN).timestamp()
    for text in ("1405-09-10 08:30:15", "1405/09/10T08:30:15+03:30", "۱۴۰۵-۰۹-۱۰ ۰۸:۳۰:۱۵", "2026-12-01 08:30:15",
                 "2026-12-01T08:30:15+03:30", "2026-12-01T05:00:15Z", "2026-12-01T08:30:15.250+0330"):
        assert due_time(text, TEHRAN) == expected, text
    with pytest.raises(ActionError, match="cannot read"):
        due_time("1405-09-10 8:30:1", TEHRAN)


def test_unowned_and_ready_since() -> None:
    actions = fold([open_record({}, site="S2", county="Ilam", owner="A", due=10.0, due_text="x", note="", by="b",
                                at=0.0)])
    sites = [("S1", "Ilam"), ("S2", "Ilam"), ("S3", "Ilam"), ("S4", "Mehran")]
    states = {"S1": ("not_ready", 0.0), "S2": ("not_ready", 0.0), "S3": ("not_ready", 990.0),
              "S4": ("ready", 0.0)}
    lost = unowned(sites, states, actions.values(), 1000.0, 60.0)
    assert [u.site for u in lost] == ["S1"], "S2 has an action, S3 is within the grace time, S4 is ready"
    county_wide = fold([open_record({}, site=None, county="Ilam", owner="A", due=10.0, due_text="x", note="", by="b",
                                    at=0.0)])
    assert unowned(sites, states, county_wide.values(), 1000.0, 60.0) == []
    assert ready_since(actions["A1"], "ready", 500.0) == 500.0
    assert ready_since(actions["A1"], "not_ready", 500.0) is None


# ---- owners in the config ------------------------------------------------------------------------------------

def test_owners_from_sites_and_counties(tmp_path: Path) -> None:
    s1, s2 = site("S1"), site("S2", n=2)
    s1.update(owner="Ali Rezaei", contact="+98 84 0000")
    cfg = config(tmp_path, [s1, s2], counties={"Ilam": {"owner": "Ilam ICT team", "contact": "ict@ilam.example"}})
    by_id = cfg.site_map()
    assert cfg.owner_of(by_id["S1"]) == ("Ali Rezaei", "+98 84 0000")
    assert cfg.owner_of(by_id["S2"]) == ("Ilam ICT team", "ict@ilam.example")


def test_config_refuses_unknown_county_and_mail_without_smtp(tmp_path: Path) -> None:
    path = write_config(tmp_path, [site("S1")], counties={"Nowhere": {"owner": "X"}},
                        reports=[{"name": "weekly", "schedule": "0 8 * * sat", "recipients": ["c@example.org"]}])
    with pytest.raises(ConfigError) as err:
        main_config(path)
    text = str(err.value)
    assert "counties names no county 'Nowhere'" in text and "no 'smtp:' section" in text


def main_config(path: Path) -> Any:
    from monitor.config.loader import load_config
    return load_config(path)


def test_csv_owner_columns(tmp_path: Path) -> None:
    csv = tmp_path / "sites.csv"
    csv.write_text("site_id,name,county,area,primary_medium,primary_address,owner,contact\n"
                   "S1,مدرسه,Ilam,urban,fiber,10.0.0.1,علی رضایی,+98 84 0000\n"
                   "S2,مسجد,Ilam,rural,lte,10.0.0.2,,\n", encoding="utf-8")
    text = import_csv(csv)
    assert "owner: علی رضایی" in text and "contact: +98 84 0000" in text
    assert text.count("owner:") == 1


# ---- the CLI on a stopped store ------------------------------------------------------------------------------

def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_data_dir_actions_and_tamper(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Actions through the stopped store: ids printed, listed, closed with a result; the chain verifies, and an
    action row edited in SQLite is found by `audit verify`."""
    path = write_config(tmp_path, [site("S1"), site("S2", n=2)])
    data = tmp_path / "data"
    where = ("--config", str(path), "--data-dir", str(data))
    assert _cli(capsys, "actions", "add", "S1", "--owner", "Ali", "--due", "1405-09-10", "--note", "fibre",
                *where)[:2] == (0, "A1\n")
    assert _cli(capsys, "actions", "add", "county:ilam", "--owner", "Sara", "--due", "2999-01-01", *where)[1] == "A2\n"
    code, out, err = _cli(capsys, "actions", "add", "NOPE", "--owner", "X", "--due", "2026-01-01", *where)
    assert code == 1 and "no site 'NOPE'" in err
    code, out, err = _cli(capsys, "actions", "close", "A1", "--result", "", *where)
    assert code == 1 and "result is required" in err
    assert _cli(capsys, "actions", "close", "A1", "--result", "fibre spliced", *where)[1] == "A1 done\n"
    code, out, _ = _cli(capsys, "actions", "list", "--json", *where)
    doc = json.loads(out)
    assert [(a["id"], a["state"], a["county"]) for a in doc["actions"]] == [("A1", "done", "Ilam"),
                                                                          ("A2", "open", "Ilam")]
    assert doc["actions"][0]["result"] == "fibre spliced" and doc["actions"][0]["due_text"] == "1405-09-10"
    code, out, _ = _cli(capsys, "actions", "list", "--open", *where)
    assert out.splitlines()[0].startswith("A2\topen\tcounty:Ilam\tSara")

    code, out, _ = _cli(capsys, "audit", "verify", "--data-dir", str(data))
    assert code == 0, out

    conn = sqlite3.connect(data / "events.db")
    (seq, payload), = conn.execute("SELECT seq, payload FROM events WHERE kind = 'action' AND new = 'done'")
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("UPDATE events SET payload = ? WHERE seq = ?",
                 (payload.replace("fibre spliced", "never mind"), seq))
    conn.commit()
    conn.close()
    code, out, _ = _cli(capsys, "audit", "verify", "--data-dir", str(data))
    assert code != 0 and f"row {seq}: hash mismatch" in out


def test_cli_data_dir_refuses_a_held_lock(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With a writer holding the store (a running service), --data-dir says so instead of forking the chain."""
    path = write_config(tmp_path, [site("S1")])
    data = tmp_path / "data"
    with EventStore(data):
        code, _, err = _cli(capsys, "actions", "list", "--config", str(path), "--data-dir", str(data), "--wait", "0.5")
    assert code == 1
    assert "waiting for the store's writer lock" in err and "writer lock is held" in err and "--url" in err
    assert _cli(capsys, "actions", "list", "--config", str(path), "--data-dir", str(data))[0] == 0


# ---- through a running service ------------------------------------------------------------------------------

def _metric(text: str, name: str, county: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(f'{name}{{county="{county}"}} '):
            return float(line.split()[-1])
    return None


def test_actions_through_a_running_service(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`readiness run` with a store: actions added and closed with `actions --url` appear in the API and in
    /metrics within an evaluation; unowned and overdue counts follow; the chain verifies afterwards."""
    port = free_port()
    data = tmp_path / "data"
    path = write_config(tmp_path, [site("S1"), site("S2", n=2)], listen={"host": "127.0.0.1", "port": port},
                        data_dir=str(data), counties={"Ilam": {"owner": "Ilam ICT"}},
                        actions={"unowned_after_seconds": 0},
                        probes={"tcp": {"interval_seconds": 1, "timeout_seconds": 0.5}, "icmp": {"enabled": False}})
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", str(path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("service ready", lambda: http(url + "/-/ready") == "ready\n", 60)
        metrics = lambda: http(url + "/metrics")  # noqa: E731
        wait_for("two unowned sites", lambda: _metric(metrics(), "readiness_sites_unowned", "Ilam") == 2, 30)
        assert 'readiness_county_owner_info{county="Ilam",owner="Ilam ICT"} 1.0' in metrics()
        code, out, err = _cli(capsys, "actions", "add", "S1", "--owner", "Ali", "--due", "2020-01-01",
                              "--url", url, "--by", "tester")
        assert (code, out) == (0, "A1\n"), err
        doc = http(url + "/api/v1/actions?site=S1")
        assert [(a["id"], a["owner"], a["overdue"], a["opened_by"]) for a in doc["actions"]] == \
            [("A1", "Ali", True, "tester")]
        assert [u["site"] for u in doc["unowned"]] == ["S2"] and doc["unowned"][0]["owner"] == "Ilam ICT"
        wait_for("A1 counted open and overdue",
                 lambda: _metric(metrics(), "readiness_actions_overdue", "Ilam") == 1
                 and _metric(metrics(), "readiness_actions_open", "Ilam") == 1
                 and _metric(metrics(), "readiness_sites_unowned", "Ilam") == 1, 30)
        assert http(url + "/api/v1/sites/S2")["owner"] == "Ilam ICT"
        code, out, _ = _cli(capsys, "actions", "list", "--overdue", "--url", url)
        assert out.startswith("A1\topen OVERDUE\tS1\tAli")
        assert "unowned\tS2\tIlam" in out
        assert _cli(capsys, "actions", "close", "A1", "--result", "router replaced", "--url", url)[1] == "A1 done\n"
        code, _, err = _cli(capsys, "actions", "close", "A1", "--result", "again", "--url", url)
        assert code == 1 and "already done" in err
        bad = subprocess.run([sys.executable, "-c", "import urllib.request as u; u.urlopen(u.Request("
                              f"'{url}/api/v1/actions', data=b'{{}}', method='POST'))"], capture_output=True, text=True)
        assert "400" in bad.stderr
        wait_for("A1 no longer open", lambda: _metric(metrics(), "readiness_actions_open", "Ilam") == 0, 30)
        assert http(url + "/api/v1/actions?state=done")["actions"][0]["result"] == "router replaced"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    code, out, _ = _cli(capsys, "audit", "verify", "--data-dir", str(data))
    assert code == 0, out
    code, out, _ = _cli(capsys, "actions", "list", "--json", "--config", str(path))
    closed = json.loads(out)["actions"][0]
    assert closed["state"] == "done" and "@" in closed["closed_by"], "the CLI says who closed it"


def test_api_flags_an_open_action_whose_site_is_ready(tmp_path: Path) -> None:
    """An open action on a site that is (sustained) ready again says since when; it stays open for its owner."""
    from monitor.runtime.service import Service
    from monitor.web.api import actions_json
    from probes.base import Observation
    from tests.monitor.fixtures import obs

    service = Service(config(tmp_path, [site("S1")]), clock=lambda: 1000.0)
    service.latest.update({"S1/primary": obs("S1/primary"), "S1/backup": obs("S1/backup"),
                           **{f"S1/terminal/T{k}": Observation(f"S1/terminal/T{k}", "tcp", True, 1000.0,
                                                               {"connect_seconds": 0.001}) for k in (1, 2)}})
    snap = service.evaluate(force=True)
    assert snap.sites["S1"].state == "ready"
    actions = fold([open_record({}, site="S1", county="Ilam", owner="Ali", due=5000.0, due_text="x", note="",
                                by="op", at=10.0)])
    doc = actions_json(snap, actions.values(), {}, 1000.0)
    (a,) = doc["actions"]
    assert a["state"] == "open" and a["site_ready_since"] is not None and not a["overdue"]
    with pytest.raises(ValueError, match="unknown parameter"):
        actions_json(snap, actions.values(), {"colour": "red"}, 1000.0)
