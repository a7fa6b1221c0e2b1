"""Load and validate the config and its inventories: every problem at once, each placed precisely."""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator
from pydantic_core import ErrorDetails

from monitor.config.compact import compact
from monitor.config.inventory import RawSite, read_inventory, sites_from_yaml
from monitor.config.reports import ActionsPolicy, ReportSpec, Smtp
from monitor.config.targets import BUILDERS
from monitor.config.yamlsource import MAX_SITES, Path_, Unreadable, field_name, line_of, load_yaml, read_input
from monitor.core.model import CountyOwner, Ident, Listen, Policy, Programme, Site, Strict, Witness
from monitor.core.schedule import MaintenanceWindow, Waiver
from monitor.errors import ConfigError, Problem
from probes import PROBES
from probes.base import ProbeSettings
from probes.credentials import Auth, HttpAuth, SnmpAuth


def _probes_model() -> type[BaseModel]:
    fields: dict[str, Any] = {kind: (probe.settings_model, Field(default_factory=probe.settings_model))
                              for kind, probe in PROBES.items()}
    return create_model("ProbesConfig", __config__=ConfigDict(extra="forbid", frozen=True), **fields)


ProbesConfig = _probes_model()


class MetricsSettings(Strict):
    """What /metrics exports beyond the default budget (docs/metrics.md: at most 15 series per site)."""

    # Per-link and per-terminal detail: every echo and SNMP value, interface counters, connect times.
    detail: bool = False


class BoardSettings(Strict):
    """The committee's board at ``/`` (monitor/web/board.py)."""

    # Map tiles for deployments that run a tile server, e.g. https://tiles.example/{z}/{x}/{y}.png. Default none:
    # the map is drawn from the sites' coordinates alone and the page asks nothing of anyone but this service.
    tile_url: str | None = None
    tile_attribution: str = Field("", max_length=200)  # shown under the map (tile servers ask for it)

    @field_validator("tile_url")
    @classmethod
    def _tile_template(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"tile_url must be an http:// or https:// URL, got {url!r}")
        holes = re.findall(r"\{[^{}]*\}", url)
        if sorted(holes) != ["{x}", "{y}", "{z}"] or url.count("{") != 3 or url.count("}") != 3:
            raise ValueError("tile_url must hold {z}, {x} and {y} once each and no other braces, "
                             "e.g. https://tiles.example/{z}/{x}/{y}.png")
        if any(c.isspace() or c in "\"'<>" for c in url):
            raise ValueError("tile_url must not contain spaces, quotes or angle brackets")
        return url


