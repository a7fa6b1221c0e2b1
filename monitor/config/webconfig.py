"""The listener's web configuration file, in the Prometheus exporter-toolkit format, plus ``admins``.

```yaml
tls_server_config: {cert_file: board.pem, key_file: board.key}   # optional: serve HTTPS
basic_auth_users: {viewer: $2b$12$..., chair: $2b$12$...}         # bcrypt hashes, never passwords
admins: [chair]                                                  # who may POST (/-/reload, actions)
```

Validated strictly: unknown keys, a hash that is not bcrypt, an admin who is not a user, a certificate or key
that cannot be read or does not load are errors naming the file and the field. Relative paths are read from
the web configuration file's directory, as the exporter toolkit does. Hashes are kept as secrets: they never
appear in a repr, a log line or an error message.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from monitor.errors import ConfigError, Problem

BCRYPT = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")
TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# Python's ssl verifies every client certificate it asks for, so the two toolkit modes that accept an
# unverified certificate cannot be honoured; they are refused rather than quietly made stricter or looser.
CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
               "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
ClientAuth = Literal["NoClientCert", "RequestClientCert", "RequireAnyClientCert", "VerifyClientCertIfGiven",
                     "RequireAndVerifyClientCert"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class TlsServerConfig(_Strict):
    cert_file: str = Field(min_length=1)
    key_file: str = Field(min_length=1)
    client_auth_type: ClientAuth = "NoClientCert"
    client_ca_file: str | None = None
    min_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] = "TLS12"
    max_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] | None = None

    @field_validator("client_auth_type")
    @classmethod
    def _supported(cls, value: str) -> str:
        if value not in CLIENT_AUTH:
            raise ValueError(f"{value} is not supported (Python's TLS verifies every client certificate it asks "
                             f"for): use one of {', '.join(CLIENT_AUTH)}")
        return value

    @model_validator(mode="after")
    def _ca_when_verifying(self) -> TlsServerConfig:
        if self.client_auth_type != "NoClientCert" and not self.client_ca_file:
            raise ValueError(f"client_auth_type {self.client_auth_type} needs client_ca_file")
        return self


class WebConfig(_Strict):
    tls_server_config: TlsServerConfig | None = None
    basic_auth_users: dict[str, SecretStr] = Field(default_factory=dict)
    admins: list[str] = Field(default_factory=list)

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt(cls, users: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, hashed in users.items():
            if not name or ":" in name:
                raise ValueError(f"user name {name!r} must be non-empty and without ':'")
            if not BCRYPT.match(hashed.get_secret_value()):
                # The value is not echoed: a password pasted here by mistake must not reach the terminal.
                raise ValueError(f"the value for user {name!r} is not a bcrypt hash ($2b$NN$ and 53 characters); "
                                 "see the README, Access control, for how to make one")
        return users

    @model_validator(mode="after")
    def _admins_are_users(self) -> WebConfig:
        unknown = [a for a in self.admins if a not in self.basic_auth_users]
        if unknown:
            raise ValueError(f"admins not in basic_auth_users: {', '.join(unknown)}")
        return self

    @property
    def authenticates(self) -> bool:
        """Whether every client must prove who it is: Basic auth users, or a verified client certificate."""
        tls = self.tls_server_config
        return bool(self.basic_auth_users) or (tls is not None and tls.client_auth_type == "RequireAndVerifyClientCert")


class LoadedWebConfig:
    """A validated web config with its TLS context built (None when it serves plain HTTP)."""

    def __init__(self, path: Path, config: WebConfig, ssl_context: ssl.SSLContext | None) -> None:
        self.path = path
        self.config = config
        self.ssl_context = ssl_context

    @property
    def users(self) -> dict[str, bytes]:
        return {name: h.get_secret_value().encode() for name, h in self.config.basic_auth_users.items()}

    @property
    def admins(self) -> frozenset[str]:
        return frozenset(self.config.admins)

    def __repr__(self) -> str:
        return f"LoadedWebConfig({str(self.path)!r}, users={sorted(self.config.basic_auth_users)}, " \
               f"tls={self.ssl_context is not None})"


def _field(loc: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))


def _readable(path: Path, file: str, field: str) -> Problem | None:
    try:
        with path.open("rb"):
            return None
    except OSError as exc:
        return Problem(file, f"cannot read {path}: {exc.strerror or exc}", field=field)


def _tls_context(tls: TlsServerConfig, base: Path, file: str) -> ssl.SSLContext:
    paths = {name: base / value for name in ("cert_file", "key_file", "client_ca_file")
             if (value := getattr(tls, name))}
    problems = [p for name, path in paths.items() if (p := _readable(path, file, f"tls_server_config.{name}"))]
    if problems:
        raise ConfigError(problems)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = TLS_VERSIONS[tls.min_version]
    if tls.max_version:
        ctx.maximum_version = TLS_VERSIONS[tls.max_version]
    try:
        ctx.load_cert_chain(paths["cert_file"], paths["key_file"])
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError([Problem(file, f"{paths['cert_file']} and {paths['key_file']} do not load as a "
                                         f"certificate and its private key: {exc}",
                                   field="tls_server_config.cert_file")]) from None
    if "client_ca_file" in paths:
        try:
            ctx.load_verify_locations(cafile=paths["client_ca_file"])
        except ssl.SSLError as exc:
            raise ConfigError([Problem(file, f"{paths['client_ca_file']} does not load as CA certificates: {exc}",
                                       field="tls_server_config.client_ca_file")]) from None
    ctx.verify_mode = CLIENT_AUTH[tls.client_auth_type]
    return ctx


def load_web_config(path: str | Path) -> LoadedWebConfig:
    """Read and check a web configuration file; ConfigError names the file and the field of each problem."""
    path = Path(path)
    file = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([Problem(file, f"cannot read the web config: {exc.strerror or exc}")]) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(file, f"not valid YAML: {exc}")]) from None
    try:
        config = WebConfig.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        # input values are left out of the message: they may be hashes or passwords.
        raise ConfigError([Problem(file, err["msg"].removeprefix("Value error, "), field=_field(err["loc"]) or None)
                           for err in exc.errors(include_input=False)]) from None
    ctx = _tls_context(config.tls_server_config, path.parent, file) if config.tls_server_config else None
    return LoadedWebConfig(path, config, ctx)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``); names are not resolved."""
    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def listen_refusal(host: str, web: LoadedWebConfig | None, insecure: bool) -> str | None:
    """Why the service must not listen on ``host`` as configured, or None when it may."""
    if insecure or is_loopback(host) or (web is not None and web.config.authenticates):
        return None
    where = host or "every address"
    return (f"refusing to listen on {where}: it is not a loopback address and no authentication is configured, "
            "so anyone on that network could read the board and POST /-/reload and actions. Give "
            "--web.config.file FILE with basic_auth_users (see the README, Access control), or --web.insecure "
            "to serve it without authentication anyway")
