"""HTTP(S) checks of a terminal's service: status, body, time to first byte, TLS version and certificate.

One aiohttp ``ClientSession`` per cycle (its connector bounded by ``concurrency``, no proxies from the
environment, no cookies, a fresh connection per check so every check pays and proves its own TCP and TLS
handshake, as blackbox_exporter's do). Each check is bounded by ``timeout_seconds`` and by the caller's
deadline, whichever comes first. A certificate that fails verification is fetched once more without
verifying, so an expired or misnamed certificate still reports its ``not_after``.

Target ``extra`` (built in ``monitor/config/targets.py``; never a secret): ``url`` (absolute), ``method``,
``expect_status`` (empty: any 2xx), ``expect_body`` (a regular expression searched in the first
``max_body_bytes`` of the body), ``headers``, ``ca_file``, ``tls_verify``, ``follow_redirects`` and ``auth``,
the name of an HTTP auth the config declares under ``auths:``; the credentials reach the probe in its
settings (``HttpSettings.auths``, secrets that redact themselves, read from the environment at use) and
every reason is scrubbed of them.

Values (seconds and Unix seconds): ``status_code``, ``ttfb_seconds`` (request sent to response headers
read), ``total_seconds`` (to the body read), ``redirects``, ``body_match`` (1/0, with ``expect_body``),
``tls_version`` (1.2, 1.3), ``tls_cert_valid`` (1/0: chain and name verified and in date),
``tls_not_after_timestamp_seconds`` (the server certificate's notAfter).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import os
import re
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from cryptography import x509
from pydantic import Field

from probes.base import NOTHING_DROPPED, CredentialedSettings, Dropped, Observation, ProbeSettings, Target, requests_in
from probes.credentials import HttpAuth

KIND = "http"
# OpenSSL's X509_V_ERR_CERT_HAS_EXPIRED: the one verification failure with a word of its own.
_CERT_EXPIRED = 10
_TLS_VERSIONS = {"TLSv1": 1.0, "TLSv1.1": 1.1, "TLSv1.2": 1.2, "TLSv1.3": 1.3}


class HttpSettings(CredentialedSettings):
    interval_seconds: float = Field(60.0, gt=0)
    timeout_seconds: float = Field(5.0, gt=0, description="one check: connect, TLS, headers and body")
    concurrency: int = Field(200, ge=1, le=100_000, description="checks in progress at once")
    max_body_bytes: int = Field(65536, ge=0, le=16 * 1024 * 1024, description="body read per check")
    user_agent: str = Field("readiness-monitor", min_length=1)
    credential_type = HttpAuth
    credential_name = "HTTP"
    auths: Mapping[str, HttpAuth] = Field(default_factory=dict, exclude=True, repr=False)


class _Failed(Exception):
    def __init__(self, failure: str, reason: str) -> None:
        super().__init__(reason)
        self.failure, self.reason = failure, reason


@dataclass
class _Cycle:
    """What one cycle shares: the session, TLS contexts by (ca_file, verify), the secrets it read."""

    session: aiohttp.ClientSession
    gate: asyncio.Semaphore
    settings: HttpSettings
    contexts: dict[tuple[str | None, bool], ssl.SSLContext] = field(default_factory=dict)
    secrets: set[str] = field(default_factory=set)

    def context(self, ca_file: str | None, verify: bool) -> ssl.SSLContext:
        key = (ca_file, verify)
        ctx = self.contexts.get(key)
        if ctx is None:
            if verify:
                try:
                    ctx = ssl.create_default_context(cafile=ca_file)
                except (OSError, ssl.SSLError) as exc:
                    raise _Failed("error", f"cannot load ca_file {ca_file}: {getattr(exc, 'strerror', None) or exc}"
                                  ) from None
            else:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self.contexts[key] = ctx
        return ctx

    def headers(self, target: Target) -> dict[str, str]:
        headers = {"User-Agent": self.settings.user_agent, **dict(target.extra.get("headers") or {})}
        name = target.extra.get("auth")
        if not name:
            return headers
        auth = self.settings.auths.get(name)
        if auth is None:
            raise _Failed("auth_failed", f"auth {name!r} is not declared under 'auths'")
        if auth.scheme == "basic":
            password = _secret(name, auth.password, auth.password_env)
            self.secrets.add(password)
            value = "Basic " + base64.b64encode(f"{auth.user}:{password}".encode()).decode("ascii")
        else:
            token = _secret(name, auth.token, auth.token_env)
            self.secrets.add(token)
            value = f"Bearer {token}"
        self.secrets.add(value)
        headers["Authorization"] = value
        return headers

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "***")
        return text


def _secret(name: str, value: Any, env: str | None) -> str:
    if value is not None:
        return str(value.get_secret_value())
    text = os.environ.get(env or "")
    if not text:
        raise _Failed("auth_failed", f"auth {name}: environment variable {env} is not set")
    return text


def _not_after(der: bytes | None) -> float | None:
    if not der:
        return None
    try:
        return x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()
    except ValueError:
        return None


def _tls_of(ssl_object: Any) -> dict[str, float]:
    if ssl_object is None:
        return {}
    out: dict[str, float] = {}
    version = _TLS_VERSIONS.get(ssl_object.version() or "")
    if version is not None:
        out["tls_version"] = version
    not_after = _not_after(ssl_object.getpeercert(binary_form=True))
    if not_after is not None:
        out["tls_not_after_timestamp_seconds"] = not_after
    return out


def _connect_failure(exc: aiohttp.ClientConnectorError) -> tuple[str, str]:
    os_error = exc.os_error
    code = getattr(os_error, "errno", None)
    text = (getattr(os_error, "strerror", None) or str(os_error) or "cannot connect").lower()
    if isinstance(os_error, ConnectionRefusedError) or code == errno.ECONNREFUSED:
        return "refused", "connection refused"
    if code in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable", text
    return "error", text


class _Response(aiohttp.ClientResponse):
    """A response that keeps what its connection's TLS layer showed (the connection is released early)."""

    tls: dict[str, float]

    async def start(self, connection: Any) -> aiohttp.ClientResponse:
        transport = connection.transport
        self.tls = _tls_of(transport.get_extra_info("ssl_object")) if transport is not None else {}
        return await super().start(connection)


