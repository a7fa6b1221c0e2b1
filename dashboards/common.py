"""Shared pieces of the readiness dashboards: data source, variables, PromQL fragments, colours, links.

Queries read the metrics listed in docs/metrics.md and, for province, county and area numbers, the
roll-up recording rules of config/prometheus/readiness.rules.yml: the dashboards count sites exactly as
the alerts do, and one monitor or fifty shards (DESIGN.md section 4) give the same picture.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.builders import stat
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm
from grafana_foundation_sdk.models.common import TimeZoneBrowser

# The SDK build pinned in pyproject.toml generates Grafana 11.6 JSON (schemaVersion 41).
GRAFANA_VERSION = "11.6.0"
TAG = "readiness"
UIDS = {
    "province": "readiness-province",
    "county": "readiness-county",
    "site": "readiness-site",
    "link_quality": "readiness-link-quality",
    "monitor": "readiness-monitor",
}
# The data source config/grafana/provisioning/datasources/readiness.yaml creates.
PROVISIONED_DATASOURCE_UID = "readiness-prometheus"
DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")

# (state, code, colour, label). Codes follow severity so that `max` and a descending sort put the worst first.
SITE_STATES = (
    ("ready", 1, "green", "ready · آماده"),
    ("degraded", 2, "orange", "degraded · ناقص"),
    ("unknown", 3, "#8e8e8e", "unknown · نامعلوم"),
    ("not_ready", 4, "red", "not ready · ناآماده"),
)
LINK_STATES = (
    ("up", 1, "green", "up · برقرار"),
    ("impaired", 2, "orange", "impaired · ضعیف"),
    ("flapping", 3, "purple", "flapping · ناپایدار"),
    ("unknown", 4, "#8e8e8e", "unknown · نامعلوم"),
    ("down", 5, "red", "down · قطع"),
)
# Share of ready sites: below 80% is red, the target is 95% (the committee's usual bar; tune per programme).
READY_STEPS = ((None, "red"), (0.8, "orange"), (0.95, "green"))
READY = 'state="ready"'
# Polling sites per (county, area, state), from config/prometheus/readiness.rules.yml (`readiness rules`):
# aggregation nodes are left out and HA or sharded monitors are not counted twice, as in the alerts.
ROLLUP = "county_area:readiness_sites:sum"
# Sites per (county, area, reason code), shards added up and replicas counted once (the rules' roll-up).
REASONS_ROLLUP = "county_area:readiness_site_reasons:sum"


def bi(en: str, fa: str) -> str:
    """Return a bilingual title: English first, Persian after a middle dot."""
    return f"{en} · {fa}"


# --- PromQL -----------------------------------------------------------------------------------------------------

def sel(metric: str, *matchers: str) -> str:
    """Return ``metric{m1, m2}`` from label matchers written as PromQL (empty ones are dropped)."""
    inner = ", ".join(m for m in matchers if m)
    return f"{metric}{{{inner}}}" if inner else metric


def agg(op: str, by: str = "") -> str:
    """``sum by (county) `` or just ``sum``: the head of an aggregation, ready for its parenthesis."""
    return f"{op} by ({by}) " if by else op


def sites_in(states: str, by: str = "", *matchers: str) -> str:
    """Polling sites whose state matches the regex ``states``, per ``by`` group (from the roll-up rule)."""
    state = 'state=~"' + states + '"'
    return f"{agg('sum', by)}({sel(ROLLUP, *matchers, state)})"


def ready_ratio(by: str = "", *matchers: str) -> str:
    """Share of polling sites that are ready, per ``by`` group."""
    return f"{agg('sum', by)}({sel(ROLLUP, *matchers, READY)}) / {agg('sum', by)}({sel(ROLLUP, *matchers)})"


def state_code(metric: str, states: Iterable[tuple[str, int, str, str]], by: str, *matchers: str) -> str:
    """Code of the current state per ``by`` group, from a one-hot ``metric{state=...}`` family."""
    parts = [sel(metric, *matchers, 'state="' + s + '"') + f" * {code}" for s, code, _, _ in states]
    return f"max by ({by}) ({' or '.join(parts)})"


def site_state_code(*matchers: str, by: str = "site") -> str:
    """Per-site code of the readiness state (see SITE_STATES)."""
    return state_code("readiness_site_state", SITE_STATES, by, *matchers)


def with_name(expr: str, *matchers: str) -> str:
    """Add the site's ``name`` label (from readiness_site_info) to a per-site ``expr``."""
    return f"{expr} * on (site) group_left (name) max by (site, name) ({sel('readiness_site_info', *matchers)})"


