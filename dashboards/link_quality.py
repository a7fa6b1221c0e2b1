"""Link quality: where do links lose packets or lag, by medium and by county, and which ones flap?"""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, heatmap, table
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import heatmap as hm

from dashboards import common as c

KEY = "link_quality"
M = ('county=~"$county"', 'area=~"$area"', 'medium=~"$medium"')
LINK_LABELS = "site, county, area, role, medium"
TROUBLED = 'state=~"impaired|down"'
CARRIES, DOWN = 'state=~"up|impaired|flapping"', 'state="down"'  # a link that carries traffic; one that does not


def rows_heatmap(title: str, metric: str, by: str, unit: str, description: str) -> heatmap.Panel:
    """One row per ``by`` group (county, medium), one column per step, coloured by the group's mean."""
    return (heatmap.Panel().title(title).datasource(c.DS).description(description)
            .with_target(c.query(f"avg by ({by}) ({c.sel(metric, *M)})", "{{" + by + "}}"))
            .calculate(False).rows_frame(heatmap.RowsHeatmapOptions().layout(cm.HeatmapCellLayout.UNKNOWN))
            .color(heatmap.HeatmapColorOptions().mode(hm.HeatmapColorMode.SCHEME).scheme("YlOrRd")
                   .scale(hm.HeatmapColorScale.EXPONENTIAL).exponent(0.5).steps(64).min(0))
            .cell_values(heatmap.CellValues().unit(unit)).cell_gap(1)
            .y_axis(heatmap.YAxisConfig().unit("none")).span(12).height(9))


def distribution(title: str, metric: str, unit: str) -> heatmap.Panel:
    """How the values of every link of one medium spread over time (repeated per medium)."""
    log2 = cb.ScaleDistributionConfig().type(cm.ScaleDistribution.LOG).log(2)
    return (heatmap.Panel().title(title).datasource(c.DS)
            .description("Each column counts the links of this medium by their value in that step.")
            .with_target(c.query(f"max by ({LINK_LABELS}) ({c.sel(metric, *M)})",
                                 "{{site}} {{role}}"))
            .calculate(True).calculation(cb.HeatmapCalculationOptions().y_buckets(
                cb.HeatmapCalculationBucketConfig().mode(cm.HeatmapCalculationMode.COUNT).value("20").scale(log2)))
            .color(heatmap.HeatmapColorOptions().mode(hm.HeatmapColorMode.SCHEME).scheme("Blues")
                   .scale(hm.HeatmapColorScale.EXPONENTIAL).exponent(0.5).steps(64))
            .y_axis(heatmap.YAxisConfig().unit(unit)).repeat("medium").repeat_direction("h").max_per_row(3)
            .span(8).height(8))


def links_by_state() -> bargauge.Panel:
    panel = (bargauge.Panel().title(c.bi("Links by state", "لینک‌ها بر پایه وضعیت")).datasource(c.DS)
             .with_target(c.query(f"sum by (state) ({c.sel('readiness_link_state', *M)})", "{{state}}",
                                  instant=True))
             .orientation(cm.VizOrientation.HORIZONTAL).display_mode(cm.BarGaugeDisplayMode.BASIC).min(0)
             .reduce_options(c.last_value()).span(6).height(8))
    for state, _, colour, label in c.LINK_STATES:
        panel = panel.override_by_name(state, [c.fixed_colour(colour), c.prop("displayName", label)])
    return panel


def troubled_by_medium() -> bargauge.Panel:
    expr = (f"sum by (medium) ({c.sel('readiness_link_state', *M, TROUBLED)}) "
            f"/ sum by (medium) ({c.sel('readiness_link_state', *M)})")
    return (bargauge.Panel().title(c.bi("Impaired or down, by medium", "لینک‌های ضعیف یا قطع")).datasource(c.DS)
            .with_target(c.query(f"sort_desc({expr})", "{{medium}}", instant=True))
            .orientation(cm.VizOrientation.HORIZONTAL).display_mode(cm.BarGaugeDisplayMode.GRADIENT)
            .unit("percentunit").min(0).max(1).show_unfilled(True)
            .thresholds(c.thresholds((None, "green"), (0.02, "orange"), (0.1, "red")))
            .reduce_options(c.last_value()).span(9).height(8))


