"""YAML loading that remembers the line of every key, so errors can name it."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import yaml

from monitor.errors import ConfigError, Problem

Path_ = tuple[str | int, ...]

# The most a config or inventory file may hold. A 100,000-site spreadsheet is about 15 MiB; the limit
# keeps a mistaken (or hostile) input from taking all memory before a single line is checked.
MAX_INPUT_BYTES = 64 << 20
_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))

# libyaml parses a 50,000-site inventory several times faster than the pure-Python parser.
_Loader: Any = type("_Loader", (getattr(yaml, "CSafeLoader", yaml.SafeLoader),), {})


def _placed(tag: str, construct: Any) -> Any:
    """Wrap a constructor so that a value it cannot build is a YAML error at its line: PyYAML lets the
    ValueError of a timestamp like 2026-13-45 ("month must be in 1..12") out with no place at all."""
    kind = tag.rsplit(":", 1)[-1]

    def placed(loader: Any, node: Any) -> Any:
        try:
            return construct(loader, node)
        except (ValueError, OverflowError, TypeError) as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {node.value!r} as a {kind}: {exc}", node.start_mark) from None

    return placed


for _tag, _construct in list(_Loader.yaml_constructors.items()):
    if _tag is not None and isinstance(_tag, str):
        _Loader.add_constructor(_tag, _placed(_tag, _construct))
# Aliases may add at most this many nodes to a document, or as many as its text holds if that is more:
# enough to share a block between sites, far too few for an alias bomb (1 KB, 10^9 nodes) to cost anything.
ALIAS_MAX_NODES = 100_000
# What one list or mapping of a config or inventory file may hold: every problem an entry can have is
# reported, so a 20 MB list of five million bad entries would otherwise be five million problems (GBs).
MAX_ENTRIES = 10_000
MAX_SITES = 250_000  # ...but the list of sites (a file's top-level list, or its `sites:`), in all files together
# The characters a YAML stream may hold (YAML 1.1 c-printable, as PyYAML's reader and libyaml check them).
_NOT_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class Unreadable(ConfigError):
    """A config or inventory file that cannot be read: missing, not a regular file, or too large."""

    def __init__(self, file: str, reason: str) -> None:
        self.reason = reason
        super().__init__([Problem(file, f"cannot read: {reason}")])


def read_input(path: Path, limit: int = MAX_INPUT_BYTES) -> bytes:
    """Return the bytes of a config or inventory file; raise Unreadable unless it is a regular file
    of at most ``limit`` bytes.

    A FIFO, a device (``/dev/zero``) or a directory is refused before a byte is read: the file is
    opened non-blocking, so a FIFO without a writer cannot hang the caller. A file that grows past the
    limit while it is read is refused too.
    """
    file = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        raise Unreadable(file, getattr(exc, "strerror", None) or str(exc)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = next((name for test, name in _FILE_KINDS if test(st.st_mode)), "a special file")
            raise Unreadable(file, f"{kind}, not a regular file")
        parts: list[bytes] = []
        size = st.st_size if st.st_size > limit else 0  # too large already: read nothing
        while size <= limit:
            chunk = os.read(fd, min(limit + 1 - size, max(st.st_size + 1 - size, 1 << 16)))
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise Unreadable(file, exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
    if size > limit:
        raise Unreadable(file, f"larger than {limit / 2**20:g} MiB, the most a config or inventory file may hold")
    return b"".join(parts)  # one part: that very object, no copy


def field_name(path: Path_) -> str:
    """Return ``path`` as a field name: links[0].address."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def undecodable(file: str, data: bytes, exc: UnicodeDecodeError, hint: str = "") -> ConfigError:
    """Return the error for a file that is not UTF-8, placed on the line of the first bad byte."""
    line = data[: exc.start].count(b"\n") + 1
    return ConfigError([Problem(file, f"not UTF-8 text ({exc.reason} at byte {exc.start}){hint}", line)])


