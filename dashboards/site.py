"""Site: why is this site (not) ready? Its state and reasons, then each link in detail.

The link section repeats per link role (primary, backup): latency in the style of SmokePing (the band
between the smallest and largest echo time, the mean as a line, loss as coloured bars), loss and jitter,
optical power and the interface, each against the thresholds of the link's medium as the monitor exports them.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import stat, statetimeline, table, timeseries
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards import common as c

KEY = "site"
SITE = 'site="$site"'
ROLE = 'role=~"$role"'
UP_DOWN = (("down", 0, "red", "down · قطع"), ("up", 1, "green", "up · برقرار"))
# Loss colours after SmokePing: none, some, a lot, most.
LOSS_STEPS = ((None, "green"), (0.0001, "yellow"), (0.05, "orange"), (0.2, "red"))


def link_value(metric: str) -> str:
    """One link's value, without the monitor's own labels (instance, job) so HA pairs do not double up."""
    return f"max by (medium) ({c.sel(metric, SITE, ROLE)})"


def medium_value(metric: str) -> str:
    """A threshold of the selected link's medium (thresholds are exported once per medium, not per link)."""
    return (f"max by (medium) ({metric})\n"
            f"and on (medium) max by (medium) ({c.sel('readiness_link_state', SITE, ROLE)})")


def link_rate(counter: str, factor: str = "") -> str:
    """One link's counter as a per-second rate (HA pairs counted once)."""
    return f"max by (medium) (rate({c.sel(counter, SITE, ROLE)}[$__rate_interval])){factor}"


def state_now() -> stat.Panel:
    return (stat.Panel().title(c.bi("State", "وضعیت")).datasource(c.DS)
            .with_target(c.query(c.site_state_code(SITE), "state", instant=True))
            .mappings(c.code_mapping(c.SITE_STATES)).thresholds(c.code_thresholds(c.SITE_STATES))
            .color_mode(cm.BigValueColorMode.BACKGROUND).graph_mode(cm.BigValueGraphMode.NONE)
            .reduce_options(c.last_value()).span(4).height(5))


def in_state_for() -> stat.Panel:
    return (stat.Panel().title(c.bi("In this state for", "مدت در این وضعیت")).datasource(c.DS)
            .with_target(c.query(c.seconds_in_state(SITE), "for", instant=True))
            .unit("dtdurations").color_mode(cm.BigValueColorMode.NONE).graph_mode(cm.BigValueGraphMode.NONE)
            .reduce_options(c.last_value()).span(4).height(5))


def terminals_now() -> stat.Panel:
    return c.count_of_expected(c.bi("Terminals up", "پایانه‌های فعال"),
                               f"max({c.sel('readiness_site_terminals_up', SITE)})",
                               f"max({c.sel('readiness_site_terminals', SITE)})", 5)


def history_facts() -> stat.Panel:
    """From the monitor's memory: ever ready, regressions since, maintenance now, the backup proven."""
    yes_no = [dm.ValueMap(options={"0": dm.ValueMappingResult(text="no · خیر", index=0),
                                   "1": dm.ValueMappingResult(text="yes · بله", index=1)})]
    backup = c.sel("readiness_link_backup_proven", SITE, 'role="backup"')
    return (stat.Panel().title(c.bi("History", "سابقه")).datasource(c.DS)
            .description("Ever (sustained) ready; times it slipped back since; inside a maintenance window now; "
                         "the backup link seen carrying traffic at least once.")
            .with_target(c.query(f"max({c.sel('readiness_site_ever_ready', SITE)}) or vector(0)", "ever ready",
                                 instant=True))
            .with_target(c.query(f"max({c.sel('readiness_site_regressions_total', SITE)})", "regressions",
                                 instant=True))
            .with_target(c.query(f"max({c.sel('readiness_site_maintenance', SITE)}) or vector(0)", "maintenance",
                                 instant=True))
            .with_target(c.query(f"max({backup})", "backup proven", instant=True))
            .text_mode(cm.BigValueTextMode.VALUE_AND_NAME).color_mode(cm.BigValueColorMode.NONE)
            .graph_mode(cm.BigValueGraphMode.NONE).reduce_options(c.last_value())
            .override_by_regexp("ever ready|maintenance|backup proven", [c.prop("mappings", yes_no)])
            .span(4).height(5))


