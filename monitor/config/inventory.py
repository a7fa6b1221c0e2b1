"""Inventory files: YAML or CSV (a spreadsheet export) into raw site records with their source lines."""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from monitor.config.yamlsource import (
    MAX_INPUT_BYTES,
    MAX_SITES,
    Path_,
    field_name,
    line_of,
    load_yaml,
    read_input,
    undecodable,
)
from monitor.errors import ConfigError, Problem

log = logging.getLogger(__name__)

# The csv module refuses a cell over 131,072 characters with a bare `_csv.Error`; its limit (process-wide)
# goes up to the largest input, so that our own limits below decide, with the file, row and column.
csv.field_size_limit(max(csv.field_size_limit(), MAX_INPUT_BYTES))
CSV_MAX_CELL_CHARS = 65_536  # a name holds at most 200; a terminals cell of 1,000 terminals about 30,000
CSV_MAX_COLUMNS = 16_384  # as many as a spreadsheet program has (Excel: A to XFD); it may export them all, empty
# A line with more delimiters than this is no spreadsheet row, and is refused before the csv module
# makes a list of its cells (a 10 MB line of commas would be five million of them).
CSV_MAX_LINE_DELIMITERS = 100_000
# One line of a CSV text at a time, split where io.StringIO(newline="") splits (\r\n, \r or \n, kept):
# the csv module then reads the text in place, without a second (4-bytes-a-character) copy of it.
_CSV_LINE = re.compile(r"[^\r\n]*(?:\r\n?|\n)|[^\r\n]+")

CSV_COLUMNS = (
    "site_id", "name", "county", "area", "lat", "lon", "upstream",
    "primary_medium", "primary_address", "backup_medium", "backup_address", "terminals", "owner", "contact",
)
CSV_REQUIRED = ("site_id", "name", "county", "area", "primary_medium", "primary_address")
# ID@ADDRESS[:PORT]; an IPv6 address with a port goes in brackets: T1@[2001:db8::5]:8443
_TERMINAL_RE = re.compile(r"^(?P<id>[^@\s]+)@(?:\[(?P<v6>[^\]]+)\]|(?P<addr>[^\s\[\]]+?))(?::(?P<port>\d+))?$")
# A sheet saved in a Persian locale may write coordinates with Persian digits and the Arabic decimal separator.
_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩٫", "01234567890123456789.")


@dataclass(slots=True)
class RawSite:
    """A site as read from a file, before validation, with where each field came from."""

    data: Any
    file: str
    row: int | None  # CSV: the row; YAML: None, the line is looked up in ``lines`` when someone asks
    lines: Mapping[Path_, int] = field(default_factory=dict)  # YAML: the whole file's path -> line map, shared
    base: Path_ = ()  # YAML: the site's path in that map
    columns: dict[Path_, str] | None = None  # CSV: path inside the site -> column; None for YAML
    cells: dict[Path_, str] = field(default_factory=dict)  # CSV: path -> the cell text it came from
    problems: list[Problem] = field(default_factory=list)  # found while reading, before validation

    @property
    def line(self) -> int | None:
        """Return the line (YAML) or row (CSV) where the site starts."""
        return self.row if self.row is not None or self.columns is not None else self.lines.get(self.base)

    @property
    def site_id(self) -> str | None:
        value = self.data.get("id") if isinstance(self.data, dict) else None
        return value if isinstance(value, str) and value else None

    def locate(self, loc: Path_) -> tuple[int | None, str]:
        """Return the line (or CSV row) and the field name (or column) of ``loc`` inside this site."""
        if self.columns is None:
            return line_of(self.lines, (*self.base, *loc)) or self.line, field_name(loc)
        for end in range(len(loc), 0, -1):
            if loc[:end] in self.columns:
                return self.line, self.columns[loc[:end]]
        return self.line, field_name(loc)

    def cell(self, loc: Path_) -> str | None:
        """Return the CSV cell text that ``loc`` came from, when it was one entry of a list cell."""
        return next((self.cells[loc[:end]] for end in range(len(loc), 0, -1) if loc[:end] in self.cells), None)


def read_inventory(path: Path, warnings: list[Problem] | None = None,
                   content: bytes | None = None) -> list[RawSite]:
    """Read one inventory file (``.csv`` or YAML; its bytes ``content`` when already read) into raw sites."""
    if path.suffix.lower() == ".csv":
        return read_csv(path, warnings, content)
    data, lines = load_yaml(path, content)
    file = str(path)
    if isinstance(data, list):
        return sites_from_yaml(data, file, lines, ())
    if not isinstance(data, dict):
        raise ConfigError([Problem(file, "an inventory file holds a list of sites or a mapping with 'sites:'",
                                   line=1)])
    extra = [Problem(file, "unknown key (an inventory file holds only 'sites')", lines.get((k,)), field=str(k))
             for k in data if k != "sites"]
    items = data.get("sites") or []
    if not isinstance(items, list):
        extra.append(Problem(file, "must be a list of sites", lines.get(("sites",)), field="sites"))
    if extra:
        raise ConfigError(extra)
    return sites_from_yaml(items, file, lines, ("sites",))


