"""Mailing a report through a real SMTP server (aiosmtpd on 127.0.0.1) that requires STARTTLS and AUTH LOGIN:
the client verifies the server's certificate against ``smtp.ca_file``, logs in only over TLS, and says why when
it cannot."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.audit.mail import MailError, send
from monitor.config.reports import Smtp
from monitor.errors import ConfigError
from tests.helpers import free_port
from tests.monitor.fixtures import site, write_config
from tests.smtp import PASSWORD, USER, StartTlsServer

PASSWORD_ENV = "READINESS_TEST_SMTP_PASSWORD"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[StartTlsServer]:
    server = StartTlsServer(tmp_path, "127.0.0.1", free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _smtp(server: StartTlsServer, **kwargs: object) -> Smtp:
    doc = {"host": server.host, "port": server.port, "starttls": True, "username": USER, "password_env": PASSWORD_ENV,
           "sender": "readiness@ilam.example", "timeout_seconds": 20, **kwargs}
    return Smtp.model_validate(doc)


def _attachment(tmp_path: Path) -> Path:
    path = tmp_path / "report-weekly.html"
    path.write_text("<p>گزارش</p>", encoding="utf-8")
    return path


def test_starttls_login_verified_against_the_ca_file(server: StartTlsServer, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """STARTTLS, the server's certificate verified against ca_file, then AUTH LOGIN over TLS: the mail arrives."""
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    send(_smtp(server, ca_file=str(server.ca_file)), ("committee@ilam.example",), "weekly", "body",
         [_attachment(tmp_path)])
    (msg,) = server.inbox.received()
    assert server.inbox.logins == [("LOGIN", USER, True)]
    assert server.inbox.envelopes[0].rcpt_tos == ["committee@ilam.example"]
    assert [p.get_filename() for p in msg.iter_attachments()] == ["report-weekly.html"]


def test_an_untrusted_certificate_is_refused_before_the_login(server: StartTlsServer, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the test CA (the system's CAs only) the handshake fails: no login is attempted, nothing is sent."""
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    with pytest.raises(MailError) as err:
        send(_smtp(server), ("committee@ilam.example",), "weekly", "body", [_attachment(tmp_path)])
    assert isinstance(err.value.__cause__, ssl.SSLCertVerificationError), repr(err.value.__cause__)
    assert f"{server.host}:{server.port}" in str(err.value) and PASSWORD not in str(err.value)
    assert server.inbox.logins == [] and server.inbox.received() == []


def test_a_certificate_for_another_name_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CA is trusted but the certificate names another host: refused (RFC 6125), nothing sent."""
    server = StartTlsServer(tmp_path, "127.0.0.1", free_port())
    server.start()
    try:
        monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
        with pytest.raises(MailError) as err:
            send(_smtp(server, host="localhost", ca_file=str(server.ca_file)), ("c@ilam.example",), "s", "b", [])
        assert isinstance(err.value.__cause__, ssl.SSLCertVerificationError), repr(err.value.__cause__)
        assert server.inbox.received() == []
    finally:
        server.stop()


def test_a_wrong_password_is_refused(server: StartTlsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server answers 535 to a wrong login: a MailError that says so, without the password in it."""
    monkeypatch.setenv(PASSWORD_ENV, "wrong-password")
    with pytest.raises(MailError) as err:
        send(_smtp(server, ca_file=str(server.ca_file)), ("committee@ilam.example",), "weekly", "body", [])
    assert "535" in str(err.value) and "wrong-password" not in str(err.value)
    assert server.inbox.logins == [] and server.inbox.received() == []


def test_without_starttls_the_server_refuses_and_no_password_is_sent(server: StartTlsServer, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A config that forgets STARTTLS: the server requires it, the client never offers the password in clear."""
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    with pytest.raises(MailError) as err:
        send(_smtp(server, starttls=False), ("committee@ilam.example",), "weekly", "body", [])
    assert "cannot mail the report" in str(err.value) and PASSWORD not in str(err.value)
    assert server.inbox.logins == [] and server.inbox.received() == []


def test_config_reads_ca_file_beside_it_and_checks_it(tmp_path: Path) -> None:
    """A relative smtp.ca_file is read from the config's directory; one that does not load is an error naming
    smtp.ca_file; ca_file without STARTTLS is refused."""
    from monitor.config.loader import load_config
    from monitor.demo.tls import TestCA

    TestCA(tmp_path / "ca", ca_file=tmp_path / "mail-ca.pem")
    smtp = {"host": "127.0.0.1", "port": 2525, "starttls": True, "ca_file": "mail-ca.pem"}
    config = load_config(write_config(tmp_path, [site("S1")], smtp=smtp))
    assert config.smtp is not None and config.smtp.ca_file == str(tmp_path / "mail-ca.pem")
    (tmp_path / "bad.pem").write_text("not a certificate\n")
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path, [site("S1")], smtp={**smtp, "ca_file": "bad.pem"}))
    assert "smtp.ca_file" in str(err.value) and "bad.pem" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path, [site("S1")], smtp={**smtp, "starttls": False}))
    assert "starttls" in str(err.value)


@pytest.mark.parametrize(("host", "allowed"), [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                                ("mail.ilam.example", False), ("10.0.0.25", False)])
def test_a_login_without_starttls_only_on_loopback(host: str, allowed: bool) -> None:
    """A password goes over the wire in clear only to a relay on this machine; elsewhere STARTTLS is required."""
    doc = {"host": host, "port": 25, "username": USER, "password_env": PASSWORD_ENV}
    if allowed:
        assert Smtp.model_validate(doc).starttls is False
        return
    with pytest.raises(ValueError, match="without STARTTLS would send the password in clear"):
        Smtp.model_validate(doc)
    assert Smtp.model_validate({**doc, "starttls": True}).username == USER
