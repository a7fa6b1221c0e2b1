"""The committee's regular report over a store filled by a real run: its figures, HTML, PDF (headless Chromium,
checked with pdftotext and pdftoppm), right-to-left XLSX, the record of its manifest, and the mail a real SMTP
server (aiosmtpd on 127.0.0.1) receives from the scheduled job."""

from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
import json
import subprocess
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import yaml

from monitor.audit import committee
from monitor.cli.main import main
from monitor.cli.reports import schedule_reports
from monitor.config.loader import Config, load_config
from monitor.core.actions import ActionRecord, close_record, fold, open_record
from monitor.store.events import EventStore
from tests.helpers import free_port, require_tool
from tests.monitor.audit_fill import HOUR, SITES, T0, Run, fill_store

END = T0 + 26 * HOUR


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    run = fill_store(tmp_path_factory.mktemp("committee"))
    # Actions inside the recorded day: one done, one overdue at the end, one for a whole county not yet due.
    records: list[ActionRecord] = []
    a1 = open_record({}, site="ILM-002", county="Ilam", owner="علی رضایی", due=T0 + 8 * HOUR, due_text="1404-12-01",
                     note="لینک پشتیبان", by="op", at=T0 + 2 * HOUR)
    records.append(a1)
    records.append(close_record(fold(records)["A1"], result="مودم عوض شد", by="op", at=T0 + 10 * HOUR))
    records.append(open_record(fold(records), site="EYV-002", county="Eyvan", owner="Sara Ahmadi", due=T0 + 12 * HOUR,
                               due_text="2026-02-20 12:00", note="primary fibre cut", by="op", at=T0 + 11 * HOUR))
    records.append(open_record(fold(records), site=None, county="Mehran", owner="Mehran ICT", due=T0 + 400 * HOUR,
                               due_text="1404-12-20", note="", by="op", at=T0 + 12 * HOUR))
    with EventStore(run.data_dir) as store:
        for r in records:
            store.append_action(r.at, r.entity, r.old, r.new, dict(r.payload))
    return run


def report_config(run: Run, smtp_port: int = 2525, **extra: Any) -> Path:
    doc = yaml.safe_load(run.config_path.read_text(encoding="utf-8"))
    doc.update({"data_dir": str(run.data_dir),
                "counties": {"Ilam": {"owner": "Ilam ICT", "contact": "ict@ilam.example"}},
                "smtp": {"host": "127.0.0.1", "port": smtp_port, "sender": "readiness@ilam.example"},
                "reports": [{"name": "weekly", "schedule": "0 8 * * sat", "formats": ["html", "pdf", "xlsx"],
                             "recipients": ["committee@ilam.example"]}],
                **extra})
    path = run.config_path.parent / f"report-{smtp_port}.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def flat(text: str) -> str:
    return " ".join(text.split())


def test_report_figures(run: Run) -> None:
    config = load_config(report_config(run))
    r = committee.build(config, run.data_dir, config.reports[0], now=END)
    assert r.period.end == END and r.previous is None
    assert r.share_now == pytest.approx(r.figures.province.ready_share)
    assert [c[0] for c in r.counties] == sorted((c[0] for c in r.counties), key=lambda n: (
        r.figures.counties[n].ready_share or -1.0, n)), "counties worst first"
    assert [a.id for a in r.opened] == ["A1", "A2", "A3"] and [a.id for a in r.closed] == ["A1"]
    assert list(r.overdue) == ["Sara Ahmadi"] and r.overdue["Sara Ahmadi"][0].id == "A2"
    assert r.blind_seconds == pytest.approx(sum(e - s for s, e in r.figures.outages))
    assert r.blind_seconds > 2 * HOUR, "the monitor was stopped 2h50m in the middle"
    regressed = {x.site for x in r.regressions}
    assert regressed <= {s[0] for s in SITES}


