"""The one probe interface: many targets in, one observation per target out.

A probe kind is a module in this package with a ``PROBE`` object that satisfies :class:`Probe`.
Failures are values (``Observation.ok`` is False, with a failure kind and a short reason);
only programming errors raise, and the runner catches and logs those once.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The bounded vocabulary of ``Observation.failure``: metrics use it as a label, so a probe that needs a
# new word adds it here. Local failures are our own stack's (no route from us, a source we cannot bind):
# they make the monitor blind, they are never the site's fault.
FAILURES = ("timeout", "refused", "unreachable", "no_route", "bind_failed", "local_error", "auth_failed",
            "no_such_object", "bad_response", "malformed", "skipped", "not_probed", "error",
            "tls_invalid", "tls_expired", "status_mismatch", "body_mismatch", "dns")
LOCAL_FAILURES = frozenset({"no_route", "bind_failed", "local_error"})  # local_error: out of fds, buffers

class _Empty(dict):  # type: ignore[type-arg]
    """A dict that stays empty. A dict, not a MappingProxyType: dataclasses.asdict, copy and pickle take it."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("the shared empty mapping cannot change")

    __setitem__ = __delitem__ = __ior__ = update = setdefault = pop = popitem = clear = _refuse  # type: ignore[assignment]


# What a target or observation without extras, values or details holds: one shared empty mapping, not an
# empty dict per object (issue 13: 40,000 targets, as many observations a cycle).
EMPTY: Mapping[str, Any] = _Empty()


def empty() -> Mapping[str, Any]:
    """Return the shared empty mapping (a dataclass field's default)."""
    return EMPTY


_DOUBLE = struct.Struct("=d")
_DOUBLES: dict[int, struct.Struct] = {}  # n -> the struct of n doubles: compiled once, not per observation


def _doubles(n: int) -> struct.Struct:
    s = _DOUBLES.get(n)
    if s is None:
        s = _DOUBLES[n] = struct.Struct(f"={n}d")
    return s


class Values(Mapping[str, float]):
    """A read-only mapping of an observation's numbers, laid out as a probe kind fixes them (issue 13).

    ``keys`` is a tuple the probe kind shares among all its observations of one layout; the numbers are packed
    native doubles in one ``bytes``: an ICMP observation's seven numbers take 137 B, not the 440 B of a dict and
    its float objects (``sys.getsizeof``), yet read, compare and serialise as that dict did: ``Values == dict``
    in both directions, ``dict(values)`` and ``{**values}`` give the dict back, iteration keeps the keys' order.
    Every number is a float: kinds that report ints (HTTP's status code) keep a dict, so their JSON still says
    ``500``, not ``500.0``.
    """

    __slots__ = ("_keys", "_packed")

    def __init__(self, keys: tuple[str, ...], numbers: Iterable[float]) -> None:
        try:
            self._packed = _doubles(len(keys)).pack(*numbers)
        except struct.error as exc:
            raise ValueError(f"numbers for keys {keys!r}: {exc}") from None
        self._keys = keys

    def __getitem__(self, key: str) -> float:
        try:
            return _DOUBLE.unpack_from(self._packed, self._keys.index(key) << 3)[0]  # type: ignore[no-any-return]
        except ValueError:
            raise KeyError(key) from None

    def get(self, key: str, default: Any = None) -> Any:
        """Return the number named ``key``, else ``default`` (without raising and catching a KeyError)."""
        keys = self._keys
        return _DOUBLE.unpack_from(self._packed, keys.index(key) << 3)[0] if key in keys else default

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def numbers(self) -> tuple[float, ...]:
        """Return the numbers in the keys' order."""
        return _doubles(len(self._keys)).unpack(self._packed)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Values) and other._keys == self._keys:
            return self.numbers() == other.numbers()  # float equality: 0.0 == -0.0, nan != nan, as in a dict
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]  # as a dict's: equal to dicts, which are unhashable

    def __repr__(self) -> str:
        return f"Values({dict(self)!r})"

    def __reduce__(self) -> tuple[type[Values], tuple[tuple[str, ...], tuple[float, ...]]]:
        return Values, (self._keys, self.numbers())

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, float]:
        # A plain dict of the same numbers: dataclasses.asdict deep-copies whatever is not a dict, list or tuple,
        # and what it returns must stay what json.dumps takes, as it was when values were dicts.
        return dict(self)


# The longest interval, timeout or jitter a config may set: a day. Longer is a mistake, and past
# about 10^14 s datetime and APScheduler overflow (a reload of `.inf` used to stop every probe job).
MAX_INTERVAL_SECONDS = 86_400.0