class _TooMany(Exception):
    """A list or mapping with more entries than it may have."""

    def __init__(self, path: Path_, line: int, limit: int, kind: str) -> None:
        super().__init__(f"more than {limit:,} entries in one {kind}")
        self.path, self.line = path, line


def entries_limit(path: Path_) -> int:
    """Return how many entries the list or mapping at ``path`` may hold."""
    return MAX_SITES if path in ((), ("sites",)) else MAX_ENTRIES


class _NotPlain(Exception):
    """The document uses anchors, aliases, explicit tags or merge keys: PyYAML's composer reads it."""


class _Redo(Exception):
    """Read without a line map, the document turned out to need one (a duplicate key, too many entries)."""


class _EventReader:
    """Build the data (and, with ``lines``, the line map) straight from parser events, for plain documents.

    PyYAML's composer makes a Python node object per scalar and resolves each through several Python
    calls: that, not parsing, is most of the time a 50,000-site inventory takes (about 35 s of CPU,
    as long as safe_load). The events alone take 2.5 s, this reader 7 s (over 4x faster; ``python
    bench/yaml_load.py``). Whatever this reader does not handle raises _NotPlain.

    Without ``lines`` no line is kept (the map of a 10,000-site file holds 260,000 paths, 37 MB, more than
    the sites it places), and what needs one raises _Redo: the caller reads again with the map.
    """

    def __init__(self, text: str, lines: bool = True) -> None:
        self.loader = loader = _Loader(text)
        self.keep = lines
        self.nodes = 0
        self.lines: dict[Path_, int] = {}
        self.dupes: list[tuple[Path_, int]] = []
        self._scalars: dict[tuple[str, str], Any] = {}
        # A plain scalar whose first character starts no implicit type (int, bool, null, ...) is a string.
        self._typed_starts = set(loader.yaml_implicit_resolvers)
        self._any_start = None in self._typed_starts or bool(loader.yaml_path_resolvers)

    def read(self) -> tuple[Any, dict[Path_, int], list[tuple[Path_, int]]]:
        """Return the data, the line map and the duplicate keys of the document."""
        try:
            return self._document(), self.lines, self.dupes
        finally:
            self.loader.dispose()

    def _document(self) -> Any:
        loader = self.loader
        loader.get_event()  # stream start
        if loader.check_event(yaml.StreamEndEvent):
            return None
        loader.get_event()  # document start
        data = self._node(())
        loader.get_event()  # document end
        if not loader.check_event(yaml.StreamEndEvent):
            raise _NotPlain  # a second document: the composer words that error
        return data

    def _node(self, path: Path_) -> Any:
        event = self.loader.get_event()
        self.nodes += 1
        if self.keep:
            self.lines.setdefault(path, event.start_mark.line + 1)
        if isinstance(event, yaml.AliasEvent) or event.anchor is not None:
            raise _NotPlain
        if isinstance(event, yaml.ScalarEvent):
            return self._scalar(event)
        if event.tag is not None and not event.implicit:
            raise _NotPlain
        limit = entries_limit(path)
        if isinstance(event, yaml.SequenceStartEvent):
            items: list[Any] = []
            while not self.loader.check_event(yaml.SequenceEndEvent):
                if len(items) == limit:
                    if not self.keep:
                        raise _Redo
                    raise _TooMany(path, self.lines[path], limit, "list")
                items.append(self._node((*path, len(items))))
            self.loader.get_event()
            return items
        mapping: dict[Any, Any] = {}
        seen: set[str] = set()
        while not self.loader.check_event(yaml.MappingEndEvent):
            if len(seen) == limit:
                if not self.keep:
                    raise _Redo
                raise _TooMany(path, self.lines[path], limit, "mapping")
            key_event = self.loader.get_event()
            if not isinstance(key_event, yaml.ScalarEvent) or key_event.anchor is not None:
                raise _NotPlain
            key = self._scalar(key_event)
            child = (*path, str(key_event.value))
            if key_event.value in seen:
                if not self.keep:
                    raise _Redo
                self.dupes.append((child, key_event.start_mark.line + 1))  # type: ignore[union-attr]
            seen.add(key_event.value)
            if self.keep:
                self.lines[child] = key_event.start_mark.line + 1  # type: ignore[union-attr]  # every event has one
            mapping[key] = self._node(child)
        self.loader.get_event()
        return mapping

    def _scalar(self, event: Any) -> Any:
        if event.tag not in (None, "!"):
            raise _NotPlain
        value = event.value
        if not self._any_start and (not event.implicit[0] or (value and value[0] not in self._typed_starts)):
            return value  # what resolve() would say, without its Python calls: 2.3M of them for 50,000 sites
        tag = self.loader.resolve(yaml.ScalarNode, value, event.implicit)
        if tag == "tag:yaml.org,2002:str":
            return value
        key = (tag, value)
        if key not in self._scalars:
            construct = self.loader.yaml_constructors.get(tag)
            if construct is None:
                raise _NotPlain  # a merge key, or a tag the safe loader refuses: let it say so
            node = yaml.ScalarNode(tag, value, event.start_mark, event.end_mark, event.style)
            self._scalars[key] = construct(self.loader, node)
        return self._scalars[key]


