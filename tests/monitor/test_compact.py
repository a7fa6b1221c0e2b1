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
    assert a.terminals[0].id is b.terminals[0].id  # "T1": one copy for every site
    # A site's attributes share their keys with every other site's: a smaller dict than pydantic's own.
    import sys
    assert sys.getsizeof(a.__dict__) < sys.getsizeof(dict(a.__dict__))
    assert hash(a) == hash(Site.model_validate(raw[0])) and {a: 1}[Site.model_validate(raw[0])] == 1
    copied = a.model_copy(update={"owner": "ops"})  # pydantic copies the shared set before it adds to it
    assert "owner" in copied.model_fields_set and "owner" not in b.model_fields_set


def test_terminals_of_a_csv_inventory_share_their_port_numbers(tmp_path: Path) -> None:
    """Each CSV cell is parsed into its own int (8080 is not one of CPython's cached small ints): one per port."""
    (tmp_path / "sites.csv").write_text(
        "site_id,name,county,area,primary_medium,primary_address,terminals\n"
        "S1,a,Ilam,urban,fiber,127.21.0.1,T1@127.23.1.1:8080;T2@127.23.1.2:8080\n"
        "S2,b,Ilam,rural,fiber,127.21.0.2,T1@127.23.2.1:8080\n", encoding="utf-8")
    path = write_config(tmp_path, [])
    path.write_text(path.read_text(encoding="utf-8").replace("sites: []", "inventory: [sites.csv]"), encoding="utf-8")
    ports = [t.port for s in load_config(path).sites for t in s.terminals]
    assert ports == [8080] * 3 and len({id(p) for p in ports}) == 1