class Config(Strict):
    """The whole validated configuration, inventory included."""

    programme: Programme
    listen: Listen = Field(default_factory=Listen)
    data_dir: str = "./data"
    probes: ProbesConfig = Field(default_factory=ProbesConfig)  # type: ignore[valid-type]
    policy: Policy = Field(default_factory=Policy)
    auths: dict[Ident, Auth] = Field(default_factory=dict)
    # Addresses the monitor must reach to trust its own view; sites without an upstream hang off these.
    witnesses: tuple[Witness, ...] = ()
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    board: BoardSettings = Field(default_factory=BoardSettings)
    maintenance: tuple[MaintenanceWindow, ...] = ()
    waivers: tuple[Waiver, ...] = ()
    inventory: tuple[str, ...] = ()
    sites: tuple[Site, ...] = ()
    counties: dict[str, CountyOwner] = Field(default_factory=dict)  # owner per county (a site's own wins)
    actions: ActionsPolicy = Field(default_factory=ActionsPolicy)
    reports: tuple[ReportSpec, ...] = ()
    smtp: Smtp | None = None
    # Filled by the loader: where the config came from and a hash of everything it read.
    source: str = ""
    version: str = ""
    # With --shard: upstream nodes this instance evaluates for its sites' sake but another shard reports.
    watch_only: frozenset[str] = frozenset()
    # With --shard: which shard this instance is (K, N), and the whole inventory's polling places, nodes and
    # terminals per (county, area, kind), so the rules can count a dead shard's sites as unknown.
    shard: tuple[int, int] = (1, 1)
    inventory_cells: tuple[tuple[str, str, str, int, int], ...] = ()

    @field_validator("witnesses")
    @classmethod
    def _unique_witnesses(cls, witnesses: tuple[Witness, ...]) -> tuple[Witness, ...]:
        labels = [w.label for w in witnesses]
        twice = sorted({label for label in labels if labels.count(label) > 1})
        if twice:
            raise ValueError(f"witness {', '.join(twice)} is listed more than once")
        return witnesses

    def reported_sites(self) -> tuple[Site, ...]:
        """Return the sites this instance reports (all of them unless sharded)."""
        if not self.watch_only:
            return self.sites
        return tuple(s for s in self.sites if s.id not in self.watch_only)

    def whole_inventory(self) -> tuple[tuple[str, str, str, int, int], ...]:
        """Return (county, area, kind, sites, terminals) of the whole inventory, every shard's sites included."""
        if self.inventory_cells:
            return self.inventory_cells
        return inventory_cells(self.sites)

    def probe_settings(self, kind: str) -> ProbeSettings:
        """Return the settings of probe ``kind``."""
        settings: ProbeSettings = getattr(self.probes, kind)
        return settings.with_credentials(self.auths)

    def owner_of(self, site: Site) -> tuple[str | None, str | None]:
        """Return (owner, contact) of ``site``: its own, else its county's, else (None, None)."""
        if site.owner is not None:
            return site.owner, site.contact
        county = self.counties.get(site.county)
        return (county.owner, county.contact) if county else (None, None)

    def site_map(self) -> dict[str, Site]:
        """Return sites by id."""
        return {site.id: site for site in self.sites}

    def record(self) -> dict[str, Any]:
        """Return what the event store keeps of this config when it comes into force (a config row's payload).

        Enough for an audit to report on the period later without trusting the config at hand: the
        schedule in force (maintenance windows and waivers, with who approved them and why) and the
        timezone their local times are read in. ``shard`` is which shard (K of N) the instance was, so a
        multi-shard audit knows whose record each store is (rows written before it was kept have none: unsharded),
        and ``reported`` the sites it owned (``sites`` counts the upstream nodes it watched for them too).
        """
        return {"source": self.source, "sites": len(self.sites), "timezone": self.programme.timezone,
                "shard": list(self.shard), "reported": len(self.reported_sites()),
                "maintenance": [w.model_dump(mode="json", exclude_none=True) for w in self.maintenance],
                "waivers": [w.model_dump(mode="json") for w in self.waivers]}


# Fields the loader fills in: a config file that sets them is as wrong as one with a typo.
_LOADER_FIELDS = ("source", "version", "watch_only", "shard", "inventory_cells")


def inventory_cells(sites: Iterable[Site]) -> tuple[tuple[str, str, str, int, int], ...]:
    """Return (county, area, kind, sites, terminals) per cell of ``sites``, sorted."""
    cells: dict[tuple[str, str, str], list[int]] = {}
    for s in sites:
        cell = cells.setdefault((s.county, s.area, s.kind), [0, 0])
        cell[0] += 1
        cell[1] += len(s.terminals)
    return tuple((*k, n, t) for k, (n, t) in sorted(cells.items()))
# Validation stops after this many problems: nobody reads more, and each one costs memory.
MAX_PROBLEMS = 10_000
# Nodes the config may hold besides its sites (each of which pydantic may turn into a problem at once).
MAX_CONFIG_NODES = 1_000_000


def _clean_loc(loc: Iterable[str | int]) -> Path_:
    # pydantic puts validator and dict-key markers in the location ("function-after[...]", "[key]").
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))


def _message(err: ErrorDetails) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required"
    if err["type"] == "int_parsing_size":  # pydantic says "input string" of a float too
        return "number too large"
    return err["msg"].removeprefix("Value error, ")


def _config_problems(exc: ValidationError, file: str, lines: Mapping[Path_, int]) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = _clean_loc(err["loc"])
        msg = _message(err)
        if err["type"] == "extra_forbidden" and len(loc) == 2 and loc[0] == "probes":
            msg = f"unknown probe kind {loc[1]!r} (known: {', '.join(PROBES)})"
        problems.append(Problem(file, msg, line_of(lines, loc), None, field_name(loc) or None))
    return problems


