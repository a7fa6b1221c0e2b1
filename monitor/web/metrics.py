"""Prometheus exposition: a custom collector that builds fresh families from the latest snapshot.

It does no I/O and takes no lock: the snapshot is immutable, so rendering can run off the event loop.
Every name here is listed in docs/metrics.md; a test compares the catalogue with a real scrape.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from monitor import __version__
from monitor.core.actions import by_county, unowned
from monitor.core.figures import blind, cells, site_state, site_terminals
from monitor.core.reasons import SITE_STATES, main_code, state_codes
from monitor.runtime.snapshot import FAILURE_WORDS, Snapshot
from monitor.runtime.tasks import failures as task_failures
from monitor.web.exposition import Family, Labels

SITE = ["site", "county", "area"]
LINK = [*SITE, "role", "medium"]
TERMINAL = [*SITE, "terminal"]

# Link values: observation value name -> (metric name, help). ICMP first, then SNMP.
LINK_VALUES: dict[str, tuple[str, str]] = {
    "loss_ratio": ("readiness_link_loss_ratio", "Share of echo requests lost in the last cycle."),
    "rtt_min_seconds": ("readiness_link_rtt_min_seconds", "Smallest echo round-trip time in the last cycle."),
    "rtt_avg_seconds": ("readiness_link_rtt_avg_seconds", "Mean echo round-trip time in the last cycle."),
    "rtt_max_seconds": ("readiness_link_rtt_max_seconds", "Largest echo round-trip time in the last cycle."),
    "jitter_seconds": ("readiness_link_jitter_seconds", "Mean difference of consecutive round-trip times."),
    "oper_up": ("readiness_link_oper_up", "ifOperStatus of the carrying interface is up (1) or not (0)."),
    "admin_up": ("readiness_link_admin_up", "ifAdminStatus of the carrying interface is up (1) or not (0)."),
    "rx_power_dbm": ("readiness_link_rx_power_dbm", "Optical receive power of the transceiver (dBm)."),
    "tx_power_dbm": ("readiness_link_tx_power_dbm", "Optical transmit power of the transceiver (dBm)."),
    "last_change_seconds": ("readiness_link_last_change_seconds", "Seconds since the interface last changed state."),
    "uptime_seconds": ("readiness_link_device_uptime_seconds", "sysUpTime of the device carrying the link."),
}
# Link values exported by default (the alerts need them); the rest only with `metrics: {detail: true}`.
DEFAULT_LINK_VALUES = frozenset({"loss_ratio", "rx_power_dbm"})
# Link counters (metrics.detail only): observation value name -> (metric name without _total, help).
# Rates are left to PromQL's rate().
LINK_COUNTERS: dict[str, tuple[str, str]] = {
    "in_octets_total": ("readiness_link_in_bytes", "Bytes received on the carrying interface while the monitor "
                                                   "watched (free of the device's wraps and resets)."),
    "out_octets_total": ("readiness_link_out_bytes", "Bytes sent on the carrying interface while the monitor watched."),
    "in_errors_total": ("readiness_link_in_errors", "Inbound interface errors while the monitor watched."),
    "out_errors_total": ("readiness_link_out_errors", "Outbound interface errors while the monitor watched."),
    "in_discards_total": ("readiness_link_in_discards", "Inbound discards while the monitor watched."),
    "oper_changes": ("readiness_link_oper_changes", "Interface state changes seen since the monitor started."),
}



def _gauge(name: str, doc: str, labels: list[str]) -> Family:
    return Family(name, doc, labels)


def _counter(name: str, doc: str, labels: list[str]) -> Family:
    return Family(name, doc, labels, "counter")


class SnapshotCollector(Collector):
    """Build every readiness_* family from whatever snapshot ``get`` returns now."""

    def __init__(self, get: Callable[[], Snapshot]) -> None:
        self._get = get

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        snap = self._get()
        yield from self._sites(snap)
        yield from self._links(snap)
        yield from self._terminals(snap)
        yield from self._programme(snap)
        yield from self._accountability(snap)
        yield from self._monitor(snap)
        took = _gauge("readiness_exporter_collect_seconds", "Time spent building this exposition.", [])
        took.add_metric([], time.perf_counter() - started)
        yield took

    def _sites(self, snap: Snapshot) -> Iterator[Metric]:
        detail = snap.config.metrics.detail
        info = _gauge("readiness_site_info", "Static facts of a site, once per site (value 1): name, kind, upstream "
                      "node and location (empty when unknown).",
                      [*SITE, "name", "kind", "upstream", "latitude", "longitude"])
        state = _gauge("readiness_site_state", "Readiness state of a site: one series, for the current state (1).",
                       [*SITE, "state"])
        since = _gauge("readiness_site_state_since_timestamp_seconds", "When the site entered its state.", SITE)
        # One series per site whatever the number of reasons (issue 13: the budget holds for sites not ready too).
        reason = _gauge("readiness_site_reason", "Why the site is not ready: one series (1) while it has a reason; "
                        "reason is the main reason's code, reasons every code that makes its state, sorted, "
                        "comma-separated.", [*SITE, "reason", "reasons"])
        by_reason = _gauge("readiness_site_reasons", "Sites of this instance having the reason code among their "
                           "reasons, by county and area.", ["county", "area", "reason"])
        tally_reasons: Counter[tuple[str, str, str]] = Counter()
        t_up = _gauge("readiness_site_terminals_up", "Terminals of the site that answer.", SITE)
        t_total = _gauge("readiness_site_terminals", "Terminals the site is expected to have.", SITE)
        seen = _gauge("readiness_site_terminals_seen", "Expected terminals in the router's neighbour table.", SITE)
        unexpected = _gauge("readiness_site_unexpected_devices", "Unknown devices in the neighbour table.", SITE)
        counts = _gauge("readiness_sites", "Sites by county, area, kind (polling place or network node) and state.",
                        ["county", "area", "kind", "state"])
        first = _gauge("readiness_site_first_ready_timestamp_seconds", "When the site was first (sustained) ready "
                       "(metrics.detail).", SITE)
        ever = _gauge("readiness_site_ever_ready", "The site has been (sustained) ready at least once (1); absent "
                      "until then.", SITE)
        regressions = _counter("readiness_site_regressions", "Times a ready site slipped back "
                                                             "(metrics.detail).", SITE)
        maint = _gauge("readiness_site_maintenance", "The site is inside a maintenance window (1); absent outside.",
                       SITE)
        waiver = _gauge("readiness_site_waiver", "A waiver lifts a requirement of the site (1 per waiver).",
                        [*SITE, "requirement"])
        for site in snap.config.reported_sites():
            labels = Labels.of(SITE, (site.id, site.county, site.area))  # rendered once for all its samples
            loc = site.location
            info.add_metric([site.name, site.kind, site.upstream or "",
                             "" if loc is None else repr(float(loc.lat)), "" if loc is None else repr(float(loc.lon))],
                            1, labels)
            r = snap.sites.get(site.id)
            state.add_metric([r.state if r else "unknown"], 1.0, labels)
            terms = site_terminals(site, r)
            t_total.add_metric((), terms.total, labels)
            if terms.known_up is not None:  # unknown is not 0: absent while none of them can be seen
                t_up.add_metric((), terms.known_up, labels)
            if r is None:
                continue
            since.add_metric((), r.since, labels)
            if r.ever_ready:
                ever.add_metric((), 1.0, labels)
            if detail:
                if r.first_ready_at is not None:
                    first.add_metric((), r.first_ready_at, labels)
                regressions.add_metric((), r.regressions, labels)
            if r.maintenance:
                maint.add_metric((), 1.0, labels)
            for w in r.waivers:  # the subject of a waived note is its requirement
                waiver.add_metric([w.subject], 1, labels)
            codes = state_codes(r.reasons)
            if codes:
                reason.add_metric([main_code(r.reasons, r.state) or codes[0], ",".join(codes)], 1, labels)
                tally_reasons.update((site.county, site.area, code) for code in codes)
            if r.neighbours is not None and r.neighbours.ok:
                if "terminals_seen" in r.neighbours.values:
                    seen.add_metric((), r.neighbours.values["terminals_seen"], labels)
                if "unexpected_devices" in r.neighbours.values:
                    unexpected.add_metric((), r.neighbours.values["unexpected_devices"], labels)
        tally = cells(snap.config.reported_sites(), snap.sites)
        # Every state of every scope, zeros too: the per-site state family has the current state only, so the
        # roll-ups take their zeros from here.
        for county, area, kind in sorted({k[:3] for k in tally}):
            for st in SITE_STATES:
                counts.add_metric([county, area, kind, st], tally.get((county, area, kind, st), 0))
        for key, n in sorted(tally_reasons.items()):
            by_reason.add_metric(key, n)
        yield from (info, state, since, reason, by_reason, t_up, t_total, seen, unexpected, counts, first, ever,
                    regressions, maint, waiver)

    def _links(self, snap: Snapshot) -> Iterator[Metric]:
        detail = snap.config.metrics.detail
        state = _gauge("readiness_link_state", "Health of a link: one series, for the current state (1).",
                       [*LINK, "state"])
        # Thresholds are policy, the same for every link of a medium: once per medium, not once per link.
        rx_min = _gauge("readiness_medium_rx_power_min_dbm", "Receive power below which a link of the medium is "
                        "degraded.", ["medium"])
        rx_warn = _gauge("readiness_medium_rx_power_warn_dbm", "Receive power below which a link of the medium is "
                         "in the warning band.", ["medium"])
        loss_max = _gauge("readiness_medium_loss_max_ratio", "Loss above which a link of the medium is impaired.",
                          ["medium"])
        rtt_max = _gauge("readiness_medium_rtt_max_allowed_seconds", "Mean RTT above which a link of the medium is "
                         "impaired.", ["medium"])
        values: dict[str, Family] = {
            **{k: _gauge(name, doc, LINK) for k, (name, doc) in LINK_VALUES.items()},
            **{k: _counter(name, doc, LINK) for k, (name, doc) in LINK_COUNTERS.items()}}
        if not detail:  # the families stay (empty): the catalogue is one list whatever the settings
            values = {k: f for k, f in values.items() if k in DEFAULT_LINK_VALUES}
            empty: list[Metric] = [
                f for k, f in [*((k, _gauge(n, d, LINK)) for k, (n, d) in LINK_VALUES.items()),
                               *((k, _counter(n, d, LINK)) for k, (n, d) in LINK_COUNTERS.items())]
                if k not in DEFAULT_LINK_VALUES]
        else:
            empty = []
        proven = _gauge("readiness_link_backup_proven", "The backup link has been seen carrying traffic (1) or "
                                                        "never (0).", LINK)
        optics = _gauge("readiness_link_optics_warning", "Why the link has no optical power reading (1 per warning "
                        "and direction): no_sensor, sensor_unavailable, unsupported_type, no_light, out_of_range.",
                        [*LINK, "warning", "direction"])
        for medium, policy in sorted(snap.config.policy.media.items()):
            loss_max.add_metric([medium], policy.loss_max_ratio)
            rtt_max.add_metric([medium], policy.rtt_max_seconds)
            if policy.rx_power_min_dbm is not None:
                rx_min.add_metric([medium], policy.rx_power_min_dbm)
            if policy.rx_power_warn_dbm is not None:
                rx_warn.add_metric([medium], policy.rx_power_warn_dbm)
        sites = {s.id: s for s in snap.config.reported_sites()}
        for site_id, r in snap.sites.items():
            site = sites.get(site_id)
            if site is None:
                continue
            of_site = Labels.of(SITE, (site.id, site.county, site.area))
            for h in r.links:
                labels = of_site.extend(("role", "medium"), (h.role, h.medium))
                state.add_metric([h.state], 1.0, labels)
                if h.role == "backup":
                    proven.add_metric((), 1.0 if f"{site.id}/backup" in snap.proven else 0.0, labels)
                for key, family in values.items():
                    if key in h.values:
                        family.add_metric((), h.values[key], labels)
                for w in h.warnings:  # primary.optics.no_light rx: warning no_light, direction rx
                    if w.name.startswith("optics."):
                        optics.add_metric([w.name.removeprefix("optics."), w.detail], 1, labels)
        yield from (state, rx_min, rx_warn, loss_max, rtt_max, proven, optics, *values.values(), *empty)

    def _terminals(self, snap: Snapshot) -> Iterator[Metric]:
        detail = snap.config.metrics.detail
        up = _gauge("readiness_terminal_up", "The terminal answers (1) or not (0); absent while unknown.", TERMINAL)
        connect = _gauge("readiness_terminal_connect_seconds", "TCP connect time to the terminal's service "
                         "(metrics.detail).", TERMINAL)
        rtt = _gauge("readiness_terminal_rtt_avg_seconds", "Mean echo round-trip time to the terminal "
                     "(metrics.detail).", TERMINAL)
        status = _gauge("readiness_terminal_http_status_code", "HTTP status of the terminal's last check "
                                                              "(after redirects).", TERMINAL)
        not_after = _gauge("readiness_terminal_tls_not_after_timestamp_seconds", "When the certificate the terminal "
                           "presented expires (Unix time).", TERMINAL)
        sites = {s.id: s for s in snap.config.reported_sites()}
        for site_id, r in snap.sites.items():
            site = sites.get(site_id)
            if site is None:
                continue
            hidden = blind(r)  # behind a dead node the terminals are unknown, whatever their probes said
            of_site = Labels.of(SITE, (site.id, site.county, site.area))
            for t in r.terminals:
                labels = of_site.extend(("terminal",), (t.id,))
                if t.state != "unknown" and not hidden:
                    up.add_metric((), 1.0 if t.state == "up" else 0.0, labels)
                # HTTP terminals only, and the certificate alert needs its date: in the default budget.
                if "status_code" in t.values:
                    status.add_metric((), t.values["status_code"], labels)
                if "tls_not_after_timestamp_seconds" in t.values:
                    not_after.add_metric((), t.values["tls_not_after_timestamp_seconds"], labels)
                if not detail:
                    continue
                if "connect_seconds" in t.values:
                    connect.add_metric((), t.values["connect_seconds"], labels)
                if "rtt_avg_seconds" in t.values:
                    rtt.add_metric((), t.values["rtt_avg_seconds"], labels)
        yield from (up, connect, rtt, status, not_after)

    def _programme(self, snap: Snapshot) -> Iterator[Metric]:
        deadline = snap.config.programme.deadline.timestamp()
        d = _gauge("readiness_deadline_timestamp_seconds", "The programme's deadline (Unix time).", [])
        d.add_metric([], deadline)
        yield d
        scope = ["scope", "county", "area"]

        def labels(kind: str, name: str) -> list[str]:
            return [kind, name if kind == "county" else "", name if kind == "area" else ""]

        now_share = _gauge("readiness_ready_ratio", "Share of this instance's polling places that are ready now "
                           "(network nodes never count).", scope)
        for (kind, name), t in snap.figures().scopes().items():
            if t.share is not None:  # None: the scope has no polling places (a shard of nodes)
                now_share.add_metric(labels(kind, name), t.share)
        share = _gauge("readiness_forecast_ready_ratio", "Forecast share of ready polling places at the deadline "
                       "(Theil-Sen trend of the last days); absent without enough history.", scope)
        low = _gauge("readiness_forecast_ready_low_ratio", "Lower end of the forecast share: the trend's slope at "
                     "its lower 95% confidence bound.", scope)
        high = _gauge("readiness_forecast_ready_high_ratio", "Upper end of the forecast share: the trend's slope "
                      "at its upper 95% confidence bound.", scope)
        when = _gauge("readiness_forecast_all_ready_timestamp_seconds", "When the trend reaches every site ready.",
                      scope)
        risk = _gauge("readiness_forecast_at_risk", "The forecast at the deadline is below the target (1) or not (0); "
                      "absent without enough history.", scope)
        for (kind, name), f in sorted(snap.forecasts.items()):
            if not f.enough_history:
                continue
            at = labels(kind, name)
            share.add_metric(at, f.share_at_deadline)  # type: ignore[arg-type]
            low.add_metric(at, f.share_at_deadline_low)  # type: ignore[arg-type]
            high.add_metric(at, f.share_at_deadline_high)  # type: ignore[arg-type]
            risk.add_metric(at, 1.0 if f.at_risk else 0.0)
            if f.all_ready_at is not None:
                when.add_metric(at, f.all_ready_at)
        yield from (share, low, high, when, risk, now_share)

    def _accountability(self, snap: Snapshot) -> Iterator[Metric]:
        counties = sorted({s.county for s in snap.config.reported_sites()})
        owners = _gauge("readiness_county_owner_info", "Who answers for a county (value 1): alerts join its owner "
                        "label on county to route the county's pages.", ["county", "owner"])
        for county in counties:
            c = snap.config.counties.get(county)
            if c is not None:
                owners.add_metric([county, c.owner], 1)
        polling = [(s.id, s.county) for s in snap.config.reported_sites() if s.kind == "polling"]
        states = {sid: (site_state(snap.sites.get(sid)), snap.sites[sid].since if sid in snap.sites else None)
                  for sid, _ in polling}
        lost = unowned(polling, states, snap.actions or (), snap.at, snap.config.actions.unowned_after_seconds)
        n_unowned = _gauge("readiness_sites_unowned", "Polling places not ready for longer than the grace time with "
                           "no open remediation action (on the site or its county).", ["county"])
        for county in counties:
            n_unowned.add_metric([county], sum(u.county == county for u in lost))
        open_ = _gauge("readiness_actions_open", "Open remediation actions.", ["county"])
        overdue = _gauge("readiness_actions_overdue", "Open remediation actions past their due time.", ["county"])
        counts = by_county(snap.actions or (), snap.at)  # without a store there are none
        for county in sorted({*counties, *counts}):
            n_open, n_over = counts.get(county, (0, 0))
            open_.add_metric([county], n_open)
            overdue.add_metric([county], n_over)
        yield from (owners, n_unowned, open_, overdue)

    def _monitor(self, snap: Snapshot) -> Iterator[Metric]:
        build = _gauge("readiness_build_info", "Version of this monitor (value 1).", ["version"])
        build.add_metric([__version__], 1)
        cfg = _gauge("readiness_config_info", "Hash of the config and inventory in force (value 1).", ["version"])
        cfg.add_metric([snap.config.version], 1)
        ok = _gauge("readiness_config_last_reload_success", "Whether the last config reload succeeded.", [])
        ok.add_metric([], 1.0 if snap.reload_success else 0.0)
        at = _gauge("readiness_config_last_reload_timestamp_seconds", "When the config was last (re)loaded.", [])
        at.add_metric([], snap.reload_at or snap.started_at)
        started = _gauge("readiness_start_timestamp_seconds", "When this monitor process started.", [])
        started.add_metric([], snap.started_at)
        evaluated = _gauge("readiness_last_evaluation_timestamp_seconds", "When readiness was last evaluated.", [])
        if snap.evaluated:
            evaluated.add_metric([], snap.at)
        blind = _gauge("readiness_monitor_blind", "The monitor cannot trust its own view (1): its witnesses do not "
                       "answer or most targets fail on its own side; the sites it cannot see are unknown.", [])
        blind.add_metric([], 1.0 if snap.monitor.blind else 0.0)
        witness = _gauge("readiness_witness_up", "A witness (an address the monitor must reach) answers (1) or "
                         "not (0); absent while unknown.", ["witness"])
        for label, answered in sorted(snap.monitor.witnesses.items()):
            if answered is not None:
                witness.add_metric([label], 1.0 if answered else 0.0)
        kind = ["kind"]
        duration = _gauge("readiness_probe_cycle_duration_seconds", "Duration of the last probe cycle.", kind)
        last = _gauge("readiness_probe_last_cycle_timestamp_seconds", "When the last probe cycle finished.", kind)
        targets = _gauge("readiness_probe_targets", "Targets probed per cycle.", kind)
        failed = _gauge("readiness_probe_targets_failed", "Targets whose probe failed in the last cycle.", kind)
        interval = _gauge("readiness_probe_interval_seconds", "Configured probe interval.", kind)
        cycles = CounterMetricFamily("readiness_probe_cycles", "Probe cycles run.", labels=kind)
        skipped = CounterMetricFamily("readiness_probe_cycles_skipped", "Cycles due but not run: the previous "
                                      "one was still running, or missed (the loop was late).", labels=kind)
        missed = CounterMetricFamily("readiness_probe_cycles_missed", "Cycles due but missed because the loop "
                                     "was late by more than the grace time (a pause); also counted as skipped.",
                                     labels=kind)
        errors = CounterMetricFamily("readiness_probe_errors", "Cycles that failed as a whole.", labels=kind)
        requests = CounterMetricFamily("readiness_probe_requests", "Requests sent: echo requests, TCP connects, "
                                       "SNMP PDUs (retries not counted).", labels=kind)
        causes = CounterMetricFamily("readiness_target_failures", "Failed observations by probe kind and failure "
                                     "word (probes.base.FAILURES).", labels=["kind", "failure"])
        for name, c in sorted(snap.cycles.items()):
            for word in FAILURE_WORDS:
                causes.add_metric([name, word], c.failures_total.get(word, 0))
            duration.add_metric([name], c.duration_seconds)
            if c.finished_at:
                last.add_metric([name], c.finished_at)
            targets.add_metric([name], c.targets)
            failed.add_metric([name], c.failed)
            interval.add_metric([name], c.interval_seconds)
            cycles.add_metric([name], c.cycles_total)
            skipped.add_metric([name], c.skipped_total)
            missed.add_metric([name], c.missed_total)
            errors.add_metric([name], c.errors_total)
            requests.add_metric([name], c.requests_total)
        dead = CounterMetricFamily("readiness_task_failures", "Background tasks and threads of the monitor that "
                                   "died of an exception (logged with its traceback).", labels=["task"])
        for task, n in sorted(task_failures().items()):
            dead.add_metric([task], n)
        k, n = snap.config.shard
        shard = _gauge("readiness_shard_info", "Which shard of how many this instance is (value 1); unsharded is "
                       "shard 1 of 1.", ["shard", "shards"])
        shard.add_metric([str(k), str(n)], 1)
        expected = _gauge("readiness_shard_expected", "Every shard of the deployment, 1 to N (value 1): the rules "
                          "name a shard that no instance answers for.", ["shard", "shards"])
        for i in range(1, n + 1):
            expected.add_metric([str(i), str(n)], 1)
        owned = _gauge("readiness_shard_sites", "Sites this instance owns and reports, by kind.", ["kind"])
        whole = _gauge("readiness_inventory_sites", "Sites of the whole inventory (every shard's) by county, area "
                       "and kind: the same on every shard.", ["county", "area", "kind"])
        whole_terms = _gauge("readiness_inventory_terminals", "Terminals of the whole inventory's polling places "
                             "by county and area: the same on every shard.", ["county", "area"])
        mine: dict[str, int] = {"polling": 0, "node": 0}
        for s in snap.config.reported_sites():
            mine[s.kind] = mine.get(s.kind, 0) + 1
        for kind_, count in sorted(mine.items()):
            owned.add_metric([kind_], count)
        for county, area, kind_, count, terms in snap.config.whole_inventory():
            whole.add_metric([county, area, kind_], count)
            if kind_ == "polling":
                whole_terms.add_metric([county, area], terms)
        yield from (shard, expected, owned, whole, whole_terms)
        yield from (build, cfg, ok, at, started, evaluated, blind, witness, duration, last, targets, failed,
                    interval, cycles, skipped, missed, errors, requests, causes, dead)
        if (snmp := snap.cycles.get("snmp")) is not None:
            malformed = CounterMetricFamily("readiness_snmp_malformed", "SNMP datagrams from polled agents dropped "
                                            "as no answer: garbage, truncated, a wrong request id or PDU.", labels=[])
            malformed.add_metric([], snmp.malformed_total)
            unsolicited = CounterMetricFamily("readiness_snmp_unsolicited", "SNMP datagrams from addresses never "
                                              "polled, dropped unanswered.", labels=[])
            unsolicited.add_metric([], snmp.unsolicited_total)
            yield from (malformed, unsolicited)
        now = time.time()
        problems = snap.problems(now)
        ready = _gauge("readiness_monitor_ready", "This monitor's word can be trusted now (1), or not (0): "
                       "see /-/ready for why.", [])
        ready.add_metric([], 0.0 if problems else 1.0)
        stalled_kinds = snap.stalled(now)
        stalled = _gauge("readiness_probing_stalled", "No cycle of this kind finished within twice its interval "
                         "plus a cycle (1), or it did (0).", kind)
        for name in snap.probing:
            stalled.add_metric([name], 1.0 if name in stalled_kinds else 0.0)
        yield from (ready, stalled)
        yield from self._store(snap)

    def _store(self, snap: Snapshot) -> Iterator[Metric]:
        status = snap.store
        if status is None:
            return
        ok = _gauge("readiness_store_ok", "The event store accepts writes (1) or reports an error (0).", [])
        ok.add_metric([], 1.0 if status.ok else 0.0)
        queued = _gauge("readiness_store_queued_events", "Events accepted but not yet committed.", [])
        queued.add_metric([], status.queued)
        lag = _gauge("readiness_store_lag_seconds", "Age of the oldest event not yet committed.", [])
        lag.add_metric([], status.lag_seconds)
        seq = _gauge("readiness_store_committed_sequence", "Sequence number of the chain's last row.", [])
        seq.add_metric([], status.committed_seq)
        dropped = CounterMetricFamily("readiness_store_dropped_events", "Events refused because the queue "
                                      "was full.", labels=[])
        dropped.add_metric([], status.dropped)
        yield from (ok, queued, lag, seq, dropped)
        if status.last_commit_at:
            last = _gauge("readiness_store_last_commit_timestamp_seconds", "When the store last committed.", [])
            last.add_metric([], status.last_commit_at)
            yield last


def make_registry(get: Callable[[], Snapshot]) -> CollectorRegistry:
    """Return a fresh registry holding only the snapshot collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(get))
    return registry
