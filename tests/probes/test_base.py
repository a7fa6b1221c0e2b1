"""The probe interface's values: targets and observations without extras share one empty mapping (issue 13)."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle

import pytest

from probes.base import EMPTY, Observation, Target


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