def sites_from_yaml(items: list[Any], file: str, lines: Mapping[Path_, int], prefix: Path_) -> list[RawSite]:
    """Wrap YAML site items with the file's line map and their place in it."""
    out = []
    for i, item in enumerate(items):
        raw = RawSite(item, file, None, lines, (*prefix, i))
        if not isinstance(item, dict):
            raw.problems.append(Problem(file, "a site must be a mapping", raw.line, field=field_name(raw.base)))
        out.append(raw)
    return out


def _split_terminal(text: str) -> dict[str, Any]:
    m = _TERMINAL_RE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not ID@ADDRESS[:PORT]")
    address, port = m.group("v6") or m.group("addr"), m.group("port")
    if m.group("addr") and ":" in address and port is not None:
        address, port = f"{address}:{port}", None  # bare IPv6: every colon belongs to the address
    out: dict[str, Any] = {"id": m.group("id"), "address": address}
    if port:
        out["port"] = int(port)
    return out


def _dialect(text: str) -> tuple[str, bool]:
    """Return the delimiter and whether the first line is Excel's ``sep=`` hint."""
    end = text.find("\n")
    first = (text if end < 0 else text[:end]).rstrip("\r")
    if first.lower().startswith("sep=") and len(first) == 5:
        return first[4], True
    # The header alone decides: data cells hold ';' (terminals) and ',' (names), header names hold neither.
    return max(",;\t", key=first.count) if any(d in first for d in ",;\t") else ",", False


def read_csv(path: Path, warnings: list[Problem] | None = None, content: bytes | None = None) -> list[RawSite]:
    """Read a spreadsheet export: any column order, case-insensitive headers, BOM and CRLF welcome.

    Problems with the file itself (unreadable, not UTF-8, a required column missing) raise ConfigError;
    problems within a row travel with its RawSite, so that validation reports them with all the others.
    """
    file = str(path)
    blob = read_input(path) if content is None else content
    try:
        text = blob.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise undecodable(file, blob, exc, "; save the sheet as 'CSV UTF-8'") from None
    del blob
    delimiter, hint = _dialect(text)
    reader = csv.reader(_csv_lines(text, delimiter, file), delimiter=delimiter)
    try:
        return _read_rows(reader, file, hint, warnings)
    except csv.Error as exc:  # not expected with the limit raised, but never a traceback
        raise ConfigError([Problem(file, f"unreadable CSV: {exc}", line=reader.line_num)]) from None


def _csv_lines(text: str, delimiter: str, file: str) -> Iterator[str]:
    """Yield the lines of ``text`` (line ends kept); refuse a line with more than CSV_MAX_LINE_DELIMITERS."""
    for number, match in enumerate(_CSV_LINE.finditer(text), start=1):
        line = match.group()
        if line.count(delimiter) > CSV_MAX_LINE_DELIMITERS:
            raise ConfigError([Problem(file, f"{line.count(delimiter):,} delimiters {delimiter!r} on one line: no "
                                             f"spreadsheet row has that many (at most {CSV_MAX_COLUMNS:,} columns); "
                                             "is this the right file?", number)])
        yield line


def _too_long(file: str, line: int, cells: list[str], names: list[str]) -> list[Problem]:
    """Return a problem for each cell over CSV_MAX_CELL_CHARS, naming its column."""
    if not cells or max(map(len, cells)) <= CSV_MAX_CELL_CHARS:
        return []
    return [Problem(file, f"a cell of {len(cell):,} characters, more than the {CSV_MAX_CELL_CHARS:,} a cell may hold",
                    line, None, (names[i] if i < len(names) and names[i] else None) or f"column {i + 1}")
            for i, cell in enumerate(cells) if len(cell) > CSV_MAX_CELL_CHARS]


