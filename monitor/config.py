"""Load and validate the config and its inventories: every problem at once, each placed precisely."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from monitor.errors import ConfigError, Problem
from monitor.inventory import RawSite, read_inventory, sites_from_yaml
from monitor.model import Ident, Listen, Policy, Programme, Site, SnmpAuth, Strict
from monitor.yamlsource import Path_, line_of, load_yaml
from probes import PROBES
from probes.base import ProbeSettings


def _probes_model() -> type[BaseModel]:
    fields: dict[str, Any] = {kind: (probe.settings_model, Field(default_factory=probe.settings_model))
                              for kind, probe in PROBES.items()}
    return create_model("ProbesConfig", __config__=ConfigDict(extra="forbid", frozen=True), **fields)


ProbesConfig = _probes_model()


class Config(Strict):
    """The whole validated configuration, inventory included."""

    programme: Programme
    listen: Listen = Field(default_factory=Listen)
    data_dir: str = "./data"
    probes: ProbesConfig = Field(default_factory=ProbesConfig)  # type: ignore[valid-type]
    policy: Policy = Field(default_factory=Policy)
    auths: dict[Ident, SnmpAuth] = Field(default_factory=dict)
    inventory: tuple[str, ...] = ()
    sites: tuple[Site, ...] = ()
    # Filled by the loader: where the config came from and a hash of everything it read.
    source: str = ""
    version: str = ""
    # With --shard: upstream nodes this instance evaluates for its sites' sake but another shard reports.
    watch_only: frozenset[str] = frozenset()

    def reported_sites(self) -> tuple[Site, ...]:
        """Return the sites this instance reports (all of them unless sharded)."""
        if not self.watch_only:
            return self.sites
        return tuple(s for s in self.sites if s.id not in self.watch_only)

    def probe_settings(self, kind: str) -> ProbeSettings:
        """Return the settings of probe ``kind``."""
        settings: ProbeSettings = getattr(self.probes, kind)
        return settings

    def site_map(self) -> dict[str, Site]:
        """Return sites by id."""
        return {site.id: site for site in self.sites}


def _loc_text(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _pydantic_problems(exc: ValidationError, file: str, lines: dict[Path_, int], prefix: Path_ = (),
                       site: str | None = None, columns: dict[Path_, str] | None = None,
                       line: int | None = None) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required"
        field = _loc_text(loc) or None
        if columns is not None:
            col = next((columns[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in columns), None)
            field = col or field
        where = line_of(lines, (*prefix, *loc)) if columns is None else line
        problems.append(Problem(file, msg, where, site, field))
    return problems


def _validate_sites(raw_sites: list[RawSite]) -> tuple[list[Site], list[Problem]]:
    sites: list[Site] = []
    problems: list[Problem] = []
    for raw in raw_sites:
        if not isinstance(raw.data, dict):
            problems.append(Problem(raw.file, "a site must be a mapping", raw.line))
            continue
        try:
            sites.append(Site.model_validate(raw.data))
        except ValidationError as exc:
            problems += _pydantic_problems(exc, raw.file, raw.lines, (), raw.site_id,
                                           raw.columns if raw.columns or raw.file.endswith(".csv") else None,
                                           raw.line)
    return sites, problems


def _cross_check(sites: list[Site], raws: dict[str, RawSite], auths: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []

    def at(site_id: str, path: Path_) -> tuple[str, int | None]:
        raw = raws[site_id]
        return raw.file, (raw.lines.get(path, raw.line) if raw.lines else raw.line)

    seen: dict[str, Site] = {}
    for site in sites:
        if site.id in seen:
            file, line = at(site.id, ("id",))
            first = raws.get(f"{site.id}#first")
            where = f" (first at {first.file}:{first.line})" if first else ""
            problems.append(Problem(file, f"duplicate site id{where}", line, site.id, "id"))
        seen.setdefault(site.id, site)
        for tid, n in Counter(t.id for t in site.terminals).items():
            if n > 1:
                file, line = at(site.id, ("terminals",))
                problems.append(Problem(file, f"duplicate terminal id {tid!r}", line, site.id, "terminals"))
        for i, link in enumerate(site.links):
            if link.snmp and link.snmp.auth not in auths:
                file, line = at(site.id, ("links", i, "snmp", "auth"))
                problems.append(Problem(file, f"auth {link.snmp.auth!r} is not declared under 'auths'", line,
                                        site.id, f"links[{i}].snmp.auth"))
    for site in seen.values():
        if site.upstream is not None and site.upstream not in seen:
            file, line = at(site.id, ("upstream",))
            problems.append(Problem(file, f"upstream {site.upstream!r} names no site", line, site.id, "upstream"))
    reported: set[str] = set()
    for site in seen.values():
        chain = [site.id]
        node = site
        while node.upstream is not None and node.upstream in seen:
            if node.upstream in chain:
                cycle = [*chain[chain.index(node.upstream):], node.upstream]
                if not reported & set(cycle):
                    file, line = at(node.id, ("upstream",))
                    problems.append(Problem(file, "upstream cycle: " + " -> ".join(cycle), line, node.id,
                                            "upstream"))
                    reported |= set(cycle)
                break
            node = seen[node.upstream]
            chain.append(node.id)
    return problems


def load_config(path: str | Path, warnings: list[Problem] | None = None) -> Config:
    """Load ``path`` and every inventory it names; raise ConfigError listing every problem."""
    path = Path(path)
    data, lines = load_yaml(path)
    file = str(path)
    if not isinstance(data, dict):
        raise ConfigError([Problem(file, "the config must be a YAML mapping", 1)])
    problems: list[Problem] = []
    digest = hashlib.sha256(path.read_bytes())
    raw_sites: list[RawSite] = []
    inline = data.get("sites") or []
    if isinstance(inline, list):
        raw_sites += sites_from_yaml(inline, file, lines, ("sites",))
    else:
        problems.append(Problem(file, "'sites' must be a list", lines.get(("sites",)), field="sites"))
    inventory = data.get("inventory") or []
    if isinstance(inventory, str):
        inventory = [inventory]
    if not isinstance(inventory, list):
        problems.append(Problem(file, "'inventory' must be a list of files", lines.get(("inventory",)),
                                field="inventory"))
        inventory = []
    for i, name in enumerate(inventory):
        inv_path = (path.parent / str(name))
        try:
            raw_sites += read_inventory(inv_path, warnings)
            digest.update(inv_path.read_bytes())
        except ConfigError as exc:
            if exc.problems and exc.problems[0].message.startswith("cannot read"):
                problems.append(Problem(file, f"inventory file {str(inv_path)!r}: "
                                              f"{exc.problems[0].message}", lines.get(("inventory", i)),
                                        field=f"inventory[{i}]"))
            else:
                problems += exc.problems
    sites, site_problems = _validate_sites(raw_sites)
    problems += site_problems
    rest = {k: v for k, v in data.items() if k != "sites"}
    rest["inventory"] = [str(x) for x in inventory]
    config: Config | None = None
    try:
        config = Config.model_validate({**rest, "sites": []})
    except ValidationError as exc:
        problems += _pydantic_problems(exc, file, lines)
    raws: dict[str, RawSite] = {}
    for raw in raw_sites:
        if raw.site_id:
            if raw.site_id in raws:
                raws.setdefault(f"{raw.site_id}#first", raws[raw.site_id])
                raws[raw.site_id] = raw
            else:
                raws[raw.site_id] = raw
    auths = config.auths if config else (data.get("auths") or {})
    problems += _cross_check(sites, raws, auths if isinstance(auths, dict) else {})
    if problems or config is None:
        raise ConfigError(problems)
    return config.model_copy(update={"sites": tuple(sites), "source": file, "version": digest.hexdigest()[:16]})