def links_table(title: str, columns: list[tuple[str, str, list[dm.DynamicConfigValue]]], span: int) -> \
        table.Panel:
    """Links as rows (one instant query per value column, merged), linked to their site's dashboard."""
    link = c.link_value(c.bi("Site dashboard", "داشبورد سایت"),
                        c.dashboard_url("site", county="${__data.fields.county}", site="${__data.fields.site}"))
    panel = table.Panel().title(title).datasource(c.DS)
    for i, (expr, name, props) in enumerate(columns):
        ref = chr(ord("A") + i)
        panel = (panel.with_target(c.query(expr, table=True))
                 .override_by_name(f"Value #{ref}", [c.prop("displayName", name), *props]))
    return (panel.with_transformation(c.transformation("merge"))
            .with_transformation(c.organize({}, hide=("Time",), order=("site", "county", "area", "role", "medium")))
            .override_by_name("site", [c.prop("links", [link])])
            .sort_by([cb.TableSortByFieldState().display_name(columns[0][1]).desc(True)])
            .span(span).height(9))


def worst_loss() -> table.Panel:
    expr = f"topk(20, max by ({LINK_LABELS}) ({c.sel('readiness_link_loss_ratio', *M)}) > 0)"
    return links_table(c.bi("Links losing packets now", "لینک‌های دارای اتلاف"),
                       [(expr, c.bi("Loss", "اتلاف"), [c.prop("unit", "percentunit")])], 9)


def flapping() -> table.Panel:
    """Links that changed state in the range, most changes first, with the monitor's own flapping verdict."""
    # 1 while the link carries traffic, 0 while it is down, nothing while unknown (unknown is not a change):
    # the state family has one series per link, its current state, so the changes are counted over a subquery.
    carries = (f"max by ({LINK_LABELS}) ({c.sel('readiness_link_state', *M, CARRIES)}) "
               f"or 0 * max by ({LINK_LABELS}) ({c.sel('readiness_link_state', *M, DOWN)})")
    changed = f"topk(20, changes(({carries})[$__range:]) > 0)"
    flapping = c.sel("readiness_link_state", *M, 'state="flapping"')
    known = c.sel("readiness_link_state", *M, 'state!="unknown"')
    verdict = (f"(max by ({LINK_LABELS}) ({flapping}) or 0 * max by ({LINK_LABELS}) ({known}))\n"
               f"and on (site, role) ({changed})")
    yes_no = [dm.ValueMap(options={"0": dm.ValueMappingResult(text="no · خیر", color="green", index=0),
                                   "1": dm.ValueMappingResult(text="flapping · ناپایدار", color="red", index=1)})]
    return links_table(c.bi("Flapping links", "لینک‌های ناپایدار"),
                       [(changed, c.bi("State changes in range", "تغییر وضعیت"), []),
                        (verdict, c.bi("Monitor says flapping", "ناپایدار به گفته پایشگر"),
                         [c.prop("mappings", yes_no), c.prop("custom.cellOptions", {"type": "color-text"})])], 24)


def build() -> dm.Dashboard:
    medium = c.label_variable("medium", c.bi("Medium", "رسانه"),
                              'label_values(readiness_link_state{county=~"$county"}, medium)', all_value=".*",
                              multi=True)
    d = (c.new_dashboard(KEY, c.bi("Readiness: link quality", "کیفیت لینک‌ها"),
                         "Where do links lose packets or lag, by medium and by county, and which links flap?")
         .with_variable(c.county_variable(all_counties=True)).with_variable(c.area_variable('county=~"$county"'))
         .with_variable(medium)
         .with_row(db.Row(c.bi("Now", "اکنون")))
         .with_panel(links_by_state()).with_panel(troubled_by_medium()).with_panel(worst_loss())
         .with_row(db.Row(c.bi("Loss", "اتلاف بسته")))
         .with_panel(rows_heatmap(c.bi("Loss by county", "اتلاف به تفکیک شهرستان"), "readiness_link_loss_ratio",
                                  "county", "percentunit", "Mean share of echoes lost over the county's links."))
         .with_panel(rows_heatmap(c.bi("Loss by medium", "اتلاف به تفکیک رسانه"), "readiness_link_loss_ratio",
                                  "medium", "percentunit", "Mean share of echoes lost over the medium's links."))
         .with_row(db.Row(c.bi("Latency", "تأخیر")))
         .with_panel(rows_heatmap(c.bi("Latency by county", "تأخیر به تفکیک شهرستان"),
                                  "readiness_link_rtt_avg_seconds", "county", "s",
                                  "Mean echo round-trip time over the county's links."))
         .with_panel(rows_heatmap(c.bi("Latency by medium", "تأخیر به تفکیک رسانه"),
                                  "readiness_link_rtt_avg_seconds", "medium", "s",
                                  "Mean echo round-trip time over the medium's links."))
         .with_panel(distribution(c.bi("Latency distribution: $medium", "توزیع تأخیر"),
                                  "readiness_link_rtt_avg_seconds", "s"))
         .with_row(db.Row(c.bi("Flapping", "ناپایداری")))
         .with_panel(flapping()))
    return c.finish(d)
