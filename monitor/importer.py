"""`readiness inventory import`: a spreadsheet CSV export to inventory YAML, validated on the way."""

from __future__ import annotations

from pathlib import Path

import yaml

from monitor.config import _cross_check, _validate_sites
from monitor.errors import ConfigError, Problem
from monitor.inventory import read_csv


def import_csv(path: Path, warnings: list[Problem] | None = None) -> str:
    """Return inventory YAML for the CSV at ``path``; raise ConfigError naming every bad row and column."""
    raws = read_csv(path, warnings)
    sites, problems = _validate_sites(raws)
    by_id = {r.site_id: r for r in raws if r.site_id}
    problems += _cross_check(sites, by_id, auths={})  # type: ignore[arg-type]
    if problems:
        raise ConfigError(problems)
    doc = {"sites": [s.model_dump(mode="json", exclude_none=True, exclude_defaults=True) | {"id": s.id}
                     for s in sites]}
    header = f"# Imported from {path.name} by `readiness inventory import`.\n"
    return header + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=120)
