"""Who may do what over HTTP: Basic auth against bcrypt hashes; viewers read, admins may also POST.

With ``basic_auth_users`` set, every request needs valid credentials (401 with ``WWW-Authenticate: Basic``
otherwise); a request that changes something (any method but GET, HEAD, OPTIONS) needs a user listed in
``admins`` (403 otherwise). Without users, nothing is asked (the listener refuses a non-loopback address
then, unless told ``--web.insecure``).

bcrypt is slow on purpose, so a successful check is remembered for ``CACHE_SECONDS`` under a keyed hash
of the Authorization header (HMAC with a key made at start-up), never the password. A failed check is not
remembered. An unknown user is checked against a dummy hash, so the answer takes as long as for a known one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import os
import time
from collections.abc import Awaitable, Callable

import bcrypt
from aiohttp import web
from aiohttp.typedefs import Middleware

log = logging.getLogger(__name__)
CACHE_SECONDS = 60.0
CACHE_SIZE = 1024
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
USER = web.RequestKey("user", str)  # the authenticated user, on the request
REALM = 'Basic realm="readiness", charset="UTF-8"'


class Access:
    """The users (name -> bcrypt hash) and the admins among them."""

    def __init__(self, users: dict[str, bytes], admins: frozenset[str] = frozenset(),
                 cache_seconds: float = CACHE_SECONDS) -> None:
        self._users = dict(users)
        self.admins = admins
        self._ttl = cache_seconds
        self._key = os.urandom(32)
        self._ok: dict[bytes, tuple[str, float]] = {}  # HMAC(header) -> (user, monotonic expiry)
        self._dummy = bcrypt.hashpw(b"not a password", bcrypt.gensalt(rounds=self._cost()))

    def __repr__(self) -> str:
        return f"Access(users={sorted(self._users)}, admins={sorted(self.admins)})"

    def replace(self, users: dict[str, bytes], admins: frozenset[str]) -> None:
        """Put a re-read web config's users and admins in force (a reload): remembered checks are forgotten, so a
        removed user or a changed password is refused from the next request on."""
        self._users = dict(users)
        self.admins = admins
        self._ok = {}
        self._dummy = bcrypt.hashpw(b"not a password", bcrypt.gensalt(rounds=self._cost()))

    def _cost(self) -> int:
        costs = [int(h.split(b"$")[2]) for h in self._users.values()]
        return max(costs, default=4)

    @property
    def enabled(self) -> bool:
        return bool(self._users)

    def check(self, header: str | None) -> str | None:
        """Return the user the Authorization header proves, or None. Slow (bcrypt): call off the event loop."""
        if not header:
            return None
        key = hmac.new(self._key, header.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()
        now = time.monotonic()
        hit = self._ok.get(key)
        if hit is not None and hit[1] > now:
            return hit[0]
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if not sep:
            return None
        hashed = self._users.get(user)
        # checkpw compares in constant time; an unknown user costs the same bcrypt run.
        ok = bcrypt.checkpw(password.encode(), hashed if hashed is not None else self._dummy)
        if not ok or hashed is None:
            return None
        if len(self._ok) >= CACHE_SIZE:
            self._ok = {k: v for k, v in self._ok.items() if v[1] > now}
            while len(self._ok) >= CACHE_SIZE:
                self._ok.pop(next(iter(self._ok)))
        self._ok[key] = (user, now + self._ttl)
        return user

    def middleware(self) -> Middleware:
        @web.middleware
        async def access(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
            if not self.enabled:
                return await handler(request)
            user = await asyncio.get_running_loop().run_in_executor(
                None, self.check, request.headers.get("Authorization"))
            if user is None:
                log.debug("unauthenticated %s %s from %s", request.method, request.path, request.remote)
                return web.Response(status=401, text="authentication required\n",
                                    headers={"WWW-Authenticate": REALM})
            if request.method not in READ_METHODS and user not in self.admins:
                log.info("user %s may not %s %s (not an admin)", user, request.method, request.path)
                return web.Response(status=403, text=f"{user} may read but not change anything (not an admin)\n")
            request[USER] = user
            return await handler(request)
        return access
