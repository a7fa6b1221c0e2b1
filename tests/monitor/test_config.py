"""Config and inventory validation: a table of invalid fixtures, each with its exact error lines.

In the style of blackbox_exporter's ``invalid-*.yml``: every ``data/config/invalid-*.yml`` goes through
``readiness check`` in a subprocess and must exit 2 listing exactly the lines of its ``.expected`` file,
with no traceback. Inventories a fixture names sit next to it (``invalid-*.csv``, ``*.sites.yaml``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from monitor.config.loader import load_config
from monitor.errors import ConfigError, Problem
from probes import PROBES

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data" / "config"
INVALID = sorted(p.name for p in DATA.glob("invalid-*.yml"))
DEADLINE = "programme: {deadline: '2026-12-31T23:59:59+03:30'}\n"

# Every case the issue names, and the fixture that covers it: a renamed or lost fixture fails here.
CASES = {
    "YAML syntax error": "invalid-yaml-syntax.yml",
    "duplicate YAML key": "invalid-yaml-duplicate-key.yml",
    "config not a mapping": "invalid-not-a-mapping.yml",
    "unknown keys": "invalid-unknown-keys.yml",
    "duplicate site ids": "invalid-duplicate-site.yml",
    "duplicate terminal ids": "invalid-duplicate-terminal.yml",
    "invalid addresses": "invalid-address.yml",
    "upstream that names no site": "invalid-upstream-missing.yml",
    "upstream cycles": "invalid-upstream-cycle.yml",
    "backup with the primary's address": "invalid-backup-same-address.yml",
    "thresholds out of range": "invalid-thresholds.yml",
    "probe timeout not shorter than interval": "invalid-probe-timeout.yml",
    "unknown probe kind": "invalid-probe-kind.yml",
    "auth referenced but not declared": "invalid-auth-undeclared.yml",
    "v3 auth with priv but no auth": "invalid-auth-v3-priv-without-auth.yml",
    "unknown timezone": "invalid-timezone.yml",
    "lat without lon": "invalid-lat-without-lon.yml",
    "missing inventory file": "invalid-inventory-missing.yml",
    "duplicate ids across two inventory files": "invalid-duplicate-across-files.yml",
    "missing required CSV column": "invalid-csv-missing-column.yml",
    "CSV row with a bad address": "invalid-csv-bad-address.yml",
    "terminal entry not ID@ADDRESS[:PORT]": "invalid-csv-terminal.yml",
    "non-UTF-8 CSV": "invalid-csv-not-utf8.yml",
    "CSV lat without lon": "invalid-csv-lat-without-lon.yml",
    "CSV values out of their domain": "invalid-csv-values.yml",
    "all problems at once": "invalid-everything.yml",
}


def check(*args: str, cwd: Path = DATA) -> subprocess.CompletedProcess[str]:
    """Run ``python -m monitor check`` the way a user would."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "monitor", "check", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, encoding="utf-8", timeout=120)


def expected(name: str) -> list[str]:
    """Return the expected problem lines of fixture ``name``; ``{kinds}`` stands for the registered probe kinds."""
    text = (DATA / name).with_suffix(".expected").read_text(encoding="utf-8")
    return text.replace("{kinds}", ", ".join(PROBES)).splitlines()


def problem_lines(stderr: str) -> list[str]:
    return [line[2:] for line in stderr.splitlines() if line.startswith("  ")]


def test_every_case_has_a_fixture() -> None:
    """Each case of the issue is covered by a fixture, and each fixture has its expected lines."""
    assert set(CASES.values()) == set(INVALID)
    for name in INVALID:
        assert expected(name), name


@pytest.mark.parametrize("name", INVALID)
def test_expected_lines_name_file_and_line(name: str) -> None:
    """Every expected message starts with FILE:LINE:, and names the site whenever the file is an inventory row."""
    for line in expected(name):
        assert re.match(r"^invalid-[\w.-]+:\d+: ", line), line
        if re.match(r"^[\w.-]+\.csv:\d+: ", line) and "column" not in line and "UTF-8" not in line:
            assert ": site " in line, line


@pytest.mark.parametrize("name", INVALID)
def test_invalid_config(name: str) -> None:
    """`readiness check` on an invalid fixture: exit 2, exactly the expected problems on stderr, no traceback."""
    proc = check(name)
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""
    want = expected(name)
    assert problem_lines(proc.stderr) == want
    assert f"error: {len(want)} problem(s):" in proc.stderr


