"""Every panel query returns data from a real Prometheus that scraped `readiness demo`.

Both run in a network namespace this module creates (its own loopback, nftables and ports, so a demo
another test runs on the host does not collide with this one); the queries go to Prometheus' HTTP API
from a thread that entered the namespace. Prometheus scrapes every second and loads the recording rules
of config/prometheus/readiness.rules.yml, which the province and county panels read.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.demo import province as demo_province
from monitor.demo.run import faults
from tests.dashboards import panels as P
from tests.helpers import require_root, require_tool
from tests.lab import Namespace, http, sh, stop, tail

pytestmark = [pytest.mark.root, pytest.mark.slow]

DEMO_PORT, PROMETHEUS_PORT = 9108, 9090  # inside the namespace: nothing else listens there
DATA_WAIT_SECONDS = 100  # a query may need a state change or two (the demo probes every 15 s, moves faults every 60 s)

# Metrics the demo may not export, and why. A panel reading one may come back empty only while the metric is
# absent from the demo's scrape (checked once every probe kind with targets has run a cycle): as soon as the
# demo exports it, the panel must return data like any other.
ABSENT_FROM_DEMO = {
    **{m: "exported only where an event store is configured; the demo configures none"
       for m in ("readiness_store_ok", "readiness_store_lag_seconds", "readiness_store_queued_events",
                 "readiness_store_dropped_events_total")},
    "readiness_forecast_all_ready_timestamp_seconds": "exported only while the monitor's trend reaches every site "
                                                      "ready; the demo's faults keep it flat (the panel then says so)",
}


def _demo_site(ticks: int = 4) -> tuple[str, str]:
    """(site, county) for the site dashboard: a polling site whose fiber primary (its links and its upstream
    node's) the demo's faults leave alone for the first ``ticks`` minutes, whose county switch answers SNMP,
    and whose backup was never delivered, so it is degraded and the reasons panel has one."""
    sites = demo_province.province()
    links = {s["id"]: {link["role"]: link["address"] for link in s["links"]} for s in sites}
    moments = [faults(sites, t) for t in range(ticks)]
    broken = set().union(*(down | lossy for down, lossy, _ in moments))
    never_up = set.intersection(*(down for down, _, _ in moments))
    for site in sites:
        mine = links[site["id"]]
        upstream = set(links.get(site.get("upstream", ""), {}).values())
        if site.get("kind", "polling") == "polling" and not site["id"].startswith(demo_province.DEAD_SWITCH) \
                and site["links"][0]["medium"] == "fiber" and mine.get("backup") in never_up \
                and not broken & {mine["primary"], *upstream}:
            return str(site["id"]), str(site["county"])
    raise AssertionError("no demo site fits")


SITE, COUNTY = _demo_site()
# What Grafana would substitute: values present in the demo, a single value where a panel repeats; the link
# quality dashboard's county and medium are multi-value variables whose default, All, is ".*".
VALUES = {"county": COUNTY, "area": ".*", "site": SITE, "role": "primary", "medium": "fiber",
          "job": "readiness", "instance": ".*", "__range": "5m", "__interval": "15s", "__rate_interval": "1m"}
PER_DASHBOARD = {"link_quality": {"county": ".*", "medium": ".*"}}


class Lab:
    """The demo and Prometheus in one namespace, and a way to query Prometheus from inside it."""

    def __init__(self, name: str, tmp: Path) -> None:
        self.ns = Namespace(name)
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ready_at = 0.0

    def start(self, prometheus: str) -> None:
        self.ns.create()
        # A new namespace allows no ICMP datagram sockets; the demo's probe needs them (or raw sockets).
        sh("ip", "netns", "exec", self.ns.name, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "rule_files": [str(P.RULES)],
                  "scrape_configs": [{"job_name": "readiness",
                                      "static_configs": [{"targets": [f"127.0.0.1:{DEMO_PORT}"]}]}]}
        (self.tmp / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        self._popen("demo", [sys.executable, "-m", "monitor", "demo", "--port", str(DEMO_PORT)])
        self._popen("prometheus", [prometheus, f"--config.file={self.tmp / 'prometheus.yml'}",
                                   f"--storage.tsdb.path={self.tmp / 'data'}",
                                   f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}", "--log.level=warn"])

    def _popen(self, name: str, cmd: list[str]) -> None:
        self.procs.append(self.ns.popen(cmd, self.tmp / f"{name}.log", cwd=P.ROOT,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"}))

    def _get(self, path: str) -> Any:
        """GET from Prometheus, from a thread inside the namespace: the decoded JSON, or the text."""
        return self.ns.call(http, f"http://127.0.0.1:{PROMETHEUS_PORT}{path}", None, 10, timeout=30)

    def ready(self) -> bool:
        return "Ready" in str(self._get("/-/ready"))

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Run an instant query in Prometheus; raise on an error answer (a query Prometheus refuses)."""
        path = "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            doc = self._get(path)
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"Prometheus refused {expr!r}: {exc.read().decode(errors='replace')}") from exc
        assert isinstance(doc, dict) and doc["status"] == "success", doc
        return list(doc["data"]["result"])

    def present(self, metric: str) -> bool:
        return bool(self.query(f'count({{__name__="{metric}"}})'))

    def wait(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            for proc in self.procs:
                assert proc.poll() is None, f"{proc.args} exited\n{self.logs()}"
            try:
                if check():
                    return
            except (OSError, ValueError, AssertionError) as exc:
                last = exc
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what} (last: {last!r})\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(tail(self.tmp / f"{name}.log", 25) for name in ("demo", "prometheus"))

    def close(self) -> None:
        for proc in reversed(self.procs):
            stop(proc, grace=10)
        self.ns.delete()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_root("a network namespace for the demo and Prometheus")
    require_tool("ip")
    require_tool("nft")
    prometheus = require_tool("prometheus")
    lab = Lab(f"rdash{os.getpid()}", tmp_path_factory.mktemp("dashboards-lab"))
    try:
        lab.start(prometheus)
        lab.wait("Prometheus to start", lab.ready, 60)

        # Exported once every probe kind that has targets finished a cycle: from then on, a metric absent from
        # the scrape is one the demo does not produce, not one that is still coming.
        lab.wait("the demo's first full evaluation, scraped",
                 lambda: bool(lab.query("readiness_last_evaluation_timestamp_seconds")), 120)
        lab.wait("the recording rules", lambda: bool(lab.query("province:readiness_ready:ratio")), 30)
        time.sleep(3)  # a few more scrapes, so rates and ranges have two samples or more
        lab.ready_at = time.monotonic()
        yield lab
    finally:
        lab.close()


