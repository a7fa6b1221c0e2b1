"""Province readiness: will the province be ready by the deadline, and which sites stand in the way?"""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, geomap, stat, table, timeseries
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import geomap as gm

from dashboards import common as c

KEY = "province"
AREA = 'area=~"$area"'


def ready_share(*m: str) -> stat.Panel:
    """The headline: share of sites ready now, with its trend, coloured against the target."""
    return (stat.Panel().title(c.bi("Ready share", "سهم سایت‌های آماده")).datasource(c.DS)
            .description("Polling sites whose state is ready, out of all polling sites (aggregation nodes are "
                         "not counted: they are shown on the map and in the tables).")
            .with_target(c.query(c.ready_ratio("", *m), "ready"))
            .unit("percentunit").decimals(1).min(0).max(1).thresholds(c.thresholds(*c.READY_STEPS))
            .graph_mode(cm.BigValueGraphMode.AREA).color_mode(cm.BigValueColorMode.BACKGROUND)
            .reduce_options(c.last_value()).span(5).height(6))


def ready_count(*m: str) -> stat.Panel:
    return (stat.Panel().title(c.bi("Ready sites", "سایت‌های آماده")).datasource(c.DS)
            .with_target(c.query(c.sites_in("ready", "", *m), "ready", instant=True))
            .with_target(c.query(c.sites_in(".+", "", *m), "all", instant=True))
            .text_mode(cm.BigValueTextMode.VALUE_AND_NAME).color_mode(cm.BigValueColorMode.NONE)
            .graph_mode(cm.BigValueGraphMode.NONE).reduce_options(c.last_value()).span(4).height(6))


def days_to_deadline() -> stat.Panel:
    return (stat.Panel().title(c.bi("Days to the deadline", "روز تا مهلت")).datasource(c.DS)
            .with_target(c.query(c.days_left(), "days", instant=True))
            .unit("none").decimals(1).thresholds(c.thresholds((None, "red"), (7, "orange"), (30, "green")))
            .color_mode(cm.BigValueColorMode.VALUE).graph_mode(cm.BigValueGraphMode.NONE)
            .reduce_options(c.last_value()).span(3).height(6))


def forecast(level: str, *m: str) -> stat.Panel:
    return (stat.Panel().title(c.bi("Forecast at the deadline", "پیش‌بینی در مهلت")).datasource(c.DS)
            .description("The monitor's forecast of the ready share at the deadline (from its history, robust to "
                         "outliers), as on its status page and API. Without enough history there is none. "
                         "Not narrowed by the area filter.")
            .with_target(c.query(c.forecast(level, *m), "forecast", instant=True))
            .no_value("not enough history · سابقه کافی نیست")
            .unit("percentunit").decimals(1).min(0).max(1).thresholds(c.thresholds(*c.READY_STEPS))
            .color_mode(cm.BigValueColorMode.VALUE).graph_mode(cm.BigValueGraphMode.NONE)
            .reduce_options(c.last_value()).span(4).height(6))


def all_ready_by(scope: str) -> stat.Panel:
    """The monitor's date for every site ready, if the trend goes on; none when it never gets there."""
    expr = f"max(readiness_forecast_all_ready_timestamp_seconds{{{scope}}}) * 1000"
    return (stat.Panel().title(c.bi("All ready by", "آمادگی کامل تا")).datasource(c.DS)
            .description("When the monitor's trend reaches every site ready (the last instance to get there, "
                         "when several share the province). Empty: the trend never gets there.")
            .with_target(c.query(expr, "all ready", instant=True))
            .unit("dateTimeAsIsoNoDateIfToday").no_value("not on this trend · با این روند نه")
            .color_mode(cm.BigValueColorMode.NONE).graph_mode(cm.BigValueGraphMode.NONE)
            .reduce_options(c.last_value()).span(4).height(6))


def needed_per_day(*m: str) -> stat.Panel:
    expr = f"({c.sites_in('.+', '', *m)} - {c.sites_in('ready', '', *m)}) / clamp_min({c.days_left()}, 1)"
    return (stat.Panel().title(c.bi("Sites to fix per day", "سایت در روز")).datasource(c.DS)
            .description("Sites not ready yet, divided by the days left: the pace the field teams must keep.")
            .with_target(c.query(expr, "per day", instant=True))
            .unit("none").decimals(1).color_mode(cm.BigValueColorMode.NONE).graph_mode(cm.BigValueGraphMode.NONE)
            .reduce_options(c.last_value()).span(4).height(6))


def by_state(*m: str) -> bargauge.Panel:
    panel = (bargauge.Panel().title(c.bi("Sites by state", "سایت‌ها بر پایه وضعیت")).datasource(c.DS)
             .with_target(c.query(f"sum by (state) ({c.sel(c.ROLLUP, *m)})", "{{state}}", instant=True))
             .orientation(cm.VizOrientation.HORIZONTAL).display_mode(cm.BarGaugeDisplayMode.BASIC)
             .min(0).unit("none").reduce_options(c.last_value()).span(6).height(9))
    for state, _, colour, label in c.SITE_STATES:
        panel = panel.override_by_name(state, [c.fixed_colour(colour), c.prop("displayName", label)])
    return panel


