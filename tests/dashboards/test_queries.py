"""Every dashboard query is valid PromQL (promtool) and reads only catalogued metrics and labels."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.dashboards import panels as P
from tests.helpers import require_tool

# Values Grafana would put in place of the variables (a single value each: what a repeated panel gets).
SAMPLE = {"county": "Ilam", "area": ".*", "site": "ILM-001", "role": "primary", "medium": "fiber",
          "job": "readiness", "instance": ".*", "__range": "1h", "__interval": "15s", "__rate_interval": "1m"}


def _known() -> dict[str, set[str] | None]:
    """Return {metric: its labels, or None when they are not listed (recording rules)}."""
    known: dict[str, set[str] | None] = {name: labels | P.TARGET_LABELS for name, labels in P.catalogue().items()}
    known.update({name: P.TARGET_LABELS for name in P.PROMETHEUS_SERIES})
    known.update({name: None for name in P.recording_rules()})
    return known


def test_every_query_passes_promtool(tmp_path: Path) -> None:
    """Each expression, variables substituted, is written as a recording rule; `promtool check rules` parses
    them all (on failure each is checked alone, so the message names the panel)."""
    promtool = require_tool("promtool")
    queries = P.all_queries()
    assert len(queries) > 50
    rules = [{"record": f"dashboard:check_{i}", "expr": P.substitute(q.expr, SAMPLE)} for i, q in enumerate(queries)]
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}), encoding="utf-8")
    run = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    if run.returncode == 0:
        assert f"SUCCESS: {len(rules)} rules found" in run.stdout
        return
    bad = []
    for q, rule in zip(queries, rules, strict=True):
        path.write_text(yaml.safe_dump({"groups": [{"name": "one", "rules": [rule]}]}), encoding="utf-8")
        one = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
        if one.returncode != 0:
            bad.append(f"{q.id}: {rule['expr']}\n  {one.stderr.strip()}")
    pytest.fail("invalid PromQL:\n" + "\n".join(bad or [run.stderr]))


def test_queries_read_only_catalogued_metrics() -> None:
    """Metric names come from docs/metrics.md, the recording rules in config/prometheus, or Prometheus' own
    per-target series; nothing else (a typo would give a panel that is silently empty)."""
    known = _known()
    unknown = {f"{q.id}: {m}" for q in P.all_queries() for m in P.metrics(P.substitute(q.expr, SAMPLE))
               if m not in known}
    assert not unknown, "\n".join(sorted(unknown))


def test_selectors_match_only_labels_the_metric_has() -> None:
    """`metric{label=...}` only names labels the catalogue lists for that metric (plus job and instance), and a
    label_values() variable lists a label its metric has."""
    known = _known()
    bad = []
    for q in P.all_queries():
        for metric, labels in P.selectors(P.substitute(q.expr, SAMPLE)):
            allowed = known.get(metric)
            if allowed is not None and not labels <= allowed:
                bad.append(f"{q.id}: {metric} has no label {sorted(labels - allowed)}")
        if q.label:
            [metric] = P.metrics(P.substitute(q.expr, SAMPLE))
            allowed = known.get(metric)
            if allowed is not None and q.label not in allowed:
                bad.append(f"{q.id}: label_values over {metric} lists {q.label}, which it does not have")
    assert not bad, "\n".join(bad)


def test_metric_extraction() -> None:
    """The parser behind the two tests above finds metrics, not functions, labels, keywords or durations."""
    expr = ('topk(5, max by (site) (rate(readiness_probe_cycles_total{kind="icmp"}[5m])) * 1e9 '
            'or on (site) label_replace(up, "x", "$1", "job", "(.*)")) and county:readiness_ready:ratio')
    assert P.metrics(expr) == {"readiness_probe_cycles_total", "up", "county:readiness_ready:ratio"}
    assert P.selectors(expr) == [("readiness_probe_cycles_total", {"kind"})]
    assert P.variables_used('x{a="$county", b=~"${area:regex}"} ${__field.labels.county} $1') == \
        {"county", "area", "__field"}
