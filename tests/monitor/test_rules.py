"""Prometheus rules and the Alertmanager example: generated file, catalogue, runbook, promtool and amtool."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.cli.main import main
from monitor.rules import HISTORY_METRICS, SEVERITIES, RuleOptions, alert_specs, build_rules, render_rules
from tests.helpers import require_tool
from tests.monitor.fixtures import site, write_config

ROOT = Path(__file__).parents[2]
RULES = ROOT / "config" / "prometheus" / "readiness.rules.yml"
PROMETHEUS = ROOT / "config" / "prometheus" / "prometheus.yml"
ALERTMANAGER = ROOT / "config" / "alertmanager" / "alertmanager.yml"
PROMTOOL_TESTS = sorted((Path(__file__).parent / "data" / "promtool").glob("*.test.yml"))
SPECS = alert_specs(RuleOptions())
NAMES = [s.name for s in SPECS]
# Alerts about one site: the ones a SiteIsolated or an UpstreamDown makes redundant.
SITE_ALERTS = {"PrimaryLinkDown", "BackupLinkDown", "BackupNeverProven", "TerminalsUnreachable", "OpticalPowerLow",
               "LinkLossHigh", "LinkFlapping", "ReadinessRegressed"}


def _alerts(rules: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in rules["groups"] for r in g["rules"] if "alert" in r}


def _records(rules: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["record"]: r for g in rules["groups"] for r in g["rules"] if "record" in r}


# ---- the generator ------------------------------------------------------------------------------------------


def test_committed_rules_are_generated() -> None:
    """config/prometheus/readiness.rules.yml is exactly what `readiness rules` writes by default."""
    assert RULES.read_text(encoding="utf-8") == render_rules(), "run: readiness rules -o config/prometheus/..."


def test_cli_writes_the_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`readiness rules -o FILE` and `readiness rules` (stdout) both give the generator's text."""
    out = tmp_path / "rules.yml"
    assert main(["rules", "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render_rules()
    capsys.readouterr()
    assert main(["rules"]) == 0
    assert capsys.readouterr().out == render_rules()


def test_generation_is_deterministic() -> None:
    """Two runs give the same text; the YAML parses back to the dict the generator built."""
    assert render_rules() == render_rules()
    assert yaml.safe_load(render_rules()) == build_rules()


def test_for_scale_shrinks_only_for(tmp_path: Path) -> None:
    """--for-scale 0.02: SiteIsolated waits 2.4s and keeps firing 1.2s, PrimaryLinkDown 6s; 1s at least."""
    out = tmp_path / "rules.yml"
    assert main(["rules", "--for-scale", "0.02", "-o", str(out)]) == 0
    scaled, plain = _alerts(yaml.safe_load(out.read_text())), _alerts(build_rules())
    assert scaled["SiteIsolated"]["for"] == "2400ms"
    assert scaled["PrimaryLinkDown"]["for"] == "6s"
    assert scaled["BackupLinkDown"]["for"] == "12s"
    assert scaled["MonitorDown"]["for"] == "1200ms"
    assert scaled["SiteIsolated"]["keep_firing_for"] == "1200ms"
    assert plain["SiteIsolated"]["keep_firing_for"] == plain["UpstreamDown"]["keep_firing_for"] == "1m"
    assert all(scaled[n]["expr"] == plain[n]["expr"] for n in plain)
    tiny = _alerts(build_rules(RuleOptions(for_scale=0.0001)))
    assert {a["for"] for a in tiny.values()} == {"1s"}


def test_bad_for_scale_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    """A scale that is not a positive number is rejected with exit code 2."""
    with pytest.raises(SystemExit) as exc:
        main(["rules", "--for-scale", "0"])
    assert exc.value.code == 2
    assert "must be greater than 0" in capsys.readouterr().err


def test_options_reach_the_rules() -> None:
    """The Grafana base, runbook base and job name end up in the annotations and MonitorDown."""
    o = RuleOptions(grafana_url="https://grafana.example/", runbook_url="https://git.example/runbook.md",
                    job="readiness-ilam")
    alerts = _alerts(build_rules(o))
    assert alerts["SiteIsolated"]["annotations"]["dashboard"] == (
        "https://grafana.example/d/readiness-site?var-county={{ $labels.county }}&var-site={{ $labels.site }}")
    assert alerts["LinkLossHigh"]["annotations"]["runbook_url"] == "https://git.example/runbook.md#linklosshigh"
    assert 'up{job="readiness-ilam"} == 0' in alerts["MonitorDown"]["expr"]


def test_policy_from_a_config(tmp_path: Path) -> None:
    """`--config` takes the policy from a config: stale_after_intervals sets ProbeDataStale's threshold."""
    config = write_config(tmp_path, [site("S1")], policy={"stale_after_intervals": 5})
    out = tmp_path / "rules.yml"
    assert main(["rules", "--config", str(config), "-o", str(out)]) == 0
    expr = _alerts(yaml.safe_load(out.read_text()))["ProbeDataStale"]["expr"]
    assert "> 5 * readiness_probe_interval_seconds" in expr


def test_deadline_target_is_the_forecasts(tmp_path: Path) -> None:
    """DeadlineAtRisk fires below the policy's forecast_target_ratio, the target the forecast's at_risk uses:
    the built-in 100%, or the config's; so the alert and the forecast never disagree about the same share."""
    from monitor.core.forecast import forecast

    default = _alerts(build_rules(RuleOptions()))["DeadlineAtRisk"]
    assert "province:readiness_forecast_ready:ratio < 1\n" in default["expr"]
    assert "target of 100%" in default["annotations"]["description"]
    config = write_config(tmp_path, [site("S1")], policy={"forecast_target_ratio": 0.9})
    out = tmp_path / "rules.yml"
    assert main(["rules", "--config", str(config), "-o", str(out)]) == 0
    alert = _alerts(yaml.safe_load(out.read_text()))["DeadlineAtRisk"]
    assert "province:readiness_forecast_ready:ratio < 0.9\n" in alert["expr"]
    assert "county:readiness_ready:ratio < 0.9 and" in alert["expr"]
    assert "target of 90%" in alert["annotations"]["description"]
    # The forecast with the same target: a share projected at 0.89 is at risk, 0.9 is not (as `< 0.9` says).
    day = 86400.0
    for share, at_risk in ((0.89, True), (0.9, False)):
        points = [(k * 3600.0, share) for k in range(4 * 24)]
        fc = forecast(points, points[-1][0] + 10 * day, points[-1][0], target=0.9)
        assert fc.share_at_deadline == pytest.approx(share) and fc.at_risk is at_risk


def test_bad_config_is_bad_input(tmp_path: Path) -> None:
    """A config that does not validate gives exit code 2, as for `readiness check`."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("programme: {}\n")
    assert main(["rules", "--config", str(bad)]) == 2


def test_every_alert_is_labelled_and_annotated() -> None:
    """Each alert: a severity, a `for:`, and summary, description, check_first, runbook_url, dashboard."""
    alerts = _alerts(build_rules())
    assert list(alerts) == NAMES
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert re.fullmatch(r"\d+(ms|s|m|h)", rule["for"]), name
        assert set(rule["annotations"]) == {"summary", "description", "check_first", "runbook_url", "dashboard"}
        assert "\n" not in rule["annotations"]["summary"], f"{name}: the summary is one line"
        assert rule["annotations"]["runbook_url"].endswith("#" + name.lower())
        assert rule["annotations"]["dashboard"].startswith("http://127.0.0.1:3000/d/readiness-")
    assert {a["labels"]["severity"] for a in alerts.values()} == set(SEVERITIES)
    for name in [*SITE_ALERTS, "SiteIsolated", "UpstreamDown"]:
        # The site's name comes from readiness_site_info and is shown in the summary and description.
        assert "group_left (name" in alerts[name]["expr"], name
        assert "{{ $labels.name }}" in alerts[name]["annotations"]["summary"], name


def test_every_metric_is_catalogued() -> None:
    """Every readiness_* series the rules read is in docs/metrics.md, or is one of the history metrics."""
    catalogue = set(re.findall(r"^\| `(readiness_[a-z0-9_]+)`", (ROOT / "docs" / "metrics.md").read_text(), re.M))
    rules = build_rules()
    used = {m for g in rules["groups"] for r in g["rules"] for m in re.findall(r"\breadiness_[a-z0-9_]+", r["expr"])}
    recorded = {m.split(":")[1] for m in _records(rules)}
    unknown = used - catalogue - set(HISTORY_METRICS) - recorded
    assert not unknown, f"not in docs/metrics.md: {sorted(unknown)}"


def test_rollups_are_named_and_shard_safe() -> None:
    """Recording rules for county, area (urban/rural) and province; each drops instance and job per site first."""
    records = _records(build_rules())
    for level in ("county_area", "county", "area", "province"):
        assert f"{level}:readiness_sites:sum" in records
        assert f"{level}:readiness_ready:ratio" in records
    expr = records["county_area:readiness_sites:sum"]["expr"]
    assert 'max without (instance, job, replica) (readiness_site_state{state!="unknown"})' in expr
    # A dead shard's sites are unknown: the total is the whole inventory's, max over shards and replicas.
    assert 'max without (instance, job, replica) (readiness_inventory_sites{kind="polling"})' in expr
    for rule in records.values():
        # A `by (...)` that drops instance would silently sum the same site over HA replicas or instances.
        assert not re.search(r"\bsum by\b", rule["expr"]), rule["record"]


def test_site_alerts_count_replicas_once() -> None:
    """Every site alert reads its per-site series over the replicas (instance, replica aggregated away, a blind
    replica's view left out), so two replicas of a shard fire one alert; the forecast roll-up counts a shard once."""
    alerts = _alerts(build_rules())
    for name in [*SITE_ALERTS, "SiteIsolated", "UpstreamDown", "CertificateExpiresBeforeDeadline"]:
        expr = alerts[name]["expr"]
        assert re.search(r"\b(max|min) without \(instance, replica\b", expr), name
        assert "unless on (instance, job, replica) readiness_monitor_blind == 1" in expr, name
    for level in ("county", "area", "province"):
        forecast = _records(build_rules())[f"{level}:readiness_forecast_ready:ratio"]["expr"]
        assert "group_left (shard) max without (shards) (readiness_shard_info)" in forecast, level
    # The monitor's own alerts stay per instance: they are about that instance.
    for name in ("MonitorDown", "MonitorBlind", "ProbeDataStale"):
        assert "without (instance" not in alerts[name]["expr"], name


# ---- the catalogue and the runbook ---------------------------------------------------------------------------


def test_alert_catalogue_matches_the_rules() -> None:
    """docs/alerts.md lists every alert with the severity and `for:` of the generated rules, and no other."""
    rows = re.findall(r"^\| `([A-Za-z]+)` \| (\w+) \| (\w+) \|", (ROOT / "docs" / "alerts.md").read_text(), re.M)
    alerts = _alerts(build_rules())
    assert [r[0] for r in rows] == NAMES
    for name, severity, wait in rows:
        assert (severity, wait) == (alerts[name]["labels"]["severity"], alerts[name]["for"]), name


def test_runbook_has_a_section_per_alert() -> None:
    """docs/runbook.md: `## <Alert>` for every alert, in order, whose Check first line is the annotation."""
    text = (ROOT / "docs" / "runbook.md").read_text()
    assert re.findall(r"^## (\w+)$", text, re.M) == NAMES
    for spec in SPECS:
        section = text.split(f"\n## {spec.name}\n", 1)[1].split("\n## ", 1)[0]
        assert f"**Check first:** {spec.check_first}\n" in section, spec.name


# ---- promtool ------------------------------------------------------------------------------------------------


def test_promtool_check_rules() -> None:
    """promtool accepts the committed rules file."""
    promtool = require_tool("promtool")
    run = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"SUCCESS: {len(NAMES) + len(_records(build_rules()))} rules found" in run.stdout


def test_promtool_check_config() -> None:
    """promtool accepts the Prometheus example, and the rules it loads."""
    promtool = require_tool("promtool")
    run = subprocess.run([promtool, "check", "config", str(PROMETHEUS)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert yaml.safe_load(PROMETHEUS.read_text())["rule_files"] == ["readiness.rules.yml"]


@pytest.mark.parametrize("path", PROMTOOL_TESTS, ids=[p.name for p in PROMTOOL_TESTS])
def test_promtool_unit_tests(path: Path) -> None:
    """`promtool test rules` passes on the unit tests of the committed rules."""
    promtool = require_tool("promtool")
    run = subprocess.run([promtool, "test", "rules", path.name], cwd=path.parent, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_promtool_unit_tests_cover_every_alert() -> None:
    """For every alert, some unit test expects it to fire and some expects it quiet (below threshold or for:)."""
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in PROMTOOL_TESTS:
        doc = yaml.safe_load(path.read_text())
        assert doc["rule_files"] == ["../../../../config/prometheus/readiness.rules.yml"]
        for test in doc["tests"]:
            for case in test.get("alert_rule_test", []):
                (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert fires == set(NAMES)
    assert quiet == set(NAMES)


def test_promtool_unit_tests_use_the_history_metrics() -> None:
    """The history metrics the rules use are exercised with synthetic series."""
    text = "".join(p.read_text() for p in PROMTOOL_TESTS)
    for metric in HISTORY_METRICS:
        if metric == "readiness_site_regressions_total":
            continue  # for dashboards; no alert reads it (ReadinessRegressed watches the state, which resolves)
        assert f"'{metric}{{" in text, metric


# ---- Alertmanager --------------------------------------------------------------------------------------------


def test_amtool_check_config() -> None:
    """amtool accepts the Alertmanager example."""
    amtool = require_tool("amtool")
    run = subprocess.run([amtool, "check-config", str(ALERTMANAGER)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


ROUTES = [
    ({"alertname": "SiteIsolated", "severity": "critical", "county": "Ilam", "site": "S1"}, "ilam-oncall"),
    ({"alertname": "SiteIsolated", "severity": "critical", "county": "Mehran"}, "mehran-oncall"),
    ({"alertname": "SiteIsolated", "severity": "critical", "county": "Abdanan"}, "province-oncall"),
    ({"alertname": "PrimaryLinkDown", "severity": "warning", "county": "Ilam"}, "ilam-noc"),
    ({"alertname": "BackupLinkDown", "severity": "warning", "county": "Mehran"}, "mehran-noc"),
    ({"alertname": "LinkLossHigh", "severity": "warning", "county": "Dehloran"}, "province-noc"),
    ({"alertname": "BackupNeverProven", "severity": "info", "county": "Ilam"}, "province-digest"),
    ({"alertname": "UpstreamDown", "severity": "info", "county": "Ilam"}, "province-digest"),
    ({"alertname": "MonitorDown", "severity": "critical", "instance": "127.0.0.1:9108"}, "monitoring-oncall"),
    ({"alertname": "ProbeDataStale", "severity": "critical", "kind": "icmp"}, "monitoring-oncall"),
    ({"alertname": "MonitorBlind", "severity": "critical", "instance": "127.0.0.1:9108"}, "monitoring-oncall"),
    ({"alertname": "DeadlineAtRisk", "severity": "warning", "scope": "county", "county": "Ilam"}, "committee"),
    ({"alertname": "DeadlineAtRisk", "severity": "warning", "scope": "province"}, "committee"),
    # Overdue remediation work goes to the county's owner (the `owner` label ActionOverdue joins in); an owner
    # without a route of their own, or no owner, falls through to the county's NOC.
    ({"alertname": "ActionOverdue", "severity": "warning", "county": "Ilam", "owner": "Ilam ICT team"},
     "owner-ilam-ict"),
    ({"alertname": "ActionOverdue", "severity": "warning", "county": "Mehran", "owner": "Mehran ICT team"},
     "owner-mehran-ict"),
    ({"alertname": "ActionOverdue", "severity": "warning", "county": "Ilam", "owner": "Someone Else"}, "ilam-noc"),
    ({"alertname": "ActionOverdue", "severity": "warning", "county": "Dehloran"}, "province-noc"),
    ({"alertname": "PrimaryLinkDown", "severity": "warning", "county": "Ilam", "owner": "Ilam ICT team"},
     "ilam-noc"),
    ({"severity": "none"}, "province-noc"),
]


def _route(labels: dict[str, str], expect: str) -> subprocess.CompletedProcess[str]:
    amtool = require_tool("amtool")
    return subprocess.run([amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}",
                           f"--verify.receivers={expect}", *(f"{k}={v}" for k, v in labels.items())],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("labels", "receiver"), ROUTES, ids=[f"{r}-{i}" for i, (_, r) in enumerate(ROUTES)])
def test_amtool_routes(labels: dict[str, str], receiver: str) -> None:
    """`amtool config routes test`: the alert reaches exactly the expected receiver."""
    run = _route(labels, receiver)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == receiver


@pytest.mark.parametrize("spec", SPECS, ids=NAMES)
def test_every_alert_routes_by_severity(spec: Any) -> None:
    """Every generated alert, as it leaves Prometheus for a site in Ilam, finds the receiver its severity implies."""
    expect = {"critical": "ilam-oncall", "warning": "ilam-noc", "info": "province-digest"}[spec.severity]
    if spec.name in ("MonitorDown", "ProbeDataStale", "MonitorBlind"):
        expect = "monitoring-oncall"
    elif spec.name == "DeadlineAtRisk":
        expect = "committee"
    run = _route({"alertname": spec.name, "severity": spec.severity, "county": "Ilam"}, expect)
    assert run.returncode == 0, run.stdout + run.stderr


def test_inhibit_rules_name_real_alerts() -> None:
    """SiteIsolated and UpstreamDown hold back every site alert; MonitorDown all of its instance; names exist."""
    doc = yaml.safe_load(ALERTMANAGER.read_text())
    rules = {}
    for rule in doc["inhibit_rules"]:
        (source,) = rule["source_matchers"]
        name = re.fullmatch(r'alertname="(\w+)"', source)
        assert name and name.group(1) in NAMES, source
        (target,) = rule["target_matchers"]
        m = re.fullmatch(r'alertname(=~|!=)"([\w|]+)"', target)
        assert m, target
        targets = set(m.group(2).split("|")) if m.group(1) == "=~" else set(NAMES) - {m.group(2)}
        assert targets <= set(NAMES), targets - set(NAMES)
        rules[name.group(1)] = (targets, rule["equal"])
    assert rules["SiteIsolated"] == (SITE_ALERTS, ["site"])
    assert rules["UpstreamDown"] == (SITE_ALERTS | {"SiteIsolated"}, ["upstream"])
    assert rules["MonitorDown"] == (set(NAMES) - {"MonitorDown"}, ["instance"])
    assert SITE_ALERTS | {"SiteIsolated", "UpstreamDown"} == rules["ProbeDataStale"][0]
    assert rules["MonitorBlind"] == (SITE_ALERTS | {"SiteIsolated", "UpstreamDown"}, ["instance"])


def test_repeat_intervals_do_not_page_twice_a_night() -> None:
    """No route repeats a notification sooner than 12 hours; every receiver but the digests sends resolved."""
    doc = yaml.safe_load(ALERTMANAGER.read_text())

    def walk(route: dict[str, Any], inherited: str) -> list[str]:
        repeat = route.get("repeat_interval", inherited)
        return [repeat] + [r for child in route.get("routes", []) for r in walk(child, repeat)]

    hours = {"h": 1, "d": 24}
    for repeat in walk(doc["route"], "4h"):
        m = re.fullmatch(r"(\d+)([hd])", repeat)
        assert m and int(m.group(1)) * hours[m.group(2)] >= 12, repeat
    assert doc["route"]["group_by"] == ["alertname", "county"]
    for receiver in doc["receivers"]:
        (hook,) = receiver["webhook_configs"]
        assert hook["send_resolved"] == (receiver["name"] not in ("committee", "province-digest")), receiver["name"]