def by_reason(*m: str) -> bargauge.Panel:
    """Sites per reason code, the most common first: the work to plan first (from the rules' roll-up)."""
    expr = f"sort_desc(sum by (reason) ({c.sel(c.REASONS_ROLLUP, *m)}))"
    return (bargauge.Panel().title(c.bi("Sites by reason", "سایت‌ها بر پایه علت")).datasource(c.DS)
            .description("Sites (aggregation nodes too) having each reason code among their reasons; a site with "
                         "several reasons counts under each.")
            .with_target(c.query(expr, "{{reason}}", instant=True))
            .orientation(cm.VizOrientation.HORIZONTAL).display_mode(cm.BarGaugeDisplayMode.BASIC)
            .min(0).unit("none").reduce_options(c.last_value()).span(24).height(8))


def ratio_bars(title: str, by: str, *m: str, link: db.DashboardLink | None = None, span: int = 12) -> \
        bargauge.Panel:
    """Ready share per ``by`` group, worst first."""
    panel = (bargauge.Panel().title(title).datasource(c.DS)
             .with_target(c.query(f"sort({c.ready_ratio(by, *m)})", "{{" + by + "}}", instant=True))
             .orientation(cm.VizOrientation.HORIZONTAL).display_mode(cm.BarGaugeDisplayMode.GRADIENT)
             .unit("percentunit").decimals(0).min(0).max(1).thresholds(c.thresholds(*c.READY_STEPS))
             .show_unfilled(True).reduce_options(c.last_value()).span(span).height(9))
    if link is not None:
        panel = panel.data_links([link])
    return panel


def by_county(*m: str) -> bargauge.Panel:
    link = c.data_link(c.bi("County dashboard", "داشبورد شهرستان"),
                       c.dashboard_url("county", "${area:queryparam}", county="${__field.labels.county}"))
    return ratio_bars(c.bi("Ready share by county", "آمادگی به تفکیک شهرستان"), "county", *m, link=link)


def by_area(*m: str) -> bargauge.Panel:
    return ratio_bars(c.bi("Urban and rural", "شهری و روستایی"), "area", *m, span=6)


def burn_up(*m: str) -> timeseries.Panel:
    """Ready polling sites over time against all of them; the title counts the days left to the deadline."""
    return (timeseries.Panel().title(c.bi("Burn-up: ${days_left} days to the deadline", "روند آمادگی"))
            .datasource(c.DS)
            .description("Ready sites, and ready plus degraded (working but missing a requirement), against all "
                         "sites. The red annotation marks the deadline once it has passed.")
            .with_target(c.query(c.sites_in("ready", "", *m), "ready"))
            .with_target(c.query(c.sites_in("ready|degraded", "", *m), "ready or degraded"))
            .with_target(c.query(c.sites_in(".+", "", *m), "all sites"))
            .unit("none").decimals(0).min(0).fill_opacity(15).line_width(2)
            .legend(c.legend("lastNotNull")).tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI)
                                                     .sort(cm.SortOrder.DESCENDING))
            .override_by_name("ready", [c.fixed_colour("green")])
            .override_by_name("ready or degraded", [c.fixed_colour("orange"), c.prop("custom.fillOpacity", 0)])
            .override_by_name("all sites", [c.fixed_colour("#8e8e8e"), c.dashed(), c.prop("custom.fillOpacity", 0)])
            .span(12).height(12))


def worst_sites(*m: str, limit: int = 50) -> table.Panel:
    """The ``limit`` worst sites, by severity then time in state, with their reasons."""
    worst = f"topk({limit}, {c.site_state_code(*m)} * 1e9 + {c.seconds_in_state(*m)})"
    rows = f"({c.reason_rows(*m)}) and on (site) ({worst})"
    return sites_table(c.bi("Worst sites and why", "بدترین سایت‌ها و علت"), rows, *m)


