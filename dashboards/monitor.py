"""Monitor health: can the readiness numbers be trusted? Probe cycles, load, scrapes, store and config.

``scrape_*`` and ``up`` are the series Prometheus itself records for every target it scrapes.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards import common as c

KEY = "monitor"
J = ('job=~"$job"', 'instance=~"$instance"')


def series(title: str, *targets: tuple[str, str], unit: str, span: int = 8, height: int = 8,
           description: str = "") -> timeseries.Panel:
    panel = timeseries.Panel().title(title).datasource(c.DS).unit(unit).min(0).legend(c.legend("lastNotNull", "max"))
    if description:
        panel = panel.description(description)
    for expr, legend in targets:
        panel = panel.with_target(c.query(expr, legend))
    return panel.span(span).height(height)


def cycle_durations() -> timeseries.Panel:
    return (series(c.bi("Probe cycle duration", "مدت چرخه کاوش"),
                   (c.sel("readiness_probe_cycle_duration_seconds", *J), "{{instance}} {{kind}}"),
                   (c.sel("readiness_probe_interval_seconds", *J), "{{instance}} {{kind}} interval"),
                   unit="s", span=8,
                   description="A cycle that takes longer than its interval makes the next one skip.")
            .override_by_regexp(".* interval", [c.dashed(), c.fixed_colour("red")]))


def cycle_load() -> bargauge.Panel:
    expr = (f"max by (kind) ({c.sel('readiness_probe_cycle_duration_seconds', *J)} "
            f"/ {c.sel('readiness_probe_interval_seconds', *J)})")
    return (bargauge.Panel().title(c.bi("Cycle time / interval", "بار چرخه")).datasource(c.DS)
            .description("How much of each interval the slowest instance's cycle uses: the room to spare.")
            .with_target(c.query(expr, "{{kind}}", instant=True))
            .orientation(cm.VizOrientation.HORIZONTAL).display_mode(cm.BarGaugeDisplayMode.GRADIENT)
            .unit("percentunit").min(0).max(1).show_unfilled(True)
            .thresholds(c.thresholds((None, "green"), (0.5, "orange"), (0.8, "red")))
            .reduce_options(c.last_value()).span(6).height(8))


def last_cycle_age() -> bargauge.Panel:
    expr = f"time() - {c.sel('readiness_probe_last_cycle_timestamp_seconds', *J)}"
    return (bargauge.Panel().title(c.bi("Since the last cycle", "از آخرین چرخه")).datasource(c.DS)
            .with_target(c.query(expr, "{{instance}} {{kind}}", instant=True))
            .orientation(cm.VizOrientation.HORIZONTAL).display_mode(cm.BarGaugeDisplayMode.BASIC)
            .unit("s").min(0).thresholds(c.thresholds((None, "green"), (120, "orange"), (300, "red")))
            .reduce_options(c.last_value()).span(6).height(8))


def skipped_and_failed() -> timeseries.Panel:
    skipped = f"sum by (kind) (increase({c.sel('readiness_probe_cycles_skipped_total', *J)}[$__rate_interval]))"
    failed = f"sum by (kind) (increase({c.sel('readiness_probe_errors_total', *J)}[$__rate_interval]))"
    return (series(c.bi("Skipped and failed cycles", "چرخه‌های جاافتاده و ناموفق"),
                   (skipped, "{{kind}} skipped"), (failed, "{{kind}} failed"), unit="none", span=8)
            .draw_style(cm.GraphDrawStyle.BARS).fill_opacity(80)
            .override_by_regexp(".* failed", [c.fixed_colour("red")])
            .override_by_regexp(".* skipped", [c.fixed_colour("orange")]))


def cycles_per_minute() -> timeseries.Panel:
    expr = f"sum by (kind) (rate({c.sel('readiness_probe_cycles_total', *J)}[$__rate_interval])) * 60"
    return series(c.bi("Cycles per minute", "چرخه در دقیقه"), (expr, "{{kind}}"), unit="none", span=8)


def targets() -> timeseries.Panel:
    return series(c.bi("Targets per kind", "هدف‌ها"),
                  (f"sum by (kind) ({c.sel('readiness_probe_targets', *J)})", "{{kind}}"),
                  (f"sum by (kind) ({c.sel('readiness_probe_targets_failed', *J)})", "{{kind}} failed"),
                  unit="none", span=8)


def scrape_size() -> timeseries.Panel:
    return (series(c.bi("Scrape size and time", "حجم و زمان خراش"),
                   (c.sel("scrape_samples_scraped", *J), "{{instance}} samples"),
                   (c.sel("scrape_duration_seconds", *J), "{{instance}} scrape"),
                   (c.sel("readiness_exporter_collect_seconds", *J), "{{instance}} collect"),
                   unit="none", span=8,
                   description="Samples per scrape (left) and the time Prometheus waited and the monitor spent "
                               "building the exposition (right).")
            .override_by_regexp(".* (scrape|collect)", [c.prop("unit", "s"), c.prop("custom.axisPlacement", "right")]))


def freshness() -> timeseries.Panel:
    return series(c.bi("Freshness", "تازگی داده"),
                  (f"time() - {c.sel('readiness_last_evaluation_timestamp_seconds', *J)}",
                   "{{instance}} since evaluation"),
                  (c.sel("readiness_store_lag_seconds", *J), "{{instance}} store lag"),
                  unit="s", span=8,
                  description="Age of the last readiness evaluation, and how far the store's writer trails it "
                              "(the store's series exist only where a store is configured).")


def store() -> timeseries.Panel:
    dropped = f"increase({c.sel('readiness_store_dropped_events_total', *J)}[$__rate_interval])"
    return (series(c.bi("Event store", "ذخیره رویدادها"),
                   (c.sel("readiness_store_queued_events", *J), "{{instance}} queued"),
                   (dropped, "{{instance}} dropped"),
                   unit="none", span=8,
                   description="Events waiting to be committed, and events refused because the queue was full: "
                               "any drop is a gap in the audit trail.")
            .override_by_regexp(".* dropped", [c.fixed_colour("red"), c.prop("custom.drawStyle", "bars")]))


def per_instance(expr: str) -> str:
    """``expr`` per instance, labelled with the instance's build version and config hash (for one table)."""
    build = f"max by (instance, version) ({c.sel('readiness_build_info', *J)})"
    config = (f'max by (instance, config) (label_replace({c.sel("readiness_config_info", *J)}, '
              f'"config", "$1", "version", "(.*)"))')
    return (f"max by (instance) ({expr}) * on (instance) group_left (version) {build} "
            f"* on (instance) group_left (config) {config}")


