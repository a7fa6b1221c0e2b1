"""County readiness: the province dashboard narrowed to one county, with every site listed."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, table
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards import common as c
from dashboards import province as p

KEY = "county"
COUNTY = 'county="$county"'
AREA = 'area=~"$area"'
HAS_UPSTREAM = 'upstream!=""'


def by_upstream(*m: str) -> bargauge.Panel:
    """Ready share of the sites behind each aggregation node: one dark node explains many dark sites."""
    joined = (f"{c.sel('readiness_site_state', *m, c.READY)} * on (site) group_left (upstream) "
              f"max by (site, upstream) ({c.sel('readiness_site_info', *m, HAS_UPSTREAM)})")
    link = c.data_link(c.bi("Node's site dashboard", "داشبورد گره"),
                       c.dashboard_url("site", county="$county", site="${__field.labels.upstream}"))
    return (bargauge.Panel().title(c.bi("Ready share behind each node", "آمادگی پشت هر گره")).datasource(c.DS)
            .description("Share of ready sites among those whose links depend on each upstream node.")
            .with_target(c.query(f"sort(avg by (upstream) ({joined}))", "{{upstream}}", instant=True))
            .orientation(cm.VizOrientation.HORIZONTAL).display_mode(cm.BarGaugeDisplayMode.GRADIENT)
            .unit("percentunit").decimals(0).min(0).max(1).thresholds(c.thresholds(*c.READY_STEPS))
            .show_unfilled(True).reduce_options(c.last_value()).data_links([link]).span(6).height(9))


def every_site(*m: str) -> table.Panel:
    rows = c.reason_rows(*m, every_site=True)
    return p.sites_table(c.bi("Every site: state and reasons", "همه سایت‌ها: وضعیت و علت"), rows, *m,
                         height=16, terminals=True)


def build() -> dm.Dashboard:
    m = (COUNTY, AREA)
    d = (c.new_dashboard(KEY, c.bi("Readiness: county $county", "آمادگی شهرستان"),
                         "Is this county ready, will it be by the deadline, and what is wrong at each site?",
                         time_from="now-7d")
         .with_variable(c.county_variable())
         .with_variable(c.area_variable(COUNTY))
         .with_variable(c.days_left_variable())
         .annotation(c.deadline_annotation())
         .with_row(db.Row(c.bi("Now", "اکنون")))
         .with_panel(p.ready_share(*m)).with_panel(p.ready_count(*m)).with_panel(p.days_to_deadline())
         .with_panel(p.forecast("county", COUNTY)).with_panel(p.all_ready_by(f'scope="county", {COUNTY}'))
         .with_panel(p.needed_per_day(*m))
         .with_panel(p.by_state(*m)).with_panel(by_upstream(*m))
         .with_panel(p.ratio_bars(c.bi("Urban and rural", "شهری و روستایی"), "area", *m))
         .with_row(db.Row(c.bi("Progress and map", "روند و نقشه")))
         .with_panel(p.burn_up(*m)).with_panel(p.sites_map(*m))
         .with_row(db.Row(c.bi("Sites", "سایت‌ها")))
         .with_panel(p.by_reason(*m)).with_panel(every_site(*m)))
    return c.finish(d)