def facts() -> table.Panel:
    """Name, kind, county, area and the upstream node (linked to its own site dashboard)."""
    link = c.link_value(c.bi("Upstream node", "گره بالادست"),
                        c.dashboard_url("site", county="$county", site="${__data.fields.upstream}"))
    return (table.Panel().title(c.bi("Site", "سایت")).datasource(c.DS)
            .with_target(c.query(f"max by (site, name, kind, county, area, upstream) "
                                 f"({c.sel('readiness_site_info', SITE)})", table=True))
            .with_transformation(c.organize({}, hide=("Time", "Value"),
                                            order=("site", "name", "kind", "county", "area", "upstream")))
            .override_by_name("upstream", [c.prop("links", [link])])
            .span(8).height(5))


def reasons() -> table.Panel:
    back = c.link_value(c.bi("County dashboard", "داشبورد شهرستان"), c.dashboard_url("county", county="$county"))
    return (table.Panel().title(c.bi("Why not ready", "علت‌ها")).datasource(c.DS)
            .description("The main reason's code and every reason code of the site; the full text (e.g. "
                         "primary.loss>1%) is on the monitor's status page.")
            .with_target(c.query(f"max by (reason, reasons) ({c.sel('readiness_site_reason', SITE)})", table=True))
            .with_transformation(c.organize({}, hide=("Time", "Value")))
            .override_by_name("reason", [c.prop("displayName", c.bi("Main reason", "علت اصلی")),
                                         c.prop("links", [back])])
            .override_by_name("reasons", [c.prop("displayName", c.bi("Reasons", "علت‌ها"))])
            .no_value("none · هیچ").span(6).height(8))


def state_history() -> statetimeline.Panel:
    links = c.state_code("readiness_link_state", c.LINK_STATES, "role, medium", SITE)
    return (statetimeline.Panel().title(c.bi("State history", "تاریخچه وضعیت")).datasource(c.DS)
            .with_target(c.query(c.site_state_code(SITE), "site"))
            .with_target(c.query(links, "{{role}} {{medium}}"))
            .mappings(c.code_mapping(c.LINK_STATES)).thresholds(c.code_thresholds(c.LINK_STATES))
            .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
            .override_by_name("site", [c.prop("mappings", c.code_mapping(c.SITE_STATES)),
                                       c.prop("thresholds", c.code_thresholds(c.SITE_STATES).build())])
            .merge_values(True).show_value(cm.VisibilityMode.NEVER).row_height(0.8).span(18).height(8))


def terminals_history() -> statetimeline.Panel:
    return (statetimeline.Panel().title(c.bi("Terminals", "پایانه‌ها")).datasource(c.DS)
            .with_target(c.query(f"max by (terminal) ({c.sel('readiness_terminal_up', SITE)})", "{{terminal}}"))
            .mappings(c.code_mapping(UP_DOWN)).thresholds(c.code_thresholds(UP_DOWN))
            .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
            .merge_values(True).show_value(cm.VisibilityMode.NEVER).span(24).height(6))