class ProbeSettings(BaseModel):
    """Settings every probe kind shares; kinds subclass it and add their own."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    enabled: bool = True
    interval_seconds: float = Field(60.0, gt=0, le=MAX_INTERVAL_SECONDS)
    timeout_seconds: float = Field(2.0, gt=0, le=MAX_INTERVAL_SECONDS)
    jitter_seconds: float = Field(5.0, ge=0, le=MAX_INTERVAL_SECONDS)
    concurrency: int = Field(512, ge=1, le=100_000)

    def with_credentials(self, auths: Mapping[str, Any]) -> ProbeSettings:
        """Return these settings with the credentials the config declares apart (kinds that use some)."""
        return self

    def cycle_budget_seconds(self) -> float:
        """Return the longest a cycle may take with these settings (before overhead)."""
        return self.timeout_seconds

    def cycle_seconds_for(self, targets: int) -> float:
        """Return the longest a cycle over ``targets`` targets may take (kinds that pace override this)."""
        return self.cycle_budget_seconds()

    @model_validator(mode="after")
    def _budget_fits_interval(self) -> ProbeSettings:
        budget = self.cycle_budget_seconds()
        if budget >= self.interval_seconds:
            raise ValueError(
                f"a cycle may take {budget:g}s (timeout and retries) which is not shorter than "
                f"interval_seconds={self.interval_seconds:g}"
            )
        return self


class CredentialedSettings(ProbeSettings):
    """Settings of a kind that uses credentials declared apart, under the config's top-level ``auths:``.

    ``auths`` is filled by :meth:`with_credentials` (``Config.probe_settings``) with the auths of
    ``credential_type`` only, never from the kind's own settings: credentials are declared once, apart from
    the settings that use them (as in snmp_exporter), and their secrets redact themselves.
    """

    credential_type: ClassVar[type]  # the credentials model this kind takes (probes/credentials.py)
    credential_name: ClassVar[str]  # how messages name them: "SNMP", "HTTP"
    auths: Mapping[str, Any] = Field(default_factory=dict, exclude=True, repr=False)

    @field_validator("auths", mode="before")
    @classmethod
    def _declared_apart(cls, value: Any) -> Any:
        if value:
            raise ValueError(f"declare {cls.credential_name} credentials under the top-level 'auths:', "
                             f"not under probes.{cls.credential_name.lower()}")
        return value

    def with_credentials(self, auths: Mapping[str, Any]) -> CredentialedSettings:
        """Return these settings carrying this kind's auths among ``auths`` (model_copy skips the validator)."""
        return self.model_copy(update={"auths": {k: v for k, v in auths.items()
                                                 if isinstance(v, self.credential_type)}})


@dataclass(frozen=True, slots=True)
class Target:
    """One thing to probe: a link address, a terminal service, an SNMP interface."""

    key: str  # stable and unique: "ILM-001/primary", "ILM-001/terminal/T1", "ILM-001/primary/snmp"
    site: str
    address: str
    port: int | None = None
    source: str | None = None  # address or interface to send from (proves the backup path)
    extra: Mapping[str, Any] = field(default_factory=empty)  # kind-specific, never secrets


@dataclass(frozen=True, slots=True)
class Observation:
    """What one probe cycle saw of one target."""

    key: str
    kind: str
    ok: bool
    at: float  # unix seconds when the measurement finished (wall clock: for display and the store)
    values: Mapping[str, float] = field(default_factory=empty)  # unit in the name: rtt_avg_seconds
    failure: str = ""  # short machine word: timeout, refused, unreachable, no_such_object, error
    reason: str = ""  # one short human line, never a secret
    details: Mapping[str, tuple[str, ...]] = field(default_factory=empty)  # e.g. {"missing": ("T3",)}
    # time.monotonic() when the measurement finished: freshness is judged on it, so a wall-clock step
    # changes nothing. None: not stamped (built by hand), judged on ``at``.
    mono: float | None = None

    @classmethod
    def failed(cls, target: Target, kind: str, failure: str, reason: str,
               values: Mapping[str, float] = EMPTY) -> Observation:
        """Build a failed observation for ``target`` (with what it measured even so: ICMP's sent and received)."""
        return cls(target.key, kind, False, time.time(), values, failure, reason, mono=time.monotonic())


class Dropped(NamedTuple):
    """Datagrams a probe kind that listens on shared sockets dropped unanswered, since it was made (SNMP)."""

    malformed: int = 0  # from polled peers, but no answer to a request: garbage, a wrong request id, ...
    unsolicited: int = 0  # from peers that were never polled


NOTHING_DROPPED = Dropped()


class Probe(Protocol):
    """A probe kind: the registry in ``probes/__init__.py`` maps ``kind`` to one of these."""

    kind: str
    settings_model: type[ProbeSettings]

    async def warm(self) -> None:
        """Prepare shared resources (an engine, sockets) before the first cycle; may do nothing."""
        ...

    async def run(
        self, targets: Sequence[Target], settings: ProbeSettings, deadline: float
    ) -> list[Observation]:
        """Probe every target and return one observation per target by ``deadline`` (monotonic)."""
        ...

    async def close(self) -> None:
        """Release sockets, engines and other resources."""
        ...

    def requests_sent(self, observations: Sequence[Observation]) -> int:
        """Return how many requests (echoes, connects, PDUs) the cycle that made ``observations`` sent."""
        ...

    def dropped(self) -> Dropped:
        """Return what the probe dropped unanswered on its shared sockets since it was made (zeros: none)."""
        ...


def requests_in(observations: Sequence[Observation]) -> int:
    """Return the requests a cycle sent as its observations count them (``sent``, else one each)."""
    return sum(int(o.values.get("sent", 1)) for o in observations)