def seconds_in_state(*matchers: str) -> str:
    """Per-site seconds since the site entered its current state."""
    return f"time() - max by (site) ({sel('readiness_site_state_since_timestamp_seconds', *matchers)})"


def reason_rows(*matchers: str, every_site: bool = False) -> str:
    """One series per site with its main ``reason`` and all its ``reasons`` (codes, comma-separated); with
    ``every_site`` sites without a reason get a row whose reason and reasons are ``-``."""
    rows = f"max by (site, county, area, reason, reasons) ({sel('readiness_site_reason', *matchers)})"
    if every_site:
        none = f"max by (site, county, area) ({sel('readiness_site_state', *matchers)})"
        none = f'label_replace(label_replace({none}, "reason", "-", "", ""), "reasons", "-", "", "")'
        rows = f"({rows} or on (site) {none})"
    return f"{rows} * on (site) group_left (name) max by (site, name) ({sel('readiness_site_info', *matchers)})"


def per_row(rows: str, value: str) -> str:
    """Give every row of ``rows`` the per-site ``value`` (same labels across queries, so tables can merge)."""
    return f"{rows} * on (site) group_left () ({value})"


def days_left() -> str:
    return "(min(readiness_deadline_timestamp_seconds) - time()) / 86400"


def forecast(level: str, *matchers: str) -> str:
    """The monitor's forecast of the ready share at the deadline, and nothing else.

    ``level`` is a roll-up level of the rules (province, county, area). The monitor's forecast comes from
    its history and resists outliers; without enough history it exports none, and the panel says so rather
    than extend a line through whatever the visible time range holds (the figure must be the API's).
    """
    return f"max({sel(f'{level}:readiness_forecast_ready:ratio', *matchers)})"


# --- queries, colours, mappings --------------------------------------------------------------------------------

def query(expr: str, legend: str = "", *, instant: bool = False, table: bool = False) -> prom.Dataquery:
    """Return a Prometheus target; ``table`` implies an instant query in table format."""
    q = prom.Dataquery().expr(expr).datasource(DS)
    if legend:
        q = q.legend_format(legend)
    if table:
        q = q.format(pm.PromQueryFormat.TABLE).instant()
    elif instant:
        q = q.instant()
    else:
        q = q.range()
    return q


def thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(
        [dm.Threshold(value=v, color=c) for v, c in steps])


def code_mapping(states: Iterable[tuple[str, int, str, str]]) -> list[dm.ValueMap]:
    """Map state codes (numbers) to coloured labels."""
    return [dm.ValueMap(options={str(code): dm.ValueMappingResult(text=label, color=colour, index=i)
                                 for i, (_, code, colour, label) in enumerate(states)})]


def code_thresholds(states: Iterable[tuple[str, int, str, str]]) -> db.ThresholdsConfig:
    """Thresholds that colour a state code like its mapping (for panels that colour by thresholds)."""
    return thresholds(*[(None if i == 0 else float(code), colour) for i, (_, code, colour, _) in enumerate(states)])


def fixed_colour(colour: str) -> dm.DynamicConfigValue:
    return dm.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": colour})


def prop(key: str, value: object) -> dm.DynamicConfigValue:
    return dm.DynamicConfigValue(id_val=key, value=value)


