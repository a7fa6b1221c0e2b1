"""Sending a report by e-mail: SMTP, STARTTLS and login when the config asks for them.

Under STARTTLS the server's certificate is verified (its chain against the system's CAs or ``smtp.ca_file``,
and its name against ``smtp.host``, RFC 3207 and RFC 6125), so the login is never handed to an impostor.
"""

from __future__ import annotations

import mimetypes
import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path

from monitor.config.reports import Smtp
from monitor.errors import ReadinessError


class MailError(ReadinessError):
    """The report could not be handed to the SMTP server."""


def send(smtp: Smtp, recipients: tuple[str, ...], subject: str, body: str, files: list[Path]) -> None:
    """Mail ``files`` as attachments to ``recipients`` through ``smtp``; MailError when the server refuses."""
    msg = EmailMessage()
    msg["From"] = smtp.sender
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = subject
    msg.set_content(body)
    for path in files:
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        main, sub = kind.split("/", 1)
        msg.add_attachment(path.read_bytes(), maintype=main, subtype=sub, filename=path.name)
    try:
        password = smtp.password()
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds) as client:
            if smtp.starttls:
                # Verified like any TLS client: the chain (system CAs, or smtp.ca_file) and the host name.
                client.starttls(context=ssl.create_default_context(cafile=smtp.ca_file))
            if smtp.username is not None and password is not None:
                client.login(smtp.username, password)
            client.send_message(msg)
    except (OSError, smtplib.SMTPException, ValueError) as exc:
        raise MailError(f"cannot mail the report through {smtp.host}:{smtp.port}: {exc}") from exc
