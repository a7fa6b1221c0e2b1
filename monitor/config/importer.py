"""`readiness inventory import`: a spreadsheet CSV export to inventory YAML, validated on the way."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import yaml

from monitor.config.inventory import read_csv
from monitor.config.loader import _cross_check, _validate_sites
from monitor.errors import ConfigError, Problem

log = logging.getLogger(__name__)


def import_csv(path: Path, warnings: list[Problem] | None = None) -> str:
    """Return inventory YAML for the CSV at ``path``; raise ConfigError naming every bad row and column."""
    raws = read_csv(path, warnings)
    sites, problems = _validate_sites(raws)
    # A CSV holds no auths, and an upstream may well live in another inventory file: `readiness check`
    # on the config that names both decides; here it is a warning.
    elsewhere: list[Problem] = []
    problems += _cross_check(raws, auths=(), unknown_upstreams=elsewhere)
    for p in elsewhere:
        w = replace(p, message=f"{p.message} in this file (another inventory must have it)")
        if warnings is None:
            log.warning("%s", w)
        else:
            warnings.append(w)
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: p.line or 0))
    doc = {"sites": [s.model_dump(mode="json", exclude_none=True, exclude_defaults=True) | {"id": s.id}
                     for s in sites]}
    header = f"# Imported from {path.name} by `readiness inventory import`.\n"
    return header + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=120)