def test_report_files_pdf_and_rtl_xlsx(run: Run, tmp_path: Path) -> None:
    """HTML, a PDF whose text (pdftotext) holds the Persian and English words and both calendars, rendered to
    PNG by pdftoppm; an XLSX whose every sheet runs right to left; a manifest of their hashes."""
    pdftotext, pdftoppm = require_tool("pdftotext"), require_tool("pdftoppm")
    require_tool("chromium")
    config = load_config(report_config(run))
    r = committee.build(config, run.data_dir, config.reports[0], now=END)
    digest = committee.write(r, tmp_path)
    manifest = (tmp_path / "manifest.json").read_bytes()
    assert hashlib.sha256(manifest).hexdigest() == digest
    files = json.loads(manifest)["files"]
    assert set(files) == {"report-weekly.html", "report-weekly.pdf", "report-weekly.xlsx"}
    for name, sha in files.items():
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == sha
    pdf = tmp_path / "report-weekly.pdf"
    text = flat(subprocess.run([pdftotext, str(pdf), "-"], capture_output=True, text=True, check=True).stdout)
    for words in ("گزارش دوره‌ای به کمیته", "Committee report", "Overdue actions by owner", "Sara Ahmadi",
                  "علی رضایی", "مودم عوض شد", "Counties, worst first", "Monitor blind time", "EYV-002"):
        assert words in text, words
    assert "۱۴۰۴/۱۲/۰۱" in text and "2026-02-20" in text, "dates in both calendars"
    subprocess.run([pdftoppm, "-png", "-r", "50", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")],
                   check=True, capture_output=True)
    png = next(tmp_path.glob("page*.png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000
    wb = openpyxl.load_workbook(tmp_path / "report-weekly.xlsx")
    assert len(wb.worksheets) == 6
    assert all(ws.sheet_view.rightToLeft for ws in wb.worksheets)
    overdue = wb["تأخیری Overdue"]
    assert [c.value for c in overdue[2]][:3] == ["Sara Ahmadi", "A2", "EYV-002"]


def test_audit_export_sheets_are_right_to_left(run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["audit", "export", "--config", str(run.config_path), "--data-dir", str(run.data_dir),
                 "--from", "2026-02-20", "--to", "2026-02-21", "-o", str(tmp_path / "bundle")])
    capsys.readouterr()
    assert code == 0
    wb = openpyxl.load_workbook(tmp_path / "bundle" / "readiness.xlsx")
    assert wb.worksheets and all(ws.sheet_view.rightToLeft for ws in wb.worksheets)


def test_audit_bundle_with_the_committee_report_and_owners(run: Run, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """`audit export --with-report`: the committee's PDF for the bundle's period is listed in the signed manifest
    and checked by verify (one changed byte is named); report.html and readiness.xlsx name each site's owner and
    list the period's actions with their owners, results and who is overdue."""
    require_tool("chromium")
    pdftotext = require_tool("pdftotext")
    from monitor.audit.signing import generate_keypair

    key, pub = tmp_path / "k.key", tmp_path / "k.pub"
    generate_keypair(key, pub)
    out = tmp_path / "bundle"
    code = main(["audit", "export", "--config", str(report_config(run, 2527)), "--data-dir", str(run.data_dir),
                 "--to", "2026-02-21", "--force", "--with-report", "--sign", str(key), "-o", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "committee-report.pdf" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert "committee-report.pdf" in manifest["files"] and manifest["committee_report"]["scope"] == "province"
    assert main(["audit", "verify", str(out), "--pubkey", str(pub)]) == 0
    assert "OK" in capsys.readouterr().out
    text = flat(subprocess.run([pdftotext, str(out / "committee-report.pdf"), "-"], capture_output=True, text=True,
                               check=True).stdout)
    for words in ("Committee report", "Overdue actions by owner", "Sara Ahmadi", "مودم عوض شد",
                  "the audit bundle's period"):
        assert words in text, words

    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count("Ilam ICT") >= 2, "Ilam's sites name the county's owner"
    actions = html[html.index('id="actions"'):]
    for words in ("A1", "علی رضایی", "مودم عوض شد", "A2", "Sara Ahmadi", "overdue", "county:Mehran", "Mehran ICT"):
        assert words in actions, words
    wb = openpyxl.load_workbook(out / "readiness.xlsx")
    header = [c.value for c in wb["Ilam"][1]]
    owners = {row[header.index("مسئول / Owner")] for row in wb["Ilam"].iter_rows(min_row=2, values_only=True)}
    assert owners == {"Ilam ICT"}
    rows = {r[0]: r for r in wb["اقدام‌ها Actions"].iter_rows(min_row=2, values_only=True)}
    assert rows["A1"][3] == "علی رضایی" and rows["A1"][6] == "done" and rows["A1"][10] == "مودم عوض شد"
    assert rows["A2"][3] == "Sara Ahmadi" and rows["A2"][7] == "yes"
    assert all(ws.sheet_view.rightToLeft for ws in wb.worksheets)

    pdf = out / "committee-report.pdf"
    data = bytearray(pdf.read_bytes())
    data[len(data) // 2] ^= 0x01
    pdf.write_bytes(bytes(data))
    assert main(["audit", "verify", str(out), "--pubkey", str(pub)]) == 1
    assert "FAIL committee-report.pdf: SHA-256" in capsys.readouterr().out


class Inbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))  # type: ignore[arg-type]
        return "250 OK"


def _smtp(inbox: Inbox, port: int, **kwargs: Any) -> Any:
    from aiosmtpd.controller import Controller

    controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return controller


def test_scheduled_report_is_mailed_and_recorded(run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                 ) -> None:
    """The scheduled job (APScheduler, programme timezone) writes the report to the data dir, records its manifest
    hash in the store, and a real SMTP server receives it with its three attachments, with login."""
    require_tool("chromium")
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def auth(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"reports", b"s3cret")
        return AuthResult(success=ok)

    port = free_port()
    inbox = Inbox()
    controller = _smtp(inbox, port, authenticator=auth, auth_require_tls=False)
    path = report_config(run, port)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["smtp"].update(username="reports", password_env="READINESS_TEST_SMTP_PASSWORD")
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    config = load_config(path)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("READINESS_TEST_SMTP_PASSWORD", "s3cret")
            store = EventStore(run.data_dir)
            store.open()
            try:
                asyncio.run(_fire_scheduled(config, str(run.data_dir), store, lambda: bool(inbox.messages)))
            finally:
                store.close()
    finally:
        controller.stop()
    assert len(inbox.messages) == 1
    msg = inbox.messages[0]
    assert inbox.envelopes[0].rcpt_tos == ["committee@ilam.example"]
    assert "committee report" in msg["Subject"] and "گزارش کمیته" in msg["Subject"]
    names = sorted(part.get_filename() for part in msg.iter_attachments())
    assert names == ["report-weekly.html", "report-weekly.pdf", "report-weekly.xlsx"]
    pdf = next(p for p in msg.iter_attachments() if p.get_filename().endswith(".pdf")).get_content()
    assert pdf[:5] == b"%PDF-"
    (written,) = (run.data_dir / "reports" / "weekly").iterdir()
    digest = hashlib.sha256((written / "manifest.json").read_bytes()).hexdigest()
    assert digest in msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    rows = [e for e in EventStore(run.data_dir).events(kinds=("report",))]
    assert rows[-1].entity == "report:weekly" and rows[-1].new == digest
    assert committee.previous_report(run.data_dir, "weekly") == rows[-1].payload["period_end"]
    assert main(["audit", "verify", "--data-dir", str(run.data_dir)]) == 0
    capsys.readouterr()


def test_a_scheduled_report_that_cannot_be_mailed_is_logged_and_counted(
        run: Run, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The mail server refuses the connection: the report is written and on the record, the job logs why it was
    not mailed, counts readiness_task_failures_total{task="report"}, and returns (the service goes on)."""
    import shutil

    from monitor.cli.reports import report_jobs
    from monitor.runtime import tasks

    data_dir = tmp_path / "data"
    shutil.copytree(run.data_dir, data_dir)  # the module's store stays as it is for the other tests
    port = free_port()  # nothing listens there
    path = report_config(run, port, reports=[{"name": "daily", "schedule": "0 7 * * *", "formats": ["html"],
                                              "recipients": ["committee@ilam.example"]}])
    config = load_config(path)
    before = tasks.failures()["report"]
    with EventStore(data_dir) as store:
        (_, job), = report_jobs(str(data_dir), store)(config).values()
        asyncio.run(job())
    assert tasks.failures()["report"] == before + 1
    (written,) = (data_dir / "reports" / "daily").iterdir()
    assert (written / "report-daily.html").is_file()
    assert committee.previous_report(data_dir, "daily") is not None
    assert any("report daily failed" in r.getMessage() and f"127.0.0.1:{port}" in r.exc_text for r in caplog.records
               if r.exc_text), [r.getMessage() for r in caplog.records]


async def _fire_scheduled(config: Config, data_dir: str, store: EventStore, done: Callable[[], bool]) -> None:
    scheduler = schedule_reports(config, data_dir, store)
    assert scheduler is not None
    try:
        job = scheduler.get_job("report:weekly")
        assert job.next_run_time.weekday() == 5 and job.next_run_time.hour == 8  # Saturday 08:00, Tehran
        assert str(job.next_run_time.tzinfo) == "Asia/Tehran"
        job.modify(next_run_time=datetime.now(job.next_run_time.tzinfo))  # its time has come
        for _ in range(1200):  # Chromium on a loaded machine: up to 5 minutes
            if done():
                break
            await asyncio.sleep(0.25)
    finally:
        scheduler.shutdown(wait=False)


def test_cli_report_build(run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`readiness report build -o DIR` writes the files; the second report of a name covers the time since the
    first (its ready share then is the first's end)."""
    require_tool("chromium")
    path = report_config(run, 2526)
    code = main(["report", "build", "--config", str(path), "-o", str(tmp_path / "adhoc")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "manifest sha256" in out and (tmp_path / "adhoc" / "report-adhoc.pdf").is_file()
    code = main(["report", "build", "--config", str(path), "--name", "nope", "-o", str(tmp_path / "x")])
    assert code == 1 and "no report 'nope'" in capsys.readouterr().err
    config = load_config(path)
    first = committee.build(config, run.data_dir, None, now=T0 + 10 * HOUR)
    with EventStore(run.data_dir) as store:
        committee.record(store, first, committee.write(first, tmp_path / "first", ("html",)), tmp_path / "first")
    second = committee.build(config, run.data_dir, None, now=END)
    assert second.previous == first.period.end and second.period.start == first.period.end
    assert second.share_then is not None
