"""A real SMTP server for the report tests: aiosmtpd on 127.0.0.1 that requires STARTTLS and AUTH LOGIN.

Its certificate comes from a throw-away CA (monitor/demo/tls.py) written next to it, so a client that trusts
that CA (``smtp.ca_file``) can verify the server, and one that does not is refused at the handshake.
"""

from __future__ import annotations

import email
import email.policy
import threading
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from monitor.demo.tls import TestCA

USER, PASSWORD = "reports", "s3cret-over-tls"


class Inbox:
    """An aiosmtpd handler that keeps every message it receives, and who logged in to send it."""

    def __init__(self, user: str = USER, password: str = PASSWORD) -> None:
        self.user, self.password = user, password
        self.messages: list[EmailMessage] = []
        self.envelopes: list[Any] = []
        self.logins: list[tuple[str, str, bool]] = []  # (mechanism, user, over TLS)
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.envelopes.append(envelope)
            self.messages.append(email.message_from_bytes(envelope.content,  # type: ignore[arg-type]
                                                          policy=email.policy.default))
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (self.user.encode(),
                                                                                 self.password.encode())
        if ok:
            with self._lock:
                self.logins.append((mechanism, data.login.decode(), session.ssl is not None))
        return AuthResult(success=ok, handled=False)  # not handled: the server answers 235 or 535 itself

    def received(self) -> list[EmailMessage]:
        with self._lock:
            return list(self.messages)


class StartTlsServer:
    """aiosmtpd on ``host:port``: STARTTLS required before anything, then AUTH LOGIN (PLAIN is not offered)."""

    def __init__(self, directory: Path, host: str, port: int, user: str = USER, password: str = PASSWORD) -> None:
        self.ca = TestCA(directory / "smtp-tls", "readiness SMTP test CA")
        self.ca_file = self.ca.ca_file
        self.host, self.port = host, port
        self.inbox = Inbox(user, password)
        self.controller: Any = None

    def start(self) -> None:
        """Bind and serve on a thread of its own (call it inside a namespace to serve there)."""
        from aiosmtpd.controller import Controller

        issued = self.ca.issue("smtp", [self.host])
        self.controller = Controller(
            # A fixed name for its greeting: else aiosmtpd asks DNS (socket.getfqdn) on every connection, which in
            # a namespace without a resolver takes until the client gives up.
            self.inbox, hostname=self.host, port=self.port, server_hostname="smtp.readiness.test",
            tls_context=issued.server_context(),
            require_starttls=True, authenticator=self.inbox.authenticate, auth_required=True,
            auth_require_tls=True, auth_exclude_mechanism=["PLAIN"])
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None