def instances() -> table.Panel:
    """One row per monitor: version, config hash, up, uptime, last reload, whether it worked, reloads."""
    reload_at = c.sel("readiness_config_last_reload_timestamp_seconds", *J)
    yes_no = [dm.ValueMap(options={"0": dm.ValueMappingResult(text="no · خیر", color="red", index=0),
                                   "1": dm.ValueMappingResult(text="yes · بله", color="green", index=1)})]
    as_yes_no = [c.prop("mappings", yes_no), c.prop("custom.cellOptions", {"type": "color-text"})]
    duration = [c.prop("unit", "dtdurations")]
    columns = (
        (c.sel("up", *J), "up", as_yes_no),
        (f"time() - {c.sel('readiness_start_timestamp_seconds', *J)}", c.bi("Uptime", "مدت کار"), duration),
        (f"time() - {reload_at}", c.bi("Since reload", "از آخرین بارگذاری"), duration),
        (c.sel("readiness_config_last_reload_success", *J), c.bi("Last reload worked", "بارگذاری موفق"), as_yes_no),
        (f"changes({reload_at}[$__range])", c.bi("Reloads in range", "بارگذاری‌ها"), []),
        (c.sel("readiness_store_ok", *J), c.bi("Store writable", "ذخیره سالم"), as_yes_no),
    )
    panel = table.Panel().title(c.bi("Monitors", "پایشگرها")).datasource(c.DS)
    for i, (expr, name, props) in enumerate(columns):
        panel = (panel.with_target(c.query(per_instance(expr), table=True))
                 .override_by_name(f"Value #{chr(ord('A') + i)}", [c.prop("displayName", name), *props]))
    return (panel.with_transformation(c.transformation("merge"))
            .with_transformation(c.organize({"version": c.bi("Version", "نسخه"),
                                             "config": c.bi("Config", "پیکربندی")},
                                            order=("instance", "version", "config")))
            .span(24).height(7))


def reload_annotation() -> db.AnnotationQuery:
    return (db.AnnotationQuery().name(c.bi("Config reloads", "بارگذاری پیکربندی")).datasource(c.DS).enable(True)
            .icon_color("blue")
            .expr(f"changes({c.sel('readiness_config_last_reload_timestamp_seconds', *J)}[2m]) > 0"))


def ready_to_trust() -> stat.Panel:
    """The one number on this page: monitors that Prometheus reaches, out of those it should."""
    return c.count_of_expected(c.bi("Monitors up", "پایشگرهای فعال"), f"sum({c.sel('up', *J)})",
                               f"count({c.sel('up', *J)})", 8)


def build() -> dm.Dashboard:
    # "All" lists the readiness jobs and instances, not ".*": `up` and `scrape_*` exist for every target.
    job = c.label_variable("job", "Job", "label_values(readiness_build_info, job)", include_all=True, multi=True)
    instance = c.label_variable("instance", c.bi("Instance", "نمونه"),
                                'label_values(readiness_build_info{job=~"$job"}, instance)', include_all=True,
                                multi=True)
    d = (c.new_dashboard(KEY, c.bi("Readiness: monitor health", "سلامت پایشگر"),
                         "Can the readiness numbers be trusted? Probe cycles and their load, scrapes, the store "
                         "and config reloads of every monitor instance.", time_from="now-6h")
         .with_variable(job).with_variable(instance)
         .annotation(reload_annotation())
         .with_row(db.Row(c.bi("Probes", "کاوش‌ها")))
         .with_panel(ready_to_trust()).with_panel(cycle_load()).with_panel(last_cycle_age())
         .with_panel(cycle_durations())
         .with_panel(skipped_and_failed()).with_panel(cycles_per_minute()).with_panel(targets())
         .with_row(db.Row(c.bi("Exposition, store and config", "نمایش، ذخیره و پیکربندی")))
         .with_panel(scrape_size()).with_panel(freshness()).with_panel(store()).with_panel(instances()))
    return c.finish(d)
