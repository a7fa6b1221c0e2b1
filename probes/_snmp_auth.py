"""SNMP credentials: the auths the targets carry, as pysnmp auth data.

Private to ``probes.snmp``. Every community and key read here joins the engine's secrets, so that
no reason it returns can carry one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr
from pysnmp.hlapi.v3arch.asyncio import (
    USM_AUTH_HMAC96_MD5,
    USM_AUTH_HMAC96_SHA,
    USM_AUTH_HMAC128_SHA224,
    USM_AUTH_HMAC192_SHA256,
    USM_AUTH_HMAC256_SHA384,
    USM_AUTH_HMAC384_SHA512,
    USM_PRIV_CBC56_DES,
    USM_PRIV_CFB128_AES,
    USM_PRIV_CFB192_AES,
    USM_PRIV_CFB256_AES,
    CommunityData,
    UsmUserData,
)

from probes._snmp_engine import _Failure, _Secrets
from probes.credentials import SnmpAuth

_AUTH_PROTOCOLS = {"MD5": USM_AUTH_HMAC96_MD5, "SHA": USM_AUTH_HMAC96_SHA, "SHA224": USM_AUTH_HMAC128_SHA224,
                   "SHA256": USM_AUTH_HMAC192_SHA256, "SHA384": USM_AUTH_HMAC256_SHA384,
                   "SHA512": USM_AUTH_HMAC384_SHA512}
# AES192/AES256 use the key extension of draft-reeder-snmpv3-usm-3desede (Cisco's, Net-SNMP's AES192C).
_PRIV_PROTOCOLS = {"DES": USM_PRIV_CBC56_DES, "AES": USM_PRIV_CFB128_AES, "AES192": USM_PRIV_CFB192_AES,
                   "AES256": USM_PRIV_CFB256_AES}


def _secret(name: str, value: SecretStr | None, env: str | None) -> str:
    if value is not None:
        return value.get_secret_value()
    text = os.environ.get(env or "")
    if not text:
        raise _Failure("auth_failed", f"auth {name}: environment variable {env} is not set")
    return text


def _usm_keys(data: Any) -> tuple[Any, ...]:
    return (data.userName, data.authentication_protocol, data.authentication_key, data.privacy_protocol,
            data.privacy_key)


def _same(old: Any, new: Any) -> bool:
    if isinstance(old, CommunityData) and isinstance(new, CommunityData):
        return bool(old.communityName == new.communityName)
    return isinstance(old, UsmUserData) and isinstance(new, UsmUserData) and _usm_keys(old) == _usm_keys(new)


class _Auths:
    """Each declared auth's pysnmp auth data (CommunityData or UsmUserData), or the failure to build it."""

    def __init__(self, secrets: _Secrets) -> None:
        self.built: dict[str, Any] = {}  # auth name -> CommunityData | UsmUserData | _Failure
        self._secrets = secrets
        self._serial = 0

    def load(self, auths: Mapping[str, SnmpAuth]) -> None:
        """Build every auth again, keeping the data of those that did not change."""
        built: dict[str, Any] = {}
        users: dict[str, tuple[str, tuple[Any, ...]]] = {}
        for name, auth in auths.items():
            try:
                data = self._build(name, auth)
            except _Failure as exc:
                built[name] = exc
                continue
            old = self.built.get(name)
            built[name] = old if _same(old, data) else data  # unchanged: keep pysnmp's configuration
            if isinstance(data, UsmUserData):
                keys = _usm_keys(data)
                first = users.setdefault(data.userName, (name, keys))
                if first[1] != keys:  # pysnmp's engine holds one set of keys per user name
                    built[name] = _Failure("auth_failed", f"auth {name}: user {data.userName} is also used by auth "
                                                   f"{first[0]} with other keys")
        self.built = built

    def _build(self, name: str, auth: SnmpAuth) -> Any:
        if auth.version == "2c":
            community = _secret(name, auth.community, auth.community_env)
            self._secrets.add(community)
            self._serial += 1  # the LCD row index: unique, <= 32 characters, derived from no secret
            return CommunityData(f"readiness-{self._serial}", community, mpModel=1)
        keys = [_secret(name, k, env) if proto else None for proto, k, env in (
            (auth.auth_protocol, auth.auth_key, auth.auth_key_env),
            (auth.priv_protocol, auth.priv_key, auth.priv_key_env))]
        self._secrets.update(k for k in keys if k)
        return UsmUserData(auth.user, keys[0], keys[1],
                           authProtocol=_AUTH_PROTOCOLS[auth.auth_protocol] if auth.auth_protocol else None,
                           privProtocol=_PRIV_PROTOCOLS[auth.priv_protocol] if auth.priv_protocol else None)