def dashed() -> dm.DynamicConfigValue:
    return prop("custom.lineStyle", {"fill": "dash", "dash": [10, 10]})


def transformation(kind: str, options: dict[str, object] | None = None) -> dm.DataTransformerConfig:
    return dm.DataTransformerConfig(id_val=kind, options=options or {})


def organize(rename: dict[str, str], hide: Iterable[str] = ("Time",), order: Iterable[str] = ()) -> \
        dm.DataTransformerConfig:
    """Rename, hide and order table columns."""
    return transformation("organize", {
        "renameByName": rename,
        "excludeByName": {name: True for name in hide},
        "indexByName": {name: i for i, name in enumerate(order)},
    })


def legend(*calcs: str, table: bool = False) -> cb.VizLegendOptions:
    opts = cb.VizLegendOptions().show_legend(True).placement(cm.LegendPlacement.BOTTOM)
    opts = opts.display_mode(cm.LegendDisplayMode.TABLE if table else cm.LegendDisplayMode.LIST)
    return opts.calcs(list(calcs))


def last_value() -> cb.ReduceDataOptions:
    return cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def count_of_expected(title: str, have: str, expected: str, height: int) -> stat.Panel:
    """A stat of how many answer next to how many should (terminals up, monitors scraped)."""
    return (stat.Panel().title(title).datasource(DS)
            .with_target(query(have, "up", instant=True))
            .with_target(query(expected, "expected", instant=True))
            .text_mode(cm.BigValueTextMode.VALUE_AND_NAME).color_mode(cm.BigValueColorMode.NONE)
            .graph_mode(cm.BigValueGraphMode.NONE).reduce_options(last_value()).span(4).height(height))


def deadline_annotation() -> db.AnnotationQuery:
    """Shade the time from the deadline on.

    Prometheus annotations mark where the expression has samples, so a future deadline cannot be drawn
    (that needs the annotation's "series value as timestamp" option, which the SDK's model does not carry);
    the burn-up's title counts the days left instead.
    """
    return (db.AnnotationQuery().name(bi("Deadline passed", "مهلت گذشت")).datasource(DS).enable(True)
            .icon_color("red").expr("min(readiness_deadline_timestamp_seconds) - time() <= 0"))


# --- variables -------------------------------------------------------------------------------------------------

def datasource_variable() -> db.DatasourceVariable:
    return (db.DatasourceVariable("datasource").label("Data source").type("prometheus")
            .current(dm.VariableOption(text="readiness", value=PROVISIONED_DATASOURCE_UID)))


def label_variable(name: str, label: str, query_text: str, *, all_value: str | None = None,
                   include_all: bool = False, multi: bool = False, hide: bool = False) -> db.QueryVariable:
    """A variable filled from ``label_values(...)``.

    ``all_value`` adds "All" meaning that regex (".*": also values that appear later); ``include_all`` alone
    adds "All" meaning exactly the values listed, for labels shared with other software (job, instance).
    """
    v = (db.QueryVariable(name).label(label).query(query_text).datasource(DS)
         .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dm.VariableSort.ALPHABETICAL_ASC).multi(multi))
    if all_value is not None:
        v = v.include_all(True).all_value(all_value)
    elif include_all:
        v = v.include_all(True)
    if hide:
        v = v.hide(dm.VariableHide.HIDE_VARIABLE)
    return v


def days_left_variable() -> db.QueryVariable:
    """Hidden: whole days to the deadline, for panel titles."""
    return (label_variable("days_left", "Days left", f"query_result(ceil({days_left()}))", hide=True)
            .regex(r"/^\{\}\s+(-?[0-9]+)/"))


def county_variable(*, all_counties: bool = False) -> db.QueryVariable:
    return label_variable("county", bi("County", "شهرستان"), "label_values(readiness_site_info, county)",
                          all_value=".*" if all_counties else None, multi=all_counties)


def area_variable(*matchers: str) -> db.QueryVariable:
    return label_variable("area", bi("Area", "محدوده"),
                          f"label_values({sel('readiness_site_info', *matchers)}, area)", all_value=".*", multi=True)