def certificates() -> table.Panel:
    """The county's HTTPS terminals by certificate expiry, soonest first, with each check's HTTP status."""
    county = 'county="$county"'
    expiry = f"min by (site, terminal) ({c.sel('readiness_terminal_tls_not_after_timestamp_seconds', county)})"
    left = f"{expiry} - time()"
    status = f"max by (site, terminal) ({c.sel('readiness_terminal_http_status_code', county)})"
    link = c.link_value(c.bi("Site dashboard", "داشبورد سایت"),
                        c.dashboard_url("site", county="$county", site="${__data.fields.site}"))
    expires, days = c.bi("Expires", "انقضا"), c.bi("Time left", "زمان باقی‌مانده")
    code = c.bi("HTTP status", "وضعیت HTTP")
    return (table.Panel().title(c.bi("Certificates in $county by expiry", "گواهی‌های شهرستان به ترتیب انقضا"))
            .datasource(c.DS)
            .description("The certificate each HTTPS terminal of the county presents, soonest to expire first; the "
                         "monitor warns when one expires before the deadline plus the policy's margin.")
            .with_target(c.query(expiry, table=True)).with_target(c.query(left, table=True))
            .with_target(c.query(status, table=True))
            .override_by_name("Value #A", [c.prop("displayName", expires), c.prop("unit", "dateTimeAsIso")])
            .override_by_name("Value #B", [c.prop("displayName", days), c.prop("unit", "dtdurations"),
                                           c.prop("custom.cellOptions", {"type": "color-text"}),
                                           c.prop("thresholds", c.thresholds((None, "red"), (14 * 86400, "orange"),
                                                                             (60 * 86400, "green")).build())])
            .override_by_name("Value #C", [c.prop("displayName", code)])
            .with_transformation(c.transformation("merge"))
            .with_transformation(c.organize({}, hide=("Time",), order=("site", "terminal")))
            .override_by_name("site", [c.prop("links", [link])])
            .sort_by([cb.TableSortByFieldState().display_name(expires).desc(False)])
            .no_value("no HTTPS terminals · بدون پایانه HTTPS").span(24).height(8))


def latency() -> timeseries.Panel:
    """SmokePing-style latency: min..max band, mean line, loss bars coloured by how much was lost."""
    band = "#8AB8FF"
    return (timeseries.Panel().title(c.bi("Latency and loss: $role", "تأخیر و اتلاف")).datasource(c.DS)
            .description("The shaded band spans the smallest to the largest echo time of each cycle, the line is "
                         "the mean, the dashed line the mean allowed for the medium. Bars (right axis) are the "
                         "share of echoes lost, green to red.")
            .with_target(c.query(link_value("readiness_link_rtt_min_seconds"), "min"))
            .with_target(c.query(link_value("readiness_link_rtt_max_seconds"), "max"))
            .with_target(c.query(link_value("readiness_link_rtt_avg_seconds"), "mean"))
            .with_target(c.query(medium_value("readiness_medium_rtt_max_allowed_seconds"), "allowed ({{medium}})"))
            .with_target(c.query(link_value("readiness_link_loss_ratio"), "loss"))
            .unit("s").min(0).line_width(1).fill_opacity(0).span_nulls(False)
            .legend(c.legend("mean", "max")).tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI))
            .override_by_name("min", [c.fixed_colour(band), c.prop("custom.lineWidth", 0)])
            .override_by_name("max", [c.fixed_colour(band), c.prop("custom.lineWidth", 0),
                                      c.prop("custom.fillBelowTo", "min"), c.prop("custom.fillOpacity", 40)])
            .override_by_name("mean", [c.fixed_colour("dark-blue"), c.prop("custom.lineWidth", 2)])
            .override_by_regexp("allowed.*", [c.fixed_colour("red"), c.dashed()])
            .override_by_name("loss", [c.prop("unit", "percentunit"), c.prop("min", 0), c.prop("max", 1),
                                       c.prop("custom.axisPlacement", "right"), c.prop("custom.drawStyle", "bars"),
                                       c.prop("custom.fillOpacity", 70), c.prop("custom.gradientMode", "scheme"),
                                       c.prop("color", {"mode": "thresholds"}),
                                       c.prop("thresholds", c.thresholds(*LOSS_STEPS).build())])
            .span(12).height(9))


def loss_and_jitter() -> timeseries.Panel:
    return (timeseries.Panel().title(c.bi("Loss and jitter: $role", "اتلاف و لرزش")).datasource(c.DS)
            .with_target(c.query(link_value("readiness_link_loss_ratio"), "loss"))
            .with_target(c.query(medium_value("readiness_medium_loss_max_ratio"), "loss allowed ({{medium}})"))
            .with_target(c.query(link_value("readiness_link_jitter_seconds"), "jitter"))
            .unit("percentunit").min(0).line_width(1).fill_opacity(10).legend(c.legend("mean", "max"))
            .override_by_regexp("loss allowed.*", [c.fixed_colour("red"), c.dashed(), c.prop("custom.fillOpacity", 0)])
            .override_by_name("jitter", [c.prop("unit", "s"), c.prop("custom.axisPlacement", "right"),
                                         c.fixed_colour("purple")])
            .span(12).height(9))


