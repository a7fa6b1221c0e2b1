"""`readiness inventory import`: a spreadsheet CSV export to inventory YAML, validated on the way."""

from __future__ import annotations

import io
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

import yaml

from monitor.config import loader
from monitor.config.inventory import RawSite, read_csv
from monitor.config.loader import _cross_check, _validate_site, too_many_problems
from monitor.errors import ConfigError, Problem

log = logging.getLogger(__name__)

_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_STR, _MAP, _SEQ = "tag:yaml.org,2002:str", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"


class SiteWriter:
    """Write ``{"sites": [...]}`` as YAML one site at a time, as
    ``yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=120)`` writes it.

    The events go straight to libyaml's emitter: PyYAML's representer and serializer build a node per
    value first, which took 25 of the 26 seconds an import of 10,000 rows took. Only plain data comes
    in (what ``model_dump(mode="json")`` returns): dicts, lists, strings, numbers, booleans, None; no
    object twice (there are no anchors). The bytes are safe_dump's but for one thing: libyaml escapes
    characters beyond U+FFFF (an emoji is written "\U0001F600"), which reads back the same.
    """

    CACHE = 4096  # scalar events kept for reuse: keys, media, roles, ports repeat; names and addresses do not

    def __init__(self, stream: TextIO) -> None:
        self.dumper = _Dumper(stream, allow_unicode=True, width=120, sort_keys=False, default_flow_style=False)
        self.representer = yaml.representer.SafeRepresenter()
        # A string whose first character starts no implicit type (int, bool, null, ...) is plain text.
        self._typed_starts = set(self.dumper.yaml_implicit_resolvers)
        self._plain_starts = None not in self._typed_starts
        self._scalars: dict[tuple[type, Any], yaml.ScalarEvent] = {}
        # The emitter only reads an event: one object of each kind serves every collection.
        self._map_start = yaml.MappingStartEvent(None, _MAP, True, flow_style=False)
        self._seq_start = yaml.SequenceStartEvent(None, _SEQ, True, flow_style=False)
        self._map_end, self._seq_end = yaml.MappingEndEvent(), yaml.SequenceEndEvent()
        self.emit = self.dumper.emit
        for event in (yaml.StreamStartEvent(), yaml.DocumentStartEvent(explicit=False)):
            self.emit(event)
        self.emit(self._map_start)
        self.emit(self._scalar("sites"))
        self.emit(self._seq_start)

    def write(self, data: Any) -> None:
        """Write one item of the list."""
        emit = self.emit
        if isinstance(data, dict):
            emit(self._map_start)
            for key, value in data.items():
                emit(self._scalar(key))
                if isinstance(value, dict | list | tuple):
                    self.write(value)
                else:
                    emit(self._scalar(value))
            emit(self._map_end)
        elif isinstance(data, list | tuple):
            emit(self._seq_start)
            for value in data:
                self.write(value)
            emit(self._seq_end)
        else:
            emit(self._scalar(data))

    def close(self) -> None:
        """End the document and release the emitter."""
        for event in (self._seq_end, self._map_end, yaml.DocumentEndEvent(explicit=False), yaml.StreamEndEvent()):
            self.emit(event)
        self.dumper.dispose()

    def _scalar(self, value: Any) -> yaml.ScalarEvent:
        key = (type(value), value)
        event = self._scalars.get(key)
        if event is not None:
            return event
        if isinstance(value, str) and value and self._plain_starts and value[0] not in self._typed_starts:
            event = yaml.ScalarEvent(None, _STR, (True, True), value)
        else:  # as the serializer decides: plain only when reading it back gives the same type
            node: Any = self.representer.represent_data(value)  # a ScalarNode: plain values only
            implicit = (node.tag == self.dumper.resolve(yaml.ScalarNode, node.value, (True, False)),
                        node.tag == self.dumper.resolve(yaml.ScalarNode, node.value, (False, True)))
            event = yaml.ScalarEvent(None, node.tag, implicit, node.value, style=node.style)
        if len(self._scalars) < self.CACHE:
            self._scalars[key] = event
        return event


def import_csv(path: Path, warnings: list[Problem] | None = None) -> str:
    """Return inventory YAML for the CSV at ``path``; raise ConfigError naming every bad row and column.

    Each row is validated and written out in turn, then let go: memory holds the rows as read and
    the YAML, never a second copy of every site as models.
    """
    raws: list[RawSite | None] = list(read_csv(path, warnings))
    # A CSV holds no auths, and an upstream may well live in another inventory file: `readiness check`
    # on the config that names both decides; here it is a warning.
    elsewhere: list[Problem] = []
    across = _cross_check([r for r in raws if r is not None], auths=(), unknown_upstreams=elsewhere)
    for p in elsewhere:
        w = replace(p, message=f"{p.message} in this file (another inventory must have it)")
        if warnings is None:
            log.warning("%s", w)
        else:
            warnings.append(w)
    out = io.StringIO()
    out.write(f"# Imported from {path.name} by `readiness inventory import`.\n")
    writer = SiteWriter(out)
    problems: list[Problem] = []
    for i, raw in enumerate(raws):
        assert raw is not None
        raws[i] = None
        if len(problems) >= loader.MAX_PROBLEMS:
            problems.append(too_many_problems(raw))
            break
        site = _validate_site(raw, problems)
        if site is not None and not problems and not across:
            writer.write(site.model_dump(mode="json", exclude_none=True, exclude_defaults=True) | {"id": site.id})
    problems += across  # after the rows' own problems, as `readiness check` lists them
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: p.line or 0))
    writer.close()
    return out.getvalue()