def _read_rows(reader: Any, file: str, hint: bool, warnings: list[Problem] | None) -> list[RawSite]:
    if hint:
        next(reader, None)
    header = next(reader, None)
    header_line = reader.line_num
    if not header:
        raise ConfigError([Problem(file, "empty CSV: no header row", line=1)])
    if len(header) > CSV_MAX_COLUMNS:
        raise ConfigError([Problem(file, f"{len(header):,} columns, more than the {CSV_MAX_COLUMNS:,} a spreadsheet "
                                         "can have (is this the right file, and its delimiter?)", line=header_line)])
    problems = _too_long(file, header_line, header, [])
    if problems:
        raise ConfigError(problems)
    names = [h.strip().lower().replace(" ", "_") for h in header]
    problems = [Problem(file, "missing required column", line=header_line, field=col)
                for col in CSV_REQUIRED if col not in names]
    dupes = sorted(n for n, count in Counter(names).items() if count > 1 and n)
    problems += [Problem(file, "column appears more than once", line=header_line, field=n) for n in dupes]
    if problems:
        raise ConfigError(problems)
    for n in names:
        if n and n not in CSV_COLUMNS:
            w = Problem(file, f"unknown column ignored (known: {', '.join(CSV_COLUMNS)})", header_line, field=n)
            if warnings is None:
                log.warning("%s", w)
            else:
                warnings.append(w)
    wanted = [(i, n) for i, n in enumerate(names) if n in CSV_COLUMNS]
    out: list[RawSite] = []
    shapes: dict[tuple[Path_, ...], dict[Path_, str]] = {}
    id_column = names.index("site_id")
    while True:
        start = reader.line_num + 1  # a quoted cell may span lines: the row is where it starts
        row = next(reader, None)
        if row is None:
            break
        if not any(cell.strip() for cell in row):
            continue
        if len(out) == MAX_SITES:
            raise ConfigError([Problem(file, f"more than {MAX_SITES:,} rows: more sites than a config may have",
                                       start)])
        too_long = _too_long(file, start, row, names)
        if too_long:  # reported, and the row left out: a megabyte of name helps no message
            site_id = row[id_column].strip() if id_column < len(row) else ""
            site = site_id if 0 < len(site_id) <= 64 else None
            out.append(RawSite(None, file, start, problems=[replace(p, site=site) for p in too_long]))
            continue
        cells = {n: (row[i].strip() if i < len(row) else "") for i, n in wanted}
        raw = _csv_site(cells, file, start, shapes)
        if any(cell.strip() for cell in row[len(names):]):
            raw.problems.append(Problem(file, f"{len(row)} cells but {len(names)} columns "
                                              "(a delimiter inside an unquoted cell?)", start, raw.site_id))
        out.append(raw)
    return out


def _csv_site(cells: dict[str, str], file: str, line: int,
              shapes: dict[tuple[Path_, ...], dict[Path_, str]] | None = None) -> RawSite:
    """Return the raw site of one row; rows of one shape (which optional columns they fill) share one
    ``columns`` map from ``shapes``: 100,000 rows need a handful, not 100,000."""
    data: dict[str, Any] = {"id": cells["site_id"], "name": cells["name"], "county": cells["county"],
                            "area": cells["area"].lower()}
    columns: dict[Path_, str] = {("id",): "site_id", ("name",): "name", ("county",): "county", ("area",): "area"}
    raw = RawSite(data, file, line, columns=columns)
    for key in ("upstream", "owner", "contact"):
        if cells.get(key):
            data[key] = cells[key]
            columns[(key,)] = key
    lat, lon = cells.get("lat", "").translate(_DIGITS), cells.get("lon", "").translate(_DIGITS)
    if lat and lon:
        data["location"] = {"lat": lat, "lon": lon}
        columns.update({("location",): "lat", ("location", "lat"): "lat", ("location", "lon"): "lon"})
    elif lat or lon:
        given, missing = ("lat", "lon") if lat else ("lon", "lat")
        raw.problems.append(Problem(file, f"{given} without {missing}", line, raw.site_id, missing))
    links = [{"role": "primary", "medium": cells["primary_medium"].lower(), "address": cells["primary_address"]}]
    columns.update({("links", 0, "medium"): "primary_medium", ("links", 0, "address"): "primary_address"})
    if cells.get("backup_address") or cells.get("backup_medium"):
        links.append({"role": "backup", "medium": cells.get("backup_medium", "").lower(),
                      "address": cells.get("backup_address", "")})
        columns.update({("links", 1, "medium"): "backup_medium", ("links", 1, "address"): "backup_address",
                        ("links",): "backup_address"})
    data["links"] = links
    terminals = []
    for part in filter(None, (p.strip() for p in cells.get("terminals", "").split(";"))):
        try:
            terminals.append(_split_terminal(part))
        except ValueError as exc:
            raw.problems.append(Problem(file, str(exc), line, raw.site_id, "terminals"))
            continue
        raw.cells[("terminals", len(terminals) - 1)] = part
    if terminals:
        data["terminals"] = terminals
        columns[("terminals",)] = "terminals"
    if shapes is not None:
        raw.columns = shapes.setdefault(tuple(columns), columns)
    return raw