def _anchored(data: dict[str, Any], directory: Path) -> dict[str, Any]:
    """Return ``data`` with each terminal's relative ``http.ca_file`` read from ``directory`` (the declaring file's)."""
    terminals = data.get("terminals")
    if not isinstance(terminals, list):
        return data
    out = []
    for t in terminals:
        ca_file = _get(t, "http", "ca_file")
        if isinstance(ca_file, str) and ca_file and not Path(ca_file).is_absolute():
            t = {**t, "http": {**t["http"], "ca_file": str(directory / ca_file)}}
        out.append(t)
    return {**data, "terminals": out}


def _anchored_smtp(data: dict[str, Any], directory: Path) -> dict[str, Any]:
    """Return ``data`` with a relative ``smtp.ca_file`` read from ``directory`` (the config file's)."""
    smtp = data.get("smtp")
    ca_file = smtp.get("ca_file") if isinstance(smtp, dict) else None
    if isinstance(ca_file, str) and ca_file and not Path(ca_file).is_absolute():
        return {**data, "smtp": {**smtp, "ca_file": str(directory / ca_file)}}  # type: ignore[dict-item]
    return data


def _smtp_check(config: Config, file: str, lines: Mapping[Path_, int]) -> list[Problem]:
    """The SMTP server's CA bundle must load now, not when the first report is mailed."""
    import ssl

    if config.smtp is None or config.smtp.ca_file is None:
        return []
    try:
        ssl.create_default_context(cafile=config.smtp.ca_file)
    except (OSError, ssl.SSLError) as exc:
        return [Problem(file, f"{config.smtp.ca_file} does not load as CA certificates: {exc}",
                        line_of(lines, ("smtp", "ca_file")), None, "smtp.ca_file")]
    return []


def _validate_sites(raw_sites: list[RawSite]) -> tuple[list[Site], list[Problem]]:
    """Validate each raw site; return the valid ones and every problem, the reader's included."""
    sites: list[Site] = []
    problems: list[Problem] = []
    for raw in raw_sites:
        if len(problems) >= MAX_PROBLEMS:
            problems.append(too_many_problems(raw))
            break
        site = _validate_site(raw, problems)
        if site is not None:
            sites.append(site)
    return sites, problems


def too_many_problems(raw: RawSite) -> Problem:
    """Return the last problem of a validation stopped at MAX_PROBLEMS, placed at the site it stopped at."""
    return Problem(raw.file, f"more than {MAX_PROBLEMS:,} problems: validation stopped here", raw.line)


def _validate_site(raw: RawSite, problems: list[Problem]) -> Site | None:
    """Return the site ``raw`` describes, or None; add its problems (the reader's included) to ``problems``."""
    problems += raw.problems
    if not isinstance(raw.data, dict):
        return None
    try:
        return compact(Site.model_validate(_anchored(raw.data, Path(raw.file).parent)))
    except ValidationError as exc:
        for err in exc.errors():
            loc = _clean_loc(err["loc"])
            line, field = raw.locate(loc)
            msg = _message(err)
            cell = raw.cell(loc)
            if cell is not None:
                msg += f" (in {cell!r})"
            problems.append(Problem(raw.file, msg, line, raw.site_id, field))
        return None


def _get(data: Any, *path: str | int) -> Any:
    for key in path:
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and isinstance(key, int) and key < len(data):
            data = data[key]
        else:
            return None
    return data


def cycle_allowance(settings: ProbeSettings) -> float:
    """Return how long the service lets one cycle run: what it reaches by then is probed, the rest is not."""
    return max(settings.interval_seconds * 0.9, settings.cycle_budget_seconds() + 0.5)