def _id(q: P.Query) -> str:
    return f"{q.dashboard}:{q.where.split(' · ')[0]}:{q.ref}".replace(" ", "_")


@pytest.mark.parametrize("query", [q for q in P.all_queries() if q.kind != "annotation"], ids=_id)
def test_query_returns_data(lab: Lab, query: P.Query) -> None:
    """The query, variables set to values present in the demo, returns at least one series; the only exception
    is a query that reads a metric absent from the demo's scrape (listed in ABSENT_FROM_DEMO, with the reason)."""
    expr = P.substitute(query.expr, {**VALUES, **PER_DASHBOARD.get(query.dashboard, {})})
    if query.label:  # label_values(selector, label): the variable lists the values of that label
        expr = f"count by ({query.label}) ({expr})"
    missing = [m for m in sorted(P.metrics(expr)) if m in ABSENT_FROM_DEMO and not lab.present(m)]
    rows = lab.query(expr)  # Prometheus accepts it, whether or not it has data
    if not rows and missing:
        pytest.xfail("; ".join(f"{m} is not in the demo's scrape: {ABSENT_FROM_DEMO[m]}" for m in missing))
    deadline = lab.ready_at + DATA_WAIT_SECONDS
    while not rows and time.monotonic() < deadline:
        time.sleep(2)
        rows = lab.query(expr)
    assert rows, f"{query.id} returned no data:\n{expr}"
    if query.label:
        assert all(query.label in row["metric"] for row in rows)


def test_annotations_are_valid_queries(lab: Lab) -> None:
    """Annotation queries run (empty is right: the deadline is in the future and nobody reloaded the config)."""
    for query in [q for q in P.all_queries() if q.kind == "annotation"]:
        lab.query(P.substitute(query.expr, VALUES))


def test_geomap_rows_merge(lab: Lab) -> None:
    """The map's one query gives a row per site, its location from readiness_site_info's labels (numbers that
    Grafana's convertFieldType turns into coordinates) and its state code as the value."""
    doc = P.committed()["province"]
    [panel] = [p for p in doc["panels"] if p["type"] == "geomap"]
    [target] = panel["targets"]
    rows = lab.query(P.substitute(target["expr"], VALUES))
    assert len({r["metric"]["site"] for r in rows}) == len(rows) == len(demo_province.province())
    for r in rows:
        float(r["metric"]["latitude"]), float(r["metric"]["longitude"])