def sites_table(title: str, rows: str, *m: str, span: int = 24, height: int = 12,
                terminals: bool = False) -> table.Panel:
    """A table of sites: state, time in state and reasons, linked to the site dashboard."""
    panel = (table.Panel().title(title).datasource(c.DS)
             .with_target(c.query(c.per_row(rows, c.site_state_code(*m)), table=True))
             .with_target(c.query(c.per_row(rows, c.seconds_in_state(*m)), table=True)))
    if terminals:
        panel = (panel
                 .with_target(c.query(c.per_row(rows, f"max by (site) ({c.sel('readiness_site_terminals_up', *m)})"),
                                      table=True))
                 .with_target(c.query(c.per_row(rows, f"max by (site) ({c.sel('readiness_site_terminals', *m)})"),
                                      table=True)))
    link = c.link_value(c.bi("Site dashboard", "داشبورد سایت"),
                        c.dashboard_url("site", county="${__data.fields.county}", site="${__data.fields.site}"))
    panel = (panel.with_transformation(c.transformation("merge"))
             .with_transformation(c.organize({}, hide=("Time",),
                                             order=("site", "name", "county", "area", "Value #A", "reason",
                                                    "reasons", "Value #B", "Value #C", "Value #D")))
             .sort_by([cb.TableSortByFieldState().display_name(c.bi("State", "وضعیت")).desc(True)])
             .override_by_name("site", [c.prop("displayName", c.bi("Site", "سایت")), c.prop("links", [link])])
             .override_by_name("name", [c.prop("displayName", c.bi("Name", "نام"))])
             .override_by_name("area", [c.prop("displayName", c.bi("Area", "محدوده"))])
             .override_by_name("reason", [c.prop("displayName", c.bi("Main reason", "علت اصلی"))])
             .override_by_name("reasons", [c.prop("displayName", c.bi("Reasons", "علت‌ها"))])
             .override_by_name("Value #A", [c.prop("displayName", c.bi("State", "وضعیت")),
                                            c.prop("mappings", c.code_mapping(c.SITE_STATES)),
                                            c.prop("custom.cellOptions", {"type": "color-text"})])
             .override_by_name("Value #B", [c.prop("displayName", c.bi("In state for", "مدت در این وضعیت")),
                                            c.prop("unit", "dtdurations")])
             .override_by_name("Value #C", [c.prop("displayName", c.bi("Terminals up", "پایانه‌های فعال"))])
             .override_by_name("Value #D", [c.prop("displayName", c.bi("Terminals", "پایانه‌ها"))])
             .span(span).height(height))
    return panel


def sites_map(*m: str, span: int = 12, height: int = 12) -> geomap.Panel:
    """Every site with a location, coloured by state; the tooltip links to the site dashboard.

    One table query: the location is a pair of labels of readiness_site_info (static facts are exported once
    per site), the value the state code; Grafana turns the two labels into numbers.
    """
    located = c.sel("readiness_site_info", *m, 'latitude!=""')
    info = f"max by (site, county, name, latitude, longitude) ({located})"
    code = f"{info} * 0 + on (site) group_left () {c.site_state_code(*m, by='site')}"
    markers = (cb.MapLayerOptions().type("markers").name(c.bi("Sites", "سایت‌ها")).tooltip(True)
               .location(cb.FrameGeometrySource().mode(cm.FrameGeometrySourceMode.COORDS)
                         .latitude("latitude").longitude("longitude"))
               .config({"showLegend": True,
                        "style": {"color": {"field": "Value", "fixed": "dark-green"}, "opacity": 0.8,
                                  "size": {"fixed": 7, "max": 15, "min": 2},
                                  "symbol": {"fixed": "img/icons/marker/circle.svg", "mode": "fixed"}}}))
    link = c.link_value(c.bi("Site dashboard", "داشبورد سایت"),
                        c.dashboard_url("site", county="${__data.fields.county}", site="${__data.fields.site}"))
    return (geomap.Panel().title(c.bi("Sites on the map", "نقشه سایت‌ها")).datasource(c.DS)
            .with_target(c.query(code, table=True))
            .with_transformation(c.transformation("convertFieldType", {"conversions": [
                {"targetField": "latitude", "destinationType": "number"},
                {"targetField": "longitude", "destinationType": "number"}]}))
            .view(geomap.MapViewConfig().id("fit").all_layers(True).zoom(8))
            .controls(geomap.ControlsOptions().show_zoom(True).mouse_wheel_zoom(True).show_attribution(True))
            .basemap(cb.MapLayerOptions().type("default").name("Basemap"))
            .layers([markers]).tooltip(geomap.TooltipOptions().mode(gm.TooltipMode.DETAILS))
            .override_by_name("Value", [c.prop("displayName", c.bi("State", "وضعیت")),
                                           c.prop("mappings", c.code_mapping(c.SITE_STATES)),
                                           c.prop("color", {"mode": "thresholds"}),
                                           c.prop("thresholds", c.code_thresholds(c.SITE_STATES).build())])
            .override_by_name("site", [c.prop("links", [link])])
            .span(span).height(height))


def build() -> dm.Dashboard:
    m = (AREA,)
    d = (c.new_dashboard(KEY, c.bi("Readiness: province", "آمادگی استان"),
                         "Is the province ready for election day, will it be by the deadline, and which sites "
                         "stand in the way?", time_from="now-7d")
         .with_variable(c.area_variable())
         .with_variable(c.days_left_variable())
         .annotation(c.deadline_annotation())
         .with_row(db.Row(c.bi("Now", "اکنون")))
         .with_panel(ready_share(*m)).with_panel(ready_count(*m)).with_panel(days_to_deadline())
         .with_panel(forecast("province")).with_panel(all_ready_by('scope="province"'))
         .with_panel(needed_per_day(*m))
         .with_panel(by_state(*m)).with_panel(by_county(*m)).with_panel(by_area(*m))
         .with_row(db.Row(c.bi("Progress and map", "روند و نقشه")))
         .with_panel(burn_up(*m)).with_panel(sites_map(*m))
         .with_row(db.Row(c.bi("Sites that are not ready", "سایت‌های ناآماده")))
         .with_panel(by_reason(*m)).with_panel(worst_sites(*m)))
    return c.finish(d)
