"""The probe interface's values: targets and observations without extras share one empty mapping, and fixed layouts
of numbers are compact read-only mappings (issue 13)."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import pickle
import sys
from collections.abc import Mapping

import pytest

from probes.base import EMPTY, Observation, Target, Values
from probes.icmp import ECHO_KEYS, echo_values
from probes.tcp import CONNECT_KEYS


def test_the_shared_empty_mapping_copies_and_never_changes() -> None:
    """Observations and targets without values, details or extras share EMPTY; asdict, deepcopy and pickle take
    them as they took a fresh dict; nobody can put anything into it."""
    obs, target = Observation("S1/primary", "icmp", True, 1.0), Target("S1/primary", "S1", "127.0.0.1")
    assert obs.values is EMPTY and obs.details is EMPTY and target.extra is EMPTY
    assert json.loads(json.dumps(dataclasses.asdict(obs)))["values"] == {}
    assert copy.deepcopy(obs) == obs and pickle.loads(pickle.dumps(target)) == target
    with pytest.raises(TypeError):
        obs.values["loss_ratio"] = 1.0  # type: ignore[index]
    with pytest.raises(TypeError):
        EMPTY.update(x=1)  # type: ignore[attr-defined]
    assert len(EMPTY) == 0


def old_echo_dict(sent: int, rtts: list[float]) -> dict[str, float]:
    """Return the dict the ICMP probe built before Values, the same way (a literal, then jitter added)."""
    received = len(rtts)
    values = {"sent": float(sent), "received": float(received), "loss_ratio": (sent - received) / sent,
              "rtt_min_seconds": min(rtts), "rtt_avg_seconds": sum(rtts) / received, "rtt_max_seconds": max(rtts)}
    if received > 1:
        values["jitter_seconds"] = sum(abs(b - a) for a, b in itertools.pairwise(rtts)) / (received - 1)
    return values


def test_values_read_compare_and_copy_as_the_dict_they_replace() -> None:
    """Three echoes answered: the compact values equal the dict the probe used to build, from either side, and
    read, iterate, unpack, pickle, copy and turn into JSON as it did."""
    rtts = [0.0012, 0.0034, 0.0021]
    v, d = echo_values(3, rtts), old_echo_dict(3, rtts)
    assert isinstance(v, Mapping) and v == d and d == v and (v != d) is False and v == echo_values(3, rtts)
    assert v != {**d, "sent": 2.0} and {**d, "sent": 2.0} != v and v != echo_values(3, rtts[:2]) and v != [1.0]
    assert list(v) == list(d) == list(ECHO_KEYS) and list(v.items()) == list(d.items()) and len(v) == 7
    assert dict(v) == {**v} == d and v["rtt_max_seconds"] == 0.0034 and v.get("rx_power_dbm") is None
    assert v.get("received") == 3.0 and "jitter_seconds" in v and "rx_power_dbm" not in v and 3 not in v
    with pytest.raises(KeyError):
        v["rx_power_dbm"]
    with pytest.raises(TypeError):
        v["sent"] = 1.0  # type: ignore[index]
    with pytest.raises(TypeError):
        hash(v)
    assert repr(v) == f"Values({d!r})"
    assert pickle.loads(pickle.dumps(v)) == v and type(pickle.loads(pickle.dumps(v))) is Values
    assert copy.copy(v) == v and copy.deepcopy(v) == d
    obs = Observation("S1/primary", "icmp", True, 1.0, v)
    twin = Observation("S1/primary", "icmp", True, 1.0, d)
    assert obs == twin and copy.deepcopy(obs) == obs and pickle.loads(pickle.dumps(obs)) == obs
    assert json.dumps(dataclasses.asdict(obs)) == json.dumps(dataclasses.asdict(twin))
    lost = echo_values(3, [])
    assert lost == {"sent": 3.0, "received": 0.0, "loss_ratio": 1.0} and list(lost) == list(ECHO_KEYS[:3])
    assert echo_values(2, [0.5]) == {"sent": 2.0, "received": 1.0, "loss_ratio": 0.5, "rtt_min_seconds": 0.5,
                                     "rtt_avg_seconds": 0.5, "rtt_max_seconds": 0.5}
    with pytest.raises(ValueError, match="connect_seconds"):
        Values(CONNECT_KEYS, (1.0, 2.0))


def test_values_keep_every_float_exactly() -> None:
    """Packed as doubles, the numbers come back bit for bit: extremes, negative zero, infinity."""
    numbers = (5e-324, 1.7976931348623157e308, -0.0, float("inf"), 0.1 + 0.2, -12.345678901234567, 1e-9)
    v = Values(ECHO_KEYS, numbers)
    assert [repr(x) for x in v.values()] == [repr(x) for x in numbers] and v.numbers() == numbers


def deep_bytes(o: Mapping[str, float]) -> int:
    """Return the bytes one observation's values hold of their own: the container and its numbers (the keys are
    shared by every observation, as a dict's interned key strings are)."""
    if isinstance(o, Values):
        return sys.getsizeof(o) + sys.getsizeof(o._packed)
    return sys.getsizeof(o) + sum(sys.getsizeof(x) for x in o.values())


def test_values_take_less_than_half_the_dict() -> None:
    """An ICMP observation's seven numbers and a TCP connect time take less than half the bytes of their dicts."""
    rtts = [0.0012, 0.0034, 0.0021]
    for compact, plain in ((echo_values(3, rtts), old_echo_dict(3, rtts)),
                           (Values(CONNECT_KEYS, (0.0123,)), {"connect_seconds": 0.0123})):
        assert compact == plain
        assert deep_bytes(compact) * 2 < deep_bytes(plain), (deep_bytes(compact), deep_bytes(plain))
    assert echo_values(3, rtts)._keys is echo_values(3, rtts[::-1])._keys  # one keys tuple per layout