def optical_power() -> timeseries.Panel:
    return (timeseries.Panel().title(c.bi("Optical power: $role", "توان نوری")).datasource(c.DS)
            .description("Receive power of the transceiver against the medium's warning and minimum levels.")
            .with_target(c.query(link_value("readiness_link_rx_power_dbm"), "receive"))
            .with_target(c.query(link_value("readiness_link_tx_power_dbm"), "transmit"))
            .with_target(c.query(medium_value("readiness_medium_rx_power_warn_dbm"), "warning"))
            .with_target(c.query(medium_value("readiness_medium_rx_power_min_dbm"), "minimum"))
            .unit("dBm").line_width(2).legend(c.legend("lastNotNull", "min"))
            .override_by_name("receive", [c.fixed_colour("green")])
            .override_by_name("transmit", [c.fixed_colour("blue"), c.prop("custom.lineWidth", 1)])
            .override_by_name("warning", [c.fixed_colour("orange"), c.dashed(), c.prop("custom.lineWidth", 1)])
            .override_by_name("minimum", [c.fixed_colour("red"), c.dashed(), c.prop("custom.lineWidth", 1)])
            .span(6).height(8))


def traffic() -> timeseries.Panel:
    return (timeseries.Panel().title(c.bi("Interface traffic: $role", "ترافیک رابط")).datasource(c.DS)
            .with_target(c.query(link_rate("readiness_link_in_bytes_total", " * 8"), "in"))
            .with_target(c.query(link_rate("readiness_link_out_bytes_total", " * 8"), "out"))
            .unit("bps").fill_opacity(20).legend(c.legend("mean", "max"))
            .override_by_name("out", [c.prop("custom.transform", "negative-Y")])
            .span(6).height(8))


def errors() -> timeseries.Panel:
    return (timeseries.Panel().title(c.bi("Interface errors: $role", "خطاهای رابط")).datasource(c.DS)
            .with_target(c.query(link_rate("readiness_link_in_errors_total"), "in errors"))
            .with_target(c.query(link_rate("readiness_link_out_errors_total"), "out errors"))
            .with_target(c.query(link_rate("readiness_link_in_discards_total"), "in discards"))
            .unit("cps").min(0).legend(c.legend("max")).span(6).height(8))


def interface_status() -> statetimeline.Panel:
    return (statetimeline.Panel().title(c.bi("Interface status: $role", "وضعیت رابط")).datasource(c.DS)
            .with_target(c.query(link_value("readiness_link_oper_up"), "oper"))
            .with_target(c.query(link_value("readiness_link_admin_up"), "admin"))
            .mappings(c.code_mapping(UP_DOWN)).thresholds(c.code_thresholds(UP_DOWN))
            .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
            .merge_values(True).show_value(cm.VisibilityMode.NEVER).span(6).height(8))


def build() -> dm.Dashboard:
    role = c.label_variable("role", c.bi("Link", "لینک"), 'label_values(readiness_link_state{site="$site"}, role)',
                            all_value=".*", multi=True)
    d = (c.new_dashboard(KEY, c.bi("Readiness: site $site", "آمادگی سایت"),
                         "Why is this site (not) ready, and how do its links, interfaces and terminals behave?",
                         time_from="now-6h")
         .with_variable(c.county_variable()).with_variable(c.site_variable()).with_variable(role)
         .with_row(db.Row(c.bi("Now", "اکنون")))
         .with_panel(state_now()).with_panel(in_state_for()).with_panel(terminals_now())
         .with_panel(history_facts()).with_panel(facts())
         .with_panel(reasons()).with_panel(state_history()).with_panel(terminals_history()).with_panel(certificates())
         .with_row(db.Row(c.bi("Link: $role", "لینک")).repeat("role"))
         .with_panel(latency()).with_panel(loss_and_jitter())
         .with_panel(optical_power()).with_panel(traffic()).with_panel(errors()).with_panel(interface_status()))
    return c.finish(d)