def _tcp_check(settings: ProbeSettings, n: int, file: str, lines: Mapping[Path_, int]) -> Problem | None:
    """TCP connects ``concurrency`` at a time, each up to its timeout: every terminal must get its turn
    within the cycle, or the ones beyond are never probed (unknown, every cycle)."""
    need, allowed = settings.cycle_seconds_for(n), cycle_allowance(settings)
    if need <= allowed:
        return None
    rounds = max(1, int(allowed // settings.timeout_seconds))
    least = -(-n // rounds)
    return Problem(
        file, f"{n} terminals need up to {need:.3g}s per cycle (rounds of concurrency={settings.concurrency} "
              f"connects, each up to timeout_seconds={settings.timeout_seconds:g}), more than the {allowed:.3g}s "
              f"a cycle may take with interval_seconds={settings.interval_seconds:g}: the terminals beyond would "
              f"never be probed; raise concurrency to at least {least}, or lower timeout_seconds, or raise "
              "interval_seconds", line_of(lines, ("probes", "tcp", "concurrency")), None, "probes.tcp.concurrency")


def _cycle_check(config: Config, file: str, lines: Mapping[Path_, int]) -> list[Problem]:
    """A cycle over this many targets must fit its interval, for kinds whose cycle grows with the count
    (ICMP paces its sends, TCP connects so many at a time); the others were checked against their
    interval when the settings loaded."""
    problems = []
    witnesses = len(config.witnesses)
    for kind in PROBES:
        settings = config.probe_settings(kind)
        if not settings.enabled or type(settings).cycle_seconds_for is ProbeSettings.cycle_seconds_for:
            continue
        n = len(BUILDERS[kind](config.sites)) + (witnesses if kind == "icmp" else 0)
        if kind == "tcp":
            problem = _tcp_check(settings, n, file, lines)
            problems += [problem] if problem else []
            continue
        need = settings.cycle_seconds_for(n)
        if need >= settings.interval_seconds:
            problems.append(Problem(
                file, f"{n} targets take {need:.3g}s per cycle, not shorter than "
                      f"interval_seconds={settings.interval_seconds:g}: raise the rate or the interval, or shard "
                      "the sites", line_of(lines, ("probes", kind)), None, f"probes.{kind}"))
    return problems


def _schedule_check(config: Config, sites: list[Site], file: str, lines: Mapping[Path_, int]) -> list[Problem]:
    """Maintenance windows and waivers must name sites and counties that exist."""
    ids = {s.id for s in sites}
    counties = {s.county for s in sites}
    problems = []
    for i, window in enumerate(config.maintenance):
        for j, site_id in enumerate(window.sites):
            if site_id not in ids:
                problems.append(Problem(file, f"maintenance names no site {site_id!r}",
                                        line_of(lines, ("maintenance", i, "sites", j)), site_id,
                                        f"maintenance[{i}].sites[{j}]"))
        for j, county in enumerate(window.counties):
            if county not in counties:
                problems.append(Problem(file, f"maintenance names no county {county!r} "
                                              f"(counties: {', '.join(sorted(counties))})",
                                        line_of(lines, ("maintenance", i, "counties", j)), None,
                                        f"maintenance[{i}].counties[{j}]"))
    for name in config.counties:
        if name not in counties:
            problems.append(Problem(file, f"counties names no county {name!r} of the inventory "
                                          f"(counties: {', '.join(sorted(counties))})",
                                    line_of(lines, ("counties", name)), None, f"counties.{name}"))
    names = [r.name for r in config.reports]
    for i, name in enumerate(names):
        if name in names[:i]:
            problems.append(Problem(file, f"report name {name!r} given twice", line_of(lines, ("reports", i)), None,
                                    f"reports[{i}].name"))
    if any(r.recipients for r in config.reports) and config.smtp is None:
        problems.append(Problem(file, "reports have recipients but there is no 'smtp:' section",
                                line_of(lines, ("reports",)), None, "smtp"))
    for i, waiver in enumerate(config.waivers):
        if waiver.site not in ids:
            problems.append(Problem(file, f"waiver names no site {waiver.site!r}",
                                    line_of(lines, ("waivers", i, "site")), waiver.site, f"waivers[{i}].site"))
    return problems


def _cross_check(raw_sites: list[RawSite], auths: Collection[str],
                 unknown_upstreams: list[Problem] | None = None) -> list[Problem]:
    """Check what no single site can: unique ids, declared auths, upstreams that exist and form no cycle.

    Works on the raw data, so a site with an unrelated mistake is still checked and still counts as
    existing (its downstream sites do not get a second, misleading error). An upstream that names no
    site goes to ``unknown_upstreams`` when given (the site may be in a file not read here).
    """
    problems: list[Problem] = []

    def at(raw: RawSite, loc: Path_, message: str) -> Problem:
        line, field = raw.locate(loc)
        return Problem(raw.file, message, line, raw.site_id, field)

    first: dict[str, RawSite] = {}
    for raw in raw_sites:
        site_id = raw.site_id
        if site_id is None:
            continue
        if site_id in first:
            other = first[site_id]
            problems.append(at(raw, ("id",), f"duplicate site id, first defined at {other.file}:{other.line}"))
        else:
            first[site_id] = raw
        terminals = _get(raw.data, "terminals")
        seen: set[str] = set()
        for j, terminal in enumerate(terminals if isinstance(terminals, list) else []):
            tid = _get(terminal, "id")
            if isinstance(tid, str):
                if tid in seen:
                    problems.append(at(raw, ("terminals", j, "id"), f"duplicate terminal id {tid!r}"))
                seen.add(tid)
        links = _get(raw.data, "links")
        for j in range(len(links) if isinstance(links, list) else 0):
            auth = _get(links, j, "snmp", "auth")
            if isinstance(auth, str) and auth not in auths:
                problems.append(at(raw, ("links", j, "snmp", "auth"), f"auth {auth!r} is not declared under 'auths'"))
            elif isinstance(auth, str) and isinstance(auths, Mapping) and isinstance(auths[auth], HttpAuth):
                problems.append(at(raw, ("links", j, "snmp", "auth"), f"auth {auth!r} is an HTTP auth, not SNMP"))
        for j, terminal in enumerate(terminals if isinstance(terminals, list) else []):
            auth = _get(terminal, "http", "auth")
            if isinstance(auth, str) and auth not in auths:
                problems.append(at(raw, ("terminals", j, "http", "auth"),
                                   f"auth {auth!r} is not declared under 'auths'"))
            elif isinstance(auth, str) and isinstance(auths, Mapping) and isinstance(auths[auth], SnmpAuth):
                problems.append(at(raw, ("terminals", j, "http", "auth"), f"auth {auth!r} is an SNMP auth, not HTTP"))
    upstream: dict[str, str] = {}
    for site_id, raw in first.items():
        up = _get(raw.data, "upstream")
        if isinstance(up, str) and up in first:
            upstream[site_id] = up
        elif isinstance(up, str):
            missing = at(raw, ("upstream",), f"upstream {up!r} names no site")
            (problems if unknown_upstreams is None else unknown_upstreams).append(missing)
    # Follow each chain once; a chain that comes back to a site on itself is a cycle, reported once.
    done: set[str] = set()
    for start in upstream:
        chain: dict[str, int] = {}
        node = start
        while node in upstream and node not in done and node not in chain:
            chain[node] = len(chain)
            node = upstream[node]
        if node in chain:
            cycle = [*list(chain)[chain[node]:], node]
            problems.append(at(first[node], ("upstream",), "upstream cycle: " + " -> ".join(cycle)))
        done.update(chain)
    return problems


def _in_order(problems: list[Problem], files: list[str]) -> list[Problem]:
    """Sort problems by file (the config, then its inventories) and line, as a reader goes through them."""
    rank = {f: i for i, f in reversed(list(enumerate(files)))}
    return sorted(problems, key=lambda p: (rank.get(p.file, len(files)), p.line or 0))


def load_config(path: str | Path, warnings: list[Problem] | None = None, *,
                select: Callable[[Config], Config] | None = None) -> Config:
    """Load ``path`` and every inventory it names; raise ConfigError listing every problem.

    ``select`` narrows the config to what this instance monitors (``--shard K/N``: monitor.config.shard) before
    the cycle checks, so a shard's probes are sized for its own sites, not the whole inventory's.
    """
    path = Path(path)
    file = str(path)
    raw = read_input(path)
    data, lines = load_yaml(path, raw)
    if not isinstance(data, dict):
        raise ConfigError([Problem(file, "the config must be a YAML mapping", 1)])
    if lines.nodes > MAX_CONFIG_NODES:  # inline sites may be many; the rest goes to pydantic in one piece
        rest_nodes = sum(1 for p in lines if not p or p[0] != "sites")
        if rest_nodes > MAX_CONFIG_NODES:
            raise ConfigError([Problem(file, f"{rest_nodes:,} values besides the sites, more than the "
                                             f"{MAX_CONFIG_NODES:,} a config may have", 1)])
    problems: list[Problem] = []
    digest = hashlib.sha256(raw)
    raw_sites: list[RawSite] = []
    inline = data.get("sites") or []
    if isinstance(inline, list):
        raw_sites += sites_from_yaml(inline, file, lines, ("sites",))
    else:
        problems.append(Problem(file, "must be a list of sites", lines.get(("sites",)), field="sites"))
    inventory = data.get("inventory") or []
    if isinstance(inventory, str):
        inventory, lines[("inventory", 0)] = [inventory], lines[("inventory",)]
    if not isinstance(inventory, list):
        problems.append(Problem(file, "must be a list of file names", lines.get(("inventory",)),
                                field="inventory"))
        inventory = []
    files = [file]
    listed: dict[Path, int] = {}  # each inventory file (resolved) -> the index that first lists it
    for i, name in enumerate(inventory):
        line, field = lines.get(("inventory", i)), f"inventory[{i}]"
        if not isinstance(name, str) or not name:
            problems.append(Problem(file, "must be a file name", line, field=field))
            continue
        inv_path = path.parent / name
        try:
            resolved = inv_path.resolve()
        except (OSError, ValueError, RuntimeError):  # a NUL in the name, a symlink loop: reading will say
            resolved = inv_path
        first = listed.setdefault(resolved, i)
        if first != i:  # read twice, each of its sites would be "duplicate site id, first defined at" itself
            problems.append(Problem(file, f"inventory file {name!r} is listed twice (first as inventory[{first}] on "
                                          f"line {lines.get(('inventory', first))})", line, field=field))
            continue
        try:
            inv_raw = read_input(inv_path)
        except Unreadable as exc:
            problems.append(Problem(file, f"cannot read inventory file {str(inv_path)!r}: {exc.reason}",
                                    line, field=field))
            continue
        digest.update(inv_raw)
        files.append(str(inv_path))
        try:
            raw_sites += read_inventory(inv_path, warnings, inv_raw)
        except ConfigError as exc:
            problems += exc.problems
    if len(raw_sites) > MAX_SITES:
        raise ConfigError([*problems, Problem(file, f"{len(raw_sites):,} sites, more than the {MAX_SITES:,} a config "
                                                    "may have", lines.get(("inventory",)), field="inventory")])
    sites, site_problems = _validate_sites(raw_sites)
    problems += site_problems
    problems += [Problem(file, "unknown key", lines.get((key,)), field=key) for key in _LOADER_FIELDS if key in data]
    rest = {k: v for k, v in data.items() if k != "sites" and k not in _LOADER_FIELDS}
    rest = _anchored_smtp(rest, path.parent)
    rest["inventory"] = [name for name in inventory if isinstance(name, str)]
    config: Config | None = None
    try:
        config = Config.model_validate({**rest, "sites": []})
    except ValidationError as exc:
        problems += _config_problems(exc, file, lines)
    auths = config.auths if config else data.get("auths")
    problems += _cross_check(raw_sites, auths if isinstance(auths, dict) else {})
    if config is not None:
        problems += _schedule_check(config, sites, file, lines)
        problems += _smtp_check(config, file, lines)
    if problems or config is None:
        raise ConfigError(_in_order(problems, files))
    config = config.model_copy(update={"sites": tuple(sites), "source": file, "version": digest.hexdigest()[:16]})
    if select is not None:
        config = select(config)
    problems = _cycle_check(config, file, lines)
    if problems:
        raise ConfigError(problems)
    return config