def site_variable() -> db.QueryVariable:
    return label_variable("site", bi("Site", "سایت"), 'label_values(readiness_site_info{county="$county"}, site)')


# --- links -----------------------------------------------------------------------------------------------------

def dashboard_url(key: str, *raw: str, **variables: str) -> str:
    """URL of another readiness dashboard, keeping the data source and the time range.

    ``raw`` are ready-made parameters such as ``${area:queryparam}`` (every value of a multi-value variable).
    """
    params = [f"var-{k}={v}" for k, v in variables.items()]
    params += [*raw, "${datasource:queryparam}", "${__url_time_range}"]
    return f"/d/{UIDS[key]}?{'&'.join(params)}"


def data_link(title: str, url: str) -> db.DashboardLink:
    return db.DashboardLink(title).url(url)


def link_value(title: str, url: str) -> dict[str, object]:
    """A data link as a field-override value (Grafana's field link shape)."""
    return {"title": title, "url": url}


def dashboard_links() -> list[cogbuilder.Builder[dm.DashboardLink]]:
    """The drop-down at the top of every readiness dashboard: the others, with variables and time kept."""
    return [db.DashboardLink(bi("Readiness dashboards", "داشبوردهای آمادگی")).type(dm.DashboardLinkType.DASHBOARDS)
            .tags([TAG]).as_dropdown(True).include_vars(True).keep_time(True)]


# --- the dashboard shell and the JSON ---------------------------------------------------------------------------

def new_dashboard(key: str, title: str, description: str, time_from: str = "now-6h") -> db.Dashboard:
    """The common shell: uid, tags, browser time zone, one-minute refresh, the data source variable."""
    return (db.Dashboard(title).uid(UIDS[key]).description(description).tags([TAG, key.replace("_", "-")])
            .editable().timezone(TimeZoneBrowser).refresh("1m").time(time_from, "now")
            .tooltip(dm.DashboardCursorSync.CROSSHAIR).links(dashboard_links())
            .with_variable(datasource_variable()))


def finish(builder: db.Dashboard) -> dm.Dashboard:
    """Build the model; number panels and targets so ids and refIds are stable from run to run.

    The SDK's decoder gives every panel the default custom field config of its type when the JSON has none;
    filling it in here keeps the committed JSON a fixed point of decode + encode, so the round-trip test
    can demand exact equality (anything the models do not know would show up as a difference).
    """
    from grafana_foundation_sdk.cog import runtime
    from grafana_foundation_sdk.cog.plugins import register_default_plugins

    register_default_plugins()
    model = builder.build()
    panels: list[dm.Panel | dm.RowPanel] = list(model.panels or [])
    for number, panel in enumerate(panels, start=1):
        panel.id_val = number
        if not isinstance(panel, dm.Panel):
            continue
        for i, target in enumerate(panel.targets or []):
            if not getattr(target, "ref_id", None):
                target.ref_id = chr(ord("A") + i)  # type: ignore[attr-defined]
        variant = runtime.panelcfg_config(panel.type_val)
        if panel.field_config is None:
            panel.field_config = dm.FieldConfigSource()
        if variant is not None and variant.field_config_from_json_hook is not None \
                and panel.field_config.defaults.custom is None:
            panel.field_config.defaults.custom = variant.field_config_from_json_hook({})
    return model


def to_json(model: dm.Dashboard) -> str:
    """Render a dashboard the way it is committed: sorted keys, two-space indent, Persian kept readable."""
    return JSONEncoder(sort_keys=True, indent=2, ensure_ascii=False).encode(model) + "\n"


def from_json(text: str) -> dm.Dashboard:
    """Parse dashboard JSON into the SDK's models (panel and query plugins registered)."""
    from grafana_foundation_sdk.cog.plugins import register_default_plugins

    register_default_plugins()
    return dm.Dashboard.from_json(json.loads(text))