def test_valid_config() -> None:
    """A valid config with YAML and CSV inventories: exit 0, the one-line summary, the unknown column warned."""
    proc = check("valid.yml")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ("ok: 4 sites, 7 links, 4 terminals; urban 2, rural 2; by county: Eyvan 2, Ilam 2\n")
    assert "warning: valid-sites.csv:1: notes: unknown column ignored" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_demo_config_checks_clean() -> None:
    """The committed config/demo.yaml is valid."""
    proc = check("config/demo.yaml", cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok: ") and proc.stdout.count("\n") == 1
    assert proc.stderr == ""


def test_missing_config_file(tmp_path: Path) -> None:
    """A config that does not exist: exit 2 and a one-line reason."""
    proc = check(str(tmp_path / "nope.yml"))
    assert proc.returncode == 2
    assert problem_lines(proc.stderr) == [f"{tmp_path / 'nope.yml'}: cannot read: No such file or directory"]
    assert "Traceback" not in proc.stderr


def test_valid_config_in_process() -> None:
    """load_config reads every inventory, keeps file order, and reports warnings to the caller."""
    warnings: list[Problem] = []
    config = load_config(DATA / "valid.yml", warnings)
    assert [s.id for s in config.sites] == ["AGG-ILM", "ILM-001", "EYV-001", "EYV-002"]
    eyv = config.site_map()["EYV-001"]
    assert eyv.name == "مدرسه شهید بهشتی، ایوان" and eyv.area == "rural"
    assert eyv.link("backup") is not None and eyv.link("backup").medium == "vsat"  # type: ignore[union-attr]
    assert [(t.id, t.address, t.port) for t in eyv.terminals] == [("T1", "127.0.3.2", 8443), ("T2", "::1", 8443)]
    assert config.site_map()["EYV-002"].name == 'دبستان "امید"'
    assert config.programme.deadline.utcoffset() is not None
    assert [w.field for w in warnings] == ["notes"]
    assert len(config.version) == 16 and config.version == load_config(DATA / "valid.yml").version


def test_problems_are_structured() -> None:
    """Each Problem carries file, line, site and field apart, for callers other than the CLI."""
    with pytest.raises(ConfigError) as info:
        load_config(DATA / "invalid-csv-bad-address.yml")
    file = str(DATA / "invalid-csv-bad-address.csv")
    assert info.value.problems == [
        Problem(file, "'127.0.1.300' is not an IPv4 or IPv6 address", 3, "S2", "primary_address"),
        Problem(file, "'fe80::1::2' is not an IPv4 or IPv6 address", 5, "S3", "backup_address"),
    ]


@pytest.mark.parametrize("text", [
    "",
    "[",
    "- a\n- b\n",
    "a: &x [*x]\n",
    "sites: 5\n",
    "inventory: 5\n",
    "programme: null\n",
    DEADLINE + "inventory: [null, '', .]\n",
    DEADLINE + "auths: [1]\n",
    DEADLINE + "auths: {core: 5}\n",
    DEADLINE + "1: x\n",
    DEADLINE + "sites: [1, null, [], {}]\n",
    DEADLINE + "sites: &x [*x]\n",
    DEADLINE + "sites: [{id: 5, upstream: [1], links: [{snmp: {auth: [1]}}], terminals: [{id: [1]}, {id: [1]}]}]\n",
    DEADLINE + "sites: [{id: S1, name: n, county: c, area: urban, links: x, terminals: [1]}]\n",
    DEADLINE + "policy: {media: {fibre: {}}}\n",
    DEADLINE + "probes: [icmp]\n",
    DEADLINE + "watch_only: [S1]\n",
])
def test_odd_input_is_a_config_error(tmp_path: Path, text: str) -> None:
    """Malformed input of any shape ends in ConfigError with placed problems, never another exception."""
    path = tmp_path / "config.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems
    assert all(p.file == str(path) and p.line for p in info.value.problems), info.value.problems


def test_inventory_file_with_other_keys(tmp_path: Path) -> None:
    """An inventory file is a list of sites or a mapping with only 'sites'."""
    (tmp_path / "sites.yaml").write_text("programme: {}\nsites: []\n", encoding="utf-8")
    (tmp_path / "config.yml").write_text(DEADLINE + "inventory: sites.yaml\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "config.yml")
    assert [str(p) for p in info.value.problems] == [
        f"{tmp_path / 'sites.yaml'}:1: programme: unknown key (an inventory file holds only 'sites')"]


def test_yaml_anchor_shared_by_two_sites(tmp_path: Path) -> None:
    """A site repeated through a YAML alias is a duplicate (placed at the anchor: PyYAML keeps no alias line)."""
    doc = DEADLINE + "sites:\n- &s {id: S1, name: n, county: c, area: urban}\n- *s\n"
    (tmp_path / "config.yml").write_text(doc, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "config.yml")
    assert [(p.site, p.field, p.message) for p in info.value.problems] == [
        ("S1", "id", f"duplicate site id, first defined at {tmp_path / 'config.yml'}:3")]


def test_round_trip_of_fixture_builder(tmp_path: Path) -> None:
    """Configs written with yaml.safe_dump (as the test fixtures do) load; the inventory key is optional."""
    doc = {"programme": {"deadline": "2026-12-31T23:59:59+03:30"},
           "sites": [{"id": "S1", "name": "یک", "county": "Ilam", "area": "urban",
                      "links": [{"role": "primary", "medium": "fiber", "address": "127.0.0.1"}]}]}
    (tmp_path / "c.yml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    config = load_config(tmp_path / "c.yml")
    assert config.sites[0].name == "یک" and config.inventory == ()


YAML_SAMPLES = [
    "",
    "x\n",
    "a: [1, 2.5, true, null, ~, 2026-01-01, '2026-01-01', 0o17, 0x1F, .inf, yes, NO, '', \"x\", '1', -3, 1_000]\n",
    "- {a: b, c: [d, {e: f}]}\n- x\n",
    "a: 2026-12-31T23:59:59+03:30\nb: |\n  text\n  more\nc: >\n  folded\n",
    "1: x\n2.5: y\nnull: z\n'q': w\n",
    "sites:\n- id: S1\n  name: 'یک'\n  links:\n  - {role: primary, address: ::1}\n",
    "a: 1\na: 2\n",
    # Below: what the event reader leaves to PyYAML's composer.
    "a: &x 1\nb: *x\n",
    "a: !!str 1\n",
    "a: {<<: {b: 1}, c: 2}\n",
    "? [a]\n: 1\n",
    "a: 1\n---\nb: 2\n",
]


@pytest.mark.parametrize("text", YAML_SAMPLES)
def test_yaml_reader_matches_pyyaml(text: str) -> None:
    """The event reader gives what yaml.safe_load gives, and the same line map as the node walk."""
    from monitor.config.yamlsource import _compose, _read_nodes

    try:
        want = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        with pytest.raises(yaml.YAMLError) as info:
            _compose(text)
        assert type(info.value) is type(exc)
        return
    got = _compose(text)
    assert got[0] == want and repr(got[0]) == repr(want)
    assert got[:3] == _read_nodes(text)
    fast = _compose(text, lines=False)  # what load_yaml reads first: the same data and node count, no line map
    assert repr(fast[0]) == repr(want) and fast[3] == got[3]


COMMITTED_YAML = [ROOT / "config" / "demo.yaml", ROOT / "config" / "demo-sites.yaml",
                  *(p for p in sorted(DATA.glob("*.y*ml")) if p.name != "invalid-yaml-syntax.yml")]


@pytest.mark.parametrize("path", COMMITTED_YAML, ids=lambda p: p.name)
def test_yaml_reader_on_committed_files(path: Path) -> None:
    """Every committed YAML file reads the same through the event reader and PyYAML's composer."""
    from monitor.config.yamlsource import _EventReader, _read_nodes

    text = path.read_text(encoding="utf-8")
    assert _EventReader(text).read() == _read_nodes(text)


def test_a_valid_config_is_read_without_its_line_map(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines are for problems (issue 13: the map of a 10,000-site file is 37 MB): a valid config is read once,
    keeping no line; a site with a problem still names its line, from a second reading made for it."""
    from monitor.config import yamlsource
    from tests.monitor.fixtures import site, write_config

    readings: list[bool] = []

    class Counted(yamlsource._EventReader):
        def __init__(self, text: str, lines: bool = True) -> None:
            readings.append(lines)
            super().__init__(text, lines)

    monkeypatch.setattr(yamlsource, "_EventReader", Counted)
    assert len(load_config(write_config(tmp_path, [site("S1"), site("S2", n=2)])).sites) == 2
    assert readings == [False]
    bad = site("S2", n=2)
    bad["links"][0]["address"] = "not-an-address"
    path = write_config(tmp_path, [site("S1"), bad])
    with pytest.raises(ConfigError) as info:
        load_config(path)
    want = next(i for i, line in enumerate(path.read_text().splitlines(), 1) if "not-an-address" in line)
    assert [(p.line, p.site, p.field) for p in info.value.problems] == [(want, "S2", "links[0].address")]
    assert readings == [False, False, True]