class HttpProbe:
    kind: str = KIND
    settings_model: type[ProbeSettings] = HttpSettings

    async def run(self, targets: Sequence[Target], settings: ProbeSettings, deadline: float) -> list[Observation]:
        """Check every target, at most ``settings.concurrency`` at once, all done by ``deadline``."""
        assert isinstance(settings, HttpSettings)
        connector = aiohttp.TCPConnector(limit=settings.concurrency, limit_per_host=0, force_close=True,
                                         ttl_dns_cache=int(settings.interval_seconds))
        async with aiohttp.ClientSession(connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar(),
                                         response_class=_Response) as session:
            cycle = _Cycle(session, asyncio.Semaphore(settings.concurrency), settings)
            return list(await asyncio.gather(*(self._one(t, cycle, deadline) for t in targets)))

    async def _one(self, target: Target, cycle: _Cycle, deadline: float) -> Observation:
        async with cycle.gate:
            timeout = min(cycle.settings.timeout_seconds, deadline - time.monotonic())
            if timeout <= 0:
                return Observation.failed(target, KIND, "skipped", "cycle deadline reached before the request")
            values: dict[str, float] = {}
            try:
                return await self._check(target, cycle, timeout, values)
            except _Failed as exc:
                return Observation(target.key, KIND, False, time.time(), values, exc.failure, cycle.scrub(exc.reason))

    async def _check(self, target: Target, cycle: _Cycle, timeout: float, values: dict[str, float]) -> Observation:
        x = target.extra
        url: str = x["url"]
        https = url.startswith("https://")
        verify = bool(x.get("tls_verify", True))
        ctx = cycle.context(x.get("ca_file"), verify) if https else None
        headers = cycle.headers(target)
        start = time.perf_counter()
        end = time.monotonic() + timeout
        try:
            async with cycle.session.request(
                x.get("method", "GET"), url, headers=headers, allow_redirects=bool(x.get("follow_redirects", True)),
                max_redirects=10, ssl=ctx if ctx is not None else True, timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                values["ttfb_seconds"] = time.perf_counter() - start
                values["status_code"] = resp.status
                values["redirects"] = len(resp.history)
                values.update(getattr(resp, "tls", {}))
                body = b""
                if x.get("method", "GET") != "HEAD":
                    body = await _read(resp.content, cycle.settings.max_body_bytes)
                values["total_seconds"] = time.perf_counter() - start
                charset = resp.get_encoding() if body else "utf-8"
        except aiohttp.ClientConnectorCertificateError as exc:
            raise await self._certificate_failure(cycle, exc, end, values) from None
        except aiohttp.ClientConnectorSSLError as exc:
            raise _Failed("tls_invalid", f"TLS handshake failed: {_ssl_text(exc.os_error)}") from None
        except aiohttp.ClientConnectorDNSError as exc:
            raise _Failed("dns", f"cannot resolve {exc.host}") from None
        except aiohttp.ClientConnectorError as exc:
            failure, reason = _connect_failure(exc)
            raise _Failed(failure, reason) from None
        except TimeoutError:
            what = "headers" if "ttfb_seconds" not in values else "the body"
            raise _Failed("timeout", f"no {what} within {timeout:.3g}s") from None
        except aiohttp.TooManyRedirects:
            raise _Failed("bad_response", "more than 10 redirects") from None
        except (aiohttp.ClientResponseError, aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
            raise _Failed("bad_response", _short(exc)) from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise _Failed("error", _short(exc)) from None
        if https and not verify:  # verification off skips chain and name, never the date
            not_after = values.get("tls_not_after_timestamp_seconds")
            if not_after is not None and not_after < time.time():
                values["tls_cert_valid"] = 0
                raise _Failed("tls_expired", f"certificate expired {_date(not_after)}")
        elif https:
            values["tls_cert_valid"] = 1
        status = int(values["status_code"])
        expect: Sequence[int] = x.get("expect_status") or ()
        if (status not in expect) if expect else not 200 <= status < 300:
            wanted = ",".join(map(str, expect)) if expect else "2xx"
            raise _Failed("status_mismatch", f"status {status}, expected {wanted}")
        pattern = x.get("expect_body")
        if pattern:
            matched = re.search(pattern, body.decode(charset or "utf-8", errors="replace")) is not None
            values["body_match"] = 1 if matched else 0
            if not matched:
                raise _Failed("body_mismatch", f"body does not match {pattern!r}")
        return Observation(target.key, KIND, True, time.time(), values)

    async def _certificate_failure(self, cycle: _Cycle, exc: aiohttp.ClientConnectorCertificateError, end: float,
                                   values: dict[str, float]) -> _Failed:
        """Return the verification failure, with the certificate's notAfter when a second look can read it."""
        values["tls_cert_valid"] = 0
        error = exc.certificate_error
        code = getattr(error, "verify_code", None)
        message = getattr(error, "verify_message", None) or _ssl_text(error)
        host, port = exc.host, exc.port
        with contextlib.suppress(OSError, TimeoutError, ssl.SSLError, ValueError):
            remaining = end - time.monotonic()
            if remaining > 0:
                _, writer = await asyncio.wait_for(asyncio.open_connection(
                    host, port, ssl=cycle.context(None, False), server_hostname=host), remaining)
                try:
                    values.update(_tls_of(writer.get_extra_info("ssl_object")))
                finally:
                    writer.close()
        if code == _CERT_EXPIRED:
            not_after = values.get("tls_not_after_timestamp_seconds")
            return _Failed("tls_expired", f"certificate expired {_date(not_after)}" if not_after
                           else "certificate expired")
        return _Failed("tls_invalid", f"certificate not valid: {message}")

    async def warm(self) -> None:
        """Hold nothing between cycles: each cycle opens its own session."""

    async def close(self) -> None:
        """Hold nothing between cycles."""

    def requests_sent(self, observations: Sequence[Observation]) -> int:
        """Return the requests the cycle sent: one per check, plus each redirect followed."""
        return requests_in(observations) + sum(int(o.values.get("redirects", 0)) for o in observations)

    def dropped(self) -> Dropped:
        """Return zeros: each request has a connection of its own, nothing shared to drop on."""
        return NOTHING_DROPPED


async def _read(stream: aiohttp.StreamReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await stream.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _date(ts: float | None) -> str:
    if ts is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def _ssl_text(error: Any) -> str:
    return str(getattr(error, "reason", None) or error or "TLS error").lower()


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


PROBE = HttpProbe()