def _lines(node: yaml.Node, path: Path_, out: dict[Path_, int], dupes: list[tuple[Path_, int]],
           active: frozenset[int] = frozenset()) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if id(node) in active:
        return  # an alias inside its own anchor (`a: &x [*x]`): the data is recursive, the walk must not be
    active |= {id(node)}
    if isinstance(node, yaml.CollectionNode) and len(node.value) > entries_limit(path):
        kind = "mapping" if isinstance(node, yaml.MappingNode) else "list"
        raise _TooMany(path, out[path], entries_limit(path), kind)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = (*path, key)
            line = key_node.start_mark.line + 1
            if key in seen and key != "<<":
                dupes.append((child, line))
            seen.add(key)
            out[child] = line
            _lines(value_node, child, out, dupes, active)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, (*path, i), out, dupes, active)


def _read_nodes(text: str) -> tuple[Any, dict[Path_, int], list[tuple[Path_, int]]]:
    """Return the data, the line map and the duplicate keys of any YAML text PyYAML's safe loader reads."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    lines: dict[Path_, int] = {}
    dupes: list[tuple[Path_, int]] = []
    if node is not None:
        _lines(node, (), lines, dupes)
    return data, lines, dupes


def _check_aliases(text: str) -> None:
    """Refuse a document whose aliases would expand it past ALIAS_MAX_NODES, before anything is built.

    One pass over the parser's events: each anchored node's expanded size is known when it ends, and
    each alias adds that size. The first alias over the limit is named, on its own line.
    """
    loader = _Loader(text)
    try:
        sizes: dict[str | None, int] = {}  # anchor -> nodes its node expands to
        starts: list[tuple[str | None, int]] = []  # open collections: (anchor, expanded nodes before it)
        nodes = added = 0  # nodes in the text, nodes aliases add
        while not loader.check_event(yaml.StreamEndEvent):
            event = loader.get_event()
            if isinstance(event, yaml.AliasEvent):
                added += sizes.get(event.anchor, 1)  # undefined, or inside its own anchor: the composer says
                if added > ALIAS_MAX_NODES and added > nodes:
                    mark: Any = event.start_mark  # libyaml's Mark: the stubs know only PyYAML's
                    raise yaml.composer.ComposerError(
                        None, None, f"alias *{event.anchor} takes the document past the {ALIAS_MAX_NODES:,} nodes "
                        "aliases may add (or as many as the text holds, if more): an alias bomb?", mark)
            elif isinstance(event, yaml.ScalarEvent):
                nodes += 1
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            elif isinstance(event, yaml.CollectionStartEvent):
                starts.append((event.anchor, nodes + added))
                nodes += 1
            elif isinstance(event, yaml.CollectionEndEvent):
                anchor, before = starts.pop()
                if anchor is not None:
                    sizes[anchor] = nodes + added - before
    finally:
        loader.dispose()


def _compose(text: str, lines: bool = True) -> tuple[Any, dict[Path_, int] | None, list[tuple[Path_, int]], int]:
    """Return the data, the line map (None: not kept, ``lines`` false), the duplicate keys and the number of
    nodes of a YAML text, the fast way when it can."""
    try:
        if not lines:
            reader = _EventReader(text, lines=False)
            try:
                data, _, _ = reader.read()
                return data, None, [], reader.nodes
            except _Redo:
                pass  # the reader with the map says what is wrong and where
        reader = _EventReader(text)
        data, found, dupes = reader.read()
        return data, found, dupes, reader.nodes
    except _NotPlain:
        _check_aliases(text)
        data, found, dupes = _read_nodes(text)
        return data, found, dupes, len(found)


class LineMap(MutableMapping[Path_, int]):
    """The line of every key path of a YAML file, read from the file again the first time someone asks.

    Only problems need lines, and a valid inventory has none: its map is never built. ``nodes`` is the
    number of values the file holds, known without the map.
    """

    def __init__(self, text: str, nodes: int, built: dict[Path_, int] | None = None) -> None:
        self._text: str | None = None if built is not None else text
        self._map = built
        self.nodes = nodes

    def _lines(self) -> dict[Path_, int]:
        if self._map is None:
            assert self._text is not None
            self._map = _compose(self._text)[1] or {}
            self._text = None
        return self._map

    def __getitem__(self, key: Path_) -> int:
        return self._lines()[key]

    def __setitem__(self, key: Path_, line: int) -> None:
        self._lines()[key] = line

    def __delitem__(self, key: Path_) -> None:
        del self._lines()[key]

    def __iter__(self) -> Iterator[Path_]:
        return iter(self._lines())

    def __len__(self) -> int:
        return len(self._lines())


def load_yaml(path: Path, content: bytes | None = None) -> tuple[Any, LineMap]:
    """Load a YAML file (its bytes ``content`` when already read); return its data and a map from key path to line
    (built when first read: see `LineMap`)."""
    file = str(path)
    raw = read_input(path) if content is None else content
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise undecodable(file, raw, exc) from None
    bad = _NOT_PRINTABLE.search(text)
    if bad:  # PyYAML would report it at "line 1 of <unicode string>"
        char, at = bad.group(), bad.start()
        column = at - text.rfind("\n", 0, at)
        raise ConfigError([Problem(file, f"invalid YAML: character {char!r} (U+{ord(char):04X}) at column {column} "
                                         "is not allowed in YAML", text.count("\n", 0, at) + 1)])
    try:
        data, lines, dupes, nodes = _compose(text, lines=False)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or "syntax error"
        if exc.context and exc.context_mark:
            problem += f" ({exc.context} that starts on line {exc.context_mark.line + 1})"
        raise ConfigError([Problem(file, f"invalid YAML: {problem}", line=line)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(file, f"invalid YAML: {exc}", line=1)]) from None
    except RecursionError:
        raise ConfigError([Problem(file, "invalid YAML: nested too deeply", line=1)]) from None
    except _TooMany as exc:
        raise ConfigError([Problem(file, str(exc), exc.line, field=field_name(exc.path) or None)]) from None
    if dupes:
        # PyYAML keeps the last of two equal keys without a word; a strict config must not.
        raise ConfigError([Problem(file, "duplicate key", line, field=field_name(key)) for key, line in dupes])
    return data, LineMap(text, nodes, lines)


def line_of(lines: Mapping[Path_, int], loc: Path_) -> int | None:
    """Return the line of the longest prefix of ``loc`` that the file has."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None
