"""Inventory files: YAML or CSV (a spreadsheet export) into raw site records with their source lines."""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.errors import ConfigError, Problem
from monitor.yamlsource import Path_, load_yaml

log = logging.getLogger(__name__)

CSV_COLUMNS = (
    "site_id", "name", "county", "area", "lat", "lon", "upstream",
    "primary_medium", "primary_address", "backup_medium", "backup_address", "terminals",
)
CSV_REQUIRED = ("site_id", "name", "county", "area", "primary_medium", "primary_address")
# ID@ADDRESS[:PORT]; an IPv6 address with a port goes in brackets: T1@[2001:db8::5]:8443
_TERMINAL_RE = re.compile(r"^(?P<id>[^@\s]+)@(?:\[(?P<v6>[^\]]+)\]|(?P<addr>[^\s\[\]]+?))(?::(?P<port>\d+))?$")


@dataclass
class RawSite:
    """A site as read from a file, before validation, with where each field came from."""

    data: dict[str, Any]
    file: str
    line: int | None
    lines: dict[Path_, int] = field(default_factory=dict)  # YAML: path inside the site -> line
    columns: dict[Path_, str] = field(default_factory=dict)  # CSV: path inside the site -> column

    @property
    def site_id(self) -> str | None:
        value = self.data.get("id") if isinstance(self.data, dict) else None
        return value if isinstance(value, str) else None


def read_inventory(path: Path, warnings: list[Problem] | None = None) -> list[RawSite]:
    """Read one inventory file (``.csv`` or YAML) into raw sites."""
    if path.suffix.lower() == ".csv":
        return read_csv(path, warnings)
    data, lines = load_yaml(path)
    if isinstance(data, dict) and set(data) <= {"sites"}:
        items = data.get("sites") or []
        prefix: Path_ = ("sites",)
    elif isinstance(data, list):
        items, prefix = data, ()
    else:
        raise ConfigError([Problem(str(path), "an inventory file holds a list of sites or a mapping with 'sites:'",
                                   line=1)])
    if not isinstance(items, list):
        raise ConfigError([Problem(str(path), "'sites' must be a list", line=lines.get(prefix))])
    return sites_from_yaml(items, str(path), lines, prefix)


def sites_from_yaml(items: list[Any], file: str, lines: dict[Path_, int], prefix: Path_) -> list[RawSite]:
    """Wrap YAML site items with the line map of each."""
    out = []
    for i, item in enumerate(items):
        base = (*prefix, i)
        sub = {k[len(base):]: v for k, v in lines.items() if k[: len(base)] == base}
        out.append(RawSite(item, file, lines.get(base), sub))
    return out


def _split_terminal(text: str) -> dict[str, Any]:
    m = _TERMINAL_RE.match(text.strip())
    if not m:
        raise ValueError(f"terminal {text.strip()!r} is not ID@ADDRESS[:PORT]")
    address, port = m.group("v6") or m.group("addr"), m.group("port")
    if m.group("addr") and address.count(":") >= 1 and port is not None and ":" in address:
        address, port = f"{address}:{port}", None  # bare IPv6: every colon belongs to the address
    out: dict[str, Any] = {"id": m.group("id"), "address": address}
    if port:
        out["port"] = int(port)
    return out


def read_csv(path: Path, warnings: list[Problem] | None = None) -> list[RawSite]:
    """Read a spreadsheet export: any column order, case-insensitive headers, BOM and CRLF welcome."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise ConfigError([Problem(str(path), f"cannot read: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(str(path), f"not UTF-8 text ({exc.reason} at byte {exc.start}); "
                                              "save the sheet as 'CSV UTF-8'")]) from None
    try:
        dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    header = next(reader, None)
    file = str(path)
    if not header:
        raise ConfigError([Problem(file, "empty CSV: no header row", line=1)])
    names = [h.strip().lower().replace(" ", "_") for h in header]
    problems = [Problem(file, f"missing required column {col!r}", line=1, field=col)
                for col in CSV_REQUIRED if col not in names]
    dupes = sorted({n for n in names if names.count(n) > 1 and n})
    problems += [Problem(file, f"column {n!r} appears more than once", line=1, field=n) for n in dupes]
    if problems:
        raise ConfigError(problems)
    for n in names:
        if n and n not in CSV_COLUMNS:
            w = Problem(file, f"unknown column {n!r} ignored (known: {', '.join(CSV_COLUMNS)})", line=1, field=n)
            log.warning("%s", w)
            if warnings is not None:
                warnings.append(w)
    out: list[RawSite] = []
    row_problems: list[Problem] = []
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        cells = {n: (row[i].strip() if i < len(row) else "") for i, n in enumerate(names) if n in CSV_COLUMNS}
        raw, problems = _csv_site(cells, file, line)
        row_problems += problems
        if raw is not None:
            out.append(raw)
    if row_problems:
        raise ConfigError(row_problems)
    return out


def _csv_site(cells: dict[str, str], file: str, line: int) -> tuple[RawSite | None, list[Problem]]:
    site_id = cells.get("site_id") or None
    data: dict[str, Any] = {k: cells[src] for k, src in
                            (("id", "site_id"), ("name", "name"), ("county", "county"), ("area", "area"))}
    data["area"] = data["area"].lower()
    columns: dict[Path_, str] = {("id",): "site_id", ("name",): "name", ("county",): "county", ("area",): "area"}
    problems: list[Problem] = []
    if cells.get("upstream"):
        data["upstream"] = cells["upstream"]
        columns[("upstream",)] = "upstream"
    lat, lon = cells.get("lat", ""), cells.get("lon", "")
    if lat or lon:
        try:
            data["location"] = {"lat": float(lat), "lon": float(lon)}
            columns[("location",)] = "lat"
            columns[("location", "lon")] = "lon"
        except ValueError:
            problems.append(Problem(file, f"lat/lon {lat!r}, {lon!r} are not numbers", line, site_id, "lat"))
    links = [{"role": "primary", "medium": cells["primary_medium"].lower(), "address": cells["primary_address"]}]
    columns[("links", 0, "medium")] = "primary_medium"
    columns[("links", 0, "address")] = "primary_address"
    if cells.get("backup_address") or cells.get("backup_medium"):
        links.append({"role": "backup", "medium": cells.get("backup_medium", "").lower(),
                      "address": cells.get("backup_address", "")})
        columns[("links", 1, "medium")] = "backup_medium"
        columns[("links", 1, "address")] = "backup_address"
        columns[("links",)] = "backup_address"
    data["links"] = links
    terminals = []
    for part in filter(None, (p.strip() for p in cells.get("terminals", "").split(";"))):
        try:
            terminals.append(_split_terminal(part))
        except ValueError as exc:
            problems.append(Problem(file, str(exc), line, site_id, "terminals"))
    if terminals:
        data["terminals"] = terminals
        columns[("terminals",)] = "terminals"
    return RawSite(data, file, line, columns=columns), problems
