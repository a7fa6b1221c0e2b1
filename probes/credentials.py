"""Credentials the probes accept (SNMP, HTTP), as the config declares them under ``auths:``.

Plain pydantic with self-redacting secrets (``SecretStr``) and no protocol library, so the config can
validate them without loading pysnmp. They reach a probe inside its targets, never in logs or reasons.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, SecretStr, Tag, model_validator


class SnmpAuth(BaseModel):
    """SNMP credentials, declared once and referenced by name. Secrets redact themselves."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    version: Literal["2c", "3"] = "2c"
    community: SecretStr | None = None
    community_env: str | None = None
    user: str | None = None
    auth_protocol: Literal["MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"] | None = None
    auth_key: SecretStr | None = None
    auth_key_env: str | None = None
    priv_protocol: Literal["DES", "AES", "AES192", "AES256"] | None = None
    priv_key: SecretStr | None = None
    priv_key_env: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> SnmpAuth:
        if self.version == "2c" and not (self.community or self.community_env):
            raise ValueError("v2c needs community or community_env")
        if self.version == "3":
            if not self.user:
                raise ValueError("v3 needs user")
            if self.priv_protocol and not self.auth_protocol:
                raise ValueError("v3 privacy (priv_protocol) needs authentication (auth_protocol)")
            if self.auth_protocol and not (self.auth_key or self.auth_key_env):
                raise ValueError("auth_protocol needs auth_key or auth_key_env")
            if self.priv_protocol and not (self.priv_key or self.priv_key_env):
                raise ValueError("priv_protocol needs priv_key or priv_key_env")
        return self


class HttpAuth(BaseModel):
    """HTTP credentials (basic or bearer), declared once under ``auths:`` and named by a terminal's check.

    Secrets redact themselves; prefer ``password_env`` / ``token_env`` so the config file holds none.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    scheme: Literal["basic", "bearer"]
    user: str | None = None
    password: SecretStr | None = None
    password_env: str | None = None
    token: SecretStr | None = None
    token_env: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> HttpAuth:
        if self.scheme == "basic":
            if not self.user:
                raise ValueError("basic needs user")
            if not (self.password or self.password_env):
                raise ValueError("basic needs password or password_env")
            if self.token or self.token_env:
                raise ValueError("basic takes no token: use scheme bearer")
        else:
            if not (self.token or self.token_env):
                raise ValueError("bearer needs token or token_env")
            if self.user or self.password or self.password_env:
                raise ValueError("bearer takes no user or password: use scheme basic")
        return self


def _auth_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "[http]" if "scheme" in value else "[snmp]"
    return "[http]" if isinstance(value, HttpAuth) else "[snmp]"


# What ``auths:`` holds: an HTTP auth names its ``scheme``; anything else is read as an SNMP auth. The tags are
# bracketed like pydantic's own location markers, which the config loader leaves out of a problem's place.
Auth = Annotated[Annotated[SnmpAuth, Tag("[snmp]")] | Annotated[HttpAuth, Tag("[http]")], Discriminator(_auth_kind)]
