"""The domain: sites, links, terminals (and their HTTP checks), SNMP auths and the readiness policy (pydantic, strict,
frozen)."""

from __future__ import annotations

import ipaddress
import re
import socket
from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MEDIA = ("fiber", "microwave", "lte", "vsat", "adsl", "copper", "radio")
# Bounds that keep every duration and count the policy sets within what the code can compute with
# (a deque's maxlen, math.floor of a time over a resolution, a datetime): finite, and sane.
MAX_POLICY_SECONDS = 366 * 86_400.0
MAX_INDEX = 2**31 - 1  # SNMP InterfaceIndex and PhysicalIndex are Integer32 (RFC 2863, RFC 6933)


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors and nothing changes after loading."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, allow_inf_nan=False)


def _ident(value: str) -> str:
    if not ID_RE.match(value):
        raise ValueError("must be 1-64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit")
    return value


def _address(value: str) -> str:
    try:
        socket.inet_pton(socket.AF_INET, value)
        return value  # a dotted quad inet_pton accepts is already canonical; ipaddress is 20x slower
    except (OSError, ValueError):
        pass
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from None


Ident = Annotated[str, AfterValidator(_ident)]
Address = Annotated[str, AfterValidator(_address)]
Medium = Literal["fiber", "microwave", "lte", "vsat", "adsl", "copper", "radio"]


class Location(Strict):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class SnmpInterface(Strict):
    """Where SNMP reads the interface that carries a link."""

    device: Address
    port: int = Field(161, ge=1, le=65535)
    auth: Ident
    if_index: int | None = Field(None, ge=1, le=MAX_INDEX)
    if_name: str | None = None
    rx_sensor: int | None = Field(None, ge=1, le=MAX_INDEX,
                                  description="entPhysicalIndex of the receive power sensor")
    tx_sensor: int | None = Field(None, ge=1, le=MAX_INDEX,
                                  description="entPhysicalIndex of the transmit power sensor")
    neighbours: bool = Field(False, description="walk this device's ARP/neighbour table for terminals")

    @model_validator(mode="after")
    def _one_interface(self) -> SnmpInterface:
        if (self.if_index is None) == (self.if_name is None):
            raise ValueError("give exactly one of if_index or if_name")
        return self


class Link(Strict):
    role: Literal["primary", "backup"]
    medium: Medium
    address: Address
    source: str | None = Field(None, description="address or interface to send probes from")
    snmp: SnmpInterface | None = None


_FORBIDDEN_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


class HttpCheck(Strict):
    """An HTTP(S) check of a terminal's service (probes/http.py): it decides whether the terminal is up."""

    url: str = Field("/", min_length=1, description="a full URL, or a path on https://ADDRESS[:port]")
    method: Literal["GET", "HEAD", "POST", "OPTIONS"] = "GET"
    expect_status: tuple[Annotated[int, Field(ge=100, le=599)], ...] = Field((), description="empty: any 2xx")
    expect_body: str | None = Field(None, description="a regular expression the body must contain")
    headers: dict[str, str] = Field(default_factory=dict)
    ca_file: str | None = Field(None, description="CA bundle to verify with instead of the system's (a relative "
                                                  "path is read from the directory of the file that declares it)")
    tls_verify: bool = Field(True, description="false skips chain and name checks, never the expiry date")
    follow_redirects: bool = True
    auth: Ident | None = Field(None, description="an HTTP auth declared under 'auths:'")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value.startswith("/"):
            return value
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in ("http", "https") or not rest or rest.startswith("/"):
            raise ValueError("must be a path (/health) or an http:// or https:// URL with a host")
        if "@" in rest.split("/", 1)[0]:
            raise ValueError("must not carry credentials: declare them under 'auths:' and name one in 'auth'")
        return value

    @field_validator("expect_body")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if name.lower() in _FORBIDDEN_HEADERS:
                raise ValueError(f"header {name!r} may carry a secret: declare it under 'auths:' and name it in "
                                 "'auth'")
        return value


class Terminal(Strict):
    id: Ident
    address: Address
    port: int | None = Field(None, ge=1, le=65535)
    http: HttpCheck | None = Field(None, description="check the service over HTTP(S) instead of a TCP connect")


class Site(Strict):
    id: Ident
    name: str = Field(min_length=1, max_length=200)
    county: str = Field(min_length=1, max_length=100)
    area: Literal["urban", "rural"]
    location: Location | None = None
    upstream: Ident | None = None
    kind: Literal["polling", "node"] = "polling"
    links: tuple[Link, ...] = ()
    terminals: tuple[Terminal, ...] = ()
    owner: str | None = Field(None, min_length=1, max_length=200, description="person or team answerable for it")
    contact: str | None = Field(None, min_length=1, max_length=200, description="how to reach the owner")

    @model_validator(mode="after")
    def _contact_needs_owner(self) -> Site:
        if self.contact is not None and self.owner is None:
            raise ValueError("contact given without owner")
        return self

    @field_validator("links")
    @classmethod
    def _roles(cls, links: tuple[Link, ...]) -> tuple[Link, ...]:
        roles = [link.role for link in links]
        for role in ("primary", "backup"):
            if roles.count(role) > 1:
                raise ValueError(f"more than one {role} link")
        if links and "primary" not in roles:
            raise ValueError("a site with links needs a primary link")
        by_role = {link.role: link for link in links}
        if "backup" in by_role and by_role["backup"].address == by_role["primary"].address:
            raise ValueError(
                f"backup address {by_role['backup'].address} is the primary's: the backup would prove nothing"
            )
        return links

    def link(self, role: str) -> Link | None:
        """Return the link with ``role``, if the site has one."""
        return next((link for link in self.links if link.role == role), None)


