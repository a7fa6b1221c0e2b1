"""Validated sites share what they repeat (monitor/config/compact.py, issue 13), and stay the same values."""

from __future__ import annotations

from pathlib import Path

from monitor.config.loader import load_config
from monitor.core.model import Site
from tests.monitor.fixtures import site, write_config


def test_sites_share_fields_sets_and_repeated_strings(tmp_path: Path) -> None:
    """Two sites of one county: one fields set per model kind and content, one copy of the county and the
    media; each site dumps, compares and copies as a freshly validated one."""
    raw = [site("S1", snmp=True), site("S2", n=2, snmp=True)]
    a, b = load_config(write_config(tmp_path, raw)).sites
    assert a.__pydantic_fields_set__ is b.__pydantic_fields_set__
    assert a.links[0].__pydantic_fields_set__ is b.links[0].__pydantic_fields_set__
    assert a.links[0].snmp.__pydantic_fields_set__ is b.links[0].snmp.__pydantic_fields_set__  # type: ignore[union-attr]
    assert a.county is b.county and a.links[1].medium is b.links[1].medium and a.links[0].role is b.links[0].role
    for compacted, data in ((a, raw[0]), (b, raw[1])):
        fresh = Site.model_validate(data)
        assert compacted == fresh
        assert compacted.model_dump(exclude_unset=True) == fresh.model_dump(exclude_unset=True)
        assert compacted.model_fields_set == fresh.model_fields_set
    copied = a.model_copy(update={"owner": "ops"})  # pydantic copies the shared set before it adds to it
    assert "owner" in copied.model_fields_set and "owner" not in b.model_fields_set
