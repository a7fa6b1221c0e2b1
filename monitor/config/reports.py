"""The committee's regular reports and accountability settings of the config (``reports:``, ``smtp:``,
``actions:``): strict models, checked when the config loads."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, field_validator, model_validator

from monitor.core.model import Ident, Strict

FORMATS = ("html", "pdf", "xlsx")
Format = Literal["html", "pdf", "xlsx"]


def _loopback(host: str) -> bool:
    """Whether ``host`` is this machine (a relay on loopback may take a login without TLS)."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Smtp(Strict):
    """Where reports are mailed from. The password is never in the file: ``password_env`` names the variable."""

    host: str = "127.0.0.1"
    port: int = Field(25, ge=1, le=65535)
    starttls: bool = False
    username: str | None = None
    password_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    sender: str = Field("readiness@localhost", min_length=3)
    timeout_seconds: float = Field(30.0, gt=0, le=3600)
    # The server's certificate is always verified (STARTTLS): against the system's CAs, or against this bundle
    # (PEM; a relative path is read from the config file's directory), e.g. the province's own CA.
    ca_file: str | None = None

    @model_validator(mode="after")
    def _login(self) -> Smtp:
        if (self.username is None) != (self.password_env is None):
            raise ValueError("give username and password_env together (or neither)")
        if self.ca_file is not None and not self.starttls:
            raise ValueError("ca_file verifies the server's certificate under STARTTLS: set starttls: true")
        if self.username is not None and not self.starttls and not _loopback(self.host):
            raise ValueError(f"a login to {self.host} without STARTTLS would send the password in clear: "
                             "set starttls: true")
        return self

    def password(self) -> str | None:
        """Return the password from the environment; None without login; ValueError if the variable is unset."""
        if self.password_env is None:
            return None
        value = os.environ.get(self.password_env)
        if value is None:
            raise ValueError(f"SMTP password variable {self.password_env} is not set")
        return value


class ReportSpec(Strict):
    """One regular report: a cron schedule in the programme's timezone, formats and recipients."""

    name: Ident
    schedule: str = Field(description="cron: minute hour day month weekday, e.g. '0 8 * * sat'")
    formats: tuple[Format, ...] = ("html", "pdf", "xlsx")
    recipients: tuple[str, ...] = ()
    title: str | None = None

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError as exc:
            raise ValueError(f"not a cron schedule ({exc})") from None
        return value

    @field_validator("formats")
    @classmethod
    def _formats(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError(f"give at least one of {', '.join(FORMATS)}")
        return tuple(dict.fromkeys(value))

    @field_validator("recipients")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            if "@" not in address or any(c.isspace() for c in address):
                raise ValueError(f"{address!r} is not an e-mail address")
        return value


class ActionsPolicy(Strict):
    """Accountability: when a not-ready site with nobody on it counts as unowned."""

    unowned_after_seconds: float = Field(3600.0, ge=0, description="not ready this long with no open action")
