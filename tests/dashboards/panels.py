"""Read the committed dashboards the way Grafana would: every query, its variables, the metrics it reads."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parents[2]
DASHBOARDS = ROOT / "dashboards"
CATALOGUE = ROOT / "docs" / "metrics.md"
RULES = ROOT / "config" / "prometheus" / "readiness.rules.yml"

# Series Prometheus records itself for every target it scrapes (the monitor-health dashboard reads them).
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling",
                     "scrape_series_added"}
TARGET_LABELS = {"job", "instance"}
# Variables Grafana defines itself.
BUILTIN_VARIABLES = {"__range", "__interval", "__rate_interval", "__field", "__data", "__url_time_range"}

_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.*),\s*(?P<label>\w+)\)$")
_QUERY_RESULT = re.compile(r"^query_result\((?P<expr>.*)\)$")
_VARIABLE = re.compile(r"\$\{(?P<braced>[A-Za-z_]\w*)(?:\.[\w.]+)?(?::\w+)?\}|\$(?P<bare>[A-Za-z_]\w*)")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_SELECTOR = re.compile(r"(?<![\w:.])(?P<metric>[a-zA-Z_:][\w:]*)\s*\{(?P<matchers>[^}]*)\}")
_MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
_CLAUSE = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_TOKEN = re.compile(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(?![\w:]*\s*\()")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
             "group_right", "inf", "nan", "Inf", "NaN"}


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a dashboard: a panel target, a variable's query or an annotation."""

    dashboard: str
    where: str
    ref: str
    expr: str
    kind: str  # "panel", "variable" or "annotation"
    label: str = ""  # for label_values(): the label the variable lists

    @property
    def id(self) -> str:
        return f"{self.dashboard}:{self.where}:{self.ref}"


def committed() -> dict[str, dict[str, Any]]:
    """Return {file stem: dashboard JSON} of the committed dashboards."""
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows included, nested panels of collapsed rows included."""
    out = []
    for panel in doc.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def queries(name: str, doc: dict[str, Any]) -> list[Query]:
    """Every PromQL expression in dashboard ``doc``."""
    out = []
    for panel in panels(doc):
        for target in panel.get("targets", []):
            out.append(Query(name, panel.get("title", ""), target["refId"], target["expr"], "panel"))
    for var in doc.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        text = var["query"] if isinstance(var["query"], str) else var["query"]["query"]
        if m := _LABEL_VALUES.match(text):
            out.append(Query(name, f"variable {var['name']}", "-", m["selector"], "variable", m["label"]))
        elif m := _QUERY_RESULT.match(text):
            out.append(Query(name, f"variable {var['name']}", "-", m["expr"], "variable"))
        else:
            raise AssertionError(f"{name}: variable {var['name']}: unexpected query {text!r}")
    for ann in doc.get("annotations", {}).get("list", []):
        if ann.get("expr"):
            out.append(Query(name, f"annotation {ann['name']}", "-", ann["expr"], "annotation"))
    return out


def all_queries() -> list[Query]:
    return [q for name, doc in committed().items() for q in queries(name, doc)]


def variables_used(text: str) -> set[str]:
    """Names of the Grafana variables referenced in ``text`` (``$x``, ``${x}``, ``${x:format}``)."""
    return {m["braced"] or m["bare"] for m in _VARIABLE.finditer(text)}


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace Grafana variables by ``values`` as Grafana would for a single value; unknown ones raise KeyError."""
    return _VARIABLE.sub(lambda m: values[m["braced"] or m["bare"]], expr)


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """Return (metric, label names matched) for every ``metric{...}`` selector in ``expr``."""
    bare = _STRING.sub('""', expr)
    return [(m["metric"], set(_MATCHER.findall(m["matchers"]))) for m in _SELECTOR.finditer(bare)]


def metrics(expr: str) -> set[str]:
    """Return the metric names ``expr`` reads (functions, keywords, labels and durations left out)."""
    text = _STRING.sub('""', expr)
    text = _SELECTOR.sub(lambda m: f" {m['metric']} ", text)
    text = _CLAUSE.sub(" ", text)
    text = _RANGE.sub(" ", text)
    return {t for t in _TOKEN.findall(text) if t not in _KEYWORDS}


def catalogue() -> dict[str, set[str]]:
    """Return {metric: labels} from docs/metrics.md."""
    rows = re.findall(r"^\|\s*`(readiness_\w+)`\s*\|\s*\w+\s*\|([^|]*)\|", CATALOGUE.read_text(encoding="utf-8"),
                      re.M)
    return {name: {label.strip() for label in labels.split(",") if label.strip()} for name, labels in rows}


def recording_rules() -> set[str]:
    """Names recorded by config/prometheus/readiness.rules.yml."""
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return {rule["record"] for group in doc["groups"] for rule in group["rules"] if "record" in rule}
