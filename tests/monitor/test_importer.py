"""`readiness inventory import`: a spreadsheet export (as Excel writes it) to inventory YAML."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from monitor.config.importer import import_csv
from monitor.config.inventory import _split_terminal
from monitor.config.loader import load_config
from monitor.errors import ConfigError, Problem

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data" / "config"
CONFIG = "programme: {deadline: '2026-12-31T23:59:59+03:30'}\ninventory: [%s]\n"

# Columns shuffled, headers in mixed case, an unknown column ("Notes"), Persian names with commas in
# them (quoted), an IPv6 terminal in brackets with a port, a bare IPv6 terminal without one.
EXCEL_ROWS = [
    "Terminals,AREA,Primary_Address,Site_ID,County,Name,Notes,primary_medium,Backup_Address,BACKUP_MEDIUM,lon,Lat,"
    "Upstream",
    "T1@[::1]:8443;T2@127.0.3.2:8080,Urban,127.0.1.1,AGG-1,Ilam,گره تجمیع ایلام,,Fiber,127.0.2.1,Microwave,46.42,"
    "33.63,",
    '"T1@127.0.3.3; T2@::1",rural,127.0.1.2,ILM-001,Ilam,"مدرسه شهید بهشتی، ایلام",کلید در دفتر,fiber,127.0.2.2,LTE,'
    "46.26,33.64,AGG-1",
    ",rural,127.0.1.3,ILM-002,Ilam,دبستان امید,,vsat,,,,,AGG-1",
]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m monitor`` the way a user would."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "monitor", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, encoding="utf-8", timeout=120)


@pytest.fixture
def excel_csv(tmp_path: Path) -> Path:
    """Write the sheet as Excel's 'CSV UTF-8' does: a byte order mark and CRLF line ends."""
    path = tmp_path / "sites.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(EXCEL_ROWS).encode("utf-8") + b"\r\n")
    return path


def test_import_excel_export(excel_csv: Path) -> None:
    """BOM, CRLF, Persian, shuffled mixed-case headers and an unknown column: exit 0, YAML out, one warning."""
    proc = run("inventory", "import", excel_csv.name, cwd=excel_csv.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        "warning: sites.csv:1: notes: unknown column ignored (known: site_id, name, county, area, lat, lon, "
        "upstream, primary_medium, primary_address, backup_medium, backup_address, terminals, owner, contact)"]
    doc = yaml.safe_load(proc.stdout)
    assert [s["id"] for s in doc["sites"]] == ["AGG-1", "ILM-001", "ILM-002"]
    agg, ilm1, ilm2 = doc["sites"]
    assert agg["name"] == "گره تجمیع ایلام" and agg["area"] == "urban" and agg["location"] == {"lat": 33.63,
                                                                                             "lon": 46.42}
    assert agg["links"] == [{"role": "primary", "medium": "fiber", "address": "127.0.1.1"},
                            {"role": "backup", "medium": "microwave", "address": "127.0.2.1"}]
    assert agg["terminals"] == [{"id": "T1", "address": "::1", "port": 8443},
                                {"id": "T2", "address": "127.0.3.2", "port": 8080}]
    assert ilm1["name"] == "مدرسه شهید بهشتی، ایلام" and ilm1["upstream"] == "AGG-1"
    assert ilm1["terminals"] == [{"id": "T1", "address": "127.0.3.3"}, {"id": "T2", "address": "::1"}]
    assert ilm2["links"] == [{"role": "primary", "medium": "vsat", "address": "127.0.1.3"}]
    assert "location" not in ilm2 and "terminals" not in ilm2
    assert "Traceback" not in proc.stderr