class Witness(Strict):
    """An address the monitor must reach to trust its own view (its default gateway, a core router).

    Probed by ICMP every cycle as a target of its own (``monitor/witness/<label>``). Written as a bare
    address or as ``{address, name}``.
    """

    address: Address
    name: Ident | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, value: object) -> object:
        return {"address": value} if isinstance(value, str) else value

    @property
    def label(self) -> str:
        """Return what names the witness in keys, metrics and reasons: its name, else its address."""
        return self.name or self.address


class MediumPolicy(Strict):
    """What a healthy link of one medium looks like."""

    loss_max_ratio: float = Field(0.02, ge=0, le=1)
    rtt_max_seconds: float = Field(0.1, gt=0)
    jitter_max_seconds: float = Field(0.03, ge=0)
    rx_power_min_dbm: float | None = Field(None, ge=-60, le=20, description="below: link degraded")
    rx_power_warn_dbm: float | None = Field(None, ge=-60, le=20, description="below: warning band")
    errors_max_per_second: float = Field(1.0, ge=0)

    @model_validator(mode="after")
    def _bands(self) -> MediumPolicy:
        if (
            self.rx_power_min_dbm is not None
            and self.rx_power_warn_dbm is not None
            and self.rx_power_warn_dbm < self.rx_power_min_dbm
        ):
            raise ValueError("rx_power_warn_dbm must not be below rx_power_min_dbm")
        return self


def _default_media() -> dict[Medium, MediumPolicy]:
    return {
        "fiber": MediumPolicy(loss_max_ratio=0.01, rtt_max_seconds=0.05, jitter_max_seconds=0.01,
                              rx_power_min_dbm=-25, rx_power_warn_dbm=-23),
        "microwave": MediumPolicy(loss_max_ratio=0.02, rtt_max_seconds=0.08, jitter_max_seconds=0.02),
        "lte": MediumPolicy(loss_max_ratio=0.05, rtt_max_seconds=0.15, jitter_max_seconds=0.05),
        "vsat": MediumPolicy(loss_max_ratio=0.05, rtt_max_seconds=0.9, jitter_max_seconds=0.15),
        "adsl": MediumPolicy(loss_max_ratio=0.03, rtt_max_seconds=0.1, jitter_max_seconds=0.03),
        "copper": MediumPolicy(loss_max_ratio=0.02, rtt_max_seconds=0.05, jitter_max_seconds=0.02),
        "radio": MediumPolicy(loss_max_ratio=0.05, rtt_max_seconds=0.15, jitter_max_seconds=0.05),
    }


class Policy(Strict):
    """What a site needs to be ready."""

    media: dict[Medium, MediumPolicy] = Field(default_factory=_default_media)
    require_backup: bool = True
    terminals_min_ratio: float = Field(1.0, ge=0, le=1, description="share of terminals that must be up")
    stale_after_intervals: float = Field(3.0, ge=1, le=1000,
                                         description="data older than this many intervals: unknown")
    sustain_seconds: float = Field(0.0, ge=0, le=MAX_POLICY_SECONDS,
                                   description="healthy this long before ready (history)")
    sustain_availability_ratio: float = Field(0.99, ge=0, le=1)
    flap_max_changes: int = Field(4, ge=1, le=10_000,
                                  description="more state changes than this within the window: flapping")
    flap_window_seconds: float = Field(600.0, gt=0, le=MAX_POLICY_SECONDS)
    flap_hold_seconds: float = Field(600.0, ge=0, le=MAX_POLICY_SECONDS,
                                     description="stable this long before flapping ends")
    forecast_days: float = Field(14.0, gt=0, le=3660, description="trend fitted over this many trailing days")
    forecast_resolution_seconds: float = Field(3600.0, ge=1, le=MAX_POLICY_SECONDS,
                                               description="one share sample per this long")
    forecast_min_history_days: float = Field(3.0, ge=0, le=3660, description="no forecast from less history "
                                             "than this (one sample per resolution over it)")
    forecast_target_ratio: float = Field(1.0, gt=0, le=1, description="ready share the deadline asks for: "
                                                                     "below it at the deadline, at risk")
    certificate_margin_days: float = Field(14.0, ge=0, le=3660, description="a certificate must outlive the "
                                           "deadline by this much; inside it, a reason")

    @field_validator("media")
    @classmethod
    def _all_media(cls, media: dict[Medium, MediumPolicy]) -> dict[Medium, MediumPolicy]:
        return {**_default_media(), **media}


class Programme(Strict):
    name: str = "Election readiness"
    deadline: datetime
    timezone: str = "Asia/Tehran"
    calendar: Literal["jalali", "gregorian"] = "jalali"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _aware(self) -> Programme:
        if self.deadline.tzinfo is None:
            object.__setattr__(self, "deadline", self.deadline.replace(tzinfo=ZoneInfo(self.timezone)))
        return self


class CountyOwner(Strict):
    """Who answers for a county's sites that name no owner of their own."""

    owner: str = Field(min_length=1, max_length=200)
    contact: str | None = Field(None, min_length=1, max_length=200)


class Listen(Strict):
    host: str = "127.0.0.1"
    port: int = Field(9108, ge=0, le=65535)
    web_config: str | None = None  # exporter-toolkit web config (TLS, Basic auth, admins); --web.config.file wins