def test_output_file(excel_csv: Path) -> None:
    """`-o` writes the YAML to the file (UTF-8) and nothing to stdout."""
    proc = run("inventory", "import", excel_csv.name, "-o", "sites.yaml", cwd=excel_csv.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    text = (excel_csv.parent / "sites.yaml").read_text(encoding="utf-8")
    assert text.startswith("# Imported from sites.csv by `readiness inventory import`.\n")
    assert "گره تجمیع ایلام" in text  # written as text, not \u escapes


def test_yaml_loads_back_with_identical_sites(excel_csv: Path) -> None:
    """The produced YAML, used as the inventory of a config, gives the very sites the CSV gives."""
    tmp = excel_csv.parent
    (tmp / "sites.yaml").write_text(import_csv(excel_csv, []), encoding="utf-8")
    (tmp / "from-yaml.yml").write_text(CONFIG % "sites.yaml", encoding="utf-8")
    (tmp / "from-csv.yml").write_text(CONFIG % "sites.csv", encoding="utf-8")
    from_yaml = load_config(tmp / "from-yaml.yml")
    from_csv = load_config(tmp / "from-csv.yml", [])
    assert len(from_yaml.sites) == 3
    assert from_yaml.sites == from_csv.sites


def test_import_committed_fixture() -> None:
    """The semicolon-separated fixture (quoted terminals cell, doubled quotes) imports and loads back."""
    warnings: list[Problem] = []
    doc = yaml.safe_load(import_csv(DATA / "valid-sites.csv", warnings))
    assert [s["id"] for s in doc["sites"]] == ["EYV-001", "EYV-002"]
    assert doc["sites"][1]["name"] == 'دبستان "امید"'
    # AGG-ILM lives in another inventory: a warning here, an error only in `readiness check`.
    assert [(w.field, w.message) for w in warnings] == [
        ("notes", "unknown column ignored (known: site_id, name, county, area, lat, lon, upstream, primary_medium, "
                  "primary_address, backup_medium, backup_address, terminals, owner, contact)"),
        ("upstream", "upstream 'AGG-ILM' names no site in this file (another inventory must have it)"),
    ]


# The invalid CSV fixtures through `inventory import`: the same lines as `readiness check` gives,
# less what needs the whole config (an upstream in another file, duplicates across files).
IMPORT_EXPECTED = {
    "invalid-csv-missing-column.csv": ["invalid-csv-missing-column.csv:1: primary_address: missing required column"],
    "invalid-csv-bad-address.csv": [
        "invalid-csv-bad-address.csv:3: site S2: primary_address: '127.0.1.300' is not an IPv4 or IPv6 address",
        "invalid-csv-bad-address.csv:5: site S3: backup_address: 'fe80::1::2' is not an IPv4 or IPv6 address",
    ],
    "invalid-csv-not-utf8.csv": [
        "invalid-csv-not-utf8.csv:3: not UTF-8 text (invalid continuation byte at byte 102); "
        "save the sheet as 'CSV UTF-8'"],
    "invalid-csv-terminal.csv": (DATA / "invalid-csv-terminal.expected").read_text(encoding="utf-8").splitlines(),
    "invalid-csv-lat-without-lon.csv": (DATA / "invalid-csv-lat-without-lon.expected").read_text(
        encoding="utf-8").splitlines(),
    "invalid-csv-values.csv": [line for line in (DATA / "invalid-csv-values.expected").read_text(
        encoding="utf-8").splitlines() if "names no site" not in line],
    "invalid-everything.csv": [
        "invalid-everything.csv:2: site S1: lon: lat without lon",
        "invalid-everything.csv:2: site S1: area: Input should be 'urban' or 'rural'",
        "invalid-everything.csv:2: site S1: terminals: duplicate terminal id 'T1'",
    ],
}


@pytest.mark.parametrize("name", sorted(IMPORT_EXPECTED))
def test_import_invalid_csv(name: str) -> None:
    """An invalid CSV: exit 2, every problem with its row and column on stderr, no YAML, no traceback."""
    proc = run("inventory", "import", name, cwd=DATA)
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""
    assert [line[2:] for line in proc.stderr.splitlines() if line.startswith("  ")] == IMPORT_EXPECTED[name]


def test_every_invalid_csv_is_imported() -> None:
    """Each committed invalid-*.csv fixture is also checked through `inventory import` (or said why not)."""
    across_files = {"invalid-duplicate-across-files.csv"}  # valid alone: the duplicate is in the other file
    assert {p.name for p in DATA.glob("invalid-*.csv")} == set(IMPORT_EXPECTED) | across_files


def test_missing_csv() -> None:
    """A CSV that does not exist: exit 2 and the reason."""
    proc = run("inventory", "import", "no-such.csv", cwd=DATA)
    assert proc.returncode == 2
    assert "no-such.csv: cannot read: No such file or directory" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("entry", "want"), [
    ("T1@127.0.0.1", {"id": "T1", "address": "127.0.0.1"}),
    ("T1@127.0.0.1:8080", {"id": "T1", "address": "127.0.0.1", "port": 8080}),
    ("T1@[::1]:8443", {"id": "T1", "address": "::1", "port": 8443}),
    ("T1@[2001:db8::5]", {"id": "T1", "address": "2001:db8::5"}),
    ("T1@::1", {"id": "T1", "address": "::1"}),
    ("T1@2001:db8::5", {"id": "T1", "address": "2001:db8::5"}),
])
def test_terminal_entries(entry: str, want: dict[str, object]) -> None:
    """ID@ADDRESS[:PORT], IPv6 in brackets when it has a port."""
    assert _split_terminal(entry) == want


@pytest.mark.parametrize("entry", ["T1", "T1@", "@127.0.0.1", "T1 @127.0.0.1", "T1@[::1", "T1@[::1]x"])
def test_bad_terminal_entries(entry: str) -> None:
    with pytest.raises(ValueError, match="is not ID@ADDRESS"):
        _split_terminal(entry)


def test_excel_sep_hint_and_multiline_cell(tmp_path: Path) -> None:
    """Excel's `sep=;` first line is honoured; a row is numbered by the line it starts on."""
    path = tmp_path / "s.csv"
    path.write_text('sep=;\nsite_id;name;county;area;primary_medium;primary_address\n'
                    'S1;"two\nlines";Ilam;urban;fiber;127.0.1.1\n'
                    'S2;two;Ilam;urban;fiber;not-an-address\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        import_csv(path)
    assert [(p.line, p.site, p.field) for p in info.value.problems] == [(5, "S2", "primary_address")]


def test_persian_digits_in_coordinates(tmp_path: Path) -> None:
    """Coordinates typed with Persian digits and the Arabic decimal separator are numbers."""
    path = tmp_path / "s.csv"
    path.write_text("site_id,name,county,area,lat,lon,primary_medium,primary_address\n"
                    "S1,یک,Ilam,urban,۳۳٫۶۳,۴۶٫۴۲,fiber,127.0.1.1\n", encoding="utf-8")
    doc = yaml.safe_load(import_csv(path))
    assert doc["sites"][0]["location"] == {"lat": 33.63, "lon": 46.42}


def test_row_longer_than_header(tmp_path: Path) -> None:
    """A comma inside an unquoted cell shifts the row: an error, not silently shifted data."""
    path = tmp_path / "s.csv"
    path.write_text("site_id,name,county,area,primary_medium,primary_address\n"
                    "S1,School 1, Ilam,Ilam,urban,fiber,127.0.1.1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        import_csv(path)
    assert str(info.value.problems[0]) == (
        f"{path}:2: site S1: 7 cells but 6 columns (a delimiter inside an unquoted cell?)")
